"""Robot description (URDF + YAML) and its kinematics/dynamics on pinocchio."""
from robot_ctrl.model.config import RobotConfig, RobotConfigError, available_robots, load_robot_config
from robot_ctrl.model.robot import RobotModel

__all__ = ["RobotConfig", "RobotConfigError", "RobotModel", "available_robots", "load_robot_config"]
