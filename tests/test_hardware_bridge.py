"""The hardware bridge (robot_ctrl.hardware.bridge): the safety filter's command in the
controllers a ros2_control robot runs, joints mapped by name. Core mapping and refusals, then
the safety node as a process, commanding a forward controller in a different joint order and a
joint trajectory controller, with a joint state it did not write itself (shuffled, an extra joint)."""
from __future__ import annotations

import time

import numpy as np
import pytest
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory

from robot_ctrl.hardware.bridge import BridgeError, CommandMap, HardwareInterface, missing_joints
from robot_ctrl.model import RobotModel
from rosgraph import names_param, spin_until, start_node, stop

PANDA = RobotModel.load("panda")
ARM = [f"panda_joint{i}" for i in range(1, 8)]


def test_forward_controller_order_is_mapped_by_name():
    joints = tuple(reversed(ARM))  # an arm-only controller listing its joints backwards
    m = CommandMap(PANDA.joint_names, HardwareInterface(controller_name="arm_effort", joints=joints))
    u = np.arange(PANDA.n, dtype=float)
    out = m.to_controller(u)
    assert out.tolist() == [float(PANDA.joint_names.index(j)) for j in joints]
    assert m.uncommanded == ("panda_finger_joint1", "panda_finger_joint2")
    assert m.iface.topic == "/arm_effort/commands"
    same = CommandMap(PANDA.joint_names, HardwareInterface())
    assert same.identity and same.to_controller(u) is u and same.uncommanded == ()


def test_trajectory_point_leads_the_measured_state_by_the_velocity_command():
    iface = HardwareInterface(controller_type="trajectory", controller_name="/jtc/", interface="velocity",
                              joints=tuple(ARM[::2]), lead_s=0.02)
    m = CommandMap(PANDA.joint_names, iface)
    q = np.asarray(PANDA.home, dtype=float)
    v = np.linspace(-0.5, 0.5, PANDA.n)
    pos, vel = m.trajectory_point(q, v)
    idx = [PANDA.joint_names.index(j) for j in ARM[::2]]
    np.testing.assert_allclose(vel, v[idx])
    np.testing.assert_allclose(pos, q[idx] + 0.02 * v[idx])
    assert iface.topic == "/jtc/joint_trajectory"


@pytest.mark.parametrize("kwargs, message", [
    ({"controller_type": "cartesian"}, "controller_type 'cartesian'"),
    ({"interface": "torque"}, "interface 'torque'"),
    ({"controller_type": "trajectory", "interface": "effort"}, "not efforts"),
    ({"controller_name": "my controller"}, "not a ROS name"),
    ({"lead_s": 0.0}, "lead_s"),
])
def test_bad_controller_configurations_are_named(kwargs, message):
    with pytest.raises(BridgeError, match=message):
        HardwareInterface(**kwargs)


def test_unknown_and_duplicate_joints_are_named():
    with pytest.raises(BridgeError, match="does not have: wrist_cam"):
        CommandMap(PANDA.joint_names, HardwareInterface(joints=("panda_joint1", "wrist_cam")))
    with pytest.raises(BridgeError, match="joints twice: panda_joint2"):
        CommandMap(PANDA.joint_names, HardwareInterface(joints=("panda_joint2", "panda_joint1", "panda_joint2")))
    assert missing_joints(PANDA.joint_names[:3], ["panda_joint2", "camera"]) == ["panda_joint1", "panda_joint3"]


def _state(q, names_order, extra=True):
    msg = JointState()
    names = list(names_order) + (["camera_pan"] if extra else [])
    pos = {n: float(q[PANDA.joint_names.index(n)]) for n in names_order}
    msg.name = names
    msg.position = [pos.get(n, 0.7) for n in names]
    msg.velocity = [0.0] * len(names)
    return msg


@pytest.mark.parametrize("controller", ["forward", "trajectory"])
def test_safety_node_commands_a_ros2_control_controller(ros, controller):
    """The node reads a broadcaster-style /joint_states (shuffled order, an extra joint), and its
    filtered command reaches the configured controller in that controller's joint order."""
    joints = list(reversed(ARM))
    if controller == "forward":
        params = {"controller_name": "arm_controller", "controller_joints": names_param(joints)}
        got = []
        ros.create_subscription(Float64MultiArray, "/arm_controller/commands", lambda m: got.append(list(m.data)), 50)
    else:
        params = {"command_mode": "velocity", "controller_type": "trajectory", "controller_name": "jtc",
                  "controller_joints": names_param(joints), "trajectory_lead_s": 0.05}
        got = []
        ros.create_subscription(JointTrajectory, "/jtc/joint_trajectory", got.append, 50)
    state_pub = ros.create_publisher(JointState, "/joint_states", 10)
    nominal_pub = ros.create_publisher(Float64MultiArray, "/safety_filter/nominal", 10)
    q = np.asarray(PANDA.home, dtype=float)
    shuffled = PANDA.joint_names[::-1][1::2] + PANDA.joint_names[::-1][0::2]
    # (this probe feeds states slower than the 500 Hz control rate: a longer state timeout)
    proc = start_node("safety_node", "safety_filter.yaml", {"config": "panda_tasks", "state_timeout_periods": 10.0,
                                                            **params})
    try:
        def publish():
            msg = _state(q, shuffled)
            msg.header.stamp = ros.get_clock().now().to_msg()
            state_pub.publish(msg)
            # gravity torques (effort) or a slow joint-1 motion (velocity): both safe at home
            u = PANDA.gravity(q) if controller == "forward" else np.r_[0.05, np.zeros(PANDA.n - 1)]
            nominal_pub.publish(Float64MultiArray(data=[float(x) for x in u]))
            time.sleep(0.004)
            return len(got) > 20

        assert spin_until(ros, publish, 30, [proc])
        if controller == "forward":
            g = PANDA.gravity(q)
            out = np.array(got[-1])
            assert out.shape == (7,)
            np.testing.assert_allclose(out, [g[PANDA.joint_names.index(j)] for j in joints], atol=0.5)
        else:
            msg = got[-1]
            assert list(msg.joint_names) == joints and len(msg.points) == 1
            pt = msg.points[0]
            assert pt.time_from_start.nanosec == 50_000_000
            idx = [PANDA.joint_names.index(j) for j in joints]
            v = np.array(pt.velocities)
            assert v[-1] == pytest.approx(0.05, abs=0.01) and np.all(np.abs(v[:-1]) < 0.01), v
            np.testing.assert_allclose(pt.positions, q[idx] + 0.05 * v, atol=1e-9)
    finally:
        stop([proc])


def test_a_bad_controller_configuration_stops_startup_naming_it():
    proc = start_node("safety_node", "safety_filter.yaml", {"controller_type": "trajectory"})
    out, _ = proc.communicate(timeout=60)
    text = out.decode(errors="replace")
    assert proc.returncode != 0 and "not efforts" in text, text
    proc = start_node("safety_node", "safety_filter.yaml", {"controller_joints": names_param(["panda_joint1", "elbow"])})
    out, _ = proc.communicate(timeout=60)
    text = out.decode(errors="replace")
    assert proc.returncode != 0 and "does not have: elbow" in text, text
