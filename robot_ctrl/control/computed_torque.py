"""Joint controller: chunk executor + model-based inverse dynamics.

Output per command mode (chosen in config):
- effort:   computed torque  tau = M(q) (a_d + Kp e + Kd de) + h(q, v), evaluated as one RNEA
            call rnea(q, v, a_d + Kp e + Kd de), clamped to the effort limits;
- position: q_d, clamped to the position limits (the robot's servo tracks it);
- velocity: v_d + (Kp/Kd) e, clamped to the velocity limits.
e = q_d - q. If time goes backwards (a simulator reset), the reference restarts as a hold at
the current state. The command is always finite: a non-finite result falls back to the hold command.
"""
from __future__ import annotations

import math

import numpy as np

from robot_ctrl.control.trajectory import ChunkExecutor
from robot_ctrl.model.robot import RobotModel

OUTPUT_MODES = ("effort", "position", "velocity")


class JointController:
    def __init__(self, robot: RobotModel, mode: str = "effort", kp=None, kd=None):
        if mode not in OUTPUT_MODES:
            raise ValueError(f"controller mode must be one of {OUTPUT_MODES}, got '{mode}'")
        self.robot = robot
        self.mode = mode
        self.n = robot.n
        self.kp = np.asarray(robot.kp if kp is None else kp, dtype=float).reshape(-1)
        self.kd = np.asarray(robot.kd if kd is None else kd, dtype=float).reshape(-1)
        for name, g in (("kp", self.kp), ("kd", self.kd)):
            if g.shape != (self.n,) or not np.all(np.isfinite(g)) or np.any(g < 0):
                raise ValueError(f"{name} must be {self.n} finite non-negative gains, got {g.tolist()}")
        self.executor = ChunkExecutor(robot.joint_names)
        self.error = np.zeros(self.n)
        self.nonfinite = 0
        self.time_resets = 0
        self._t_last = -math.inf
        self._acc = np.zeros(self.n)

    @property
    def started(self) -> bool:
        return self.executor.started

    def hold_here(self, t: float, q: np.ndarray) -> None:
        self.executor.hold(t, q)

    def update(self, t: float, q: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Command for state (q, v) at time t. On the first call the reference is q (hold)."""
        if not math.isfinite(t):
            self.nonfinite += 1
            return self.hold_command(q)
        if self.executor.started and t < self._t_last:
            # time went backwards (simulator reset, bag replay): the old reference belongs to
            # another timeline, so hold where the robot is now
            self.time_resets += 1
            self.executor.hold(t, q)
        self._t_last = t
        if not self.executor.started:
            if not np.all(np.isfinite(q)):  # no reference to start from: hold, start on a good state
                self.nonfinite += 1
                return self.hold_command(q)
            self.executor.hold(t, q)
        qd, vd, ad = self.executor.sample(t)
        np.subtract(qd, q, out=self.error)
        if self.mode == "effort":
            acc = self._acc
            np.multiply(self.kp, self.error, out=acc)
            acc += ad
            acc += self.kd * (vd - v)
            u = np.clip(self.robot.rnea(q, v, acc), -self.robot.tau_max, self.robot.tau_max)
        elif self.mode == "position":
            u = np.clip(qd, self.robot.q_min, self.robot.q_max)
        else:
            ratio = np.divide(self.kp, self.kd, out=np.zeros(self.n), where=self.kd > 0)
            u = np.clip(vd + ratio * self.error, -self.robot.v_max, self.robot.v_max)
        if not np.all(np.isfinite(u)):
            self.nonfinite += 1
            u = self.hold_command(q)
        return u

    def hold_command(self, q: np.ndarray) -> np.ndarray:
        if self.mode == "effort":
            g = self.robot.gravity(q)
            return np.where(np.isfinite(g), g, 0.0)
        if self.mode == "position":
            return np.clip(np.where(np.isfinite(q), q, self.robot.home), self.robot.q_min, self.robot.q_max)
        return np.zeros(self.n)
