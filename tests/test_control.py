"""Control core (robot_ctrl.control): chunk executor, joint controller in closed loop with MuJoCo,
minimum-jerk reference paths."""
from __future__ import annotations

import numpy as np
import pytest

from robot_ctrl.control import ChunkExecutor, JointController, TrajectoryError
from robot_ctrl.control.waypoints import MinJerkPath, default_waypoints
from robot_ctrl.model import RobotModel
from robot_ctrl.sim import Simulator

NAMES = ["a", "b", "c"]
Q0 = np.array([0.1, -0.2, 0.3])


@pytest.fixture
def ex() -> ChunkExecutor:
    e = ChunkExecutor(NAMES)
    e.hold(0.0, Q0)
    return e


def sample(e: ChunkExecutor, t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    q, v, a = e.sample(t)
    return q.copy(), v.copy(), a.copy()


def numdiff(e: ChunkExecutor, t: float, h: float = 1e-6) -> np.ndarray:
    return (sample(e, t + h)[0] - sample(e, t - h)[0]) / (2 * h)


# -- ChunkExecutor ------------------------------------------------------------------------------------
def test_hold_and_start(ex):
    for t in (-1.0, 0.0, 5.0):
        q, v, a = sample(ex, t)
        np.testing.assert_array_equal(q, Q0)
        np.testing.assert_array_equal(v, 0.0)
        np.testing.assert_array_equal(a, 0.0)
    fresh = ChunkExecutor(NAMES)
    assert not fresh.started
    with pytest.raises(TrajectoryError):
        fresh.set_chunk(0.0, [0.1], [[0.0, 0.0, 0.0]])
    with pytest.raises(TrajectoryError):
        fresh.hold(0.0, [0.0, 0.0])
    with pytest.raises(TrajectoryError):
        fresh.hold(0.0, [0.0, np.nan, 0.0])


def test_chunk_is_interpolated_through_its_points(ex):
    times = np.array([0.1, 0.25, 0.4, 0.6])
    P = np.array([[0.2, -0.1, 0.3], [0.4, 0.1, 0.2], [0.3, 0.3, 0.0], [0.0, 0.2, -0.1]])
    assert ex.set_chunk(0.0, times, P) == 4
    assert ex.end_time == pytest.approx(0.6)
    # Starts from the current reference at rest ...
    q, v, _ = sample(ex, 0.0)
    np.testing.assert_allclose(q, Q0, atol=1e-12)
    np.testing.assert_allclose(v, 0.0, atol=1e-12)
    # ... passes through every point ...
    for t, p in zip(times, P):
        np.testing.assert_allclose(sample(ex, t)[0], p, atol=1e-12)
    # ... the sampled velocity/acceleration are the derivatives of the sampled position, and the
    # spline is C2 at the interior points ...
    for t in (0.05, 0.17, 0.33, 0.5):
        q, v, a = sample(ex, t)
        np.testing.assert_allclose(v, numdiff(ex, t), atol=1e-6)
        np.testing.assert_allclose(a, (sample(ex, t + 1e-5)[1] - sample(ex, t - 1e-5)[1]) / 2e-5, atol=1e-4)
    for t in times[:-1]:
        np.testing.assert_allclose(sample(ex, t - 1e-9)[2], sample(ex, t + 1e-9)[2], atol=1e-5)
    # ... and ends at the last point at rest, holding it.
    for t in (0.6, 0.7, 100.0):
        q, v, a = sample(ex, t)
        np.testing.assert_allclose(q, P[-1], atol=1e-12)
        np.testing.assert_allclose(v, 0.0, atol=1e-12)  # at the last point: the spline's own zero end slope
        if t > 0.6:
            np.testing.assert_array_equal(a, 0.0)
    np.testing.assert_allclose(sample(ex, 0.6 - 1e-9)[1], 0.0, atol=1e-6)  # arrives at rest: no velocity step


def test_new_chunk_mid_way_joins_without_jump(ex):
    ex.set_chunk(0.0, [0.2, 0.5, 1.0], [[0.5, 0.0, 0.3], [0.8, -0.5, 0.6], [1.0, -0.6, 0.9]])
    t_join, eps = 0.37, 1e-6
    q_before, v_before, a_before = sample(ex, t_join)
    q_m, v_m, a_m = sample(ex, t_join - eps)
    assert np.abs(v_before).max() > 0.5  # joining a moving reference
    # The new chunk starts far from where the reference is, going the other way.
    P = np.array([[-0.5, 0.5, 0.0], [-0.6, 0.6, -0.2]])
    assert np.abs(P[0] - q_before).max() > 0.5
    assert ex.set_chunk(t_join, [0.3, 0.6], P) == 2
    q_after, v_after, a_after = sample(ex, t_join)
    np.testing.assert_allclose(q_after, q_before, atol=1e-12)
    np.testing.assert_allclose(v_after, v_before, atol=1e-9)
    q_p, v_p, a_p = sample(ex, t_join + eps)
    # Across the join, position changes by ~ v * 2 eps and velocity by ~ a * 2 eps: no jump.
    scale_q = 2 * eps * (np.abs(v_before).max() + 1.0)
    scale_v = 2 * eps * (np.abs(a_m).max() + np.abs(a_p).max() + 1.0)
    assert np.abs(q_p - q_m).max() <= scale_q
    assert np.abs(v_p - v_m).max() <= scale_v
    # Acceleration may jump (C1 join); it does here.
    assert np.abs(a_after - a_before).max() > 1.0
    # And the new chunk's points are reached.
    np.testing.assert_allclose(sample(ex, t_join + 0.3)[0], P[0], atol=1e-12)
    np.testing.assert_allclose(sample(ex, t_join + 0.6)[0], P[1], atol=1e-12)
    assert ex.chunks_accepted == 2


def test_points_at_or_before_now_are_dropped(ex):
    ex.set_chunk(0.0, [0.5, 2.0], [[0.2, 0.2, 0.2], [0.3, 0.3, 0.3]])
    ref_now = sample(ex, 1.0)
    # Chunk started at t=0.5: its points land at 0.7 (past), 1.0 (= now), 1.3 and 1.5.
    P = np.array([[9.0, 9.0, 9.0], [8.0, 8.0, 8.0], [1.0, 1.1, 1.2], [1.3, 1.4, 1.5]])
    assert ex.set_chunk(1.0, [0.2, 0.5, 0.8, 1.0], P, t_start=0.5) == 2
    q, v, _ = sample(ex, 1.0)
    np.testing.assert_allclose(q, ref_now[0], atol=1e-12)  # the dropped point 8.0 is not forced in
    np.testing.assert_allclose(v, ref_now[1], atol=1e-9)
    np.testing.assert_allclose(sample(ex, 1.3)[0], P[2], atol=1e-12)
    np.testing.assert_allclose(sample(ex, 1.5)[0], P[3], atol=1e-12)
    ts = np.linspace(1.0, 1.5, 101)
    assert max(np.abs(sample(ex, t)[0]).max() for t in ts) < 2.0  # never near 8 or 9


def test_fully_stale_chunk_is_rejected(ex):
    ex.set_chunk(0.0, [0.5, 1.0], [[0.2, 0.2, 0.2], [0.3, 0.3, 0.3]])
    before = [sample(ex, t) for t in (0.5, 0.8, 1.5)]
    with pytest.raises(TrajectoryError, match="stale"):
        ex.set_chunk(0.6, [0.1, 0.2], [[1.0, 1.0, 1.0], [2.0, 2.0, 2.0]], t_start=0.3)
    with pytest.raises(TrajectoryError, match="stale"):
        ex.set_chunk(0.6, [0.0], [[1.0, 1.0, 1.0]])  # a single point at now
    after = [sample(ex, t) for t in (0.5, 0.8, 1.5)]
    for b, a in zip(before, after):
        for x, y in zip(b, a):
            np.testing.assert_array_equal(x, y)
    assert ex.chunks_accepted == 1


T3 = [0.1, 0.2, 0.3]
P3 = [[0.0, 0.0, 0.0], [0.1, 0.1, 0.1], [0.2, 0.2, 0.2]]
BAD_CHUNKS = {
    "unknown_joint": dict(times=T3, positions=P3, joint_names=["a", "b", "zz"]),
    "duplicate_joint": dict(times=T3, positions=P3, joint_names=["a", "a", "b"]),
    "no_joints": dict(times=T3, positions=np.zeros((3, 0)), joint_names=[]),
    "nan_position": dict(times=T3, positions=[[0.0, 0.0, 0.0], [0.1, np.nan, 0.1], [0.2, 0.2, 0.2]]),
    "inf_position": dict(times=T3, positions=[[0.0, 0.0, 0.0], [0.1, 0.1, np.inf], [0.2, 0.2, 0.2]]),
    "nan_time": dict(times=[0.1, np.nan, 0.3], positions=P3),
    "inf_time": dict(times=[0.1, 0.2, np.inf], positions=P3),
    "nan_velocity": dict(times=T3, positions=P3, velocities=[[0.0] * 3, [np.nan] * 3, [0.0] * 3]),
    "equal_times": dict(times=[0.1, 0.2, 0.2], positions=P3),
    "decreasing_times": dict(times=[0.1, 0.3, 0.2], positions=P3),
    "negative_time": dict(times=[-0.1, 0.2, 0.3], positions=P3),
    "positions_too_few_rows": dict(times=T3, positions=P3[:2]),
    "positions_too_many_columns": dict(times=T3, positions=[[0.0] * 4] * 3),
    "positions_flat": dict(times=T3, positions=[0.0, 0.1, 0.2]),
    "positions_for_subset_wrong_width": dict(times=T3, positions=P3, joint_names=["a", "b"]),
    "velocities_wrong_shape": dict(times=T3, positions=P3, velocities=[[0.0] * 3] * 2),
    "empty": dict(times=[], positions=np.zeros((0, 3))),
    "not_numeric": dict(times=T3, positions=[["x", "y", "z"]] * 3),
    "nan_start": dict(times=T3, positions=P3, t_start=float("nan")),
}


@pytest.mark.parametrize("case", sorted(BAD_CHUNKS))
def test_bad_chunk_is_rejected_and_reference_unchanged(ex, case):
    ex.set_chunk(0.0, [0.3, 0.8], [[0.5, 0.5, 0.5], [1.0, 0.0, -1.0]])
    probe = (0.05, 0.2, 0.5, 0.79, 2.0)
    before = [sample(ex, t) for t in probe]
    end_before = ex.end_time
    with pytest.raises(TrajectoryError):
        ex.set_chunk(0.05, **BAD_CHUNKS[case])
    after = [sample(ex, t) for t in probe]
    for b, a in zip(before, after):
        for x, y in zip(b, a):
            np.testing.assert_array_equal(x, y)
    assert ex.end_time == end_before
    assert ex.chunks_accepted == 1


def test_partial_chunk_keeps_other_joints(ex):
    # Joints named out of order: c then a. b is not in the chunk.
    times = [0.2, 0.4]
    P = np.array([[1.0, 2.0], [1.5, 2.5]])  # columns: c, a
    assert ex.set_chunk(0.0, times, P, joint_names=["c", "a"]) == 2
    for t in np.linspace(0.0, 1.0, 41):
        q, v, _ = sample(ex, t)
        assert q[1] == pytest.approx(Q0[1], abs=1e-12)
        assert v[1] == pytest.approx(0.0, abs=1e-12)
    for t, p in zip(times, P):
        q = sample(ex, t)[0]
        assert q[2] == pytest.approx(p[0], abs=1e-12)
        assert q[0] == pytest.approx(p[1], abs=1e-12)


def test_partial_chunk_lets_a_moving_joint_continue(ex):
    # b is moving on a chunk when a second chunk that names only a and c arrives mid-way:
    # b passes through its own reference at the new chunk's knots, without a jump at the join,
    # and comes to rest with the others at the new chunk's end.
    times = np.linspace(0.1, 1.0, 10)
    P = Q0 + np.outer(times, [0.5, 1.0, -0.5])
    ex.set_chunk(0.0, times, P)
    knots = [0.4, 0.6, 0.8]
    first = [sample(ex, t)[0][1] for t in knots]
    q_before, v_before, _ = sample(ex, 0.4)
    ex.set_chunk(0.4, [0.2, 0.4], np.array([[0.5, 0.1], [0.6, 0.0]]), joint_names=["a", "c"])
    np.testing.assert_allclose([sample(ex, t)[0][1] for t in knots], first, atol=1e-9)
    q_after, v_after, _ = sample(ex, 0.4)
    np.testing.assert_allclose(q_after, q_before, atol=1e-12)
    np.testing.assert_allclose(v_after, v_before, atol=1e-9)
    q_end, v_end, _ = sample(ex, 1.5)
    assert q_end[1] == pytest.approx(first[-1], abs=1e-9) and np.all(v_end == 0.0)


def test_chunk_with_velocities_is_hermite(ex):
    times = np.array([0.2, 0.5, 0.9])
    P = np.array([[0.3, 0.0, 0.3], [0.6, 0.2, 0.1], [0.8, 0.4, 0.0]])
    V = np.array([[1.0, 0.5, -1.0], [0.5, 1.0, -0.2], [0.0, 0.0, 0.0]])
    ex.set_chunk(0.0, times, P, velocities=V)
    for t, p, vel in zip(times, P, V):
        q, v, _ = sample(ex, t)
        np.testing.assert_allclose(q, p, atol=1e-12)
        np.testing.assert_allclose(v, vel, atol=1e-9)
    h = 1e-6
    for t, vel in zip(times[:-1], V[:-1]):  # the sampled position's one-sided slopes, not only v
        q = sample(ex, t)[0]
        np.testing.assert_allclose((sample(ex, t + h)[0] - q) / h, vel, atol=1e-4)  # error ~ h |a| / 2
        np.testing.assert_allclose((q - sample(ex, t - h)[0]) / h, vel, atol=1e-4)
    # A spline through the same points without velocities has different slopes there.
    ex2 = ChunkExecutor(NAMES)
    ex2.hold(0.0, Q0)
    ex2.set_chunk(0.0, times, P)
    assert np.abs(sample(ex2, 0.2)[1] - V[0]).max() > 0.1


def test_chunk_starting_in_the_future(ex):
    times = [0.0, 0.25]
    P = np.array([[0.5, 0.5, 0.5], [0.7, 0.3, 0.9]])
    assert ex.set_chunk(0.0, times, P, t_start=0.5) == 2
    np.testing.assert_allclose(sample(ex, 0.0)[0], Q0, atol=1e-12)
    np.testing.assert_allclose(sample(ex, 0.5)[0], P[0], atol=1e-12)
    np.testing.assert_allclose(sample(ex, 0.75)[0], P[1], atol=1e-12)
    np.testing.assert_allclose(sample(ex, 2.0)[0], P[1], atol=1e-12)
    # It moves smoothly from the current reference to the first point, no step at t_start.
    qs = np.array([sample(ex, t)[0] for t in np.linspace(0.0, 0.75, 751)])
    assert np.abs(np.diff(qs, axis=0)).max() < 0.01


# -- JointController in closed loop with MuJoCo --------------------------------------------------------
# Measured RMS tracking error (Panda, 4 min-jerk segments of 0.75 s through default_waypoints, streamed
# as overlapping 16-point chunks every 0.4 s, 500 Hz control, 1 kHz physics, table scene):
#   effort (computed torque):     2.15e-4 rad
#   position (robot's servo):     8.03e-3 rad
#   velocity (v_d + Kp/Kd e):     2.55e-3 rad
# Bounds are ~3x the measured values.
RMS_BOUND = {"effort": 7e-4, "position": 2.5e-2, "velocity": 7.5e-3}


def run_closed_loop(robot: RobotModel, mode: str, scene="table"):
    sim = Simulator(robot, scene=scene, command_mode=mode, control_dt=0.002, physics_dt=0.001)
    ctrl = JointController(robot, mode)
    path = MinJerkPath(default_waypoints(robot, count=4), segment_s=0.75, t0=0.1)
    t_end = path.t0 + path.duration
    next_chunk = path.t0
    errors, commands = [], []
    while sim.time < t_end + 0.3:
        t = sim.time
        if next_chunk <= t + 1e-9 and t < t_end:
            rel, qs = path.chunk(t, horizon_s=0.8, points=16)
            ctrl.executor.set_chunk(t, rel, qs)
            next_chunk += 0.4
        u = ctrl.update(t, sim.q.copy(), sim.v.copy())
        errors.append(ctrl.error.copy())
        commands.append(u.copy())
        sim.set_command(u)
        sim.step()
    return sim, ctrl, path, np.array(errors), np.array(commands)


@pytest.mark.parametrize("mode", ["effort", "position", "velocity"])
def test_joint_controller_tracks_a_streamed_path(panda, mode):
    sim, ctrl, path, errors, commands = run_closed_loop(panda, mode)
    assert ctrl.executor.chunks_accepted >= 8
    assert sim.time > 3.0
    rms = float(np.sqrt(np.mean(errors**2)))
    assert rms < RMS_BOUND[mode], f"{mode}: RMS tracking error {rms:.3g} rad"
    # The reference really moved: it is not tracking a still target.
    assert np.abs(default_waypoints(panda, count=4) - panda.home).max() > 0.3
    # Arrives at the last waypoint.
    assert np.abs(sim.q - path.W[-1]).max() < 1e-3
    # Commands are finite and inside the limits of their mode.
    assert np.all(np.isfinite(commands))
    if mode == "effort":
        assert np.all(np.abs(commands) <= panda.tau_max)
    elif mode == "position":
        assert np.all(commands >= panda.q_min) and np.all(commands <= panda.q_max)
    else:
        assert np.all(np.abs(commands) <= panda.v_max)
    assert ctrl.nonfinite == 0


def test_effort_output_saturates_at_the_limits(panda):
    ctrl = JointController(panda, "effort")
    q, v = panda.home.copy(), np.zeros(panda.n)
    ctrl.update(0.0, q, v)
    far = np.clip(panda.home + 1.0, panda.q_min, panda.q_max)
    ctrl.executor.set_chunk(0.0, [0.02], [far])
    u = ctrl.update(0.005, q, v)
    assert np.all(np.isfinite(u))
    assert np.all(np.abs(u) <= panda.tau_max)
    assert np.any(np.isclose(np.abs(u), panda.tau_max))


@pytest.mark.parametrize("mode", ["effort", "position", "velocity"])
def test_nan_state_gives_the_hold_command(panda, mode):
    ctrl = JointController(panda, mode)
    # Very first call with a NaN state: a finite hold command, no exception, no reference started.
    q_nan = panda.home.copy()
    q_nan[2] = np.nan
    u = ctrl.update(0.0, q_nan, np.zeros(panda.n))
    assert np.all(np.isfinite(u))
    np.testing.assert_array_equal(u, ctrl.hold_command(q_nan))
    assert not ctrl.started

    q = panda.home.copy()
    ctrl.update(0.0, q, np.zeros(panda.n))
    ctrl.executor.set_chunk(0.0, [0.5], [panda.home + 0.05])
    nonfinite = ctrl.nonfinite
    for q_bad, v_bad in ((q_nan, np.zeros(panda.n)), (q, np.full(panda.n, np.nan)),
                         (q, np.r_[np.inf, np.zeros(panda.n - 1)])):
        u = ctrl.update(0.1, q_bad, v_bad)
        assert np.all(np.isfinite(u))
    if mode == "effort":
        # Velocity NaN, position fine: the hold command is gravity compensation at q.
        np.testing.assert_allclose(ctrl.update(0.1, q, np.full(panda.n, np.nan)), panda.gravity(q))
        assert ctrl.nonfinite > nonfinite
    elif mode == "velocity":
        np.testing.assert_array_equal(ctrl.update(0.1, q_nan, np.zeros(panda.n)), 0.0)
        assert ctrl.nonfinite > nonfinite


def test_controller_rejects_bad_gains(panda):
    with pytest.raises(ValueError):
        JointController(panda, "effort", kp=[1.0, 2.0])
    with pytest.raises(ValueError):
        JointController(panda, "effort", kd=[-1.0] * panda.n)
    with pytest.raises(ValueError):
        JointController(panda, "torque")


# -- MinJerkPath -----------------------------------------------------------------------------------------
def test_min_jerk_path_starts_and_ends_at_waypoints_at_rest():
    W = np.array([[0.0, 1.0], [1.0, -1.0], [0.5, 0.5], [2.0, 0.0]])
    path = MinJerkPath(W, segment_s=0.8, t0=1.0)
    assert path.duration == pytest.approx(2.4)
    h = 1e-4
    for k, w in enumerate(W):
        t = 1.0 + 0.8 * k
        np.testing.assert_allclose(path(t)[0], w, atol=1e-9)
        vel = (path(t + h)[0] - path(t - h)[0]) / (2 * h)
        acc = (path(t + h)[0] - 2 * path(t)[0] + path(t - h)[0]) / h**2
        np.testing.assert_allclose(vel, 0.0, atol=1e-6)
        np.testing.assert_allclose(acc, 0.0, atol=1e-2)
    np.testing.assert_allclose(path(0.0)[0], W[0])
    np.testing.assert_allclose(path(100.0)[0], W[-1], atol=1e-9)
    # Half way through a segment it is half way between the waypoints (min-jerk is symmetric).
    np.testing.assert_allclose(path(1.0 + 0.4)[0], 0.5 * (W[0] + W[1]), atol=1e-12)
    # Vectorised sampling and chunks.
    ts = np.array([1.1, 1.9, 2.7])
    np.testing.assert_allclose(path(ts), np.array([path(t)[0] for t in ts]))
    rel, qs = path.chunk(1.5, horizon_s=0.8, points=16)
    assert rel.shape == (16,) and qs.shape == (16, 2)
    assert rel[0] == pytest.approx(0.05) and rel[-1] == pytest.approx(0.8)
    np.testing.assert_allclose(qs, path(1.5 + rel))
    with pytest.raises(ValueError):
        MinJerkPath(W[:1], 1.0)
    with pytest.raises(ValueError):
        MinJerkPath(W, 0.0)


def test_default_waypoints_inside_limits(panda):
    W = default_waypoints(panda, count=4)
    assert W.shape == (5, panda.n)
    np.testing.assert_array_equal(W[0], panda.home)
    np.testing.assert_array_equal(W[-1], panda.home)
    assert np.all(W >= panda.q_min) and np.all(W <= panda.q_max)
    assert np.all(np.abs(W[1:-1] - panda.home).max(axis=0) > 0)  # every joint moves


def test_controller_restarts_reference_when_time_goes_backwards(panda):
    # a simulator reset sends time back to 0; the old reference must not drag the arm away
    ctrl = JointController(panda, "position")
    q0 = panda.home.copy()
    ctrl.update(0.0, q0, np.zeros(panda.n))
    target = q0 + 0.2 * (np.arange(panda.n) < 7)
    ctrl.executor.set_chunk(0.0, [1.0], target[None, :])
    u = ctrl.update(2.0, target, np.zeros(panda.n))
    np.testing.assert_allclose(u, target)
    u = ctrl.update(0.0, q0, np.zeros(panda.n))  # reset: back at home, time 0
    np.testing.assert_allclose(u, q0)
    assert ctrl.time_resets == 1
    np.testing.assert_allclose(ctrl.update(0.5, q0, np.zeros(panda.n)), q0)


def test_chunk_following_exactly_at_the_end_of_a_hermite_chunk_joins_c1(ex):
    """A chunk with a non-zero end velocity, followed by the next one exactly at its last point
    (how a policy stepping one action per period feeds the executor): no velocity step."""
    n = len(Q0)
    v1 = np.full(n, 0.5)
    ex.set_chunk(0.0, [0.1], (Q0 + 0.05)[None], velocities=v1[None])
    q_end, v_end, _ = [x.copy() for x in sample(ex, 0.1)]
    np.testing.assert_allclose(v_end, v1, atol=1e-12)
    ex.set_chunk(0.1, [0.1], (Q0 + 0.1)[None], velocities=v1[None])
    q0, v0, _ = sample(ex, 0.1)
    np.testing.assert_allclose(q0, q_end, atol=1e-12)
    np.testing.assert_allclose(v0, v_end, atol=1e-12)
    np.testing.assert_allclose(sample(ex, 0.2 + 1e-9)[1], 0.0)  # after the last point: held at rest
