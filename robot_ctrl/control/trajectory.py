"""Chunk executor: turns timed joint-space chunks into a smooth reference at the control rate.

A chunk is K timed points (times relative to a start time, positions, optional velocities),
as in trajectory_msgs/JointTrajectory or a policy's action chunk. The executor keeps one
piecewise-cubic reference q_ref(t):

- within a chunk the reference is a cubic spline through the points (C2), or a cubic
  Hermite spline when the chunk carries velocities (C1);
- a new chunk starts from the reference's own position and velocity at the moment it is
  accepted, so chunk joins are continuous in position and velocity (C1), however the new
  chunk's first point lies; points at or before that moment are dropped;
- after the last point the reference holds the last position at rest (at the last point itself
  it still has the chunk's end velocity, so a chunk that follows exactly there joins with C1
  continuity too).

Joints a chunk does not name pass through their current reference at the chunk's points and
come to rest with the others at its end. Bad chunks raise
TrajectoryError and leave the current reference untouched.

Sampling is the hot path: a binary search and a Horner evaluation into preallocated arrays.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.interpolate import CubicHermiteSpline, CubicSpline


class TrajectoryError(ValueError):
    """A chunk was rejected; the message says why. The previous reference stays in force."""


MIN_SEGMENT = 1e-4  # s; points closer than this to the join are dropped


class ChunkExecutor:
    def __init__(self, joint_names: Sequence[str]):
        self.joint_names = list(joint_names)
        self.n = len(self.joint_names)
        self._index = {name: i for i, name in enumerate(self.joint_names)}
        self._x = np.zeros(1)          # breakpoints (absolute times)
        self._c = np.zeros((4, 0, self.n))  # PPoly coefficients, c[k] multiplies dt**(3-k)
        self._q_end = np.zeros(self.n)
        self._started = False
        self.q = np.zeros(self.n)
        self.v = np.zeros(self.n)
        self.a = np.zeros(self.n)
        self.chunks_accepted = 0

    @property
    def started(self) -> bool:
        return self._started

    @property
    def end_time(self) -> float:
        return float(self._x[-1])

    def hold(self, t: float, q: np.ndarray) -> None:
        """Reference = q at rest from time t on."""
        q = np.asarray(q, dtype=float)
        if q.shape != (self.n,) or not np.all(np.isfinite(q)):
            raise TrajectoryError(f"hold position must be {self.n} finite values")
        self._x = np.array([float(t)])
        self._c = np.zeros((4, 0, self.n))
        self._q_end = q.copy()
        self._started = True

    def sample(self, t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Reference (q, v, a) at time t. The arrays are reused between calls: copy to keep."""
        x = self._x
        if self._c.shape[1] == 0 or not t <= x[-1]:  # also NaN: hold the end
            self.q[:] = self._q_end
            self.v[:] = 0.0
            self.a[:] = 0.0
            return self.q, self.v, self.a
        if t <= x[0]:
            i, dt = 0, 0.0
        else:  # the last knot itself is evaluated on the last piece (its end velocity)
            i = min(int(np.searchsorted(x, t, side="right")) - 1, len(x) - 2)
            dt = t - x[i]
        c3, c2, c1, c0 = self._c[0, i], self._c[1, i], self._c[2, i], self._c[3, i]
        np.multiply(c3, dt, out=self.q)
        self.q += c2
        self.q *= dt
        self.q += c1
        self.q *= dt
        self.q += c0
        np.multiply(c3, 3.0 * dt, out=self.v)
        self.v += 2.0 * c2
        self.v *= dt
        self.v += c1
        np.multiply(c3, 6.0 * dt, out=self.a)
        self.a += 2.0 * c2
        return self.q, self.v, self.a

    def set_chunk(
        self,
        t_now: float,
        times: Sequence[float],
        positions,
        velocities=None,
        joint_names: Sequence[str] | None = None,
        t_start: float | None = None,
    ) -> int:
        """Accept a chunk at time t_now. Returns the number of points kept.

        times: K strictly increasing times (s) relative to t_start (default: t_now).
        positions: K x m array for the m joints in joint_names (default: all joints, in order).
        velocities: optional K x m array; with it the spline is Hermite through these velocities.
        """
        if not self._started:
            raise TrajectoryError("executor has no current state yet (call hold() first)")
        names = self.joint_names if joint_names is None else list(joint_names)
        if not names:
            raise TrajectoryError("chunk names no joints")
        unknown = [j for j in names if j not in self._index]
        if unknown:
            raise TrajectoryError(f"unknown joint names: {', '.join(map(str, unknown))}")
        if len(set(names)) != len(names):
            raise TrajectoryError("duplicate joint names in chunk")
        try:
            T = np.asarray(times, dtype=float).reshape(-1)
            P = np.asarray(positions, dtype=float)
            V = None if velocities is None else np.asarray(velocities, dtype=float)
        except (TypeError, ValueError):
            raise TrajectoryError("chunk times/positions/velocities must be numeric") from None
        K, m = T.shape[0], len(names)
        if K == 0:
            raise TrajectoryError("chunk has no points")
        if P.shape != (K, m):
            raise TrajectoryError(f"positions must be {K}x{m} (points x joints), got {P.shape}")
        if V is not None and V.shape != (K, m):
            raise TrajectoryError(f"velocities must be {K}x{m} or absent, got {V.shape}")
        if not (np.all(np.isfinite(T)) and np.all(np.isfinite(P)) and (V is None or np.all(np.isfinite(V)))):
            raise TrajectoryError("chunk has NaN or Inf")
        if np.any(T < 0):
            raise TrajectoryError("time_from_start must be non-negative")
        if K > 1 and np.any(np.diff(T) <= 0):
            raise TrajectoryError("time_from_start must be strictly increasing")
        if t_start is not None and not np.isfinite(t_start):
            raise TrajectoryError("start time is not finite")
        t0 = float(t_now) if t_start is None else max(float(t_start), 0.0)
        T_abs = t0 + T
        keep = T_abs > t_now + MIN_SEGMENT
        if not np.any(keep):
            raise TrajectoryError(
                f"chunk is stale: its last point ({T_abs[-1]:.4f} s) is not after now ({t_now:.4f} s)"
            )
        x = np.concatenate(([float(t_now)], T_abs[keep]))
        # The current reference at the new knots: the start state of the new chunk, and the
        # continuing motion of joints the chunk does not name.
        Q = np.empty((len(x), self.n))
        D = np.empty((len(x), self.n))
        for k, tk in enumerate(x):
            qk, vk, _ = self.sample(tk)
            Q[k], D[k] = qk, vk
        v0 = D[0].copy()
        cols = [self._index[j] for j in names]
        Q[1:, cols] = P[keep]
        if V is not None:
            D[1:, cols] = V[keep]
            spline = CubicHermiteSpline(x, Q, D, axis=0)
        else:
            # at rest at the end: the reference holds after its last point
            spline = CubicSpline(x, Q, axis=0, bc_type=((1, v0), (1, np.zeros(self.n))))
        self._x = x
        self._c = np.ascontiguousarray(spline.c)
        self._q_end = Q[-1].copy()
        self.chunks_accepted += 1
        return int(keep.sum())
