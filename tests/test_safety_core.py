"""Safety filter core (issue 3, first part): CBF rows, the daqp QP against the cvxpy reference,
fallbacks, and falsification in closed loop with the MuJoCo Panda."""
from __future__ import annotations

import numpy as np
import pytest

from robot_ctrl.safety import (
    AccelerationLimits,
    EffortLimits,
    JointPositionLimits,
    JointVelocityLimits,
    SafetyFilter,
    WorkspaceBox,
    adaptive_alpha,
)
from robot_ctrl.safety.falsify import falsify

TABLE_Z = 0.05  # keep the end effector 5 cm above the table top


def constraints(accel: bool = True):
    """Joint position (1 cm margin), velocity, effort and acceleration limits, and a workspace box
    whose floor keeps the hand above the table: 42-60 rows on the Panda."""
    return [JointPositionLimits(margin=0.01), JointVelocityLimits(), EffortLimits()] + \
        ([AccelerationLimits(20.0)] if accel else []) + [WorkspaceBox(lower=[-0.8, -0.8, TABLE_Z],
                                                                      upper=[0.9, 0.8, 1.2])]


def random_states(robot, rng, count, speed=0.8):
    span = robot.q_max - robot.q_min
    for _ in range(count):
        q = rng.uniform(robot.q_min + 0.05 * span, robot.q_max - 0.05 * span)
        v = rng.uniform(-speed, speed, robot.n) * robot.v_max
        yield q, v


@pytest.mark.parametrize("mode,scale", [("velocity", 3.0), ("effort", 60.0)])
def test_daqp_agrees_with_cvxpy_reference(panda, mode, scale):
    # random velocities far from the last command: acceleration rows would make most states
    # infeasible, so this comparison leaves them out
    fast = SafetyFilter(panda, constraints(accel=False), mode=mode)
    ref = SafetyFilter(panda, constraints(accel=False), mode=mode, backend="cvxpy")
    rng = np.random.default_rng(1)
    compared = intervened = 0
    # effort mode: slower states, since fast ones already inside a braking distance are
    # infeasible for the hard QP (the filter then relaxes)
    for q, v in random_states(panda, rng, 40, speed=0.8 if mode == "velocity" else 0.2):
        u_nom = rng.normal(size=panda.n) * scale
        a, b = fast.step(q, v, u_nom), ref.step(q, v, u_nom)
        if a.status == "ok" and b.status == "ok":
            compared += 1
            np.testing.assert_allclose(a.u, b.u, atol=1e-6 * max(1.0, np.abs(b.u).max()))
            assert a.residual <= 1e-9 * max(1.0, np.abs(fast.b).max())
            intervened += a.intervention > 1e-6
    assert compared >= 30
    assert intervened >= 10, "the random commands should often need filtering"


def test_no_intervention_when_safe(panda):
    f = SafetyFilter(panda, constraints(), mode="velocity")
    out = f.step(0.5 * (panda.q_min + panda.q_max), np.zeros(panda.n), np.full(panda.n, 0.01))
    assert out.status == "ok" and out.intervention < 1e-9 and not out.violated


def test_bad_input_brakes_and_never_returns_nan(panda):
    for mode in ("velocity", "effort"):
        f = SafetyFilter(panda, constraints(), mode=mode)
        v = np.full(panda.n, 0.5)
        for q, u in [(panda.home, np.full(panda.n, np.nan)), (np.full(panda.n, np.inf), np.zeros(panda.n)),
                     (panda.home, np.zeros(3))]:
            out = f.step(q, v, u)
            assert out.status == "rejected" and np.all(np.isfinite(out.u))
        assert f.rejected == 3
        if mode == "velocity":  # decelerates towards rest
            assert np.all(np.abs(out.u) < np.abs(v))


def test_infeasible_rows_relax_then_brake(panda):
    # state already 5 cm below the workspace floor and moving down fast: the hard barrier cannot
    # hold within the velocity box, so the filter relaxes and reports the violated rows
    f = SafetyFilter(panda, [JointVelocityLimits(scale=0.05), WorkspaceBox(lower=[-0.8, -0.8, 1.0],
                                                                          upper=[0.9, 0.8, 1.2], alpha=100.0)],
                     mode="velocity")
    out = f.step(panda.home, np.zeros(panda.n), np.zeros(panda.n))
    assert out.status in ("relaxed", "brake")
    assert np.all(np.isfinite(out.u))
    assert any(name.startswith("workspace_lower_z") for name in out.violated), out.violated
    assert f.fallbacks == 1


def test_online_alpha_is_more_conservative_near_the_boundary(panda):
    q = panda.home.copy()
    q[0] = panda.q_max[0] - 0.03  # 2 cm of barrier left with a 1 cm margin
    u_nom = np.zeros(panda.n)
    u_nom[0] = 2.0  # straight at the limit
    plain = SafetyFilter(panda, [JointPositionLimits(margin=0.01, alpha=50.0, a_brake=1e6)], mode="velocity")
    adaptive = SafetyFilter(panda, [JointPositionLimits(margin=0.01, alpha=50.0, a_brake=1e6)], mode="velocity",
                            alpha_fn=adaptive_alpha)
    adaptive.step(q, np.zeros(panda.n), u_nom)  # the rule sees the last step's h_min
    u_plain = plain.step(q, np.zeros(panda.n), u_nom).u[0]
    u_adapt = adaptive.step(q, np.zeros(panda.n), u_nom).u[0]
    assert 0 < u_adapt < u_plain
    assert u_plain == pytest.approx(50.0 * 0.02, rel=1e-6)  # ḣ = −α h exactly on the boundary row


@pytest.mark.parametrize("mode", ["velocity", "effort"])
def test_falsification_random_adversarial_and_nan_commands_in_mujoco(panda, mode):
    """10^4 steps of random, adversarial (joints beyond their limits, the hand through the table
    and into the obstacle, at full speed) and NaN-injected nominal commands through the filter
    of config/safety/panda.yaml (collision rows included): no joint beyond its limit by more
    than 1 mrad, no configured pair closer than -2 mm (the capsules wrap the real links), no
    MuJoCo contact of a moving link with the table, never a non-finite command."""
    rep = falsify(panda, "panda", mode=mode, steps=10_000, seed=0)
    assert rep.nonfinite_commands == 0
    assert rep.joint_violations == 0, rep.as_dict()
    assert rep.collision_violations == 0 and rep.contact_violations == 0, rep.as_dict()
    assert rep.rejected >= 10_000 // 97
    # the adversarial commands did press on the barriers
    assert rep.worst_joint_margin < 0.02 and rep.worst_distance < 0.05, rep.as_dict()


def test_cobot_config_slows_the_arm_near_a_person(panda):
    """config/safety/panda_cobot.yaml = panda.yaml + speed-and-separation monitoring: with the
    person far away the nominal command passes; with the person 0.4 m in front of the hand, a
    command driving the hand at them is cut to the ISO allowed approach speed."""
    from robot_ctrl.safety.config import build_filter
    from robot_ctrl.safety.constraints import SpeedSeparation

    f = build_filter(panda, "panda_cobot", mode="velocity")
    ssm = next(c for c in f.constraints if isinstance(c, SpeedSeparation))
    assert f.collision_pairs >= 10 + ssm.collision_pairs
    p_hand = panda.fk(panda.home)[:3, 3]
    J = panda.jacobian(panda.home)[:3]
    toward = np.array([1.0, 0.0, 0.0])
    u_nom = np.linalg.pinv(J) @ (0.8 * toward)  # hand at 0.8 m/s along +x

    def settle():  # the command's rate limit ramps it up over a few hundred ms
        f.reset()
        for _ in range(400):
            out = f.step(panda.home, np.zeros(panda.n), u_nom)
        return out

    free = settle()
    assert free.intervention < 1e-6, free.binding
    ssm.set_human(p_hand + np.array([0.45 + 0.25, 0.0, 0.0]))  # 0.45 m from the tool point
    near = settle()
    assert any(name.startswith("ssm[") for name in near.binding), near.binding
    assert near.residual <= 1e-9  # every link's approach speed within its ISO allowance
    speed = float(toward @ (J @ near.u))
    assert 0.0 < speed < 0.8, speed  # slowed, not stopped
    ssm.set_human(p_hand + np.array([0.2 + 0.25, 0.0, 0.0]))  # inside the protective distance
    close = settle()
    rows = [i for i, name in enumerate(f.row_names) if name.startswith("ssm[")]
    d = ssm.last.d
    allowed = ssm.allowed_speed(d)
    assert np.any(allowed == 0.0)  # some link is inside the protective separation
    approach = f.A[rows] @ close.u  # = −ḋ per monitored link
    assert np.all(approach <= allowed + 1e-9)
    assert np.all(approach[allowed == 0.0] <= 1e-9)  # those links do not approach at all
    assert float(toward @ (J @ close.u)) < speed


def test_relaxation_gives_way_on_actuator_limits_before_safety_barriers(panda):
    """An infeasible QP: joint 1 sits 1 mm inside its margin while the previous command drives it
    at 1 rad/s toward the limit, and the command's rate limit (1 rad/s²) forbids stopping in one
    step. The relaxed QP keeps the position barrier and breaks the rate limit."""
    f = SafetyFilter(panda, [JointPositionLimits(margin=0.0, alpha=20.0, a_brake=5.0, t_react=0.0),
                             AccelerationLimits(1.0)], mode="velocity")
    q = panda.home.copy()
    q[0] = panda.q_max[0] - 0.001
    f._last_u = np.zeros(panda.n)
    f._last_u[0] = 1.0
    u_nom = f._last_u.copy()
    out = f.step(q, np.zeros(panda.n), u_nom)
    assert out.status == "relaxed"
    allowed = min(20.0 * 0.001, np.sqrt(2 * 5.0 * 0.001))
    assert out.u[0] <= allowed + 1e-3, out.u[0]  # the barrier held (to the slack's 1e-4 weight ratio)
    assert any(n.startswith("acceleration") for n in out.violated)
    i = f.row_names.index("joint_position_upper[panda_joint1]")
    j = f.row_names.index("acceleration[9]")  # the lower rate-limit row of joint 1
    r = f.A @ out.u - f.b
    assert r[i] < 1e-3 < r[j], (r[i], r[j])  # the barrier's slack is tiny, the rate limit's large
