"""A reference path through joint waypoints with minimum-jerk segments, sampled as chunks.

Used by the demo driver and benchmarks as a stand-in for a policy: every chunk period it
emits a chunk (K timed points over a horizon) of the path ahead, so consecutive chunks
overlap and the executor has to join them.
"""
from __future__ import annotations

import numpy as np

from robot_ctrl.model.robot import RobotModel


def default_waypoints(robot: RobotModel, count: int = 4, amplitude: float = 0.4) -> np.ndarray:
    """`count` waypoints around home, moving every joint, inside 90% of the limit range."""
    n = robot.n
    signs = np.array([[1, -1, 1, 1, -1, 1, -1, 1, 1][i % 9] for i in range(n)], dtype=float)
    span = robot.q_max - robot.q_min
    lo = robot.q_min + 0.05 * span
    hi = robot.q_max - 0.05 * span
    pts = [robot.home.copy()]
    for k in range(1, count):
        phase = np.sin(np.pi * k / 2.0 + np.arange(n) * 0.7)
        step = np.minimum(amplitude, 0.25 * span)
        pts.append(np.clip(robot.home + signs * phase * step, lo, hi))
    pts.append(robot.home.copy())
    return np.array(pts)


class MinJerkPath:
    """q(t) through waypoints W[0..M], segment_s per segment, at rest at each waypoint."""

    def __init__(self, waypoints: np.ndarray, segment_s: float, t0: float = 0.0):
        self.W = np.asarray(waypoints, dtype=float)
        if self.W.ndim != 2 or len(self.W) < 2:
            raise ValueError("need at least two waypoints (rows)")
        if not segment_s > 0:
            raise ValueError("segment_s must be > 0")
        self.segment_s = float(segment_s)
        self.t0 = float(t0)

    @property
    def duration(self) -> float:
        return self.segment_s * (len(self.W) - 1)

    def __call__(self, t) -> np.ndarray:
        t = np.atleast_1d(np.asarray(t, dtype=float)) - self.t0
        s = np.clip(t / self.segment_s, 0.0, len(self.W) - 1 - 1e-12)
        k = np.floor(s).astype(int)
        tau = s - k
        blend = tau**3 * (10 - 15 * tau + 6 * tau**2)
        return self.W[k] + blend[:, None] * (self.W[k + 1] - self.W[k])

    def chunk(self, t_now: float, horizon_s: float, points: int) -> tuple[np.ndarray, np.ndarray]:
        """(times relative to t_now, positions) of `points` samples over (0, horizon_s]."""
        rel = np.linspace(horizon_s / points, horizon_s, points)
        return rel, self(t_now + rel)
