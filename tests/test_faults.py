"""The fault suite (issue 6, robot_ctrl.ros.faults): each fault injected into the running graph
(processes, as `ros2 launch` starts them) with the arm moving under the policy node, on the
simulator and on the fake ros2_control hardware; the required response is checked here, the
figures are `robot-ctrl bench faults`'s (timing targets belong there, so the bounds here are the
responses themselves, with generous limits)."""
from __future__ import annotations

import pytest

from robot_ctrl.ros.faults import run, run_many, sequences

# one graph per backend for the scenarios it can take in turn (one start-up each, not one per
# scenario); each scenario waits for the arm to move under the policy again first
# (in the bench's order, robot_ctrl.ros.faults.SHARED_ORDER; the policy kill last: it ends the policy)
# The storm on a graph of its own: after it, in CI, the arm lurched (0.7 m/s) when the policy
# was killed
SEQUENCES = {"fake": ["state_stall", "estop", "stamp_jump", "policy_kill"],
             "sim": ["command_stall", "stamp_jump", "policy_kill"], "storm": ["storm"]}
_results: dict = {}


def result(scenario: str, backend: str) -> dict:
    key = "storm" if scenario == "storm" else backend
    if key not in _results:
        try:
            _results[key] = {r["scenario"]: r for r in run_many(SEQUENCES[key], backend)}
        except Exception as exc:  # noqa: BLE001 (once, not again in every test of the backend)
            _results[key] = exc
    if isinstance(_results[key], Exception):
        raise _results[key]
    r = _results[key][scenario]
    assert "error" not in r, r
    return r


@pytest.mark.parametrize("backend", ["sim", "fake"])
def test_killed_policy_the_safety_filter_brakes_and_holds(backend):
    r = result("policy_kill", backend)
    assert r["noticed"], r  # the safety filter saw the policy's liveliness go (its diagnostics)
    assert r["kill_to_brake_ms"] is not None, r  # and braked
    assert r["kill_to_brake_ms"] < 500.0, r  # (the 20 ms target is the bench's; a loaded CI machine is slow)
    assert r["stopping_distance_mm"] < 20.0, r  # not the rest of the chunk (~40 mm at 5 cm/s)
    assert r["drift_while_held_mm"] < 2.0, r


def test_stalled_state_stream_the_watchdog_brakes():
    r = result("state_stall", "fake")
    assert r["last_state_to_brake_ms"] is not None and r["last_state_to_brake_ms"] < 100.0, r
    assert r["commands_while_stalled"] > 0, r  # every command while stalled brakes
    # the safety filter's own figure (last state -> its brake) is reported; the 2-period target
    # is a benchmark (robot-ctrl bench faults), here only that the state deadline did it
    assert r["watchdog_delay_periods"] is not None and 1.0 <= r["watchdog_delay_periods"] < 25.0, r
    assert r["ok"] and r["resumed_filtering"], r


def test_stalled_command_stream_holds_position():
    r = result("command_stall", "sim")
    assert r["stall_to_brake_ms"] is not None and r["stall_to_brake_ms"] < 100.0, r
    assert r["drift_while_held_mm"] < 2.0, r


def test_message_storm_keeps_queues_and_latency_bounded():
    r = result("storm", "fake")
    assert r["storm_rate_x"] >= 10.0 and r["storm_msgs_per_s"] > 500.0, r  # a real storm reached the nodes
    assert r["rss_growth_mb"] < 50.0, r
    assert r["latency_ms_p99_during"] < 200.0, r
    assert r["ok"], r


@pytest.mark.parametrize("backend", ["sim", "fake"])
def test_a_jumped_stamp_gives_no_burst_no_stall_and_no_nan(backend):
    r = result("stamp_jump", backend)
    assert r["finite"], r
    # no burst: no more commands out of the safety filter than states came in (one per state)
    assert r["states_in"] > 0 and r["extra_commands"] <= 0.1 * r["states_in"] + 10, r
    assert r["braking_commands_after"] < 50, r  # no watchdog stall behind the jumped stamp
    assert r["max_command_step_nm"] < 20.0, r


def test_estop_no_motion_until_reset_with_fresh_state():
    r = result("estop", "fake")
    assert r["motion_commands_after_stop"] == 0, r
    assert r["estop_to_stop_ms"] is not None and r["stopping_distance_mm"] < 20.0, r
    assert r["reset_accepted"] and r["resumed"], r


def test_unknown_scenario_or_backend_is_named():
    with pytest.raises(ValueError, match="unknown fault scenario 'meteor'"):
        run("meteor")
    with pytest.raises(ValueError, match="unknown backend 'mars'"):
        run("estop", "mars")
    with pytest.raises(ValueError, match="'policy_kill' ends the policy: it must come last"):
        run_many(["policy_kill", "estop"], "fake")
    with pytest.raises(ValueError, match="'clock_jump' runs the graph under use_sim_time: run it alone"):
        run_many(["estop", "clock_jump"], "sim")
    with pytest.raises(ValueError, match="no fault scenario"):
        run_many([], "sim")


def test_the_bench_groups_the_scenarios_into_five_graphs():
    seqs = sequences()
    assert seqs == [("sim", ["state_stall", "command_stall", "estop", "stamp_jump", "storm"]),
                    ("sim", ["policy_kill"]), ("sim", ["clock_jump"]),
                    ("fake", ["state_stall", "command_stall", "estop", "stamp_jump", "storm"]),
                    ("fake", ["policy_kill"])]
    assert sequences(["estop", "clock_jump"], ["fake"]) == [("fake", ["estop"])]


def test_a_clock_jump_under_sim_time_is_detected_with_no_burst_and_no_nan():
    """use_sim_time: one /clock 1 s ahead, then the simulator's clock again."""
    r = run("clock_jump", "sim")
    assert r["finite"], r
    assert r["clock_jumps_seen"] >= 2, r  # ahead and back, both seen by the safety filter
    assert r["states_in"] > 0 and r["extra_commands"] <= 0.1 * r["states_in"] + 10, r  # no burst
    assert r["ok"], r


def test_clock_jump_needs_the_simulator():
    with pytest.raises(ValueError, match="sim backend"):
        run("clock_jump", "fake")
