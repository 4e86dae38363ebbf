"""Learning pipeline (issue 4): datasets, scripted collection, training, checkpoints, evaluation
and the commands, on the real tasks with real torch and zarr."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import zarr

from robot_ctrl.learning import CheckpointError, load_policy
from robot_ctrl.learning.collect import collect
from robot_ctrl.learning.dataset import DatasetError, DatasetWriter, load_dataset
from robot_ctrl.learning.envs import TaskError, make_task
from robot_ctrl.learning.evaluate import evaluate, wilson
from robot_ctrl.learning.train import TrainConfig, train

TINY = {
    "carp": {"width": 32, "depth": 1, "heads": 2, "vocab_size": 32, "code_dim": 8},
    "diffusion": {"down_dims": [16, 32], "step_embed_dim": 16},
    "mlp": {"hidden": [64, 64]},
}


@pytest.fixture(autouse=True)
def _one_thread():
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)


@pytest.fixture(scope="module")
def reach_data(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "reach.zarr"
    report = collect("reach", 12, path, seed=0, progress=False)
    return report


def test_collect_keeps_successful_episodes_with_clean_labels(reach_data):
    ds = reach_data.dataset
    assert reach_data.kept == 12 and ds.n_episodes == 12 and ds.success.all()
    assert ds.obs_size == 2 * 9 + 10 + 3 and ds.act_size == 10 and ds.dt == pytest.approx(0.1)
    # labels are the clean expert: the commanded point is exactly the target in the observation
    np.testing.assert_allclose(ds.action[:, :3], ds.obs[:, -3:], atol=1e-6)
    for k in ("min", "max", "mean", "std"):
        assert ds.stats["obs"][k].shape == (ds.obs_size,)
    np.testing.assert_allclose(ds.stats["action"]["max"], ds.action.max(0), atol=1e-6)


def test_windows_pad_inside_episodes(tmp_path):
    w = DatasetWriter(tmp_path / "w.zarr", "t", 2, 1, 0.1)
    w.add_episode(np.arange(6, dtype=float).reshape(3, 2), np.array([[1.0], [2.0], [3.0]]), True)
    w.add_episode(np.full((2, 2), 9.0), np.array([[7.0], [8.0]]), True)
    ds = w.close()
    obs, act = ds.windows(horizon=4, obs_horizon=2)
    assert obs.shape == (5, 4) and act.shape == (5, 4, 1)
    np.testing.assert_array_equal(obs[0], [0, 1, 0, 1])          # first observation repeated
    np.testing.assert_array_equal(obs[2], [2, 3, 4, 5])
    np.testing.assert_array_equal(act[1, :, 0], [2, 3, 3, 3])    # last action held
    np.testing.assert_array_equal(act[3, :, 0], [7, 8, 8, 8])    # never crosses into the next episode


def test_bad_datasets_are_refused_naming_file_and_field(tmp_path, reach_data):
    w = DatasetWriter(tmp_path / "bad.zarr", "t", 3, 2, 0.1)
    with pytest.raises(DatasetError, match="non-finite"):
        w.add_episode(np.full((4, 3), np.nan), np.zeros((4, 2)), True)
    with pytest.raises(DatasetError, match=r"shape \(4, 2\)"):
        w.add_episode(np.zeros((4, 3)), np.zeros((4, 5)), True)
    w.add_episode(np.zeros((4, 3)), np.zeros((4, 2)), True)
    w.close()
    root = zarr.open_group(str(tmp_path / "bad.zarr"), mode="a")
    root["data/action"][2, 1] = np.nan
    with pytest.raises(DatasetError, match=r"bad\.zarr.*'data/action'.*\[2, 1\]"):
        load_dataset(tmp_path / "bad.zarr")
    root["data/action"][2, 1] = 0.0
    root.attrs["obs_size"] = 4
    with pytest.raises(DatasetError, match=r"'data/obs' has width 3"):
        load_dataset(tmp_path / "bad.zarr")
    root.attrs["obs_size"] = 3
    del root["meta/stats/obs/max"]
    with pytest.raises(DatasetError, match=r"'meta/stats/obs/max' is missing"):
        load_dataset(tmp_path / "bad.zarr")
    with pytest.raises(DatasetError, match="not found"):
        load_dataset(tmp_path / "nothing.zarr")
    with pytest.raises(DatasetError, match="already exists"):
        DatasetWriter(tmp_path / "bad.zarr", "t", 3, 2, 0.1)


@pytest.mark.parametrize("kind", ["carp", "diffusion", "mlp"])
def test_tiny_configs_train_and_loss_falls(kind, reach_data, tmp_path):
    steps = {"tokenizer": 300, "policy": 300} if kind == "carp" else {"policy": 300}
    cfg = TrainConfig(policy=kind, steps=steps, batch_size=32, lr=3e-3, warmup=20, threads=1, model=TINY[kind],
                      ckpt_every=10_000)
    s = train(reach_data.dataset, tmp_path / kind, cfg, progress=False, log_every=10)
    log = json.loads((tmp_path / kind / "train_log.json").read_text())["log"]
    for stage in steps:
        first = np.mean([e["loss"] for e in log[stage][:3]])
        last = np.mean([e["loss"] for e in log[stage][-3:]])
        assert last < 0.5 * first, (stage, first, last)
    pol = load_policy(s["checkpoint"], expect_obs_size=reach_data.dataset.obs_size, expect_act_size=10)
    chunk = pol.act(reach_data.dataset.obs[0])
    assert chunk.actions.shape == (16, 10) and np.all(np.isfinite(chunk.actions))
    np.testing.assert_allclose(chunk.times, 0.1 * np.arange(16))


def test_training_resumes_where_it_stopped(reach_data, tmp_path):
    """Stopped after 40 of 100 steps and resumed: the same weights as one uninterrupted run
    (model, EMA, optimizer and both random generators are restored)."""
    for kind in ("mlp", "carp"):
        steps = {"tokenizer": 30, "policy": 30} if kind == "carp" else {"policy": 60}
        cfg = TrainConfig(policy=kind, steps=steps, batch_size=16, warmup=5, threads=1, model=TINY[kind])
        train(reach_data.dataset, tmp_path / f"{kind}_whole", cfg, progress=False)
        part = train(reach_data.dataset, tmp_path / f"{kind}_parts", cfg, progress=False, stop_after=40)
        assert part["stopped"] and part["step"] == (10 if kind == "carp" else 40)
        train(reach_data.dataset, tmp_path / f"{kind}_parts", cfg, resume=True, progress=False)
        a = torch.load(tmp_path / f"{kind}_whole" / "train_state.pt", weights_only=False)
        b = torch.load(tmp_path / f"{kind}_parts" / "train_state.pt", weights_only=False)
        for key in ("model", "ema"):
            for name, t in a[key].items():
                torch.testing.assert_close(t, b[key][name], msg=f"{kind} {key} {name}")


def test_checkpoint_mismatches_are_named(reach_data, tmp_path):
    cfg = TrainConfig(policy="mlp", steps={"policy": 5}, batch_size=8, warmup=1, threads=1, model=TINY["mlp"])
    ckpt = train(reach_data.dataset, tmp_path, cfg, progress=False)["checkpoint"]
    with pytest.raises(CheckpointError, match="observation size 31 .*gives 40"):
        load_policy(ckpt, expect_obs_size=40)
    with pytest.raises(CheckpointError, match="action size 10 .*takes 4"):
        load_policy(ckpt, expect_act_size=4)
    with pytest.raises(CheckpointError, match="not found"):
        load_policy(tmp_path / "missing.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable"):
        load_policy(tmp_path / "junk.safetensors")
    from safetensors.torch import load_file, save_file
    from safetensors import safe_open

    with safe_open(ckpt, framework="pt") as f:
        meta = f.metadata()
    tensors = load_file(ckpt)
    save_file(tensors, str(tmp_path / "kind.safetensors"), metadata={**meta, "kind": "transformer-xl"})
    with pytest.raises(CheckpointError, match="unknown policy type 'transformer-xl'"):
        load_policy(tmp_path / "kind.safetensors")
    cfg_meta = json.loads(meta["model_config"]) | {"hidden": [32, 32]}
    save_file(tensors, str(tmp_path / "cfg.safetensors"), metadata={**meta, "model_config": json.dumps(cfg_meta)})
    with pytest.raises(CheckpointError, match="wrong shape"):
        load_policy(tmp_path / "cfg.safetensors")
    pol = load_policy(ckpt)
    with pytest.raises(ValueError, match="non-finite"):
        pol.act(np.full(31, np.nan))
    with pytest.raises(ValueError, match=r"shape \(31,\)"):
        pol.act(np.zeros(30))


def test_mlp_learns_reach_and_eval_reports(reach_data, tmp_path):
    cfg = TrainConfig(policy="mlp", steps={"policy": 800}, batch_size=64, warmup=50, threads=1, model=TINY["mlp"])
    ckpt = train(reach_data.dataset, tmp_path / "t", cfg, progress=False)["checkpoint"]
    r = evaluate(ckpt, episodes=10, out=tmp_path / "e", progress=False)
    assert r["task"] == "reach" and r["episodes"] == 10
    assert r["success_rate"] >= 0.8, r
    lo, hi = r["success_ci95"]
    assert lo <= r["success_rate"] <= hi
    assert r["chunk_ms_p50"] > 0 and r["chunk_ms_p99"] >= r["chunk_ms_p50"]
    assert json.loads((tmp_path / "e" / "eval.json").read_text())["successes"] == r["successes"]
    assert (tmp_path / "e" / "eval.png").stat().st_size > 10_000


def test_wilson_interval():
    assert wilson(0, 10)[0] == 0.0 and wilson(10, 10)[1] == 1.0
    lo, hi = wilson(95, 100)
    assert 0.88 < lo < 0.9 and 0.97 < hi < 0.99


def test_unknown_task_is_refused():
    with pytest.raises(TaskError, match="unknown task 'stack'"):
        make_task("stack")


def test_commands_collect_train_eval(tmp_path, capsys):
    from robot_ctrl.cli import main

    data = tmp_path / "d.zarr"
    assert main(["collect", "--task", "reach", "--episodes", "3", "--out", str(data), "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["episodes"] == 3
    out = tmp_path / "run"
    assert main(["train", "--policy", "mlp", "--task", "reach", "--data", str(data), "--out", str(out),
                 "--steps", "20", "--model", json.dumps(TINY["mlp"]), "--threads", "1", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["episodes"] == 3 and (out / "policy.safetensors").exists()
    assert main(["eval", str(out / "policy.safetensors"), "--episodes", "2", "--out", str(tmp_path / "ev"),
                 "--json"]) == 0
    rep = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rep["episodes"] == 2 and rep["policy"] == "mlp"
    assert main(["train", "--policy", "gpt", "--task", "reach", "--data", str(data)]) == 2
    assert "no training preset" in capsys.readouterr().err
    assert main(["eval", str(tmp_path / "none.safetensors")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err


def test_bench_policy_reports_the_issue_keys():
    from robot_ctrl.learning.bench import bench_policy

    r = bench_policy(calls=3)
    for key in ("carp_chunk_ms_p50", "ddpm100_chunk_ms_p50", "ddim10_chunk_ms_p50", "speedup_vs_ddpm100",
                "speedup_vs_ddim10", "carp_params", "diffusion_params"):
        assert key in r and np.isfinite(r[key]) and r[key] > 0, key
    assert r["speedup_vs_ddpm100"] == pytest.approx(r["ddpm100_chunk_ms_p50"] / r["carp_chunk_ms_p50"])


def test_joint_space_policy_learns_reach(tmp_path):
    """`reach-joint`: the expert's Cartesian actions converted by the IK into joint targets; an
    MLP trained on them reaches held-out targets, its chunks being joint positions (9 joints)."""
    report = collect("reach-joint", 20, tmp_path / "rj.zarr", seed=0, progress=False)
    ds = report.dataset
    assert ds.act_size == 9 and ds.obs_size == 31 and report.kept == 20
    # the labels are the IK's joint targets: joint positions inside the limits
    assert np.all(ds.action[:, :7] <= 3.0) and np.all(ds.action[:, 7:] >= 0) and np.all(ds.action[:, 7:] <= 0.041)
    cfg = TrainConfig(policy="mlp", steps={"policy": 2000}, batch_size=64, warmup=50, threads=1,
                      model={"hidden": [256, 256]})
    ckpt = train(ds, tmp_path / "t", cfg, progress=False)["checkpoint"]
    assert load_policy(ckpt).spec.task == "reach-joint"
    r = evaluate(ckpt, episodes=8, out=tmp_path / "e", progress=False)
    assert r["task"] == "reach-joint" and r["success_rate"] >= 0.5, r   # a still arm: 0
    env = make_task("reach-joint")
    env.reset(seed=1)
    with pytest.raises(ValueError, match="9 finite joint positions"):
        env.step(np.zeros(10))


def test_temporal_ensembling_averages_the_live_predictions_oldest_first():
    """rollout(ensemble=m): each step executes the exp(-m i)-weighted mean of every prediction
    made for it (i = 0 the oldest). Chunks here are constant, chunk k = k, so step t (t ≥ 3,
    horizon 4, a prediction every step) averages k = t-3 .. t."""
    from types import SimpleNamespace

    from robot_ctrl.learning.envs import StepResult, TaskAdapter
    from robot_ctrl.learning.evaluate import rollout

    class Counter:
        k = -1

        def reset(self):
            self.k = -1

        def act(self, obs):
            self.k += 1
            return SimpleNamespace(actions=np.full((4, 1), float(self.k)))

    class Recorder(TaskAdapter):
        def __init__(self):
            self.done_at, self.actions = 8, []

        def reset(self, seed=None):
            self.actions = []
            return np.zeros(1)

        def step(self, action):
            self.actions.append(float(np.asarray(action)[0]))
            return StepResult(np.zeros(1), False, len(self.actions) >= self.done_at)

    env, m = Recorder(), 0.5
    rollout(Counter(), env, 0, 1, ensemble=m)
    w = np.exp(-m * np.arange(4))
    want = [float(np.dot(w[:t + 1], np.arange(max(0, t - 3), t + 1)) / w[:t + 1].sum()) if t < 3
            else float(np.dot(w, np.arange(t - 3, t + 1)) / w.sum()) for t in range(8)]
    np.testing.assert_allclose(env.actions, want, atol=1e-12)
    # m = 0: the plain mean; without ensembling: the newest chunk's own action
    rollout(Counter(), env, 0, 1, ensemble=0.0)
    np.testing.assert_allclose(env.actions[3:], [np.mean(np.arange(t - 3, t + 1)) for t in range(3, 8)])
    rollout(Counter(), env, 0, 1)
    assert env.actions == list(range(8))
    with pytest.raises(ValueError, match="ensemble"):
        evaluate(Counter(), episodes=1, ensemble=-1.0)
