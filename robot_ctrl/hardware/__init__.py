"""Stand-ins for robot hardware (ROS-free): a fake ros2_control robot for tests and demos."""
from robot_ctrl.hardware.fake import INTERFACES, FakeHardware, FakeHardwareConfig, LinearTrajectory, Sample

__all__ = ["INTERFACES", "FakeHardware", "FakeHardwareConfig", "LinearTrajectory", "Sample"]
