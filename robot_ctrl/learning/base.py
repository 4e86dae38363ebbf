"""What every learned chunk policy shares: the model interface, normalization, the numpy-facing
policy wrapper and safetensors checkpoints.

A *model* (`ChunkModel`, torch) works in normalized units: it maps a flat observation vector
(`obs_horizon` stacked observations, each scaled to [−1, 1]) to a chunk of `horizon` actions
(each scaled to [−1, 1]). Training is split into named stages (CARP: "tokenizer", then
"policy"; the others: just "policy").

A *policy* (`Policy`) wraps a model with its normalizer and timing, keeps the observation
history and returns `Chunk`s in physical units with timestamps.
"""
from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

MODELS: dict[str, type["ChunkModel"]] = {}
FORMAT_VERSION = 1


def register(cls):
    MODELS[cls.kind] = cls
    return cls


class CheckpointError(ValueError):
    """A checkpoint that is missing, unreadable or does not fit what it is used for."""


class ChunkModel(nn.Module):
    """Base class of the policy networks. Subclasses set `kind` (the registry name) and
    `stages`, store their constructor arguments with `self._cfg`, and implement `loss` and
    `predict`."""

    kind = ""
    stages: tuple[str, ...] = ("policy",)

    def __init__(self, obs_dim: int, act_dim: int, horizon: int, **cfg):
        super().__init__()
        self.obs_dim, self.act_dim, self.horizon = int(obs_dim), int(act_dim), int(horizon)
        self._cfg = dict(cfg)

    def config(self) -> dict:
        return {"obs_dim": self.obs_dim, "act_dim": self.act_dim, "horizon": self.horizon, **self._cfg}

    def stage_parameters(self, stage: str):
        """The parameters trained in `stage` (default: all)."""
        return self.parameters()

    def loss(self, obs: torch.Tensor, actions: torch.Tensor, stage: str = "policy") -> tuple[torch.Tensor, dict]:
        """obs (B, obs_dim), actions (B, horizon, act_dim), both normalized. Returns the scalar
        loss and a dict of floats to log."""
        raise NotImplementedError

    @torch.no_grad()
    def predict(self, obs: torch.Tensor, **kwargs) -> torch.Tensor:
        """obs (B, obs_dim) normalized → actions (B, horizon, act_dim) normalized."""
        raise NotImplementedError


class Normalizer:
    """Per-dimension min/max scaling to [−1, 1]; dimensions with a range below `eps` are
    centred and left unscaled."""

    def __init__(self, low: np.ndarray, high: np.ndarray, eps: float = 1e-4):
        self.low, self.high = np.asarray(low, np.float64), np.asarray(high, np.float64)
        if self.low.shape != self.high.shape or self.low.ndim != 1:
            raise ValueError("normalizer bounds must be two 1-D arrays of one size")
        span = self.high - self.low
        self.scale = np.where(span > eps, 2.0 / np.maximum(span, eps), 1.0)
        self.offset = -1.0 - self.low * self.scale
        centre = 0.5 * (self.low + self.high)
        self.offset = np.where(span > eps, self.offset, -centre)

    @classmethod
    def fit(cls, x: np.ndarray) -> "Normalizer":
        x = np.asarray(x, np.float64).reshape(-1, np.shape(x)[-1])
        return cls(x.min(0), x.max(0))

    def normalize(self, x):
        return np.asarray(x) * self.scale + self.offset

    def unnormalize(self, y):
        return (np.asarray(y) - self.offset) / self.scale

    def tensors(self, prefix: str) -> dict[str, torch.Tensor]:
        return {f"{prefix}.low": torch.as_tensor(self.low), f"{prefix}.high": torch.as_tensor(self.high)}


@dataclass
class Chunk:
    """Actions in physical units and the times (s, from the observation's time) they apply at."""
    times: np.ndarray
    actions: np.ndarray


@dataclass
class PolicySpec:
    """What a policy was trained on; stored in the checkpoint."""
    task: str
    obs_size: int
    act_size: int
    obs_horizon: int = 1
    horizon: int = 16
    action_steps: int = 8
    dt: float = 0.1
    extra: dict = field(default_factory=dict)
    frame: dict | None = None  # a hand or task frame (robot_ctrl.learning.frames), None: world coordinates

    @property
    def model_obs_size(self) -> int:
        """Numbers per observation the model sees (with the frame's hand-relative features)."""
        from robot_ctrl.learning.frames import frame_from_dict

        frame = frame_from_dict(self.frame)
        return frame.feature_size(self.obs_size) if frame else self.obs_size


class Policy:
    """A trained model with its normalizers and spec. `act(obs)` takes one observation (the
    newest), keeps `obs_horizon` of them (the first one repeated after `reset()`), and returns
    the predicted chunk of `horizon` actions.

    With a hand frame in the spec (`robot_ctrl.learning.frames`), the model sees each observation
    with hand-relative features appended and predicts hand positions relative to the newest
    observation's hand; with a task frame it sees the planar task frame's features instead of
    the observation and predicts hand positions in that frame; `act` returns world coordinates
    either way.

    Action dimensions that never vary in the training data (a scripted expert's fixed hand
    rotation) are not modelled: `active` lists the modelled ones, `fill` holds the constant
    values of the others, and the model's act_dim is the number of active dimensions."""

    def __init__(self, model: ChunkModel, spec: PolicySpec, obs_norm: Normalizer, act_norm: Normalizer,
                 active: np.ndarray | None = None, fill: np.ndarray | None = None):
        from robot_ctrl.learning.frames import FrameError, frame_from_dict

        active = np.arange(spec.act_size) if active is None else np.asarray(active, dtype=np.int64)
        fill = np.zeros(spec.act_size) if fill is None else np.asarray(fill, dtype=np.float64)
        try:
            self.frame = frame_from_dict(spec.frame)
            if self.frame is not None:
                self.frame.check(spec.obs_size, spec.act_size)
        except FrameError as e:
            raise CheckpointError(str(e)) from e
        if (model.obs_dim != spec.model_obs_size * spec.obs_horizon or obs_norm.low.size != model.obs_dim or model.act_dim != len(active)
                or fill.shape != (spec.act_size,) or act_norm.low.size != len(active)
                or (len(active) and (active.min() < 0 or active.max() >= spec.act_size))):
            raise CheckpointError(f"model sizes (obs {model.obs_dim}, action {model.act_dim}) do not match the "
                                  f"spec (obs {spec.model_obs_size}×{spec.obs_horizon}, action {spec.act_size} with "
                                  f"{len(active)} modelled dimensions)")
        self.model, self.spec, self.obs_norm, self.act_norm = model.eval(), spec, obs_norm, act_norm
        self.active, self.fill = active, fill
        self._history: deque = deque(maxlen=spec.obs_horizon)

    @property
    def kind(self) -> str:
        return self.model.kind

    def reset(self) -> None:
        self._history.clear()

    @property
    def supports_guidance(self) -> bool:
        """Whether the model has the guidance hook (`predict(..., guide=, guide_scale=)`)."""
        import inspect

        return "guide" in inspect.signature(self.model.predict).parameters

    def model_actions(self, actions, stacked_obs) -> np.ndarray:
        """World-frame actions (H, act_size) → the model's units (H, modelled dimensions):
        the frame's relative hand positions, normalized."""
        a = np.asarray(actions, np.float64)
        if a.shape != (self.spec.horizon, self.spec.act_size) or not np.all(np.isfinite(a)):
            raise ValueError(f"prompt chunk must be finite with shape ({self.spec.horizon}, {self.spec.act_size}), "
                             f"got {a.shape}")
        if self.frame is not None:
            a = self.frame.to_relative(a, stacked_obs, self.spec.obs_size)
        return self.act_norm.normalize(a[:, self.active])

    def act(self, obs, guide_to=None, guide_scale: float = 0.0, **kwargs) -> Chunk:
        """The chunk for the newest observation `obs`. `guide_to`: a world-frame chunk (H,
        act_size) the sampling is steered toward with strength `guide_scale` (issue 5's
        guidance prompt: at every denoising step x ← x − λ∇‖x̂₀ − x_prompt‖², in the model's
        normalized units); only for models with the guidance hook (diffusion)."""
        obs = np.asarray(obs, np.float64)
        if obs.shape != (self.spec.obs_size,):
            raise ValueError(f"observation must have shape ({self.spec.obs_size},), got {obs.shape}")
        if not np.all(np.isfinite(obs)):
            raise ValueError("observation has non-finite values")
        if not self._history:
            self._history.extend([obs] * self.spec.obs_horizon)
        else:
            self._history.append(obs)
        stacked = np.concatenate(self._history)
        feats = self.frame.features(stacked, self.spec.obs_size) if self.frame else stacked
        x = self.obs_norm.normalize(feats)
        if guide_to is not None:
            if not self.supports_guidance:
                raise ValueError(f"a {self.kind} policy has no guidance hook (diffusion policies have one)")
            target = torch.as_tensor(self.model_actions(guide_to, stacked), dtype=torch.float32)[None]
            kwargs["guide"] = lambda x0: ((x0 - target) ** 2).sum(dim=(-1, -2))
            kwargs["guide_scale"] = guide_scale
        with torch.no_grad():
            y = self.model.predict(torch.as_tensor(x, dtype=torch.float32)[None], **kwargs)[0].double().numpy()
        actions = np.tile(self.fill, (len(y), 1))
        actions[:, self.active] = self.act_norm.unnormalize(np.clip(y, -1.0, 1.0))
        if self.frame is not None:
            actions = self.frame.to_world(actions, stacked, self.spec.obs_size)
        if not np.all(np.isfinite(actions)):
            raise FloatingPointError("the policy produced non-finite actions")
        return Chunk(times=self.spec.dt * np.arange(self.spec.horizon), actions=actions)

    # -- checkpoints -------------------------------------------------------------------------
    def save(self, path: str | Path, extra_tensors: dict | None = None) -> Path:
        from safetensors.torch import save_file

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}
        tensors.update(self.obs_norm.tensors("norm.obs"))
        tensors.update(self.act_norm.tensors("norm.action"))
        tensors["action.active"] = torch.as_tensor(self.active, dtype=torch.int64)
        tensors["action.fill"] = torch.as_tensor(self.fill, dtype=torch.float64)
        tensors.update(extra_tensors or {})
        meta = {"format": str(FORMAT_VERSION), "kind": self.model.kind,
                "model_config": json.dumps(self.model.config()), "spec": json.dumps(self.spec.__dict__)}
        save_file(tensors, str(path), metadata=meta)
        return path


def read_checkpoint(path: str | Path) -> tuple[dict, dict[str, torch.Tensor]]:
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # safetensors raises several types for a damaged file
        raise CheckpointError(f"{path}: not a readable safetensors checkpoint ({e})") from e
    return meta, tensors


def load_policy(path: str | Path, expect_obs_size: int | None = None, expect_act_size: int | None = None,
                strict_stages: bool = True) -> Policy:
    """Load a checkpoint written by `Policy.save`. Raises `CheckpointError` naming the problem:
    unknown policy type, sizes that differ from `expect_*`, missing or mis-shaped tensors."""
    from robot_ctrl import learning  # noqa: F401  (registers the models)

    meta, tensors = read_checkpoint(path)
    kind = meta.get("kind", "")
    if meta.get("format") != str(FORMAT_VERSION):
        raise CheckpointError(f"{path}: checkpoint format {meta.get('format')!r}, expected {FORMAT_VERSION}")
    if kind not in MODELS:
        raise CheckpointError(f"{path}: unknown policy type '{kind}' (known: {', '.join(sorted(MODELS))})")
    try:
        cfg = json.loads(meta["model_config"])
        spec = PolicySpec(**json.loads(meta["spec"]))
    except (KeyError, TypeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: damaged metadata ({e})") from e
    if expect_obs_size is not None and spec.obs_size != expect_obs_size:
        raise CheckpointError(f"{path}: trained for observation size {spec.obs_size} (task {spec.task}), "
                              f"but this environment gives {expect_obs_size}")
    if expect_act_size is not None and spec.act_size != expect_act_size:
        raise CheckpointError(f"{path}: trained for action size {spec.act_size} (task {spec.task}), "
                              f"but this environment takes {expect_act_size}")
    model = MODELS[kind](**cfg)
    state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    bad = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or bad:
        raise CheckpointError(f"{path}: weights do not fit a '{kind}' model with this config "
                              f"(missing {missing[:5]}, unexpected {unexpected[:5]}, wrong shape {bad[:5]})")
    model.load_state_dict(state)
    try:
        obs_norm = Normalizer(tensors["norm.obs.low"].numpy(), tensors["norm.obs.high"].numpy())
        act_norm = Normalizer(tensors["norm.action.low"].numpy(), tensors["norm.action.high"].numpy())
    except KeyError as e:
        raise CheckpointError(f"{path}: normalization statistics missing ({e})") from e
    active = tensors["action.active"].numpy() if "action.active" in tensors else None
    fill = tensors["action.fill"].numpy() if "action.fill" in tensors else None
    if act_norm.low.size != model.act_dim:
        raise CheckpointError(f"{path}: normalization statistics do not match the spec sizes")
    try:
        return Policy(model, spec, obs_norm, act_norm, active, fill)
    except CheckpointError as e:
        raise CheckpointError(f"{path}: {e}") from e
