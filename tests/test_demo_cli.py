"""`robot-ctrl demo` and `robot-ctrl bench` run end to end (short settings) and produce what
they promise: a readable MCAP bag, a PNG, a GIF, a summary; benchmark JSON with its keys."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from mcap.reader import make_reader

from robot_ctrl.io.bag import read_joint_states

CLI = str(Path(sys.executable).parent / "robot-ctrl")


def test_demo_writes_bag_plot_gif_and_summary(tmp_path):
    out = tmp_path / "demo"
    proc = subprocess.run([CLI, "demo", "--out", str(out), "--timing", "lockstep", "--segment-s", "1.0",
                           "--policy-episodes", "1", "--gif-fps", "4", "--json"], capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["ok"] and summary["rejected_messages"] == 0
    assert summary["tracking_rms_rad"] < 2e-3  # on the safe part of the tour
    # the unsafe waypoints (hand through the table, into the obstacle) were made safe
    safety = summary["safety"]
    assert safety["violations"] == 0 and safety["max_intervention"] > 10.0
    assert safety["min_tcp_height_m"] > 0.015 - 2e-3 and safety["min_collision_distance_m"] > -2e-3
    assert (out / "safety.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert 490 < summary["loop_rate_hz_sim"] < 510  # one command per 2 ms control period
    assert summary["chunks_sent"] >= 5
    # the bag is a rosbag2 directory with an MCAP file that carries ROS 2 schemas
    bag = out / "bag"
    assert (bag / "metadata.yaml").exists()
    (mcap_file,) = bag.glob("*.mcap")
    with open(mcap_file, "rb") as f:
        schemas = {s.name: s.encoding for s in make_reader(f).get_summary().schemas.values()}
    assert schemas["sensor_msgs/msg/JointState"] == "ros2msg"
    assert "trajectory_msgs/msg/JointTrajectory" in schemas
    js = read_joint_states(bag)
    assert len(js["t"]) > 500 and np.all(np.isfinite(js["q"]))
    assert (out / "tracking.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "demo.gif").read_bytes()[:6] in (b"GIF89a", b"GIF87a")
    assert json.loads((out / "summary.json").read_text())["ok"]
    # part 2: the committed CARP checkpoint runs pick-and-place through the whole graph
    pol = summary["policy"]
    assert pol["policy"] == "carp" and pol["task"] == "pick_place" and pol["episodes"] == 1
    assert pol["chunks"] >= 5 and pol["policy_counts"]["rejected_observations"] == 0
    assert np.isfinite(pol["chunk_ms_p50"]) and pol["safety_counts"]["brakes"] == 0
    assert (out / "policy" / "pick_place.gif").read_bytes()[:6] in (b"GIF89a", b"GIF87a")
    assert (out / "policy" / "bag" / "metadata.yaml").exists()
    # the simulator stopped stepping when the episode ended: the recording ends there too
    js_pol = read_joint_states(out / "policy" / "bag")
    assert js_pol["t"][-1] <= pol["episode_sim_s"][0] + 0.0041, (js_pol["t"][-1], pol["episode_sim_s"])
    # the recording of the graph converts into the training format: the episode, its outcome
    from robot_ctrl.learning.mcap_convert import convert_mcap

    ds = convert_mcap([out / "policy" / "bag"], tmp_path / "from_graph.zarr", "pick_place")
    assert ds.n_episodes == 1 and bool(ds.success[0]) == pol["per_episode"][0]
    assert len(ds.obs) >= 10 and ds.obs.shape[1] == 2 * 9 + 10 + 11 and np.all(np.isfinite(ds.action))


def test_bench_sim_json():
    proc = subprocess.run([CLI, "bench", "sim", "--seconds", "0.3", "--json"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["benchmark"] == "sim" and result["realtime_factor"] > 0


def test_bench_loop_lockstep_json():
    proc = subprocess.run([CLI, "bench", "loop", "--lockstep", "--seconds", "1", "--json"],
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["realtime_factor"] > 0 and result["latency_us_p50"] > 0


def test_bench_safety_json():
    proc = subprocess.run([CLI, "bench", "safety", "--steps", "300", "--falsify", "300", "--json"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    for key in ("step_us_p50", "step_us_p99", "step_us_max", "qp_us_p50", "cvxpy_us_p50", "rows",
                "collision_pairs", "max_violation"):
        assert key in r, key
    assert r["rows"] >= 30 and r["collision_pairs"] >= 10
    assert 0 < r["qp_us_p50"] < r["step_us_p50"] <= r["step_us_max"]
    assert r["max_violation"] <= 1e-9
    assert r["falsify_steps"] == 300 and r["falsify_violations"] == 0


def test_unknown_robot_stops_startup_with_a_clear_error(tmp_path):
    proc = subprocess.run([str(Path(sys.executable).parent / "sim_node"), "--ros-args", "-p", "robot:=no_such_bot"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "no_such_bot.yaml" in proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr


def test_a_bad_gif_rate_stops_the_demo_before_it_runs(tmp_path):
    proc = subprocess.run([CLI, "demo", "--out", str(tmp_path / "d"), "--gif-fps", "0"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "gif_fps must be in [0.5, 60]" in proc.stderr + proc.stdout, proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "d" / "bag").exists()


def test_bench_teleop_json():
    """`robot-ctrl bench teleop --json`: both halves (device latencies, the scripted-operator study
    with the safety filter in the loop) in one JSON line, with a few trials and episodes."""
    proc = subprocess.run([CLI, "bench", "teleop", "--trials", "3", "--episodes", "1", "--json"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    assert r["benchmark"] == "teleop"
    lat = r["latency"]
    for device in ("keyboard", "gamepad", "spacemouse", "web", "replay"):
        assert lat["input_to_topic"][device]["n"] == 3 and lat["input_to_topic"][device]["p50_ms"] > 0, device
    assert lat["prompt_to_command_by_teleop_period"]["0.1"]["prompt_to_command"]["p50_ms"] > 0
    study = r["operator_study"]
    assert study["safety"] == "panda_tasks" and study["episodes"] == 1
    for arm in ("teleop_only", "shared_autonomy", "policy_only"):
        assert 0.0 <= study[arm]["success_rate"] <= 1.0 and study[arm]["final_distance_m_median"] >= 0.0
