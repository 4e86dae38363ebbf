"""`robot-ctrl record` and `robot-ctrl teleop` (issue 5) as commands: a replayed operator shares
control with the committed MLP reach policy through the full graph; the recorded dataset holds
the episode with its interventions flagged. A device that is not there runs the session on zero
prompts and says why."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from robot_ctrl.learning.dataset import load_dataset
from robot_ctrl.paths import checkpoint_path
from robot_ctrl.teleop.replay import save_prompts
from robot_ctrl.teleop.schema import Prompt

CLI = str(Path(sys.executable).parent / "robot-ctrl")


def _run(args, timeout=300):
    r = subprocess.run([CLI, *args, "--json"], capture_output=True, text=True, timeout=timeout, env=os.environ.copy())
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_record_shared_autonomy_flags_interventions(tmp_path):
    prompts = [Prompt(stamp=0.02 * k, mode="twist", twist=[0, 0, 0.06, 0, 0, 0], intervene=True) for k in range(40)]
    save_prompts(tmp_path / "p.jsonl", prompts)
    out = tmp_path / "teleop.zarr"
    s = _run(["record", "--device", "replay", "--device-args", json.dumps({"path": str(tmp_path / "p.jsonl")}),
              "--task", "reach", "--checkpoint", str(checkpoint_path("mlp_reach.safetensors")), "--episodes", "1",
              "--out", str(out)])
    assert s["episodes"] == 1 and s["successes"] == 1 and s["prompt_mode"] == "shared"
    ds = load_dataset(out)
    assert ds.n_episodes == 1 and ds.obs_size == 31 and ds.act_size == 10 and ds.source == "teleop"
    assert 0 < ds.intervention.sum() < len(ds.intervention), ds.intervention
    assert s["interventions"][0] == int(ds.intervention.sum())
    assert np.all(np.isfinite(ds.action)) and np.all(np.abs(ds.action[:, 9]) <= 1.0)
    # while the operator intervened, the labels rise; afterwards the policy heads for the goal
    inter = ds.intervention
    first = int(np.argmax(inter))
    assert ds.action[first + 2, 2] > ds.obs[first, 18 + 2] - 0.01


def test_teleop_with_a_missing_device_runs_on_zero_prompts(tmp_path):
    s = _run(["teleop", "--device", "replay", "--device-args", json.dumps({"path": str(tmp_path / "nope.jsonl")}),
              "--task", "reach", "--duration", "4"])
    assert s["device_status"] == "not_found" and "no prompt file" in s["device_error"]
    assert s["teleop_counts"]["published"] > 20 and s["policy_counts"]["operator_chunks"] == 0
