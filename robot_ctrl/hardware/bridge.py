"""The hardware bridge: the stack's command in the controllers a ros2_control robot runs.

The stack computes one command per control period, in its robot's joint order (the robot YAML's
`joints`). A ros2_control robot takes it through one of two standard controllers:

* a **forward command controller** (position, velocity or effort): `std_msgs/Float64MultiArray`
  on `/<controller>/commands`, one value per joint of the controller's `joints` list, in that
  list's order (the array carries no names, so the order must come from configuration);
* a **joint trajectory controller**: `trajectory_msgs/JointTrajectory` on
  `/<controller>/joint_trajectory`, joints by name. Streaming a command means sending a
  one-point trajectory every period, `lead_s` ahead: each replaces the last (the controller
  interpolates from its current state to the point). The stack then runs in velocity mode
  (the safety filter's velocity output v): the point is q + v·lead_s with velocity v, from the
  measured q. Torque control needs a forward effort controller.

State comes from joint_state_broadcaster's `/joint_states` and is always read by name
(`robot_ctrl.ros.common.JointOrder`): joints the stack does not control (a camera pan, a
second arm) are ignored, and a state missing one of the stack's joints stops activation with
an error naming them (`missing_joints`).

ROS-free: the safety node (`robot_ctrl.ros.safety_node`) owns one `CommandMap` and turns its
output into the controller's message.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

CONTROLLER_TYPES = ("forward", "trajectory")
INTERFACES = ("position", "velocity", "effort")


class BridgeError(ValueError):
    """The controller configuration does not fit the robot; the message names what."""


@dataclass(frozen=True)
class HardwareInterface:
    """Which controller receives the stack's command, and how."""

    controller_type: str = "forward"
    controller_name: str = "forward_effort_controller"
    interface: str = "effort"  # what the stack commands (the safety filter's command_mode)
    joints: tuple[str, ...] = field(default_factory=tuple)  # the controller's joints; () = the stack's order
    lead_s: float = 0.01  # trajectory: the streamed point's time_from_start

    def __post_init__(self):
        if self.controller_type not in CONTROLLER_TYPES:
            raise BridgeError(f"controller_type '{self.controller_type}': expected one of {list(CONTROLLER_TYPES)}")
        if self.interface not in INTERFACES:
            raise BridgeError(f"interface '{self.interface}': expected one of {list(INTERFACES)}")
        name = self.controller_name.strip("/")
        if not name or any(c.isspace() for c in name):
            raise BridgeError(f"controller_name '{self.controller_name}' is not a ROS name")
        if self.controller_type == "trajectory" and self.interface == "effort":
            raise BridgeError("a joint trajectory controller takes positions (the stack streams q + v·lead_s "
                              "from velocity commands), not efforts; run the stack in velocity mode, or use a "
                              "forward effort controller (controller_type forward) for torque control")
        if not (np.isfinite(self.lead_s) and self.lead_s > 0):
            raise BridgeError(f"lead_s must be > 0, got {self.lead_s}")

    @property
    def topic(self) -> str:
        name = self.controller_name.strip("/")
        return f"/{name}/commands" if self.controller_type == "forward" else f"/{name}/joint_trajectory"


class CommandMap:
    """Stack order → controller order, by name, fixed at construction (no per-step lookup)."""

    def __init__(self, stack_joints, iface: HardwareInterface):
        self.stack_joints = tuple(stack_joints)
        self.iface = iface
        joints = iface.joints or self.stack_joints
        dup = sorted({j for j in joints if joints.count(j) > 1})
        if dup:
            raise BridgeError(f"controller '{iface.controller_name}' lists joints twice: {', '.join(dup)}")
        unknown = [j for j in joints if j not in self.stack_joints]
        if unknown:
            raise BridgeError(f"controller '{iface.controller_name}' lists joints the robot does not have: "
                              f"{', '.join(unknown)} (robot joints: {', '.join(self.stack_joints)})")
        self.joints = tuple(joints)
        self.index = np.array([self.stack_joints.index(j) for j in self.joints], dtype=np.intp)
        self.identity = self.joints == self.stack_joints
        # stack joints this controller does not drive (e.g. the fingers on an arm-only controller)
        self.uncommanded = tuple(j for j in self.stack_joints if j not in self.joints)
        self._out = np.zeros(len(self.joints))
        self._pos = np.zeros(len(self.joints))

    def to_controller(self, u: np.ndarray) -> np.ndarray:
        """The command in the controller's order. Returns an internal buffer (valid until the
        next call) unless the orders are the same."""
        if self.identity:
            return u
        np.take(u, self.index, out=self._out)
        return self._out

    def trajectory_point(self, q: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The streamed trajectory point (positions, velocities) in the controller's order for a
        velocity command v at the measured q (both in the stack's order): q + v·lead_s and v.
        Internal buffers, valid until the next call."""
        np.take(q, self.index, out=self._pos)
        np.take(v, self.index, out=self._out)
        self._pos += self.iface.lead_s * self._out
        return self._pos, self._out


def missing_joints(required, names) -> list[str]:
    """The joints of `required` that a joint state with `names` lacks."""
    have = set(names)
    return [j for j in required if j not in have]
