"""The stack against a ros2_control robot (issue 6): the fake hardware node stands in for the
driver, with its own joint order, a joint the stack does not control, actuator lag and command
latency; the controller and the safety filter run on the wall clock as they would on a robot,
as processes with the launch's params files (launch/fake_robot.launch.py's graph). Both
controller kinds: a forward effort controller (torque control, computed torque through the
filter) and a joint trajectory controller (the stack in velocity mode streaming points)."""
from __future__ import annotations

import math

import numpy as np
import pytest
from builtin_interfaces.msg import Duration
from diagnostic_msgs.msg import DiagnosticArray
from sensor_msgs.msg import JointState
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from robot_ctrl.model import RobotModel
from rosgraph import diag_values, names_param, spin_until, start_node, stop

PANDA = RobotModel.load("panda")
HW_ORDER = list(reversed(PANDA.joint_names))  # the driver's order is not the stack's


def _graph(kind: str):
    if kind == "forward":
        ctrl, mode, iface, name = "forward", "effort", "effort", "forward_effort_controller"
    else:
        ctrl, mode, iface, name = "trajectory", "velocity", "position", "joint_trajectory_controller"
    hw = start_node("fake_hardware_node", "fake_hardware.yaml", {
        "controller_type": ctrl, "controller_name": name, "interface": iface, "joints": names_param(HW_ORDER),
        "extra_joints": "[camera_pan]", "actuator_tau": 0.005, "latency_s": 0.002})
    controller = start_node("controller_node", "controller.yaml", {"command_mode": mode, "controller_name": name},
                            remap={f"/{name}/commands": "/safety_filter/nominal"})
    safety = start_node("safety_node", "safety_filter.yaml", {
        "command_mode": mode, "controller_type": ctrl, "controller_name": name, "config": "panda_tasks"})
    return [hw, controller, safety]


@pytest.mark.parametrize("kind", ["forward", "trajectory"])
def test_the_stack_drives_the_fake_hardware_through_its_controller(ros, kind):
    states, diags = [], []
    ros.create_subscription(JointState, "/joint_states", states.append, 50)
    ros.create_subscription(DiagnosticArray, "/diagnostics", diags.append, 50)
    traj = ros.create_publisher(JointTrajectory, "/controller/joint_trajectory", 10)

    def q():
        m = states[-1]
        names = list(m.name)
        return np.array([m.position[names.index(j)] for j in PANDA.joint_names])

    procs = _graph(kind)
    try:
        assert spin_until(ros, lambda: len(states) > 50, 30, procs)
        assert list(states[-1].name) == HW_ORDER + ["camera_pan"]
        # held at home (an effort robot falls without torque: the stack holds it against gravity)
        assert spin_until(ros, lambda: False, 1.5, procs) is False
        np.testing.assert_allclose(q()[:7], PANDA.home[:7], atol=0.02)
        # a 2 s chunk: joint 1 and joint 4 move 0.3 rad
        goal = PANDA.home.copy()
        goal[0] += 0.3
        goal[3] += 0.3
        msg = JointTrajectory(joint_names=list(PANDA.joint_names))
        for k in range(1, 21):
            t = 0.1 * k
            s = 0.5 - 0.5 * math.cos(math.pi * k / 20)
            msg.points.append(JointTrajectoryPoint(positions=[float(x) for x in PANDA.home + s * (goal - PANDA.home)],
                                                   time_from_start=Duration(sec=int(t), nanosec=int((t % 1) * 1e9))))
        traj.publish(msg)
        assert spin_until(ros, lambda: np.max(np.abs(q()[:7] - goal[:7])) < 0.02, 15, procs), q() - goal
        spin_until(ros, lambda: False, 1.0, procs)
        assert np.max(np.abs(q()[:7] - goal[:7])) < 0.02  # and stays
        d = diag_values(diags, "robot_ctrl/safety_filter")
        # every state maps by name (the driver's order, the extra joint); on a loaded machine a state
        # delivered more than stale_state_s late is refused for that, a handful at most
        assert d and int(d["rejected_states"]) <= 0.01 * int(d["states"]) and int(d["rejected_commands"]) == 0, d
        assert int(d["commands"]) > 500, d
        hw = diag_values(diags, "robot_ctrl/fake_hardware")
        assert int(hw["rejected_commands"]) == 0 and int(hw["commands"]) > 500, hw
    finally:
        stop(procs)
