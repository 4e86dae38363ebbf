"""Reach: bring the end effector to a random target point (within 2 cm)."""
from __future__ import annotations

import numpy as np

from robot_ctrl.control.cartesian import rot6d_from_matrix
from robot_ctrl.tasks.base import TaskEnv

TARGET_LOW = np.array([0.30, -0.30, 0.15])
TARGET_HIGH = np.array([0.60, 0.30, 0.50])


class ReachEnv(TaskEnv):
    objects = ()
    goal_size = 3
    expert_noise = 0.01  # default scripted-expert noise for demonstrations (m)
    tolerance = 0.02

    def __init__(self, **kwargs):
        kwargs.setdefault("horizon", 40)
        super().__init__(**kwargs)
        self.target = np.zeros(3)

    def _reset_task(self, rng):
        self.target = rng.uniform(TARGET_LOW, TARGET_HIGH)

    def goal(self):
        return self.target.copy()

    def distance(self) -> float:
        return float(np.linalg.norm(self.ee()[0] - self.target))

    def _success(self):
        return self.distance() < self.tolerance

    def _dense_reward(self):
        return -self.distance()

    def expert(self, noise: float = 0.0) -> np.ndarray:
        """Head for the target with the home orientation, the gripper open; `noise` is the
        standard deviation (m) of Gaussian noise added to the commanded position."""
        p = self.target + (self.np_random.normal(0.0, noise, 3) if noise > 0 else 0.0)
        return np.concatenate([p, rot6d_from_matrix(self.home_rotation()), [1.0]]).astype(np.float32)
