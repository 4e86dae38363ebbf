"""Scripted demonstrations → a dataset (`robot-ctrl collect`).

Labels follow DART (Laskey et al. 2017): the executed action is the expert's with noise, the
recorded label is the expert's clean action for the same state, so the data covers the states
around the expert's path and still teaches the clean correction back to it. Only successful
episodes are kept; attempts are counted.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from robot_ctrl.learning.dataset import Dataset, DatasetWriter
from robot_ctrl.learning.envs import make_task


@dataclass
class CollectReport:
    dataset: Dataset
    attempts: int
    kept: int
    mean_length: float


def collect(task: str, episodes: int, out: str | Path, noise: float | None = None, seed: int = 0,
            max_attempts: int | None = None, progress: bool = True, append: bool = False) -> CollectReport:
    if episodes < 1:
        raise ValueError(f"episodes must be at least 1, got {episodes}")
    adapter = make_task(task)
    noise = adapter.default_noise if noise is None else float(noise)
    if not (np.isfinite(noise) and noise >= 0):
        raise ValueError(f"noise must be a finite number ≥ 0, got {noise}")
    writer = DatasetWriter(out, task, adapter.obs_size, adapter.act_size, adapter.dt, source="scripted",
                           append=append)
    max_attempts = max_attempts or 3 * episodes
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=episodes, desc=f"collect {task}", unit="ep")
    attempts, lengths = 0, []
    try:
        while len(lengths) < episodes and attempts < max_attempts:
            obs = adapter.reset(seed=seed + attempts)
            attempts += 1
            O, A = [], []
            while True:
                label = adapter.expert(0.0)
                act = adapter.expert(noise) if noise > 0 else label
                O.append(obs)
                A.append(label)
                r = adapter.step(act)
                obs = r.obs
                if r.done:
                    break
            if r.success:
                writer.add_episode(np.array(O), np.array(A), True)
                lengths.append(len(O))
                if bar:
                    bar.update(1)
    finally:
        if bar:
            bar.close()
        adapter.close()
    if not lengths:
        raise RuntimeError(f"the expert of {task} did not succeed once in {attempts} attempts")
    return CollectReport(writer.close(), attempts, len(lengths), float(np.mean(lengths)))
