"""Fake-hardware node: a stand-in for a real ros2_control robot, with the topics a real one has.

controller_type forward:
Subscribes  /<controller_name>/commands         std_msgs/Float64MultiArray, one value per
                                                controller_joints entry, in that order
                                                (position, velocity or effort: `interface`)
controller_type trajectory (position interface only):
Subscribes  /<controller_name>/joint_trajectory trajectory_msgs/JointTrajectory, joints by name
Publishes   /joint_states                       sensor_msgs/JointState: joints, then extra_joints
                                                (held at 0), position, velocity, effort
            /diagnostics                        diagnostic_msgs/DiagnosticArray (1 Hz), status
                                                "robot_ctrl/fake_hardware": counters and config

The physics is robot_ctrl.hardware.FakeHardware (actuator lag, latency, noise, drops, stamp
jitter and jumps; see there). A wall-clock (steady) timer at rate_hz steps it by the wall time
elapsed (at most 0.1 s a tick) and publishes one state, stamped with the node clock.

Jitter: a timer cannot publish at a jittered time, so jitter is modelled as an error of the
stamp: a state sampled at t carries the stamp t + N(0, jitter_s) (stamps can go out of order
when jitter_s is above half the period). A stamp jump moves one state's stamp by stamp_jump_s;
the clock is not changed. A dropped state is not published (the physics steps on).

Trajectories (as ros2_control's joint_trajectory_controller): joint_names must be exactly the
controller_joints (any order); time_from_start counts from header.stamp (a zero stamp: the time
of receipt) and must be >= 0 and strictly increasing; positions are interpolated linearly from
the current command at the start to the first point and between points; the last point is held
(velocities and accelerations of the points are ignored).
A new trajectory replaces the current one; one with no points stops it (holds the current
command). A forward command sets the controller_joints; other joints keep their last command
(position: where they were; velocity and effort: 0). Bad commands and trajectories (unknown or
missing joints, more than 1024 names, wrong sizes, NaN/Inf in positions or velocities, positions
beyond 1e4, bad times or stamps: negative, nanosec >= 1e9) are rejected, logged once per second
and counted (rejected_commands on /diagnostics; accepted: commands).

Parameters: robot, controller_type, controller_name, interface, rate_hz, actuator_tau,
latency_s, noise_std_position, noise_std_velocity, drop_prob, jitter_s, stamp_jump_prob,
stamp_jump_s, damping, max_queue, seed, brake_until_command (see PARAMS), and three string arrays (empty: the
robot's joint order, resp. none): joints (the /joint_states order; the robot's joints, all of
them), extra_joints (published at 0, not controlled, e.g. camera_pan) and controller_joints (a
subset of the robot's joints, the command order). On the command line: -p joints:="[a, b]".
"""
from __future__ import annotations

import re
import threading
import time

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.clock import Clock, ClockType
from rclpy.exceptions import InvalidParameterTypeException
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory

from robot_ctrl.hardware import INTERFACES, FakeHardware, FakeHardwareConfig, LinearTrajectory
from robot_ctrl.model import RobotModel
from robot_ctrl.ros.common import (COMMAND_QOS, STATE_QOS, TRAJECTORY_QOS, Param, ParameterError,
                                   declare_parameters, declare_string_list, publish_status, sec_to_stamp,
                                   stamp_to_sec)
from robot_ctrl.ros.validation import LogThrottle, MAX_JOINT_VALUE, check_duration, check_names, check_stamp

DIAG_NAME = "robot_ctrl/fake_hardware"
MAX_TICK_S = 0.1  # a tick later than this (a stalled process) steps the physics by this much only

PARAMS = {
    "robot": Param("panda", "Robot name (config/robots/<robot>.yaml) or path to a robot YAML."),
    "controller_type": Param("forward", "forward: Float64MultiArray on /<controller_name>/commands; "
                                        "trajectory: JointTrajectory on /<controller_name>/joint_trajectory.",
                             choices=("forward", "trajectory")),
    "controller_name": Param("forward_position_controller", "The ros2_control controller the stack commands."),
    "interface": Param("position", "Command interface of the hardware (effort: no command = no torque, "
                                   "the arm falls under gravity).", choices=INTERFACES),
    "rate_hz": Param(500.0, "Physics step and /joint_states publish rate (wall clock).", positive=True),
    "actuator_tau": Param(0.02, "First-order lag (s) of the applied command behind the commanded one; 0 = none."),
    "latency_s": Param(0.0, "Command received -> takes effect (s)."),
    "noise_std_position": Param(0.0, "Std of the position noise of /joint_states (rad)."),
    "noise_std_velocity": Param(0.0, "Std of the velocity noise of /joint_states (rad/s)."),
    "drop_prob": Param(0.0, "Probability that a state is not published."),
    "jitter_s": Param(0.0, "Std of the error of a state's stamp (s)."),
    "stamp_jump_prob": Param(0.0, "Probability that a state's stamp jumps by stamp_jump_s."),
    "stamp_jump_s": Param(0.0, "Stamp jump (s); > 0 forward, < 0 backward."),
    "damping": Param(0.1, "Effort interface: viscous joint damping (N m s/rad)."),
    "max_queue": Param(1000, "Commands waiting out the latency; beyond, the oldest is dropped and counted."),
    "brake_until_command": Param(True, "Effort interface: brakes hold the joints until the first command takes "
                                       "effect (false: the arm falls from the start)."),
    "seed": Param(0, "Seed of the noise, drop, jitter and jump draws."),
}
CONFIG_PARAMS = ("interface", "actuator_tau", "latency_s", "noise_std_position", "noise_std_velocity", "drop_prob",
                 "jitter_s", "stamp_jump_prob", "stamp_jump_s", "damping", "max_queue", "seed",
                 "brake_until_command")
STRING_LISTS = {
    "joints": "Joints of /joint_states, in order: all the robot's joints; empty = the robot's order.",
    "extra_joints": "Joints also published in /joint_states, held at 0 and not controlled (e.g. camera_pan).",
    "controller_joints": "Joints (and order) of the controller's command; empty = the robot's joints.",
}


class FakeHardwareNode(Node):
    def __init__(self, **kwargs):
        super().__init__("fake_hardware", **kwargs)
        self._log = LogThrottle(self.get_logger())  # rejections: once per second per kind
        try:
            p = declare_parameters(self, PARAMS)
        except InvalidParameterTypeException as exc:
            raise ParameterError(f"node '{self.get_name()}': {exc}") from None
        lists = {name: declare_string_list(self, name, d) for name, d in STRING_LISTS.items()}
        self.params = {**p, **lists}
        robot = RobotModel.load(p["robot"])
        self.robot = robot
        self.joints, self.extra_joints, self.controller_joints = self._check_joints(robot, lists)
        if p["controller_type"] == "trajectory" and p["interface"] != "position":
            raise ParameterError(f"parameter 'interface' of node '{self.get_name()}' is '{p['interface']}'; "
                                 "controller_type 'trajectory' needs the position interface")
        try:
            cfg = FakeHardwareConfig(**{k: p[k] for k in CONFIG_PARAMS})
        except ValueError as exc:
            m = re.search(r"FakeHardwareConfig\.(\w+)", str(exc))
            raise ParameterError(f"parameter '{m.group(1) if m else '?'}' of node '{self.get_name()}': {exc}") from None
        self.hw = FakeHardware(robot, cfg)
        index = {j: i for i, j in enumerate(robot.joint_names)}
        self._pub_idx = np.array([index[j] for j in self.joints], dtype=int)
        self._ctrl_idx = np.array([index[j] for j in self.controller_joints], dtype=int)
        self._index = index
        self._ctrl_set = set(self.controller_joints)
        self._n_extra = len(self.extra_joints)
        self._base = self.hw.applied  # full command, robot order: what joints not commanded keep
        self._traj: LinearTrajectory | None = None
        self._lock = threading.Lock()
        self.commands = 0  # accepted command messages (forward commands and trajectories)
        self.rejected_commands = 0
        self.trajectories = 0
        self._started = False
        self.nonfinite_skipped = 0
        self.stalls = 0
        self._rejected_last = 0
        self._js = JointState()
        self._js.name = self.joints + self.extra_joints
        self._zeros = [0.0] * self._n_extra
        self._t0 = time.monotonic()
        self._period = 1.0 / p["rate_hz"]

        self.state_pub = self.create_publisher(JointState, "/joint_states", STATE_QOS)
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        name = p["controller_name"].strip("/")
        if p["controller_type"] == "forward":
            self.topic = f"/{name}/commands"
            self.create_subscription(Float64MultiArray, self.topic, self._on_command, COMMAND_QOS)
        else:
            self.topic = f"/{name}/joint_trajectory"
            self.create_subscription(JointTrajectory, self.topic, self._on_trajectory, TRAJECTORY_QOS)
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        self.create_timer(self._period, self._tick, clock=steady)
        self.create_timer(1.0, self._publish_diagnostics, clock=steady)
        self.get_logger().info(
            f"fake {robot.name} hardware, {cfg.interface} interface, {p['controller_type']} commands on "
            f"{self.topic} for {len(self.controller_joints)} joints, /joint_states at {p['rate_hz']:.0f} Hz "
            f"({len(self.joints)} joints + {self._n_extra} extra)")

    def _check_joints(self, robot, lists):
        node = self.get_name()
        names = list(robot.joint_names)
        joints = lists["joints"] or names
        unknown = [j for j in joints if j not in names]
        missing = [j for j in names if j not in joints]
        if unknown or missing:
            raise ParameterError(
                f"parameter 'joints' of node '{node}' must list the {robot.name} joints {names} in any order"
                + (f"; unknown: {', '.join(unknown)}" if unknown else "")
                + (f"; missing: {', '.join(missing)}" if missing else ""))
        extra = lists["extra_joints"]
        clash = [j for j in extra if j in names]
        if clash:
            raise ParameterError(f"parameter 'extra_joints' of node '{node}' names robot joints: {', '.join(clash)}")
        ctrl = lists["controller_joints"] or names
        unknown = [j for j in ctrl if j not in names]
        if unknown:
            raise ParameterError(f"parameter 'controller_joints' of node '{node}' has joints the {robot.name} "
                                 f"does not have: {', '.join(unknown)} (joints: {names})")
        return list(joints), list(extra), list(ctrl)

    # -- time --------------------------------------------------------------------------
    def _hw_time(self) -> float:
        return time.monotonic() - self._t0

    def _ros_time(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    # -- commands ------------------------------------------------------------------------
    def _reject(self, what: str, exc: Exception) -> None:
        self.rejected_commands += 1
        self._log("1", f"rejected {what} on {self.topic}: {exc}", "warning")

    def _on_command(self, msg: Float64MultiArray) -> None:
        data = msg.data
        n = len(self.controller_joints)
        try:
            if len(data) != n:
                raise ValueError(f"{len(data)} values for the {n} controller joints {self.controller_joints}")
            u = self._base.copy()
            u[self._ctrl_idx] = np.asarray(data, dtype=float)
            with self._lock:
                self.hw.command(u, self._hw_time())  # raises on NaN/Inf
                self._base = u
                self.commands += 1
        except ValueError as exc:
            self._reject("command", exc)

    def _on_trajectory(self, msg: JointTrajectory) -> None:
        try:
            traj = self._trajectory(msg)
        except ValueError as exc:
            self._reject("trajectory", exc)
            return
        with self._lock:
            self._traj = traj
            self.trajectories += 1
            self.commands += 1
            if traj is None:  # an empty trajectory: stop, hold the current command
                self.hw.command(self._base, self._hw_time())

    def _trajectory(self, msg: JointTrajectory) -> LinearTrajectory | None:
        check_stamp(msg.header.stamp, "header stamp")
        if not msg.points:
            return None  # stop: hold the current command (joint names not needed)
        check_names(msg.joint_names)  # (before listing unknown ones: at most MAX_JOINTS)
        names = list(msg.joint_names)
        unknown = [j for j in names if j not in self._ctrl_set]
        missing = [j for j in self.controller_joints if j not in names]
        if unknown or missing or len(set(names)) != len(names):
            raise ValueError("joint_names must be the controller joints " + str(self.controller_joints)
                             + (f"; unknown: {', '.join(unknown)}" if unknown else "")
                             + (f"; missing: {', '.join(missing)}" if missing else "")
                             + ("; repeated names" if len(set(names)) != len(names) else ""))
        K, n = len(msg.points), len(names)
        times = np.empty(K)
        for k, pt in enumerate(msg.points):
            if len(pt.positions) != n:
                raise ValueError(f"point {k} has {len(pt.positions)} positions for {n} joints")
            if len(pt.velocities) not in (0, n):  # (ignored, but checked as the real controller does)
                raise ValueError(f"point {k} has {len(pt.velocities)} velocities for {n} joints")
            if not np.isfinite(pt.velocities).all():
                raise ValueError(f"point {k} has NaN or Inf velocities")
            check_duration(pt.time_from_start, f"point {k} time_from_start")
            times[k] = pt.time_from_start.sec + pt.time_from_start.nanosec * 1e-9
        if times[0] < 0 or np.any(np.diff(times) <= 0):
            raise ValueError("time_from_start must be >= 0 and strictly increasing")
        P = np.array([pt.positions for pt in msg.points], dtype=float).reshape(K, n)
        if not np.isfinite(P).all():
            raise ValueError("positions have NaN or Inf")
        if np.abs(P).max() > MAX_JOINT_VALUE:
            raise ValueError(f"a position beyond {MAX_JOINT_VALUE:g}")
        start = stamp_to_sec(msg.header.stamp)
        if start == 0.0:
            start = self._ros_time()
        with self._lock:
            base = self._base.copy()
        full = np.tile(base, (K, 1))
        full[:, [self._index[j] for j in names]] = P
        if times[0] > 0:  # from the current command at the start to the first point
            times = np.concatenate([[0.0], times])
            full = np.vstack([base, full])
        return LinearTrajectory(start + times, full)

    # -- the loop --------------------------------------------------------------------------
    def _tick(self) -> None:
        with self._lock:
            hw = self.hw
            now = self._hw_time()
            if not self._started:  # the hardware's time starts at the first tick
                self._started = True
                hw.t = now
            dt = now - hw.t
            if dt <= 0:
                return
            if dt > MAX_TICK_S:
                self.stalls += 1
                dt = MAX_TICK_S
            hw.step(dt, t=now - dt)
            ros_now = self._ros_time()
            if self._traj is not None:
                traj = self._traj
                traj.sample(ros_now, out=self._base)
                hw.command(self._base, now)
                if ros_now >= traj.end:
                    self._traj = None  # the last point is held by the last command
            s = hw.measure(now)
        if s is None:
            return
        q, v, e = s.position[self._pub_idx], s.velocity[self._pub_idx], s.effort[self._pub_idx]
        if not (np.isfinite(q).all() and np.isfinite(v).all() and np.isfinite(e).all()):
            self.nonfinite_skipped += 1
            self._log("2", "non-finite joint state not published")
            return
        js = self._js
        sec_to_stamp(max(0.0, ros_now + (s.stamp - now)), js.header.stamp)
        js.position = q.tolist() + self._zeros
        js.velocity = v.tolist() + self._zeros
        js.effort = e.tolist() + self._zeros
        self.state_pub.publish(js)

    def _publish_diagnostics(self) -> None:
        with self._lock:
            values = self.hw.stats()
            values["hardware_commands"] = values.pop("commands")
            values.update(commands=self.commands, rejected_commands=self.rejected_commands, trajectories=self.trajectories,
                          nonfinite_skipped=self.nonfinite_skipped, stalls=self.stalls,
                          hardware_time=f"{self.hw.t:.3f}", controller_type=self.params["controller_type"],
                          command_topic=self.topic, rate_hz=self.params["rate_hz"])
            values.update(self.hw.config.as_dict())
        fresh = self.rejected_commands - self._rejected_last
        self._rejected_last = self.rejected_commands
        if fresh:
            level, message = DiagnosticStatus.WARN, f"rejected {fresh} commands in the last second"
        else:
            level, message = DiagnosticStatus.OK, "running"
        publish_status(self, self.diag_pub, DIAG_NAME, self.robot.name, level, message, values)


def main(args=None):
    from robot_ctrl.ros.runner import run_nodes

    run_nodes([FakeHardwareNode], args=args)


if __name__ == "__main__":
    main()
