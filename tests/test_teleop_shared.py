"""Prompts → chunks (robot_ctrl.teleop.shared): teleoperation alone, override and blend with a
policy chunk, deadband and intervene button, e-stop, pose prompts, bad input."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from robot_ctrl.control.cartesian import matrix_from_rot6d, rot6d_from_matrix
from robot_ctrl.teleop.schema import Prompt
from robot_ctrl.teleop.shared import SharedAutonomy, SharedConfig

P = np.array([0.5, 0.0, 0.3])
R = Rotation.from_euler("x", 180, degrees=True).as_matrix()  # hand pointing down


def twist(v=(0, 0, 0), w=(0, 0, 0), **kw):
    return Prompt(stamp=0.0, mode="twist", twist=np.r_[v, w], **kw)


def policy_chunk(n=16, y=0.2):
    c = np.tile(np.r_[0.5, y, 0.1, rot6d_from_matrix(R), -1.0], (n, 1))
    c[:, 0] += 0.01 * np.arange(n)
    return c


def test_twist_becomes_a_straight_chunk_from_the_measured_hand():
    sa = SharedAutonomy(horizon=5, dt=0.1)
    chunk, acted = sa.step(P, R, twist(v=(0.1, 0, -0.05), gripper=-1.0))
    assert acted and chunk.shape == (5, 10)
    np.testing.assert_allclose(chunk[:, :3], P + 0.1 * np.arange(1, 6)[:, None] * [0.1, 0, -0.05])
    np.testing.assert_allclose(chunk[:, 9], -1.0)
    np.testing.assert_allclose(chunk[:, 3:9], np.tile(rot6d_from_matrix(R), (5, 1)))


def test_angular_twist_rotates_about_the_base_frame():
    sa = SharedAutonomy(horizon=4, dt=0.1)
    chunk, _ = sa.step(P, R, twist(w=(0, 0, 0.5)))
    R_last = matrix_from_rot6d(chunk[-1, 3:9])
    np.testing.assert_allclose(R_last, Rotation.from_rotvec([0, 0, 0.2]).as_matrix() @ R, atol=1e-9)


def test_release_latches_a_hold_pose_that_does_not_creep():
    sa = SharedAutonomy(horizon=3)
    sa.step(P, R, twist(v=(0.1, 0, 0)))
    hold1, acted = sa.step(P + [0.01, 0, 0], R, twist())
    assert not acted
    np.testing.assert_allclose(hold1[:, :3], np.tile(P + [0.01, 0, 0], (3, 1)))
    # the hand sags by 2 mm: the hold stays where the operator let go
    hold2, _ = sa.step(P + [0.01, 0, -0.002], R, Prompt.zero(0.1))
    np.testing.assert_allclose(hold2[:, :3], hold1[:, :3])


def test_deadband_and_intervene_button_decide_who_acts():
    sa = SharedAutonomy(SharedConfig(deadband=0.01))
    pc = policy_chunk()
    out, acted = sa.step(P, R, twist(v=(0.005, 0, 0)), pc)
    assert not acted and out is pc
    out, acted = sa.step(P, R, twist(v=(0.05, 0, 0)), pc)
    assert acted and sa.interventions == 1
    out, acted = sa.step(P, R, twist(intervene=True), pc)  # button with no motion: the operator holds
    assert acted
    np.testing.assert_allclose(out[:, :3], np.tile(P, (16, 1)))
    out, acted = sa.step(P, R, None, pc)
    assert not acted and out is pc


def test_override_replaces_and_blend_mixes_the_policy_chunk():
    pc = policy_chunk()
    prompt = twist(v=(0, -0.1, 0), gripper=1.0)
    over, acted = SharedAutonomy(rule="override", horizon=8).step(P, R, prompt, pc)
    assert acted and over.shape == (16, 10)  # the policy chunk's length, last operator point held
    np.testing.assert_allclose(over[:8, 1], -0.1 * 0.1 * np.arange(1, 9))
    np.testing.assert_allclose(over[8:, :3], np.tile(over[7, :3], (8, 1)))
    blend, _ = SharedAutonomy(rule="blend", alpha=0.25, horizon=16).step(P, R, prompt, pc)
    op = SharedAutonomy(horizon=16).operator_chunk(P, R, prompt, 1.0)
    np.testing.assert_allclose(blend[:, :3], 0.25 * op[:, :3] + 0.75 * pc[:, :3])
    np.testing.assert_allclose(blend[:, 3:9], pc[:, 3:9])  # no angular command: the policy's rotation
    np.testing.assert_allclose(blend[:, 9], 1.0)           # the operator's gripper while acting
    # magnitude blending: half the max speed → half of alpha
    half, _ = SharedAutonomy(rule="blend", alpha=1.0, alpha_mode="magnitude", max_speed=0.1, horizon=16).step(
        P, R, twist(v=(0, -0.05, 0)), pc)
    op = SharedAutonomy(horizon=16).operator_chunk(P, R, twist(v=(0, -0.05, 0)), -1.0)
    np.testing.assert_allclose(half[:, :3], 0.5 * op[:, :3] + 0.5 * pc[:, :3])


def test_estop_gives_no_chunk():
    sa = SharedAutonomy()
    assert sa.step(P, R, twist(v=(0.1, 0, 0), estop=True)) == (None, False)
    assert sa.step(P, R, twist(estop=True), policy_chunk()) == (None, False)


def test_pose_prompt_goes_straight_at_bounded_speed():
    sa = SharedAutonomy(horizon=10, dt=0.1, max_speed=0.1)
    goal = P + [0.0, 0.05, 0.0]
    q = Rotation.from_matrix(R).as_quat()  # xyzw
    chunk, acted = sa.step(P, R, Prompt(stamp=0, mode="pose", position=goal, quaternion=[q[3], *q[:3]]))
    assert acted
    steps = np.diff(np.vstack([P, chunk[:, :3]]), axis=0)
    assert np.all(np.linalg.norm(steps, axis=1) <= 0.01 + 1e-12)
    np.testing.assert_allclose(chunk[-1, :3], goal)
    np.testing.assert_allclose(matrix_from_rot6d(chunk[0, 3:9]), R, atol=1e-9)


def test_bad_config_and_policy_chunks_are_refused():
    with pytest.raises(ValueError, match="rule"):
        SharedConfig(rule="mix")
    with pytest.raises(ValueError, match="alpha"):
        SharedConfig(alpha=1.5)
    with pytest.raises(ValueError, match="dt"):
        SharedConfig(dt=0.0)
    with pytest.raises(ValueError, match="horizon"):
        SharedConfig(horizon=0)
    bad = policy_chunk()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="policy chunk"):
        SharedAutonomy().step(P, R, twist(v=(0.1, 0, 0)), bad)
