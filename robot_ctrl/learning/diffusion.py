"""Diffusion policy (Chi et al., "Diffusion Policy", RSS 2023), the baseline chunk policy.

A 1-D convolutional UNet over the time axis of the action chunk predicts the noise that was
added to a chunk (epsilon prediction), conditioned by FiLM on a sinusoidal embedding of the
diffusion step concatenated with the flat observation vector. Training is the plain DDPM
objective (MSE on the noise) with a squared-cosine ("squaredcos_cap_v2") beta schedule of
`num_train_steps` steps. Sampling is DDPM (every training step, stochastic) or DDIM
(deterministic, eta = 0, a few evenly spaced steps). The small noise scheduler below is our
own; `diffusers` is not needed.

Guidance (for steering the sample, e.g. towards a teleoperator's prompt): `predict(...,
guide=cost, guide_scale=s)`. At every denoising step the noise prediction is made with
autograd on, the clean-sample estimate x̂₀(x_t) (clipped to [−1, 1], as the sampler uses it)
is given to `cost`, and after the ordinary scheduler step the gradient is subtracted from the
sample that leaves the step:

    x_{t−1} ← step(x_t, ε̂(x_t)) − s · ∇_{x_t} cost(x̂₀(x_t))

i.e. diffusion posterior sampling (Chung et al. 2023). The gradient goes through the noise
network, so guidance moves the sample along what the model finds plausible (it picks among
the modes the model knows) rather than overriding it; a model that is certain of a single
chunk barely moves.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from robot_ctrl.learning.base import ChunkModel, register

SAMPLERS = ("ddim", "ddpm")
SPACINGS = ("trailing", "leading")


# -- noise schedule -----------------------------------------------------------------------------
def squaredcos_cap_v2_betas(num_steps: int, max_beta: float = 0.999) -> torch.Tensor:
    """The cosine schedule of Nichol & Dhariwal (2021), as `diffusers` names it: betas such that
    ᾱ(t) = cos²(((t/T) + 0.008) / 1.008 · π/2), each beta capped at `max_beta`."""
    def alpha_bar(u: float) -> float:
        return math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2

    betas = [min(1.0 - alpha_bar((i + 1) / num_steps) / alpha_bar(i / num_steps), max_beta)
             for i in range(num_steps)]
    return torch.tensor(betas, dtype=torch.float64)


class NoiseScheduler:
    """DDPM / DDIM arithmetic for epsilon prediction. Holds no learnable state; the schedule is
    kept in float64 and cast to the sample's dtype when used.

    `alphas_cumprod[t]` is ᾱ_t for t = 0 … T−1 (t = 0 is the least noisy level); the step
    "before" t = 0 is the clean sample, ᾱ = 1."""

    def __init__(self, num_train_steps: int = 100, clip_sample: bool = True):
        if int(num_train_steps) < 1:
            raise ValueError(f"num_train_steps must be at least 1, got {num_train_steps}")
        self.num_train_steps = int(num_train_steps)
        self.clip_sample = bool(clip_sample)
        self.betas = squaredcos_cap_v2_betas(self.num_train_steps)
        self.alphas = 1.0 - self.betas
        self.alphas_cumprod = torch.cumprod(self.alphas, 0)

    def _abar(self, t, like: torch.Tensor) -> torch.Tensor:
        """ᾱ_t broadcast against `like` (B, ...); t an int (−1 → 1.0) or a (B,) tensor."""
        if isinstance(t, torch.Tensor):
            a = self.alphas_cumprod.to(like.device)[t.long()].to(like.dtype)
            return a.view(-1, *([1] * (like.dim() - 1)))
        a = 1.0 if t < 0 else float(self.alphas_cumprod[t])
        return torch.tensor(a, dtype=like.dtype, device=like.device)

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t) -> torch.Tensor:
        """The forward process: x_t = √ᾱ_t x0 + √(1−ᾱ_t) ε."""
        a = self._abar(t, x0)
        return a.sqrt() * x0 + (1.0 - a).sqrt() * noise

    def predict_x0(self, x_t: torch.Tensor, eps: torch.Tensor, t) -> torch.Tensor:
        """x̂₀ = (x_t − √(1−ᾱ_t) ε̂) / √ᾱ_t, clipped to [−1, 1] when `clip_sample`."""
        a = self._abar(t, x_t)
        x0 = (x_t - (1.0 - a).sqrt() * eps) / a.sqrt()
        return x0.clamp(-1.0, 1.0) if self.clip_sample else x0

    def timesteps(self, sampler: str, steps: int | None = None, spacing: str = "trailing") -> list[tuple[int, int]]:
        """The (t, t_prev) pairs of a sampling run, noisiest first; t_prev = −1 is the clean end.

        DDPM visits every training step. DDIM takes `steps` evenly spaced ones: "trailing"
        (default) ends the grid at the noisiest level, t = T−1, …, T/steps − 1, so the first step
        starts where the pure-noise input belongs; "leading" (older `diffusers` default) starts
        the grid at 0, t = (steps−1)·T/steps, …, 0, and so begins below the noisiest level."""
        T = self.num_train_steps
        if sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {sampler!r} (known: {', '.join(SAMPLERS)})")
        if sampler == "ddpm":
            if steps is not None and int(steps) != T:
                raise ValueError(f"the ddpm sampler runs all {T} training steps; got steps={steps} "
                                 "(use sampler='ddim' for fewer)")
            ts = list(range(T - 1, -1, -1))
        else:
            steps = 10 if steps is None else int(steps)
            if not 1 <= steps <= T:
                raise ValueError(f"ddim steps must be in 1…{T}, got {steps}")
            if spacing == "trailing":
                ts = [int(round(T - i * T / steps)) - 1 for i in range(steps)]
            elif spacing == "leading":
                ratio = T // steps
                ts = [i * ratio for i in range(steps - 1, -1, -1)]
            else:
                raise ValueError(f"unknown timestep spacing {spacing!r} (known: {', '.join(SPACINGS)})")
        return list(zip(ts, ts[1:] + [-1]))

    def ddim_step(self, eps: torch.Tensor, t: int, t_prev: int, x_t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Deterministic DDIM (eta = 0): x_prev = √ᾱ_prev x̂₀ + √(1−ᾱ_prev) ε̂. Returns (x_prev, x̂₀).
        As in `diffusers` (use_clipped_model_output=False), ε̂ is the network's, not recomputed
        from the clipped x̂₀."""
        x0 = self.predict_x0(x_t, eps, t)
        a_prev = self._abar(t_prev, x_t)
        return a_prev.sqrt() * x0 + (1.0 - a_prev).sqrt() * eps, x0

    def ddpm_step(self, eps: torch.Tensor, t: int, x_t: torch.Tensor,
                  generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Ancestral DDPM step from t to t−1: the mean of q(x_{t−1} | x_t, x̂₀) plus noise of the
        "fixed small" variance β̃_t = (1−ᾱ_{t−1})/(1−ᾱ_t) β_t (none at t = 0). Returns (x_prev, x̂₀)."""
        a_t, a_prev = self._abar(t, x_t), self._abar(t - 1, x_t)
        alpha_t = a_t / a_prev
        beta_t = 1.0 - alpha_t
        x0 = self.predict_x0(x_t, eps, t)
        mean = (a_prev.sqrt() * beta_t / (1.0 - a_t)) * x0 + (alpha_t.sqrt() * (1.0 - a_prev) / (1.0 - a_t)) * x_t
        if t == 0:
            return mean, x0
        var = ((1.0 - a_prev) / (1.0 - a_t) * beta_t).clamp_min(1e-20)
        z = torch.randn(x_t.shape, generator=generator, dtype=x_t.dtype, device=x_t.device)
        return mean + var.sqrt() * z, x0


# -- noise network ------------------------------------------------------------------------------
class SinusoidalPosEmb(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        half = self.dim // 2
        step = -math.log(10000.0) / max(half - 1, 1)
        freqs = torch.exp(torch.arange(half, device=t.device, dtype=torch.float32) * step)
        arg = t.float()[:, None] * freqs[None]
        return torch.cat([arg.sin(), arg.cos()], dim=-1)


class Conv1dBlock(nn.Sequential):
    """Conv1d → GroupNorm → Mish."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, n_groups: int):
        super().__init__(nn.Conv1d(c_in, c_out, kernel_size, padding=kernel_size // 2),
                         nn.GroupNorm(n_groups, c_out), nn.Mish())


class CondResBlock1d(nn.Module):
    """Two conv blocks with FiLM (per-channel scale and bias from the condition) between them,
    and a residual connection (1×1 conv where the channel count changes)."""

    def __init__(self, c_in: int, c_out: int, cond_dim: int, kernel_size: int, n_groups: int):
        super().__init__()
        self.block1 = Conv1dBlock(c_in, c_out, kernel_size, n_groups)
        self.block2 = Conv1dBlock(c_out, c_out, kernel_size, n_groups)
        self.film = nn.Sequential(nn.Mish(), nn.Linear(cond_dim, 2 * c_out))
        self.residual = nn.Conv1d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        h = self.block1(x)
        scale, bias = self.film(cond).unsqueeze(-1).chunk(2, dim=1)
        h = self.block2(scale * h + bias)
        return h + self.residual(x)


class ConditionalUnet1D(nn.Module):
    """Noise predictor over (B, act_dim, horizon). Level i works at `down_dims[i]` channels and
    length horizon / 2^i; each level but the deepest is halved by a stride-2 conv on the way down
    and doubled by a transposed conv on the way up, where its skip connection is concatenated."""

    def __init__(self, act_dim: int, cond_dim: int, down_dims: list[int], step_embed_dim: int,
                 kernel_size: int, n_groups: int):
        super().__init__()
        e = step_embed_dim
        self.step_encoder = nn.Sequential(SinusoidalPosEmb(e), nn.Linear(e, 4 * e), nn.Mish(), nn.Linear(4 * e, e))
        c = step_embed_dim + cond_dim
        dims = list(down_dims)

        def res(a, b):
            return CondResBlock1d(a, b, c, kernel_size, n_groups)

        self.down = nn.ModuleList()
        for i, d in enumerate(dims):
            self.down.append(nn.ModuleList([res(act_dim if i == 0 else dims[i - 1], d), res(d, d)]))
        self.downsample = nn.ModuleList([nn.Conv1d(d, d, 3, stride=2, padding=1) for d in dims[:-1]])
        self.mid = nn.ModuleList([res(dims[-1], dims[-1]), res(dims[-1], dims[-1])])
        self.upsample = nn.ModuleList()
        self.up = nn.ModuleList()
        for i in reversed(range(len(dims) - 1)):  # deepest-but-one level first
            self.upsample.append(nn.ConvTranspose1d(dims[i + 1], dims[i + 1], 4, stride=2, padding=1))
            self.up.append(nn.ModuleList([res(dims[i + 1] + dims[i], dims[i]), res(dims[i], dims[i])]))
        self.final = nn.Sequential(Conv1dBlock(dims[0], dims[0], kernel_size, n_groups), nn.Conv1d(dims[0], act_dim, 1))

    def forward(self, x: torch.Tensor, t: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
        cond = torch.cat([self.step_encoder(t), obs], dim=-1)
        skips = []
        for i, (r1, r2) in enumerate(self.down):
            x = r2(r1(x, cond), cond)
            if i < len(self.downsample):
                skips.append(x)
                x = self.downsample[i](x)
        for r in self.mid:
            x = r(x, cond)
        for up, (r1, r2) in zip(self.upsample, self.up):
            x = torch.cat([up(x), skips.pop()], dim=1)
            x = r2(r1(x, cond), cond)
        return self.final(x)


# -- the policy ---------------------------------------------------------------------------------
@register
class DiffusionPolicy(ChunkModel):
    """Diffusion policy over action chunks; see the module docstring.

    Config: `down_dims` (UNet channels per level; horizon must be divisible by
    2^(len(down_dims)−1)), `kernel_size` (odd), `n_groups` (GroupNorm groups, dividing every
    entry of down_dims), `step_embed_dim` (diffusion-step embedding size, even),
    `num_train_steps` (DDPM steps T), `clip_sample` (clip x̂₀ to [−1, 1] while sampling)."""

    kind = "diffusion"
    stages = ("policy",)

    def __init__(self, obs_dim: int, act_dim: int, horizon: int, down_dims=(64, 128, 256), kernel_size: int = 5,
                 n_groups: int = 8, step_embed_dim: int = 64, num_train_steps: int = 100, clip_sample: bool = True):
        down_dims = [int(d) for d in down_dims]
        cfg = dict(down_dims=down_dims, kernel_size=int(kernel_size), n_groups=int(n_groups),
                   step_embed_dim=int(step_embed_dim), num_train_steps=int(num_train_steps),
                   clip_sample=bool(clip_sample))
        super().__init__(obs_dim, act_dim, horizon, **cfg)
        self._check(**cfg)
        self.scheduler = NoiseScheduler(cfg["num_train_steps"], cfg["clip_sample"])
        self.net = ConditionalUnet1D(self.act_dim, self.obs_dim, down_dims, cfg["step_embed_dim"],
                                     cfg["kernel_size"], cfg["n_groups"])

    def _check(self, down_dims, kernel_size, n_groups, step_embed_dim, num_train_steps, clip_sample):
        if self.obs_dim < 1 or self.act_dim < 1 or self.horizon < 1:
            raise ValueError(f"obs_dim, act_dim and horizon must be positive, got "
                             f"{self.obs_dim}, {self.act_dim}, {self.horizon}")
        if not down_dims or any(d < 1 for d in down_dims):
            raise ValueError(f"down_dims must be a non-empty list of positive channel counts, got {down_dims}")
        factor = 2 ** (len(down_dims) - 1)
        if self.horizon % factor:
            raise ValueError(f"horizon {self.horizon} is not divisible by 2**(len(down_dims)-1) = {factor} "
                             f"(down_dims {down_dims}); use fewer levels or another horizon")
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be a positive odd number, got {kernel_size}")
        if n_groups < 1 or any(d % n_groups for d in down_dims):
            raise ValueError(f"n_groups {n_groups} must divide every entry of down_dims {down_dims}")
        if step_embed_dim < 2 or step_embed_dim % 2:
            raise ValueError(f"step_embed_dim must be even and at least 2, got {step_embed_dim}")
        if num_train_steps < 1:
            raise ValueError(f"num_train_steps must be at least 1, got {num_train_steps}")

    def _eps(self, x: torch.Tensor, t, obs: torch.Tensor) -> torch.Tensor:
        """Noise prediction for x (B, horizon, act_dim) at step(s) t (int or (B,) tensor)."""
        if not isinstance(t, torch.Tensor):
            t = torch.full((x.shape[0],), int(t), device=x.device, dtype=torch.long)
        return self.net(x.transpose(1, 2), t, obs).transpose(1, 2)

    def _check_obs(self, obs: torch.Tensor) -> None:
        if obs.dim() != 2 or obs.shape[1] != self.obs_dim:
            raise ValueError(f"obs must have shape (B, {self.obs_dim}), got {tuple(obs.shape)}")

    def loss(self, obs: torch.Tensor, actions: torch.Tensor, stage: str = "policy") -> tuple[torch.Tensor, dict]:
        if stage != "policy":
            raise ValueError(f"the diffusion policy has only the 'policy' stage, got {stage!r}")
        self._check_obs(obs)
        if actions.shape[1:] != (self.horizon, self.act_dim) or actions.shape[0] != obs.shape[0]:
            raise ValueError(f"actions must have shape ({obs.shape[0]}, {self.horizon}, {self.act_dim}), "
                             f"got {tuple(actions.shape)}")
        noise = torch.randn_like(actions)
        t = torch.randint(0, self.scheduler.num_train_steps, (actions.shape[0],), device=actions.device)
        x_t = self.scheduler.add_noise(actions, noise, t)
        loss = F.mse_loss(self._eps(x_t, t, obs), noise)
        return loss, {"mse": float(loss.detach())}

    @torch.no_grad()
    def predict(self, obs: torch.Tensor, sampler: str = "ddim", steps: int | None = None,
                generator: torch.Generator | None = None, seed: int | None = None,
                noise: torch.Tensor | None = None, guide: Callable[[torch.Tensor], torch.Tensor] | None = None,
                guide_scale: float = 0.0, spacing: str = "trailing") -> torch.Tensor:
        """Sample chunks (B, horizon, act_dim) in [−1, 1] for obs (B, obs_dim).

        sampler: "ddim" (deterministic, `steps` evenly spaced steps, default 10, `spacing`
        "trailing" or "leading", see `NoiseScheduler.timesteps`) or "ddpm" (all
        `num_train_steps`, stochastic). The initial noise is `noise` if given, else drawn from
        `generator` (or a fresh one seeded with `seed`); with DDIM the result is a function of
        the initial noise alone. `guide(x̂₀) → cost` ((B,) or scalar) with `guide_scale` > 0
        steers the sample down the cost's gradient (see the module docstring)."""
        obs = torch.as_tensor(obs)
        self._check_obs(obs)
        pairs = self.scheduler.timesteps(sampler, steps, spacing)  # validates sampler/steps/spacing
        if guide is not None and not callable(guide):
            raise ValueError("guide must be a callable mapping x̂₀ (B, horizon, act_dim) to a cost")
        guide_scale = float(guide_scale)
        if not math.isfinite(guide_scale) or guide_scale < 0:
            raise ValueError(f"guide_scale must be a finite non-negative number, got {guide_scale}")
        param = next(self.parameters())
        obs = obs.to(device=param.device, dtype=param.dtype)
        shape = (obs.shape[0], self.horizon, self.act_dim)
        if generator is None and seed is not None:
            generator = torch.Generator(device=param.device).manual_seed(int(seed))
        if noise is not None:
            if tuple(noise.shape) != shape:
                raise ValueError(f"noise must have shape {shape}, got {tuple(noise.shape)}")
            x = noise.to(device=param.device, dtype=param.dtype).clone()
        else:
            x = torch.randn(shape, generator=generator, device=param.device, dtype=param.dtype)
        guided = guide is not None and guide_scale > 0
        for t, t_prev in pairs:
            grad = None
            if guided:
                with torch.enable_grad():
                    xg = x.detach().requires_grad_(True)
                    eps = self._eps(xg, t, obs)
                    cost = guide(self.scheduler.predict_x0(xg, eps, t))
                    cost = torch.as_tensor(cost).sum()
                    grad, = torch.autograd.grad(cost, xg, allow_unused=True)
                eps = eps.detach()
            else:
                eps = self._eps(x, t, obs)
            if sampler == "ddim":
                x, _ = self.scheduler.ddim_step(eps, t, t_prev, x)
            else:
                x, _ = self.scheduler.ddpm_step(eps, t, x, generator)
            if grad is not None:
                x = x - guide_scale * grad
        return x.clamp(-1.0, 1.0)
