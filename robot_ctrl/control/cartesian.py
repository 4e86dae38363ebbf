"""End-effector targets → joint targets: differential inverse kinematics on pinocchio.

Policies predict absolute end-effector targets (position + a 6-D rotation, the first two
columns of the rotation matrix, as CARP and ResiP do) plus a gripper command. `DiffIK` turns
a target pose into a joint configuration near the current one by damped least squares,

    Δq = argmin ‖J Δq − [k_p e_p; k_r e_r]‖² + λ²‖Δq‖² + μ‖Δq − k_n (q_home − q)‖²
         s.t. the joint limits and the step bound (a box on Δq),

a small QP solved by daqp, iterated a few times. The gripper command g ∈ [−1, 1] opens the fingers linearly from closed
(−1) to fully open (+1).
"""
from __future__ import annotations

import numpy as np
import pinocchio as pin

from robot_ctrl.model.robot import RobotModel


def rot6d_from_matrix(R: np.ndarray) -> np.ndarray:
    """The 6-D rotation representation: the first two columns of R, stacked."""
    R = np.asarray(R, dtype=float)
    return np.concatenate([R[:, 0], R[:, 1]])


def matrix_from_rot6d(x: np.ndarray) -> np.ndarray:
    """Rotation matrix from a 6-D representation (Gram-Schmidt); raises on degenerate input."""
    x = np.asarray(x, dtype=float)
    if x.shape != (6,) or not np.all(np.isfinite(x)):
        raise ValueError("a 6-D rotation must be 6 finite numbers")
    a, b = x[:3], x[3:]
    na = np.linalg.norm(a)
    if na < 1e-9:
        raise ValueError("degenerate 6-D rotation: first column is zero")
    c1 = a / na
    b = b - c1 * (c1 @ b)
    nb = np.linalg.norm(b)
    if nb < 1e-9:
        raise ValueError("degenerate 6-D rotation: the two columns are parallel")
    c2 = b / nb
    return np.stack([c1, c2, np.cross(c1, c2)], axis=1)


class DiffIK:
    """Joint targets for end-effector pose targets (see the module doc).

    arm: indices of the joints that move the end effector (default: every controlled joint
    whose Jacobian column is non-zero at home); gripper: the other joints (fingers).
    """

    def __init__(self, robot: RobotModel, damping: float = 0.05, k_pos: float = 1.0, k_rot: float = 0.5,
                 k_null: float = 0.05, iters: int = 8, mu: float = 1e-3):
        self.robot = robot
        J = robot.jacobian(robot.home)
        moving = np.flatnonzero(np.abs(J).sum(axis=0) > 1e-9)
        self.arm = moving
        self.gripper = np.setdiff1d(np.arange(robot.n), moving)
        self.damping, self.k_pos, self.k_rot, self.k_null, self.iters = damping, k_pos, k_rot, k_null, iters
        self.mu = mu  # weight of the pull towards home, kept small so it never fights the task
        import daqp

        self._daqp = daqp.solve
        self._eye = np.eye(len(moving))
        span = robot.q_max - robot.q_min
        self.lo = robot.q_min + 0.02 * span
        self.hi = robot.q_max - 0.02 * span

    def ee_pose(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        T = self.robot.fk(q)
        return T[:3, 3].copy(), T[:3, :3].copy()

    def gripper_positions(self, g: float) -> np.ndarray:
        """Finger positions for a gripper command g ∈ [−1, 1] (clipped): −1 closed, +1 the home
        opening (the robot YAML keeps it inside the joint limit by more than the safety
        filter's margin, so "open" never pushes against a barrier)."""
        g = float(np.clip(g, -1.0, 1.0))
        lo = self.robot.q_min[self.gripper]
        hi = np.where(self.robot.home[self.gripper] > lo, self.robot.home[self.gripper], self.robot.q_max[self.gripper])
        return lo + 0.5 * (g + 1.0) * (hi - lo)

    def solve(self, q: np.ndarray, p_target: np.ndarray, R_target: np.ndarray, max_step=None,
              step_low=None, step_high=None) -> np.ndarray:
        """A joint configuration that moves the end effector towards the target pose, starting
        from q; `max_step` (per joint) bounds how far it may go, or `step_low`/`step_high` give
        an asymmetric box on q − q_start.

        Each iteration is a small QP (daqp) rather than a clipped least-squares step: the joint
        limits and the step bound are constraints, so when one joint reaches its bound the others
        take over the motion instead of the solution stalling against a clip."""
        q = np.array(q, dtype=float)
        a = self.arm
        lo, hi = self.lo[a].copy(), self.hi[a].copy()
        if max_step is not None:
            ms = np.broadcast_to(np.asarray(max_step, dtype=float), q.shape)[a]
            lo = np.maximum(lo, q[a] - ms)
            hi = np.minimum(hi, q[a] + ms)
        if step_low is not None:
            lo = np.maximum(lo, q[a] + np.broadcast_to(np.asarray(step_low, dtype=float), q.shape)[a])
        if step_high is not None:
            hi = np.minimum(hi, q[a] + np.broadcast_to(np.asarray(step_high, dtype=float), q.shape)[a])
        lo = np.minimum(lo, q[a])  # a start outside the box may stay where it is
        hi = np.maximum(hi, q[a])
        H0 = (self.damping**2 + self.mu) * np.eye(len(a))
        for _ in range(self.iters):
            p, R = self.ee_pose(q)
            e = np.concatenate([self.k_pos * (p_target - p), self.k_rot * (R @ pin.log3(R.T @ R_target))])
            J = self.robot.jacobian(q)[:, a]
            H = J.T @ J + H0
            f = -(J.T @ e) - self.mu * self.k_null * (self.robot.home[a] - q[a])
            dq, _, flag, _ = self._daqp(H, f, self._eye, hi - q[a], lo - q[a])
            if flag < 0:  # cannot happen for a box around the current point; stay put if it does
                break
            q[a] += dq
        return q


def step_box(v_prev: np.ndarray, dt: float, vmax: np.ndarray, speed_fraction: float = 0.5,
             a_max: float | np.ndarray = 5.0) -> tuple[np.ndarray, np.ndarray]:
    """The joint steps (low, high) one segment of `dt` may take after a segment of mean
    velocity `v_prev`: mean velocity at most speed_fraction·vmax, change at most a_max·dt/4
    (see `ik_chunk`)."""
    dv = np.asarray(a_max, dtype=float) * dt / 4.0
    lo = np.maximum(-speed_fraction * vmax, v_prev - dv) * dt
    hi = np.minimum(speed_fraction * vmax, v_prev + dv) * dt
    return np.minimum(lo, hi), np.maximum(lo, hi)


def joint_chunk(q_start: np.ndarray, dts, targets, v_max: np.ndarray, q_min: np.ndarray, q_max: np.ndarray,
                v_start: np.ndarray | None = None, speed_fraction: float = 0.5,
                a_max: float | np.ndarray = 5.0) -> tuple[np.ndarray, np.ndarray]:
    """`ik_chunk` for joint-space targets (K, n): each target clipped into the same feasibility
    box and the joint limits. Returns joint targets and segment mean velocities (K, n)."""
    vmax = np.where(np.isfinite(v_max), v_max, 1.0)
    q_prev = np.array(q_start, dtype=float)
    v_prev = np.zeros_like(q_prev) if v_start is None else np.array(v_start, dtype=float)
    targets = np.asarray(targets, dtype=float)
    Q, V = np.empty((len(dts), len(q_prev))), np.empty((len(dts), len(q_prev)))
    for k, dt in enumerate(dts):
        lo, hi = step_box(v_prev, float(dt), vmax, speed_fraction, a_max)
        q = np.clip(np.clip(targets[k], q_prev + lo, q_prev + hi), q_min, q_max)
        Q[k], V[k] = q, (q - q_prev) / float(dt)
        q_prev, v_prev = q, V[k]
    return Q, V


def ik_chunk(ik: DiffIK, q_start: np.ndarray, dts, positions, rotations, grippers, v_max: np.ndarray,
             v_start: np.ndarray | None = None, speed_fraction: float = 0.5,
             a_max: float | np.ndarray = 5.0) -> tuple[np.ndarray, np.ndarray]:
    """Joint targets (K, n) and velocities (K, n) for K Cartesian targets reached one after the
    other, `dts[k]` seconds apart, starting from q_start moving at v_start (default rest).

    Each target is IK from the previous one inside a box that keeps the motion feasible: the
    mean velocity of a segment at most `speed_fraction`·v_max, and its change from the previous
    segment's at most a_max·dt/4, because the executor's cubic Hermite piece (arriving with the
    segment's mean velocity) peaks at 4·Δv/dt of acceleration. The gripper joints follow their
    command inside the same box. The pieces through these targets are what a task
    environment's step executes, one action at a time, and what the controller node executes
    for a whole chunk, so both move the same way."""
    vmax = np.where(np.isfinite(v_max), v_max, 1.0)
    q_prev = np.array(q_start, dtype=float)
    v_prev = np.zeros_like(q_prev) if v_start is None else np.array(v_start, dtype=float)
    K = len(dts)
    Q, V = np.empty((K, len(q_prev))), np.empty((K, len(q_prev)))
    for k in range(K):
        dt = float(dts[k])
        lo, hi = step_box(v_prev, dt, vmax, speed_fraction, a_max)
        q = ik.solve(q_prev, positions[k], rotations[k], step_low=lo, step_high=hi)
        g = ik.gripper
        q[g] = np.clip(ik.gripper_positions(grippers[k]), q_prev[g] + lo[g], q_prev[g] + hi[g])
        Q[k], V[k] = q, (q - q_prev) / dt
        q_prev, v_prev = q, V[k]
    return Q, V
