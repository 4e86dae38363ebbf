"""Tasks as Gymnasium environments (issue 4, first part): the Cartesian action path
(differential IK → chunk executor → computed torque in MuJoCo) and the reach task."""
from __future__ import annotations

import gymnasium as gym
import numpy as np
import pinocchio as pin
import pytest
from gymnasium.utils.env_checker import check_env

import robot_ctrl.tasks  # noqa: F401  (registers the environments)
from robot_ctrl.control.cartesian import DiffIK, matrix_from_rot6d, rot6d_from_matrix


def test_rot6d_round_trip_and_bad_input():
    rng = np.random.default_rng(0)
    for _ in range(20):
        R = pin.rpy.rpyToMatrix(*rng.uniform(-np.pi, np.pi, 3))
        np.testing.assert_allclose(matrix_from_rot6d(rot6d_from_matrix(R)), R, atol=1e-12)
    for bad in (np.zeros(6), np.array([1.0, 0, 0, 2.0, 0, 0]), np.full(6, np.nan), np.ones(5)):
        with pytest.raises(ValueError):
            matrix_from_rot6d(bad)


def test_diffik_reaches_poses_of_nearby_configurations(panda):
    ik = DiffIK(panda, iters=60)
    rng = np.random.default_rng(1)
    for _ in range(20):
        q_goal = panda.home.copy()
        q_goal[ik.arm] += rng.uniform(-0.4, 0.4, len(ik.arm))
        p, R = ik.ee_pose(q_goal)
        q = ik.solve(panda.home, p, R)
        p2, R2 = ik.ee_pose(q)
        assert np.linalg.norm(p2 - p) < 1e-3
        assert np.linalg.norm(pin.log3(R2.T @ R)) < 1e-2
        assert np.all(q >= panda.q_min) and np.all(q <= panda.q_max)
    assert list(ik.gripper) == [7, 8]
    np.testing.assert_allclose(ik.gripper_positions(1.0), panda.q_max[7:])
    np.testing.assert_allclose(ik.gripper_positions(-1.0), panda.q_min[7:])


def test_reach_env_passes_the_gymnasium_checker():
    env = gym.make("robot_ctrl/Reach-v0")
    check_env(env.unwrapped, skip_render_check=True)
    obs, info = env.reset(seed=3)
    assert obs.shape == env.observation_space.shape and obs.dtype == np.float32
    assert not info["success"]


def _rollouts(policy, episodes, reward="dense"):
    env = gym.make("robot_ctrl/Reach-v0", reward=reward)
    results, rewards = [], []
    for ep in range(episodes):
        env.reset(seed=100 + ep)
        done = False
        while not done:
            _, r, term, trunc, info = env.step(policy(env.unwrapped))
            rewards.append(r)
            done = term or trunc
        results.append(info["success"])
    return np.mean(results), np.array(rewards)


def test_reach_expert_succeeds_and_a_blind_policy_does_not():
    rate, rewards = _rollouts(lambda e: e.expert(noise=0.005), 30)
    assert rate >= 0.95
    assert np.all(rewards <= 0) and rewards.min() < -0.1  # dense: minus the distance
    # a policy that ignores the target: hold the hand where it is at home
    robot = gym.make("robot_ctrl/Reach-v0").unwrapped.robot
    p_home, R_home = DiffIK(robot).ee_pose(robot.home)
    hold = np.concatenate([p_home, rot6d_from_matrix(R_home), [1.0]]).astype(np.float32)
    blind, _ = _rollouts(lambda e: hold, 30)
    assert blind <= 0.1


def test_reach_sparse_reward_is_success():
    rate, rewards = _rollouts(lambda e: e.expert(noise=0.0), 5, reward="sparse")
    assert rate == 1.0 and set(np.unique(rewards)) <= {0.0, 1.0} and rewards.max() == 1.0


@pytest.mark.parametrize("bad", [np.full(10, np.nan), np.zeros(9), np.zeros(10)])
def test_bad_actions_are_refused(bad):
    env = gym.make("robot_ctrl/Reach-v0").unwrapped
    env.reset(seed=0)
    with pytest.raises(ValueError):
        env.step(bad)  # NaN, wrong length, a degenerate (all-zero) rotation
