"""Policy node: runs a trained chunk policy (CARP, diffusion, MLP) in the ROS graph.

Subscribes  /joint_states                sensor_msgs/JointState
            /objects/<body>/pose         geometry_msgs/PoseStamped, one per object of the task
                                         (the simulator's stand-in for perception)
            /task/goal                   std_msgs/Float64MultiArray (latched): the goal vector
Publishes   <trajectory_topic>           trajectory_msgs/MultiDOFJointTrajectory (Cartesian
                                         policies: hand pose + gripper as a joint) or
                                         JointTrajectory (joint-space policies), one chunk per
                                         policy period, stamped with the observation's time
            /policy/ready_until          std_msgs/Float64: the sim time the published chunks cover
                                         (the simulator's lockstep gate waits on it)
            /diagnostics                 diagnostic_msgs/DiagnosticArray (1 Hz)
Service     ~/reset                      std_srvs/Trigger: forget the observation history

Timing follows the state stamps (sim time in simulation): a chunk is predicted from the first
state at or after the previous chunk's stamp + action_steps·dt, so the policy runs at its
training rate whatever the wall clock does. Chunk point k is the target for stamp + (k+1)·dt,
as in the Gymnasium environment. The controller starts each chunk from its current reference
(C1 joins: no jump where chunks meet) and the safety filter stays in between.

The observation is `robot_ctrl.tasks.base.build_observation` on the newest joint state, object
poses and goal: the same function the environment uses. An observation that is incomplete
(no goal or pose yet) waits; one with NaN/Inf is rejected and counted, and the node holds: it
publishes no chunk (the controller keeps the last good one) and never a non-finite chunk.
"""
from __future__ import annotations

import time

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import PoseStamped, Transform
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64, Float64MultiArray
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint, MultiDOFJointTrajectory, MultiDOFJointTrajectoryPoint

from robot_ctrl.ros.common import (
    GOAL_QOS,
    STATE_QOS,
    TRAJECTORY_QOS,
    JointOrder,
    JointStateError,
    Param,
    ParameterError,
    declare_parameters,
    publish_status,
    quaternion_from_rotation,
    rotation_from_quaternion,
    sec_to_stamp,
    stamp_to_sec,
)

PARAMS = {
    "checkpoint": Param("", "Policy checkpoint (.safetensors) from `robot-ctrl train`; empty: the committed "
                            "CARP pick-and-place checkpoint (checkpoints/carp_pick_place.safetensors)."),
    "robot": Param("panda", "Robot name (config/robots/<robot>.yaml) or path to a robot YAML."),
    "task": Param("", "Task whose observation to build; empty: the task the checkpoint was trained on."),
    "trajectory_topic": Param("", "Where chunks go; empty: /controller/cartesian_trajectory for Cartesian "
                                  "policies, /controller/joint_trajectory for joint-space ones."),
    "threads": Param(1, "torch CPU threads for inference.", positive=True),
}


def _pose(msg: PoseStamped):
    p, o = msg.pose.position, msg.pose.orientation
    pos = np.array([p.x, p.y, p.z])
    try:
        return pos, rotation_from_quaternion(o.x, o.y, o.z, o.w)
    except ValueError:
        return pos, np.full((3, 3), np.nan)  # not a rotation: the observation check rejects it


class PolicyNode(Node):
    def __init__(self, **kwargs):
        super().__init__("policy", **kwargs)
        import torch

        from robot_ctrl.control.cartesian import DiffIK
        from robot_ctrl.learning import load_policy
        from robot_ctrl.learning.base import read_checkpoint
        from robot_ctrl.model import RobotModel
        from robot_ctrl.tasks import TASK_CLASSES, TASKS
        from robot_ctrl.tasks.base import ACTION_SIZE

        p = declare_parameters(self, PARAMS)
        self.params = p
        torch.set_num_threads(int(p["threads"]))
        if not p["checkpoint"]:
            from robot_ctrl.paths import checkpoint_path

            p["checkpoint"] = str(checkpoint_path("carp_pick_place.safetensors"))
        import json

        meta, _ = read_checkpoint(p["checkpoint"])
        task = p["task"] or json.loads(meta.get("spec", "{}")).get("task", "")
        if task not in TASKS:
            raise ParameterError(f"task '{task}' is not a robot_ctrl task ({', '.join(TASKS)})")
        self.task_cls = TASK_CLASSES[task]
        self.robot = RobotModel.load(p["robot"])
        self.ik = DiffIK(self.robot)
        self.objects = tuple(self.task_cls.objects)
        obs_size = 2 * self.robot.n + 10 + 9 * len(self.objects) + self.task_cls.goal_size
        self.policy = load_policy(p["checkpoint"], expect_obs_size=obs_size)
        if self.policy.spec.act_size == ACTION_SIZE:
            self.cartesian = True
        elif self.policy.spec.act_size == self.robot.n:
            self.cartesian = False
        else:
            raise ParameterError(f"{p['checkpoint']}: action size {self.policy.spec.act_size} is neither Cartesian "
                                 f"({ACTION_SIZE}) nor joint-space ({self.robot.n} joints)")
        self.task = task
        self.dt = float(self.policy.spec.dt)
        self.period = self.policy.spec.action_steps * self.dt
        self.order = JointOrder(self.robot.joint_names)
        self.poses: dict[str, tuple] = {}
        self.goal: np.ndarray | None = None
        self.t_next = -np.inf
        self.t_last = -np.inf
        self.counts = {"chunks": 0, "rejected_observations": 0, "rejected_states": 0, "waiting": 0,
                       "policy_errors": 0, "time_resets": 0}
        self.latency_ms: list[float] = []

        topic = p["trajectory_topic"] or ("/controller/cartesian_trajectory" if self.cartesian
                                          else "/controller/joint_trajectory")
        self.chunk_pub = self.create_publisher(MultiDOFJointTrajectory if self.cartesian else JointTrajectory,
                                               topic, TRAJECTORY_QOS)
        self.ready_pub = self.create_publisher(Float64, "/policy/ready_until", STATE_QOS)
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        for b in self.objects:
            self.create_subscription(PoseStamped, f"/objects/{b}/pose", lambda m, b=b: self._on_pose(b, m), STATE_QOS)
        self.create_subscription(Float64MultiArray, "/task/goal", self._on_goal, GOAL_QOS)
        self.create_subscription(JointState, "/joint_states", self._on_state, STATE_QOS)
        self.create_service(Trigger, "~/reset", self._on_reset)
        self.create_timer(1.0, self._publish_diagnostics)
        self.get_logger().info(f"{self.policy.kind} policy for {task} from {p['checkpoint']}: chunks of "
                               f"{self.policy.spec.horizon} x {self.dt:.3f} s every {self.period:.2f} s on {topic}")

    # -- inputs --------------------------------------------------------------------------
    def _on_pose(self, body: str, msg: PoseStamped) -> None:
        self.poses[body] = _pose(msg)

    def _on_goal(self, msg: Float64MultiArray) -> None:
        g = np.asarray(msg.data, dtype=float)
        if g.shape != (self.task_cls.goal_size,):
            self.counts["rejected_observations"] += 1
            self.get_logger().error(f"goal must have {self.task_cls.goal_size} values, got {g.shape[0]}",
                                    throttle_duration_sec=1.0)
            return
        self.goal = g
        self._restart()

    def _restart(self) -> None:
        self.policy.reset()
        self.t_next = -np.inf

    def _on_reset(self, request, response):
        self._restart()
        response.success, response.message = True, "observation history cleared"
        return response

    def _on_state(self, msg: JointState) -> None:
        try:
            q, v = self.order.state(msg)
        except JointStateError as exc:
            self.counts["rejected_states"] += 1
            self.get_logger().error(f"rejected joint state: {exc}", throttle_duration_sec=1.0)
            return
        t = stamp_to_sec(msg.header.stamp)
        if t < self.t_last:  # the clock went back (simulator reset): a new episode
            self.counts["time_resets"] += 1
            self._restart()
        elif t == self.t_last and np.isfinite(self.t_next):
            # a re-published state: the simulator is waiting; say again how far the chunks go
            # (the first message may have gone out before its subscription matched)
            self.ready_pub.publish(Float64(data=self.t_next))
        self.t_last = t
        if t < self.t_next - 1e-9:
            return
        if (self.goal is None or any(b not in self.poses for b in self.objects)
                or self.chunk_pub.get_subscription_count() == 0):
            self.counts["waiting"] += 1  # no goal, pose or controller yet
            return
        from robot_ctrl.tasks.base import build_observation

        obs = build_observation(self.ik, q, v, [self.poses[b] for b in self.objects], self.goal)
        if not np.all(np.isfinite(obs)):
            self.counts["rejected_observations"] += 1
            self.get_logger().error("observation has NaN/Inf: holding (no new chunk)", throttle_duration_sec=1.0)
            return
        t0 = time.perf_counter()
        try:
            chunk = self.policy.act(obs)
        except (ValueError, FloatingPointError) as exc:
            self.counts["policy_errors"] += 1
            self.get_logger().error(f"policy failed, holding: {exc}", throttle_duration_sec=1.0)
            return
        self.latency_ms.append(1e3 * (time.perf_counter() - t0))
        self.chunk_pub.publish(self._chunk_msg(msg.header.stamp, chunk.actions))
        self.counts["chunks"] += 1
        self.t_next = t + self.period
        self.ready_pub.publish(Float64(data=t + self.period))

    # -- output --------------------------------------------------------------------------
    def _chunk_msg(self, stamp, actions: np.ndarray):
        from robot_ctrl.control.cartesian import matrix_from_rot6d

        if not self.cartesian:
            msg = JointTrajectory(joint_names=list(self.robot.joint_names))
            for k, a in enumerate(actions):
                pt = JointTrajectoryPoint(positions=[float(x) for x in a])
                sec_to_stamp((k + 1) * self.dt, pt.time_from_start)
                msg.points.append(pt)
        else:
            msg = MultiDOFJointTrajectory(joint_names=[self.robot.cfg.ee_frame, "gripper"])
            for k, a in enumerate(actions):
                hand = Transform()
                hand.translation.x, hand.translation.y, hand.translation.z = (float(x) for x in a[:3])
                (hand.rotation.x, hand.rotation.y, hand.rotation.z,
                 hand.rotation.w) = (float(x) for x in quaternion_from_rotation(matrix_from_rot6d(a[3:9])))
                grip = Transform()
                grip.translation.x = float(np.clip(a[9], -1.0, 1.0))
                grip.rotation.w = 1.0
                pt = MultiDOFJointTrajectoryPoint(transforms=[hand, grip])
                sec_to_stamp((k + 1) * self.dt, pt.time_from_start)
                msg.points.append(pt)
        msg.header.stamp = stamp
        return msg

    def _publish_diagnostics(self) -> None:
        lat = np.array(self.latency_ms[-200:]) if self.latency_ms else np.zeros(1)
        bad = self.counts["rejected_observations"] + self.counts["policy_errors"]
        level = DiagnosticStatus.WARN if bad else DiagnosticStatus.OK
        publish_status(self, self.diag_pub, "robot_ctrl/policy", self.policy.kind, level,
                       "holding after bad input" if bad else "running",
                       {**self.counts, "task": self.task, "chunk_ms_p50": f"{np.percentile(lat, 50):.2f}",
                        "chunk_ms_p99": f"{np.percentile(lat, 99):.2f}"})


def main(args=None):
    from robot_ctrl.ros.runner import run_nodes

    run_nodes([PolicyNode], args=args)


if __name__ == "__main__":
    main()
