"""Safety filter node: the last node before the simulator or the hardware.

Subscribes  ~/nominal                      std_msgs/Float64MultiArray: the controller's command
                                           (launch remaps the controller's output here)
            /joint_states                  sensor_msgs/JointState (mapped by joint name)
            /estop                         std_msgs/Bool: true latches a braking stop
            ~/obstacles/<name>             geometry_msgs/PoseStamped, one per world object of the
                                           collision config (frame_id "world" or empty)
            ~/human                        geometry_msgs/PoseStamped, when the config has `ssm`
Publishes   /<controller_name>/commands    std_msgs/Float64MultiArray: the filtered command, in
                                           `controller_joints` order (forward command controller)
         or /<controller_name>/joint_trajectory  trajectory_msgs/JointTrajectory, one point
                                           `trajectory_lead_s` ahead (joint trajectory controller;
                                           command_mode velocity). robot_ctrl.hardware.bridge
            ~/metrics                      std_msgs/Float64MultiArray per command:
                                           [t, h_min, intervention, solve_us, status],
                                           t = the stamp of the joint state it answers
                                           (status 0 ok, 1 relaxed, 2 brake, 3 rejected, 4 stop)
            /diagnostics                   diagnostic_msgs/DiagnosticArray (~10 Hz)
Services    ~/reset                        std_srvs/Trigger: clears a stop once a fresh state
                                           has arrived after it

Every nominal command is filtered against the latest joint state (CBF-QP, see
robot_ctrl.safety). A watchdog timer runs at the control period: while the e-stop is latched,
or the state or the command is older than `watchdog_periods` control periods, it publishes the
filter's braking command (decelerate at the limits to rest, then hold) instead. Bad input
(wrong length, NaN/Inf, unknown or missing joints, stamps that go backwards or are stale) is
rejected and counted; nothing non-finite is ever published.

Counters on /diagnostics, one per message: joint states `states` (accepted) or
`rejected_states` (sizes, at most 1024 names, empty or repeated names, NaN/Inf, values beyond
1e4, a stamp that is no ROS time, older than the last or stale); nominal commands `commands`
(filtered and forwarded), `held_commands` (not forwarded: no state yet, e-stop, stale state,
inactive) or `rejected_commands` (wrong length, checked before converting; NaN/Inf; refused by
the filter); obstacle poses `poses` or `rejected_poses` (frame, stamp, a quaternion that is
not unit within 1e-3, a position not finite or farther than 1 km). Rejections are logged once
per second and kind.
"""
from __future__ import annotations

import time

import numpy as np
from rclpy.clock import Clock, ClockType
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import PoseStamped
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Float64MultiArray
from std_srvs.srv import Trigger

from robot_ctrl.control.stamps import StampError, StampGuard
from robot_ctrl.hardware.bridge import HardwareInterface
from robot_ctrl.model import RobotModel
from robot_ctrl.ros.common import (
    ClockJumps,
    COMMAND_QOS,
    STATE_QOS,
    JointOrder,
    JointStateError,
    PolicyWatch,
    Param,
    declare_string_list,
    publish_status,
    stamp_to_sec,
    steady_clock,
)
from robot_ctrl.ros.hardware_output import HardwareOutput
from robot_ctrl.ros.lifecycle import ManagedNode
from robot_ctrl.ros.validation import LogThrottle, check_stamp
from robot_ctrl.safety.config import build_filter, load_safety_config
from robot_ctrl.safety.constraints import CollisionDistance, SpeedSeparation

PARAMS = {
    "robot": Param("panda", "Robot name (config/robots/<robot>.yaml) or path to a robot YAML."),
    "config": Param("", "Safety config name (config/safety/<name>.yaml) or path; empty: the robot's name."),
    "command_mode": Param("effort", "What the commands are: effort (torques) or velocity.",
                          choices=("effort", "velocity")),
    "controller_name": Param("forward_effort_controller", "Filtered commands go to /<controller_name>/commands "
                                                          "(or /<controller_name>/joint_trajectory)."),
    "controller_type": Param("forward", "The ros2_control controller that takes the command: a forward command "
                                        "controller or a joint trajectory controller.",
                             choices=("forward", "trajectory")),
    "trajectory_lead_s": Param(0.01, "Joint trajectory controller: the streamed point's time_from_start (s).",
                               positive=True),
    "control_period_s": Param(0.002, "Control period (s): the filter's dt and the watchdog's tick.", positive=True),
    "watchdog_periods": Param(5, "Brake when the command is older than this many periods.", positive=True),
    "watchdog_clock": Param("auto", "Clock of the state/command watchdogs: auto (node under use_sim_time, else "
                                    "steady), steady (also sees a stalled /clock) or node.",
                            choices=("auto", "steady", "node")),
    "state_timeout_periods": Param(1.75, "Brake when no joint state came for this many periods (one missed state and 3/4 of a period of jitter).", positive=True),
    "stamp_tolerance_s": Param(0.05, "A state's stamp may run ahead of its arrival by this much; more is a jump "
                                     "(robot_ctrl.control.stamps).", positive=True),
    "policy_liveliness": Param(True, "Brake and hold when a policy node seen on /policy/alive dies (DDS "
                                     "liveliness, 16 ms lease)."),
    "stale_state_s": Param(0.1, "Reject joint states whose stamp is older than this (s) vs. the node clock.",
                           positive=True),
    "diagnostics_rate_hz": Param(10.0, "Rate of /diagnostics.", positive=True),
}

QUAT_TOL = 1e-3  # |‖q‖ − 1| up to this is renormalized (as everywhere in the stack); beyond it: rejected
MAX_POSITION_M = 1e3  # a world pose farther than this from the origin is no measurement

# The safety filter composed in one process with the rest of the graph (robot-ctrl teleop,
# record, episodes, the benchmarks): one executor serves every node, so states are handled in
# bursts (a 2-period state timeout would trip on every policy inference) and the policy cannot
# die alone (its liveliness says nothing). Standalone (ros2 run / launch) the defaults hold.
COMPOSED_OVERRIDES = {"state_timeout_periods": 5.0, "watchdog_clock": "node", "policy_liveliness": False}

STATUS_CODE = {"ok": 0.0, "relaxed": 1.0, "brake": 2.0, "rejected": 3.0, "stop": 4.0}


class SafetyNode(ManagedNode):
    def __init__(self, **kwargs):
        super().__init__("safety_filter", PARAMS, **kwargs)

    def declare_more_parameters(self) -> dict:
        return {"controller_joints": declare_string_list(
            self, "controller_joints", "The controller's joints in its command order; empty: the robot YAML's "
                                       "order. Robot joints not listed are not driven.")}

    def configure(self) -> None:
        self._log = LogThrottle(self.get_logger())  # rejections: once per second per kind
        p = self.params
        self.robot = robot = RobotModel.load(p["robot"])
        cfg = load_safety_config(p["config"] or robot.name)
        self.dt = float(p["control_period_s"])
        self.filter = build_filter(robot, cfg, mode=p["command_mode"], dt=self.dt)
        self.order = JointOrder(robot.joint_names)
        self.n = robot.n
        self.watchdog_s = p["watchdog_periods"] * self.dt
        self.state_timeout_s = p["state_timeout_periods"] * self.dt
        self.stamps = StampGuard(tolerance=p["stamp_tolerance_s"])
        # auto: the node clock under use_sim_time (a lockstep simulator's time waits for the
        # command, and a stalled simulator moves nothing), else the steady clock (hardware: an
        # NTP step of the system clock is no stall)
        wd = p["watchdog_clock"]
        if wd == "auto":
            wd = "node" if self.get_parameter("use_sim_time").value else "steady"
        self._wd_clock = Clock(clock_type=ClockType.STEADY_TIME) if wd == "steady" else self.get_clock()
        self._wd_node = wd == "node"
        self.clock_jumps = ClockJumps(self, self._log)
        # state
        self.q = self.v = None
        self.t_state = None  # stamp of the latest accepted state (node clock domain)
        self.t_state_rx = None  # watchdog clock when it arrived
        self.t_cmd_rx = None
        self._state_rx_steady = self._cmd_rx_steady = None  # the same on the steady clock (s)
        self.estop = False
        self.stop_since = None  # node clock time of the latest stop
        self.last_cmd = None  # the last published command (finite)
        self.state_brake_delay_s = None  # last state -> the latest state-watchdog brake
        self.policy_lost_stamp = None  # stamp of the state in hand when the latest policy loss braked
        self._t_pub = -np.inf  # watchdog clock of the last published command
        # publish times (steady clock: a sim clock that jumps would bunch or spread them), a ring
        # read at each diagnostics: the busiest 50 ms
        self._pub_ring = np.full(2048, -np.inf)
        self._pub_i = 0
        self.busiest_50ms = 0  # the most commands out in any 50 ms since configure
        # counters
        self.counts = {k: 0 for k in ("commands", "rejected_commands", "states", "rejected_states", "poses",
                                      "rejected_poses", "watchdog_brakes", "state_watchdog_brakes", "estops", "resets", "refused_resets",
                                      "relaxed", "brakes", "nonfinite_replaced", "held_commands", "inactive_brakes",
                                      "policy_brakes")}
        self._window = []  # (solve_us, intervention, h_min, binding) since the last diagnostics
        self._watchdog_active = False

        iface = HardwareInterface(controller_type=p["controller_type"], controller_name=p["controller_name"],
                                  interface=p["command_mode"], joints=tuple(p["controller_joints"]),
                                  lead_s=p["trajectory_lead_s"])
        self.output = HardwareOutput(self, robot.joint_names, iface)
        m = self.managed
        m(self.output.pub)
        self.metrics_pub = m(self.create_publisher(Float64MultiArray, "~/metrics", COMMAND_QOS))
        self.diag_pub = m(self.create_publisher(DiagnosticArray, "/diagnostics", 10))
        m(self.create_subscription(JointState, "/joint_states", self._on_state, STATE_QOS))
        m(self.create_subscription(Float64MultiArray, "~/nominal", self._on_nominal, COMMAND_QOS))
        m(self.create_subscription(Bool, "/estop", self._on_estop, 10))
        self.policy = PolicyWatch(self, self._on_policy_lost, self._on_policy_back) \
            if p["policy_liveliness"] else None
        if self.policy is not None:
            m(self.policy.sub)
        m(self.create_service(Trigger, "~/reset", self._on_reset))
        self.movable = {}
        for c in self.filter.constraints:
            if isinstance(c, CollisionDistance):
                for name in sorted(c.set.world):
                    self.movable[name] = c.set
                    m(self.create_subscription(PoseStamped, f"~/obstacles/{name}",
                                               lambda msg, n=name: self._on_pose(n, msg), 10))
            if isinstance(c, SpeedSeparation):
                self.ssm = c
                m(self.create_subscription(PoseStamped, "~/human", lambda msg: self._on_pose("human", msg), 10))
        m(self.create_timer(self.dt, self._watchdog, clock=self._wd_clock))
        # the state deadline: restarted by every accepted state, so it fires state_timeout_s
        # after the last one (the periodic tick alone would add up to a period on top)
        self._state_deadline = m(self.create_timer(self.state_timeout_s, self._on_state_deadline, clock=self._wd_clock))
        m(self.create_timer(1.0 / p["diagnostics_rate_hz"], self._publish_diagnostics, clock=steady_clock()))
        self._metrics = Float64MultiArray()
        self.get_logger().info(
            f"{robot.name}: {p['command_mode']} filter, {self.filter.m} rows, "
            f"{self.filter.collision_pairs} collision pairs ({cfg.source}); ~/nominal -> {self.output.describe()}")

    # -- lifecycle -------------------------------------------------------------------------
    def on_activated(self) -> None:
        # forward commands from now on: no command from before counts (the watchdog waits for
        # the first new one), the filter starts from the current state; an e-stop stays latched
        self.t_cmd_rx = None
        self.filter.reset()

    # on deactivate the watchdog tick brakes to a stop and holds (see _watchdog)

    # -- time ------------------------------------------------------------------------------
    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _wd_now(self) -> float:
        """The watchdogs' clock: when inputs arrived, how old they are (see watchdog_clock)."""
        return self._wd_clock.now().nanoseconds * 1e-9

    def _age(self, t_rx: float, rx_steady: float | None, now: float) -> float:
        """How old an input is on the watchdog clock. On the node clock (use_sim_time) no older
        than on the steady clock either: a /clock that leaps ahead ages nothing that has not
        aged in wall time, so a clock jump is no stall (a lagging or lockstep simulator's time,
        slower than the wall clock, is what counts there)."""
        age = now - t_rx
        if self._wd_node and rx_steady is not None:
            age = min(age, time.monotonic() - rx_steady)
        return age

    def _state_age(self, now: float) -> float:
        return self._age(self.t_state_rx, self._state_rx_steady, now)

    # -- inputs ----------------------------------------------------------------------------
    def _on_state(self, msg: JointState) -> None:
        try:
            q, v = self.order.state(msg)
            t = stamp_to_sec(msg.header.stamp)
            now = self._now()
            try:  # out of order, or a jump: refused; a confirmed new timeline: start over
                verdict = self.stamps.check(t, time.monotonic())
            except StampError as exc:
                raise JointStateError(str(exc)) from None
            if verdict == "reset":  # the clock itself changed (simulator reset, a confirmed jump)
                self.filter.reset()
            # stamps are comparable with the node clock only in the same time domain (sim time
            # with use_sim_time, wall time on hardware); otherwise the ordering check above holds
            if t > 0 and abs(now - t) < 1e6 and now - t > self.params["stale_state_s"]:
                raise JointStateError(f"stale stamp: {now - t:.3f} s old")
        except JointStateError as exc:
            self.counts["rejected_states"] += 1
            self._log("1", f"rejected joint state: {exc}")
            return
        self.counts["states"] += 1
        self.q, self.v, self.t_state, self.t_state_rx = q, v, t, self._wd_now()
        self._state_rx_steady = time.monotonic()
        self._state_deadline.reset()
        self.note_state()

    def _on_nominal(self, msg: Float64MultiArray) -> None:
        """Every message is counted once: rejected_commands (wrong length, NaN/Inf, or refused
        by the filter), held_commands (not forwarded: no state yet, e-stop, stale state,
        inactive) or commands (filtered and forwarded)."""
        self.t_cmd_rx = self._wd_now()
        self._cmd_rx_steady = time.monotonic()
        forwarding = (self.q is not None and not self.estop and not self._stale() and self.active
                      and not self.policy_lost())
        # the length first: a huge array is never converted
        size = len(msg.data)
        u_nom = np.asarray(msg.data, dtype=float) if size == self.n else np.full(self.n + 1, np.nan)
        if size != self.n or not np.isfinite(u_nom).all():
            self.counts["rejected_commands"] += 1
            self._log("2", f"rejected command ({size} values for {self.n} joints, or non-finite)"
                      + ("; braking" if forwarding else ""))
            if forwarding:  # the filter refuses it too and brakes from the last safe command
                out = self.filter.step(self.q, self.v, u_nom)
                self._window.append((out.solve_us, out.intervention, out.h_min, out))
                self._publish(out.u, out.h_min, out.intervention, out.solve_us, out.status)
            return
        if self.q is None:  # (start-up: the controller saw a state first) not bad input, held
            self.counts["held_commands"] += 1
            self._log("3", "command before any joint state: not forwarded", "warning")
            return
        if not forwarding:
            self.counts["held_commands"] += 1
            return  # the watchdog publishes the braking command
        out = self.filter.step(self.q, self.v, u_nom)
        if out.status == "rejected":  # e.g. a sum that overflows: braking
            self.counts["rejected_commands"] += 1
            self._log("4", "rejected command (refused by the filter); braking")
        else:
            self.counts["commands"] += 1
        self.counts["relaxed"] += out.status == "relaxed"
        self.counts["brakes"] += out.status == "brake"
        self._window.append((out.solve_us, out.intervention, out.h_min, out))
        self._publish(out.u, out.h_min, out.intervention, out.solve_us, out.status)

    def _on_estop(self, msg: Bool) -> None:
        if msg.data and not self.estop:
            self.estop = True
            self.stop_since = self._wd_now()
            self.counts["estops"] += 1
            self.get_logger().warning("e-stop: braking to a stop and holding until ~/reset")
            self._brake("stop")

    def _on_reset(self, request, response):
        now = self._wd_now()
        fresh = self.t_state_rx is not None and (self.stop_since is None or self.t_state_rx > self.stop_since) \
            and self._state_age(now) <= self.watchdog_s
        if not fresh:
            self.counts["refused_resets"] += 1
            response.success = False
            response.message = "no fresh joint state since the stop; still braking"
            return response
        was = "e-stop" if self.estop else "no stop"
        self.estop = False
        self.stop_since = None
        self.filter.reset()
        self.counts["resets"] += 1
        response.success = True
        response.message = f"cleared ({was}); filtering commands again"
        self.get_logger().info(response.message)
        return response

    def _on_pose(self, name: str, msg: PoseStamped) -> None:
        try:
            if msg.header.frame_id not in ("", "world"):
                raise ValueError(f"frame_id '{msg.header.frame_id[:40]}' (expected 'world')")
            check_stamp(msg.header.stamp)
            p, o = msg.pose.position, msg.pose.orientation
            quat = np.array([o.x, o.y, o.z, o.w])
            if not np.isfinite(quat).all() or abs(np.linalg.norm(quat) - 1.0) > QUAT_TOL:
                raise ValueError(f"orientation must be a finite unit quaternion (norm within {QUAT_TOL} of 1)")
            pos = np.array([p.x, p.y, p.z])
            if not (np.isfinite(pos).all() and np.abs(pos).max() <= MAX_POSITION_M):
                raise ValueError(f"position must be finite and within {MAX_POSITION_M:g} m of the origin")
            target = self.ssm.set if name == "human" else self.movable[name]
            target.set_world_pose(name, pos, quat)
        except (ValueError, KeyError) as exc:
            self.counts["rejected_poses"] += 1
            self._log("6", f"rejected pose of '{name}': {exc}")
            return
        self.counts["poses"] += 1

    # -- watchdog and braking --------------------------------------------------------------
    def _stale(self) -> bool:
        now = self._wd_now()
        return self.t_state_rx is None or self._state_age(now) > self.state_timeout_s

    def policy_lost(self) -> bool:
        return self.policy is not None and self.policy.lost

    def _on_policy_lost(self) -> None:
        """A policy seen alive is gone: brake at once (not at the next watchdog tick) and hold
        until one is back."""
        self._log("6", "policy lost (no liveliness within the 16 ms lease): braking and holding", "warning")
        if self.active and not self.estop:
            self.counts["policy_brakes"] += 1
            self.policy_lost_stamp = self.t_state
            self._brake("brake")

    def _on_policy_back(self) -> None:
        self._log("7", "policy alive again: filtering commands", "warning")

    def _on_state_deadline(self) -> None:
        # (a timer the executor had already found ready before a state reset it still fires:
        # only a deadline that really passed counts)
        if self.t_state_rx is not None and self._state_age(self._wd_now()) >= self.state_timeout_s - 0.1 * self.dt:
            self._watchdog(state_deadline=True)

    def _watchdog(self, state_deadline: bool = False) -> None:
        if self.q is None:
            return
        now = self._wd_now()
        state_old = state_deadline or self._state_age(now) > self.state_timeout_s
        cmd_old = self.t_cmd_rx is None or self._age(self.t_cmd_rx, self._cmd_rx_steady, now) > self.watchdog_s
        if self.estop:
            self._brake("stop", periodic=True)
        elif not self.active:  # configured, not active (before activation, after deactivate): hold
            self.counts["inactive_brakes"] += 1
            self._brake("stop", periodic=True)
        elif self.policy_lost():
            self.counts["policy_brakes"] += 1
            self._brake("brake", periodic=True)
        elif state_old or (cmd_old and self.t_cmd_rx is not None):
            if not self._watchdog_active:
                self.counts["watchdog_brakes"] += 1
                if state_old:  # how long after the last state the brake went out (watchdog clock)
                    self.state_brake_delay_s = self._state_age(now)
                    self.counts["state_watchdog_brakes"] += 1
                limit = self.state_timeout_s if state_old else self.watchdog_s
                self._log("5", f"watchdog: {'state' if state_old else 'command'} older than "
                               f"{limit * 1e3:.0f} ms; braking", "warning")
            self._watchdog_active = True
            self._brake("brake", periodic=True)
        else:
            self._watchdog_active = False

    def _brake(self, status: str, periodic: bool = False) -> None:
        """periodic (the watchdog's tick and the state deadline): not when a command went out
        less than 0.9 period ago, so that the output never runs faster than one per period."""
        if self.q is None:
            return
        if periodic and self._wd_now() - self._t_pub < 0.9 * self.dt:
            return
        u = self.filter.brake(self.q, self.v)
        self._publish(u, np.nan, 0.0, 0.0, status)

    def _publish(self, u, h_min, intervention, solve_us, status) -> None:
        u = np.asarray(u, dtype=float)
        if u.shape != (self.n,) or not np.isfinite(u).all():  # never publish a non-finite value
            self.counts["nonfinite_replaced"] += 1
            u = self.last_cmd if self.last_cmd is not None else np.zeros(self.n)
        self.last_cmd = u
        self._t_pub = self._wd_now()
        self._pub_ring[self._pub_i % self._pub_ring.size] = time.monotonic()
        self._pub_i += 1
        self.output.publish(u, self.q)
        # stamped with the joint state the command answers (sim time in simulation)
        self._metrics.data = [float(self.t_state), float(h_min) if np.isfinite(h_min) else -1.0,
                              float(intervention), float(solve_us), STATUS_CODE[status]]
        self.metrics_pub.publish(self._metrics)

    # -- diagnostics -----------------------------------------------------------------------
    def _output_rate(self) -> dict:
        """Commands out in the busiest 50 ms (steady clock): the latest 2048 commands, and the
        most since configure (one command per period is 25 at 500 Hz; states that arrive bunched
        bunch the commands too). `published`: every command out (filtered or braking), to count
        against the states in."""
        t = np.sort(self._pub_ring[np.isfinite(self._pub_ring)])
        if t.size == 0:
            return {"busiest_50ms": self.busiest_50ms, "published": self._pub_i}
        n = np.searchsorted(t, t + 0.05, side="left") - np.arange(t.size)
        self.busiest_50ms = max(self.busiest_50ms, int(n.max()))
        return {"busiest_50ms": self.busiest_50ms, "recent_busiest_50ms": int(n.max()), "published": self._pub_i,
                "recent_typical_50ms": float(np.median(n[t + 0.05 <= t[-1]])) if t[-1] - t[0] > 0.05 else float(n.max())}

    def _publish_diagnostics(self) -> None:
        w, self._window = self._window, []
        values = dict(self.counts)
        values.update(stamp_jumps=self.stamps.jumps, stamp_resets=self.stamps.resets,
                      duplicate_states=self.stamps.duplicates, clock_jumps=self.clock_jumps.count,
                      policy_losses=self.policy.losses if self.policy is not None else 0,
                      policy_seen=self.policy is not None and self.policy.seen)
        values.update(self._output_rate())
        if self.policy_lost_stamp is not None:  # (s, the robot's clock: where the stop began)
            values["policy_lost_state_stamp"] = f"{self.policy_lost_stamp:.9f}"
        if self.state_brake_delay_s is not None:
            values["state_watchdog_delay_periods"] = f"{self.state_brake_delay_s / self.dt:.3f}"
        values.update(estop_latched=self.estop, watchdog_braking=self._watchdog_active, rows=self.filter.m,
                      collision_pairs=self.filter.collision_pairs, fallbacks=self.filter.fallbacks,
                      filter_rejected=self.filter.rejected)
        if w:
            solve = np.array([x[0] for x in w])
            last = w[-1][3]
            values.update(
                solve_us_p50=f"{np.percentile(solve, 50):.1f}", solve_us_max=f"{solve.max():.1f}",
                intervention_max=f"{max(x[1] for x in w):.6g}", intervention_last=f"{w[-1][1]:.6g}",
                h_min=f"{min(x[2] for x in w):.6g}", active_constraints=",".join(last.binding[:12]),
                violated_constraints=",".join(last.violated[:12]))
        values.update(self.lifecycle_values())
        level, message = DiagnosticStatus.OK, "filtering"
        if not self.active:
            level, message = DiagnosticStatus.WARN, "inactive: braking/holding, not forwarding commands"
        elif self.estop:
            level, message = DiagnosticStatus.ERROR, "e-stop latched: braking/holding; call ~/reset"
        elif self._watchdog_active:
            level, message = DiagnosticStatus.ERROR, "watchdog: stale input, braking"
        elif self.counts["rejected_commands"] or self.counts["rejected_states"] or self.counts["relaxed"]:
            level, message = DiagnosticStatus.WARN, "rejected input or relaxed constraints"
        publish_status(self, self.diag_pub, "robot_ctrl/safety_filter", self.robot.name, level, message, values)


def main(args=None):
    from robot_ctrl.ros.runner import run_nodes

    run_nodes([SafetyNode], args=args)


if __name__ == "__main__":
    main()
