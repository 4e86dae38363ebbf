"""Benchmarks: `robot-ctrl bench sim|loop [--lockstep] [--json]`.

- sim:  the Panda scene stepped on one core with a holding command -> realtime_factor.
- loop: the cross-process loop simulator -> controller -> simulator. The simulator node runs
        in this process, the controller node in a child process, talking over DDS (loopback).
        realtime (500 Hz, paced): rate_hz, missed_fraction, latency_us_p50/p99 (state publish
        to the next command's arrival); --lockstep: realtime_factor.
- safety: the safety filter of config/safety/<robot>.yaml on one core, on the states and
        nominal commands of a closed-loop falsification run (random, adversarial, NaN): the
        full step (state in -> rows -> QP -> check -> command out), the QP alone (daqp) and the
        cvxpy reference on the same rows; --falsify N adds an N-step falsification run.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np


def _one_core() -> None:
    try:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    except (AttributeError, OSError):
        pass


def bench_sim(robot: str = "panda", seconds: float | None = None) -> dict:
    from robot_ctrl.model import RobotModel
    from robot_ctrl.sim import Simulator

    seconds = 3.0 if seconds is None else seconds
    affinity = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    _one_core()
    try:
        sim = Simulator(RobotModel.load(robot), scene="table", command_mode="effort")
        hold = sim.hold_command()
        sim.step(50)  # warm-up
        t_sim0, wall0, periods = sim.time, time.perf_counter(), 0
        while time.perf_counter() - wall0 < seconds:
            for _ in range(100):
                sim.set_command(hold)
                sim.step()
            periods += 100
        wall = time.perf_counter() - wall0
    finally:
        if affinity:
            os.sched_setaffinity(0, affinity)
    return {
        "benchmark": "sim",
        "robot": robot,
        "realtime_factor": (sim.time - t_sim0) / wall,
        "control_periods_per_s": periods / wall,
        "physics_steps_per_s": periods * sim.n_substeps / wall,
        "physics_dt_s": float(sim.model.opt.timestep),
        "wall_s": wall,
    }


def bench_loop(robot: str = "panda", seconds: float | None = None, lockstep: bool = False,
               warmup_commands: int = 500) -> dict:
    import rclpy
    from rclpy.parameter import Parameter

    from robot_ctrl.paths import config_path
    from robot_ctrl.ros.env import use_loopback
    from robot_ctrl.ros.runner import create_nodes, spin
    from robot_ctrl.ros.sim_node import SimNode
    from robot_ctrl.stack import ros_args

    seconds = 10.0 if seconds is None else seconds
    use_loopback()
    timing = "lockstep" if lockstep else "realtime"
    cmd = [sys.executable, "-m", "robot_ctrl.ros.controller_node", "--ros-args",
           "--params-file", str(config_path("controller.yaml")), "-p", f"robot:={robot}",
           "-p", "command_mode:=effort", "-p", "controller_name:=forward_effort_controller"]
    rclpy.init(args=ros_args())
    proc = None
    try:
        (sim_node,) = create_nodes([SimNode], parameter_overrides=[
            Parameter("robot", value=robot), Parameter("timing_mode", value=timing),
            Parameter("command_mode", value="effort"),
            Parameter("controller_name", value="forward_effort_controller")])
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        stats = sim_node.stats
        phase = {"name": "warmup", "t0": time.perf_counter()}
        mark = {}

        def until() -> bool:
            now = time.perf_counter()
            if proc.poll() is not None:
                raise RuntimeError(f"controller process exited: {proc.stderr.read().decode()[-2000:]}")
            if phase["name"] == "warmup":
                if now - phase["t0"] > 60:
                    raise RuntimeError("no commands from the controller within 60 s")
                if stats.commands >= warmup_commands:
                    with sim_node.lock:
                        stats.latencies.clear()
                        mark.update(wall=now, sim=sim_node.sim.time, steps=sim_node.sim.steps,
                                    missed=stats.missed, fresh=stats.fresh, commands=stats.commands)
                    phase["name"] = "measure"
                return False
            return now - mark["wall"] >= seconds

        spin([sim_node], until=until)
        wall = time.perf_counter() - mark["wall"]
        steps = sim_node.sim.steps - mark["steps"]
        lat = np.array(stats.latencies) * 1e6
        result = {
            "benchmark": "loop_lockstep" if lockstep else "loop",
            "robot": robot,
            "control_rate_hz_target": 1.0 / sim_node.sim.control_dt,
            "rate_hz": steps / wall,
            "wall_s": wall,
            "latency_us_p50": float(np.percentile(lat, 50)) if lat.size else None,
            "latency_us_p99": float(np.percentile(lat, 99)) if lat.size else None,
        }
        if lockstep:
            result["realtime_factor"] = (sim_node.sim.time - mark["sim"]) / wall
        else:
            result["missed_fraction"] = (stats.missed - mark["missed"]) / max(steps, 1)
            result["overruns"] = stats.overruns
        return result
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
        if rclpy.ok():
            rclpy.shutdown()


def bench_safety(robot: str = "panda", mode: str = "effort", steps: int = 4000, falsify_steps: int = 0,
                 seed: int = 0, progress: bool = True) -> dict:
    from robot_ctrl.model import RobotModel
    from robot_ctrl.safety.config import build_filter
    from robot_ctrl.safety.falsify import falsify
    from robot_ctrl.safety.qp import CvxpyBackend

    model = RobotModel.load(robot)
    inputs: list = []
    falsify(model, robot, mode=mode, steps=steps, seed=seed, record=inputs)  # realistic, adversarial inputs
    affinity = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    _one_core()
    try:
        f = build_filter(model, robot, mode=mode, dt=0.002)
        for q, v, u in inputs[:200]:  # warm-up
            f.step(q, v, u)
        step_us, qp_us, residual, rows_kept = [], [], 0.0, []
        for i, (q, v, u) in enumerate(inputs):
            t0 = time.perf_counter()
            out = f.step(q, v, u)
            step_us.append((time.perf_counter() - t0) * 1e6)
            if out.status in ("ok", "relaxed"):
                qp_us.append(out.qp_us)
            if out.status == "ok":
                residual = max(residual, out.residual)
                if i % 20 == 0:
                    rows_kept.append((f.A.copy(), f.b.copy(), np.asarray(u, float).copy()))
        # the cvxpy reference on the same QPs (fewer: it is slow)
        ref = CvxpyBackend(model.n, np.ones(model.n), f.m)
        ref.solve(rows_kept[0][2], rows_kept[0][0], rows_kept[0][1])
        cvx_us, agree = [], 0.0
        daqp = f.backend
        for A, b, u in rows_kept[:150]:
            t0 = time.perf_counter()
            x_ref, ok = ref.solve(u, A, b)
            cvx_us.append((time.perf_counter() - t0) * 1e6)
            x, ok2 = daqp.solve(u, A, b)
            if ok and ok2:
                agree = max(agree, float(np.max(np.abs(x - x_ref)) / max(1.0, np.abs(x_ref).max())))
    finally:
        if affinity:
            os.sched_setaffinity(0, affinity)
    s = np.asarray(step_us)
    result = {
        "benchmark": "safety",
        "robot": robot,
        "mode": mode,
        "steps": len(s),
        "rows": f.m,
        "collision_pairs": f.collision_pairs,
        "step_us_p50": float(np.percentile(s, 50)),
        "step_us_p99": float(np.percentile(s, 99)),
        "step_us_max": float(s.max()),
        "qp_us_p50": float(np.percentile(qp_us, 50)),
        "cvxpy_us_p50": float(np.percentile(cvx_us, 50)),
        "speedup_qp_vs_cvxpy": float(np.percentile(cvx_us, 50) / np.percentile(qp_us, 50)),
        "speedup_step_vs_cvxpy": float(np.percentile(cvx_us, 50) / np.percentile(s, 50)),
        # the same filter step with cvxpy as its QP backend (rows + cvxpy) against this one
        "speedup_filter_vs_cvxpy_filter": float((np.percentile(s, 50) - np.percentile(qp_us, 50)
                                                 + np.percentile(cvx_us, 50)) / np.percentile(s, 50)),
        "daqp_vs_cvxpy_max_rel_diff": agree,
        "max_violation": residual,
        "fallback_fraction": f.fallbacks / len(s),
    }
    if falsify_steps:
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=falsify_steps, desc="falsify", unit="step", mininterval=1.0)
        rep = falsify(model, robot, mode=mode, steps=falsify_steps, seed=seed + 1,
                      progress=(lambda k: bar.update(1)) if bar else None)
        if bar:
            bar.close()
        result.update({f"falsify_{k}": v for k, v in rep.as_dict().items() if k != "mode"})
    return result


def report(result: dict, as_json: bool = False) -> None:
    if as_json:
        print(json.dumps(result))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"robot-ctrl bench {result['benchmark']}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k, v in result.items():
        table.add_row(k, f"{v:.4g}" if isinstance(v, float) else str(v))
    Console().print(table)
