"""Controller node: follows joint trajectories (action chunks) with model-based inverse dynamics.

Subscribes  /joint_states                  sensor_msgs/JointState (mapped by joint name)
            ~/joint_trajectory             trajectory_msgs/JointTrajectory (chunks, time_from_start)
            ~/cartesian_trajectory         trajectory_msgs/MultiDOFJointTrajectory: end-effector chunks.
                                           joint_names [<ee_frame>, "gripper"]; per point the hand pose
                                           (world frame) and the gripper command in translation.x
                                           (-1 closed .. +1 open). Turned into joint targets by
                                           differential IK (control.cartesian.ik_chunk), then
                                           executed like a joint chunk.
Publishes   /<controller_name>/commands    std_msgs/Float64MultiArray, one per joint state
            ~/reference                    sensor_msgs/JointState: reference q, v and the command
            /diagnostics                   diagnostic_msgs/DiagnosticArray (1 Hz)

Time is the stamp of the latest joint state (sim time in simulation), so the loop is
deterministic in lockstep. A trajectory with a zero header stamp starts now; otherwise
header.stamp is its absolute start time. Rejected trajectories (unknown joints, NaN/Inf,
positions or velocities beyond 1e4, non-increasing times, stale, more than `max_chunk_points`
points, a stamp or time_from_start that is no ROS time, a Cartesian chunk with a frame_id
other than "world" or empty) are logged once per second and counted per topic
(rejected_joint_trajectories, rejected_cartesian_trajectories; their sum
rejected_trajectories); the last good reference is held. Joint states are checked
(robot_ctrl.ros.validation) before they are converted: sizes (at most 1024 names), empty or
repeated names, NaN/Inf, values beyond 1e4, the stamp; `states` counts the accepted ones,
`rejected_states` the others.
"""
from __future__ import annotations

import time

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory, MultiDOFJointTrajectory

from robot_ctrl.control import OUTPUT_MODES, JointController, TrajectoryError
from robot_ctrl.control.cartesian import DiffIK, ik_chunk
from robot_ctrl.control.stamps import StampError, StampGuard
from robot_ctrl.model import RobotModel
from robot_ctrl.ros.common import (
    ClockJumps,
    COMMAND_QOS,
    STATE_QOS,
    TRAJECTORY_QOS,
    JointOrder,
    JointStateError,
    PolicyWatch,
    Param,
    ParameterError,
    publish_status,
    rotation_from_quaternion,
    stamp_to_sec,
    steady_clock,
)
from robot_ctrl.ros.lifecycle import ManagedNode
from robot_ctrl.ros.validation import MAX_JOINT_VALUE, LogThrottle, check_duration, check_names, check_stamp

PARAMS = {
    "robot": Param("panda", "Robot name (config/robots/<robot>.yaml) or path to a robot YAML."),
    "command_mode": Param("effort", "Output: effort (computed torque), position or velocity targets.",
                          choices=OUTPUT_MODES),
    "controller_name": Param("forward_effort_controller", "Commands go to /<controller_name>/commands."),
    "kp": Param([], "Stiffness per joint (1/s^2); empty: the robot YAML's gains."),
    "kd": Param([], "Damping per joint (1/s); empty: the robot YAML's gains."),
    "publish_reference": Param(True, "Publish ~/reference (reference q, v and the command) every cycle."),
    "max_chunk_points": Param(1000, "Reject chunks (joint or Cartesian) with more points than this.", positive=True),
    "policy_liveliness": Param(True, "Drop the chunk and hold when a policy node seen on /policy/alive dies."),
}

# the frames a Cartesian chunk's hand poses may be given in (empty: the world frame)
CARTESIAN_FRAMES = ("", "world")


def _check_chunk_shape(msg, max_points: int) -> None:
    """Size and stamp checks before anything is converted (a huge array costs nothing)."""
    if len(msg.points) > max_points:
        raise TrajectoryError(f"chunk has {len(msg.points)} points (at most {max_points})")
    try:
        check_names(msg.joint_names)
        check_stamp(msg.header.stamp, "header stamp")
        for k, p in enumerate(msg.points):
            check_duration(p.time_from_start, f"point {k} time_from_start")
    except ValueError as exc:
        raise TrajectoryError(str(exc)) from None


def trajectory_arrays(msg: JointTrajectory):
    """(times, positions, velocities|None) from a JointTrajectory; velocities only if every point has them."""
    n = len(msg.joint_names)
    times = [p.time_from_start.sec + p.time_from_start.nanosec * 1e-9 for p in msg.points]
    for k, p in enumerate(msg.points):
        if len(p.positions) != n:
            raise TrajectoryError(f"point {k} has {len(p.positions)} positions for {n} joints")
    positions = np.array([p.positions for p in msg.points], dtype=float).reshape(len(msg.points), n)
    velocities = None
    if msg.points and all(len(p.velocities) == n for p in msg.points):
        velocities = np.array([p.velocities for p in msg.points], dtype=float)
    elif any(len(p.velocities) not in (0, n) for p in msg.points):
        raise TrajectoryError("velocities must be given for all joints of a point or for none")
    for a in (positions, velocities):  # (NaN/Inf: the executor says so) a finite 1e300 overflows the spline
        finite = a[np.isfinite(a)] if a is not None else ()
        if len(finite) and np.abs(finite).max() > MAX_JOINT_VALUE:
            raise TrajectoryError(f"a position or velocity beyond {MAX_JOINT_VALUE:g}")
    return times, positions, velocities


def cartesian_arrays(msg: MultiDOFJointTrajectory, ee_frame: str):
    """(times, positions (K,3), rotations (K,3,3), grippers (K,)) from an end-effector chunk."""
    if msg.header.frame_id not in CARTESIAN_FRAMES:
        raise TrajectoryError(f"frame_id '{msg.header.frame_id[:40]}' (hand poses are in the world frame: "
                              "'world' or empty)")
    names = list(msg.joint_names)
    if not names or names[0] != ee_frame:
        raise TrajectoryError(f"joint_names must start with the end-effector frame '{ee_frame}', got {names[:4]}")
    if len(names) > 2 or (len(names) == 2 and names[1] != "gripper"):
        raise TrajectoryError(f"joint_names must be ['{ee_frame}'] or ['{ee_frame}', 'gripper'], got {names[:4]}")
    if not msg.points:
        raise TrajectoryError("chunk has no points")
    K = len(msg.points)
    times = np.array([p.time_from_start.sec + p.time_from_start.nanosec * 1e-9 for p in msg.points])
    P, R, G = np.empty((K, 3)), np.empty((K, 3, 3)), np.ones(K)
    for k, pt in enumerate(msg.points):
        if len(pt.transforms) != len(names):
            raise TrajectoryError(f"point {k} has {len(pt.transforms)} transforms for {len(names)} joints")
        tr = pt.transforms[0]
        P[k] = (tr.translation.x, tr.translation.y, tr.translation.z)
        if not np.all(np.isfinite(P[k])):
            raise TrajectoryError(f"point {k} has NaN or Inf")
        try:
            R[k] = rotation_from_quaternion(tr.rotation.x, tr.rotation.y, tr.rotation.z, tr.rotation.w)
        except ValueError as exc:
            raise TrajectoryError(f"point {k}: rotation: {exc}") from None
        if len(names) == 2:
            G[k] = pt.transforms[1].translation.x
            if not np.isfinite(G[k]):
                raise TrajectoryError(f"point {k}: gripper command is not finite")
    if np.any(times <= 0) or np.any(np.diff(times) <= 0):
        raise TrajectoryError("time_from_start must be positive and strictly increasing")
    return times, P, R, G


class ControllerNode(ManagedNode):
    def __init__(self, **kwargs):
        super().__init__("controller", PARAMS, **kwargs)

    def configure(self) -> None:
        self._log = LogThrottle(self.get_logger())  # rejections: once per second per kind
        p = self.params
        robot = RobotModel.load(p["robot"])
        for key in ("kp", "kd"):
            if p[key] and len(p[key]) != robot.n:
                raise ParameterError(f"parameter '{key}' has {len(p[key])} values; {robot.name} has {robot.n} joints")
        self.ctrl = JointController(robot, p["command_mode"], kp=p["kp"] or None, kd=p["kd"] or None)
        self.order = JointOrder(robot.joint_names)
        self.robot = robot
        self.ik = DiffIK(robot)
        self.t_now: float | None = None
        self.q = self.v = None
        self.rejected_states = 0
        self.rejected_trajectories = 0
        self.accepted_trajectories = 0
        self.inactive_trajectories = 0
        self.states = 0  # accepted joint states
        self.stamps = StampGuard()
        self.clock_jumps = ClockJumps(self, self._log)
        # per input topic (the totals above are their sums)
        self.chunk_counts = {"accepted_joint_trajectories": 0, "rejected_joint_trajectories": 0,
                             "accepted_cartesian_trajectories": 0, "rejected_cartesian_trajectories": 0}
        self.cycles = 0
        self._cmd = Float64MultiArray()
        self._ref = JointState()
        self._ref.name = list(robot.joint_names)

        topic = f"/{p['controller_name'].strip('/')}/commands"
        m = self.managed
        self.cmd_pub = m(self.create_publisher(Float64MultiArray, topic, COMMAND_QOS))
        self.ref_pub = m(self.create_publisher(JointState, "~/reference", STATE_QOS)) if p["publish_reference"] else None
        self.diag_pub = m(self.create_publisher(DiagnosticArray, "/diagnostics", 10))
        m(self.create_subscription(JointState, "/joint_states", self._on_state, STATE_QOS))
        # a policy that dies: drop its chunk and hold where the arm is (the safety filter brakes)
        self.policy = PolicyWatch(self, self._on_policy_lost) if p["policy_liveliness"] else None
        if self.policy is not None:
            m(self.policy.sub)
        m(self.create_subscription(JointTrajectory, "~/joint_trajectory", self._on_trajectory, TRAJECTORY_QOS))
        m(self.create_subscription(MultiDOFJointTrajectory, "~/cartesian_trajectory", self._on_cartesian,
                                   TRAJECTORY_QOS))
        m(self.create_timer(1.0, self._publish_diagnostics, clock=steady_clock()))
        self.get_logger().info(f"{robot.name}: {p['command_mode']} commands on {topic}")

    def on_activated(self) -> None:
        # start from where the robot is: never resume a chunk from before (a restart, a pause)
        if self.q is not None:
            self.ctrl.hold_here(self.t_now, self.q)

    def on_deactivated(self) -> None:
        # commands stop; the safety filter's watchdog brakes and holds the robot
        if self.q is not None:
            self.ctrl.hold_here(self.t_now, self.q)

    def _on_policy_lost(self) -> None:
        if self.q is not None and self.ctrl.started:
            self.ctrl.hold_here(self.t_now, self.q)  # the chunk's author is gone: stop following it

    def _on_state(self, msg: JointState) -> None:
        try:
            q, v = self.order.state(msg)
        except JointStateError as exc:
            self.rejected_states += 1
            self._log("1", f"rejected joint state: {exc}")
            return
        t = stamp_to_sec(msg.header.stamp)
        try:  # out of order or a jump: refused (a jumped stamp would skip the chunk ahead)
            verdict = self.stamps.check(t, time.monotonic())
        except StampError as exc:
            self.rejected_states += 1
            self._log("5", f"rejected joint state: {exc}")
            return
        self.states += 1
        self.t_now, self.q, self.v = t, q, v
        self.note_state()
        if verdict == "duplicate":  # a copy of the last state: answered once already
            return
        if verdict == "reset" and t > 0:  # a confirmed clock jump: hold here, on the new timeline
            self.ctrl.hold_here(t, q)
        if not self.active:
            return
        u = self.ctrl.update(t, q, v)
        self._cmd.data = u.tolist()
        self.cmd_pub.publish(self._cmd)
        self.cycles += 1
        if self.ref_pub is not None:
            ref = self._ref
            ref.header.stamp = msg.header.stamp
            ref.position = self.ctrl.executor.q.tolist()
            ref.velocity = self.ctrl.executor.v.tolist()
            ref.effort = self._cmd.data
            self.ref_pub.publish(ref)

    def _refuse_inactive(self) -> bool:
        if not self.active:
            self.inactive_trajectories += 1
            self._log("2", "trajectory while inactive: ignored", "warning")
        return not self.active

    def _on_trajectory(self, msg: JointTrajectory) -> None:
        if self._refuse_inactive():
            return
        try:
            if self.t_now is None:
                raise TrajectoryError("no joint state received yet")
            _check_chunk_shape(msg, self.params["max_chunk_points"])
            times, positions, velocities = trajectory_arrays(msg)
            stamp = stamp_to_sec(msg.header.stamp)
            kept = self.ctrl.executor.set_chunk(
                self.t_now, times, positions, velocities, joint_names=list(msg.joint_names),
                t_start=stamp if stamp > 0 else None,
            )
        except (TrajectoryError, ValueError) as exc:
            self.rejected_trajectories += 1
            self.chunk_counts["rejected_joint_trajectories"] += 1
            self._log("3", f"rejected trajectory, holding the last good reference: {exc}")
            return
        self.accepted_trajectories += 1
        self.chunk_counts["accepted_joint_trajectories"] += 1
        self.get_logger().debug(f"accepted trajectory with {kept} points")

    def _on_cartesian(self, msg: MultiDOFJointTrajectory) -> None:
        if self._refuse_inactive():
            return
        try:
            if self.t_now is None or not self.ctrl.started:
                raise TrajectoryError("no joint state received yet")
            _check_chunk_shape(msg, self.params["max_chunk_points"])
            times, P, R, G = cartesian_arrays(msg, self.robot.cfg.ee_frame)
            stamp = stamp_to_sec(msg.header.stamp)
            t0 = stamp if stamp > 0 else self.t_now
            # IK from the reference where the chunk starts (its knot, when it arrives in time)
            q_start, v_start, _ = (x.copy() for x in self.ctrl.executor.sample(max(t0, self.t_now)))
            Q, V = ik_chunk(self.ik, q_start, np.diff(np.concatenate(([0.0], times))), P, R, G, self.robot.v_max,
                            v_start=v_start)
            kept = self.ctrl.executor.set_chunk(self.t_now, times, Q, V, t_start=t0)
        except (TrajectoryError, ValueError) as exc:
            self.rejected_trajectories += 1
            self.chunk_counts["rejected_cartesian_trajectories"] += 1
            self._log("4", f"rejected Cartesian trajectory, holding the last good reference: {exc}")
            return
        self.accepted_trajectories += 1
        self.chunk_counts["accepted_cartesian_trajectories"] += 1
        self.get_logger().debug(f"accepted Cartesian trajectory with {kept} points")

    def _publish_diagnostics(self) -> None:
        err = float(np.linalg.norm(self.ctrl.error))
        values = {
            "cycles": self.cycles,
            "accepted_trajectories": self.accepted_trajectories,
            "rejected_trajectories": self.rejected_trajectories,
            "rejected_states": self.rejected_states,
            "states": self.states,
            "stamp_jumps": self.stamps.jumps, "stamp_resets": self.stamps.resets,
            "duplicate_states": self.stamps.duplicates, "clock_jumps": self.clock_jumps.count,
            "policy_losses": self.policy.losses if self.policy is not None else 0,
            **self.chunk_counts,
            "tracking_error_norm": f"{err:.6f}",
            "nonfinite_commands_replaced": self.ctrl.nonfinite,
            "time_resets": self.ctrl.time_resets,
            "inactive_trajectories": self.inactive_trajectories,
            **self.lifecycle_values(),
        }
        level, message = DiagnosticStatus.OK, "running"
        if not self.active:
            level, message = DiagnosticStatus.WARN, "inactive: not commanding"
        if self.rejected_trajectories or self.rejected_states:
            level, message = DiagnosticStatus.WARN, "rejected input"
        publish_status(self, self.diag_pub, "robot_ctrl/controller", self.ctrl.robot.name, level, message, values)


def main(args=None):
    from robot_ctrl.ros.runner import run_nodes

    run_nodes([ControllerNode], args=args)


if __name__ == "__main__":
    main()
