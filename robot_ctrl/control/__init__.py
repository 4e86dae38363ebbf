"""Control core (ROS-free): chunk execution and model-based inverse dynamics."""
from robot_ctrl.control.computed_torque import OUTPUT_MODES, JointController
from robot_ctrl.control.trajectory import ChunkExecutor, TrajectoryError

__all__ = ["OUTPUT_MODES", "ChunkExecutor", "JointController", "TrajectoryError"]
