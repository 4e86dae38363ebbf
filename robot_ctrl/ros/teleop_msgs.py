"""Teleop prompts ↔ ROS messages, both ways (the teleop node publishes, the policy node and the
recorder listen).

Topics (all under /teleop/, plus /estop):

==================  ==========================  ===============================================
topic               type                        content
==================  ==========================  ===============================================
/teleop/twist       geometry_msgs/TwistStamped  hand velocity (m/s, rad/s), base frame; zero
                                                when the operator gives none (deadman)
                                                (not sent while the command is a pose/joints)
/teleop/pose        geometry_msgs/PoseStamped   absolute hand target (clutch form), when given
/teleop/joints      sensor_msgs/JointState      joint targets of a leader arm, when given
/teleop/joy         sensor_msgs/Joy             axes [vx, vy, vz, wx, wy, wz, gripper],
                                                buttons [clutch, intervene, estop]
/estop              std_msgs/Bool               true on the e-stop button's press
==================  ==========================  ===============================================

QoS: reliable, keep last 1 for the command streams (only the newest command matters, and a
late one is worse than none); /teleop/joy and /estop keep 10, so a button press is never
overwritten by the next sample before it is read.

`PromptAssembler` rebuilds one `Prompt` from the newest messages: the command form is the most
recent fresh one (twist, pose or joints, each fresh for `timeout` s after it arrived), the
buttons come from /teleop/joy. A message with NaN/Inf, a bad quaternion, wrong sizes, empty or
repeated joint names or a stamp that is no ROS time (negative, nanosec >= 1e9) is rejected and
counted (`rejected`, per topic in `counts()`), and changes nothing. Frame ids are not checked.
"""
from __future__ import annotations

import numpy as np
from geometry_msgs.msg import PoseStamped, TwistStamped
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Joy, JointState

from robot_ctrl.ros.validation import check_joint_state, check_joint_values, check_stamp
from robot_ctrl.teleop.schema import Prompt

COMMAND_STREAM_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
BUTTON_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
TOPICS = {"twist": "/teleop/twist", "pose": "/teleop/pose", "joints": "/teleop/joints", "joy": "/teleop/joy"}
JOY_AXES = ("vx", "vy", "vz", "wx", "wy", "wz", "gripper")
JOY_BUTTONS = ("clutch", "intervene", "estop")


def prompt_to_msgs(prompt: Prompt, stamp, frame_id: str) -> dict:
    """The messages of one prompt, by key of `TOPICS`: joy always, and the command in its form
    (twist, also zero for a `none` prompt; pose; joints)."""
    out = {}
    v = prompt.twist if prompt.mode == "twist" else np.zeros(6)
    if prompt.mode in ("twist", "none"):  # a pose or joint command is not also a (zero) twist
        tw = TwistStamped()
        tw.header.stamp, tw.header.frame_id = stamp, frame_id
        (tw.twist.linear.x, tw.twist.linear.y, tw.twist.linear.z,
         tw.twist.angular.x, tw.twist.angular.y, tw.twist.angular.z) = (float(x) for x in v)
        out["twist"] = tw
    if prompt.mode == "pose":
        ps = PoseStamped()
        ps.header.stamp, ps.header.frame_id = stamp, frame_id
        ps.pose.position.x, ps.pose.position.y, ps.pose.position.z = (float(x) for x in prompt.position)
        w, x, y, z = (float(c) for c in prompt.quaternion)
        ps.pose.orientation.w, ps.pose.orientation.x, ps.pose.orientation.y, ps.pose.orientation.z = w, x, y, z
        out["pose"] = ps
    if prompt.mode == "joints":
        js = JointState(name=list(prompt.joint_names), position=[float(x) for x in prompt.joint_positions])
        js.header.stamp = stamp
        out["joints"] = js
    joy = Joy(axes=[float(x) for x in v] + [float(prompt.gripper)],
              buttons=[int(prompt.clutch), int(prompt.intervene), int(prompt.estop)])
    joy.header.stamp, joy.header.frame_id = stamp, frame_id
    out["joy"] = joy
    return out


class PromptAssembler:
    """Newest teleop messages → one `Prompt` (see the module doc). `now` is the receiver's
    clock (s); `timeout` how long a command stays fresh.

    Each `on_*` returns whether the message was accepted; `received` and `rejected` count
    all of them, `counts()` per topic (for /diagnostics). `log(key, text)`, if given, is told
    why a message was rejected (the policy node passes its throttled logger)."""

    def __init__(self, timeout: float = 0.3, log=None):
        self.timeout = float(timeout)
        self.log = log
        self._cmd: dict[str, tuple[float, dict]] = {}
        self._buttons = {"gripper": 1.0, "clutch": False, "intervene": False, "estop": False}
        self._buttons_t = -np.inf
        self.rejected = 0
        self.received = 0
        self.by_topic = {k: [0, 0] for k in TOPICS}  # key -> [accepted, rejected]

    def counts(self) -> dict:
        """{prompts_<key>: accepted, rejected_prompts_<key>: rejected} per key of TOPICS."""
        out = {}
        for k, (ok, bad) in self.by_topic.items():
            out[f"prompts_{k}"] = ok
            out[f"rejected_prompts_{k}"] = bad
        return out

    def _reject(self, key: str, why: str) -> bool:
        self.rejected += 1
        self.by_topic[key][1] += 1
        if self.log is not None:
            self.log(f"prompt_{key}", f"rejected {TOPICS[key]}: {why}")
        return False

    def _accept(self, key: str) -> bool:
        self.received += 1
        self.by_topic[key][0] += 1
        return True

    @staticmethod
    def _bad_stamp(msg) -> str:
        try:
            check_stamp(msg.header.stamp)
        except ValueError as exc:
            return str(exc)
        return ""

    def on_twist(self, msg: TwistStamped, now: float) -> bool:
        t = msg.twist
        v = np.array([t.linear.x, t.linear.y, t.linear.z, t.angular.x, t.angular.y, t.angular.z])
        # a twist so large that its norm overflows is not a velocity either
        if not (np.all(np.isfinite(v)) and np.isfinite(np.linalg.norm(v))):
            return self._reject("twist", "NaN/Inf (or a norm that overflows)")
        if self._bad_stamp(msg):
            return self._reject("twist", self._bad_stamp(msg))
        self._cmd["twist"] = (now, {"twist": v})
        return self._accept("twist")

    def on_pose(self, msg: PoseStamped, now: float) -> bool:
        p, o = msg.pose.position, msg.pose.orientation
        pos, quat = np.array([p.x, p.y, p.z]), np.array([o.w, o.x, o.y, o.z])
        if not (np.all(np.isfinite(pos)) and np.all(np.isfinite(quat))) or abs(np.linalg.norm(quat) - 1.0) > 1e-3:
            return self._reject("pose", "NaN/Inf or not a unit quaternion")
        if self._bad_stamp(msg):
            return self._reject("pose", self._bad_stamp(msg))
        self._cmd["pose"] = (now, {"position": pos, "quaternion": quat / np.linalg.norm(quat)})
        return self._accept("pose")

    def on_joints(self, msg: JointState, now: float) -> bool:
        try:
            check_joint_state(msg)  # sizes (before converting), empty names, stamp
        except ValueError as exc:
            return self._reject("joints", str(exc))
        q, v = np.asarray(msg.position, float), np.asarray(msg.velocity, float)
        if (len(msg.name) == 0 or len(set(msg.name)) != len(msg.name) or not np.all(np.isfinite(q))
                or not np.all(np.isfinite(v))):
            return self._reject("joints", "no names, repeated names, or NaN/Inf")
        try:
            check_joint_values(q, v)
        except ValueError as exc:
            return self._reject("joints", str(exc))
        self._cmd["joints"] = (now, {"joint_names": tuple(msg.name), "joint_positions": q})
        return self._accept("joints")

    def on_joy(self, msg: Joy, now: float) -> bool:
        if len(msg.axes) != len(JOY_AXES) or len(msg.buttons) != len(JOY_BUTTONS):
            # the sizes first: a huge array is never converted
            return self._reject("joy", f"{len(msg.axes)} axes, {len(msg.buttons)} buttons (expected "
                                       f"{len(JOY_AXES)}, {len(JOY_BUTTONS)})")
        if self._bad_stamp(msg):
            return self._reject("joy", self._bad_stamp(msg))
        axes = np.asarray(msg.axes, float)
        if not np.all(np.isfinite(axes)) or abs(axes[6]) > 1.0:
            return self._reject("joy", "NaN/Inf axes, or the gripper axis outside [-1, 1]")
        self._buttons = {"gripper": float(axes[6]), "clutch": bool(msg.buttons[0]),
                         "intervene": bool(msg.buttons[1]), "estop": bool(msg.buttons[2])}
        self._buttons_t = now
        return self._accept("joy")

    def prompt(self, now: float) -> Prompt | None:
        """The operator's prompt now, or None when no message is fresh."""
        fresh = {k: v for k, v in self._cmd.items() if now - v[0] <= self.timeout}
        buttons_fresh = now - self._buttons_t <= self.timeout
        if not fresh and not buttons_fresh:
            return None
        b = self._buttons if buttons_fresh else {**self._buttons, "clutch": False, "intervene": False}
        if not fresh:
            return Prompt(stamp=now, mode="none", **b)
        mode = max(fresh, key=lambda k: fresh[k][0])
        return Prompt(stamp=now, mode=mode, **fresh[mode][1], **b)
