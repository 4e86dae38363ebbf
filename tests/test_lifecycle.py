"""Managed lifecycle (issue 6): the controller, safety filter and policy nodes are rclpy
lifecycle nodes. In process, with real rclpy: the transitions, what each state publishes, and
the refusals (configure with a bad configuration, activate without a fresh joint state)."""
from __future__ import annotations

import time

import numpy as np
import pytest
import rclpy
from lifecycle_msgs.msg import State
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray

from robot_ctrl.model import RobotModel
from robot_ctrl.ros.controller_node import ControllerNode
from robot_ctrl.ros.safety_node import SafetyNode

PANDA = RobotModel.load("panda")
SUCCESS, FAILURE = "success", "failure"


@pytest.fixture
def ctx():
    rclpy.init()
    probe = rclpy.create_node("lifecycle_probe")
    ex = SingleThreadedExecutor()
    ex.add_node(probe)
    yield probe, ex
    ex.shutdown()
    rclpy.shutdown()


def _ret(r) -> str:
    return str(r).split(".")[-1].lower()


def _state(node) -> int:
    return node._state_machine.current_state[0]


class Feed:
    def __init__(self, probe, ex, command_topic):
        self.ex = ex
        self.pub = probe.create_publisher(JointState, "/joint_states", 10)
        self.cmds = []
        probe.create_subscription(Float64MultiArray, command_topic, lambda m: self.cmds.append(list(m.data)), 100)
        self.k = 0

    def spin(self, seconds: float, state: bool = True) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if state:
                self.k += 1
                m = JointState(name=list(PANDA.joint_names), position=[float(x) for x in PANDA.home],
                               velocity=[0.0] * PANDA.n)
                m.header.stamp.sec, m.header.stamp.nanosec = 1 + self.k // 500, (self.k % 500) * 2_000_000
                self.pub.publish(m)
            self.ex.spin_once(timeout_sec=0.002)


def test_controller_transitions_publish_only_when_active(ctx):
    probe, ex = ctx
    node = ControllerNode(parameter_overrides=[Parameter("autostart", value=False)])
    ex.add_node(node)
    feed = Feed(probe, ex, "/forward_effort_controller/commands")
    try:
        assert _state(node) == State.PRIMARY_STATE_UNCONFIGURED and not node.configured
        assert _ret(node.trigger_configure()) == SUCCESS and _state(node) == State.PRIMARY_STATE_INACTIVE
        # activate without any joint state: refused, stays inactive, says why
        assert _ret(node.trigger_activate()) == FAILURE
        assert _state(node) == State.PRIMARY_STATE_INACTIVE and "fresh joint state" in node.last_error
        feed.spin(0.3)
        assert feed.cmds == []  # inactive: no commands, even with state
        assert _ret(node.trigger_activate()) == SUCCESS and node.active
        feed.spin(0.3)
        assert len(feed.cmds) > 10
        # the command holds home against gravity (it starts from where the robot is)
        np.testing.assert_allclose(feed.cmds[-1], PANDA.gravity(PANDA.home), atol=1.0)
        assert _ret(node.trigger_deactivate()) == SUCCESS and not node.active
        feed.spin(0.1)
        n = len(feed.cmds)
        feed.spin(0.3)
        assert len(feed.cmds) == n  # deactivated: silent (the safety filter's watchdog holds the robot)
        # stale state: a second activation needs a fresh one
        feed.spin(0.7, state=False)
        assert _ret(node.trigger_activate()) == FAILURE and "s old" in node.last_error
        assert _ret(node.trigger_cleanup()) == SUCCESS and _state(node) == State.PRIMARY_STATE_UNCONFIGURED
        # cleanup destroyed what configure made
        assert not node.configured
        assert "/forward_effort_controller/commands" not in [p.topic_name for p in node.publishers]
        assert "/joint_states" not in [s.topic_name for s in node.subscriptions]
        # and configured again from scratch
        assert _ret(node.trigger_configure()) == SUCCESS
        feed.spin(0.1)
        assert _ret(node.trigger_activate()) == SUCCESS
        assert node.transitions == {"configure": 2, "activate": 2, "deactivate": 1, "refused": 2}
    finally:
        ex.remove_node(node)
        node.destroy_node()


def test_configure_with_a_bad_configuration_fails_naming_it(ctx):
    probe, ex = ctx
    node = SafetyNode(parameter_overrides=[Parameter("autostart", value=False),
                                           Parameter("config", value="no_such_safety_config")])
    try:
        assert _ret(node.trigger_configure()) == FAILURE
        assert _state(node) == State.PRIMARY_STATE_UNCONFIGURED
        assert "configure failed" in node.last_error and "no_such_safety_config" in node.last_error
    finally:
        node.destroy_node()
    # the same under autostart stops start-up (the runner exits naming it)
    with pytest.raises(Exception, match="no_such_safety_config"):
        SafetyNode(parameter_overrides=[Parameter("config", value="no_such_safety_config")])


def test_safety_filter_holds_while_inactive_and_forwards_when_active(ctx):
    probe, ex = ctx
    node = SafetyNode(parameter_overrides=[Parameter("autostart", value=False)])
    ex.add_node(node)
    feed = Feed(probe, ex, "/forward_effort_controller/commands")
    nominal = probe.create_publisher(Float64MultiArray, "/safety_filter/nominal", 10)
    try:
        assert _ret(node.trigger_configure()) == SUCCESS
        feed.spin(0.3)
        # configured, not active, with a state: it brakes and holds (gravity torque at rest)
        assert len(feed.cmds) > 10
        np.testing.assert_allclose(feed.cmds[-1], PANDA.gravity(PANDA.home), atol=1.0)
        nominal.publish(Float64MultiArray(data=[5.0] * PANDA.n))
        feed.spin(0.1)
        assert node.counts["held_commands"] >= 1 and node.counts["commands"] == 0  # not forwarded
        assert _ret(node.trigger_activate()) == SUCCESS
        u = PANDA.gravity(PANDA.home) + 0.05  # a small push on every joint: inside every limit
        for _ in range(50):
            nominal.publish(Float64MultiArray(data=[float(x) for x in u]))
            feed.spin(0.004)
        assert node.counts["commands"] > 10
        np.testing.assert_allclose(feed.cmds[-1], u, atol=0.01)  # the nominal command, passed by the filter
        assert _ret(node.trigger_deactivate()) == SUCCESS
        feed.spin(0.2)
        np.testing.assert_allclose(feed.cmds[-1], PANDA.gravity(PANDA.home), atol=1.0)  # holding again
        assert node.lifecycle_values()["lifecycle"] == "inactive"
    finally:
        ex.remove_node(node)
        node.destroy_node()
