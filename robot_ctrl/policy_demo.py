"""A trained policy through the full ROS graph: `robot-ctrl demo` part 2, `robot-ctrl episodes`.

Composes in one process the nodes `ros2 launch robot_ctrl policy.launch.py` starts as
processes: the simulator in the task's world (lockstep, gated on the policy), the controller
(Cartesian chunks → IK → computed torque), the safety filter (config panda_tasks) and the
policy node with a checkpoint; runs N episodes (the simulator's ~/reset between them, task
seeds seed, seed+1, ...), records a rosbag2/MCAP bag and renders the first episode to a GIF.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np

TASK_SAFETY = "panda_tasks"


def run_policy_episodes(checkpoint: str | Path, out: str | Path, task: str | None = None, episodes: int = 3,
                        seed: int = 2000, video: bool = True, quiet: bool = False, wall_limit_s: float = 900.0,
                        gif_fps: float = 15.0) -> dict:
    from robot_ctrl.demo import _gif_fps

    _gif_fps(gif_fps)  # a bad value stops here, not after the episodes
    os.environ.setdefault("MUJOCO_GL", "egl")
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from geometry_msgs.msg import PoseStamped
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import JointState
    from std_msgs.msg import Bool, Float64MultiArray
    from std_srvs.srv import Trigger
    from trajectory_msgs.msg import MultiDOFJointTrajectory

    from robot_ctrl.learning.base import read_checkpoint
    from robot_ctrl.ros.controller_node import ControllerNode
    from robot_ctrl.ros.env import use_loopback
    from robot_ctrl.ros.policy_node import PolicyNode
    from robot_ctrl.ros.recorder import BagRecorder
    from robot_ctrl.ros.runner import create_nodes, spin
    from robot_ctrl.ros.safety_node import COMPOSED_OVERRIDES, SafetyNode
    from robot_ctrl.ros.sim_node import SimNode
    from robot_ctrl.stack import NOMINAL_TOPIC, controller_name, ros_args

    if episodes < 1:
        raise ValueError(f"episodes must be at least 1, got {episodes}")
    checkpoint = Path(checkpoint)
    meta, _ = read_checkpoint(checkpoint)
    task = task or json.loads(meta.get("spec", "{}")).get("task", "")
    use_loopback()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    bag = out / "bag"
    if bag.exists():
        shutil.rmtree(bag)
    ctrl_topic = f"/{controller_name('effort')}/commands"

    def params(**kw):
        return [Parameter(k, value=v) for k, v in kw.items()]

    rclpy.init(args=ros_args(["policy.yaml"]))
    try:
        sim = create_nodes([SimNode], parameter_overrides=params(
            task=task, task_seed=int(seed), timing_mode="lockstep", lockstep_gate=True, command_mode="effort",
            controller_name=controller_name("effort")))[0]
        ctrl = create_nodes([ControllerNode], parameter_overrides=params(command_mode="effort", policy_liveliness=False),
                            cli_args=["--ros-args", "-r", f"{ctrl_topic}:={NOMINAL_TOPIC}"])[0]
        safety = create_nodes([SafetyNode], parameter_overrides=params(
            config=TASK_SAFETY, command_mode="effort", use_sim_time=True, **COMPOSED_OVERRIDES))[0]
        policy = create_nodes([PolicyNode], parameter_overrides=params(checkpoint=str(checkpoint)))[0]
        horizon_s = sim.task.horizon * policy.dt
        rec_node = rclpy.create_node("recorder")
        topics = {"/joint_states": JointState, "/task/goal": Float64MultiArray, "/task/success": Bool,
                  "/controller/cartesian_trajectory": MultiDOFJointTrajectory, ctrl_topic: Float64MultiArray,
                  NOMINAL_TOPIC: Float64MultiArray, "/safety_filter/metrics": Float64MultiArray,
                  "/diagnostics": DiagnosticArray}
        topics.update({f"/objects/{b}/pose": PoseStamped for b in sim.task.objects})
        from robot_ctrl.ros.common import GOAL_QOS

        # the goal is latched and was published before the recorder subscribed
        recorder = BagRecorder(rec_node, bag, topics, topic_qos={"/task/goal": GOAL_QOS})

        state = {"ep": 0, "results": [], "lengths": [], "t0": time.perf_counter(), "end": None}

        def until() -> bool:
            if time.perf_counter() - state["t0"] > wall_limit_s:
                return True
            if state["end"] is None:
                if sim.task_succeeded or sim.task._success() or sim.sim.time >= horizon_s:
                    # the episode is over: say so on /task/success now (it is published at the
                    # object rate), and give the recorder a moment to receive it. The outcome is
                    # the sim node's latch, i.e. whether any /task/success message of the episode
                    # said True: exactly what the recording (and its converter) holds.
                    sim.freeze()  # no step past the end: the recording ends where the episode did
                    sim._publish_task()
                    state["end"] = (bool(sim.task_succeeded), sim.sim.time, time.perf_counter() + 0.2)
                return False
            ok, t_end, wall_end = state["end"]
            if time.perf_counter() < wall_end:
                return False
            state["end"] = None
            state["results"].append(ok)
            state["lengths"].append(t_end)
            state["ep"] += 1
            if state["ep"] >= episodes:
                return True
            sim._on_reset(Trigger.Request(), Trigger.Response())
            return False

        wall0 = time.perf_counter()
        spin([sim, ctrl, safety, policy, rec_node], until=until)
        wall = time.perf_counter() - wall0
        recorder.close()
        latency = np.array(policy.latency_ms) if policy.latency_ms else np.zeros(1)
        safety_counts = dict(safety.counts)
        policy_counts = dict(policy.counts)
        robot, objects, kind = sim.sim.robot, tuple(sim.task.objects), policy.policy.kind
    finally:
        if rclpy.ok():
            rclpy.shutdown()

    results = state["results"]
    summary = {
        "ok": len(results) == episodes and policy_counts["rejected_observations"] == 0,
        "task": task, "policy": kind, "checkpoint": str(checkpoint), "episodes": len(results),
        "successes": int(sum(results)), "success_rate": float(np.mean(results)) if results else 0.0,
        "per_episode": results, "episode_sim_s": state["lengths"], "seeds": [seed + k for k in range(len(results))],
        "wall_time_s": wall, "sim_time_s": float(sum(state["lengths"])),
        "chunks": policy_counts["chunks"], "chunk_ms_p50": float(np.percentile(latency, 50)),
        "chunk_ms_p99": float(np.percentile(latency, 99)), "policy_counts": policy_counts,
        "safety_counts": safety_counts, "bag": str(bag),
    }
    if video:
        summary["video"] = _episode_gif(bag, robot, objects, task, seed, out / f"{task}.gif", gif_fps)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    if not quiet:
        print(f"{kind} on {task} through the ROS graph: {summary['successes']}/{summary['episodes']} episodes "
              f"succeeded (seeds {seed}..{seed + len(results) - 1}); chunk inference p50 "
              f"{summary['chunk_ms_p50']:.1f} ms; {summary['sim_time_s']:.1f} s simulated in {wall:.1f} s; "
              f"safety filter: {safety_counts['relaxed']} relaxed solves, {safety_counts['brakes']} brakes; {out}")
    return summary


def _episode_gif(bag: Path, robot, objects, task: str, seed: int, path: Path, fps: float = 15.0) -> str | None:
    """The first episode of the bag as a GIF, with the task's objects (and target) in place."""
    import gymnasium as gym

    from robot_ctrl.io.bag import read_joint_states, read_topics
    from robot_ctrl.tasks import TASKS
    from robot_ctrl.viz import RenderUnavailable, render_gif

    js = read_joint_states(bag, joint_names=robot.joint_names)
    t = js["t"]
    back = np.flatnonzero(np.diff(t) < 0)
    end = int(back[0]) + 1 if len(back) else len(t)
    t, q = t[:end], js["q"][:end]
    env = gym.make(TASKS[task]).unwrapped
    env.reset(seed=seed)
    scene_state = {"objects": {}, "sites": {}, "bodies": {}}
    if hasattr(env, "target") and "target" in [env.sim.model.site(i).name for i in range(env.sim.model.nsite)]:
        scene_state["sites"]["target"] = list(env.target[:2])
    if task == "peg_in_hole":
        scene_state["bodies"]["hole"] = list(env.hole)
    msgs = read_topics(bag, [f"/objects/{b}/pose" for b in objects])
    for b in objects:
        rows = msgs.get(f"/objects/{b}/pose", [])
        st = np.array([m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 for _, m in rows])
        P = np.array([[m.pose.position.x, m.pose.position.y, m.pose.position.z, m.pose.orientation.w,
                       m.pose.orientation.x, m.pose.orientation.y, m.pose.orientation.z] for _, m in rows])
        if not len(P):
            continue
        first = int(np.searchsorted(np.diff(st) < 0, True)) + 1 if np.any(np.diff(st) < 0) else len(st)
        st, P = st[:first], P[:first]
        idx = np.clip(np.searchsorted(st, t, side="right") - 1, 0, len(st) - 1)
        scene_state["objects"][b] = P[idx]
    from robot_ctrl.demo import _gif_fps

    fps = _gif_fps(fps)
    every = max(1, int(round(1.0 / (fps * np.median(np.diff(t)))))) if len(t) > 1 else 1
    try:
        render_gif(robot, q, path, fps=fps, scene=env.scene, every=every, **scene_state)
        return str(path)
    except RenderUnavailable as exc:
        print(f"robot-ctrl: skipping the GIF: {exc}")
        return None
