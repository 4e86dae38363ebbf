"""Replay device: a recorded prompt stream against time, with noise, bias, latency, dropouts.

Timing: the stream's own time is ``stamp − stream[0].stamp``; replay time is
``now − start`` (``start`` defaults to the first poll). A poll at replay time t shows the
last recorded prompt at or before ``t − latency`` (zero-order hold), stamped ``now``; before
the first sample it returns a zero prompt. The last sample is shown for one median sample
interval; then (``loop=False``) zero prompts with status ``"ended"``, or (``loop=True``)
the stream restarts.

Corruption, applied to the twist of each delivered prompt (other forms pass unchanged):
``twist + bias + N(0, diag(noise_std²))``, a fresh noise draw per poll. With probability
``dropout`` per poll no new input arrives: the previous output is repeated with
``fresh = False`` so a `Deadman` downstream trips on long dropouts. ``seed`` makes the
noise and dropouts reproducible for the same poll times.

File format (``save_prompts`` / ``load_prompts``): JSON lines, one `Prompt.to_dict` per
line (keys stamp, mode, twist, position, quaternion, joint_names, joint_positions, gripper,
clutch, intervene, estop).
"""
from __future__ import annotations

import json
from pathlib import Path
from collections.abc import Iterable, Sequence

import numpy as np

from .base import ENDED, NOT_FOUND, Device, DeviceUnavailable, register
from .schema import Prompt


def save_prompts(path: str | Path, prompts: Iterable[Prompt]) -> None:
    """Write prompts as JSON lines."""
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(p.to_dict()) + "\n" for p in prompts)


def load_prompts(path: str | Path) -> list[Prompt]:
    """Read a JSON-lines prompt file; a bad line raises ValueError naming the line."""
    out = []
    with open(path, encoding="utf-8") as f:
        for k, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                out.append(Prompt.from_dict(json.loads(line)))
            except (ValueError, TypeError) as e:
                raise ValueError(f"{path}:{k}: bad prompt: {e}") from None
    return out


def _per_axis(x, name: str) -> np.ndarray:
    """Scalar -> all 6 twist components; (2,) -> (linear, angular); (6,) as is."""
    a = np.asarray(x, dtype=float)
    if a.shape == ():
        a = np.full(6, float(a))
    elif a.shape == (2,):
        a = np.repeat(a, 3)
    elif a.shape != (6,):
        raise ValueError(f"{name}: expected a scalar, (linear, angular) or 6 values, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name}: contains NaN or Inf")
    return a


@register("replay")
class ReplayDevice(Device):
    """Replays prompts (a list, or a JSON-lines path) with configurable corruption.

    Args:
        stream: prompts in time order, or a path to a JSON-lines file.
        noise_std: Gaussian noise std on the twist: scalar, (linear, angular) or (6,).
        bias: constant twist offset, same shapes.
        latency: s; the poll at t shows the recording at t − latency.
        dropout: probability in [0, 1) per poll that no new input arrives.
        seed: seed of the noise/dropout generator.
        start: replay start time (s); default the first poll's `now`.
        loop: restart at the end instead of ending.
        path: a JSON-lines file, instead of `stream` (the node's device_args form).
    """

    def __init__(self, stream: Sequence[Prompt] | str | Path = (), *, noise_std=0.0, bias=0.0,
                 latency: float = 0.0, dropout: float = 0.0, seed: int | None = None,
                 start: float | None = None, loop: bool = False, path: str | Path | None = None, **kwargs):
        super().__init__(**kwargs)
        if path is not None:  # the config form: {"path": "prompts.jsonl"}
            stream = path
        self.noise_std = _per_axis(noise_std, "noise_std")
        if np.any(self.noise_std < 0):
            raise ValueError(f"noise_std: must be >= 0, got {self.noise_std.tolist()}")
        self.bias = _per_axis(bias, "bias")
        if not (np.isfinite(latency) and latency >= 0.0):
            raise ValueError(f"latency: must be >= 0 s, got {latency!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout: must be in [0, 1), got {dropout!r}")
        self.latency, self.dropout, self.seed = float(latency), float(dropout), seed
        self.loop, self._start_arg = bool(loop), start
        self._source = stream
        self.prompts: list[Prompt] = []
        self._times = np.zeros(0)

    def _open(self) -> None:
        src = self._source
        if isinstance(src, (str, Path)):
            try:
                self.prompts = load_prompts(src)
            except FileNotFoundError:
                raise DeviceUnavailable(NOT_FOUND, f"replay: no prompt file at {src}") from None
        else:
            self.prompts = list(src)
        if not self.prompts:
            raise DeviceUnavailable(NOT_FOUND, "replay: the prompt stream is empty")
        stamps = np.array([p.stamp for p in self.prompts])
        if np.any(np.diff(stamps) < 0):
            raise ValueError("stream: prompt stamps must be non-decreasing")
        self._times = stamps - stamps[0]
        # The last sample is shown for one (median) sample interval, then the stream ends;
        # a one-prompt stream is a constant prompt.
        self.period = (float(self._times[-1] + np.median(np.diff(self._times)))
                       if len(stamps) > 1 else np.inf) or np.inf
        self.rng = np.random.default_rng(self.seed)
        self.start = self._start_arg
        self.index = -1  # index of the recorded prompt last shown

    def _poll(self, now: float) -> Prompt:
        if self.start is None:
            self.start = float(now)
        # Draw both random numbers every poll so the sequence depends only on the poll count.
        drop = self.rng.random() < self.dropout
        noise = self.rng.standard_normal(6) * self.noise_std
        if drop:
            self.fresh = False
            return self.last if self.last is not None else self._zero(now)
        self.fresh = True
        t = now - self.start - self.latency
        if self.loop and t >= 0.0:
            t %= self.period
        if not self.loop and t >= self.period:
            self.status = ENDED
            self.fresh = False
            return self._zero(now)
        # 1 ns slack: a poll at a sample's time shows it despite float rounding
        self.index = int(np.searchsorted(self._times, t + 1e-9, side="right")) - 1
        if self.index < 0:  # before the first sample (latency)
            return self._zero(now)
        rec = self.prompts[self.index]
        twist = rec.twist + self.bias + noise if rec.mode == "twist" else rec.twist
        return Prompt(stamp=now, mode=rec.mode, twist=twist, position=rec.position,
                      quaternion=rec.quaternion, joint_names=rec.joint_names,
                      joint_positions=rec.joint_positions, gripper=rec.gripper,
                      clutch=rec.clutch, intervene=rec.intervene, estop=rec.estop)

    @property
    def done(self) -> bool:
        return self.status == ENDED


def scripted_reach_stream(start, targets, speed: float, dt: float, *, gain: float = 2.0,
                          tol: float = 0.005, max_time: float = 30.0, t0: float = 0.0,
                          gripper: float = 1.0) -> list[Prompt]:
    """Twist prompts of a scripted operator reaching `targets` in turn, in straight lines.

    The operator integrates its own command (open loop): ``v = clip(gain · (target − p))``
    with the norm clipped to `speed` (m/s), ``p += v · dt``; the next target starts once
    ``‖target − p‖ < tol`` (or after `max_time` s on one target). Ends with a zero twist.
    """
    p = np.array(start, dtype=float).reshape(3)
    targets = np.atleast_2d(np.asarray(targets, dtype=float))
    if targets.shape[1] != 3:
        raise ValueError(f"targets: expected shape (n, 3), got {targets.shape}")
    if not (speed > 0 and dt > 0 and gain > 0 and tol > 0):
        raise ValueError("speed, dt, gain and tol must all be > 0")
    out, t = [], float(t0)
    for target in targets:
        for _ in range(int(np.ceil(max_time / dt))):
            err = target - p
            if np.linalg.norm(err) < tol:
                break
            v = gain * err
            n = np.linalg.norm(v)
            if n > speed:
                v *= speed / n
            out.append(Prompt(stamp=t, mode="twist", twist=np.concatenate([v, np.zeros(3)]),
                              gripper=gripper))
            p = p + v * dt
            t += dt
    out.append(Prompt(stamp=t, mode="twist", gripper=gripper))
    return out
