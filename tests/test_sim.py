"""MuJoCo world and simulator (robot_ctrl.sim): dynamics agree with pinocchio, stepping is
deterministic, the three command modes do what they say, bad commands are refused safely.

Real MuJoCo models compiled from the same URDFs pinocchio loads; no mocks.
"""
from __future__ import annotations

import os
import time

import mujoco
import numpy as np
import pytest

from robot_ctrl.model import RobotModel
from robot_ctrl.paths import ResourceNotFound
from robot_ctrl.sim import CommandError, Simulator, WorldError, build_world
from robot_ctrl.sim.pacing import Pacer
from robot_ctrl.sim.world import robot_prefix


# -- dynamics: pinocchio RNEA == MuJoCo inverse dynamics -------------------------------------------
def full_mass_matrix(model: mujoco.MjModel, data: mujoco.MjData) -> np.ndarray:
    M = np.zeros((model.nv, model.nv))
    try:
        mujoco.mj_fullM(model, data, M)  # mujoco >= 4
    except TypeError:
        mujoco.mj_fullM(model, M, data.qM)  # mujoco 3.x
    return M


@pytest.mark.parametrize("scene", [None, "table"])
@pytest.mark.parametrize("robot_name", ["panda", "ur5"])
def test_pinocchio_rnea_agrees_with_mujoco_inverse(robot_name, scene, request):
    """tau_pin(q, v, a) == qfrc_inverse - damping*v on 20 random states.

    mj_inverse gives qfrc_inverse = (M + diag(armature)) a + c(q, v) - qfrc_passive - qfrc_constraint.
    Constraints (contacts, joint limits) are disabled, and the passive damping MuJoCo adds from the
    URDF (<dynamics damping> -> -damping*v) is taken off, leaving rigid-body dynamics plus the
    rotor inertia (armature) from the robot YAML, which both sides apply (the Panda's fingers). Both sides evaluate the same equations in double precision on
    the same inertias, so they agree to rounding (measured ~1e-13 N m); the tolerance
    atol 1e-7 N m + rtol 1e-7 is orders of magnitude above that and orders below any modelling
    error (a lost link mass, a wrong inertia frame or joint axis gives errors >= 1e-3 N m).
    """
    robot = request.getfixturevalue(robot_name)
    model = build_world(robot, scene=scene, command_mode="effort")
    model.opt.disableflags |= mujoco.mjtDisableBit.mjDSBL_CONSTRAINT
    data = mujoco.MjData(model)
    prefix = robot_prefix(model)
    jids = [model.joint(prefix + j).id for j in robot.joint_names]
    qadr, dadr = model.jnt_qposadr[jids], model.jnt_dofadr[jids]
    assert model.opt.gravity[2] == pytest.approx(-9.81)

    rng = np.random.default_rng(10)
    vmax = np.minimum(robot.v_max, 3.0)
    worst = 0.0
    for _ in range(20):
        q = rng.uniform(robot.q_min, robot.q_max)
        v = rng.uniform(-vmax, vmax)
        a = rng.uniform(-10.0, 10.0, robot.n)
        data.qpos[qadr], data.qvel[dadr], data.qacc[dadr] = q, v, a
        mujoco.mj_inverse(model, data)
        tau_mj = data.qfrc_inverse[dadr] - model.dof_damping[dadr] * v
        tau_pin = robot.rnea(q, v, a)
        np.testing.assert_allclose(tau_pin, tau_mj, rtol=1e-7, atol=1e-7)
        worst = max(worst, float(np.abs(tau_pin - tau_mj).max()))
        # Mass matrices agree too (both add the armature on the diagonal).
        np.testing.assert_allclose(model.dof_armature[dadr], robot.armature)
        M_mj = full_mass_matrix(model, data)[np.ix_(dadr, dadr)]
        np.testing.assert_allclose(robot.mass_matrix(q), M_mj, rtol=1e-7, atol=1e-9)
    assert worst < 1e-7


# -- determinism ---------------------------------------------------------------------------------
def run_sequence(sim: Simulator, commands: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    sim.reset()
    qs, vs, full = [], [], []
    for u in commands:
        sim.set_command(u)
        sim.step()
        qs.append(sim.q.copy())
        vs.append(sim.v.copy())
        full.append(sim.data.qpos.copy())  # robot and scene objects (the block on the table)
    return np.array(qs), np.array(vs), np.array(full)


def test_lockstep_is_deterministic_bit_for_bit(panda):
    rng = np.random.default_rng(20)
    g = panda.gravity(panda.home)
    steps = 300
    commands = g + 2.0 * np.sin(np.linspace(0, 6, steps))[:, None] * rng.uniform(-1, 1, panda.n)
    commands[:, 7:] = -5.0  # close the fingers: contacts between them make it less trivial
    sim = Simulator(panda, scene="table", command_mode="effort")
    first = run_sequence(sim, commands)
    assert np.abs(first[0][-1] - panda.home).max() > 0.01  # it really moved

    # Something else in between, then the same sequence again from reset: identical.
    sim.set_command(np.zeros(panda.n))
    sim.step(100)
    second = run_sequence(sim, commands)
    for a, b in zip(first, second):
        assert np.array_equal(a, b)
    assert sim.steps == steps and sim.time == pytest.approx(steps * sim.control_dt)

    # A separate instance: identical too.
    third = run_sequence(Simulator(panda, scene="table", command_mode="effort"), commands)
    for a, b in zip(first, third):
        assert np.array_equal(a, b)

    # A different sequence (one command changed by 1e-3 N m at one step) gives a different trajectory,
    # identical up to that step.
    changed = commands.copy()
    changed[150, 1] += 1e-3
    fourth = run_sequence(sim, changed)
    assert np.array_equal(first[0][:150], fourth[0][:150])
    assert not np.array_equal(first[0], fourth[0])
    assert not np.array_equal(first[1][150], fourth[1][150])


# -- command modes ---------------------------------------------------------------------------------
@pytest.mark.parametrize("scene", [None, "table"])
def test_position_mode_reaches_the_commanded_position(panda, scene):
    sim = Simulator(panda, scene=scene, command_mode="position")
    target = panda.home + np.array([0.3, -0.2, 0.25, 0.3, -0.3, 0.2, -0.4, -0.01, -0.015])
    assert np.all(target > panda.q_min) and np.all(target < panda.q_max)
    sim.set_command(target)
    sim.step(750)  # 1.5 s
    # The servo has gravity compensation (like a robot's own position interface): no steady-state error.
    assert np.abs(sim.q - target).max() < 1e-4
    assert np.abs(sim.v).max() < 1e-3


def test_velocity_mode_moves_at_the_commanded_velocity(panda):
    sim = Simulator(panda, scene=None, command_mode="velocity")
    vcmd = np.array([0.2, -0.1, 0.15, 0.1, -0.2, 0.1, 0.3, -0.01, -0.005])
    sim.set_command(vcmd)
    sim.step(100)  # 0.2 s to get up to speed
    q0, t0 = sim.q.copy(), sim.time
    vs = []
    for _ in range(250):
        sim.step()
        vs.append(sim.v.copy())
    vs = np.array(vs)
    np.testing.assert_allclose(vs.mean(axis=0), vcmd, atol=2e-3)
    np.testing.assert_allclose((sim.q - q0) / (sim.time - t0), vcmd, atol=2e-3)
    # Zero velocity command stops it where it is.
    sim.set_command(np.zeros(panda.n))
    sim.step(100)
    q1 = sim.q.copy()
    sim.step(250)
    assert np.abs(sim.q - q1).max() < 1e-3


@pytest.mark.parametrize("robot_name,scene,where", [
    ("panda", "table", "home"), ("panda", None, "random"), ("ur5", "table", "home"), ("ur5", None, "random")])
def test_effort_mode_gravity_compensation_holds_still(robot_name, scene, where, request):
    """Pinocchio's gravity torque holds MuJoCo's arm: drift < 1e-6 rad over 1 s."""
    robot = request.getfixturevalue(robot_name)
    sim = Simulator(robot, scene=scene, command_mode="effort")
    if where == "random":
        rng = np.random.default_rng(30)
        span = robot.q_max - robot.q_min
        q = rng.uniform(robot.q_min + 0.2 * span, robot.q_max - 0.2 * span)
        if robot_name == "panda":
            q[7:] = 0.03  # fingers apart, off the limits
        sim.reset(q)
    q0 = sim.q.copy()
    assert np.abs(robot.gravity(q0)).max() > 1.0  # there is load to hold
    for _ in range(500):
        sim.set_command(sim.hold_command())
        sim.step()
    assert sim.time == pytest.approx(1.0)
    assert np.abs(sim.q - q0).max() < 1e-6
    # Without the compensation it falls: the check above is not vacuous.
    sim.reset(q0)
    sim.set_command(np.zeros(robot.n))
    sim.step(500)
    assert np.abs(sim.q - q0).max() > 0.05


@pytest.mark.parametrize("mode", ["effort", "position", "velocity"])
def test_reported_effort_at_rest_is_the_gravity_torque(panda, mode):
    """sim.effort is the actuator torque; holding still it must equal pinocchio's g(q) in every mode
    (servo modes compensate gravity through the actuator, as a robot's joint torque reading would)."""
    sim = Simulator(panda, scene="table", command_mode=mode)
    sim.step(250)
    np.testing.assert_allclose(sim.effort, panda.gravity(sim.q), atol=1e-6)
    assert np.abs(sim.effort).max() > 1.0
    assert np.abs(sim.data.qfrc_passive[sim.dadr]).max() < 1e-6


# -- bad commands -------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["effort", "position", "velocity"])
def test_bad_commands_are_rejected_and_the_previous_one_stays(panda, mode):
    sim = Simulator(panda, scene="table", command_mode=mode)
    good = sim.hold_command()
    sim.set_command(good)
    sim.step(5)
    n = panda.n
    nan = good.copy()
    nan[3] = np.nan
    inf = good.copy()
    inf[0] = np.inf
    ninf = good.copy()
    ninf[8] = -np.inf
    bad = [good[:-1], np.r_[good, 0.0], np.zeros(0), nan, inf, ninf, "abc", [None] * n, 1.0]
    for k, u in enumerate(bad, start=1):
        ctrl_before = sim.data.ctrl.copy()
        t_before = sim.time
        with pytest.raises(CommandError):
            sim.set_command(u)
        assert sim.rejected == k
        np.testing.assert_array_equal(sim.data.ctrl, ctrl_before)
        np.testing.assert_array_equal(sim.command, good)
        sim.step()
        assert sim.time > t_before
        assert np.all(np.isfinite(sim.q)) and np.all(np.isfinite(sim.v))
    # Still holding after all that, and good commands are still taken.
    assert np.abs(sim.q - panda.home).max() < 1e-3
    sim.set_command(good + 0.01)
    assert sim.rejected == len(bad)
    np.testing.assert_array_equal(sim.command, good + 0.01)


def test_reset_with_bad_state_is_refused(panda):
    sim = Simulator(panda, scene=None)
    with pytest.raises(CommandError):
        sim.reset(np.zeros(3))
    with pytest.raises(CommandError):
        sim.reset(panda.home, np.full(panda.n, np.nan))


# -- world / simulator errors ------------------------------------------------------------------------
@pytest.mark.parametrize("control_dt,physics_dt", [(0.0025, 0.001), (0.0005, 0.001), (0.0, 0.001),
                                                    (0.002, -0.001), (float("nan"), 0.001), (0.002, float("inf"))])
def test_control_dt_must_be_a_multiple_of_physics_dt(panda, control_dt, physics_dt):
    with pytest.raises(WorldError):
        Simulator(panda, scene=None, control_dt=control_dt, physics_dt=physics_dt)


def test_control_period_is_made_of_physics_steps(panda):
    sim = Simulator(panda, scene=None, control_dt=0.004, physics_dt=0.001)
    assert sim.n_substeps == 4
    assert sim.model.opt.timestep == 0.001
    sim.step(10)
    assert sim.time == pytest.approx(0.04)
    assert sim.steps == 10


def test_unknown_scene_names_the_file(panda):
    with pytest.raises(ResourceNotFound) as exc:
        Simulator(panda, scene="no_such_scene")
    assert os.path.join("sim", "scenes", "no_such_scene.xml") in str(exc.value)
    assert "table" in str(exc.value)  # lists the scenes there are
    with pytest.raises(ResourceNotFound, match="missing_scene.xml"):
        build_world(panda, scene="/nonexistent/missing_scene.xml")


def test_unknown_command_mode(panda):
    with pytest.raises(WorldError, match="command_mode"):
        Simulator(panda, scene=None, command_mode="torque")


# -- pacing ----------------------------------------------------------------------------------------
def test_pacer_releases_ticks_on_time():
    """Behaviour, not a benchmark: loose bounds that a busy 2-core machine still meets."""
    period = 0.002
    start = time.perf_counter()
    pacer = Pacer(period)
    first_deadline = pacer.next
    lates = [pacer.wait() for _ in range(50)]
    elapsed = time.perf_counter() - start
    assert elapsed >= 50 * period - 2e-3  # never released early ...
    assert elapsed < 50 * period + 0.3   # ... and not wildly late
    assert min(lates) >= 0.0
    if pacer.overruns == 0:
        # Deadlines stay on the grid start + k * period: lateness of one tick does not carry over.
        assert pacer.next == pytest.approx(first_deadline + 50 * period, abs=1e-9)


def test_pacer_does_not_drift_with_work_in_the_loop():
    """Ticks are on a fixed grid: 8 ms of work per 10 ms period still gives 20 ticks in ~200 ms
    (a pacer that sleeps one period after the work would take >= 360 ms)."""
    period = 0.010
    start = time.perf_counter()
    pacer = Pacer(period)
    for _ in range(20):
        pacer.wait()
        time.sleep(0.008)
    pacer.wait()
    elapsed = time.perf_counter() - start
    assert 21 * period - 2e-3 <= elapsed < 0.31


def test_pacer_resynchronises_after_an_overrun():
    period = 0.005
    pacer = Pacer(period)
    pacer.wait()
    time.sleep(4 * period)
    late = pacer.wait()
    assert late > period
    assert pacer.overruns == 1
    # No burst of catch-up ticks: the next one comes about a period later.
    t0 = time.perf_counter()
    pacer.wait()
    assert time.perf_counter() - t0 >= period * 0.8
