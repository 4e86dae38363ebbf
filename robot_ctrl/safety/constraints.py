"""Safety constraints as rows of a QP: each constraint writes rows `A x <= b` for the current state.

The filter's decision variable is the command u:
- velocity mode: u = joint velocity command q̇_cmd;
- effort mode:   u = joint torque τ, and q̈ = M(q)⁻¹ (τ − h(q, q̇)).

A constraint writes its rows in its natural variable: q̇ (velocity mode) or q̈ (effort mode);
the filter maps q̈-rows onto τ (A_τ = A M⁻¹, b_τ = b + A M⁻¹ h). Box limits on τ itself
(`in_torque = True`) are written directly. Each row also reports its barrier value h
(+inf for rows that are plain boxes, not barriers).

Barriers (class-K gains α as linear functions):
- relative degree 1 (velocity mode, or velocity limits in effort mode): ḣ ≥ −α h;
- relative degree 2 (positions in effort mode), a high-order CBF:
  ψ₁ = ḣ + α₁ h ≥ 0 enforced through ψ̇₁ + α₂ ψ₁ ≥ 0, i.e. ḧ + (α₁+α₂) ḣ + α₁α₂ h ≥ 0.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pinocchio as pin

from robot_ctrl.model.robot import RobotModel


@dataclass
class StepData:
    """Quantities shared by all constraints at one filter step (computed once per step)."""

    q: np.ndarray
    v: np.ndarray
    dt: float
    mode: str  # "velocity" | "effort"
    alpha_scale: float = 1.0  # multiplies every constraint's α (online class-K gain, see filter)


class Constraint:
    """Base class. Subclasses set `name`, implement `size()` and `fill()`."""

    name = "constraint"
    in_torque = False

    def size(self, robot: RobotModel, mode: str) -> int:
        raise NotImplementedError

    def fill(self, robot: RobotModel, d: StepData, A: np.ndarray, b: np.ndarray, h: np.ndarray) -> None:
        """Write size() rows into A, b (natural variable) and the barrier values into h."""
        raise NotImplementedError

    def row_names(self, robot: RobotModel, mode: str) -> list[str]:
        return [f"{self.name}[{i}]" for i in range(self.size(robot, mode))]


@dataclass
class JointPositionLimits(Constraint):
    """q_min + margin ≤ q ≤ q_max − margin. First-order CBF on q̇ (velocity mode, α capped at
    1/dt so one step never crosses the limit); high-order CBF on q̈ (effort mode)."""

    margin: float = 0.0
    alpha: float = 20.0
    alpha2: float = 20.0
    name: str = "joint_position"

    def size(self, robot, mode):
        return 2 * robot.n

    def row_names(self, robot, mode):
        return [f"{self.name}_lower[{j}]" for j in robot.joint_names] + \
               [f"{self.name}_upper[{j}]" for j in robot.joint_names]

    def fill(self, robot, d, A, b, h):
        n = robot.n
        h_lo = d.q - (robot.q_min + self.margin)
        h_hi = (robot.q_max - self.margin) - d.q
        h[:n], h[n:] = h_lo, h_hi
        A[:] = 0.0
        idx = np.arange(n)
        A[idx, idx] = -1.0
        A[n + idx, idx] = 1.0
        if d.mode == "velocity":
            a = min(self.alpha * d.alpha_scale, 1.0 / d.dt)
            # Inside the margin already (h < 0), recover no faster than the velocity limit, so
            # the row never conflicts with the velocity box.
            vmax = np.where(np.isfinite(robot.v_max), robot.v_max, 1e9)
            b[:n] = np.maximum(a * h_lo, -vmax)  # −q̇ ≤ α h_lo
            b[n:] = np.maximum(a * h_hi, -vmax)  #  q̇ ≤ α h_hi
        else:
            a1, a2 = self.alpha * d.alpha_scale, self.alpha2 * d.alpha_scale
            # lower: q̈ ≥ −(a1+a2) q̇ − a1 a2 h_lo ; upper: q̈ ≤ −(a1+a2) q̇ + a1 a2 h_hi
            b[:n] = (a1 + a2) * d.v + a1 * a2 * h_lo
            b[n:] = -(a1 + a2) * d.v + a1 * a2 * h_hi


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
        vmax = self.scale * robot.v_max
        A[:] = 0.0
        idx = np.arange(n)
        A[idx, idx] = 1.0
        A[n + idx, idx] = -1.0
        h[:n], h[n:] = vmax - d.v, vmax + d.v
        if d.mode == "velocity":
            b[:n], b[n:] = vmax, vmax
        else:
            a = self.alpha * d.alpha_scale
            b[:n], b[n:] = a * (vmax - d.v), a * (vmax + d.v)


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
        A[:] = 0.0
        idx = np.arange(n)
        A[idx, idx] = 1.0
        A[n + idx, idx] = -1.0
        b[:n] = b[n:] = self.scale * robot.tau_max
        h[:] = np.inf


@dataclass
class AccelerationLimits(Constraint):
    """|q̈| ≤ a_max: on q̈ (effort mode), or on (u − q̇)/dt (velocity mode)."""

    a_max: float | list = 10.0
    name: str = "acceleration"

    def size(self, robot, mode):
        return 2 * robot.n

    def fill(self, robot, d, A, b, h):
        n = robot.n
        amax = np.broadcast_to(np.asarray(self.a_max, dtype=float), (n,))
        A[:] = 0.0
        idx = np.arange(n)
        A[idx, idx] = 1.0
        A[n + idx, idx] = -1.0
        h[:] = np.inf
        if d.mode == "velocity":
            b[:n] = d.v + amax * d.dt
            b[n:] = -d.v + amax * d.dt
        else:
            b[:n] = b[n:] = amax


@dataclass
class WorkspaceBox(Constraint):
    """lower ≤ p_frame ≤ upper per axis (world frame), from FK and the frame Jacobian.
    Velocity mode: J q̇ ≥ −α h. Effort mode: high-order CBF with p̈ = J q̈ + J̇ q̇."""

    lower: list = field(default_factory=lambda: [-1.0, -1.0, 0.0])
    upper: list = field(default_factory=lambda: [1.0, 1.0, 1.5])
    frame: str | None = None
    alpha: float = 10.0
    alpha2: float = 10.0
    name: str = "workspace"

    def size(self, robot, mode):
        return 6

    def row_names(self, robot, mode):
        return [f"{self.name}_{s}_{ax}" for s in ("lower", "upper") for ax in "xyz"]

    def fill(self, robot, d, A, b, h):
        fid = robot.ee_frame_id if self.frame is None else robot.frame_id(self.frame)
        model, data = robot.model, robot.data
        qp = robot._to_pin(d.q)
        vp = robot._to_pin(d.v)
        pin.forwardKinematics(model, data, qp, vp, np.zeros(robot.n))
        pin.updateFramePlacements(model, data)
        p = data.oMf[fid].translation + robot.base_pos
        J = pin.computeFrameJacobian(model, data, qp, fid, pin.ReferenceFrame.LOCAL_WORLD_ALIGNED)[:3]
        J = J if robot._identity else J[:, robot._perm]
        lo, hi = np.asarray(self.lower, float), np.asarray(self.upper, float)
        h_lo, h_hi = p - lo, hi - p
        h[:3], h[3:] = h_lo, h_hi
        A[:3], A[3:] = -J, J
        if d.mode == "velocity":
            a = min(self.alpha * d.alpha_scale, 1.0 / d.dt)
            b[:3], b[3:] = a * h_lo, a * h_hi
        else:
            a1, a2 = self.alpha * d.alpha_scale, self.alpha2 * d.alpha_scale
            pdot = J @ d.v
            drift = pin.getFrameClassicalAcceleration(model, data, fid, pin.ReferenceFrame.LOCAL_WORLD_ALIGNED).linear
            # lower: J q̈ + drift ≥ −(a1+a2) ṗ − a1 a2 h_lo
            b[:3] = (a1 + a2) * pdot + a1 * a2 * h_lo + drift
            b[3:] = -(a1 + a2) * pdot + a1 * a2 * h_hi - drift


CONSTRAINTS = {
    "joint_position": JointPositionLimits,
    "joint_velocity": JointVelocityLimits,
    "effort": EffortLimits,
    "acceleration": AccelerationLimits,
    "workspace": WorkspaceBox,
}
