"""The policy node's time base: the state stamps pass the same guard as the controller's
(robot_ctrl.control.stamps). A storm's out-of-order copies and a state stamped a jump ahead are
refused and counted; they neither restart the episode nor schedule or stamp a chunk on them.

(Before the guard, each older copy looked like a simulator reset: the teleop node restarted and
answered the next state with a chunk at once, so a storm of copies made a storm of chunks.)"""
from __future__ import annotations

import time

import numpy as np
from rclpy.experimental import EventsExecutor
from rclpy.parameter import Parameter
from sensor_msgs.msg import JointState
from trajectory_msgs.msg import MultiDOFJointTrajectory

from robot_ctrl.model import RobotModel
from robot_ctrl.ros.common import STATE_QOS, TRAJECTORY_QOS, sec_to_stamp

PANDA = RobotModel.load("panda")
TELEOP_PERIOD = 0.02


def _state(t: float) -> JointState:
    m = JointState(name=list(PANDA.joint_names), position=[float(x) for x in PANDA.home],
                   velocity=[0.0] * PANDA.n)
    sec_to_stamp(t, m.header.stamp)
    return m


def test_older_copies_and_a_jumped_stamp_are_refused_and_make_no_chunks(ros):
    from robot_ctrl.ros.policy_node import PolicyNode

    policy = PolicyNode(parameter_overrides=[Parameter("prompt_mode", value="teleop"),
                                             Parameter("teleop_period", value=TELEOP_PERIOD)])
    chunks: list[float] = []
    ros.create_subscription(MultiDOFJointTrajectory, "/controller/cartesian_trajectory",
                            lambda m: chunks.append(m.header.stamp.sec + m.header.stamp.nanosec * 1e-9),
                            TRAJECTORY_QOS)
    pub = ros.create_publisher(JointState, "/joint_states", STATE_QOS)
    ex = EventsExecutor()
    ex.add_node(ros)
    ex.add_node(policy)
    try:
        end = time.monotonic() + 10.0
        while policy.chunk_pub.get_subscription_count() == 0 or pub.get_subscription_count() == 0:
            assert time.monotonic() < end, "the policy node and the probe never matched"
            ex.spin_once(timeout_sec=0.01)
        # 1 s of states every 2 ms (stamps on the wall clock's pace), each followed by two
        # copies 2 and 10 ms older, and one state 1 s ahead in the middle
        t0, jumped = 100.0, False
        start = time.monotonic()
        k = 0
        while time.monotonic() - start < 1.0:
            t = t0 + (time.monotonic() - start)
            for m in (_state(t), _state(t - 0.002), _state(t - 0.010)):
                pub.publish(m)
                ex.spin_once(timeout_sec=0.0005)
            if not jumped and time.monotonic() - start > 0.5:
                pub.publish(_state(t + 1.0))
                jumped = True
            k += 1
            deadline = time.monotonic() + 0.002
            while time.monotonic() < deadline:
                ex.spin_once(timeout_sec=0.0005)
        for _ in range(50):
            ex.spin_once(timeout_sec=0.01)
        c = policy.counts
        assert policy.active, policy.last_error
        assert c["time_resets"] == 0, c  # no copy passed for a simulator reset
        assert policy.stamps.jumps >= 1 and policy.stamps.older > k // 2, (policy.stamps.jumps, policy.stamps.older, k)
        assert c["rejected_states"] == policy.stamps.jumps + policy.stamps.older, c
        stamps = np.array(chunks)
        assert len(stamps) > 10, len(stamps)
        # one chunk per teleop period of state time (not one per copy), in order, none a jump ahead
        assert len(stamps) <= 1.0 / TELEOP_PERIOD + 5, len(stamps)
        assert np.all(np.diff(stamps) >= TELEOP_PERIOD - 1e-6), np.diff(stamps).min()
        assert stamps.max() < t0 + 1.2, stamps.max()
    finally:
        ex.shutdown()
        policy.destroy_node()
