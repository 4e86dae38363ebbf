"""robot_ctrl: run learned robot policies safely on ROS 2.

The core (model, sim, control, ...) is ROS-free; `robot_ctrl.ros` holds thin rclpy nodes.
"""

__version__ = "0.1.0"
