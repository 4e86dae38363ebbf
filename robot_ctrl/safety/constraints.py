"""Safety constraints as rows of a QP: each constraint writes rows `A x <= b` for the current state.

The filter's decision variable is the command u:
- velocity mode: u = joint velocity command q̇_cmd;
- effort mode:   u = joint torque τ, and q̈ = M(q)⁻¹ (τ − h(q, q̇)).

A constraint writes its rows in its natural variable: q̇ (velocity mode) or q̈ (effort mode);
the filter maps q̈-rows onto τ (A_τ = A M⁻¹, b_τ = b + A M⁻¹ h). Box limits on τ itself
(`in_torque = True`) are written directly. Each row also reports its barrier value h
(+inf for rows that are plain boxes, not barriers).

Barriers h(q) with ḣ = G q̇:
- velocity mode, relative degree 1: G u ≥ −min(α h_e, √(2 a h_e)), α capped at 1/dt so one
  step never crosses, and the approach speed one the robot can brake from at `a` (its velocity
  loop follows the command with bounded acceleration); h_e = h − T·max(0, −G q̇) takes off the
  distance the measured motion covers while the velocity loop reacts (T = `t_react`).
- effort mode, relative degree 2: a braking barrier. With s = max(0, −ḣ) the speed towards
  the boundary, h_b = h − (s·T + s²/(2a)) is what is left of h after reacting for T and
  braking at a; the row enforces ḣ_b ≥ −α h_b, which is linear in q̈:
      −c (G q̈ + Ġ q̇) ≤ α h_b + ḣ,   c = max(T + s/a, ε/a).
  Unlike a high-order CBF with fixed gains, it never asks for more deceleration than `a`
  at the boundary, so it stays feasible under torque limits when `a` is what the robot can do.
  Speed-and-separation monitoring is the same row with the ISO/TS 15066 terms in T and h.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import pinocchio as pin

from robot_ctrl.model.robot import RobotModel
from robot_ctrl.safety import kernels
from robot_ctrl.safety.geometry import DistanceSet, Kinematics

_EPS_SPEED = 0.02  # ε of the braking barrier: control authority kept at zero approach speed
RECOVER = 3.0  # inside a braking distance already, brake at up to 3x the nominal deceleration


@dataclass
class StepData:
    """Quantities shared by all constraints at one filter step (computed once per step)."""

    q: np.ndarray
    v: np.ndarray
    dt: float
    mode: str  # "velocity" | "effort"
    alpha_scale: float = 1.0  # multiplies every constraint's α (online class-K gain, see filter)
    kin: Kinematics | None = None  # joint Jacobians of (q, v), when a constraint needs them
    u_prev: np.ndarray | None = None  # the filter's previous command


class Constraint:
    """Base class. Subclasses set `name`, implement `size()` and `fill()`."""

    name = "constraint"
    in_torque = False
    uses_kinematics = False
    collision_pairs = 0
    # When the QP is infeasible and is relaxed, a row's slack costs this much per unit: the
    # safety barriers (joint positions, collisions, workspace, separation) give way last,
    # the actuator limits (velocity, acceleration) first.
    relax_weight = 1.0

    def size(self, robot: RobotModel, mode: str) -> int:
        raise NotImplementedError

    def fill(self, robot: RobotModel, d: StepData, A: np.ndarray, b: np.ndarray, h: np.ndarray) -> None:
        """Write size() rows into A, b (natural variable) and the barrier values into h."""
        raise NotImplementedError

    def row_names(self, robot: RobotModel, mode: str) -> list[str]:
        return [f"{self.name}[{i}]" for i in range(self.size(robot, mode))]

    def _first_fill(self, A: np.ndarray) -> bool:
        """True the first time this constraint fills this buffer: constant rows are written once
        (the filter passes the same row views every step)."""
        if getattr(self, "_filled", None) is A:
            return False
        self._filled = A
        return True


def _box_rows(A: np.ndarray, n: int) -> None:
    """A = [I; −I]."""
    A[:] = 0.0
    idx = np.arange(n)
    A[idx, idx] = 1.0
    A[n + idx, idx] = -1.0


def _per_row(x, k: int) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    return x if x.shape == (k,) else np.broadcast_to(x, (k,)).copy()


def braking_rows(h, hdot, G, drift, a, alpha, T, A, b):
    """Effort-mode braking-barrier rows (see the module doc) into A (k, n) and b (k,).

    h, hdot, drift: (k,) (drift may be a scalar 0); G: (k, n) = ∂h/∂q; a, T: scalars or (k,).
    """
    k = len(h)
    drift = _per_row(drift, k)
    kernels.barrier_rows(h, hdot, np.ascontiguousarray(G), drift, _per_row(a, k), float(alpha), _per_row(T, k),
                         _EPS_SPEED, RECOVER, False, 1.0, A, b)


@dataclass
class JointPositionLimits(Constraint):
    """q_min + margin ≤ q ≤ q_max − margin. First-order CBF on q̇ (velocity mode); braking
    barrier on q̈ at `a_brake` rad/s² (effort mode; default min(5, 10·v_max) per joint, so a
    slow joint such as a gripper finger is never asked to brake harder than its velocity
    limit lets it accelerate)."""

    margin: float = 0.0
    alpha: float = 20.0
    a_brake: float | list | None = None  # default: min(5 rad/s², v_max / 0.1 s) per joint
    t_react: float = 0.02  # velocity mode: lag of the robot's velocity loop (s)
    relax_weight: ClassVar[float] = 100.0
    name: str = "joint_position"

    def size(self, robot, mode):
        return 2 * robot.n

    def row_names(self, robot, mode):
        return [f"{self.name}_lower[{j}]" for j in robot.joint_names] + \
               [f"{self.name}_upper[{j}]" for j in robot.joint_names]

    def fill(self, robot, d, A, b, h):
        n = robot.n
        if not hasattr(self, "_G"):
            self._G = np.vstack([np.eye(n), -np.eye(n)])
            self._lo = robot.q_min + self.margin
            self._hi = robot.q_max - self.margin
            self._vmax = np.where(np.isfinite(robot.v_max), robot.v_max, 1e9)
            a = np.minimum(5.0, self._vmax / 0.1) if self.a_brake is None else \
                np.broadcast_to(np.asarray(self.a_brake, float), (n,))
            self._a = np.tile(a, 2)
            self._hdot = np.zeros(2 * n)
            self._zeros = np.zeros(2 * n)
            self._T = np.full(2 * n, float(self.t_react))
        np.subtract(d.q, self._lo, out=h[:n])
        np.subtract(self._hi, d.q, out=h[n:])
        hdot = self._hdot
        hdot[:n] = d.v
        np.negative(d.v, out=hdot[n:])
        if d.mode == "velocity":
            kernels.barrier_rows(h, hdot, self._G, self._zeros, self._a, self.alpha * d.alpha_scale, self._T,
                                 _EPS_SPEED, RECOVER, True, d.dt, A, b)
            # Inside the margin already (h < 0), recover at no more than half the velocity
            # limit, so the row never conflicts with a (scaled) velocity box.
            np.maximum(b[:n], -0.5 * self._vmax, out=b[:n])
            np.maximum(b[n:], -0.5 * self._vmax, out=b[n:])
        else:
            kernels.barrier_rows(h, hdot, self._G, self._zeros, self._a, self.alpha * d.alpha_scale, self._zeros,
                                 _EPS_SPEED, RECOVER, False, d.dt, A, b)


@dataclass
class JointVelocityLimits(Constraint):
    """|q̇| ≤ scale·v_max: a box on u in velocity mode; a CBF ḣ ≥ −α h on q̈ in effort mode."""

    scale: float = 1.0
    alpha: float = 50.0
    name: str = "joint_velocity"

    def size(self, robot, mode):
        return 2 * robot.n

    def fill(self, robot, d, A, b, h):
        n = robot.n
        if self._first_fill(A):
            _box_rows(A, n)
            self._vmax2 = np.tile(self.scale * robot.v_max, 2)
        # h = v_max ∓ q̇ for the upper and lower rows
        np.subtract(self._vmax2[:n], d.v, out=h[:n])
        np.add(self._vmax2[n:], d.v, out=h[n:])
        if d.mode == "velocity":
            b[:] = self._vmax2
        else:
            np.multiply(h, self.alpha * d.alpha_scale, out=b)


@dataclass
class EffortLimits(Constraint):
    """|τ| ≤ scale·τ_max (effort mode only)."""

    scale: float = 1.0
    name: str = "effort"
    in_torque = True

    def size(self, robot, mode):
        return 2 * robot.n if mode == "effort" else 0

    def fill(self, robot, d, A, b, h):
        if d.mode != "effort":
            return
        n = robot.n
        if self._first_fill(A):
            _box_rows(A, n)
            b[:n] = b[n:] = self.scale * robot.tau_max
            h[:] = np.inf


@dataclass
class AccelerationLimits(Constraint):
    """|q̈| ≤ a_max: on q̈ (effort mode), or on (u − u_prev)/dt (velocity mode)."""

    a_max: float | list = 10.0
    name: str = "acceleration"

    def size(self, robot, mode):
        return 2 * robot.n

    def fill(self, robot, d, A, b, h):
        n = robot.n
        if self._first_fill(A):
            _box_rows(A, n)
            h[:] = np.inf
            self._amax = np.broadcast_to(np.asarray(self.a_max, dtype=float), (n,)).copy()
            self._amax2 = np.tile(self._amax, 2)
        amax = self._amax
        if d.mode == "velocity":
            # a rate limit on the command itself, from the previous command: a velocity servo
            # lags its command, so limiting against the measured velocity would forbid the
            # filter to command a stop while the joint still catches up
            b[:n] = d.u_prev + amax * d.dt
            b[n:] = -d.u_prev + amax * d.dt
        else:  # rewritten every step: the filter adds the M⁻¹h term to natural rows' b
            b[:] = self._amax2


@dataclass
class WorkspaceBox(Constraint):
    """lower ≤ p_frame ≤ upper per axis (world frame), from FK and the frame Jacobian.
    Velocity mode: J q̇ ≥ −α h. Effort mode: braking barrier at `a_brake` m/s², p̈ = J q̈ + J̇ q̇."""

    lower: list = field(default_factory=lambda: [-1.0, -1.0, 0.0])
    upper: list = field(default_factory=lambda: [1.0, 1.0, 1.5])
    frame: str | None = None
    alpha: float = 10.0
    a_brake: float = 2.0
    t_react: float = 0.02  # velocity mode: lag of the robot's velocity loop (s)
    relax_weight: ClassVar[float] = 100.0
    name: str = "workspace"
    uses_kinematics = True

    def size(self, robot, mode):
        return 6

    def row_names(self, robot, mode):
        return [f"{self.name}_{s}_{ax}" for s in ("lower", "upper") for ax in "xyz"]

    def fill(self, robot, d, A, b, h):
        if not hasattr(self, "_fid"):
            self._fid = robot.ee_frame_id if self.frame is None else robot.frame_id(self.frame)
            self._joint = robot.model.frames[self._fid].parentJoint
            self._lo, self._hi = np.asarray(self.lower, float), np.asarray(self.upper, float)
            if self._lo.shape != (3,) or self._hi.shape != (3,) or np.any(self._lo >= self._hi):
                raise ValueError("workspace lower/upper must be 3 numbers each, lower < upper")
            self._G = np.zeros((6, robot.n))
            self._pts = np.zeros((6, 3))
            self._nrm = np.vstack([np.eye(3), -np.eye(3)])
            self._jts = np.full(6, self._joint, dtype=np.int64)
            self._a6 = np.full(6, float(self.a_brake))
            self._z6 = np.zeros(6)
            self._T6 = np.full(6, float(self.t_react))
            self._hdot = np.zeros(6)
            self._drift = np.zeros(6)
            self._base = np.asarray(robot.base_pos, float)
            self._ptmp = np.zeros((6, 3))
        kin = d.kin
        pin_ = kin.data
        pin.updateFramePlacement(robot.model, pin_, self._fid)
        effort = d.mode == "effort"
        # rows of ∂h/∂q: +J_p (lower), −J_p (upper), as n·J_p with n = ±e_axis, in one kernel
        kernels.workspace_rows(pin_.oMf[self._fid].translation, self._base, self._lo, self._hi, self._joint,
                               kin.J, kin.dJ if effort else kin.J, kin.mask, d.v, effort, self._a6,
                               self._z6 if effort else self._T6, self.alpha * d.alpha_scale, _EPS_SPEED, RECOVER,
                               d.dt, self._nrm, self._ptmp, self._jts, self._G, self._hdot, self._drift, h, A, b)


class CollisionDistance(Constraint):
    """d(link, other) ≥ d_min for every configured pair: robot links vs. world objects (table,
    obstacles) and self-collision pairs. Distances and witness points from coal; each row's
    gradient from the Jacobians at the witness points. Velocity mode: ∇d·u ≥ −α (d − d_min);
    effort mode: braking barrier at `a_brake` m/s².

    links: {link: shape}; world: {name: object}; env_links: links checked against every world
    object; self_pairs: [[link, link]]; pairs: extra [[link, other]]. A pair may carry its own
    clearance as a third entry ([link, other, metres]); the others use d_min. A world object may
    list the links checked against it (`links: [...]`, default env_links) and its own clearance
    (`clearance: metres`, default d_min).
    """

    name = "collision"
    relax_weight = 100.0
    uses_kinematics = True

    def __init__(self, robot: RobotModel, links: dict, world: dict | None = None, env_links=None,
                 self_pairs=None, pairs=None, d_min: float = 0.02, alpha: float = 20.0,
                 a_brake: float = 2.0, t_react: float = 0.02, name: str = "collision"):
        world = {name: dict(spec) if isinstance(spec, dict) else spec for name, spec in (world or {}).items()}
        env_links = list(links) if env_links is None else list(env_links)
        # a world object may name the links checked against it (`links:`); default env_links
        # and its own clearance (`clearance:`, default d_min)
        all_pairs = []
        for w, spec in world.items():
            own = spec.pop("links", None) if isinstance(spec, dict) else None
            gap = spec.pop("clearance", None) if isinstance(spec, dict) else None
            all_pairs += [(lk, w) if gap is None else (lk, w, float(gap)) for lk in (own or env_links)]
        all_pairs += [tuple(p) for p in (self_pairs or [])] + [tuple(p) for p in (pairs or [])]
        self.set = DistanceSet(robot, links, world, all_pairs)
        self.d_min, self.alpha, self.a_brake, self.name = float(d_min), float(alpha), float(a_brake), name
        self.t_react = float(t_react)
        # per-pair clearance: a pair's own third entry, else d_min
        m = np.asarray(self.set.margins, dtype=float)
        self.clearance = np.where(np.isnan(m), self.d_min, m)
        self.collision_pairs = self.set.size
        self.last = None

    def size(self, robot, mode):
        return self.set.size

    def row_names(self, robot, mode):
        return [f"{self.name}[{a}|{b}]" for a, b in self.set.pairs]

    def fill(self, robot, d, A, b, h):
        g = self.set.compute()
        self.last = g
        np.subtract(g.d, self.clearance, out=h)
        effort = d.mode == "effort"
        G, drift = self.set.gradients_into(d.kin, g, drift=effort)
        if not hasattr(self, "_a_rows"):
            self._a_rows = np.full(self.set.size, self.a_brake)
            self._zeros = np.zeros(self.set.size)
            self._T = np.full(self.set.size, self.t_react)
        kernels.barrier_rows(h, G @ d.v, G, drift if effort else self._zeros, self._a_rows, self.alpha * d.alpha_scale,
                             self._zeros if effort else self._T, _EPS_SPEED, RECOVER, not effort, d.dt, A, b)


class SpeedSeparation(Constraint):
    """Speed-and-separation monitoring (ISO/TS 15066 style) against a tracked human (or object)
    shape: for each monitored link, h = d − S_p(v_r) ≥ 0 with the protective separation

        S_p(v_r) = v_h (T_r + T_s) + v_r T_r + v_r² / (2 a_brake) + C + Z,

    v_r = the link's speed towards the human (−ḋ), v_h the human's speed, T_r the robot's
    reaction time, T_s the stopping time budget, C the intrusion distance, Z the uncertainty.
    Velocity mode: the speed toward the human is limited to the v_r that solves S_p(v_r) = d.
    Effort mode: ḣ ≥ −α h (the braking-barrier row with T = T_r).
    """

    name = "ssm"
    relax_weight = 100.0
    uses_kinematics = True

    def __init__(self, robot: RobotModel, links: dict, human: dict, v_human: float = 1.6,
                 t_react: float = 0.02, t_stop: float = 0.1, a_brake: float = 2.0,
                 intrusion: float = 0.1, uncertainty: float = 0.02, alpha: float = 20.0,
                 monitored=None, name: str = "ssm"):
        monitored = list(links) if monitored is None else list(monitored)
        self.set = DistanceSet(robot, links, {"human": human}, [(lk, "human") for lk in monitored])
        for key, val in (("v_human", v_human), ("t_react", t_react), ("t_stop", t_stop),
                         ("intrusion", intrusion), ("uncertainty", uncertainty)):
            if not np.isfinite(val) or val < 0:
                raise ValueError(f"ssm {key} must be a finite number >= 0")
        if not (a_brake > 0):
            raise ValueError("ssm a_brake must be > 0")
        self.v_human, self.t_react, self.t_stop = float(v_human), float(t_react), float(t_stop)
        self.a_brake, self.alpha, self.name = float(a_brake), float(alpha), name
        self.intrusion, self.uncertainty = float(intrusion), float(uncertainty)
        self.collision_pairs = self.set.size
        self.last = None

    def set_human(self, pos, quat_xyzw=None):
        self.set.set_world_pose("human", pos, quat_xyzw)

    @property
    def offset(self) -> float:
        """The speed-independent part of S_p."""
        return self.v_human * (self.t_react + self.t_stop) + self.intrusion + self.uncertainty

    def allowed_speed(self, d: np.ndarray) -> np.ndarray:
        """v_r with S_p(v_r) = d (0 where even a standing robot is too close)."""
        D = np.maximum(d - self.offset, 0.0)
        a, T = self.a_brake, self.t_react
        return a * (np.sqrt(T * T + 2.0 * D / a) - T)

    def size(self, robot, mode):
        return self.set.size

    def row_names(self, robot, mode):
        return [f"{self.name}[{a}]" for a, _ in self.set.pairs]

    def fill(self, robot, d, A, b, h):
        g = self.set.compute()
        self.last = g
        effort = d.mode == "effort"
        G, drift = self.set.gradients_into(d.kin, g, drift=effort)
        ddot = G @ d.v
        vr = np.maximum(-ddot, 0.0)
        h[:] = g.d - self.offset - vr * self.t_react - vr * vr / (2.0 * self.a_brake)
        if not effort:
            np.negative(G, out=A)  # −ḋ(u) ≤ v_allowed(d)
            b[:] = self.allowed_speed(g.d)
        else:
            braking_rows(g.d - self.offset, ddot, G, drift, self.a_brake, self.alpha * d.alpha_scale,
                         self.t_react, A, b)


CONSTRAINTS = {
    "joint_position": JointPositionLimits,
    "joint_velocity": JointVelocityLimits,
    "effort": EffortLimits,
    "acceleration": AccelerationLimits,
    "workspace": WorkspaceBox,
    "collision": CollisionDistance,
    "ssm": SpeedSeparation,
}
