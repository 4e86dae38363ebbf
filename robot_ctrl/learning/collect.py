"""Scripted demonstrations → a dataset (`robot-ctrl collect`).

Labels follow DART (Laskey et al. 2017): the executed action is the expert's with noise, the
recorded label is the expert's clean action for the same state, so the data covers the states
around the expert's path and still teaches the clean correction back to it. Only successful
episodes are kept; attempts are counted.

`disturb` (a probability per episode): in that share of the episodes, the task's object is
knocked once to a nearby place at a random step (`TaskAdapter.disturb`; push and
pick-and-place shove the resting block 1–3 cm and turn it), so the demonstrations show the
expert re-approaching, a state the noise alone rarely reaches. The episode count stays the
number of demonstrations.
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
    disturbed: int = 0  # kept episodes with a knock (see `disturb`)


def collect(task: str, episodes: int, out: str | Path, noise: float | None = None, seed: int = 0,
            max_attempts: int | None = None, progress: bool = True, append: bool = False,
            disturb: float = 0.0) -> CollectReport:
    if episodes < 1:
        raise ValueError(f"episodes must be at least 1, got {episodes}")
    if not (np.isfinite(disturb) and 0.0 <= disturb <= 1.0):
        raise ValueError(f"disturb must be a probability in [0, 1], got {disturb}")
    rng = np.random.default_rng([seed, 7])  # the disturbances' own stream: the expert's noise stays as it was
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
    attempts, lengths, disturbed = 0, [], 0
    try:
        while len(lengths) < episodes and attempts < max_attempts:
            obs = adapter.reset(seed=seed + attempts)
            attempts += 1
            O, A = [], []
            # one knock, at a random step of the first two thirds of the horizon (-1: none)
            knock = int(rng.integers(5, max(6, 2 * adapter.horizon // 3))) if rng.random() < disturb else -1
            knocked = False
            while True:
                if len(O) >= knock >= 0 and not knocked:  # (refused now: tried again next step)
                    moved = adapter.disturb(rng)
                    if moved is not None:
                        obs, knocked = moved, True
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
                disturbed += knocked
                if bar:
                    bar.update(1)
    finally:
        if bar:
            bar.close()
        adapter.close()
    if not lengths:
        raise RuntimeError(f"the expert of {task} did not succeed once in {attempts} attempts")
    return CollectReport(writer.close(), attempts, len(lengths), float(np.mean(lengths)), disturbed)
