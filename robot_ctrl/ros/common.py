"""Shared pieces of the nodes: parameter declaration, QoS, message conversion."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from rcl_interfaces.msg import ParameterDescriptor, ParameterType
from rclpy.node import Node
from rclpy.duration import Duration
from rclpy.qos import DurabilityPolicy, HistoryPolicy, LivelinessPolicy, QoSProfile, ReliabilityPolicy

# Joint states and commands: reliable, keep last 10. Lockstep simulation needs every command
# to arrive; a depth of 10 absorbs bursts without letting a stale backlog build up.
STATE_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
COMMAND_QOS = STATE_QOS
# Trajectories (action chunks): reliable; a late joiner gets nothing old (volatile).
TRAJECTORY_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE,
                            durability=DurabilityPolicy.VOLATILE)
# /clock: only the newest matters (ROS convention: depth 1).
CLOCK_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
# /policy/alive: the policy node's liveliness. DDS asserts it from its own threads
# (AUTOMATIC), so a killed policy process is noticed within about the lease however busy the
# Python side is. 16 ms: kill -> brake stays within about 20 ms (the lease + 2-4 ms); a 10 ms
# lease flapped on a saturated 2-core machine, 15 ms now and then. The safety
# filter and the controller subscribe with the same lease and brake / hold when it is lost.
POLICY_LEASE_S = 0.016
LIVELINESS_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST,
                            liveliness=LivelinessPolicy.AUTOMATIC,
                            liveliness_lease_duration=Duration(nanoseconds=int(POLICY_LEASE_S * 1e9)))


class PolicyWatch:
    """The policy node's liveliness on /policy/alive (LIVELINESS_QOS): `lost` from the moment
    a policy seen alive is gone (its process died, or it was shut down) until one is alive
    again; `on_lost()` and `on_back()` run at those two edges. `sub` is the subscription."""

    def __init__(self, node, on_lost, on_back=None):
        from rclpy.event_handler import SubscriptionEventCallbacks
        from std_msgs.msg import Bool

        self.on_lost, self.on_back = on_lost, on_back
        self.seen = self.lost = False
        self.losses = 0
        self.sub = node.create_subscription(Bool, "/policy/alive", lambda msg: None, LIVELINESS_QOS,
                                            event_callbacks=SubscriptionEventCallbacks(liveliness=self._on_event))

    def _on_event(self, event) -> None:
        if event.alive_count > 0:
            was_lost = self.lost
            self.seen, self.lost = True, False
            if was_lost and self.on_back is not None:
                self.on_back()
        # a writer that was alive went (counted down from alive, or up into not-alive): a policy
        # seen alive even if its own "alive" event was merged into this one before it was taken
        elif (self.seen or event.alive_count_change < 0 or event.not_alive_count_change > 0) and not self.lost:
            self.lost = True
            self.losses += 1
            self.on_lost()


# the task goal: latched (transient local, depth 1) so a node that starts late still gets it
GOAL_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL,
                      history=HistoryPolicy.KEEP_LAST)

_TYPES = {
    bool: ParameterType.PARAMETER_BOOL,
    int: ParameterType.PARAMETER_INTEGER,
    float: ParameterType.PARAMETER_DOUBLE,
    str: ParameterType.PARAMETER_STRING,
    list: ParameterType.PARAMETER_DOUBLE_ARRAY,
}


class ParameterError(ValueError):
    """A node parameter has a bad value; the message names it."""


@dataclass(frozen=True)
class Param:
    default: Any
    description: str
    choices: tuple | None = None
    positive: bool = False


def declare_parameters(node: Node, spec: dict[str, Param]) -> dict[str, Any]:
    """Declare every parameter of `spec` with a descriptor and return the values, validated."""
    values = {}
    for name, p in spec.items():
        desc = ParameterDescriptor(
            name=name,
            type=_TYPES[type(p.default)],
            description=p.description + (f" One of {list(p.choices)}." if p.choices else ""),
        )
        if isinstance(p.default, list) and not p.default:
            # an empty list has no inferable type: declare the type, value unset -> []
            from rclpy.parameter import Parameter as RclParameter

            value = node.declare_parameter(name, RclParameter.Type.DOUBLE_ARRAY, desc).value
            value = [] if value is None else value
        else:
            value = node.declare_parameter(name, p.default, desc).value
        if p.choices and value not in p.choices:
            raise ParameterError(f"parameter '{name}' of node '{node.get_name()}' is '{value}'; "
                                 f"expected one of {list(p.choices)}")
        if p.positive and not (value > 0):
            raise ParameterError(f"parameter '{name}' of node '{node.get_name()}' must be > 0, got {value}")
        if isinstance(p.default, list):
            value = [float(x) for x in value]
        values[name] = value
    return values


def declare_string_list(node: Node, name: str, description: str, default: list[str] | None = None) -> list[str]:
    """Declare a list-of-names parameter (joint names; empty by default) and return it, checked:
    no empty names, no repeats. It takes a string array (params files: `[a, b]`) or one string,
    comma-separated or in YAML list form (`-p name:="a, b"`; what a launch argument passes with
    ParameterValue(..., value_type=str)); an empty string or list means none; not set: `default`."""
    desc = ParameterDescriptor(name=name, dynamic_typing=True,
                               description=description + " A string array, or one comma-separated string.")
    raw = node.declare_parameter(name, None, desc).value
    if raw is None:  # not set: the default
        raw = list(default or [])
    if isinstance(raw, str):
        raw = [v for v in raw.strip().strip("[]").split(",") if v.strip()] if raw.strip() else []
    if not isinstance(raw, (list, tuple)) or not all(isinstance(v, str) for v in raw):
        raise ParameterError(f"parameter '{name}' of node '{node.get_name()}' must be a list of names, "
                             f"e.g. {name}:=\"[a, b]\", got {raw!r}")
    value = [v.strip().strip("'\"") for v in raw]
    if any(not v for v in value):
        raise ParameterError(f"parameter '{name}' of node '{node.get_name()}' has an empty joint name")
    dupes = sorted({v for v in value if value.count(v) > 1})
    if dupes:
        raise ParameterError(f"parameter '{name}' of node '{node.get_name()}' repeats {', '.join(dupes)}")
    return value


def publish_status(node: Node, pub, name: str, hardware_id: str, level, message: str, values: dict) -> None:
    """Publish one diagnostic_msgs/DiagnosticStatus (key/values as strings) on `pub`."""
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

    st = DiagnosticStatus(name=name, hardware_id=hardware_id, level=level, message=message)
    st.values = [KeyValue(key=k, value=str(v)) for k, v in values.items()]
    arr = DiagnosticArray(status=[st])
    arr.header.stamp = node.get_clock().now().to_msg()
    pub.publish(arr)


def rotation_from_quaternion(x: float, y: float, z: float, w: float, tol: float = 1e-3) -> np.ndarray:
    """Rotation matrix of a ROS quaternion (x, y, z, w). Raises ValueError when it is not finite
    or not of unit norm within `tol` (it is normalized within that)."""
    import pinocchio as pin

    quat = np.array([w, x, y, z], dtype=float)
    if not np.all(np.isfinite(quat)):
        raise ValueError("quaternion has NaN or Inf")
    norm = float(np.linalg.norm(quat))
    if abs(norm - 1.0) > tol:
        raise ValueError(f"not a unit quaternion (norm {norm:.4f})")
    return pin.Quaternion(*(quat / norm)).toRotationMatrix()


def quaternion_from_rotation(R) -> tuple[float, float, float, float]:
    """ROS quaternion (x, y, z, w) of a rotation matrix."""
    import pinocchio as pin

    q = pin.Quaternion(np.asarray(R, dtype=float))
    return float(q.x), float(q.y), float(q.z), float(q.w)


def stamp_to_sec(stamp) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def sec_to_stamp(t: float, stamp) -> None:
    """Write time t (s) into a builtin_interfaces/Time in place."""
    ns = int(round(t * 1e9))
    stamp.sec, stamp.nanosec = divmod(ns, 1_000_000_000)


class JointStateError(ValueError):
    pass


class JointOrder:
    """Maps the joint order of incoming messages onto the controlled joints, by name.

    The index map is cached per name tuple, so the usual case (same names every message)
    costs one tuple comparison.
    """

    def __init__(self, joint_names):
        self.joint_names = list(joint_names)
        self.n = len(self.joint_names)
        self._names: tuple | None = None
        self._idx: np.ndarray | None = None

    def index(self, names) -> np.ndarray:
        names = tuple(names)
        if names != self._names:
            pos = {n: i for i, n in enumerate(names)}
            missing = [j for j in self.joint_names if j not in pos]
            if missing:
                raise JointStateError(f"missing joints: {', '.join(missing)}")
            if len(pos) != len(names):
                raise JointStateError("duplicate joint names")
            self._idx = np.array([pos[j] for j in self.joint_names], dtype=int)
            self._names = names
        return self._idx

    def state(self, msg) -> tuple[np.ndarray, np.ndarray]:
        """(q, v) from a sensor_msgs/JointState; velocity defaults to zero if absent. Checked
        before anything is converted (sizes, names, stamp: validation.check_joint_state) and
        after (finite, within validation.MAX_JOINT_VALUE); JointStateError says what is wrong."""
        _validation.check_joint_state(msg)
        idx = self.index(msg.name)
        q = np.asarray(msg.position, dtype=float)[idx]
        v = np.asarray(msg.velocity, dtype=float)[idx] if len(msg.velocity) else np.zeros(self.n)
        if not (np.all(np.isfinite(q)) and np.all(np.isfinite(v))):
            raise JointStateError("non-finite joint state")
        _validation.check_joint_values(q, v)
        return q, v


def steady_clock():
    """A steady (monotonic) clock for timers that must tick in wall time whatever the node clock
    does: the diagnostics, which an operator needs at their rate also while a lockstep simulator
    has stopped its time or /clock jumps."""
    from rclpy.clock import Clock, ClockType

    return Clock(clock_type=ClockType.STEADY_TIME)


class ClockJumps:
    """Counts (`count`, for /diagnostics) and logs the jumps of a node's clock under
    use_sim_time: a /clock that leaps forward by more than `forward_s` or goes back at all (a
    simulator reset). `log`: a `LogThrottle`. Without use_sim_time it counts nothing (the node
    clock is the system clock).

    It watches /clock itself, one message after the other, rather than through an rcl jump
    callback: rclpy calls those from inside the time source's /clock callback through
    pybind11, and in CI one of those calls failed ("Unable to convert call argument '0' to
    Python object") and took the controller down with it on a simulator reset. A count must
    never cost the node. What a jump means for a node's timing is the node's business; the
    controller times chunks by the joint states' stamps, the safety filter's watchdogs run on
    `watchdog_clock`."""

    def __init__(self, node: Node, log, forward_s: float = 0.1):
        self.count = 0
        self._log = log
        self._forward_ns = int(forward_s * 1e9)
        self._last_ns: int | None = None
        self._sub = None
        if node.get_parameter("use_sim_time").value:
            from rosgraph_msgs.msg import Clock

            # depth 20 (40 ms of a 500 Hz /clock): a node held up for a moment takes every
            # message after it, so the hold-up is not miscounted as a leap forward
            self._sub = node.create_subscription(Clock, "/clock", self.on_clock,
                                                 QoSProfile(depth=20, reliability=ReliabilityPolicy.RELIABLE))

    def on_clock(self, msg) -> None:
        ns = msg.clock.sec * 1_000_000_000 + msg.clock.nanosec
        last, self._last_ns = self._last_ns, ns
        if last is None:
            return
        delta = ns - last
        if delta < 0 or delta > self._forward_ns:
            self.count += 1
            self._log("clock", f"the node clock jumped {delta * 1e-9:+.3f} s (use_sim_time: /clock)", "warning")


# (at the end: validation imports JointStateError from here)
import robot_ctrl.ros.validation as _validation  # noqa: E402
