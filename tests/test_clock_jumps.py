"""ClockJumps (robot_ctrl.ros.common): the controller's and the safety filter's count of node
clock jumps under use_sim_time, watched on a real /clock topic between two rclpy nodes."""
from __future__ import annotations

import time

from rclpy.parameter import Parameter


def _clock(sec: float):
    from rosgraph_msgs.msg import Clock

    m = Clock()
    ns = int(round(sec * 1e9))
    m.clock.sec, m.clock.nanosec = divmod(ns, 1_000_000_000)
    return m


def _node(name: str, sim_time: bool):
    import rclpy

    return rclpy.create_node(name, parameter_overrides=[Parameter("use_sim_time", value=sim_time)])


def test_leaps_forward_and_steps_back_are_counted_and_a_steady_clock_is_not(ros):
    import rclpy
    from rosgraph_msgs.msg import Clock

    from robot_ctrl.ros.common import CLOCK_QOS, ClockJumps

    watched, plain = _node("watched", True), _node("plain", False)
    logged = []
    jumps = ClockJumps(watched, lambda key, text, level: logged.append((key, text, level)))
    quiet = ClockJumps(plain, lambda *a: logged.append(a))
    pub = ros.create_publisher(Clock, "/clock", CLOCK_QOS)
    ex = rclpy.executors.SingleThreadedExecutor()
    for n in (ros, watched, plain):
        ex.add_node(n)
    try:
        end = time.monotonic() + 10.0
        while pub.get_subscription_count() < 2 and time.monotonic() < end:  # ours + watched's time source
            ex.spin_once(timeout_sec=0.01)
        assert pub.get_subscription_count() >= 2
        # 2 ms steps, then 1.5 s ahead, on again, 1.5 s back (a simulator reset), on again
        stamps = [1.000, 1.002, 1.004, 2.504, 2.506, 1.006, 1.008, 1.010]
        for s in stamps:
            pub.publish(_clock(s))
            for _ in range(5):
                ex.spin_once(timeout_sec=0.005)
        end = time.monotonic() + 5.0
        while jumps.count < 2 and time.monotonic() < end:
            ex.spin_once(timeout_sec=0.01)
        time.sleep(0.05)
        ex.spin_once(timeout_sec=0.05)
        assert jumps.count == 2, logged
        assert [t.split(" s ")[0].split()[-1] for _, t, _ in logged] == ["+1.500", "-1.500"], logged
        assert all(k == "clock" and lvl == "warning" for k, _, lvl in logged)
        assert quiet.count == 0  # no use_sim_time: the system clock, nothing watched
        # the node clock followed /clock (the time source), and the count did not disturb it
        assert abs(watched.get_clock().now().nanoseconds * 1e-9 - 1.010) < 1e-6
    finally:
        ex.shutdown()
        watched.destroy_node()
        plain.destroy_node()
