"""The teleop node as a process (as `ros2 launch` starts it): a replayed prompt stream comes out
on /teleop/twist and /teleop/joy, the deadman zeroes the prompt when the stream ends, the e-stop
button sends /estop, a device that is not there gives zero prompts and a clear diagnostic, and
bad parameters stop start-up with a message naming them. Also the message round trip through
`PromptAssembler`, including rejected messages."""
from __future__ import annotations

import json

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import PoseStamped, TwistStamped
from sensor_msgs.msg import Joy
from std_msgs.msg import Bool

from robot_ctrl.ros.teleop_msgs import BUTTON_QOS, COMMAND_STREAM_QOS, PromptAssembler, prompt_to_msgs
from robot_ctrl.teleop.replay import save_prompts
from robot_ctrl.teleop.schema import Prompt
from rosgraph import diag_values, spin_until, start_node, stop


def _stream(path, seconds=1.5, dt=0.02, estop_at=None):
    prompts = []
    for k in range(int(seconds / dt)):
        t = k * dt
        prompts.append(Prompt(stamp=t, mode="twist", twist=[0.05, -0.02, 0.0, 0.0, 0.0, 0.1], gripper=-1.0,
                              intervene=True, estop=estop_at is not None and t >= estop_at))
    save_prompts(path, prompts)
    return path


class Probe:
    def __init__(self, node):
        self.twists, self.joys, self.estops, self.diags = [], [], [], []
        node.create_subscription(TwistStamped, "/teleop/twist", self.twists.append, COMMAND_STREAM_QOS)
        node.create_subscription(Joy, "/teleop/joy", self.joys.append, BUTTON_QOS)
        node.create_subscription(Bool, "/estop", self.estops.append, BUTTON_QOS)
        node.create_subscription(DiagnosticArray, "/diagnostics", self.diags.append, 50)


def _vec(m: TwistStamped):
    t = m.twist
    return np.array([t.linear.x, t.linear.y, t.linear.z, t.angular.x, t.angular.y, t.angular.z])


def test_replayed_prompts_reach_the_topics_and_the_deadman_zeroes_them(ros, tmp_path):
    path = _stream(tmp_path / "p.jsonl", seconds=1.5, estop_at=1.0)
    probe = Probe(ros)
    procs = [start_node("teleop_node", "teleop.yaml",
                        {"device": "replay", "device_args": json.dumps(json.dumps({"path": str(path)})),
                         "deadman_timeout": 0.2})]
    try:
        assert spin_until(ros, lambda: any(np.linalg.norm(_vec(m)) > 0 for m in probe.twists), 20, procs)
        moving = next(m for m in probe.twists if np.linalg.norm(_vec(m)) > 0)
        np.testing.assert_allclose(_vec(moving), [0.05, -0.02, 0, 0, 0, 0.1], atol=1e-9)
        assert moving.header.frame_id == "panda_link0"
        assert spin_until(ros, lambda: any(list(j.buttons)[1] == 1 for j in probe.joys), 5, procs)
        joy = next(j for j in probe.joys if list(j.buttons)[1] == 1)
        assert joy.axes[6] == pytest.approx(-1.0) and joy.axes[0] == pytest.approx(0.05)
        # the e-stop button at 1.0 s of the stream: one /estop true
        assert spin_until(ros, lambda: len(probe.estops) > 0, 10, procs)
        assert probe.estops[0].data is True
        # the stream ends at 1.5 s: after the deadman timeout the twist is zero
        n = len(probe.twists)
        assert spin_until(ros, lambda: len(probe.twists) > n + 40 and np.allclose(_vec(probe.twists[-1]), 0), 10, procs)
        assert spin_until(ros, lambda: int(diag_values(probe.diags, "robot_ctrl/teleop").get("deadman_trips", 0)) >= 1,
                          5, procs)
        d = diag_values(probe.diags, "robot_ctrl/teleop")
        assert d["estops"] == "1" and int(d["published"]) > 50
    finally:
        stop(procs)


def test_wait_for_subscriber_keeps_a_replay_until_someone_listens(ros, tmp_path):
    """With wait_for_subscriber, the 0.5 s stream is not spent while nobody subscribes: it
    plays in full once a subscriber (here the probe, late) has matched."""
    path = _stream(tmp_path / "p.jsonl", seconds=0.5)
    diags = []
    ros.create_subscription(DiagnosticArray, "/diagnostics", diags.append, 50)
    procs = [start_node("teleop_node", "teleop.yaml",
                        {"device": "replay", "device_args": json.dumps(json.dumps({"path": str(path)})),
                         "wait_for_subscriber": "true"})]
    try:
        # diagnostics come at 1 Hz: two of them that say the node is waiting (> 1 s, twice the stream)
        assert spin_until(ros, lambda: int(diag_values(diags, "robot_ctrl/teleop").get("waiting", 0)) > 50, 20, procs)
        assert diag_values(diags, "robot_ctrl/teleop")["published"] == "0"
        twists = []
        ros.create_subscription(TwistStamped, "/teleop/twist", twists.append, COMMAND_STREAM_QOS)
        assert spin_until(ros, lambda: sum(np.linalg.norm(_vec(m)) > 0 for m in twists) >= 15, 10, procs), len(twists)
    finally:
        stop(procs)


def test_missing_device_gives_zero_prompts_and_says_why(ros, tmp_path):
    probe = Probe(ros)
    procs = [start_node("teleop_node", "teleop.yaml",
                        {"device": "replay",
                         "device_args": json.dumps(json.dumps({"path": str(tmp_path / "none.jsonl")}))})]
    try:
        assert spin_until(ros, lambda: len(probe.twists) > 10 and bool(diag_values(probe.diags, "robot_ctrl/teleop")),
                          20, procs)
        assert all(np.allclose(_vec(m), 0) for m in probe.twists)
        d = diag_values(probe.diags, "robot_ctrl/teleop")
        assert d["status"] == "not_found"
        st = next(s for m in reversed(probe.diags) for s in m.status if s.name == "robot_ctrl/teleop")
        assert "no prompt file" in st.message and st.level == DiagnosticStatus.ERROR
    finally:
        stop(procs)


@pytest.mark.parametrize("overrides,message", [
    ({"device": "joystick9"}, "unknown teleop device 'joystick9'"),
    ({"device": "replay", "device_args": "'[1, 2]'"}, "must be a JSON object"),
    ({"deadman": "coast"}, "parameter 'deadman'"),
])
def test_bad_parameters_stop_startup_naming_them(overrides, message):
    proc = start_node("teleop_node", "teleop.yaml", overrides)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode != 0
    assert message in out.decode(), out.decode()


def test_prompt_messages_round_trip_and_bad_messages_are_rejected(ros):
    asm = PromptAssembler(timeout=0.3)
    p = Prompt(stamp=0.0, mode="twist", twist=[0.1, 0, 0, 0, 0, -0.2], gripper=0.5, clutch=True)
    msgs = prompt_to_msgs(p, ros.get_clock().now().to_msg(), "base")
    asm.on_twist(msgs["twist"], 1.0)
    asm.on_joy(msgs["joy"], 1.0)
    got = asm.prompt(1.1)
    assert got.mode == "twist" and got.clutch and got.gripper == 0.5
    np.testing.assert_allclose(got.twist, p.twist)
    # a pose prompt that arrives later wins while fresh
    q = Prompt(stamp=0.0, mode="pose", position=[0.4, 0.1, 0.3], quaternion=[0, 1, 0, 0])
    asm.on_pose(prompt_to_msgs(q, msgs["twist"].header.stamp, "base")["pose"], 1.2)
    got = asm.prompt(1.25)
    assert got.mode == "pose"
    np.testing.assert_allclose(got.position, [0.4, 0.1, 0.3])
    assert asm.prompt(2.0) is None  # nothing fresh
    bad = TwistStamped()
    bad.twist.linear.x = float("nan")
    asm.on_twist(bad, 3.0)
    badpose = PoseStamped()
    badpose.pose.orientation.w = 2.0
    asm.on_pose(badpose, 3.0)
    asm.on_joy(Joy(axes=[0.0] * 3, buttons=[0, 0, 0]), 3.0)
    asm.on_joy(Joy(axes=[0.0] * 6 + [4.0], buttons=[0, 0, 0]), 3.0)
    assert asm.rejected == 4 and asm.prompt(3.0) is None


def test_clutch_pose_form_applies_device_motion_to_the_captured_hand_pose(ros, tmp_path):
    """clutch_pose: while the clutch is held, the integrated twist (5 cm along x) moves the target
    from the hand pose captured at the press; after release the target holds."""
    from robot_ctrl.control.cartesian import DiffIK
    from robot_ctrl.model import RobotModel
    from sensor_msgs.msg import JointState

    dt = 0.02
    # 2 s before the press: on a loaded machine the node's first joint state (the hand the
    # clutch captures) can take a while, and motion before it is not the test's subject
    prompts = [Prompt(stamp=k * dt, mode="twist") for k in range(100)]
    prompts += [Prompt(stamp=(100 + k) * dt, mode="twist", twist=[0.05, 0, 0, 0, 0, 0], clutch=True) for k in range(50)]
    prompts += [Prompt(stamp=(150 + k) * dt, mode="twist", twist=[0.05, 0, 0, 0, 0, 0]) for k in range(40)]
    save_prompts(tmp_path / "c.jsonl", prompts)
    robot = RobotModel.load("panda")
    hand = DiffIK(robot).ee_pose(robot.home)[0]
    poses = []
    ros.create_subscription(PoseStamped, "/teleop/pose", poses.append, COMMAND_STREAM_QOS)
    state_pub = ros.create_publisher(JointState, "/joint_states", 10)
    js = JointState(name=list(robot.joint_names), position=[float(x) for x in robot.home],
                    velocity=[0.0] * robot.n)
    procs = [start_node("teleop_node", "teleop.yaml",
                        {"device": "replay", "device_args": json.dumps(json.dumps({"path": str(tmp_path / "c.jsonl")})),
                         "clutch_pose": "true", "deadman_timeout": 0.5})]
    try:
        # the stream ends at 3.8 s; the last pose after release is the held target
        assert spin_until(ros, lambda: state_pub.publish(js) or (len(poses) > 60 and not poses[-1] is None
                                                                  and len(poses) > 0), 20, procs)
        spin_until(ros, lambda: state_pub.publish(js) or False, 4.5, procs)
        p = poses[-1].pose.position
        moved = np.array([p.x, p.y, p.z]) - hand
        np.testing.assert_allclose(moved, [0.05, 0.0, 0.0], atol=0.008, err_msg=str(moved))
        first = poses[0].pose.position
        np.testing.assert_allclose([first.x, first.y, first.z], hand, atol=0.005)  # captured at the press
    finally:
        stop(procs)
