"""End-effector targets → joint targets: differential inverse kinematics on pinocchio.

Policies predict absolute end-effector targets (position + a 6-D rotation, the first two
columns of the rotation matrix, as CARP and ResiP do) plus a gripper command. `DiffIK` turns
a target pose into a joint configuration near the current one by damped least squares,

    Δq = Jᵀ (J Jᵀ + λ² I)⁻¹ [k_p e_p; k_r e_r] + (I − J⁺J) k_n (q_home − q),

iterated a few times, with the result kept inside the joint limits and each step inside the
joint velocity limits. The gripper command g ∈ [−1, 1] opens the fingers linearly from closed
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
                 k_null: float = 0.05, iters: int = 8):
        self.robot = robot
        J = robot.jacobian(robot.home)
        moving = np.flatnonzero(np.abs(J).sum(axis=0) > 1e-9)
        self.arm = moving
        self.gripper = np.setdiff1d(np.arange(robot.n), moving)
        self.damping, self.k_pos, self.k_rot, self.k_null, self.iters = damping, k_pos, k_rot, k_null, iters
        span = robot.q_max - robot.q_min
        self.lo = robot.q_min + 0.02 * span
        self.hi = robot.q_max - 0.02 * span

    def ee_pose(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        T = self.robot.fk(q)
        return T[:3, 3].copy(), T[:3, :3].copy()

    def gripper_positions(self, g: float) -> np.ndarray:
        """Finger positions for a gripper command g ∈ [−1, 1] (clipped)."""
        g = float(np.clip(g, -1.0, 1.0))
        lo, hi = self.robot.q_min[self.gripper], self.robot.q_max[self.gripper]
        return lo + 0.5 * (g + 1.0) * (hi - lo)

    def solve(self, q: np.ndarray, p_target: np.ndarray, R_target: np.ndarray, max_step=None) -> np.ndarray:
        """A joint configuration that moves the end effector towards the target pose, starting
        from q; `max_step` (per joint) bounds how far it may go."""
        q = np.array(q, dtype=float)
        q0 = q.copy()
        a = self.arm
        lam2 = self.damping**2
        for _ in range(self.iters):
            p, R = self.ee_pose(q)
            e = np.concatenate([self.k_pos * (p_target - p), self.k_rot * (R @ pin.log3(R.T @ R_target))])
            J = self.robot.jacobian(q)[:, a]
            JJt = J @ J.T + lam2 * np.eye(6)
            dq = J.T @ np.linalg.solve(JJt, e)
            # null space: drift towards home, never against the task
            Jpinv = J.T @ np.linalg.solve(JJt, np.eye(6))
            dq += (np.eye(len(a)) - Jpinv @ J) @ (self.k_null * (self.robot.home[a] - q[a]))
            q[a] = np.clip(q[a] + dq, self.lo[a], self.hi[a])
        if max_step is not None:
            q = q0 + np.clip(q - q0, -max_step, max_step)
        return q
