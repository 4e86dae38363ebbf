"""`make demo` / `robot-ctrl demo`: the Panda in MuJoCo driven through real ROS 2 nodes, headless.

The simulator, controller, safety filter and a demo driver (a stand-in policy sending
overlapping 16-point action chunks through a waypoint tour) run as rclpy nodes in one process;
a recorder node writes every topic to a rosbag2 MCAP bag. The tour is deliberately unsafe in
two places: one waypoint puts the hand 12 cm below the table top, another inside the keep-out
obstacle of the safety config; the safety filter makes both safe. Afterwards the bag is read
back to compute the summary (tracking error where the filter let the command through, loop
rate, real-time factor, closest approach to the table and obstacle, barrier values and
interventions), plot joint tracking and the filter's work (PNG) and render a GIF with MuJoCo
offscreen (MUJOCO_GL=egl).
"""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np


def demo_waypoints(robot, safety_config: str = "") -> tuple[np.ndarray, list[str]]:
    """A tour around home plus two unsafe waypoints: the hand through the table and into the
    safety config's obstacle (when it has one). Returns (waypoints, labels)."""
    from robot_ctrl.control.cartesian import DiffIK
    from robot_ctrl.control.waypoints import default_waypoints
    from robot_ctrl.safety.config import load_safety_config

    ik = DiffIK(robot, k_rot=0.0, iters=300)  # position only: any orientation will do

    def ik_position(p_target, q0):
        return ik.solve(q0, p_target, np.eye(3))

    span = robot.q_max - robot.q_min
    # the safe part of the tour stays 10% inside every joint range (inside the safety margins)
    tour = np.clip(default_waypoints(robot, count=3), robot.q_min + 0.1 * span, robot.q_max - 0.1 * span)
    W = [robot.home, tour[1], tour[2], robot.home]
    labels = ["home", "tour", "tour", "home"]
    W += [ik_position(np.array([0.5, 0.0, -0.12]), robot.home), robot.home]
    labels += ["through the table", "home"]
    world = (load_safety_config(safety_config or robot.name).constraints.get("collision") or {}).get("world", {})
    if "obstacle" in world:
        W += [ik_position(np.asarray(world["obstacle"]["pos"], float), robot.home), robot.home]
        labels += ["into the obstacle", "home"]
    return np.array(W), labels


def _gif_fps(fps: float) -> float:
    fps = float(fps)
    if not (0.5 <= fps <= 60.0):
        raise ValueError(f"gif_fps must be in [0.5, 60] frames per second, got {fps}")
    return fps


def run_demo(out="out/demo", robot="panda", mode="effort", timing="realtime", video=True,
             segment_s=2.0, quiet=False, gif_fps: float = 15.0) -> dict:
    _gif_fps(gif_fps)  # a bad value stops here, not after the run
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
    from robot_ctrl.stack import NOMINAL_TOPIC, StackOptions, controller_name, make_nodes, ros_args

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
        sim_node, ctrl_node, safety_node, driver = make_nodes(opts, driver=True)
        driver.params["segment_s"] = float(segment_s)
        driver.waypoints, labels = demo_waypoints(sim_node.sim.robot)
        rec_node = rclpy.create_node("recorder")
        recorder = BagRecorder(rec_node, bag, {
            "/joint_states": JointState,
            "/clock": Clock,
            ctrl_topic: Float64MultiArray,
            NOMINAL_TOPIC: Float64MultiArray,
            "/safety_filter/metrics": Float64MultiArray,
            "/controller/reference": JointState,
            "/controller/joint_trajectory": JointTrajectory,
            "/diagnostics": DiagnosticArray,
        })
        wall0 = time.perf_counter()
        sim0 = sim_node.sim.time
        deadline = wall0 + 600.0
        spin([sim_node, ctrl_node, safety_node, driver, rec_node],
             until=lambda: driver.done or time.perf_counter() > deadline)
        wall = time.perf_counter() - wall0
        sim_time = sim_node.sim.time - sim0
        recorder.close()
        sim_stats, counts = sim_node.stats, recorder.counts
        rejected = ctrl_node.rejected_trajectories + sim_node.sim.rejected + \
            safety_node.counts["rejected_commands"] + safety_node.counts["rejected_states"]
        safety_counts = dict(safety_node.counts)
        safety_filter = safety_node.filter
        chunks = driver.chunks_sent
        path_t0 = driver.path.t0
        model = sim_node.sim.robot
    finally:
        if rclpy.ok():
            rclpy.shutdown()

    names = model.joint_names
    js = read_joint_states(bag, joint_names=names)
    ref = read_joint_reference(bag, "/controller/reference", joint_names=names)
    safety = safety_report(model, safety_filter, js, bag)
    common, i_js, i_ref = np.intersect1d(js["t"], ref["t"], return_indices=True)
    q, q_ref = js["q"][i_js], ref["q"][i_ref]
    err = q_ref - q
    # tracking on the safe part of the tour (segments between two safe waypoints): the filter
    # holds the arm back on purpose on the way to the unsafe ones and while it recovers
    free = np.zeros(len(common), bool)
    for k in range(len(labels) - 1):
        if "through" not in labels[k] + labels[k + 1] and "into" not in labels[k] + labels[k + 1]:
            t_a = path_t0 + k * float(segment_s)
            free |= (common >= t_a) & (common < t_a + float(segment_s))
    err_free = err[free] if free.any() else err
    rms_per_joint = np.sqrt(np.mean(err_free**2, axis=0))
    summary = {
        "ok": bool(driver.done and rejected == 0 and np.all(np.isfinite(err)) and safety["violations"] == 0),
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
        "waypoints": labels,
        "rejected_messages": rejected,
        "tracking_rms_rad": float(np.sqrt(np.mean(err_free**2))),
        "tracking_max_abs_rad": float(np.max(np.abs(err_free))),
        "tracking_rms_per_joint_rad": dict(zip(names, map(float, rms_per_joint))),
        "tracking_samples_safe_tour": int(free.sum()),
        "tracking_rms_all_rad": float(np.sqrt(np.mean(err**2))),
        "safety": {k: v for k, v in safety.items() if isinstance(v, (int, float))},
        "safety_counts": safety_counts,
        "messages": counts,
        "bag": str(bag),
    }

    from robot_ctrl.viz import RenderUnavailable, plot_tracking, render_gif

    t = common - common[0]
    plot_png = out / "tracking.png"
    plot_tracking(t, q, q_ref, names, plot_png, title=f"{model.name} {mode} {timing}: joint tracking")
    summary["plot"] = str(plot_png)
    safety_png = out / "safety.png"
    plot_safety(safety, safety_png, title=f"{model.name} {mode}: safety filter at work")
    summary["safety_plot"] = str(safety_png)
    if video:
        fps = _gif_fps(gif_fps)
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


def safety_report(model, f, js, bag) -> dict:
    """Closest approaches measured on the recorded joint states (the simulator's truth), and
    the filter's barrier values and interventions from ~/metrics."""
    from robot_ctrl.io.bag import read_topics
    from robot_ctrl.safety.constraints import CollisionDistance
    from robot_ctrl.safety.geometry import Kinematics

    coll = next((c for c in f.constraints if isinstance(c, CollisionDistance)), None)
    kin = Kinematics(coll.set.robot if coll is not None else model)  # the filter's own model and data
    q = js["q"]
    every = max(1, len(q) // 2000)
    t_s, z, dist = js["t"][::every], [], []
    for qk in q[::every]:
        z.append(model.fk(qk)[2, 3])
        if coll is not None:
            kin.update(qk)
            dist.append(float(coll.set.compute().d.min()))
    margin = np.min(np.minimum(q - model.q_min, model.q_max - q))
    m = read_topics(bag, ["/safety_filter/metrics"]).get("/safety_filter/metrics", [])
    M = np.array([msg.data for _, msg in m], dtype=float).reshape(-1, 5)
    t_m = M[:, 0] if len(M) else np.zeros(0)
    interv = M[:, 2] if len(M) else np.zeros(0)
    status = M[:, 4] if len(M) else np.zeros(0)
    min_dist = float(np.min(dist)) if dist else float("nan")
    violations = int(margin < -1e-3) + int(bool(dist) and min_dist < -2e-3)

    return {
        "t": t_s.tolist(), "tcp_z": [float(x) for x in z], "min_distance": dist,
        "metrics_t": t_m.tolist(), "h_min": M[:, 1].tolist() if len(M) else [],
        "intervention": interv.tolist(), "status": status.tolist(),
        "min_tcp_height_m": float(np.min(z)), "min_collision_distance_m": min_dist,
        "min_joint_margin_rad": float(margin), "max_intervention": float(interv.max(initial=0.0)),
        "intervened_fraction": float(np.mean(interv > 0.5)) if len(interv) else 0.0,
        "relaxed_fraction": float(np.mean(status == 1.0)) if len(status) else 0.0,
        "min_barrier": float(np.min(M[:, 1])) if len(M) else float("nan"),
        "violations": violations,
    }


def plot_safety(s: dict, path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t0 = s["metrics_t"][0] if s["metrics_t"] else (s["t"][0] if s["t"] else 0.0)
    fig, ax = plt.subplots(3, 1, figsize=(9, 7), sharex=True)
    tm = np.asarray(s["metrics_t"]) - t0
    ax[0].plot(tm, s["h_min"], lw=0.8)
    ax[0].axhline(0.0, color="r", lw=0.8)
    ax[0].set_ylabel("min barrier h")
    ax[0].set_yscale("symlog", linthresh=1e-2)
    ax[1].plot(tm, s["intervention"], lw=0.8, color="tab:orange")
    ax[1].set_ylabel("‖u − u_nom‖")
    ts = np.asarray(s["t"]) - t0
    ax[2].plot(ts, s["tcp_z"], label="hand height above the table (m)")
    if s["min_distance"]:
        ax[2].plot(ts, s["min_distance"], label="closest collision pair (m)")
    ax[2].axhline(0.0, color="r", lw=0.8)
    ax[2].set_ylabel("m")
    ax[2].set_xlabel("time (s)")
    ax[2].legend(loc="upper right", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def print_summary(s: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"robot_ctrl demo: {s['robot']} ({s['command_mode']}, {s['timing_mode']})")
    table.add_column("")
    table.add_column("", justify="right")
    rows = [
        ("tracking error RMS (safe tour)", f"{s['tracking_rms_rad'] * 1e3:.3f} mrad"),
        ("lowest hand height", f"{s['safety']['min_tcp_height_m'] * 1e3:.1f} mm"),
        ("closest collision pair", f"{s['safety']['min_collision_distance_m'] * 1e3:.1f} mm"),
        ("max intervention", f"{s['safety']['max_intervention']:.1f}"),
        ("commands changed by the filter", f"{100 * s['safety']['intervened_fraction']:.1f} %"),
        ("tracking error max (safe tour)", f"{s['tracking_max_abs_rad'] * 1e3:.3f} mrad"),
        ("loop rate (sim time)", f"{s['loop_rate_hz_sim']:.1f} Hz"),
        ("loop rate (wall)", f"{s['loop_rate_hz_wall']:.1f} Hz"),
        ("missed periods", f"{100 * s['missed_fraction']:.3f} %"),
        ("sim real-time factor", f"{s['realtime_factor']:.2f}"),
        ("sim / wall time", f"{s['sim_time_s']:.2f} s / {s['wall_time_s']:.2f} s"),
        ("chunks sent / rejected msgs", f"{s['chunks_sent']} / {s['rejected_messages']}"),
        ("MCAP bag", s["bag"]),
        ("tracking plot", s["plot"]),
        ("safety plot", s["safety_plot"]),
        ("video", str(s.get("video"))),
        ("result", "OK" if s["ok"] else "FAILED"),
    ]
    for k, v in rows:
        table.add_row(k, v)
    Console().print(table)
