"""Teleop latency benchmark (robot_ctrl.teleop.latency) with a few trials: every device's real
parsing path (pty keyboard, fake evdev and HID sources, a websocket client, a replayed stream)
reaches /teleop/twist, and the composed graph turns a prompt into an operator chunk and an
effort command at the simulator, for both teleop periods. Bounds are generous on purpose:
they prove the paths work; timing targets belong in the benchmark's numbers."""
from __future__ import annotations

import math
import threading

import pytest

from robot_ctrl.teleop.latency import DEVICE_NAMES, bench_latency, summary_rows

BOUND_MS = 500.0


def _finite(s: dict) -> bool:
    return all(s[k] is not None and math.isfinite(s[k]) for k in ("p50_ms", "p99_ms", "max_ms"))


@pytest.fixture(scope="module")
def result():
    import rclpy

    r = bench_latency(trials=5, device_time_limit=15.0, graph_time_limit=30.0)
    assert not rclpy.ok()  # shut down again
    left = [t.name for t in threading.enumerate() if t.name.startswith(("latency-", "teleop-web", "sim_realtime"))]
    assert not left, left  # executors, the web server and the simulator's thread are joined
    return r


@pytest.mark.parametrize("device", DEVICE_NAMES)
def test_every_device_reaches_the_topic(result, device):
    r = result["input_to_topic"][device]
    assert "error" not in r, r
    assert r["n"] == 5 and r["missed"] == 0 and not r["timed_out"], r
    assert _finite(r) and 0.0 < r["p50_ms"] < BOUND_MS, r
    if device == "keyboard":
        assert r["release"] is None  # a terminal has no key-up
    else:
        rel = result["input_to_topic"][device]["release"]
        assert rel["n"] == 5 and _finite(rel) and 0.0 < rel["p50_ms"] < BOUND_MS, rel


@pytest.mark.parametrize("period", ["0.1", "0.02"])
def test_prompt_reaches_the_chunk_and_the_command(result, period):
    g = result["prompt_to_command_by_teleop_period"][period]
    assert "error" not in g, g
    assert g["trials"] >= 3 and not g["timed_out"], g
    for key in ("prompt_to_chunk", "prompt_to_command", "prompt_to_first_command_after_chunk"):
        assert g[key]["n"] >= 3 and _finite(g[key]) and 0.0 < g[key]["p50_ms"] < BOUND_MS, (key, g)
    assert g["intervening_confirmed"] >= g["trials"] - 1  # the operator chunks are flagged
    assert g["realtime_factor"] > 0.1


def test_table_rows(result):
    rows = summary_rows({"benchmark": "teleop", "latency": result})
    assert rows["benchmark"] == "teleop"
    assert any(k.startswith("input→topic web press") for k in rows)
    assert "prompt→chunk (teleop_period 0.02 s) ms" in rows
