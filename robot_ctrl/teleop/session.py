"""`robot-ctrl teleop` and `robot-ctrl record`: a device drives the simulated arm through the full
graph, composed in one process (the nodes `ros2 launch` would start): the simulator in a task
world in real time, the controller, the safety filter, the policy node (prompt_mode teleop, or
shared / guidance / goal with a checkpoint) and the teleop node with the device.

Recording samples the graph every policy step (`dt`, sim time), as the scripted collection
does: the observation (`build_observation` on the newest joint state, object poses and goal),
the action label (the published chunk's hand target for the next step) and the intervention
flag of that chunk (/teleop/intervening: true when the operator commanded it). An episode ends
at the task's success or its horizon; the simulator then resets to the next seed. Successful
episodes go into the dataset (the learning issue's zarr format, `source: teleop`), failed ones
too with `keep_failures` (flagged in meta/success).
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

TASK_SAFETY = "panda_tasks"


def run_session(device: str, device_args: dict | None = None, task: str = "reach", checkpoint: str | None = None,
                prompt_mode: str = "teleop", duration: float | None = None, record: str | Path | None = None,
                episodes: int | None = None, keep_failures: bool = False, seed: int = 3000,
                policy_params: dict | None = None, teleop_params: dict | None = None, quiet: bool = False) -> dict:
    os.environ.setdefault("MUJOCO_GL", "egl")
    import rclpy
    from rclpy.parameter import Parameter
    from std_msgs.msg import Bool
    from std_srvs.srv import Trigger
    from trajectory_msgs.msg import MultiDOFJointTrajectory

    from robot_ctrl.control.cartesian import rot6d_from_matrix
    from robot_ctrl.ros.common import rotation_from_quaternion, stamp_to_sec
    from robot_ctrl.ros.controller_node import ControllerNode
    from robot_ctrl.ros.env import use_loopback
    from robot_ctrl.ros.policy_node import PolicyNode
    from robot_ctrl.ros.runner import create_nodes, spin
    from robot_ctrl.ros.safety_node import COMPOSED_OVERRIDES, SafetyNode
    from robot_ctrl.ros.sim_node import SimNode
    from robot_ctrl.ros.teleop_node import TeleopNode
    from robot_ctrl.stack import NOMINAL_TOPIC, controller_name, ros_args

    if prompt_mode != "teleop" and not checkpoint:
        raise ValueError(f"prompt_mode '{prompt_mode}' needs a policy checkpoint")
    use_loopback()
    ctrl_topic = f"/{controller_name('effort')}/commands"

    def params(**kw):
        return [Parameter(k, value=v) for k, v in kw.items()]

    rclpy.init(args=ros_args(["policy.yaml", "teleop.yaml"]))
    writer = None
    try:
        sim = create_nodes([SimNode], parameter_overrides=params(
            task=task, task_seed=int(seed), timing_mode="realtime", command_mode="effort",
            controller_name=controller_name("effort")))[0]
        ctrl = create_nodes([ControllerNode], parameter_overrides=params(command_mode="effort", policy_liveliness=False),
                            cli_args=["--ros-args", "-r", f"{ctrl_topic}:={NOMINAL_TOPIC}"])[0]
        safety = create_nodes([SafetyNode], parameter_overrides=params(
            config=TASK_SAFETY, command_mode="effort", use_sim_time=True, **COMPOSED_OVERRIDES))[0]
        pol_kw = {"prompt_mode": prompt_mode, **(policy_params or {})}
        if checkpoint:
            pol_kw["checkpoint"] = str(checkpoint)
        policy = create_nodes([PolicyNode], parameter_overrides=params(**pol_kw))[0]
        # goal mode: the operator places the goal with the clutch pose form (/teleop/pose)
        teleop_kw = {"clutch_pose": prompt_mode == "goal", **(teleop_params or {})}
        teleop = create_nodes([TeleopNode], parameter_overrides=params(
            device=device, device_args=json.dumps(device_args or {}), **teleop_kw))[0]
        env = sim.task
        dt = 0.1
        horizon_s = env.horizon * dt

        rec = rclpy.create_node("teleop_recorder")
        latest = {"chunk": None, "intervening": False}
        rec.create_subscription(MultiDOFJointTrajectory, "/controller/cartesian_trajectory",
                                lambda m: latest.__setitem__("chunk", m), 10)
        rec.create_subscription(Bool, "/teleop/intervening", lambda m: latest.__setitem__("intervening", m.data), 10)
        if record is not None:
            from robot_ctrl.learning.dataset import DatasetWriter

            writer = DatasetWriter(record, task, env.obs_size, 10, dt, source="teleop", append=Path(record).exists())

        ep = {"obs": [], "act": [], "inter": [], "t_next": 0.0}
        state = {"results": [], "lengths": [], "interventions": [], "discarded": 0, "t0": time.perf_counter()}

        def label(t: float):
            """The hand target the newest chunk commands for time t + dt (10,), or None."""
            m = latest["chunk"]
            if m is None or not m.points:
                return None
            k = int(np.clip(round((t + dt - stamp_to_sec(m.header.stamp)) / dt) - 1, 0, len(m.points) - 1))
            hand, grip = m.points[k].transforms
            R = rotation_from_quaternion(hand.rotation.x, hand.rotation.y, hand.rotation.z, hand.rotation.w)
            return np.concatenate([[hand.translation.x, hand.translation.y, hand.translation.z],
                                   rot6d_from_matrix(R), [grip.translation.x]])

        def end_episode(ok: bool, t: float) -> None:
            state["results"].append(ok)
            state["lengths"].append(t)
            state["interventions"].append(int(np.sum(ep["inter"])))
            if writer is not None and ep["obs"]:
                if ok or keep_failures:
                    writer.add_episode(np.array(ep["obs"]), np.array(ep["act"]), ok, np.array(ep["inter"]))
                else:
                    state["discarded"] += 1
            ep.update(obs=[], act=[], inter=[], t_next=0.0)
            sim._on_reset(Trigger.Request(), Trigger.Response())

        def until() -> bool:
            state["device"] = (teleop.device.status, teleop.device.error)  # before the node closes it
            wall = time.perf_counter() - state["t0"]
            if duration is not None and wall > duration:
                return True
            t = sim.sim.time
            if t >= ep["t_next"]:
                ep["t_next"] = t + dt
                a = label(t)
                if a is not None and np.all(np.isfinite(a)):
                    ep["obs"].append(env._obs())
                    ep["act"].append(a)
                    ep["inter"].append(bool(latest["intervening"]))
            ok = bool(env._success())
            if ok or t >= horizon_s:
                end_episode(ok, t)
                latest["chunk"] = None
                if episodes is not None and len(state["results"]) >= episodes:
                    return True
            return False

        wall0 = time.perf_counter()
        spin([sim, ctrl, safety, policy, teleop, rec], until=until)
        wall = time.perf_counter() - wall0
        device_status, device_error = state.get("device", (teleop.device.status, teleop.device.error))
        policy_counts, safety_counts = dict(policy.counts), dict(safety.counts)
        teleop_counts = dict(teleop.counts)
    finally:
        if rclpy.ok():
            rclpy.shutdown()
    dataset = None
    if writer is not None and state["results"]:
        try:
            dataset = str(writer.close().path)
        except Exception as e:  # noqa: BLE001 - nothing recorded: say so instead of failing the session
            dataset = f"(no dataset written: {e})"
    res = state["results"]
    summary = {"device": device, "device_status": device_status, "device_error": device_error, "task": task,
               "prompt_mode": prompt_mode, "episodes": len(res), "successes": int(sum(res)),
               "per_episode": res, "episode_sim_s": state["lengths"], "interventions": state["interventions"],
               "discarded": state["discarded"], "wall_time_s": wall, "dataset": dataset,
               "policy_counts": policy_counts, "safety_counts": safety_counts, "teleop_counts": teleop_counts}
    if not quiet:
        print(f"teleop ({device}, {prompt_mode}) on {task}: {summary['successes']}/{summary['episodes']} episodes "
              f"succeeded in {wall:.1f} s; interventions per episode {state['interventions']}"
              + (f"; dataset {dataset}" if dataset else "")
              + (f"; device: {device_error}" if device_error else ""))
    return summary

