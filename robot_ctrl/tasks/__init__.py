"""Manipulation tasks (Gymnasium environments), registered as `robot_ctrl/<Task>-v0`."""
import gymnasium as gym

from robot_ctrl.tasks.base import ACTION_SIZE, TaskEnv
from robot_ctrl.tasks.reach import ReachEnv

TASKS = {"reach": "robot_ctrl/Reach-v0"}

if "robot_ctrl/Reach-v0" not in gym.registry:
    gym.register(id="robot_ctrl/Reach-v0", entry_point="robot_ctrl.tasks.reach:ReachEnv")

__all__ = ["ACTION_SIZE", "TASKS", "ReachEnv", "TaskEnv"]
