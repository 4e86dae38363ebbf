"""CBF-QP safety filter: the smallest change to a nominal command that keeps every barrier.

    f = SafetyFilter(robot, [JointPositionLimits(), JointVelocityLimits(), EffortLimits()],
                     mode="effort", dt=0.002)
    out = f.step(q, v, u_nom)      # out.u is always finite

Per step: rows from every constraint (A u ≤ b) → QP  min ½‖u − u_nom‖²_W  → check. If the QP is
infeasible, a slack-relaxed QP (every barrier row soft, box rows on τ hard) is tried; if that
fails too, or the state or nominal command is bad, the filter brakes: it decelerates at the
limits towards rest (velocity mode: the last command → 0 at a_brake; effort mode: τ = M q̈_brake + h,
clamped to the effort limits). The outcome says which rows were binding or violated.

Online class-K gains: `alpha_fn(q, v, h_min) -> scale` (e.g. a learned policy) multiplies every
constraint's α each step; `adaptive_alpha` is a shipped rule.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import pinocchio as pin

from robot_ctrl.model.robot import RobotModel
from robot_ctrl.safety import kernels
from robot_ctrl.safety.constraints import Constraint, StepData
from robot_ctrl.safety.geometry import Kinematics
from robot_ctrl.safety.qp import CvxpyBackend, DaqpBackend

MODES = ("velocity", "effort")


@dataclass
class FilterOutcome:
    """One step's result. `binding` and `violated` (row names) are computed on first access,
    so the hot path does not pay for them."""

    u: np.ndarray
    status: str  # "ok" | "relaxed" | "brake" | "rejected"
    intervention: float
    h_min: float
    solve_us: float
    residual: float = 0.0
    qp_us: float = 0.0
    _r: np.ndarray | None = field(default=None, repr=False)
    _scale: np.ndarray | None = field(default=None, repr=False)  # b of the step (a copy)
    _names: list | None = field(default=None, repr=False)

    def _tol(self):
        b = np.nan_to_num(np.asarray(self._scale), nan=0.0, posinf=0.0, neginf=0.0)
        return 1e-7 * np.maximum(1.0, np.abs(b))

    @property
    def binding(self) -> list[str]:
        if self._r is None:
            return []
        return [self._names[i] for i in np.flatnonzero(np.abs(self._r) <= self._tol())]

    @property
    def violated(self) -> list[str]:
        if self._r is None:
            return []
        return [self._names[i] for i in np.flatnonzero(self._r > self._tol())]


def adaptive_alpha(q, v, h_min: float, h_ref: float = 0.05, lo: float = 0.3, hi: float = 1.0) -> float:
    """Shipped online class-K rule: full gain far from the boundary, down to `lo` x near it.

    Near the boundary a smaller α brakes earlier and more gently (less aggressive approach);
    far away the full gain leaves the nominal command untouched.
    """
    if not np.isfinite(h_min):
        return hi
    s = np.clip(h_min / h_ref, 0.0, 1.0)
    return float(lo + (hi - lo) * s)


class SafetyFilter:
    def __init__(self, robot: RobotModel, constraints: list[Constraint], mode: str = "velocity",
                 dt: float = 0.002, weights=None, backend: str = "daqp", a_brake=None,
                 alpha_fn=None, tol: float = 1e-9):
        if mode not in MODES:
            raise ValueError(f"safety filter mode must be one of {MODES}, got '{mode}'")
        self.robot, self.mode, self.dt, self.tol = robot, mode, float(dt), tol
        # rows in the natural variable first, boxes on τ last: one product maps them all
        self.constraints = [c for c in constraints if not c.in_torque] + [c for c in constraints if c.in_torque]
        self.n = robot.n
        sizes = [c.size(robot, mode) for c in self.constraints]
        self.m = int(sum(sizes))
        self._slices = []
        start = 0
        for c, k in zip(self.constraints, sizes):
            self._slices.append((c, slice(start, start + k)))
            start += k
        self.row_names = [name for c in self.constraints for name in c.row_names(robot, mode)]
        self.soft = np.array([not c.in_torque for c, sl in self._slices for _ in range(sl.stop - sl.start)])
        self._n_nat = int(sum(sl.stop - sl.start for c, sl in self._slices if not c.in_torque))
        self._slack_w = 1e4 * np.array([c.relax_weight for c, sl in self._slices
                                        for _ in range(sl.stop - sl.start)]) ** 2
        w = np.ones(self.n) if weights is None else np.asarray(weights, dtype=float)
        if w.shape != (self.n,) or np.any(w <= 0):
            raise ValueError(f"weights must be {self.n} positive values")
        self.backend = (DaqpBackend(self.n, w) if backend == "daqp" else CvxpyBackend(self.n, w, self.m))
        self.a_brake = np.broadcast_to(np.asarray(10.0 if a_brake is None else a_brake, float), (self.n,)).copy()
        self.alpha_fn = alpha_fn
        kernels.warm_up()
        self.kin = Kinematics(robot) if any(c.uses_kinematics for c in self.constraints) else None
        self._d = StepData(q=robot.home, v=np.zeros(self.n), dt=self.dt, mode=mode, kin=self.kin)
        self.collision_pairs = int(sum(c.collision_pairs for c in self.constraints))
        self.A = np.zeros((self.m, self.n))
        # rows as the constraints write them (natural variable); in effort mode A = A_nat M⁻¹
        self.A_nat = self.A if mode == "velocity" else np.zeros((self.m, self.n))
        self.b = np.zeros(self.m)
        self.h = np.zeros(self.m)
        # the same views every step: constraints write their constant rows once
        self._views = [(c, self.A_nat[sl], self.b[sl], self.h[sl]) for c, sl in self._slices]
        self.fallbacks = 0
        self.qp_us = 0.0
        self.rejected = 0
        self._last_h_min = np.inf
        self._last_u = np.zeros(self.n)

    def reset_counters(self) -> None:
        self.fallbacks = 0
        self.rejected = 0

    def reset(self) -> None:
        """Forget the last command and barrier (after a stop or a reset of the robot)."""
        self.reset_counters()
        self._last_u = np.zeros(self.n)
        self._last_h_min = np.inf

    # -- rows ----------------------------------------------------------------------------
    def rows(self, q: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(A, b, h) in the command variable u for state (q, v). Arrays are reused."""
        scale = 1.0 if self.alpha_fn is None else float(self.alpha_fn(q, v, self._last_h_min))
        if not (np.isfinite(scale) and scale > 0):
            scale = 1.0  # a bad gain from the callable never weakens the filter below nominal
        d = self._d
        d.q, d.v, d.alpha_scale, d.u_prev = q, v, scale, self._last_u
        if self.kin is not None:
            self.kin.update(q, v if self.mode == "effort" else None)
        robot = self.robot
        for c, A, b, h in self._views:
            c.fill(robot, d, A, b, h)
        if self.mode == "effort":
            self._map_to_torque(q, v)
        return self.A, self.b, self.h

    def _map_to_torque(self, q, v):
        robot = self.robot
        qp, vp = robot._to_pin(q), robot._to_pin(v)
        Minv = pin.computeMinverse(robot.model, robot.data, qp)  # upper triangle filled
        bias = pin.nonLinearEffects(robot.model, robot.data, qp, vp)
        if not robot._identity:
            kernels.symmetrize_upper(Minv)
            Minv, bias = Minv[np.ix_(robot._perm, robot._perm)], bias[robot._perm]
        kernels.map_rows_to_torque(self.A_nat, self.b, Minv, bias, self._n_nat, self.A)

    # -- step ----------------------------------------------------------------------------
    def _checked(self, q, v, u_nom, t0):
        """(q, v, u_nom, None) as float arrays, or (.., .., .., the braking outcome) when the
        state or the command is bad (wrong shape, NaN/Inf): counted as rejected."""
        q = np.asarray(q, dtype=float)
        v = np.asarray(v, dtype=float)
        # a sum is non-finite iff some entry is (or it overflows: rejected too)
        if q.shape != (self.n,) or v.shape != (self.n,) or not np.isfinite(q.sum() + v.sum()):
            self.rejected += 1
            return q, v, u_nom, self._brake(q, v, "rejected", t0)
        u_nom = np.asarray(u_nom, dtype=float)
        if u_nom.shape != (self.n,) or not np.isfinite(u_nom.sum()):
            self.rejected += 1
            self.rows(q, v)
            return q, v, u_nom, self._brake(q, v, "rejected", t0, rows=True)
        return q, v, u_nom, None

    def step(self, q, v, u_nom) -> FilterOutcome:
        t0 = time.perf_counter()
        q, v, u_nom, rejected = self._checked(q, v, u_nom, t0)
        if rejected is not None:
            return rejected
        A, b, h = self.rows(q, v)
        finite = kernels.all_finite(A, b)
        status = "ok"
        tq = time.perf_counter()
        u, ok = self.backend.solve(u_nom, A, b) if finite else (None, False)
        self.qp_us = (time.perf_counter() - tq) * 1e6
        r = None
        if ok:
            r = np.empty(self.m)
            rmax, bmax = kernels.residual(A, u, b, r)
            ok = rmax <= self.tol * max(1.0, bmax)
        if not ok and finite:
            status = "relaxed"
            # explicit slacks, weighted per constraint: the slack goes to actuator limits first
            u, ok = self.backend.solve(u_nom, A, b, soft=self.soft, slack_weight=self._slack_w)
            ok = ok and bool(np.isfinite(u.sum()))
            r = A @ u - b if ok else None
        if not ok:
            return self._brake(q, v, "brake", t0, rows=finite)
        if status == "relaxed":
            self.fallbacks += 1
        return self._outcome(u, u_nom, status, t0, r)

    def _outcome(self, u, u_nom, status, t0, r=None) -> FilterOutcome:
        if r is None:
            r = self.A @ u - self.b
            r = np.where(np.isfinite(r), r, np.inf)  # a non-finite row (bad state) counts as violated
        self._last_u = u  # a fresh array from the solver (or the brake), never written again
        h_min = float(np.min(self.h, initial=np.inf, where=np.isfinite(self.h))) if status != "ok" \
            else float(self.h.min(initial=np.inf))
        self._last_h_min = h_min
        du = u - u_nom
        return FilterOutcome(u=u, status=status, intervention=math.sqrt(float(du @ du)),
                             h_min=h_min, solve_us=(time.perf_counter() - t0) * 1e6,
                             residual=float(r.max(initial=0.0)), qp_us=self.qp_us,
                             _r=r, _scale=self.b.copy(), _names=self.row_names)

    def brake_command(self, q, v) -> np.ndarray:
        """Decelerate at a_brake towards rest; in effort mode clamp to the effort limits."""
        robot = self.robot
        v = np.where(np.isfinite(v), v, 0.0) if v.shape == (self.n,) else np.zeros(self.n)
        q = np.where(np.isfinite(q), q, robot.home) if q.shape == (self.n,) else robot.home.copy()
        step = self.a_brake * self.dt
        if self.mode == "velocity":
            # from the last command the filter let through (the measured velocity may lag or
            # overshoot the servo's), down to rest
            u = self._last_u
            return np.sign(u) * np.maximum(np.abs(u) - step, 0.0)
        qdd = -np.clip(v / self.dt, -self.a_brake, self.a_brake)
        tau = robot.rnea(q, v, qdd)
        tau = np.where(np.isfinite(tau), tau, 0.0)
        return np.clip(tau, -robot.tau_max, robot.tau_max)

    def brake(self, q, v) -> np.ndarray:
        """The braking command for (q, v), which also becomes the filter's last command (the
        next brake ramps down from it): for stops and watchdogs outside the QP step."""
        u = self.brake_command(np.asarray(q, dtype=float), np.asarray(v, dtype=float))
        self._last_u = u.copy()
        return u

    def _brake(self, q, v, status, t0, rows=False) -> FilterOutcome:
        self.fallbacks += 1
        u = self.brake(q, v)
        if rows:
            return self._outcome(u, u, status, t0)
        return FilterOutcome(u=u, status=status, intervention=0.0, h_min=-np.inf,
                             solve_us=(time.perf_counter() - t0) * 1e6)
