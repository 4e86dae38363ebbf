"""The fake hardware: its core (actuator lag, latency, the three interfaces, pinocchio dynamics,
noise, drops, stamp jitter and jumps, bad commands and config) and its node as a process on the
ros2_control topics: /joint_states in the configured order with an extra joint, forward
commands in the controller's order, a JointTrajectory followed, bad commands rejected and counted."""
from __future__ import annotations

import math

import numpy as np
import pinocchio as pin
import pytest
from builtin_interfaces.msg import Duration
from diagnostic_msgs.msg import DiagnosticArray
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from robot_ctrl.hardware import FakeHardware, FakeHardwareConfig, LinearTrajectory
from robot_ctrl.ros.common import STATE_QOS, sec_to_stamp, stamp_to_sec
from rosgraph import diag_values, spin_until, start_node, stop

DIAG = "robot_ctrl/fake_hardware"


def _run(hw, seconds, dt=0.001):
    out = []
    for _ in range(int(round(seconds / dt))):
        hw.step(dt)
        out.append((hw.t, hw.q.copy(), hw.v.copy()))
    return out


# -- core ------------------------------------------------------------------------------------
def test_position_lag_reaches_63_percent_at_tau(panda):
    tau = 0.05
    hw = FakeHardware(panda, FakeHardwareConfig(actuator_tau=tau))
    q0 = panda.home.copy()
    u = q0.copy()
    u[0] += 0.5
    hw.command(u)
    trace = _run(hw, 0.3)
    frac = {round(t, 6): (q[0] - q0[0]) / 0.5 for t, q, _ in trace}
    assert frac[tau] == pytest.approx(1 - math.exp(-1), abs=1e-6)
    assert frac[0.3] == pytest.approx(1 - math.exp(-6), abs=1e-6)
    # v is the derivative of the lagged target; the other joints did not move
    t, q, v = trace[19]
    assert v[0] == pytest.approx(0.5 / tau * math.exp(-t / tau), rel=1e-9)
    assert np.allclose(q[1:], q0[1:]) and np.allclose(v[1:], 0)
    # a position command beyond the limits is clipped to them
    u[3] = 5.0
    hw.command(u)
    _run(hw, 1.0)
    assert hw.q[3] == pytest.approx(panda.q_max[3], abs=1e-6)


def test_latency_nothing_moves_before_it(panda):
    hw = FakeHardware(panda, FakeHardwareConfig(actuator_tau=0.01, latency_s=0.05))
    u = panda.home.copy()
    u[1] += 0.2
    hw.command(u, t=0.0)
    trace = _run(hw, 0.1)
    before = [q for t, q, _ in trace if t <= 0.05 + 1e-9]
    after = [q for t, q, _ in trace if t > 0.0515]
    assert len(before) == 50 and all(np.array_equal(q, panda.home) for q in before)
    assert after[0][1] > panda.home[1] + 1e-4
    assert trace[-1][1][1] - panda.home[1] == pytest.approx(0.2 * (1 - math.exp(-5)), abs=1e-6)


def test_velocity_interface_integrates_and_stops_at_the_limits(panda):
    tau = 0.02
    hw = FakeHardware(panda, FakeHardwareConfig(interface="velocity", actuator_tau=tau))
    assert _run(hw, 0.05)[-1][1] == pytest.approx(panda.home)  # no command: it holds
    hw.reset()
    u = np.zeros(panda.n)
    u[0] = 0.2
    hw.command(u)
    T = 0.5
    _, q, v = _run(hw, T)[-1]
    # exact: the integral of the lagged velocity
    assert q[0] - panda.home[0] == pytest.approx(0.2 * (T - tau * (1 - math.exp(-T / tau))), abs=1e-9)
    assert v[0] == pytest.approx(0.2 * (1 - math.exp(-T / tau)))
    assert np.allclose(q[1:], panda.home[1:])
    # joint 4 driven into its upper limit: clipped there, velocity zero
    u[:] = 0
    u[3] = 1.0
    hw.command(u)
    _, q, v = _run(hw, 3.0)[-1]
    assert q[3] == pytest.approx(panda.q_max[3]) and v[3] == 0.0


def test_effort_zero_torque_falls_and_gravity_compensation_holds(panda):
    q0 = panda.home
    g0 = panda.gravity(q0)
    braked = FakeHardware(panda, FakeHardwareConfig(interface="effort", actuator_tau=0.0))
    _run(braked, 0.5)  # no command yet: the brakes hold it
    assert np.array_equal(braked.q, q0) and not braked.v.any()
    braked.command(np.zeros(panda.n))
    _run(braked, 0.1)  # zero torque commanded: brakes off, it sags
    assert abs(braked.q[1] - q0[1]) > 5e-3
    hw = FakeHardware(panda, FakeHardwareConfig(interface="effort", actuator_tau=0.0, brake_until_command=False))
    _run(hw, 0.1)  # no brakes and no command: no torque
    dq = hw.q - q0
    assert abs(dq[1]) > 5e-3, "the shoulder must sag"
    assert float(dq @ g0) < 0, "it moves along -g (downhill)"
    pe = lambda q: pin.computePotentialEnergy(panda.model, panda.model.createData(), q)  # noqa: E731
    assert pe(hw.q) < pe(q0) - 1e-2
    # a long fall ends at the joint limits, finite
    _run(hw, 2.0, dt=0.002)
    assert np.all(np.isfinite(hw.q)) and np.all(hw.q >= panda.q_min - 1e-12) and np.all(hw.q <= panda.q_max + 1e-12)

    hold = FakeHardware(panda, FakeHardwareConfig(interface="effort", actuator_tau=0.0))
    hold.command(panda.rnea(q0, np.zeros(panda.n), np.zeros(panda.n)))
    _run(hold, 1.0, dt=0.002)
    assert np.abs(hold.q - q0).max() < 1e-9 and np.abs(hold.v).max() < 1e-9
    np.testing.assert_allclose(hold.measure().effort, g0, atol=1e-9)  # effort reports the applied torque


def test_position_effort_reading_is_the_inverse_dynamics(panda):
    hw = FakeHardware(panda)
    np.testing.assert_allclose(hw.measure().effort, panda.gravity(panda.home), atol=1e-9)


def test_noise_drops_jitter_and_stamp_jumps_at_the_configured_rates(panda):
    cfg = FakeHardwareConfig(noise_std_position=0.01, noise_std_velocity=0.05, drop_prob=0.2, jitter_s=0.001,
                             stamp_jump_prob=0.05, stamp_jump_s=0.5, seed=3)
    hw = FakeHardware(panda, cfg)
    N = 20000
    samples = []
    for k in range(N):
        hw.step(0.002)
        s = hw.measure()
        if s is not None:
            samples.append((hw.t, s))
    assert len(samples) / N == pytest.approx(0.8, abs=0.015)
    assert hw.states_dropped == N - len(samples) and hw.states_published == len(samples)
    err = np.array([s.stamp - t for t, s in samples])
    jumped = err > 0.25
    assert jumped.mean() == pytest.approx(0.05, abs=0.01)
    assert hw.stamp_jumps == int(jumped.sum())
    assert np.std(err[~jumped]) == pytest.approx(0.001, rel=0.05)
    assert np.mean(err[jumped]) == pytest.approx(0.5, abs=1e-3)
    assert hw.t == pytest.approx(N * 0.002)  # the clock itself never jumps
    P = np.array([s.position for _, s in samples]) - panda.home
    V = np.array([s.velocity for _, s in samples])
    assert np.std(P, axis=0) == pytest.approx(np.full(panda.n, 0.01), rel=0.05)
    assert np.std(V, axis=0) == pytest.approx(np.full(panda.n, 0.05), rel=0.05)
    assert np.array_equal(hw.q, panda.home)  # noise is on the measurement only
    # the same seed, the same draws
    again = FakeHardware(panda, cfg)
    again.step(0.002)
    hw2 = FakeHardware(panda, cfg)
    hw2.step(0.002)
    a, b = again.measure(), hw2.measure()
    assert (a is None) == (b is None) and (a is None or np.array_equal(a.position, b.position))


def test_bad_commands_raise_and_leave_the_state_finite(panda):
    for interface in ("position", "velocity", "effort"):
        hw = FakeHardware(panda, FakeHardwareConfig(interface=interface))
        hw.step(0.01)
        q = hw.q.copy()
        nan = np.zeros(panda.n)
        nan[2] = np.nan
        for bad in (nan, np.full(panda.n, np.inf), np.zeros(3), np.zeros((panda.n, 1)), ["a"] * panda.n):
            with pytest.raises(ValueError):
                hw.command(bad)
        with pytest.raises(ValueError, match="panda_joint3"):
            hw.command(nan)
        assert hw.rejected_commands == 6 and hw.commands == 0 and hw.pending == 0
        hw.step(0.01)
        assert np.all(np.isfinite(hw.q)) and np.all(np.isfinite(hw.v))
        if interface != "effort":
            assert np.array_equal(hw.q, q)
        s = hw.measure()
        assert np.all(np.isfinite(s.position)) and np.all(np.isfinite(s.velocity)) and np.all(np.isfinite(s.effort))


def test_the_latency_queue_is_bounded(panda):
    hw = FakeHardware(panda, FakeHardwareConfig(latency_s=1.0, max_queue=10))
    for k in range(15):
        hw.command(panda.home + 0.001 * k, t=0.001 * k)
    assert hw.pending == 10 and hw.queue_overflows == 5 and hw.commands == 15
    hw.step(1.1)
    assert hw.pending == 0 and hw.stats()["queue_overflows"] == 5


@pytest.mark.parametrize("field,value", [
    ("interface", "torque"), ("actuator_tau", -0.1), ("latency_s", float("nan")), ("noise_std_position", -1.0),
    ("noise_std_velocity", "0.1"), ("drop_prob", 1.5), ("jitter_s", float("inf")), ("stamp_jump_prob", -0.1),
    ("stamp_jump_s", float("nan")), ("seed", 1.5), ("damping", -1.0), ("max_queue", 0), ("max_substep_s", 0.0),
])
def test_bad_config_fields_are_named(field, value):
    with pytest.raises(ValueError, match=f"FakeHardwareConfig.{field}"):
        FakeHardwareConfig(**{field: value})


def test_linear_trajectory_interpolates_and_holds():
    tr = LinearTrajectory([1.0, 2.0, 4.0], [[0.0, 1.0], [1.0, 1.0], [3.0, 0.0]])
    assert tr.sample(0.0) == pytest.approx([0.0, 1.0])
    assert tr.sample(1.5) == pytest.approx([0.5, 1.0])
    assert tr.sample(3.0) == pytest.approx([2.0, 0.5])
    assert tr.sample(10.0) == pytest.approx([3.0, 0.0])
    for times, pos in (([1.0, 1.0], [[0.0], [1.0]]), ([0.0, 1.0], [[0.0], [np.nan]]), ([0.0], [[0.0, 1.0], [1.0, 2.0]])):
        with pytest.raises(ValueError):
            LinearTrajectory(times, pos)


# -- the node in the graph -------------------------------------------------------------------
class Probe:
    def __init__(self, node, cmd_topic=None, traj_topic=None):
        self.node = node
        self.states, self.diags = [], []
        node.create_subscription(JointState, "/joint_states", self.states.append, STATE_QOS)
        node.create_subscription(DiagnosticArray, "/diagnostics", self.diags.append, 50)
        self.cmd = node.create_publisher(Float64MultiArray, cmd_topic, 10) if cmd_topic else None
        self.traj = node.create_publisher(JointTrajectory, traj_topic, 10) if traj_topic else None

    def q(self, names, msg=None):
        m = msg or self.states[-1]
        return np.array([m.position[list(m.name).index(j)] for j in names])

    def diag(self):
        return diag_values(self.diags, DIAG)

    def all_finite(self):
        return all(np.all(np.isfinite(m.position)) and np.all(np.isfinite(m.velocity)) and np.all(np.isfinite(m.effort))
                   for m in self.states)


def _list(names):
    return "[" + ", ".join(names) + "]"


def test_node_forward_commands_in_controller_order_and_rejects_bad_ones(ros, panda):
    joints = list(reversed(panda.joint_names))
    ctrl = ["panda_joint4", "panda_joint2", "panda_joint1"]
    probe = Probe(ros, cmd_topic="/forward_position_controller/commands")
    procs = [start_node("fake_hardware_node", "fake_hardware.yaml",
                        {"joints": _list(joints), "extra_joints": "[camera_pan]", "controller_joints": _list(ctrl)})]
    try:
        assert spin_until(ros, lambda: len(probe.states) > 20 and probe.diag(), 20, procs), "no /joint_states"
        m = probe.states[-1]
        assert list(m.name) == joints + ["camera_pan"]
        assert len(m.position) == len(m.velocity) == len(m.effort) == len(joints) + 1
        assert m.position[-1] == 0.0 and m.velocity[-1] == 0.0
        np.testing.assert_allclose(probe.q(panda.joint_names), panda.home, atol=1e-9)
        d = probe.diag()
        for key in ("states_published", "states_dropped", "stamp_jumps", "commands", "rejected_commands",
                    "queue_overflows", "interface", "actuator_tau", "latency_s", "drop_prob", "seed"):
            assert key in d, key
        assert d["command_topic"] == "/forward_position_controller/commands" and d["interface"] == "position"

        # a position command in the controller's order: joint4, joint2, joint1
        target = [-2.0, -0.5, 0.4]
        assert spin_until(ros, lambda: probe.cmd.get_subscription_count() > 0, 10, procs)
        probe.cmd.publish(Float64MultiArray(data=target))
        assert spin_until(ros, lambda: np.allclose(probe.q(ctrl), target, atol=1e-3), 5, procs), probe.q(ctrl)
        others = [j for j in panda.joint_names if j not in ctrl]
        np.testing.assert_allclose(probe.q(others), [panda.home[panda.joint_names.index(j)] for j in others],
                                   atol=1e-9)

        # malformed commands: rejected, counted, the state stays finite and where it was
        rej0 = int(probe.diag()["rejected_commands"])
        for data in ([float("nan"), 0.0, 0.0], [0.1, 0.2], [0.0] * panda.n, [float("inf"), -0.5, 0.4]):
            probe.cmd.publish(Float64MultiArray(data=data))
        assert spin_until(ros, lambda: int(probe.diag().get("rejected_commands", 0)) >= rej0 + 4, 5, procs), \
            probe.diag()
        n = len(probe.states)
        assert spin_until(ros, lambda: len(probe.states) > n + 50, 5, procs)
        np.testing.assert_allclose(probe.q(ctrl), target, atol=1e-4)
        assert probe.all_finite()
        assert int(probe.diag()["commands"]) == 1
    finally:
        out = stop(procs)[0]
    assert "rejected command" in out, out


def test_node_follows_a_joint_trajectory_and_rejects_bad_ones(ros, panda):
    topic = "/joint_trajectory_controller/joint_trajectory"
    probe = Probe(ros, traj_topic=topic)
    procs = [start_node("fake_hardware_node", "fake_hardware.yaml",
                        {"controller_type": "trajectory", "controller_name": "joint_trajectory_controller",
                         "actuator_tau": 0.0})]
    try:
        assert spin_until(ros, lambda: len(probe.states) > 20 and probe.traj.get_subscription_count() > 0, 20, procs)
        names = list(reversed(panda.joint_names))  # by name, in any order
        home = dict(zip(panda.joint_names, panda.home))

        def traj(points, stamp=None):
            msg = JointTrajectory(joint_names=list(names))
            if stamp is not None:
                sec_to_stamp(stamp, msg.header.stamp)
            for t, q1 in points:
                pos = [q1 if j == "panda_joint1" else home[j] for j in names]
                msg.points.append(JointTrajectoryPoint(
                    positions=pos, time_from_start=Duration(sec=int(t), nanosec=int(round((t % 1) * 1e9)))))
            return msg

        start = ros.get_clock().now().nanoseconds * 1e-9 + 0.3
        n0 = len(probe.states)
        probe.traj.publish(traj([(0.5, 0.3), (1.0, 0.6)], stamp=start))
        assert spin_until(ros, lambda: stamp_to_sec(probe.states[-1].header.stamp) > start + 1.3, 10, procs)
        ref = LinearTrajectory([start, start + 0.5, start + 1.0], [[0.0], [0.3], [0.6]])
        errors = []
        for m in probe.states[n0:]:
            t = stamp_to_sec(m.header.stamp)
            if start - 0.2 < t < start + 1.3:
                errors.append(abs(probe.q(["panda_joint1"], m)[0] - ref.sample(t)[0]))
        # one period behind the reference (the hardware moves toward the command of the last
        # tick): 0.6 rad/s * 2 ms; a late tick on a loaded machine adds to it
        assert len(errors) > 200 and np.median(errors) < 0.003 and max(errors) < 0.03, (np.median(errors), max(errors))
        assert probe.q(["panda_joint1"])[0] == pytest.approx(0.6, abs=1e-9)

        # bad trajectories: unknown joint, missing joint, non-increasing times, NaN, wrong size
        bad = [traj([(0.5, 0.0)]) for _ in range(5)]
        bad[0].joint_names[0] = "elbow"
        bad[1].joint_names = names[:-1]
        bad[1].points[0].positions = bad[1].points[0].positions[:-1]
        bad[2] = traj([(0.5, 0.0), (0.5, 0.1)])
        bad[3].points[0].positions[3] = float("nan")
        bad[4].points[0].positions = bad[4].points[0].positions[:-1]
        for b in bad:
            probe.traj.publish(b)
        assert spin_until(ros, lambda: int(probe.diag().get("rejected_commands", 0)) >= 5, 5, procs), probe.diag()
        assert probe.diag()["trajectories"] == "1"
        n = len(probe.states)
        assert spin_until(ros, lambda: len(probe.states) > n + 50, 5, procs)
        assert probe.q(["panda_joint1"])[0] == pytest.approx(0.6, abs=1e-9) and probe.all_finite()

        # a new trajectory replaces the old one; an empty one stops it where it is
        probe.traj.publish(traj([(2.0, 0.0)]))
        assert spin_until(ros, lambda: probe.q(["panda_joint1"])[0] < 0.5, 5, procs)
        probe.traj.publish(JointTrajectory())
        assert spin_until(ros, lambda: probe.diag().get("trajectories") == "3", 5, procs)
        n = len(probe.states)
        assert spin_until(ros, lambda: len(probe.states) > n + 100, 5, procs)
        held = [probe.q(["panda_joint1"], m)[0] for m in probe.states[n:]]
        assert 0.05 < held[0] < 0.5 and np.ptp(held) < 1e-12, "stopped and held"
    finally:
        stop(procs)


@pytest.mark.parametrize("overrides,message", [
    ({"drop_prob": 1.5}, "parameter 'drop_prob'"),
    ({"controller_joints": "[elbow]"}, "parameter 'controller_joints'"),
])
def test_node_bad_parameters_stop_startup_naming_them(overrides, message):
    proc = start_node("fake_hardware_node", "fake_hardware.yaml", overrides)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode != 0
    assert message in out.decode(), out.decode()


def test_node_faults_drops_jumps_and_noise_but_never_nan(ros, panda):
    probe = Probe(ros)
    arrivals = []
    ros.create_subscription(JointState, "/joint_states",
                            lambda m: arrivals.append((ros.get_clock().now().nanoseconds * 1e-9,
                                                       stamp_to_sec(m.header.stamp))), STATE_QOS)
    procs = [start_node("fake_hardware_node", "fake_hardware.yaml",
                        {"extra_joints": "[camera_pan]", "drop_prob": 0.3, "stamp_jump_prob": 0.05,
                         "stamp_jump_s": 0.5, "noise_std_position": 0.01, "jitter_s": 0.0005, "seed": 7})]
    try:
        assert spin_until(ros, lambda: int(probe.diag().get("states_published", 0)) > 500, 20, procs)
        d = probe.diag()
        total = int(d["states_published"]) + int(d["states_dropped"])
        assert int(d["states_dropped"]) / total == pytest.approx(0.3, abs=0.06)
        assert int(d["stamp_jumps"]) / int(d["states_published"]) == pytest.approx(0.05, abs=0.03)
        assert d["drop_prob"] == "0.3" and d["seed"] == "7"
        ahead = [stamp - recv for recv, stamp in arrivals]
        assert any(a > 0.4 for a in ahead), "a jumped stamp is 0.5 s ahead of the receipt"
        assert np.median(np.abs(ahead)) < 0.05, "the others are stamped with the node clock"
        P = np.array([probe.q(panda.joint_names, m) for m in probe.states]) - panda.home
        assert 0.007 < np.std(P) < 0.013
        assert all(m.position[-1] == 0.0 for m in probe.states), "the extra joint is held at 0, noise-free"
        assert probe.all_finite()
    finally:
        stop(procs)
