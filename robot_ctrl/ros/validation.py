"""Cheap structural checks on incoming messages, done before anything is converted.

Every node runs these first in its callbacks, so that a malformed message (a huge array, a
stamp that is no ROS time) is rejected in O(1) or O(len) Python without numpy conversion,
allocation proportional to garbage, or a log line listing 10⁵ names. They raise ValueError
(JointStateError for joint states), which the callbacks count as rejections.

Limits: a joint-state or trajectory message names at most MAX_JOINTS joints (far more than
any arm, hand or humanoid has); a stamp has sec >= 0 and 0 <= nanosec < 10⁹
(builtin_interfaces/Time: a negative time is no ROS time, nanosec counts the fraction);
a Duration (time_from_start) has nanosec < 10⁹ too.
"""
from __future__ import annotations

from robot_ctrl.ros.common import JointStateError

MAX_JOINTS = 1024
# no joint is ever this far (rad or m) from zero, nor this fast (rad/s, m/s): a value beyond is
# garbage (and 1e300 overflows to Inf in the first spline or torque computed from it)
MAX_JOINT_VALUE = 1e4
NS = 1_000_000_000


def check_stamp(stamp, what: str = "stamp") -> None:
    """ValueError unless `stamp` (builtin_interfaces/Time) is a valid ROS time."""
    if stamp.sec < 0:
        raise ValueError(f"{what} is negative ({stamp.sec} s)")
    if stamp.nanosec >= NS:
        raise ValueError(f"{what} has nanosec {stamp.nanosec} >= 1e9 (not normalized)")


def check_duration(d, what: str = "time_from_start") -> None:
    """ValueError unless `d` (builtin_interfaces/Duration) has nanosec < 1e9."""
    if d.nanosec >= NS:
        raise ValueError(f"{what} has nanosec {d.nanosec} >= 1e9 (not normalized)")


def check_joint_state(msg, max_joints: int = MAX_JOINTS) -> None:
    """JointStateError unless `msg` (sensor_msgs/JointState) is well formed: at most
    `max_joints` names, none empty; position as long as name; velocity and effort empty or as
    long as name; a valid stamp. (Which joints it must name, and finiteness, are checked by
    common.JointOrder.)"""
    n = len(msg.name)
    if n > max_joints:
        raise JointStateError(f"{n} joint names (at most {max_joints})")
    if len(msg.position) != n:
        raise JointStateError(f"{len(msg.position)} positions for {n} names")
    for field in ("velocity", "effort"):
        k = len(getattr(msg, field))
        if k not in (0, n):
            raise JointStateError(f"{k} {field} values for {n} names (must be 0 or {n})")
    if "" in msg.name:
        raise JointStateError("empty joint name")
    try:
        check_stamp(msg.header.stamp)
    except ValueError as exc:
        raise JointStateError(str(exc)) from None


def check_joint_values(*arrays, what: str = "joint state") -> None:
    """JointStateError if a value of the (finite) arrays exceeds MAX_JOINT_VALUE in magnitude."""
    import numpy as np

    for a in arrays:
        if len(a) and np.abs(a).max() > MAX_JOINT_VALUE:
            raise JointStateError(f"{what} has a value beyond {MAX_JOINT_VALUE:g} (rad, m, or per s)")


def check_names(names, what: str = "joint_names", max_joints: int = MAX_JOINTS) -> None:
    """ValueError if `names` is too long or has an empty name."""
    if len(names) > max_joints:
        raise ValueError(f"{what} has {len(names)} names (at most {max_joints})")
    if "" in names:
        raise ValueError(f"{what} has an empty name")


class LogThrottle:
    """Logs a rejection at most once per `period_s` per key, and says how many were not logged.

    rclpy's `throttle_duration_sec` looks up the caller's frame (inspect) on every call, also
    when the line is throttled: about 0.5 ms, which a flood of malformed messages turns into
    the node's main cost. This decides with one clock read and a dict lookup."""

    def __init__(self, logger, period_s: float = 1.0):
        self.logger = logger
        self.period_s = float(period_s)
        self._next: dict[str, float] = {}
        self._skipped: dict[str, int] = {}

    def __call__(self, key: str, text, level: str = "error") -> None:
        """Log `text` (a string, or a callable giving it: built only when logged) under `key`."""
        import time

        now = time.monotonic()
        if now < self._next.get(key, -1.0):
            self._skipped[key] = self._skipped.get(key, 0) + 1
            return
        self._next[key] = now + self.period_s
        skipped = self._skipped.pop(key, 0)
        line = text() if callable(text) else text
        if skipped:
            line += f" (and {skipped} more like it in the last {self.period_s:g} s)"
        # (one call line per severity: rclpy keys its call sites by the caller's line)
        if level == "error":
            self.logger.error(line)
        elif level == "warning":
            self.logger.warning(line)
        else:
            self.logger.info(line)
