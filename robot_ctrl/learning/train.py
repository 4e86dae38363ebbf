"""Training (`robot-ctrl train`): any registered policy on any dataset.

Runs the model's stages in order (CARP: tokenizer, then policy; the others: policy) with AdamW,
a linear warm-up and cosine decay per stage, and an exponential moving average (EMA) of the
weights whose copy is what the saved policy uses. Every `ckpt_every` steps it writes

    <out>/train_state.pt      everything needed to resume (model, EMA, optimizer, stage, step, RNG)
    <out>/policy.safetensors  the inference checkpoint (EMA weights, config, normalization)

and at the end `<out>/train_log.json` (loss curves). `resume=True` continues from
`train_state.pt` where it stopped.
"""
from __future__ import annotations

import copy
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from robot_ctrl.learning.base import MODELS, Normalizer, Policy, PolicySpec
from robot_ctrl.learning.dataset import Dataset, load_dataset


CONSTANT_SPAN = 1e-6  # an action dimension whose range in the data is below this is a constant


@dataclass
class TrainConfig:
    policy: str = "carp"
    horizon: int = 16
    obs_horizon: int = 1
    action_steps: int = 8
    steps: dict = field(default_factory=lambda: {"tokenizer": 3000, "policy": 6000})
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup: int = 200
    ema: float = 0.995
    seed: int = 0
    ckpt_every: int = 1000
    threads: int = 2
    frame: str = "world"  # "world": absolute; "hand": hand-centred; "task": planar task frame (robot_ctrl.learning.frames)
    object_rotation: bool = True  # task frame: the object's rotation among the features (False: left out)
    model: dict = field(default_factory=dict)


def _lr_factor(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))


def training_windows(ds: Dataset, cfg: TrainConfig):
    """The frame of `cfg` and every training sample in it: (frame or None, observation windows
    (M, obs_horizon·model_obs_size), action chunks (M, horizon, act_size))."""
    from robot_ctrl.learning.frames import frame_for_task

    if cfg.frame not in ("world", "hand", "task"):
        raise ValueError(f"frame must be 'world', 'hand' or 'task', got '{cfg.frame}'")
    if not isinstance(cfg.object_rotation, bool):
        raise ValueError(f"object_rotation must be true or false, got {cfg.object_rotation!r}")
    if not cfg.object_rotation and cfg.frame != "task":
        raise ValueError(f"object_rotation: false needs frame: task, got frame: {cfg.frame}")
    frame = frame_for_task(ds.task, ds.obs_size, cfg.frame, cfg.object_rotation) if cfg.frame != "world" else None
    if frame is not None:
        frame.check(ds.obs_size, ds.act_size)
    obs_w, act_w = ds.windows(cfg.horizon, cfg.obs_horizon)
    if frame is not None:
        act_w = frame.to_relative(act_w, obs_w, ds.obs_size)
        obs_w = frame.features(obs_w, ds.obs_size)
    return frame, obs_w, act_w


def build_policy(ds: Dataset, cfg: TrainConfig, windows=None) -> Policy:
    """A fresh policy for `ds`: normalizers fitted on the training samples (in the policy's
    frame), constant action dimensions found. `windows`: `training_windows(ds, cfg)` if
    already computed."""
    if cfg.policy not in MODELS:
        raise ValueError(f"unknown policy '{cfg.policy}' (known: {', '.join(sorted(MODELS))})")
    if cfg.action_steps < 1 or cfg.action_steps > cfg.horizon:
        raise ValueError(f"action_steps must be in [1, horizon={cfg.horizon}], got {cfg.action_steps}")
    frame, obs_w, act_w = windows if windows is not None else training_windows(ds, cfg)
    obs_norm = Normalizer.fit(obs_w)
    flat = act_w.reshape(-1, ds.act_size).astype(np.float64)
    lo, hi = flat.min(0), flat.max(0)
    active = np.flatnonzero(hi - lo > CONSTANT_SPAN)  # constant dimensions are filled in, not modelled
    if len(active) == 0:
        raise ValueError(f"{ds.path}: every action dimension is constant; there is nothing to learn")
    act_norm = Normalizer(lo[active], hi[active])
    model = MODELS[cfg.policy](obs_w.shape[1], len(active), cfg.horizon, **cfg.model)
    spec = PolicySpec(task=ds.task, obs_size=ds.obs_size, act_size=ds.act_size, obs_horizon=cfg.obs_horizon,
                      horizon=cfg.horizon, action_steps=cfg.action_steps, dt=ds.dt,
                      extra={"dataset": str(ds.path), "episodes": ds.n_episodes, "train": asdict(cfg)},
                      frame=frame.to_dict() if frame is not None else None)
    return Policy(model, spec, obs_norm, act_norm, active, 0.5 * (lo + hi))


def train(dataset: str | Path | Dataset, out: str | Path, cfg: TrainConfig | None = None, resume: bool = False,
          progress: bool = True, log_every: int = 50, stop_after: int | None = None) -> dict:
    """Train (see the module doc). `stop_after`: stop after that many optimizer steps in this
    call, with a resumable checkpoint written (time-boxed training; `resume=True` goes on)."""
    cfg = cfg or TrainConfig()
    torch.set_num_threads(max(1, int(cfg.threads)))
    ds = dataset if isinstance(dataset, Dataset) else load_dataset(dataset)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    windows = training_windows(ds, cfg)
    policy = build_policy(ds, cfg, windows)
    model = policy.model.train()
    ema = copy.deepcopy(model).eval()
    for p in ema.parameters():
        p.requires_grad_(False)

    _, obs_w, act_w = windows
    X = torch.as_tensor(policy.obs_norm.normalize(obs_w), dtype=torch.float32)
    Y = torch.as_tensor(policy.act_norm.normalize(act_w[..., policy.active]), dtype=torch.float32)
    n = len(X)

    stages = list(model.stages)
    for s in stages:
        if int(cfg.steps.get(s, 0)) <= 0:
            raise ValueError(f"steps for stage '{s}' must be positive (got {cfg.steps})")
    state_path = out / "train_state.pt"
    log: dict = {s: [] for s in stages}
    stage_i, step, opt_state = 0, 0, None
    if resume and state_path.exists():
        st = torch.load(state_path, weights_only=False)
        model.load_state_dict(st["model"])
        ema.load_state_dict(st["ema"])
        stage_i, step, opt_state, log = st["stage_i"], st["step"], st["opt"], st["log"]
        rng.bit_generator.state = st["rng"]
        torch.set_rng_state(st["torch_rng"])

    ema_policy = Policy(ema, policy.spec, policy.obs_norm, policy.act_norm, policy.active, policy.fill)

    def save_state(stage_i, step, opt):
        tmp = state_path.with_suffix(".tmp")
        torch.save({"model": model.state_dict(), "ema": ema.state_dict(), "stage_i": stage_i, "step": step,
                    "opt": opt.state_dict() if opt is not None else None, "log": log, "rng": rng.bit_generator.state,
                    "torch_rng": torch.get_rng_state(), "config": asdict(cfg)}, tmp)
        tmp.replace(state_path)
        ema_policy.save(out / "policy.safetensors")

    t0 = time.perf_counter()
    done_here, skipped = 0, 0
    for si in range(stage_i, len(stages)):
        stage = stages[si]
        total = int(cfg.steps[stage])
        params = [p for p in model.stage_parameters(stage) if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        if opt_state is not None and si == stage_i:
            opt.load_state_dict(opt_state)
        start = step if si == stage_i else 0
        if start == 0:
            # a new stage restarts the average from the weights (CARP's policy stage then sees
            # the very tokenizer it was trained with)
            ema.load_state_dict(model.state_dict())
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=total, initial=start, desc=f"train {cfg.policy}/{stage}", unit="step")
        for k in range(start, total):
            for g in opt.param_groups:
                g["lr"] = cfg.lr * _lr_factor(k, total, cfg.warmup)
            idx = torch.as_tensor(rng.integers(0, n, cfg.batch_size))
            loss, info = model.loss(X[idx], Y[idx], stage)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"{stage} loss became {loss.item()} at step {k}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            gnorm = torch.nn.utils.clip_grad_norm_(params, 1.0)
            if not torch.isfinite(gnorm):  # one bad batch must not poison the optimizer state
                skipped += 1
                if skipped > max(10, total // 20):
                    raise FloatingPointError(f"{stage}: non-finite gradients in {skipped} steps")
                continue
            opt.step()
            with torch.no_grad():
                d = cfg.ema if k >= cfg.warmup else 0.0
                for pe, pm in zip(ema.parameters(), model.parameters()):
                    pe.mul_(d).add_(pm.detach(), alpha=1.0 - d)
                for be, bm in zip(ema.buffers(), model.buffers()):
                    be.copy_(bm)
            if k % log_every == 0 or k == total - 1:
                log[stage].append({"step": k, "loss": float(loss.item()), **info})
                if bar:
                    bar.set_postfix(loss=f"{loss.item():.4f}")
            if bar:
                bar.update(1)
            done_here += 1
            if stop_after is not None and done_here >= stop_after and (k + 1 < total or si + 1 < len(stages)):
                if k + 1 < total:
                    save_state(si, k + 1, opt)
                else:
                    save_state(si + 1, 0, None)
                if bar:
                    bar.close()
                return {"stopped": True, "stage": stage, "step": k + 1, "checkpoint": str(out / "policy.safetensors")}
            if (k + 1) % cfg.ckpt_every == 0 and k + 1 < total:
                save_state(si, k + 1, opt)
        if bar:
            bar.close()
        if si + 1 < len(stages):
            save_state(si + 1, 0, None)
        opt_state = None
    save_state(len(stages), 0, None)  # finished: the checkpoint and a state that resumes to nothing
    summary = {"policy": cfg.policy, "task": ds.task, "episodes": ds.n_episodes, "samples": n,
               "parameters": sum(p.numel() for p in model.parameters()),
               "seconds": time.perf_counter() - t0, "skipped_steps": skipped,
               "final_loss": {s: (log[s][-1]["loss"] if log[s] else None) for s in stages},
               "first_loss": {s: (log[s][0]["loss"] if log[s] else None) for s in stages},
               "checkpoint": str(out / "policy.safetensors")}
    (out / "train_log.json").write_text(json.dumps({"summary": summary, "log": log, "config": asdict(cfg)}, indent=1))
    return summary
