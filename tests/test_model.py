"""Robot model (robot_ctrl.model): YAML + URDF loading, kinematics and dynamics on pinocchio.

Real pinocchio, real example-robot-data URDFs, real MuJoCo where a world is built.
"""
from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

import mujoco
import numpy as np
import pinocchio as pin
import pytest
import yaml

from robot_ctrl.model import RobotConfigError, RobotModel
from robot_ctrl.paths import ResourceNotFound, config_path
from robot_ctrl.sim import Simulator, build_world

PANDA_JOINTS = [f"panda_joint{i}" for i in range(1, 8)] + ["panda_finger_joint1", "panda_finger_joint2"]
UR_JOINTS = ["shoulder_pan_joint", "shoulder_lift_joint", "elbow_joint", "wrist_1_joint", "wrist_2_joint",
             "wrist_3_joint"]


def robot_yaml(name: str) -> dict:
    return yaml.safe_load(config_path("robots", f"{name}.yaml").read_text())


def write_yaml(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def random_q(robot: RobotModel, rng: np.random.Generator) -> np.ndarray:
    """Uniform inside the limits, kept 1% off the bounds so finite differences stay inside."""
    span = robot.q_max - robot.q_min
    return rng.uniform(robot.q_min + 0.01 * span, robot.q_max - 0.01 * span)


def urdf_limits(urdf: Path, joint: str) -> dict[str, float]:
    """<limit> of a joint read straight from the URDF file (independent of the model code)."""
    for j in ET.parse(urdf).getroot().findall("joint"):
        if j.get("name") == joint:
            return {k: float(v) for k, v in j.find("limit").attrib.items()}
    raise KeyError(joint)


# -- loading -----------------------------------------------------------------------------------
def test_panda_loads_with_yaml_order_limits_and_overrides(panda):
    assert panda.name == "panda"
    assert panda.n == 9
    assert panda.joint_names == PANDA_JOINTS
    assert panda.model.nq == panda.model.nv == 9
    assert panda.ee_frame == "panda_hand_tcp"

    overrides = robot_yaml("panda")["limits"]
    for i, jn in enumerate(panda.joint_names):
        lim = urdf_limits(panda.cfg.urdf, jn)
        lim.update(overrides.get(jn, {}))
        assert panda.q_min[i] == pytest.approx(lim["lower"]), jn
        assert panda.q_max[i] == pytest.approx(lim["upper"]), jn
        assert panda.v_max[i] == pytest.approx(lim["velocity"]), jn
        assert panda.tau_max[i] == pytest.approx(lim["effort"]), jn
    # The overrides really replace URDF values (URDF: effort 100, velocity 0.2 for the fingers).
    assert urdf_limits(panda.cfg.urdf, "panda_finger_joint1")["effort"] == 100.0
    np.testing.assert_array_equal(panda.tau_max[7:], [20.0, 20.0])
    np.testing.assert_array_equal(panda.v_max[7:], [0.1, 0.1])
    np.testing.assert_array_equal(panda.tau_max[:7], [87, 87, 87, 87, 12, 12, 12])

    assert panda.home.shape == (9,)
    assert np.all(panda.home >= panda.q_min) and np.all(panda.home <= panda.q_max)
    np.testing.assert_array_equal(panda.kp, robot_yaml("panda")["gains"]["kp"])
    np.testing.assert_array_equal(panda.kd, robot_yaml("panda")["gains"]["kd"])


# -- kinematics ----------------------------------------------------------------------------------
@pytest.mark.parametrize("robot_name,frame", [("panda", None), ("panda", "panda_leftfinger"), ("ur5", None)])
def test_jacobian_matches_finite_differences_of_fk(robot_name, frame, request):
    """Central differences of fk against the world-aligned Jacobian, column by column.

    h = 1e-6: truncation error O(h^2) ~ 1e-12, rounding ~ 1e-16 / h ~ 1e-10, so 1e-7 is a
    tolerance no correct Jacobian misses, while a wrong column (wrong frame, wrong joint order)
    is off by O(0.1).
    """
    robot = request.getfixturevalue(robot_name)
    rng = np.random.default_rng(1)
    h, tol = 1e-6, 1e-7
    for _ in range(5):
        q = random_q(robot, rng)
        J = robot.jacobian(q, frame)
        assert J.shape == (6, robot.n)
        T0 = robot.fk(q, frame)
        assert np.allclose(T0[:3, :3] @ T0[:3, :3].T, np.eye(3), atol=1e-12)
        for i in range(robot.n):
            dq = np.zeros(robot.n)
            dq[i] = h
            Tp, Tm = robot.fk(q + dq, frame), robot.fk(q - dq, frame)
            lin = (Tp[:3, 3] - Tm[:3, 3]) / (2 * h)
            ang = pin.log3(Tp[:3, :3] @ Tm[:3, :3].T) / (2 * h)  # world-frame angular velocity
            np.testing.assert_allclose(J[:3, i], lin, atol=tol, err_msg=f"linear column {i}")
            np.testing.assert_allclose(J[3:, i], ang, atol=tol, err_msg=f"angular column {i}")
    if robot_name == "panda" and frame is None:
        # The hand frame does not move with the fingers; the left finger frame does.
        np.testing.assert_array_equal(J[:, 7:], 0.0)
    if frame == "panda_leftfinger":
        assert np.linalg.norm(J[:3, 7]) == pytest.approx(1.0)  # prismatic: unit linear column
        np.testing.assert_array_equal(J[:, 8], 0.0)


def test_fk_includes_base_position(tmp_path, panda):
    data = robot_yaml("panda")
    data["base_pos"] = [0.1, -0.2, 0.3]
    moved = RobotModel.load(str(write_yaml(tmp_path / "panda_moved.yaml", data)))
    q = panda.home
    np.testing.assert_allclose(moved.fk(q)[:3, 3], panda.fk(q)[:3, 3] + [0.1, -0.2, 0.3], atol=1e-12)
    np.testing.assert_allclose(moved.jacobian(q), panda.jacobian(q), atol=1e-12)


# -- dynamics ------------------------------------------------------------------------------------
@pytest.mark.parametrize("robot_name", ["panda", "ur5"])
def test_dynamics_identities(robot_name, request):
    """M symmetric positive definite; rnea = M a + h; rnea(q, 0, 0) = g (tolerances: rounding)."""
    robot = request.getfixturevalue(robot_name)
    rng = np.random.default_rng(2)
    for _ in range(10):
        q = random_q(robot, rng)
        v = rng.uniform(-2, 2, robot.n)
        a = rng.uniform(-10, 10, robot.n)
        M = robot.mass_matrix(q)
        assert M.shape == (robot.n, robot.n)
        np.testing.assert_array_equal(M, M.T)
        assert np.linalg.eigvalsh(M).min() > 0
        tau = robot.rnea(q, v, a)
        np.testing.assert_allclose(tau, M @ a + robot.nonlinear_effects(q, v), atol=1e-9, rtol=1e-10)
        np.testing.assert_allclose(robot.rnea(q, np.zeros(robot.n), np.zeros(robot.n)), robot.gravity(q),
                                   atol=1e-10)
        # Columns of M from RNEA with unit accelerations at rest (CRBA and RNEA are separate algorithms).
        g = robot.gravity(q)
        for i in range(robot.n):
            e = np.zeros(robot.n)
            e[i] = 1.0
            np.testing.assert_allclose(robot.rnea(q, np.zeros(robot.n), e) - g, M[:, i], atol=1e-10)
        # Coriolis/centrifugal terms are quadratic in v.
        h1 = robot.nonlinear_effects(q, v) - g
        h2 = robot.nonlinear_effects(q, 2 * v) - g
        np.testing.assert_allclose(h2, 4 * h1, atol=1e-9)
    # Gravity is real: the arm's first joint has a vertical axis (no gravity torque), the others carry load.
    g_home = robot.gravity(robot.home)
    assert abs(g_home[0]) < 1e-9
    assert np.abs(g_home).max() > 1.0


def test_results_are_not_aliased_between_calls(panda):
    q1, q2 = panda.home, panda.home + 0.1
    outs = [panda.jacobian(q1), panda.mass_matrix(q1), panda.gravity(q1), panda.fk(q1),
            panda.rnea(q1, q1, q1), panda.nonlinear_effects(q1, q1)]
    kept = [o.copy() for o in outs]
    panda.jacobian(q2), panda.mass_matrix(q2), panda.gravity(q2), panda.fk(q2)
    panda.rnea(q2, q2, q2), panda.nonlinear_effects(q2, q2)
    for o, k in zip(outs, kept):
        np.testing.assert_array_equal(o, k)


# -- other robots ----------------------------------------------------------------------------------
def test_ur5_from_its_yaml_alone(ur5):
    assert ur5.n == 6
    assert ur5.joint_names == UR_JOINTS
    assert ur5.ee_frame == "tool0"
    assert np.all(ur5.home >= ur5.q_min) and np.all(ur5.home <= ur5.q_max)
    assert np.all(np.isfinite(ur5.tau_max)) and np.all(ur5.tau_max > 0)
    q = ur5.home
    T = ur5.fk(q)
    assert T.shape == (4, 4) and np.all(np.isfinite(T))
    assert ur5.jacobian(q).shape == (6, 6)
    tau = ur5.rnea(q, np.zeros(6), np.zeros(6))
    assert tau.shape == (6,) and np.all(np.isfinite(tau))
    # Moving the shoulder pan by 90 degrees rotates the tool position about the vertical axis.
    q2 = q.copy()
    q2[0] += np.pi / 2
    p, p2 = T[:3, 3], ur5.fk(q2)[:3, 3]
    np.testing.assert_allclose(p2, [-p[1], p[0], p[2]], atol=1e-9)


EXAMPLE_ROBOTS = {
    "ur3": dict(
        urdf="package://example-robot-data/robots/ur_description/urdf/ur3_joint_limited_robot.urdf",
        controlled_joints=UR_JOINTS, ee_frame="tool0", home=[0.0, -1.571, 1.571, -1.571, -1.571, 0.0]),
    "so100": dict(
        urdf="package://example-robot-data/robots/so_arm_description/urdf/so100.urdf",
        controlled_joints=["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"],
        ee_frame="jaw", home=[0.0, 1.5, -1.5, 0.0, 0.0, 0.0]),
}


@pytest.mark.parametrize("name", sorted(EXAMPLE_ROBOTS))
def test_new_robot_is_one_yaml_file(tmp_path, name):
    """A robot the repository has never seen: one YAML in a temp dir, no code changes."""
    path = write_yaml(tmp_path / f"{name}.yaml", {"name": name, **EXAMPLE_ROBOTS[name]})
    robot = RobotModel.load(str(path))
    assert robot.name == name and robot.n == 6
    assert robot.cfg.source == path
    assert np.all(np.isfinite(robot.fk(robot.home)))
    assert robot.jacobian(robot.home).shape == (6, 6)
    assert np.all(np.isfinite(robot.rnea(robot.home, np.ones(6), np.ones(6))))

    sim = Simulator(robot, scene="table", command_mode="effort", control_dt=0.002, physics_dt=0.001)
    np.testing.assert_allclose(sim.q, robot.home)
    for _ in range(250):  # 0.5 s holding still with gravity compensation from pinocchio
        sim.set_command(sim.hold_command())
        sim.step()
    assert sim.time == pytest.approx(0.5)
    assert np.abs(sim.q - robot.home).max() < 1e-6
    # ... and it moves when commanded: position mode towards an offset target.
    sim = Simulator(robot, scene="table", command_mode="position")
    target = robot.home + 0.1
    sim.set_command(target)
    sim.step(500)
    assert np.abs(sim.q - target).max() < 1e-3


# -- joint order -------------------------------------------------------------------------------------
def test_yaml_joint_order_different_from_urdf_order(tmp_path, panda):
    perm = np.array([4, 8, 0, 6, 2, 7, 1, 5, 3])  # shuffled[i] = panda[perm[i]]
    data = robot_yaml("panda")
    data["controlled_joints"] = [PANDA_JOINTS[i] for i in perm]
    data["home"] = [float(panda.home[i]) for i in perm]
    data["gains"] = {"kp": [float(panda.kp[i]) for i in perm], "kd": [float(panda.kd[i]) for i in perm]}
    shuffled = RobotModel.load(str(write_yaml(tmp_path / "panda_shuffled.yaml", data)))
    assert shuffled.joint_names == [PANDA_JOINTS[i] for i in perm]
    for attr in ("q_min", "q_max", "v_max", "tau_max", "home", "kp", "kd"):
        np.testing.assert_array_equal(getattr(shuffled, attr), getattr(panda, attr)[perm], err_msg=attr)

    rng = np.random.default_rng(3)
    for _ in range(5):
        q, v, a = random_q(panda, rng), rng.uniform(-1, 1, 9), rng.uniform(-3, 3, 9)
        qs, vs, as_ = q[perm], v[perm], a[perm]
        np.testing.assert_allclose(shuffled.rnea(qs, vs, as_), panda.rnea(q, v, a)[perm], atol=1e-10)
        np.testing.assert_allclose(shuffled.gravity(qs), panda.gravity(q)[perm], atol=1e-10)
        np.testing.assert_allclose(shuffled.nonlinear_effects(qs, vs), panda.nonlinear_effects(q, v)[perm],
                                   atol=1e-10)
        np.testing.assert_allclose(shuffled.mass_matrix(qs), panda.mass_matrix(q)[np.ix_(perm, perm)], atol=1e-12)
        for frame in (None, "panda_leftfinger", "panda_link4"):
            np.testing.assert_allclose(shuffled.fk(qs, frame), panda.fk(q, frame), atol=1e-12)
            np.testing.assert_allclose(shuffled.jacobian(qs, frame), panda.jacobian(q, frame)[:, perm], atol=1e-12)

    # The simulator maps by name too: q in YAML order lands on the right MuJoCo joints.
    sim = Simulator(shuffled, scene=None, command_mode="effort")
    q = random_q(panda, rng)
    sim.reset(q[perm])
    for name, value in zip(shuffled.joint_names, q[perm]):
        assert sim.data.joint(name).qpos[0] == value
    np.testing.assert_array_equal(sim.q, q[perm])
    for _ in range(100):
        sim.set_command(sim.hold_command())
        sim.step()
    assert np.abs(sim.q - q[perm]).max() < 1e-6


# -- bad input ---------------------------------------------------------------------------------------
def test_unknown_robot_names_the_file_searched():
    with pytest.raises(ResourceNotFound) as exc:
        RobotModel.load("no_such_robot")
    assert os.path.join("config", "robots", "no_such_robot.yaml") in str(exc.value)
    assert "panda" in str(exc.value)  # lists what is available


def test_missing_yaml_path(tmp_path):
    with pytest.raises(ResourceNotFound, match="nothere.yaml"):
        RobotModel.load(str(tmp_path / "nothere.yaml"))


@pytest.mark.parametrize("urdf,expect", [
    ("/nonexistent/dir/robot.urdf", "/nonexistent/dir/robot.urdf"),
    ("missing_relative.urdf", "missing_relative.urdf"),
    ("package://example-robot-data/robots/panda_description/urdf/nope.urdf", "nope.urdf"),
    ("package://no-such-package/robot.urdf", "no-such-package"),
])
def test_missing_urdf_names_the_file(tmp_path, urdf, expect):
    data = robot_yaml("panda")
    data["urdf"] = urdf
    with pytest.raises(ResourceNotFound) as exc:
        RobotModel.load(str(write_yaml(tmp_path / "bad.yaml", data)))
    assert expect in str(exc.value)
    if urdf == "missing_relative.urdf":  # resolved next to the YAML file
        assert str(tmp_path / "missing_relative.urdf") in str(exc.value)


def _edit(data: dict, **changes) -> dict:
    out = dict(data)
    for k, v in changes.items():
        if v is None:
            out.pop(k)
        else:
            out[k] = v
    return out


BAD_YAMLS = {
    "joint_not_in_urdf": (
        dict(controlled_joints=PANDA_JOINTS[:6] + ["panda_joint42"] + PANDA_JOINTS[7:]), "panda_joint42"),
    "home_too_short": (dict(home=[0.0] * 8), "home"),
    "home_too_long": (dict(home=[0.0] * 10), "home"),
    "home_not_numbers": (dict(home=["a"] * 9), "home"),
    "home_nan": (dict(home=[float("nan")] * 9), "home"),
    "home_outside_limits": (dict(home=[0.0, -0.785, 0.0, 0.5, 0.0, 1.571, 0.785, 0.04, 0.04]), "home"),
    "missing_ee_frame": (dict(ee_frame=None), "ee_frame"),
    "unknown_ee_frame": (dict(ee_frame="no_such_frame"), "no_such_frame"),
    "gains_wrong_length": (dict(gains={"kp": [1.0, 2.0]}), "gains.kp"),
    "limit_on_unknown_joint": (dict(limits={"panda_joint99": {"effort": 1.0}}), "panda_joint99"),
    "limit_bad_key": (dict(limits={"panda_joint1": {"torque": 1.0}}), "panda_joint1"),
    "limits_inverted": (dict(limits={"panda_joint1": {"lower": 1.0, "upper": -1.0}}), "panda_joint1"),
    "duplicate_joint": (dict(controlled_joints=PANDA_JOINTS[:8] + ["panda_joint1"]), "duplicates"),
    "fixed_joint_controlled": (
        dict(controlled_joints=PANDA_JOINTS[:6] + ["panda_joint8"] + PANDA_JOINTS[7:]), "panda_joint8"),
}


@pytest.mark.parametrize("case", sorted(BAD_YAMLS))
def test_bad_robot_yaml_raises_config_error_naming_the_problem(tmp_path, case):
    changes, expect = BAD_YAMLS[case]
    path = write_yaml(tmp_path / f"{case}.yaml", _edit(robot_yaml("panda"), **changes))
    with pytest.raises(RobotConfigError) as exc:
        RobotModel.load(str(path))
    assert expect in str(exc.value)
    assert str(path) in str(exc.value)  # names the file


def test_uncontrolled_joints_are_locked(tmp_path, panda):
    """A Panda YAML with only the arm joints: fingers locked at zero, in pinocchio and in MuJoCo."""
    data = robot_yaml("panda")
    data["controlled_joints"] = PANDA_JOINTS[:7]
    data["home"] = data["home"][:7]
    data["limits"] = {}
    data.pop("armature", None)  # the fingers are not controlled here
    data["gains"] = {"kp": data["gains"]["kp"][:7], "kd": data["gains"]["kd"][:7]}
    arm = RobotModel.load(str(write_yaml(tmp_path / "panda_arm.yaml", data)))
    assert arm.n == 7 and arm.model.nq == 7 and arm.model.nv == 7
    assert arm.joint_names == PANDA_JOINTS[:7]

    # Same mechanism as the full model with the fingers at 0 (their mass still rides on the hand).
    rng = np.random.default_rng(4)
    for _ in range(3):
        q, v, a = random_q(arm, rng), rng.uniform(-1, 1, 7), rng.uniform(-3, 3, 7)
        z = np.zeros(2)
        qf, vf, af = np.r_[q, z], np.r_[v, z], np.r_[a, z]
        np.testing.assert_allclose(arm.rnea(q, v, a), panda.rnea(qf, vf, af)[:7], atol=1e-10)
        np.testing.assert_allclose(arm.mass_matrix(q), panda.mass_matrix(qf)[:7, :7], atol=1e-12)
        np.testing.assert_allclose(arm.fk(q, "panda_leftfinger"), panda.fk(qf, "panda_leftfinger"), atol=1e-12)

    for scene in (None, "table"):
        m = build_world(arm, scene=scene, command_mode="effort")
        robot_joints = [m.joint(i).name for i in range(m.njnt) if m.jnt_type[i] != mujoco.mjtJoint.mjJNT_FREE]
        assert len(robot_joints) == 7, robot_joints
        assert not any("finger" in j for j in robot_joints)
        assert m.nu == 7
