"""`robot-ctrl bench policy`: CARP against the diffusion baseline, chunk inference on this machine.

Both models are timed in one run, interleaved call by call (CARP, DDIM-10, DDPM-100, MLP, then
again), so machine noise hits all of them alike; ratios are taken within the run. Batch 1, one
torch thread, the whole `Policy.act` (normalization, model, unnormalization). By default the
committed pick-and-place checkpoints (checkpoints/carp_pick_place.safetensors,
checkpoints/diffusion_pick_place.safetensors); where one is missing, a model built from the
training preset (config/policies/*.yaml) at the pick-and-place sizes (latency does not depend
on the weights).
"""
from __future__ import annotations

import time

import numpy as np
import torch

from robot_ctrl.learning.base import MODELS, Normalizer, Policy, PolicySpec, load_policy

OBS_SIZE, ACT_SIZE = 2 * 9 + 10 + 11, 4  # pick-and-place: hand position and gripper vary


def _preset_policy(kind: str) -> Policy:
    from robot_ctrl.learning.presets import load_preset

    cfg = load_preset(kind)
    torch.manual_seed(0)
    model = MODELS[kind](OBS_SIZE * cfg.obs_horizon, ACT_SIZE, cfg.horizon, **cfg.model)
    spec = PolicySpec(task="pick_place", obs_size=OBS_SIZE, act_size=ACT_SIZE, obs_horizon=cfg.obs_horizon,
                      horizon=cfg.horizon, action_steps=cfg.action_steps)  # (all dimensions modelled)
    one = np.ones(OBS_SIZE * cfg.obs_horizon)
    return Policy(model, spec, Normalizer(-one, one), Normalizer(-np.ones(ACT_SIZE), np.ones(ACT_SIZE)))


def bench_policy(carp: str | None = None, diffusion: str | None = None, calls: int = 50, threads: int = 1) -> dict:
    if calls < 3:
        raise ValueError(f"calls must be at least 3, got {calls}")
    from robot_ctrl.paths import checkpoint_path

    for kind in ("carp", "diffusion"):
        default = checkpoint_path(f"{kind}_pick_place.safetensors")
        if kind == "carp" and carp is None and default.is_file():
            carp = str(default)
        if kind == "diffusion" and diffusion is None and default.is_file():
            diffusion = str(default)
    prev = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        pc = load_policy(carp) if carp else _preset_policy("carp")
        pd = load_policy(diffusion) if diffusion else _preset_policy("diffusion")
        pm = _preset_policy("mlp")
        if pc.spec.obs_size != pd.spec.obs_size:
            raise ValueError(f"the CARP and diffusion checkpoints take different observations "
                             f"({pc.spec.obs_size} vs {pd.spec.obs_size})")
        rng = np.random.default_rng(0)
        runs = {"carp": (pc, {}), "ddim10": (pd, {"sampler": "ddim", "steps": 10}),
                "ddpm100": (pd, {"sampler": "ddpm"}), "mlp": (pm, {})}
        times: dict[str, list[float]] = {k: [] for k in runs}
        for i in range(calls + 2):  # two warm-up rounds
            obs = rng.uniform(-0.5, 0.5, pc.spec.obs_size)
            for name, (pol, kw) in runs.items():
                pol.reset()
                t0 = time.perf_counter()
                chunk = pol.act(obs, **kw)
                dt = time.perf_counter() - t0
                if not np.all(np.isfinite(chunk.actions)):
                    raise FloatingPointError(f"{name} produced a non-finite chunk")
                if i >= 2:
                    times[name].append(dt * 1e3)
    finally:
        torch.set_num_threads(prev)
    p50 = {k: float(np.percentile(v, 50)) for k, v in times.items()}
    p99 = {k: float(np.percentile(v, 99)) for k, v in times.items()}
    n_params = {k: int(sum(p.numel() for p in pol.model.parameters())) for k, (pol, _) in runs.items()}
    return {
        "benchmark": "policy",
        "carp_chunk_ms_p50": p50["carp"], "carp_chunk_ms_p99": p99["carp"],
        "ddim10_chunk_ms_p50": p50["ddim10"], "ddim10_chunk_ms_p99": p99["ddim10"],
        "ddpm100_chunk_ms_p50": p50["ddpm100"], "ddpm100_chunk_ms_p99": p99["ddpm100"],
        "mlp_chunk_ms_p50": p50["mlp"],
        "speedup_vs_ddpm100": p50["ddpm100"] / p50["carp"], "speedup_vs_ddim10": p50["ddim10"] / p50["carp"],
        "carp_params": n_params["carp"], "diffusion_params": n_params["ddim10"], "mlp_params": n_params["mlp"],
        "carp_checkpoint": carp, "diffusion_checkpoint": diffusion, "calls": calls, "threads": threads,
        "horizon": pc.spec.horizon,
    }
