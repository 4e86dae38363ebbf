"""Simulator node: MuJoCo world behind the topics a ros2_control robot exposes.

Subscribes  /<controller_name>/commands   std_msgs/Float64MultiArray (effort|position|velocity)
Publishes   /joint_states                 sensor_msgs/JointState, stamped in sim time
            /clock                        rosgraph_msgs/Clock
            /diagnostics                  diagnostic_msgs/DiagnosticArray (1 Hz)
Service     ~/reset                       std_srvs/Trigger

With `task` set (reach, push, pick_place, peg_in_hole) the world is that task's (scene, objects,
randomized reset from `task_seed`, then the next seed on every ~/reset), and it also publishes
            /objects/<body>/pose          geometry_msgs/PoseStamped (world frame), the stand-in for
                                          perception, at object_rate_hz (sim time)
            /task/goal                    std_msgs/Float64MultiArray, latched: the goal vector
            /task/success                 std_msgs/Bool, the task's own success test, with the poses

timing_mode:
- lockstep: each command received advances one control period, then the new state is
  published. Deterministic; runs as fast as the loop turns. Until the first command (or when
  no command arrives for lockstep_republish_s) the current state is re-published. With
  lockstep_gate, a command that would step past /policy/ready_until waits until the policy
  node has published the chunk for that time (then the episode matches the Gymnasium one).
- realtime: a thread steps one control period per tick of the wall clock and applies the
  latest command (zero-order hold); a tick with no new command counts as missed.

A command of the wrong length (checked before converting) or with NaN/Inf is rejected
(`rejected_commands` on /diagnostics), so is a NaN/Inf /policy/ready_until
(`rejected_ready_until`; accepted: `ready_until_messages`); logged once per second.
"""
from __future__ import annotations

import threading
import time

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node
from geometry_msgs.msg import PoseStamped
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Float64, Float64MultiArray
from std_srvs.srv import Trigger

from robot_ctrl.model import RobotModel
from robot_ctrl.ros.common import (CLOCK_QOS, COMMAND_QOS, GOAL_QOS, STATE_QOS, Param, declare_parameters,
                                   quaternion_from_rotation, sec_to_stamp)
from robot_ctrl.ros.validation import LogThrottle
from robot_ctrl.sim import COMMAND_MODES, CommandError, Simulator
from robot_ctrl.sim.pacing import LoopStats, Pacer

PARAMS = {
    "robot": Param("panda", "Robot name (config/robots/<robot>.yaml) or path to a robot YAML."),
    "scene": Param("table", "Scene name (sim/scenes/<scene>.xml) or path to an MJCF scene."),
    "command_mode": Param("effort", "Actuator interface the simulator exposes.", choices=COMMAND_MODES),
    "timing_mode": Param("lockstep", "realtime: paced to the wall clock; lockstep: one control period per command.",
                         choices=("realtime", "lockstep")),
    "control_rate_hz": Param(500.0, "Control rate: joint states published per simulated second.", positive=True),
    "physics_rate_hz": Param(1000.0, "MuJoCo physics rate; a whole multiple of control_rate_hz.", positive=True),
    "controller_name": Param("forward_effort_controller",
                             "Commands are read from /<controller_name>/commands (ros2_control convention)."),
    "publish_clock": Param(True, "Publish /clock in sim time (for use_sim_time)."),
    "lockstep_republish_s": Param(0.1, "Lockstep: re-publish the state after this long (wall) without a command.",
                                  positive=True),
    "lockstep_gate": Param(False, "Lockstep: never step past /policy/ready_until (the sim time the policy's "
                                  "chunks cover), so the policy is in step with the simulation."),
    "task": Param("", "Task world (reach, push, pick_place, peg_in_hole); empty: just the scene."),
    "task_seed": Param(0, "Seed of the first task reset; each ~/reset uses the next one."),
    "object_rate_hz": Param(50.0, "Task: object poses, goal and success published per simulated second.",
                            positive=True),
}


def _pose_msg(msg: PoseStamped, p, R) -> None:
    msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = (float(x) for x in p)
    o = msg.pose.orientation
    o.x, o.y, o.z, o.w = quaternion_from_rotation(R)


class SimNode(Node):
    def __init__(self, **kwargs):
        super().__init__("sim", **kwargs)
        self._log = LogThrottle(self.get_logger())  # rejections: once per second per kind
        p = declare_parameters(self, PARAMS)
        self.params = p
        robot = RobotModel.load(p["robot"])
        self.task = None
        self.task_succeeded = False
        if p["task"]:
            self._make_task(p)
        else:
            self.sim = Simulator(robot, scene=p["scene"], command_mode=p["command_mode"],
                                 control_dt=1.0 / p["control_rate_hz"], physics_dt=1.0 / p["physics_rate_hz"])
        self.lockstep = p["timing_mode"] == "lockstep"
        self.lock = threading.Lock()
        self.stats = LoopStats()
        self._js = JointState()
        self._js.name = list(robot.joint_names)
        self._clock_msg = Clock()
        self._pending: np.ndarray | None = None  # realtime: newest command not yet applied
        self._last_cmd_wall = 0.0
        self._last_pub_wall = 0.0
        self._wall0 = time.perf_counter()
        self._sim0 = 0.0

        self.state_pub = self.create_publisher(JointState, "/joint_states", STATE_QOS)
        self.clock_pub = self.create_publisher(Clock, "/clock", CLOCK_QOS) if p["publish_clock"] else None
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        topic = f"/{p['controller_name'].strip('/')}/commands"
        self.create_subscription(Float64MultiArray, topic, self._on_command, COMMAND_QOS)
        self.create_service(Trigger, "~/reset", self._on_reset)
        self._ready_until = -np.inf
        self.gated = 0
        self.ready_msgs = 0  # accepted /policy/ready_until messages
        self.rejected_ready = 0
        self.frozen = False  # freeze(): lockstep stepping stops until the next reset
        if self.lockstep and p["lockstep_gate"]:
            self.create_subscription(Float64, "/policy/ready_until", self._on_ready, STATE_QOS)
        if self.task is not None:
            self._obj_pubs = {b: self.create_publisher(PoseStamped, f"/objects/{b}/pose", STATE_QOS)
                              for b in self.task.objects}
            self._obj_msgs = {b: PoseStamped() for b in self.task.objects}
            for m in self._obj_msgs.values():
                m.header.frame_id = "world"
            self.goal_pub = self.create_publisher(Float64MultiArray, "/task/goal", GOAL_QOS)
            self.success_pub = self.create_publisher(Bool, "/task/success", STATE_QOS)
            self._obj_every = max(1, int(round(p["control_rate_hz"] / p["object_rate_hz"])))
            self.goal_pub.publish(Float64MultiArray(data=self.task.goal().tolist()))
        self.create_timer(1.0, self._publish_diagnostics)
        self.get_logger().info(
            f"{robot.name} in '{p['scene']}', {p['command_mode']} commands on {topic}, "
            f"{p['timing_mode']} at {p['control_rate_hz']:.0f} Hz"
        )
        self._running = True
        if self.lockstep:
            self.create_timer(p["lockstep_republish_s"], self._lockstep_idle)
            self._publish_state()
            self._thread = None
        else:
            self._thread = threading.Thread(target=self._realtime_loop, name="sim_realtime", daemon=True)
            self._thread.start()

    def _make_task(self, p) -> None:
        import gymnasium as gym

        from robot_ctrl.tasks import TASKS

        if p["task"] not in TASKS:
            raise ValueError(f"unknown task '{p['task']}' (tasks: {', '.join(TASKS)})")
        if p["command_mode"] != "effort":
            raise ValueError(f"task worlds take effort commands, not {p['command_mode']}")
        if p["robot"] != "panda":
            raise ValueError(f"the tasks are built for the panda, not {p['robot']}")
        self.task = gym.make(TASKS[p["task"]], control_dt=1.0 / p["control_rate_hz"]).unwrapped
        self.sim = self.task.sim
        self.episode = 0
        self.task.reset(seed=int(p["task_seed"]))

    def _publish_task(self) -> None:
        if not rclpy.ok():  # shutting down: the publishers' context is gone
            return
        stamp = self._js.header.stamp
        for b, msg in self._obj_msgs.items():
            msg.header.stamp = stamp
            _pose_msg(msg, *self.task.object_pose(b))
            self._obj_pubs[b].publish(msg)
        ok = bool(self.task._success())
        self.task_succeeded = self.task_succeeded or ok  # latched per episode: any True on the topic
        self.success_pub.publish(Bool(data=ok))

    # -- publishing ----------------------------------------------------------------------
    def _publish_state(self) -> None:
        sim = self.sim
        js = self._js
        sec_to_stamp(sim.time, js.header.stamp)
        js.position = sim.q.tolist()
        js.velocity = sim.v.tolist()
        js.effort = sim.effort.tolist()
        self.stats.mark_published()
        if self.task is not None and sim.steps % self._obj_every == 0:
            self._publish_task()  # before the state: a node acting on the state has fresh poses
        self.state_pub.publish(js)
        if self.clock_pub is not None:
            self._clock_msg.clock = js.header.stamp
            self.clock_pub.publish(self._clock_msg)
        self._last_pub_wall = time.perf_counter()

    # -- commands ------------------------------------------------------------------------
    def _on_command(self, msg: Float64MultiArray) -> None:
        try:
            if len(msg.data) != self.sim.n:  # the length first: a huge array is never converted
                raise CommandError(f"{self.sim.command_mode} command: expected {self.sim.n} values, "
                                   f"got {len(msg.data)}")
            u = self.sim.check(msg.data, f"{self.sim.command_mode} command")
        except CommandError as exc:
            self.sim.rejected += 1
            self._log("1", f"rejected command: {exc}")
            return
        self.stats.mark_command()
        self._last_cmd_wall = time.perf_counter()
        if self.lockstep:
            with self.lock:
                if self.frozen:
                    self._pending = u  # the episode is over: the world stays as it ended
                    return
                if self.params["lockstep_gate"] and self.sim.time + 0.5 * self.sim.control_dt > self._ready_until:
                    self._pending = u  # the policy has not covered the next period yet
                    self.gated += 1
                    return
                self.sim.data.ctrl[:] = u
                self.sim.step()
                self._publish_state()
        else:
            with self.lock:
                self._pending = u

    def _on_ready(self, msg: Float64) -> None:
        with self.lock:
            if not np.isfinite(msg.data):
                self.rejected_ready += 1
                self._log("2", f"rejected /policy/ready_until: {msg.data}")
                return
            self.ready_msgs += 1
            self._ready_until = float(msg.data)
            if self._pending is not None and not self.frozen and self.sim.time + 0.5 * self.sim.control_dt <= self._ready_until:
                self.sim.data.ctrl[:] = self._pending
                self._pending = None
                self.sim.step()
                self._publish_state()

    def _lockstep_idle(self) -> None:
        now = time.perf_counter()
        if now - max(self._last_cmd_wall, self._last_pub_wall) >= self.params["lockstep_republish_s"]:
            with self.lock:
                self._publish_state()

    def _realtime_loop(self) -> None:
        pacer = Pacer(self.sim.control_dt)
        while self._running and rclpy.ok():
            pacer.wait()
            with self.lock:
                if self._pending is not None:
                    self.sim.data.ctrl[:] = self._pending
                    self._pending = None
                    self.stats.fresh += 1
                elif self.stats.commands > 0:
                    self.stats.missed += 1
                self.sim.step()
                self._publish_state()
            self.stats.overruns = pacer.overruns

    def freeze(self) -> None:
        """Stop stepping in lockstep until the next reset (the end of an episode: what is
        recorded after it is the world as the episode ended, not a continuation past it)."""
        with self.lock:
            self.frozen = True

    def _on_reset(self, request, response):
        with self.lock:
            if self.task is not None:
                self.episode += 1
                self.task.reset(seed=int(self.params["task_seed"]) + self.episode)
                self.task_succeeded = False
                self.goal_pub.publish(Float64MultiArray(data=self.task.goal().tolist()))
            else:
                self.sim.reset()
            self._pending = None
            self._ready_until = -np.inf
            self.frozen = False
            self._publish_state()
        response.success = True
        response.message = (f"reset to home at sim time {self.sim.time:.3f}" if self.task is None else
                            f"task {self.params['task']} reset with seed {int(self.params['task_seed']) + self.episode}")
        self.get_logger().info(response.message)
        return response

    def _publish_diagnostics(self) -> None:
        wall = time.perf_counter() - self._wall0
        rtf = (self.sim.time - self._sim0) / wall if wall > 0 else 0.0
        self._wall0, self._sim0 = time.perf_counter(), self.sim.time
        st = DiagnosticStatus(name="robot_ctrl/sim", hardware_id=self.sim.robot.name, level=DiagnosticStatus.OK,
                              message="running")
        values = {
            "sim_time": f"{self.sim.time:.3f}",
            "realtime_factor": f"{rtf:.2f}",
            "steps": str(self.sim.steps),
            "commands": str(self.stats.commands),
            "rejected_commands": str(self.sim.rejected),
            "missed_periods": str(self.stats.missed),
            "gated_commands": str(self.gated),
            "ready_until_messages": str(self.ready_msgs),
            "rejected_ready_until": str(self.rejected_ready),
        }
        st.values = [KeyValue(key=k, value=v) for k, v in values.items()]
        arr = DiagnosticArray(status=[st])
        sec_to_stamp(self.sim.time, arr.header.stamp)
        self.diag_pub.publish(arr)

    def destroy_node(self):
        self._running = False
        if self._thread is not None:
            self._thread.join(timeout=1.0)
        return super().destroy_node()


def main(args=None):
    from robot_ctrl.ros.runner import run_nodes

    run_nodes([SimNode], args=args)


if __name__ == "__main__":
    main()
