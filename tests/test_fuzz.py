"""Fuzz: 10⁴ malformed messages (robot_ctrl.ros.fuzz) on every subscribed topic of the
command-path nodes, through real DDS, with the nodes in this process.

Two graphs, each spun by one EventsExecutor together with a probe node:

* the stack: controller → safety filter (the controller's commands remapped to
  /safety_filter/nominal, as the launch files do), the MLP reach policy in prompt mode
  `shared` (so it listens to the teleop topics too; its chunks go to /policy/chunks, and the
  probe relays them to the controller), and the CARP pick-and-place policy (for the
  /objects/block/pose topic; its chunk topic has no subscriber, so it never runs its slow
  model). Every round publishes a valid joint state, then two malformed ones, then two
  messages (malformed, or now and then a valid one) on every other topic (on a topic whose
  subscriber keeps only the last message, one at a time), and spins until every node has
  received every message (counted on the node side by wrapping the subscriptions'
  callbacks: nothing is lost to the QoS depth).
* the robot side: the lockstep simulator (gated on /policy/ready_until) and the fake
  hardware with a forward and a joint trajectory controller.

Checked: no exception escapes a callback (the executor re-raises it: the test fails);
every message any node publishes holds only finite numbers (every publisher of every node
is wrapped and checks every float of every message; the probe also checks what arrives over
DDS on the output topics); the counters on /diagnostics account for every delivered
message (accepted + rejected == delivered), and the rejections equal (where the contract
decides every message) or bound from above the malformed messages the node must reject.
"""
from __future__ import annotations

import array
import math
import os
import time
from collections import Counter

import numpy as np
import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped, Transform, TwistStamped
from rclpy.experimental import EventsExecutor
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile
from sensor_msgs.msg import JointState, Joy
from std_msgs.msg import Bool, Float64, Float64MultiArray
from std_srvs.srv import Trigger
from trajectory_msgs.msg import (JointTrajectory, JointTrajectoryPoint, MultiDOFJointTrajectory,
                                 MultiDOFJointTrajectoryPoint)

from robot_ctrl.model import RobotModel
from robot_ctrl.paths import checkpoint_path
from robot_ctrl.ros import fuzz
from robot_ctrl.ros.common import (COMMAND_QOS, GOAL_QOS, STATE_QOS, TRAJECTORY_QOS, quaternion_from_rotation,
                                   sec_to_stamp)
from robot_ctrl.ros.teleop_msgs import BUTTON_QOS, COMMAND_STREAM_QOS

N = int(os.environ.get("ROBOT_CTRL_FUZZ_N", 10_000))  # malformed messages per topic (a smaller N: a quick look)
SEED = int(os.environ.get("ROBOT_CTRL_FUZZ_SEED", 20260501))  # the stack's; the robot side's is SEED + 1
PANDA = RobotModel.load("panda")
NAMES = list(PANDA.joint_names)
HOME = np.asarray(PANDA.home, dtype=float)
DEPTH10 = QoSProfile(depth=10)


# -- instrumentation ----------------------------------------------------------------------

def nonfinite_field(msg, path: str = ""):
    """The path of the first non-finite float in a message (recursively), else None."""
    for name in msg.get_fields_and_field_types():
        v = getattr(msg, name)
        if isinstance(v, float):
            if not math.isfinite(v):
                return f"{path}{name}"
        elif isinstance(v, (array.array, np.ndarray)):
            if getattr(v, "typecode", "d") in "fd" and len(v) and not np.isfinite(np.asarray(v)).all():
                return f"{path}{name}"
        elif isinstance(v, (list, tuple)):
            for i, el in enumerate(v):
                if isinstance(el, float):
                    if not math.isfinite(el):
                        return f"{path}{name}[{i}]"
                elif hasattr(el, "get_fields_and_field_types"):
                    bad = nonfinite_field(el, f"{path}{name}[{i}].")
                    if bad:
                        return bad
        elif hasattr(v, "get_fields_and_field_types"):
            bad = nonfinite_field(v, f"{path}{name}.")
            if bad:
                return bad
    return None


class Graph:
    """The nodes under test, the probe and the executor; counts deliveries per (node, topic)
    and publications per topic, and checks every published message for non-finite numbers."""

    def __init__(self, nodes):
        self.nodes = nodes
        self.probe = rclpy.create_node("fuzz_probe")
        self.ex = EventsExecutor()
        for n in [*nodes, self.probe]:
            self.ex.add_node(n)
        self.delivered: Counter = Counter()  # (node fqn, topic) -> messages its callback got
        self.published: Counter = Counter()  # topic -> messages the nodes under test published
        self.sent: Counter = Counter()  # topic -> messages the probe published
        self.violations: list[str] = []
        self.subs_of: dict[str, list] = {}  # topic -> [(node fqn, topic)]
        self._pubs: dict[str, object] = {}
        for node in nodes:
            fqn = node.get_fully_qualified_name()
            for sub in node.subscriptions:
                key = (fqn, sub.topic_name)
                self.subs_of.setdefault(sub.topic_name, []).append(key)
                sub.callback = self._counting(sub.callback, key)
            for pub in node.publishers:
                pub.publish = self._checking(pub, fqn)

    def _counting(self, cb, key):
        def wrapped(msg):
            self.delivered[key] += 1
            return cb(msg)
        return wrapped

    def _checking(self, pub, fqn):
        original = pub.publish
        topic = pub.topic_name

        def publish(msg):
            if not isinstance(msg, DiagnosticArray):
                bad = nonfinite_field(msg)
                if bad:
                    self.violations.append(f"{fqn} published a non-finite {bad} on {topic}")
            if getattr(pub, "is_activated", True):
                self.published[topic] += 1
            return original(msg)
        return publish

    # -- probe side --------------------------------------------------------------------
    def publisher(self, msg_type, topic: str, qos):
        self._pubs[topic] = self.probe.create_publisher(msg_type, topic, qos)

    def send(self, topic: str, msg) -> None:
        self._pubs[topic].publish(msg)
        self.sent[topic] += 1

    def check_output(self, msg_type, topic: str):
        """A probe subscription that checks what arrives on an output topic over DDS."""
        got = Counter()

        def cb(msg):
            got["n"] += 1
            bad = nonfinite_field(msg)
            if bad:
                self.violations.append(f"non-finite {bad} arrived on {topic}")
        self.probe.create_subscription(msg_type, topic, cb, DEPTH10)
        return got

    def pending(self) -> list:
        """(node, topic) whose callback has not yet got every message sent on the topic."""
        out = []
        for topic in self.sent:
            want = self.sent[topic] + self.published[topic]
            out += [(k, self.delivered[k], want) for k in self.subs_of.get(topic, ()) if self.delivered[k] < want]
        return out

    def settle(self, timeout: float = 10.0) -> None:
        """Spin until every node has taken every message sent to it (by the probe and by the
        other nodes); an exception in a callback propagates from here."""
        end = time.monotonic() + timeout
        while True:
            if not self.pending():
                return
            assert time.monotonic() < end, f"messages not delivered: {self.pending()}"
            self.ex.spin_once(timeout_sec=0.01)

    def spin_for(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.ex.spin_once(timeout_sec=0.01)

    def spin_until(self, cond, timeout: float, what: str) -> None:
        end = time.monotonic() + timeout
        while not cond():
            assert time.monotonic() < end, f"timed out waiting for {what}"
            self.ex.spin_once(timeout_sec=0.01)

    def wait_matched(self) -> None:
        def matched():
            return all(p.get_subscription_count() >= len(self.subs_of.get(t, ())) for t, p in self._pubs.items())
        self.spin_until(matched, 10, "the probe's publishers to match")

    def diagnostics(self):
        """Start collecting /diagnostics; returns the list of (receipt time, status) it fills."""
        seen = []
        self.probe.create_subscription(
            DiagnosticArray, "/diagnostics",
            lambda m: seen.extend((time.monotonic(), s) for s in m.status), QoSProfile(depth=100))
        return seen

    def close(self) -> None:
        self.ex.shutdown()
        for n in [*self.nodes, self.probe]:
            n.destroy_node()


def final_diag(g: Graph, seen: list, sources: dict, t_end: float) -> dict:
    """{source: values} from the second status of each source received after t_end (so
    published after it: the 1 Hz timers)."""
    def pick():
        out = {}
        for key, match in sources.items():
            after = [s for t, s in seen if t > t_end and match(s)]
            if len(after) >= 2:
                out[key] = {kv.key: kv.value for kv in after[-1].values}
        return out
    g.spin_until(lambda: len(pick()) == len(sources), 6, f"diagnostics of {list(sources)}")
    return pick()


def count(d: dict, key: str) -> int:
    assert key in d, f"'{key}' not on /diagnostics: {sorted(d)}"
    return int(d[key])


# -- valid messages -----------------------------------------------------------------------

def valid_state(t: float, rng) -> JointState:
    q = HOME + rng.normal(0, 1e-3, PANDA.n)
    msg = JointState(name=NAMES, position=[float(x) for x in q],
                     velocity=[float(x) for x in rng.normal(0, 1e-3, PANDA.n)], effort=[0.0] * PANDA.n)
    sec_to_stamp(t, msg.header.stamp)
    return msg


def valid_joint_trajectory(rng) -> JointTrajectory:
    msg = JointTrajectory(joint_names=NAMES)
    for k in range(3):
        pt = JointTrajectoryPoint(positions=[float(x) for x in HOME + rng.normal(0, 0.01, PANDA.n)])
        sec_to_stamp(0.2 * (k + 1), pt.time_from_start)
        msg.points.append(pt)
    return msg


def hand_pose():
    from robot_ctrl.control.cartesian import DiffIK

    p, R = DiffIK(PANDA).ee_pose(HOME)
    return np.asarray(p, dtype=float), quaternion_from_rotation(R)


def valid_cartesian(rng, ee: str) -> MultiDOFJointTrajectory:
    p, (x, y, z, w) = hand_pose()
    msg = MultiDOFJointTrajectory(joint_names=[ee, "gripper"])
    for k in range(4):
        hand = Transform()
        hand.translation.x, hand.translation.y, hand.translation.z = (float(v) for v in p + rng.normal(0, 0.005, 3))
        hand.rotation.x, hand.rotation.y, hand.rotation.z, hand.rotation.w = x, y, z, w
        grip = Transform()
        grip.translation.x = 1.0
        grip.rotation.w = 1.0
        pt = MultiDOFJointTrajectoryPoint(transforms=[hand, grip])
        sec_to_stamp(0.1 * (k + 1), pt.time_from_start)
        msg.points.append(pt)
    return msg


def pose(x, y, z, frame="world") -> PoseStamped:
    msg = PoseStamped()
    msg.header.frame_id = frame
    msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = float(x), float(y), float(z)
    msg.pose.orientation.w = 1.0
    return msg


class Topic:
    """One fuzzed topic: a schedule of N malformed and some valid messages, the cases sent.
    A topic whose subscriptions keep only the last message (depth 1) is `shallow`: one message
    per settle, else some would be overwritten before they are taken."""

    def __init__(self, g: Graph, name: str, msg_type, qos, template, valid=None, p_valid=0.0, p_bad=0.9,
                 rng=None):
        self.name, self.msg_type, self.template = name, msg_type, template
        self.valid, self.p_bad, self.rng = valid, p_bad, rng
        self.shallow = qos.depth < 2
        n_valid = int(N * p_valid) if valid else 0
        self.schedule = rng.permutation(np.r_[np.zeros(N, bool), np.ones(n_valid, bool)])
        self.i = 0
        self.cases: list[fuzz.Case] = []
        self.valid_msgs: list = []
        g.publisher(msg_type, name, qos)

    def step(self, g: Graph) -> list:
        """Send the next message of the schedule; returns it ([] at the end)."""
        if self.i >= len(self.schedule):
            return []
        self.i += 1
        if self.schedule[self.i - 1]:
            msg = self.valid(self.rng)
            self.valid_msgs.append(msg)
        else:
            c = fuzz.case(self.msg_type, self.rng, self.template, p_bad=self.p_bad)
            self.cases.append(c)
            msg = c.msg
        g.send(self.name, msg)
        return [msg]

    def must_reject(self, allowed=frozenset()) -> int:
        return sum(c.must_reject(allowed) for c in self.cases)


# -- the stack ----------------------------------------------------------------------------

@pytest.fixture
def ros_context():
    rclpy.init()
    yield
    rclpy.shutdown()


def test_fuzz_the_stack(ros_context):
    from robot_ctrl.ros.controller_node import ControllerNode
    from robot_ctrl.ros.policy_node import PolicyNode
    from robot_ctrl.ros.safety_node import SafetyNode

    t_start = time.monotonic()
    rng = np.random.default_rng(SEED)
    ctrl = ControllerNode(cli_args=["--ros-args", "-r", "/forward_effort_controller/commands:=/safety_filter/nominal"])
    # (timing is not under test here: the stream comes in bursts on a saturated process, and
    # make test runs this file beside another test, so the state timeout is 50 periods and the
    # policy's liveliness, which flaps at this load, is not watched; robot-ctrl bench faults and
    # tests/test_faults.py cover both)
    safety = SafetyNode(parameter_overrides=[Parameter("controller_name", value="robot"),
                                             Parameter("state_timeout_periods", value=50.0),
                                             Parameter("policy_liveliness", value=False)])
    policy = PolicyNode(parameter_overrides=[
        Parameter("checkpoint", value=str(checkpoint_path("mlp_reach.safetensors"))),
        Parameter("prompt_mode", value="shared"), Parameter("trajectory_topic", value="/policy/chunks")])
    pick = PolicyNode(namespace="pp", parameter_overrides=[
        Parameter("checkpoint", value=str(checkpoint_path("carp_pick_place.safetensors"))),
        Parameter("trajectory_topic", value="/pp/chunks")])  # nobody listens: the slow model never runs
    assert policy.task == "reach" and pick.task == "pick_place" and pick.objects == ("block",)
    g = Graph([ctrl, safety, policy, pick])
    try:
        _fuzz_the_stack(g, rng, ctrl, safety, policy, pick)
    finally:
        g.close()
    print(f"\nstack fuzz: {time.monotonic() - t_start:.1f} s wall")


def _fuzz_the_stack(g, rng, ctrl, safety, policy, pick):
    ee = PANDA.cfg.ee_frame
    diags = g.diagnostics()
    relay: list = []
    g.probe.create_subscription(MultiDOFJointTrajectory, "/policy/chunks", relay.append, DEPTH10)
    outputs = {t: g.check_output(ty, t) for t, ty in [
        ("/robot/commands", Float64MultiArray), ("/safety_filter/metrics", Float64MultiArray),
        ("/controller/reference", JointState), ("/policy/ready_until", Float64),
        ("/pp/chunks", MultiDOFJointTrajectory)]}
    reset = g.probe.create_client(Trigger, "/safety_filter/reset")

    g.publisher(JointState, "/joint_states", STATE_QOS)
    p_hand, (qx, qy, qz, qw) = hand_pose()
    hand = pose(*p_hand)
    hand.pose.orientation.x, hand.pose.orientation.y, hand.pose.orientation.z, hand.pose.orientation.w = qx, qy, qz, qw
    twist = TwistStamped()
    twist.header.frame_id = "panda_link0"
    twist.twist.linear.x = 0.05
    joints = JointState(name=NAMES[:7], position=[float(x) for x in HOME[:7]])
    joy = Joy(axes=[0.0] * 6 + [1.0], buttons=[0, 0, 0])

    def vpose(x, y, z):
        return lambda r: pose(x + r.normal(0, 0.01), y + r.normal(0, 0.01), z)

    def vtwist(r):
        m = TwistStamped()
        m.header.frame_id = "panda_link0"
        m.twist.linear.x, m.twist.linear.y = (float(v) for v in r.normal(0, 0.05, 2))
        return m

    topics = [
        Topic(g, "/controller/joint_trajectory", JointTrajectory, TRAJECTORY_QOS, valid_joint_trajectory(rng),
              valid=valid_joint_trajectory, p_valid=0.02, rng=rng),
        Topic(g, "/controller/cartesian_trajectory", MultiDOFJointTrajectory, TRAJECTORY_QOS,
              valid_cartesian(rng, ee), valid=lambda r: valid_cartesian(r, ee), p_valid=0.02, rng=rng),
        Topic(g, "/safety_filter/nominal", Float64MultiArray, COMMAND_QOS,
              Float64MultiArray(data=[float(x) for x in PANDA.gravity(HOME)]), rng=rng),
        Topic(g, "/estop", Bool, DEPTH10, Bool(data=False), rng=rng),
        Topic(g, "/safety_filter/obstacles/obstacle", PoseStamped, DEPTH10, pose(0.45, -0.35, 0.3),
              valid=vpose(0.45, -0.35, 0.3), p_valid=0.1, rng=rng),
        Topic(g, "/safety_filter/obstacles/block", PoseStamped, DEPTH10, pose(0.55, 0.25, 0.02),
              valid=vpose(0.55, 0.25, 0.02), p_valid=0.1, rng=rng),
        Topic(g, "/safety_filter/obstacles/table", PoseStamped, DEPTH10, pose(0.0, 0.0, 0.0),
              valid=lambda r: pose(0.0, 0.0, 0.0), p_valid=0.05, rng=rng),
        # both policies listen: 3 numbers for reach, 2 for pick-and-place (each rejects the other's)
        Topic(g, "/task/goal", Float64MultiArray, GOAL_QOS, Float64MultiArray(data=[0.5, 0.0, 0.4]),
              valid=lambda r: Float64MultiArray(data=[0.5, 0.0, 0.4] if r.random() < 0.5 else [0.5, 0.1]),
              p_valid=0.01, p_bad=0.98, rng=rng),
        Topic(g, "/objects/block/pose", PoseStamped, STATE_QOS, pose(0.55, 0.25, 0.02),
              valid=vpose(0.55, 0.25, 0.02), p_valid=0.1, rng=rng),
        Topic(g, "/teleop/twist", TwistStamped, COMMAND_STREAM_QOS, twist, valid=vtwist, p_valid=0.1, rng=rng),
        Topic(g, "/teleop/pose", PoseStamped, COMMAND_STREAM_QOS, hand,
              valid=lambda r: hand, p_valid=0.03, rng=rng),
        Topic(g, "/teleop/joints", JointState, COMMAND_STREAM_QOS, joints, valid=lambda r: joints, p_valid=0.03,
              rng=rng),
        Topic(g, "/teleop/joy", Joy, BUTTON_QOS, joy, valid=lambda r: joy, p_valid=0.1, rng=rng),
    ]
    by_name = {t.name: t for t in topics}
    # every subscribed topic is fuzzed, except /policy/alive: only its DDS liveliness is read (a
    # std_msgs/Bool whose content the controller and the safety filter ignore)
    assert set(g.subs_of) - {"/policy/alive"} == {"/joint_states", *by_name}, sorted(g.subs_of)

    # warm-up: valid states until every node is active
    g.wait_matched()
    t, k = 1.0, 0
    for _ in range(2000):
        k += 1
        g.send("/joint_states", valid_state(t + 0.002 * k, rng))
        g.settle()
        if all(n.active for n in (ctrl, safety, policy, pick)) and ctrl.cycles > 20:
            break
    assert all(n.active for n in (ctrl, safety, policy, pick)), [n.last_error for n in (ctrl, safety, policy, pick)]
    g.send("/task/goal", Float64MultiArray(data=[0.5, 0.0, 0.4]))
    g.settle()
    assert reset.wait_for_service(timeout_sec=5)

    # each round: a valid state and two malformed ones, two messages on every topic (the
    # shallow ones one at a time), and the policy's chunks on to the controller
    state_cases: list[fuzz.Case] = []
    rounds = max((len(tp.schedule) + 1) // 2 for tp in topics)
    estops, latched, latched_in = 0, False, -1
    t_fuzz = time.monotonic()
    for r in range(rounds):
        k += 1
        state = valid_state(t + 0.002 * k, rng)
        g.send("/joint_states", state)
        for _ in range(2):  # then junk
            if len(state_cases) < N:
                c = fuzz.case(JointState, rng, state, p_bad=0.95)
                state_cases.append(c)
                g.send("/joint_states", c.msg)
        while relay:  # the policy's chunks, to the controller
            g.send("/controller/cartesian_trajectory", relay.pop(0))
        sent = {tp.name: tp.step(g) + ([] if tp.shallow else tp.step(g)) for tp in topics}
        g.settle()
        for tp in topics:
            if tp.shallow:
                tp.step(g)
        g.settle()
        # e-stop: a true latches (once); a reset clears it, once a state has come after it
        if any(m.data for m in sent["/estop"]) and not latched:
            estops, latched, latched_in = estops + 1, True, r
        if latched and latched_in < r:
            fut = reset.call_async(Trigger.Request())
            g.spin_until(fut.done, 5, "the reset service")
            latched = not fut.result().success
    t_end = time.monotonic()
    print(f"\nstack: {rounds} rounds in {t_end - t_fuzz:.1f} s")
    d = final_diag(g, diags, {
        "controller": lambda s: s.name == "robot_ctrl/controller",
        "safety": lambda s: s.name == "robot_ctrl/safety_filter",
        "policy": lambda s: s.name == "robot_ctrl/policy" and s.hardware_id == "mlp",
        "pick": lambda s: s.name == "robot_ctrl/policy" and s.hardware_id == policy_kind(pick),
    }, t_end)

    assert not g.violations, g.violations[:20]
    dl = g.delivered
    fq = {n: n.get_fully_qualified_name() for n in (ctrl, safety, policy, pick)}
    report = {}

    # -- every node: joint states -- each node rejects exactly the malformed ones and every state
    # older than the last (a slightly older stamp: their time base, robot_ctrl.control.stamps)
    assert len(state_cases) == N
    for node, key, extra in ((ctrl, "controller", ("stamp_older",)), (safety, "safety", ("stamp_older",)),
                             (policy, "policy", ("stamp_older",)), (pick, "pick", ("stamp_older",))):
        got = dl[(fq[node], "/joint_states")]
        assert got == g.sent["/joint_states"] >= N + rounds
        must = sum(c.must_reject() or any(x in c.kinds for x in extra) for c in state_cases)
        rej, acc = count(d[key], "rejected_states"), count(d[key], "states")
        assert rej + acc == got, (key, rej, acc, got)
        # a zero stamp mid-stream is the simulator's reset: the time base restarts at zero, and
        # the next (normal) states are a jump until `confirm` of them agree (at most 2 refused)
        zeros = sum("stamp_zero" in c.kinds for c in state_cases)
        assert must <= rej <= must + 2 * zeros, (key, rej, must, zeros)
        report[f"{key} /joint_states"] = (N, rej, "rejected_states")

    # -- controller: chunks (a joint chunk may name a subset of the joints)
    c = d["controller"]
    jt, ct = by_name["/controller/joint_trajectory"], by_name["/controller/cartesian_trajectory"]
    got_j, got_c = dl[(fq[ctrl], jt.name)], dl[(fq[ctrl], ct.name)]
    assert got_j == g.sent[jt.name] + g.published[jt.name] and got_c == g.sent[ct.name]
    rej_j, acc_j = count(c, "rejected_joint_trajectories"), count(c, "accepted_joint_trajectories")
    rej_c, acc_c = count(c, "rejected_cartesian_trajectories"), count(c, "accepted_cartesian_trajectories")
    assert count(c, "inactive_trajectories") == 0
    assert rej_j + acc_j == got_j and rej_c + acc_c == got_c, (rej_j, acc_j, got_j, rej_c, acc_c, got_c)
    assert rej_j + rej_c == count(c, "rejected_trajectories")
    # a joint chunk may name a subset of the joints, and a point at time_from_start 0 is "now"
    # (the executor drops points at or before now, as a joint trajectory controller does)
    # (a case that also drops a joint may have dropped the very joint it made huge: not counted)
    must_j = sum(c.must_reject({"drop_joint", "time_zero"}) and not {"drop_joint", "huge_joint_value"} <= c.kinds
                 for c in jt.cases)
    must_c = ct.must_reject()
    # edge cases may be refused too (a chunk that lies in the past, IK that gives up), valid ones never
    assert must_j <= rej_j <= len(jt.cases) and must_c <= rej_c <= len(ct.cases), (must_j, rej_j, must_c, rej_c)
    assert acc_c >= len(ct.valid_msgs) and acc_j >= len(jt.valid_msgs)
    report["controller ~/joint_trajectory"] = (len(jt.cases), rej_j, "rejected_joint_trajectories", must_j)
    report["controller ~/cartesian_trajectory"] = (len(ct.cases), rej_c, "rejected_cartesian_trajectories", must_c)

    # -- safety filter: nominal commands (from the probe and from the controller)
    s = d["safety"]
    nt = by_name["/safety_filter/nominal"]
    got = dl[(fq[safety], nt.name)]
    assert got == g.sent[nt.name] + g.published[nt.name] and g.published[nt.name] == count(d["controller"], "cycles")
    rej, fwd, held = count(s, "rejected_commands"), count(s, "commands"), count(s, "held_commands")
    assert rej + fwd + held == got, (rej, fwd, held, got)
    assert nt.must_reject() <= rej <= len(nt.cases) + g.published[nt.name]
    assert fwd > N // 2, "the filter must have forwarded the controller's commands"
    report["safety ~/nominal"] = (len(nt.cases), rej, "rejected_commands", nt.must_reject())
    # e-stops: every true latched (and was reset)
    assert count(s, "estops") == estops > 0 and count(s, "resets") >= estops - latched
    report["safety /estop"] = (N, count(s, "estops"), "estops (a Bool has no malformed form)")
    # obstacle poses
    obst = [by_name[f"/safety_filter/obstacles/{o}"] for o in ("obstacle", "block", "table")]
    got = sum(dl[(fq[safety], tp.name)] for tp in obst)
    assert got == sum(g.sent[tp.name] for tp in obst)
    must = sum(tp.must_reject() for tp in obst)
    assert count(s, "rejected_poses") == must and count(s, "poses") + must == got
    for tp in obst:
        report[f"safety {tp.name}"] = (len(tp.cases), tp.must_reject(), "rejected_poses (3 topics: " f"{must})")

    # -- policies: goal, object pose, prompts
    goal = by_name["/task/goal"]
    msgs = [c.msg for c in goal.cases] + goal.valid_msgs + [Float64MultiArray(data=[0.5, 0.0, 0.4])]
    for key, node, size in (("policy", policy, 3), ("pick", pick, 2)):
        got = dl[(fq[node], goal.name)]
        assert got == g.sent[goal.name] == len(msgs)
        bad = sum(len(m.data) != size or not np.isfinite(np.asarray(m.data)).all() for m in msgs)
        bad_fuzz = sum(len(c.msg.data) != size or not np.isfinite(np.asarray(c.msg.data)).all() for c in goal.cases)
        rej = count(d[key], "rejected_goals")
        assert rej == bad and rej + count(d[key], "goals") + count(d[key], "ignored_goals") == got, (key, rej, bad)
        report[f"{key} /task/goal"] = (len(goal.cases), bad_fuzz, "rejected_goals")
    ob = by_name["/objects/block/pose"]
    assert dl[(fq[pick], ob.name)] == g.sent[ob.name]
    assert count(d["pick"], "rejected_poses") == ob.must_reject()
    assert count(d["pick"], "rejected_poses") + count(d["pick"], "poses") == g.sent[ob.name]
    report["pick /objects/block/pose"] = (len(ob.cases), ob.must_reject(), "rejected_poses")
    p = d["policy"]
    # (frames of prompts are not checked; a pose prompt's target is approached at max_speed
    # however far; a leader arm names any joints it has)
    allowed = {"twist": (), "pose": {"frame_wrong", "huge_position"}, "joy": (),
               "joints": {"drop_joint", "unknown_name"}}
    for kind, allow in allowed.items():
        tp = by_name[f"/teleop/{kind}"]
        must = sum(c.must_reject(frozenset(allow)) or (kind == "joints" and "extra_nonfinite" in c.kinds)
                   for c in tp.cases)
        got = dl[(fq[policy], tp.name)]
        assert got == g.sent[tp.name]
        rej = count(p, f"rejected_prompts_{kind}")
        assert rej == must and rej + count(p, f"prompts_{kind}") == got, (kind, rej, must, got)
        report[f"policy {tp.name}"] = (len(tp.cases), rej, f"rejected_prompts_{kind}")

    # the command path ran: commands out of the filter, chunks from the policy into the controller
    # (about one command per valid state; a copy of the last state within 10 ms is not answered twice)
    assert outputs["/robot/commands"]["n"] > rounds and outputs["/controller/reference"]["n"] > 0.95 * rounds
    assert count(p, "chunks") + count(p, "operator_chunks") > 10 and acc_c > len(ct.valid_msgs)
    assert count(p, "nonfinite_chunks") == 0 and count(d["pick"], "nonfinite_chunks") == 0
    assert all(n.active for n in (ctrl, safety, policy, pick))
    for k_, v in report.items():
        print(f"  {k_}: {v}")


def policy_kind(node) -> str:
    return node.policy.kind


# -- the robot side -----------------------------------------------------------------------

def test_fuzz_sim_and_fake_hardware(ros_context):
    from robot_ctrl.ros.fake_hardware_node import FakeHardwareNode
    from robot_ctrl.ros.sim_node import SimNode

    t_start = time.monotonic()
    rng = np.random.default_rng(SEED + 1)
    sim = SimNode(parameter_overrides=[Parameter("controller_name", value="sim_ctrl"),
                                       Parameter("lockstep_gate", value=True), Parameter("publish_clock", value=False)])
    fwd = FakeHardwareNode(namespace="fh_fwd", parameter_overrides=[
        Parameter("controller_name", value="fwd_ctrl"), Parameter("rate_hz", value=100.0)])
    traj = FakeHardwareNode(namespace="fh_traj", parameter_overrides=[
        Parameter("controller_type", value="trajectory"), Parameter("controller_name", value="traj_ctrl"),
        Parameter("rate_hz", value=100.0)])
    g = Graph([sim, fwd, traj])
    try:
        diags = g.diagnostics()
        states = g.check_output(JointState, "/joint_states")
        g_tau = [float(x) for x in PANDA.gravity(HOME)]
        home = [float(x) for x in HOME]
        ready = {"t": 1.0}

        def valid_ready(r):
            ready["t"] += 1.0
            return Float64(data=ready["t"])

        def valid_traj(r):
            m = valid_joint_trajectory(r)
            m.joint_names = NAMES
            return m

        topics = [
            Topic(g, "/sim_ctrl/commands", Float64MultiArray, COMMAND_QOS, Float64MultiArray(data=g_tau),
                  valid=lambda r: Float64MultiArray(data=g_tau), p_valid=0.3, rng=rng),
            Topic(g, "/policy/ready_until", Float64, STATE_QOS, Float64(data=1.0), valid=valid_ready, p_valid=0.3,
                  rng=rng),
            Topic(g, "/fwd_ctrl/commands", Float64MultiArray, COMMAND_QOS, Float64MultiArray(data=home),
                  valid=lambda r: Float64MultiArray(data=home), p_valid=0.1, rng=rng),
            Topic(g, "/traj_ctrl/joint_trajectory", JointTrajectory, TRAJECTORY_QOS, valid_traj(rng),
                  valid=valid_traj, p_valid=0.05, rng=rng),
        ]
        by_name = {t.name: t for t in topics}
        assert set(g.subs_of) == set(by_name), sorted(g.subs_of)
        g.wait_matched()
        rounds = max((len(tp.schedule) + 1) // 2 for tp in topics)
        t_fuzz = time.monotonic()
        for r in range(rounds):  # two messages per topic and round (all of depth 10)
            for tp in topics:
                tp.step(g)
                tp.step(g)
            g.settle()
        # (the fake hardware's timers run on: let them step what they got)
        g.spin_for(0.1)
        t_end = time.monotonic()
        print(f"\nrobot side: {rounds} rounds in {t_end - t_fuzz:.1f} s")
        d = final_diag(g, diags, {
            "sim": lambda s: s.name == "robot_ctrl/sim",
            "fwd": lambda s: s.name == "robot_ctrl/fake_hardware"
            and _value(s, "command_topic") == "/fwd_ctrl/commands",
            "traj": lambda s: s.name == "robot_ctrl/fake_hardware"
            and _value(s, "command_topic") == "/traj_ctrl/joint_trajectory",
        }, t_end)
        assert not g.violations, g.violations[:20]
        dl = g.delivered
        fq = {n: n.get_fully_qualified_name() for n in (sim, fwd, traj)}

        cmd, rd = by_name["/sim_ctrl/commands"], by_name["/policy/ready_until"]
        s = d["sim"]
        got = dl[(fq[sim], cmd.name)]
        assert got == g.sent[cmd.name]
        assert count(s, "rejected_commands") == cmd.must_reject()
        assert count(s, "rejected_commands") + count(s, "commands") == got
        assert count(s, "steps") > len(cmd.valid_msgs) // 2, "the simulator must have stepped"
        got = dl[(fq[sim], rd.name)]
        assert got == g.sent[rd.name]
        assert count(s, "rejected_ready_until") == rd.must_reject()
        assert count(s, "rejected_ready_until") + count(s, "ready_until_messages") == got

        fc = by_name["/fwd_ctrl/commands"]
        f = d["fwd"]
        assert dl[(fq[fwd], fc.name)] == g.sent[fc.name]
        assert count(f, "rejected_commands") == fc.must_reject()
        assert count(f, "rejected_commands") + count(f, "commands") == g.sent[fc.name]

        tc = by_name["/traj_ctrl/joint_trajectory"]
        t_ = d["traj"]
        assert dl[(fq[traj], tc.name)] == g.sent[tc.name]

        def traj_must_reject(c):  # no points: a stop (the joint names do not matter)
            if not c.msg.points:
                return bool(c.kinds & {"stamp_negative", "stamp_nanosec"})
            return c.must_reject({"many_points"})
        must = sum(traj_must_reject(c) for c in tc.cases)
        assert count(t_, "rejected_commands") == must
        assert count(t_, "rejected_commands") + count(t_, "commands") == g.sent[tc.name]
        assert states["n"] > 100
        for name, (tp, key, rej) in {"sim": (cmd, "rejected_commands", count(s, "rejected_commands")),
                                      "sim ready": (rd, "rejected_ready_until", count(s, "rejected_ready_until")),
                                      "fake fwd": (fc, "rejected_commands", count(f, "rejected_commands")),
                                      "fake traj": (tc, "rejected_commands", count(t_, "rejected_commands"))}.items():
            print(f"  {name} {tp.name}: {len(tp.cases)} malformed delivered, {rej} rejected ({key})")
    finally:
        g.close()
    print(f"robot side fuzz: {time.monotonic() - t_start:.1f} s wall")


def _value(status, key):
    for kv in status.values:
        if kv.key == key:
            return kv.value
    return None
