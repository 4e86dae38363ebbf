"""`make demo` / `robot-ctrl demo`: the Panda in MuJoCo driven through real ROS 2 nodes, headless.

The simulator, controller and a demo driver (a stand-in policy sending overlapping 16-point
action chunks through a waypoint tour) run as rclpy nodes in one process; a recorder node
writes every topic to a rosbag2 MCAP bag. Afterwards the bag is read back to compute the
summary (tracking error, loop rate, real-time factor), plot joint tracking (PNG) and render
a GIF with MuJoCo offscreen (MUJOCO_GL=egl).
"""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np


def run_demo(out="out/demo", robot="panda", mode="effort", timing="realtime", video=True,
             segment_s=2.0, quiet=False) -> dict:
    os.environ.setdefault("MUJOCO_GL", "egl")
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.parameter import Parameter
    from rosgraph_msgs.msg import Clock
    from sensor_msgs.msg import JointState
    from std_msgs.msg import Float64MultiArray
    from trajectory_msgs.msg import JointTrajectory

    from robot_ctrl.io.bag import read_joint_reference, read_joint_states
    from robot_ctrl.ros.env import use_loopback
    from robot_ctrl.ros.recorder import BagRecorder
    from robot_ctrl.ros.runner import spin
    from robot_ctrl.stack import StackOptions, controller_name, make_nodes, ros_args

    use_loopback()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    bag = out / "bag"
    if bag.exists():
        shutil.rmtree(bag)
    ctrl_topic = f"/{controller_name(mode)}/commands"
    rclpy.init(args=ros_args())
    try:
        opts = StackOptions(robot, mode, timing)
        sim_node, ctrl_node, driver = make_nodes(opts, driver=True)
        driver.params["segment_s"] = float(segment_s)
        rec_node = rclpy.create_node("recorder")
        recorder = BagRecorder(rec_node, bag, {
            "/joint_states": JointState,
            "/clock": Clock,
            ctrl_topic: Float64MultiArray,
            "/controller/reference": JointState,
            "/controller/joint_trajectory": JointTrajectory,
            "/diagnostics": DiagnosticArray,
        })
        wall0 = time.perf_counter()
        sim0 = sim_node.sim.time
        deadline = wall0 + 600.0
        spin([sim_node, ctrl_node, driver, rec_node],
             until=lambda: driver.done or time.perf_counter() > deadline)
        wall = time.perf_counter() - wall0
        sim_time = sim_node.sim.time - sim0
        recorder.close()
        sim_stats, counts = sim_node.stats, recorder.counts
        rejected = ctrl_node.rejected_trajectories + sim_node.sim.rejected
        chunks = driver.chunks_sent
        model = sim_node.sim.robot
    finally:
        if rclpy.ok():
            rclpy.shutdown()

    names = model.joint_names
    js = read_joint_states(bag, joint_names=names)
    ref = read_joint_reference(bag, "/controller/reference", joint_names=names)
    common, i_js, i_ref = np.intersect1d(js["t"], ref["t"], return_indices=True)
    q, q_ref = js["q"][i_js], ref["q"][i_ref]
    err = q_ref - q
    rms_per_joint = np.sqrt(np.mean(err**2, axis=0))
    summary = {
        "ok": bool(driver.done and rejected == 0 and np.all(np.isfinite(err))),
        "robot": model.name,
        "command_mode": mode,
        "timing_mode": timing,
        "sim_time_s": sim_time,
        "wall_time_s": wall,
        "realtime_factor": sim_time / wall if wall > 0 else None,
        "loop_rate_hz_sim": counts.get(ctrl_topic, 0) / sim_time if sim_time > 0 else None,
        "loop_rate_hz_wall": counts.get(ctrl_topic, 0) / wall if wall > 0 else None,
        "missed_fraction": (sim_stats.missed / max(sim_node.sim.steps, 1)) if timing == "realtime" else 0.0,
        "chunks_sent": chunks,
        "rejected_messages": rejected,
        "tracking_rms_rad": float(np.sqrt(np.mean(err**2))),
        "tracking_max_abs_rad": float(np.max(np.abs(err))),
        "tracking_rms_per_joint_rad": dict(zip(names, map(float, rms_per_joint))),
        "messages": counts,
        "bag": str(bag),
    }

    from robot_ctrl.viz import RenderUnavailable, plot_tracking, render_gif

    t = common - common[0]
    plot_png = out / "tracking.png"
    plot_tracking(t, q, q_ref, names, plot_png, title=f"{model.name} {mode} {timing}: joint tracking")
    summary["plot"] = str(plot_png)
    if video:
        fps = 15.0
        every = max(1, int(round(1.0 / (fps * np.median(np.diff(js["t"]))))))
        try:
            gif = out / "demo.gif"
            render_gif(model, js["q"][::every], gif, fps=fps)
            summary["video"] = str(gif)
        except RenderUnavailable as exc:
            summary["video"] = None
            print(f"robot-ctrl demo: skipping the GIF: {exc}")
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    if not quiet:
        print_summary(summary)
    return summary


def print_summary(s: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"robot_ctrl demo: {s['robot']} ({s['command_mode']}, {s['timing_mode']})")
    table.add_column("")
    table.add_column("", justify="right")
    rows = [
        ("tracking error RMS", f"{s['tracking_rms_rad'] * 1e3:.3f} mrad"),
        ("tracking error max", f"{s['tracking_max_abs_rad'] * 1e3:.3f} mrad"),
        ("loop rate (sim time)", f"{s['loop_rate_hz_sim']:.1f} Hz"),
        ("loop rate (wall)", f"{s['loop_rate_hz_wall']:.1f} Hz"),
        ("missed periods", f"{100 * s['missed_fraction']:.3f} %"),
        ("sim real-time factor", f"{s['realtime_factor']:.2f}"),
        ("sim / wall time", f"{s['sim_time_s']:.2f} s / {s['wall_time_s']:.2f} s"),
        ("chunks sent / rejected msgs", f"{s['chunks_sent']} / {s['rejected_messages']}"),
        ("MCAP bag", s["bag"]),
        ("tracking plot", s["plot"]),
        ("video", str(s.get("video"))),
        ("result", "OK" if s["ok"] else "FAILED"),
    ]
    for k, v in rows:
        table.add_row(k, v)
    Console().print(table)
