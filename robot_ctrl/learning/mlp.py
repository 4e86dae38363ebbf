"""MLP behaviour cloning, the floor: one network from the flat observation to the flattened
chunk (horizon · act_dim), trained with MSE. Unimodal by construction (it regresses to the
mean of the demonstrated chunks)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from robot_ctrl.learning.base import ChunkModel, register

ACTIVATIONS = {"mish": nn.Mish, "relu": nn.ReLU}


@register
class MLPPolicy(ChunkModel):
    """Config: `hidden` (hidden layer sizes), `activation` ("mish" or "relu"), `dropout`
    (probability after each hidden activation, 0 for none)."""

    kind = "mlp"
    stages = ("policy",)

    def __init__(self, obs_dim: int, act_dim: int, horizon: int, hidden=(512, 512, 512), activation: str = "mish",
                 dropout: float = 0.0):
        hidden = [int(h) for h in hidden]
        cfg = dict(hidden=hidden, activation=str(activation), dropout=float(dropout))
        super().__init__(obs_dim, act_dim, horizon, **cfg)
        if self.obs_dim < 1 or self.act_dim < 1 or self.horizon < 1:
            raise ValueError(f"obs_dim, act_dim and horizon must be positive, got "
                             f"{self.obs_dim}, {self.act_dim}, {self.horizon}")
        if any(h < 1 for h in hidden):
            raise ValueError(f"hidden sizes must be positive, got {hidden}")
        if cfg["activation"] not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r} (known: {', '.join(ACTIVATIONS)})")
        if not 0.0 <= cfg["dropout"] < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        layers: list[nn.Module] = []
        width = self.obs_dim
        for h in hidden:
            layers += [nn.Linear(width, h), ACTIVATIONS[cfg["activation"]]()]
            if cfg["dropout"] > 0:
                layers.append(nn.Dropout(cfg["dropout"]))
            width = h
        layers.append(nn.Linear(width, self.horizon * self.act_dim))
        self.net = nn.Sequential(*layers)

    def _check_obs(self, obs: torch.Tensor) -> None:
        if obs.dim() != 2 or obs.shape[1] != self.obs_dim:
            raise ValueError(f"obs must have shape (B, {self.obs_dim}), got {tuple(obs.shape)}")

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs).view(obs.shape[0], self.horizon, self.act_dim)

    def loss(self, obs: torch.Tensor, actions: torch.Tensor, stage: str = "policy") -> tuple[torch.Tensor, dict]:
        if stage != "policy":
            raise ValueError(f"the MLP policy has only the 'policy' stage, got {stage!r}")
        self._check_obs(obs)
        if actions.shape[1:] != (self.horizon, self.act_dim) or actions.shape[0] != obs.shape[0]:
            raise ValueError(f"actions must have shape ({obs.shape[0]}, {self.horizon}, {self.act_dim}), "
                             f"got {tuple(actions.shape)}")
        loss = F.mse_loss(self(obs), actions)
        return loss, {"mse": float(loss.detach())}

    @torch.no_grad()
    def predict(self, obs: torch.Tensor, **kwargs) -> torch.Tensor:
        """obs (B, obs_dim) → chunk (B, horizon, act_dim), clipped to [−1, 1]. Extra keyword
        arguments (sampler options meant for other policy types) are ignored."""
        obs = torch.as_tensor(obs)
        self._check_obs(obs)
        param = next(self.parameters())
        return self(obs.to(device=param.device, dtype=param.dtype)).clamp(-1.0, 1.0)
