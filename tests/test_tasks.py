"""Tasks as Gymnasium environments (issue 4, first part): the Cartesian action path
(differential IK → chunk executor → computed torque in MuJoCo) and the reach task."""
from __future__ import annotations

import gymnasium as gym
import numpy as np
import pinocchio as pin
import pytest
from gymnasium.utils.env_checker import check_env

import robot_ctrl.tasks  # registers the environments
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
    np.testing.assert_allclose(ik.gripper_positions(1.0), panda.home[7:])  # open = home, inside the margin
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


# -- push, pick-and-place, peg-in-hole ---------------------------------------------------------

OBJECT_TASKS = {"push": 0.01, "pick_place": 0.01, "peg_in_hole": 0.003}  # task → expert noise (m)


def _episode(env, seed, policy):
    env.reset(seed=seed)
    done, info = False, {}
    while not done:
        _, _, term, trunc, info = env.step(policy(env))
        done = term or trunc
    return info["success"]


@pytest.mark.parametrize("task", sorted(OBJECT_TASKS))
def test_object_task_env_passes_checker_and_randomizes(task):
    env = gym.make(robot_ctrl.tasks.TASKS[task]).unwrapped
    check_env(env, skip_render_check=True)
    obs_a, _ = env.reset(seed=1)
    obs_b, _ = env.reset(seed=2)
    assert obs_a.shape == (env.obs_size,) == (2 * env.robot.n + 10 + env.task_obs_size,)
    # the robot part is the same at reset, the object and goal part is not
    np.testing.assert_allclose(obs_a[:2 * env.robot.n], obs_b[:2 * env.robot.n], atol=1e-6)
    assert np.linalg.norm(obs_a[-env.task_obs_size:] - obs_b[-env.task_obs_size:]) > 0.01


@pytest.mark.parametrize("task", sorted(OBJECT_TASKS))
def test_object_task_expert_succeeds_with_noise_and_holding_still_fails(task):
    env = gym.make(robot_ctrl.tasks.TASKS[task]).unwrapped
    noise = OBJECT_TASKS[task]
    wins = [_episode(env, 200 + k, lambda e: e.expert(noise)) for k in range(8)]
    assert np.mean(wins) >= 7 / 8
    env.reset(seed=0)
    hold = env.action(env.ee()[0], 1.0)
    assert not any(_episode(env, 300 + k, lambda e: hold) for k in range(3))


def test_pick_place_success_needs_the_block_released_on_the_target():
    env = gym.make("robot_ctrl/PickPlace-v0").unwrapped
    env.reset(seed=5)
    env.set_object("block", [*env.target, 0.02])
    assert env._success()  # on the target, fingers open (home)
    env.set_object("block", [*(env.target + [0.03, 0.0]), 0.02])
    assert not env._success()  # 3 cm off
    env.set_object("block", [*env.target, 0.08])
    assert not env._success()  # above the target, not on it


def test_peg_hole_clearance_is_at_most_2mm_and_success_needs_insertion():
    env = gym.make("robot_ctrl/PegInHole-v0").unwrapped
    m = env.sim.model
    peg_width = 2 * m.geom("peg").size[0]
    opening_x = 2 * (m.geom("wall_px").pos[0] - m.geom("wall_px").size[0])
    opening_y = 2 * (m.geom("wall_py").pos[1] - m.geom("wall_py").size[1])
    assert 0 < opening_x - peg_width <= 0.002 and 0 < opening_y - peg_width <= 0.002
    env.reset(seed=4)
    env.set_object("peg", [*env.hole, 0.04 + 0.04 + 0.001])  # resting on the walls' top, over the hole
    assert not env._success()
    env.set_object("peg", [*env.hole, 0.04])  # fully inserted (resting on the table inside)
    assert env._success()
    for dense in (True, False):
        e = gym.make("robot_ctrl/PegInHole-v0", reward="dense" if dense else "sparse").unwrapped
        e.reset(seed=0)
        _, r, *_ = e.step(e.expert())
        assert (r < 0) if dense else (r == 0.0)


def test_a_knock_moves_the_resting_block_nearby_and_the_expert_recovers():
    """`BlockTask.disturb` (robot-ctrl collect --disturb): the block, at rest on the table, is moved
    1–3 cm and turned; refused while it is lifted; the push expert still brings it to the target."""
    env = gym.make("robot_ctrl/Push-v0").unwrapped
    env.reset(seed=7)
    rng = np.random.default_rng(0)
    for _ in range(10):
        env.step(env.expert(0.0))
    before, R0 = env.object_pose("block")
    assert env.disturb(rng)
    after, R1 = env.object_pose("block")
    assert 0.01 - 1e-9 <= np.linalg.norm(after[:2] - before[:2]) <= 0.03 + 1e-9
    assert abs(after[2] - env.half) < 1e-6 and not np.allclose(R0, R1)
    da = env._free_adr("block")[1]
    assert np.allclose(env.sim.data.qvel[da:da + 6], 0.0)  # at rest
    won = False
    for _ in range(env.horizon):
        _, _, term, trunc, info = env.step(env.expert(0.0))
        won = won or info["success"]
        if term or trunc:
            break
    assert won
    # lifted (in the air, or in a gripper): no knock, nothing moved
    env.reset(seed=8)
    env.set_object("block", [0.5, 0.1, 0.10])
    lifted = env.object_pose("block")[0]
    assert not env.disturb(rng)
    np.testing.assert_allclose(env.object_pose("block")[0], lifted)


def test_collect_with_disturbances_records_knocked_episodes(tmp_path):
    from robot_ctrl.learning.collect import collect

    r = collect("push", 2, tmp_path / "k.zarr", seed=0, progress=False, disturb=1.0)
    # every kept episode was knocked (disturb 1.0) unless it succeeded before its knock's step
    assert r.kept == 2 and 1 <= r.disturbed <= 2, (r.kept, r.disturbed)
    with pytest.raises(ValueError, match="disturb must be a probability"):
        collect("push", 1, tmp_path / "bad.zarr", disturb=1.5, progress=False)
