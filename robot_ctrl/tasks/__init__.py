"""Manipulation tasks (Gymnasium environments), registered as `robot_ctrl/<Task>-v0`."""
import gymnasium as gym

from robot_ctrl.tasks.base import ACTION_SIZE, TaskEnv
from robot_ctrl.tasks.peg import PegInHoleEnv
from robot_ctrl.tasks.pick_place import PickPlaceEnv
from robot_ctrl.tasks.push import PushEnv
from robot_ctrl.tasks.reach import ReachEnv

# short name → Gymnasium id
TASKS = {
    "reach": "robot_ctrl/Reach-v0",
    "push": "robot_ctrl/Push-v0",
    "pick_place": "robot_ctrl/PickPlace-v0",
    "peg_in_hole": "robot_ctrl/PegInHole-v0",
}
# short name → environment class (what the ROS nodes need without making an environment)
TASK_CLASSES = {"reach": ReachEnv, "push": PushEnv, "pick_place": PickPlaceEnv, "peg_in_hole": PegInHoleEnv}
_ENTRY = {
    "robot_ctrl/Reach-v0": "robot_ctrl.tasks.reach:ReachEnv",
    "robot_ctrl/Push-v0": "robot_ctrl.tasks.push:PushEnv",
    "robot_ctrl/PickPlace-v0": "robot_ctrl.tasks.pick_place:PickPlaceEnv",
    "robot_ctrl/PegInHole-v0": "robot_ctrl.tasks.peg:PegInHoleEnv",
}
for _id, _entry in _ENTRY.items():
    if _id not in gym.registry:
        gym.register(id=_id, entry_point=_entry)

__all__ = ["ACTION_SIZE", "TASKS", "TASK_CLASSES", "PegInHoleEnv", "PickPlaceEnv", "PushEnv", "ReachEnv", "TaskEnv"]
