"""Policy frames (robot_ctrl.learning.frames): the hand and task frames' layouts match the real
task observations, the transforms invert, the task frame is invariant under a planar rotation of
the scene, and a hand-frame policy trains, saves, loads and acts in world coordinates."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from robot_ctrl.learning import CheckpointError, load_policy
from robot_ctrl.learning.collect import collect
from robot_ctrl.learning.dataset import DatasetWriter
from robot_ctrl.learning.evaluate import evaluate
from robot_ctrl.learning.frames import FrameError, HandFrame, TaskFrame, frame_for_task, frame_from_dict
from robot_ctrl.learning.train import TrainConfig, train, training_windows
from robot_ctrl.tasks import PegInHoleEnv, PickPlaceEnv, PushEnv, ReachEnv


@pytest.fixture(autouse=True)
def _one_thread():
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)


@pytest.mark.parametrize("name,cls", [("reach", ReachEnv), ("pick_place", PickPlaceEnv), ("peg_in_hole", PegInHoleEnv)])
def test_layout_reads_the_hand_objects_and_goal_of_real_observations(name, cls):
    env = cls()
    obs, _ = env.reset(seed=3)
    frame = frame_for_task(name, len(obs))
    np.testing.assert_allclose(obs[frame.ee:frame.ee + 3], env.ee()[0], atol=1e-6)
    expected = [env.object_pose(b)[0] for b in env.objects] + [env.goal()]
    assert len(frame.points) == len(expected)
    for (i, s), want in zip(frame.points, expected):
        np.testing.assert_allclose(obs[i:i + s], want, atol=1e-6)
    feats = frame.features(obs, len(obs))
    assert feats.shape == (len(obs) + frame.extra_size,)
    np.testing.assert_allclose(feats[len(obs):len(obs) + 3], expected[0][:3] - env.ee()[0][:3], atol=1e-6)


def test_transforms_invert_on_stacked_observations():
    rng = np.random.default_rng(0)
    frame = HandFrame(ee=2, points=((6, 3), (9, 2)))
    obs = rng.normal(size=(5, 2 * 11))               # 5 samples, 2 stacked observations of 11
    act = rng.normal(size=(5, 4, 10))
    rel = frame.to_relative(act, obs, 11)
    # relative to the *newest* observation's hand, position dimensions only
    np.testing.assert_allclose(rel[..., :3], act[..., :3] - obs[:, None, 11 + 2:11 + 5])
    np.testing.assert_array_equal(rel[..., 3:], act[..., 3:])
    np.testing.assert_allclose(frame.to_world(rel, obs, 11), act)
    f = frame.features(obs, 11)
    assert f.shape == (5, 2 * 16)
    np.testing.assert_allclose(f[:, 11:14], obs[:, 6:9] - obs[:, 2:5])        # oldest observation's own
    np.testing.assert_allclose(f[:, 16 + 14:16 + 16], obs[:, 11 + 9:11 + 11] - obs[:, 11 + 2:11 + 4])


def test_bad_frames_are_refused():
    with pytest.raises(FrameError, match="reads observation index"):
        HandFrame(ee=30).check(31, 10)
    with pytest.raises(FrameError, match="task 'stack' has none"):
        frame_for_task("stack", 40)
    with pytest.raises(FrameError, match="does not fit task 'reach'"):
        frame_for_task("reach", 12)
    with pytest.raises(FrameError, match="unknown policy frame"):
        HandFrame.from_dict({"kind": "elbow"})
    assert frame_for_task("metaworld:reach-v3", 39).relative_actions is False


@pytest.mark.parametrize("name,cls", [("push", PushEnv), ("pick_place", PickPlaceEnv)])
def test_task_frame_reads_the_hand_gripper_object_and_goal_of_real_observations(name, cls):
    env = cls()
    obs, _ = env.reset(seed=5)
    frame = frame_for_task(name, len(obs), "task")
    np.testing.assert_allclose(obs[frame.ee:frame.ee + 3], env.ee()[0], atol=1e-6)
    assert obs[frame.grip] == pytest.approx(env.gripper_opening(), abs=1e-6)
    p, _ = env.object_pose(env.objects[0])
    np.testing.assert_allclose(obs[frame.obj:frame.obj + 3], p, atol=1e-6)
    np.testing.assert_allclose(obs[frame.goal:frame.goal + 2], env.goal(), atol=1e-6)
    f = frame.features(obs, len(obs))
    assert f.shape == (TaskFrame.FEATURES,)
    # the hand is the origin; the goal lies on the frame's x axis ahead of the object
    np.testing.assert_allclose(f[:2], 0.0, atol=1e-12)
    obj, goal = f[4:6], f[13:15]
    assert goal[1] - obj[1] == pytest.approx(0.0, abs=1e-9)
    assert goal[0] - obj[0] == pytest.approx(np.linalg.norm(env.goal() - p[:2]), abs=1e-6)
    assert f[15] == pytest.approx(np.linalg.norm(env.goal() - p[:2]), abs=1e-6)
    assert frame_from_dict(frame.to_dict()) == frame


def _rot6d_z(theta):
    c, s = np.cos(theta), np.sin(theta)
    R = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])
    return R, np.concatenate([R[:, 0], R[:, 1]])


def _scene(rng, theta, shift, n2=4):
    """A synthetic task observation (hand at n2, gripper n2+9, object n2+10, goal at the end) and
    a chunk of actions, rotated by `theta` about z and shifted by `shift` in the plane."""
    R, _ = _rot6d_z(theta)
    hand, obj, goal = rng.uniform(-0.3, 0.3, size=(3, 3))
    _, obj_r6 = _rot6d_z(0.4)
    act = rng.normal(size=(6, 10))
    t = lambda p: R @ p + np.array([*shift, 0.0])  # noqa: E731
    obs = np.concatenate([rng.normal(size=n2), t(hand), rng.normal(size=6), [0.03], t(obj),
                          np.concatenate([R @ obj_r6[:3], R @ obj_r6[3:]]), t(goal)[:2]])
    act_w = act.copy()
    act_w[:, :3] = (R @ act[:, :3].T).T + np.array([*shift, 0.0])
    return obs, act_w


def test_task_frame_is_invariant_under_a_planar_rotation_and_shift_of_the_scene():
    n2 = 4
    frame = TaskFrame(ee=n2, grip=n2 + 9, obj=n2 + 10, goal=n2 + 19)
    size = n2 + 21
    for seed in range(5):
        a_obs, a_act = _scene(np.random.default_rng(seed), 0.0, (0.0, 0.0))
        b_obs, b_act = _scene(np.random.default_rng(seed), 1.1 + seed, (0.2, -0.5))
        # same scene seen from a rotated world: the same input and the same relative actions
        np.testing.assert_allclose(frame.features(b_obs, size), frame.features(a_obs, size), atol=1e-9)
        rel_a, rel_b = frame.to_relative(a_act, a_obs, size), frame.to_relative(b_act, b_obs, size)
        np.testing.assert_allclose(rel_b[:, :3], rel_a[:, :3], atol=1e-9)
        np.testing.assert_allclose(frame.to_world(rel_b, b_obs, size), b_act, atol=1e-9)
    # the object on the goal (no direction): the world's axes, still finite and invertible
    obs, act = _scene(np.random.default_rng(9), 0.3, (0.0, 0.0))
    obs[n2 + 19:n2 + 21] = obs[n2 + 10:n2 + 12]
    f = frame.features(obs, size)
    assert np.all(np.isfinite(f)) and f[15] == 0.0
    np.testing.assert_allclose(frame.to_world(frame.to_relative(act, obs, size), obs, size), act, atol=1e-12)
    # stacked observations and batches: everything in the newest one's frame
    stacked = np.stack([np.concatenate([_scene(np.random.default_rng(s), 0.2, (0, 0))[0], obs]) for s in range(3)])
    fs = frame.features(stacked, size)
    assert fs.shape == (3, 2 * TaskFrame.FEATURES)
    np.testing.assert_allclose(fs[:, TaskFrame.FEATURES:], np.tile(f, (3, 1)), atol=1e-12)


def test_task_frame_without_the_object_rotation_drops_exactly_those_six_numbers():
    n2, size = 4, 25
    full = TaskFrame(ee=n2, grip=n2 + 9, obj=n2 + 10, goal=n2 + 19)
    bare = TaskFrame(ee=n2, grip=n2 + 9, obj=n2 + 10, goal=n2 + 19, object_rotation=False)
    obs, act = _scene(np.random.default_rng(3), 0.8, (0.1, 0.2))
    f, b = full.features(obs, size), bare.features(obs, size)
    assert b.shape == (TaskFrame.FEATURES - 6,) and bare.feature_size(size) == 10
    np.testing.assert_allclose(b, np.concatenate([f[:7], f[13:]]), atol=1e-12)
    # a different object rotation: the same features without it, other features with it
    obs2 = obs.copy()
    obs2[n2 + 13:n2 + 19] = _rot6d_z(1.3)[1]
    np.testing.assert_allclose(bare.features(obs2, size), b, atol=1e-12)
    assert not np.allclose(full.features(obs2, size), f)
    # the actions are the same map; the option survives the checkpoint's dict (and old dicts have the rotation)
    np.testing.assert_allclose(bare.to_relative(act, obs, size), full.to_relative(act, obs, size), atol=1e-12)
    assert frame_from_dict(bare.to_dict()) == bare and frame_from_dict(full.to_dict()) == full
    assert "object_rotation" not in full.to_dict()
    assert frame_for_task("push", 39, "task", object_rotation=False).n_features == 10
    with pytest.raises(FrameError, match="option of the task frame"):
        frame_for_task("push", 39, "hand", object_rotation=False)
    with pytest.raises(FrameError, match="object_rotation must be true or false"):
        frame_from_dict({**bare.to_dict(), "object_rotation": "no"})


def test_bad_task_frames_are_refused():
    with pytest.raises(FrameError, match="task frame needs Cartesian actions, an object and a planar goal"):
        frame_for_task("reach", 31, "task")
    with pytest.raises(FrameError, match="task frame needs Cartesian actions"):
        frame_for_task("push-joint", 39, "task")
    with pytest.raises(FrameError, match="Meta-World task"):
        frame_for_task("metaworld:push-v3", 39, "task")
    with pytest.raises(FrameError, match="unknown policy frame 'elbow'"):
        frame_for_task("push", 39, "elbow")
    with pytest.raises(FrameError, match="reads observation index 40"):
        TaskFrame(ee=18, grip=27, obj=28, goal=39).check(39, 10)
    with pytest.raises(FrameError, match="damaged policy frame"):
        frame_from_dict({"kind": "task", "ee": 18})
    with pytest.raises(FrameError, match="bad task frame"):
        TaskFrame(ee=-1, grip=27, obj=28, goal=37)


@pytest.fixture(scope="module")
def reach_data(tmp_path_factory):
    return collect("reach", 12, tmp_path_factory.mktemp("data") / "reach.zarr", seed=0, progress=False).dataset


def test_hand_frame_training_samples_are_relative(reach_data):
    cfg = TrainConfig(policy="mlp", frame="hand")
    frame, obs_w, act_w = training_windows(reach_data, cfg)
    n = reach_data.obs_size
    assert obs_w.shape[1] == n + 3
    # reach labels are the target: relative to the hand they equal the goal-minus-hand feature
    np.testing.assert_allclose(act_w[:, 0, :3], obs_w[:, n:n + 3], atol=1e-5)
    with pytest.raises(ValueError, match="frame must be"):
        training_windows(reach_data, TrainConfig(frame="elbow"))
    ds = DatasetWriter(reach_data.path.parent / "other.zarr", "stack", 31, 10, 0.1)
    ds.add_episode(reach_data.obs[:5], reach_data.action[:5], True)
    with pytest.raises(FrameError, match="task 'stack'"):
        training_windows(ds.close(), cfg)


def test_hand_frame_policy_learns_reach_and_acts_in_world_coordinates(reach_data, tmp_path):
    cfg = TrainConfig(policy="mlp", frame="hand", steps={"policy": 800}, batch_size=64, warmup=50, threads=1,
                      model={"hidden": [64, 64]})
    ckpt = train(reach_data, tmp_path / "t", cfg, progress=False)["checkpoint"]
    pol = load_policy(ckpt, expect_obs_size=31)
    assert pol.frame is not None and pol.model.obs_dim == 34
    env = ReachEnv()
    obs, _ = env.reset(seed=10001)
    chunk = pol.act(obs)
    # world coordinates: the chunk heads for the (held-out) target, not for target − hand
    assert np.linalg.norm(chunk.actions[-1, :3] - env.target) < 0.05
    r = evaluate(ckpt, episodes=10, out=tmp_path / "e", progress=False)
    assert r["success_rate"] >= 0.8, r


def test_damaged_frame_in_a_checkpoint_is_named(reach_data, tmp_path):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    cfg = TrainConfig(policy="mlp", frame="hand", steps={"policy": 5}, batch_size=8, warmup=1, threads=1,
                      model={"hidden": [16]})
    ckpt = train(reach_data, tmp_path, cfg, progress=False)["checkpoint"]
    with safe_open(ckpt, framework="pt") as f:
        meta = f.metadata()
    spec = json.loads(meta["spec"])
    for frame, msg in (({"kind": "hand", "ee": 40, "points": []}, "reads observation index"),
                       ({"kind": "wrist"}, "unknown policy frame"),
                       (None, "model sizes")):
        save_file(load_file(ckpt), str(tmp_path / "bad.safetensors"),
                  metadata={**meta, "spec": json.dumps(spec | {"frame": frame})})
        with pytest.raises(CheckpointError, match=msg):
            load_policy(tmp_path / "bad.safetensors")


def test_guidance_prompt_in_world_coordinates_steers_a_diffusion_policy(reach_data, tmp_path):
    """Issue 5's guidance hook through the policy: a world-frame prompt chunk, converted to the
    model's hand-relative normalized units, pulls the sampled chunk toward it."""
    cfg = TrainConfig(policy="diffusion", frame="hand", steps={"policy": 300}, batch_size=64, warmup=20, threads=1,
                      model={"down_dims": [16, 32], "step_embed_dim": 16})
    pol = load_policy(train(reach_data, tmp_path / "d", cfg, progress=False)["checkpoint"])
    env = ReachEnv()
    obs, _ = env.reset(seed=10002)
    free = pol.act(obs, seed=0).actions
    prompt = free.copy()
    prompt[:, :3] = env.ee()[0] + [0.0, 0.15, 0.0]   # "go left", away from the target
    pol.reset()
    guided = pol.act(obs, seed=0, guide_to=prompt, guide_scale=0.5).actions
    d_free = np.linalg.norm(free[:, :3] - prompt[:, :3], axis=1).mean()
    d_guided = np.linalg.norm(guided[:, :3] - prompt[:, :3], axis=1).mean()
    assert d_guided < 0.5 * d_free, (d_free, d_guided)
    with pytest.raises(ValueError, match="prompt chunk must be"):
        pol.act(obs, guide_to=prompt[:3], guide_scale=0.5)
    mlp = load_policy(train(reach_data, tmp_path / "m", TrainConfig(policy="mlp", steps={"policy": 5}, batch_size=8,
                                                                     warmup=1, threads=1, model={"hidden": [16]}),
                            progress=False)["checkpoint"])
    with pytest.raises(ValueError, match="no guidance hook"):
        mlp.act(obs, guide_to=prompt, guide_scale=0.5)


def test_task_frame_policy_trains_loads_and_acts_equivariantly_on_push(tmp_path):
    data = collect("push", 3, tmp_path / "push.zarr", seed=0, progress=False).dataset
    cfg = TrainConfig(policy="mlp", frame="task", steps={"policy": 20}, batch_size=16, warmup=2, threads=1,
                      model={"hidden": [32]})
    frame, obs_w, act_w = training_windows(data, cfg)
    assert obs_w.shape[1] == TaskFrame.FEATURES and isinstance(frame, TaskFrame)
    obs_raw, act_raw = data.windows(cfg.horizon, cfg.obs_horizon)
    np.testing.assert_allclose(frame.to_world(act_w, obs_raw, data.obs_size), act_raw, atol=1e-5)
    ckpt = train(data, tmp_path / "t", cfg, progress=False)["checkpoint"]
    pol = load_policy(ckpt, expect_obs_size=data.obs_size)
    assert pol.model.obs_dim == TaskFrame.FEATURES and pol.frame == frame
    # a push observation and the same scene rotated about z and shifted: the policy sees the same
    # features, so its world chunk is the first one rotated and shifted
    obs = np.asarray(data.obs[0], dtype=np.float64)
    theta, shift = 0.7, np.array([0.05, -0.1, 0.0])
    R, _ = _rot6d_z(theta)
    moved = obs.copy()
    for i in (frame.ee, frame.obj):
        moved[i:i + 3] = R @ obs[i:i + 3] + shift
    moved[frame.obj + 3:frame.obj + 6] = R @ obs[frame.obj + 3:frame.obj + 6]
    moved[frame.obj + 6:frame.obj + 9] = R @ obs[frame.obj + 6:frame.obj + 9]
    moved[frame.goal:frame.goal + 2] = R[:2, :2] @ obs[frame.goal:frame.goal + 2] + shift[:2]
    np.testing.assert_allclose(frame.features(moved, len(obs)), frame.features(obs, len(obs)), atol=1e-9)
    pol.reset()
    a = pol.act(obs).actions
    pol.reset()
    b = pol.act(moved).actions
    assert np.all(np.isfinite(a)) and np.all(np.isfinite(b))
    np.testing.assert_allclose(b[:, :3], a[:, :3] @ R.T + shift, atol=1e-4)
