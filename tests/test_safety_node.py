"""The safety filter node in the graph: sim_node, controller_node (its output remapped to the
filter) and safety_node run as processes with the launch's params files; a probe drives and
observes them. Unsafe motion is made safe, bad input is rejected and counted, the e-stop
latches until a reset with a fresh state, and the watchdog brakes when the controller dies."""
from __future__ import annotations

import math
import signal
import time

import numpy as np
from builtin_interfaces.msg import Duration
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Float64MultiArray
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from robot_ctrl.model import RobotModel
from rosgraph import diag_values, spin_until, start_node, stop

PANDA = RobotModel.load("panda")
CMD = "/forward_effort_controller/commands"
NOMINAL = "/safety_filter/nominal"
DIAG = "robot_ctrl/safety_filter"
# hand 12 cm below the table top, in front of the robot (joint space, from IK)
THROUGH_TABLE = [0.0, 0.899, 0.0, -2.062, 0.0, 2.791, 0.785, 0.035, 0.035]




class Probe:
    def __init__(self, node):
        self.node = node
        self.states, self.cmds, self.metrics, self.diags = [], [], [], []
        node.create_subscription(JointState, "/joint_states", self.states.append, 100)
        node.create_subscription(Float64MultiArray, CMD, lambda m: self.cmds.append((time.monotonic(), list(m.data))), 100)
        node.create_subscription(Float64MultiArray, "/safety_filter/metrics",
                                 lambda m: self.metrics.append((time.monotonic(), list(m.data))), 100)
        node.create_subscription(DiagnosticArray, "/diagnostics", self.diags.append, 50)
        self.traj = node.create_publisher(JointTrajectory, "/controller/joint_trajectory", 10)
        self.nominal = node.create_publisher(Float64MultiArray, NOMINAL, 10)
        self.estop = node.create_publisher(Bool, "/estop", 10)
        self.obstacle = node.create_publisher(PoseStamped, "/safety_filter/obstacles/obstacle", 10)
        self.reset = node.create_client(Trigger, "/safety_filter/reset")

    def q(self):
        m = self.states[-1]
        idx = [list(m.name).index(j) for j in PANDA.joint_names]
        return np.asarray(m.position)[idx], np.asarray(m.velocity)[idx]

    def diag(self):
        return diag_values(self.diags, DIAG)

    def call_reset(self, procs):
        assert self.reset.wait_for_service(timeout_sec=10)
        fut = self.reset.call_async(Trigger.Request())
        assert spin_until(self.node, fut.done, 10, procs)
        return fut.result()

    def send_chunk(self, goal, seconds):
        q0, _ = self.q()
        msg = JointTrajectory(joint_names=list(PANDA.joint_names))
        for k in range(1, 11):
            t = seconds * k / 10
            s = 0.5 - 0.5 * math.cos(math.pi * k / 10)
            msg.points.append(JointTrajectoryPoint(
                positions=[float(x) for x in q0 + s * (np.asarray(goal) - q0)],
                time_from_start=Duration(sec=int(t), nanosec=int(round((t - int(t)) * 1e9)))))
        self.traj.publish(msg)


def test_safety_node_in_the_graph(ros):
    probe = Probe(ros)
    procs = [
        start_node("sim_node", "sim.yaml", {"timing_mode": "realtime"}),
        start_node("controller_node", "controller.yaml", remap={CMD: NOMINAL}),
        start_node("safety_node", "safety_filter.yaml"),
    ]
    try:
        assert spin_until(ros, lambda: len(probe.metrics) > 100 and probe.diag().get("rows"), 60, procs), \
            "the filter is not forwarding commands"
        d = probe.diag()
        assert spin_until(ros, lambda: len(probe.states) > 10, 10, procs), "no joint states"
        assert int(d["rows"]) >= 30 and int(d["collision_pairs"]) >= 10
        for key in ("h_min", "intervention_max", "solve_us_p50", "fallbacks", "rejected_commands",
                    "active_constraints", "estop_latched"):
            assert key in d, key
        q, _ = probe.q()
        assert np.allclose(q, PANDA.home, atol=5e-3), "the filtered hold keeps the arm at home"

        # 1. an unsafe chunk: the hand straight through the table. The filter stops it above.
        assert spin_until(ros, lambda: probe.traj.get_subscription_count() > 0, 20, procs)
        n0 = len(probe.states)
        probe.send_chunk(THROUGH_TABLE, 1.5)
        assert spin_until(ros, lambda: len(probe.states) > n0 + 1500, 30, procs)
        z = [PANDA.fk(np.asarray(m.position)[[list(m.name).index(j) for j in PANDA.joint_names]])[2, 3]
             for m in probe.states[n0:]]
        assert min(z) > 0.015 - 2e-3, f"the hand reached z = {min(z):.4f}"
        assert max(m[1][2] for m in probe.metrics) > 1.0, "the filter must have intervened (N m)"
        assert all(np.all(np.isfinite(c)) for _, c in probe.cmds)

        # 2. bad input on the nominal topic and on an obstacle pose: rejected and counted
        rej0 = int(probe.diag()["rejected_commands"])
        for data in ([float("nan")] * PANDA.n, [1.0, 2.0], [float("inf")] + [0.0] * (PANDA.n - 1)):
            probe.nominal.publish(Float64MultiArray(data=data))
        bad = PoseStamped()
        bad.header.frame_id = "map"
        bad.pose.orientation.w = 1.0
        probe.obstacle.publish(bad)
        assert spin_until(ros, lambda: int(probe.diag().get("rejected_commands", 0)) >= rej0 + 3
                          and int(probe.diag().get("rejected_poses", 0)) >= 1, 10, procs), probe.diag()
        assert all(np.all(np.isfinite(c)) for _, c in probe.cmds)

        # 3. e-stop: latched braking; nominal commands no longer pass; reset clears it
        probe.send_chunk(PANDA.home, 1.0)
        spin_until(ros, lambda: False, 0.3, procs)
        probe.estop.publish(Bool(data=True))
        probe.estop.publish(Bool(data=False))  # false does not clear the latch
        assert spin_until(ros, lambda: probe.metrics and probe.metrics[-1][1][4] == 4.0, 5, procs)
        k0 = len(probe.metrics)
        spin_until(ros, lambda: False, 1.0, procs)
        assert all(m[1][4] == 4.0 for m in probe.metrics[k0:]), "only stop commands while latched"
        _, v = probe.q()
        assert np.linalg.norm(v) < 0.02, f"braked to rest, |v| = {np.linalg.norm(v):.3f}"
        assert probe.diag()["estop_latched"] == "True"
        res = probe.call_reset(procs)
        assert res.success, res.message
        k1 = len(probe.metrics)
        assert spin_until(ros, lambda: len(probe.metrics) > k1 + 50, 10, procs)
        assert probe.metrics[-1][1][4] in (0.0, 1.0), "filtering again after the reset"

        # 4. watchdog: the controller dies (SIGKILL); the filter brakes within a few periods
        procs[1].send_signal(signal.SIGKILL)
        t_kill = time.monotonic()
        assert spin_until(ros, lambda: probe.metrics and probe.metrics[-1][1][4] == 2.0
                          and probe.metrics[-1][0] > t_kill, 5, procs[::2])
        first = next(t for t, m in probe.metrics if t > t_kill and m[4] == 2.0)
        assert first - t_kill < 0.5, f"first braking command {1e3 * (first - t_kill):.0f} ms after the kill"
        assert spin_until(ros, lambda: int(probe.diag().get("watchdog_brakes", 0)) >= 1, 5, procs[::2])

        # 5. the sim dies too: no fresh state, so a reset is refused
        procs[0].send_signal(signal.SIGKILL)
        spin_until(ros, lambda: False, 0.3, procs[2:])
        probe.estop.publish(Bool(data=True))
        spin_until(ros, lambda: False, 0.3, procs[2:])
        res = probe.call_reset(procs[2:])
        assert not res.success and "fresh" in res.message
    finally:
        outs = stop(procs)
    assert "Traceback" not in outs[2], outs[2][-3000:]
