"""The stack's command as a ros2_control controller's message (robot_ctrl.hardware.bridge).

`HardwareOutput(node, robot_joints, iface).publish(u)`: a `std_msgs/Float64MultiArray` on
`/<controller>/commands` (forward command controller, the controller's joint order) or a
one-point `trajectory_msgs/JointTrajectory` on `/<controller>/joint_trajectory` (joint
trajectory controller, joints by name: the point q + v·lead_s with velocity v, `lead_s` ahead,
for the velocity command v at the measured q). The message objects are
built once; publishing fills them in place.
"""
from __future__ import annotations

import numpy as np
from builtin_interfaces.msg import Duration
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from robot_ctrl.hardware.bridge import CommandMap, HardwareInterface
from robot_ctrl.ros.common import COMMAND_QOS


class HardwareOutput:
    def __init__(self, node, robot_joints, iface: HardwareInterface):
        self.map = CommandMap(robot_joints, iface)
        self.iface = iface
        self.topic = iface.topic
        if iface.controller_type == "forward":
            self.pub = node.create_publisher(Float64MultiArray, self.topic, COMMAND_QOS)
            self.msg = Float64MultiArray()
        else:
            self.pub = node.create_publisher(JointTrajectory, self.topic, COMMAND_QOS)
            self.msg = JointTrajectory(joint_names=list(self.map.joints))
            sec, frac = divmod(iface.lead_s, 1.0)
            self.point = JointTrajectoryPoint(time_from_start=Duration(sec=int(sec), nanosec=int(frac * 1e9)))
            self.msg.points = [self.point]
            # header stamp zero: "start now" (the controller's own clock), so a clock offset
            # between the stack and the robot cannot delay or skip the point

    def publish(self, u: np.ndarray, q: np.ndarray) -> None:
        """`u`: the command, `q`: the measured positions it answers (both in the robot's order)."""
        if self.iface.controller_type == "forward":
            self.msg.data = self.map.to_controller(u).tolist()
        else:
            pos, vel = self.map.trajectory_point(q, u)
            self.point.positions, self.point.velocities = pos.tolist(), vel.tolist()
        self.pub.publish(self.msg)

    def describe(self) -> str:
        extra = f"; not driven: {', '.join(self.map.uncommanded)}" if self.map.uncommanded else ""
        return f"{self.iface.controller_type} {self.iface.interface} controller on {self.topic}{extra}"
