"""Evaluation (`robot-ctrl eval`): roll a trained policy out for N episodes.

The policy is queried every `action_steps` steps (receding horizon: the first `action_steps`
actions of each chunk are executed, then a new chunk is predicted from the newest
observation). With `ensemble` (m ≥ 0, ACT's temporal ensembling, Zhao et al. 2023) every
prediction covering a step is kept, and the executed action is their weighted mean with weights
exp(−m·i), i = 0 for the oldest; rotations are averaged as 6-D vectors (the task
orthonormalizes them). Reports the success rate with a 95 % Wilson interval, episode lengths and the
per-chunk inference latency (p50/p99), and writes `eval.json` and `eval.png`.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from robot_ctrl.learning.base import Policy, load_policy
from robot_ctrl.learning.envs import make_task


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a success rate."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def rollout(policy: Policy, adapter, seed: int, action_steps: int, predict_kwargs: dict | None = None,
            ensemble: float | None = None):
    obs = adapter.reset(seed=seed)
    policy.reset()
    latencies, steps, success = [], 0, False
    held: list[tuple[int, np.ndarray]] = []  # ensemble: (first step, chunk actions) of the live predictions
    while True:
        t0 = time.perf_counter()
        chunk = policy.act(obs, **(predict_kwargs or {}))
        latencies.append(time.perf_counter() - t0)
        if ensemble is not None:
            held = [(t, c) for t, c in held if steps - t < len(c)] + [(steps, np.asarray(chunk.actions, float))]
        for a in chunk.actions[:action_steps]:
            if ensemble is not None:  # oldest first: i = 0 gets weight 1
                preds = np.stack([c[steps - t] for t, c in held if steps - t < len(c)])
                w = np.exp(-ensemble * np.arange(len(preds)))
                a = (w[:, None] * preds).sum(0) / w.sum()
            r = adapter.step(a)
            obs, steps = r.obs, steps + 1
            success = success or r.success
            if r.done:
                return success, steps, latencies


def evaluate(policy: str | Path | Policy, task: str | None = None, episodes: int = 50, seed: int = 10_000,
             out: str | Path | None = None, action_steps: int | None = None, progress: bool = True,
             predict_kwargs: dict | None = None, label: str | None = None, task_kwargs: dict | None = None,
             ensemble: float | None = None) -> dict:
    if episodes < 1:
        raise ValueError(f"episodes must be at least 1, got {episodes}")
    if ensemble is not None and not (np.isfinite(ensemble) and ensemble >= 0):
        raise ValueError(f"ensemble (temporal ensembling's m) must be a finite number ≥ 0, got {ensemble}")
    if isinstance(policy, Policy):
        task = task or policy.spec.task
        adapter = make_task(task, **(task_kwargs or {}))
        ckpt = None
    else:
        ckpt = str(policy)
        from robot_ctrl.learning.base import read_checkpoint

        meta, _ = read_checkpoint(policy)
        task = task or json.loads(meta.get("spec", "{}")).get("task")
        adapter = make_task(task, **(task_kwargs or {}))
        policy = load_policy(policy, expect_obs_size=adapter.obs_size, expect_act_size=adapter.act_size)
    k = int(action_steps or policy.spec.action_steps)
    if not 1 <= k <= policy.spec.horizon:
        raise ValueError(f"action_steps must be in [1, {policy.spec.horizon}], got {k}")
    results, lengths, lat = [], [], []
    it = range(episodes)
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc=f"eval {policy.kind} on {task}", unit="ep")
    try:
        for ep in it:
            s, n, l = rollout(policy, adapter, seed + ep, k, predict_kwargs, ensemble)
            results.append(bool(s))
            lengths.append(n)
            lat.extend(l)
    finally:
        adapter.close()
    wins = int(sum(results))
    lat_ms = 1e3 * np.array(lat)
    report = {
        "policy": policy.kind, "label": label or policy.kind, "task": task, "checkpoint": ckpt,
        "episodes": episodes, "successes": wins, "success_rate": wins / episodes,
        "success_ci95": list(wilson(wins, episodes)), "mean_length": float(np.mean(lengths)),
        "action_steps": k, "ensemble": ensemble, "chunks": len(lat),
        "chunk_ms_p50": float(np.percentile(lat_ms, 50)), "chunk_ms_p99": float(np.percentile(lat_ms, 99)),
        "per_episode": results,
    }
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "eval.json").write_text(json.dumps(report, indent=1))
        plot_eval(report, lat_ms, out / "eval.png")
    return report


def plot_eval(report: dict, lat_ms: np.ndarray, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(10, 3.6))
    res = np.array(report["per_episode"], float)
    ax[0].plot(np.arange(1, len(res) + 1), np.cumsum(res) / np.arange(1, len(res) + 1), lw=2)
    lo, hi = report["success_ci95"]
    ax[0].axhspan(lo, hi, alpha=0.2, label="95 % CI (all episodes)")
    ax[0].set_ylim(0, 1.02)
    ax[0].set_xlabel("episode")
    ax[0].set_ylabel("running success rate")
    ax[0].set_title(f"{report['label']} on {report['task']}: {report['successes']}/{report['episodes']}")
    ax[0].legend(loc="lower right")
    ax[1].hist(lat_ms, bins=40)
    ax[1].axvline(report["chunk_ms_p50"], color="k", ls="--", label=f"p50 {report['chunk_ms_p50']:.2f} ms")
    ax[1].axvline(report["chunk_ms_p99"], color="r", ls=":", label=f"p99 {report['chunk_ms_p99']:.2f} ms")
    ax[1].set_xlabel("chunk inference (ms)")
    ax[1].set_ylabel("chunks")
    ax[1].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
