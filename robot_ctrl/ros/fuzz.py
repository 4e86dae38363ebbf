"""Malformed-message generators for fuzzing the nodes' inputs (tests/test_fuzz.py).

`malformed(msg_type, rng, valid_template=None)` returns a copy of a valid message (the
template, or a default one) broken in one or more random ways; `case(...)` returns the same
with the names of what was done (`Case.kinds`). Deterministic for a given
`numpy.random.Generator`.

Kinds are of two sorts:

* **bad** (`BAD`): the message breaks its contract and every consumer must reject it: wrong
  sizes (empty, short, long, ragged, huge: 10⁴–10⁶ elements, rarely), NaN/±Inf, empty /
  duplicate / unknown / missing joint names, wrong frame ids, zero or non-unit quaternions,
  stamps that are no ROS time (negative, nanosec >= 1e9), time_from_start non-increasing,
  negative or not normalized, too many points, gripper axis outside [-1, 1].
* **edge** (everything else): unusual but valid (shuffled joint order, an extra joint,
  empty velocity, a zero / far-future / slightly older stamp, huge finite values, junk in
  fields nobody reads, layout junk, ...): a node may accept or refuse it, but must count it
  either way and never publish anything non-finite because of it.

Some kinds are bad for one consumer and valid for another (a trajectory naming a subset of
the joints: fine for the controller, not for a ros2_control joint trajectory controller that
needs all of them): `Case.must_reject(allowed)` takes the kinds a consumer accepts.

Supported: sensor_msgs/JointState, trajectory_msgs/JointTrajectory, MultiDOFJointTrajectory,
std_msgs/Float64MultiArray, Float64, Bool, geometry_msgs/PoseStamped, TwistStamped,
sensor_msgs/Joy.
"""
from __future__ import annotations

import array
import math
from dataclasses import dataclass

import numpy as np
from geometry_msgs.msg import PoseStamped, Transform, TwistStamped
from sensor_msgs.msg import JointState, Joy
from std_msgs.msg import Bool, Float64, Float64MultiArray, MultiArrayDimension
from trajectory_msgs.msg import (JointTrajectory, JointTrajectoryPoint, MultiDOFJointTrajectory,
                                 MultiDOFJointTrajectoryPoint)

NAN, INF = float("nan"), float("inf")
NONFINITE = (NAN, INF, -INF)
HUGE_FINITE = (1e300, -1e300, 1.7976931348623157e308, -1.7976931348623157e308)
INT32_MAX = 2**31 - 1
P_HUGE = 0.003  # share of messages with a huge array (10^4..10^6 elements): keeps a run fast
MAX_POINTS = 1000  # the controller's default max_chunk_points
P_MANY = 0.003  # share of trajectories with more points than that

BAD = frozenset({
    # sizes
    "names_empty", "all_empty", "position_short", "position_long", "velocity_len", "effort_len",
    "ragged", "points_empty", "transforms_count", "data_empty", "data_short", "data_long",
    "axes_len", "buttons_len", "huge_array", "huge_names", "many_points",
    # values
    "nonfinite", "zero_quaternion", "nonunit_quaternion", "gripper_range",
    # names
    "drop_joint", "dup_name", "empty_name", "unknown_name", "wrong_ee", "extra_name",
    # frames and times
    "frame_wrong", "stamp_negative", "stamp_nanosec", "time_nonincreasing", "time_negative",
    "time_nanosec", "time_zero",
    # a pose 1e300 m away is no measurement, a joint at 1e300 rad no state or target
    "huge_position", "huge_joint_value",
})


@dataclass
class Case:
    msg: object
    kinds: frozenset

    def must_reject(self, allowed=frozenset()) -> bool:
        """Whether a consumer that also accepts the kinds `allowed` must reject this message."""
        return any(k in BAD and k not in allowed for k in self.kinds)


def malformed(msg_type, rng: np.random.Generator, valid_template=None):
    """A message of `msg_type` that is wrong in one or more random ways (see the module doc)."""
    return case(msg_type, rng, valid_template).msg


def case(msg_type, rng: np.random.Generator, valid_template=None, p_bad: float = 0.9) -> Case:
    """A malformed (probability `p_bad`, else edge-valid) message and what was done to it."""
    gen = _GENERATORS.get(msg_type)
    if gen is None:
        raise TypeError(f"no fuzz generator for {msg_type.__name__}")
    template = valid_template if valid_template is not None else _DEFAULTS[msg_type]()
    msg, kinds = gen(rng, template, rng.random() < p_bad)
    return Case(msg, frozenset(kinds))


# -- helpers ------------------------------------------------------------------------------

def _farr(values) -> array.array:
    return array.array("d", np.asarray(values, dtype=np.float64).tobytes())


def _huge_n(rng, lo: float = 1e5, hi: float = 1e6) -> int:
    return int(10 ** rng.uniform(math.log10(lo), math.log10(hi)))


def _huge_floats(rng, lo=1e5, hi=1e6) -> array.array:
    return _farr(rng.standard_normal(_huge_n(rng, lo, hi)))


def _bad_value(rng) -> float:
    return NONFINITE[rng.integers(3)]


def _huge_value(rng) -> float:
    return HUGE_FINITE[rng.integers(len(HUGE_FINITE))]


def _pick(rng, options, k_max: int = 2):
    """1..k_max distinct options."""
    k = int(rng.integers(1, k_max + 1))
    idx = rng.choice(len(options), size=min(k, len(options)), replace=False)
    return [options[i] for i in idx]


def _random_name(rng) -> str:
    return "fuzz_" + "".join(chr(int(c)) for c in rng.integers(97, 123, size=int(rng.integers(1, 8))))


WRONG_FRAMES = ("map", "odom", "base_link", "panda_link0", "World", "world ", " world", "wörld", "/world",
                "x" * 300)


def _bad_stamp(rng, stamp, kinds) -> None:
    if rng.random() < 0.5:
        stamp.sec = int(rng.integers(-2**31, 0))
        kinds.append("stamp_negative")
    else:
        stamp.nanosec = int(rng.integers(1_000_000_000, 2**32))
        kinds.append("stamp_nanosec")


def _edge_stamp(rng, stamp, kinds) -> None:
    r = rng.integers(3)
    if r == 0:
        stamp.sec, stamp.nanosec = 0, 0
        kinds.append("stamp_zero")
    elif r == 1:
        stamp.sec, stamp.nanosec = INT32_MAX, 999_999_999
        kinds.append("stamp_far_future")
    else:  # slightly older than the template
        t = max(0.0, stamp.sec + stamp.nanosec * 1e-9 - float(rng.uniform(1e-4, 0.05)))
        ns = int(t * 1e9)
        stamp.sec, stamp.nanosec = ns // 1_000_000_000, ns % 1_000_000_000
        kinds.append("stamp_older")


def _set_time(d, t: float) -> None:
    ns = int(round(t * 1e9))
    d.sec, d.nanosec = ns // 1_000_000_000, ns % 1_000_000_000


def _time_of(d) -> float:
    return d.sec + d.nanosec * 1e-9


# -- sensor_msgs/JointState ---------------------------------------------------------------

def _default_joint_state() -> JointState:
    n = 7
    msg = JointState(name=[f"joint{i + 1}" for i in range(n)], position=[0.0] * n, velocity=[0.0] * n)
    msg.header.stamp.sec = 1
    return msg


def _joint_state(rng, t: JointState, bad: bool):
    names = list(t.name)
    n = len(names)
    pos = list(t.position)
    vel = list(t.velocity)
    eff = list(t.effort)
    kinds: list[str] = []
    tainted: set[str] = set()  # joints given a NaN/Inf or huge value (dropping one would undo it)
    msg = JointState()
    msg.header.stamp.sec, msg.header.stamp.nanosec = t.header.stamp.sec, t.header.stamp.nanosec
    msg.header.frame_id = t.header.frame_id

    # edge first (they keep the message valid), then the bad ones
    picks = _pick(rng, ["shuffle", "extra_joint", "extra_nonfinite", "velocity_empty", "effort_empty",
                        "effort_nonfinite", "stamp", "frame_id", "huge_joint_value", "none"], 2)
    for kind in sorted(picks, key=lambda k: k == "huge_joint_value"):  # (last: nothing undoes it)
        if kind == "shuffle" and len(names) > 1:
            perm = rng.permutation(len(names))
            names = [names[i] for i in perm]
            pos = [pos[i] for i in perm]
            vel = [vel[i] for i in perm] if vel else vel
            eff = [eff[i] for i in perm] if eff else eff
        elif kind in ("extra_joint", "extra_nonfinite"):
            k = int(rng.integers(0, len(names) + 1))
            val = _bad_value(rng) if kind == "extra_nonfinite" else float(rng.normal())
            names.insert(k, _random_name(rng))
            pos.insert(k, val)
            if vel:
                vel.insert(k, val)
            if eff:
                eff.insert(k, 0.0)
        elif kind == "velocity_empty":
            vel = []
        elif kind == "effort_empty":
            eff = []
        elif kind == "effort_nonfinite":
            eff = list(eff) if eff else [0.0] * len(names)
            eff[int(rng.integers(len(eff)))] = _bad_value(rng)
        elif kind == "stamp":
            _edge_stamp(rng, msg.header.stamp, kinds)
            continue
        elif kind == "frame_id":
            msg.header.frame_id = WRONG_FRAMES[rng.integers(len(WRONG_FRAMES))]
        elif kind == "huge_joint_value":  # (on one of the template's joints: extra ones are not read)
            mine = [j for j, nm in enumerate(names) if nm in t.name]
            i = mine[int(rng.integers(len(mine)))]
            (pos if rng.random() < 0.5 or not vel else vel)[i] = _huge_value(rng)
            tainted.add(names[i])
        if kind != "none":
            kinds.append(kind)

    if bad:
        options = ["names_empty", "all_empty", "drop_joint", "dup_name", "empty_name", "unknown_name",
                   "position_short", "position_long", "velocity_len", "effort_len", "nonfinite",
                   "stamp_bad"]
        for kind in _pick(rng, options, 2):
            # the template's joints named once (renaming or dropping one of a duplicated pair
            # would undo the duplicate)
            known = [i for i, nm in enumerate(names) if nm in t.name and names.count(nm) == 1]
            if kind == "names_empty":
                names = []
            elif kind == "all_empty":
                names, pos, vel, eff = [], [], [], []
            elif kind == "drop_joint":
                # a clean joint, present in every array (dropping it keeps a size mismatch a mismatch)
                lim = min([len(a) for a in (pos, vel, eff) if a] + [len(names)])
                ok = [i for i in known if i < lim and names[i] not in tainted]
                if not ok:
                    continue
                i = ok[int(rng.integers(len(ok)))]
                for arr in (names, pos, vel, eff):
                    if len(arr) > i:
                        del arr[i]
            elif kind == "dup_name" and names:
                i = int(rng.integers(len(names)))
                names.append(names[i])
                pos.append(pos[i] if i < len(pos) else 0.0)
                if vel:
                    vel.append(0.0)
                if eff:
                    eff.append(0.0)
            elif kind in ("empty_name", "unknown_name") and known:
                i = known[int(rng.integers(len(known)))]
                names[i] = "" if kind == "empty_name" else _random_name(rng)
            elif kind == "position_short" and names:  # fewer positions than names
                pos = pos[:int(rng.integers(0, len(names)))]
            elif kind == "position_long":
                pos = pos[:len(names)] + [0.0] * (len(names) - len(pos[:len(names)]) + int(rng.integers(1, 5)))
            elif kind == "velocity_len":
                vel = [0.0] * (len(names) + int(rng.choice([-1, 1, 2, 5]))) if len(names) > 1 else [0.0] * 3
                if len(vel) in (0, len(names)):
                    continue
            elif kind == "effort_len":
                eff = [0.0] * (len(names) + int(rng.integers(1, 4)))
            elif kind == "nonfinite" and known:
                i = known[int(rng.integers(len(known)))]
                if vel and rng.random() < 0.4 and i < len(vel):
                    vel[i] = _bad_value(rng)
                elif i < len(pos):
                    pos[i] = _bad_value(rng)
                else:
                    continue
                tainted.add(names[i])
            elif kind == "stamp_bad":
                _bad_stamp(rng, msg.header.stamp, kinds)
                continue
            else:
                continue
            kinds.append(kind)
        if rng.random() < P_HUGE:
            if rng.random() < 0.5:
                msg.name = names
                msg.position = _huge_floats(rng)
                kinds.append("huge_array")
            else:  # 10^4..10^5 names, the robot's among them, with matching arrays
                extra = [f"fuzz_{i}" for i in range(_huge_n(rng, 1e4, 1e5))]
                names = names + extra
                pos = pos + [0.0] * len(extra)
                vel = vel + [0.0] * len(extra) if vel else vel
                eff = []
                kinds.append("huge_names")
        if not any(k in BAD for k in kinds):  # every mutation was a no-op here: make it bad for sure
            names = []
            kinds.append("names_empty")
    msg.name = names
    if "huge_array" not in kinds:
        msg.position = _farr(pos)
    msg.velocity = _farr(vel)
    msg.effort = _farr(eff)
    return msg, kinds


# -- trajectory_msgs/JointTrajectory ------------------------------------------------------

def _default_joint_trajectory() -> JointTrajectory:
    names = [f"joint{i + 1}" for i in range(7)]
    msg = JointTrajectory(joint_names=names)
    for k in range(3):
        pt = JointTrajectoryPoint(positions=[0.1 * k] * 7)
        _set_time(pt.time_from_start, 0.1 * (k + 1))
        msg.points.append(pt)
    return msg


def _joint_trajectory(rng, t: JointTrajectory, bad: bool):
    names = list(t.joint_names)
    n = len(names)
    pts = [[list(p.positions), list(p.velocities), _time_of(p.time_from_start)] for p in t.points]
    msg = JointTrajectory()
    msg.header.stamp.sec, msg.header.stamp.nanosec = t.header.stamp.sec, t.header.stamp.nanosec
    kinds: list[str] = []
    extra_fields: dict[int, dict] = {}
    durations: dict[int, tuple[int, int]] = {}

    for kind in _pick(rng, ["shuffle", "velocities_empty", "junk_unread", "stamp", "frame_id", "huge_joint_value",
                            "time_zero_first", "none"], 2):
        if kind == "shuffle" and n > 1:
            perm = rng.permutation(n)
            names = [names[i] for i in perm]
            for p in pts:
                p[0] = [p[0][i] for i in perm]
                p[1] = [p[1][i] for i in perm] if p[1] else p[1]
        elif kind == "velocities_empty":
            for p in pts:
                p[1] = []
        elif kind == "junk_unread" and pts:  # accelerations / effort: nobody reads them
            k = int(rng.integers(len(pts)))
            extra_fields[k] = {"accelerations": [_bad_value(rng)] * int(rng.integers(1, 12)),
                               "effort": [_bad_value(rng)] * int(rng.integers(0, 3))}
        elif kind == "stamp":
            _edge_stamp(rng, msg.header.stamp, kinds)
            continue
        elif kind == "frame_id":
            msg.header.frame_id = WRONG_FRAMES[rng.integers(len(WRONG_FRAMES))]
        elif kind == "huge_joint_value" and pts:
            p = pts[int(rng.integers(len(pts)))]
            p[0][int(rng.integers(n))] = _huge_value(rng)
        elif kind == "time_zero_first" and len(pts) > 1:
            pts[0][2] = 0.0
        else:
            continue
        kinds.append(kind)

    if bad:
        if pts and rng.random() < P_MANY:  # many valid-looking points (first: what follows applies to them)
            many = int(rng.integers(MAX_POINTS + 1, 1.5 * MAX_POINTS))
            pts = [[list(pts[0][0]), list(pts[0][1]), 0.01 * (k + 1)] for k in range(many)]
            kinds.append("many_points")
        if len(names) > 1 and rng.random() < 0.1:  # a consistent subset of the joints (first, as above)
            keep = sorted(rng.choice(len(names), int(rng.integers(1, len(names))), replace=False))
            names = [names[i] for i in keep]
            for p in pts:
                p[0] = [p[0][i] for i in keep if i < len(p[0])]
                p[1] = [p[1][i] for i in keep if i < len(p[1])] if p[1] else p[1]
            kinds.append("drop_joint")
        options = ["names_empty", "unknown_name", "dup_name", "empty_name", "points_empty",
                   "position_short", "position_long", "ragged", "velocity_len", "nonfinite",
                   "time_nonincreasing", "time_negative", "time_nanosec", "stamp_bad"]
        for kind in _pick(rng, options, 2):
            if kind == "names_empty":
                names = []
            elif kind == "unknown_name" and names:
                names[int(rng.integers(len(names)))] = _random_name(rng)
            elif kind == "empty_name" and names:
                names[int(rng.integers(len(names)))] = ""
            elif kind == "dup_name" and len(names) > 1:
                i, j = rng.choice(len(names), 2, replace=False)
                names[i] = names[j]
            elif kind == "points_empty":
                pts = []
            elif kind == "position_short" and pts and names:  # fewer positions than names
                p = pts[int(rng.integers(len(pts)))]
                p[0] = p[0][:int(rng.integers(0, len(names)))]
            elif kind == "position_long" and pts:
                p = pts[int(rng.integers(len(pts)))]
                p[0] = p[0][:len(names)] + [0.0] * (len(names) - len(p[0][:len(names)]) + int(rng.integers(1, 4)))
            elif kind == "ragged" and len(pts) > 1:
                for p in pts:
                    p[0] = (p[0] + [0.0] * 3)[:int(rng.integers(0, len(names) + 3))]
                if all(len(p[0]) == len(names) for p in pts):  # make one differ
                    pts[0][0] = pts[0][0] + [0.0]
            elif kind == "velocity_len" and pts:
                p = pts[int(rng.integers(len(pts)))]
                p[1] = [0.0] * (len(names) + int(rng.choice([-1, 1, 3])))
                if len(p[1]) in (0, len(names)):
                    continue
            elif kind == "nonfinite" and pts:
                p = pts[int(rng.integers(len(pts)))]
                if p[1] and rng.random() < 0.3:
                    p[1][int(rng.integers(len(p[1])))] = _bad_value(rng)
                elif p[0]:
                    p[0][int(rng.integers(len(p[0])))] = _bad_value(rng)
                else:
                    continue
            elif kind == "time_nonincreasing" and len(pts) > 1:
                k = int(rng.integers(1, len(pts)))
                pts[k][2] = pts[k - 1][2] - float(rng.choice([0.0, 0.01, 1.0]))
                if pts[k][2] < 0:
                    kinds.append("time_negative")
            elif kind == "time_negative" and pts:
                k = int(rng.integers(len(pts)))
                durations[k] = (int(rng.integers(-2**31, 0)), int(rng.integers(0, 1_000_000_000)))
            elif kind == "time_nanosec" and pts:
                k = int(rng.integers(len(pts)))
                durations[k] = (int(pts[k][2]), int(rng.integers(1_000_000_000, 2**32)))
            elif kind == "stamp_bad":
                _bad_stamp(rng, msg.header.stamp, kinds)
                continue
            else:
                continue
            kinds.append(kind)
        if rng.random() < P_HUGE:
            if rng.random() < 0.5 or not pts:
                names = names + [f"fuzz_{i}" for i in range(_huge_n(rng, 1e4, 1e5))]
                kinds.append("huge_names")
            else:
                pts[0][0] = "huge"
                kinds.append("huge_array")
        if not any(k in BAD for k in kinds):
            names = []
            kinds.append("names_empty")

    msg.joint_names = names
    for k, (positions, velocities, tt) in enumerate(pts):
        pt = JointTrajectoryPoint()
        pt.positions = _huge_floats(rng) if isinstance(positions, str) else _farr(positions)
        pt.velocities = _farr(velocities)
        if k in durations:
            pt.time_from_start.sec, pt.time_from_start.nanosec = durations[k]
        else:
            _set_time(pt.time_from_start, tt)
        for field, vals in extra_fields.get(k, {}).items():
            setattr(pt, field, _farr(vals))
        msg.points.append(pt)
    return msg, kinds


# -- trajectory_msgs/MultiDOFJointTrajectory ----------------------------------------------

def _default_cartesian() -> MultiDOFJointTrajectory:
    msg = MultiDOFJointTrajectory(joint_names=["ee", "gripper"])
    for k in range(4):
        hand = Transform()
        hand.translation.x, hand.translation.z = 0.4 + 0.01 * k, 0.4
        hand.rotation.x = 1.0
        grip = Transform()
        grip.translation.x = 1.0
        grip.rotation.w = 1.0
        pt = MultiDOFJointTrajectoryPoint(transforms=[hand, grip])
        _set_time(pt.time_from_start, 0.1 * (k + 1))
        msg.points.append(pt)
    return msg


def _tr_values(tr: Transform) -> list[float]:
    t, r = tr.translation, tr.rotation
    return [t.x, t.y, t.z, r.x, r.y, r.z, r.w]


def _tr(vals) -> Transform:
    tr = Transform()
    (tr.translation.x, tr.translation.y, tr.translation.z,
     tr.rotation.x, tr.rotation.y, tr.rotation.z, tr.rotation.w) = (float(v) for v in vals)
    return tr


def _cartesian(rng, t: MultiDOFJointTrajectory, bad: bool):
    names = list(t.joint_names)
    pts = [[[_tr_values(tr) for tr in p.transforms], _time_of(p.time_from_start)] for p in t.points]
    msg = MultiDOFJointTrajectory()
    msg.header.stamp.sec, msg.header.stamp.nanosec = t.header.stamp.sec, t.header.stamp.nanosec
    msg.header.frame_id = t.header.frame_id
    kinds: list[str] = []
    durations: dict[int, tuple[int, int]] = {}
    junk_twist = None

    for kind in _pick(rng, ["names_single", "gripper_huge", "gripper_rotation_junk", "junk_unread", "stamp",
                            "frame_ok", "hand_far", "quaternion_negated", "none"], 2):
        if kind == "names_single" and len(names) == 2:
            names = names[:1]
            for p in pts:
                p[0] = p[0][:1]
        elif kind == "gripper_huge" and len(names) == 2 and pts:
            pts[int(rng.integers(len(pts)))][0][1][0] = _huge_value(rng)
        elif kind == "gripper_rotation_junk" and len(names) == 2 and pts:
            pts[int(rng.integers(len(pts)))][0][1][3:] = [_bad_value(rng)] * 4  # unread
        elif kind == "junk_unread" and pts:
            junk_twist = int(rng.integers(len(pts)))
        elif kind == "stamp":
            _edge_stamp(rng, msg.header.stamp, kinds)
            continue
        elif kind == "frame_ok":
            msg.header.frame_id = "world" if rng.random() < 0.5 else ""
        elif kind == "hand_far" and pts:
            pts[int(rng.integers(len(pts)))][0][0][int(rng.integers(3))] = _huge_value(rng)
        elif kind == "quaternion_negated" and pts:
            tr = pts[int(rng.integers(len(pts)))][0][0]
            tr[3:] = [-v for v in tr[3:]]
        else:
            continue
        kinds.append(kind)

    if bad:
        if pts and rng.random() < P_MANY:  # many valid-looking points (first: what follows applies to them)
            many = int(rng.integers(MAX_POINTS + 1, 1.2 * MAX_POINTS))
            pts = [[pts[0][0], 0.01 * (k + 1)] for k in range(many)]  # (shared: changes apply to all)
            kinds.append("many_points")
        options = ["names_empty", "wrong_ee", "extra_name", "second_name", "points_empty", "transforms_count",
                   "nonfinite", "zero_quaternion", "nonunit_quaternion", "time_nonincreasing", "time_zero",
                   "time_negative", "time_nanosec", "stamp_bad", "frame_wrong"]
        for kind in _pick(rng, options, 2):
            if kind == "names_empty":
                names = []
            elif kind == "wrong_ee" and names:
                names[0] = _random_name(rng) if rng.random() < 0.7 else ""
            elif kind == "extra_name":
                names = names + [_random_name(rng)]
                for p in pts:
                    p[0] = p[0] + [[0.0] * 6 + [1.0]]
            elif kind == "second_name" and len(names) == 2:
                names[1] = _random_name(rng) if rng.random() < 0.5 else names[0]
                kinds.append("wrong_ee")
                continue
            elif kind == "points_empty":
                pts = []
            elif kind == "transforms_count" and pts:
                p = pts[int(rng.integers(len(pts)))]
                p[0] = p[0][:-1] if rng.random() < 0.5 else p[0] + [[0.0] * 6 + [1.0]]
            elif kind == "nonfinite" and pts:
                p = pts[int(rng.integers(len(pts)))]
                j = 0 if (len(p[0]) < 2 or rng.random() < 0.7) else 1
                if not p[0]:
                    continue
                idx = int(rng.integers(7)) if j == 0 else 0  # the gripper: its translation.x
                p[0][j][idx] = _bad_value(rng)
            elif kind in ("zero_quaternion", "nonunit_quaternion") and pts and all(p[0] for p in pts):
                tr = pts[int(rng.integers(len(pts)))][0][0]
                if kind == "zero_quaternion":
                    tr[3:] = [0.0, 0.0, 0.0, 0.0]
                else:
                    s = float(rng.choice([0.5, 0.99, 1.01, 2.0, 1e6, 1e-6]))
                    tr[3:] = [v * s for v in tr[3:]]
            elif kind == "time_nonincreasing" and len(pts) > 1:
                k = int(rng.integers(1, len(pts)))
                pts[k][1] = pts[k - 1][1] - float(rng.choice([0.0, 0.01]))
            elif kind == "time_zero" and pts:
                pts[0][1] = 0.0
            elif kind == "time_negative" and pts:
                durations[int(rng.integers(len(pts)))] = (int(rng.integers(-2**31, 0)), 0)
            elif kind == "time_nanosec" and pts:
                k = int(rng.integers(len(pts)))
                durations[k] = (int(pts[k][1]), int(rng.integers(1_000_000_000, 2**32)))
            elif kind == "stamp_bad":
                _bad_stamp(rng, msg.header.stamp, kinds)
                continue
            elif kind == "frame_wrong":
                msg.header.frame_id = WRONG_FRAMES[rng.integers(len(WRONG_FRAMES))]
            else:
                continue
            kinds.append(kind)
        if rng.random() < P_HUGE and pts:  # (one Transform repeated: cheap to build)
            pts[0][0] = pts[0][0] + [[0.0] * 6 + [1.0]] * _huge_n(rng, 1e4, 1e5)
            kinds.append("huge_array")
        if not any(k in BAD for k in kinds):
            names = []
            kinds.append("names_empty")

    msg.joint_names = names
    made: dict[int, Transform] = {}  # one Transform per distinct value list (huge lists repeat one)
    for k, (trs, tt) in enumerate(pts):
        pt = MultiDOFJointTrajectoryPoint(transforms=[made[id(v)] if id(v) in made else made.setdefault(id(v), _tr(v))
                                                      for v in trs])
        if k in durations:
            pt.time_from_start.sec, pt.time_from_start.nanosec = durations[k]
        else:
            _set_time(pt.time_from_start, tt)
        if k == junk_twist:  # velocities / accelerations: nobody reads them
            from geometry_msgs.msg import Twist

            tw = Twist()
            tw.linear.x = _bad_value(rng)
            pt.velocities = [tw] * int(rng.integers(1, 4))
            pt.accelerations = [tw]
        msg.points.append(pt)
    return msg, kinds


# -- std_msgs -----------------------------------------------------------------------------

def _default_array() -> Float64MultiArray:
    return Float64MultiArray(data=[0.0] * 7)


def _array(rng, t: Float64MultiArray, bad: bool):
    data = list(t.data)
    n = len(data)
    msg = Float64MultiArray()
    kinds: list[str] = []
    for kind in _pick(rng, ["layout", "huge_value", "none"], 2):
        if kind == "layout":
            msg.layout.dim = [MultiArrayDimension(label=_random_name(rng) if rng.random() < 0.5 else "",
                                                  size=int(rng.integers(0, 2**32)), stride=int(rng.integers(0, 2**32)))
                              for _ in range(int(rng.integers(1, 4)))]
            msg.layout.data_offset = int(rng.integers(0, 2**32))
        elif kind == "huge_value" and n:
            data[int(rng.integers(n))] = _huge_value(rng)
        else:
            continue
        kinds.append(kind)
    if bad:
        if rng.random() < P_HUGE * 2:
            msg.data = _huge_floats(rng)
            kinds.append("huge_array")
            return msg, kinds
        kind = ["data_empty", "data_short", "data_long", "nonfinite", "nonfinite"][int(rng.integers(5))]
        if kind == "data_empty" or (kind == "data_short" and n <= 1):
            data, kind = [], "data_empty"
        elif kind == "data_short":
            data = data[:int(rng.integers(1, n))]
        elif kind == "data_long":
            data = data + [0.0] * int(rng.integers(1, 2 * n + 2))
        else:
            if n == 0:
                data, kind = [NAN], "data_long"
            else:
                for i in rng.choice(n, int(rng.integers(1, n + 1)), replace=False):
                    data[i] = _bad_value(rng)
        kinds.append(kind)
        if kind != "nonfinite" and data and rng.random() < 0.3:
            data[int(rng.integers(len(data)))] = _bad_value(rng)
            kinds.append("nonfinite")
    msg.data = _farr(data)
    return msg, kinds


def _default_float() -> Float64:
    return Float64(data=1.0)


def _float(rng, t: Float64, bad: bool):
    if bad:
        return Float64(data=_bad_value(rng)), ["nonfinite"]
    kind = ["negative", "zero", "huge_value", "older", "far"][int(rng.integers(5))]
    value = {"negative": -float(rng.uniform(0, 1e9)), "zero": 0.0, "huge_value": _huge_value(rng),
             "older": t.data - float(rng.uniform(0, 1)), "far": t.data + float(rng.uniform(1, 1e6))}[kind]
    return Float64(data=value), [kind]


def _default_bool() -> Bool:
    return Bool(data=False)


def _bool(rng, t: Bool, bad: bool):
    """A Bool has no malformed form: the value is random (true with probability 1%)."""
    value = bool(rng.random() < 0.01)
    return Bool(data=value), ["true" if value else "false"]


# -- geometry_msgs ------------------------------------------------------------------------

def _default_pose() -> PoseStamped:
    msg = PoseStamped()
    msg.header.frame_id = "world"
    msg.pose.position.x, msg.pose.position.z = 0.5, 0.3
    msg.pose.orientation.w = 1.0
    return msg


def _copy_pose(t: PoseStamped) -> PoseStamped:
    msg = PoseStamped()
    msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id = (t.header.stamp.sec, t.header.stamp.nanosec,
                                                                          t.header.frame_id)
    p, o = t.pose.position, t.pose.orientation
    msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = p.x, p.y, p.z
    q = msg.pose.orientation
    q.x, q.y, q.z, q.w = o.x, o.y, o.z, o.w
    return msg


def _pose(rng, t: PoseStamped, bad: bool):
    msg = _copy_pose(t)
    p, o = msg.pose.position, msg.pose.orientation
    kinds: list[str] = []
    for kind in _pick(rng, ["frame_empty", "quaternion_negated", "quaternion_near_unit", "stamp", "far", "none"], 2):
        if kind == "frame_empty":
            msg.header.frame_id = ""
        elif kind == "quaternion_negated":
            o.x, o.y, o.z, o.w = -o.x, -o.y, -o.z, -o.w
        elif kind == "quaternion_near_unit":
            s = 1.0 + float(rng.uniform(-4e-4, 4e-4))
            o.x, o.y, o.z, o.w = o.x * s, o.y * s, o.z * s, o.w * s
        elif kind == "stamp":
            _edge_stamp(rng, msg.header.stamp, kinds)
            continue
        elif kind == "far":  # a long way off, but a number
            setattr(p, "xyz"[int(rng.integers(3))], float(rng.choice([-1.0, 1.0]) * rng.uniform(10, 100)))
        else:
            continue
        kinds.append(kind)
    if bad:
        picks = _pick(rng, ["nonfinite_position", "nonfinite_orientation", "zero_quaternion",
                            "nonunit_quaternion", "frame_wrong", "stamp_bad", "huge_position"], 2)
        # a huge value first: it must not overwrite a NaN set by the other pick
        for kind in sorted(picks, key=lambda k: k != "huge_position"):
            if kind == "nonfinite_position":
                setattr(p, "xyz"[int(rng.integers(3))], _bad_value(rng))
                kind = "nonfinite"
            elif kind == "nonfinite_orientation":
                setattr(o, "xyzw"[int(rng.integers(4))], _bad_value(rng))
                kind = "nonfinite"
            elif kind == "zero_quaternion":
                o.x = o.y = o.z = o.w = 0.0
            elif kind == "nonunit_quaternion":
                s = float(rng.choice([0.5, 0.99, 1.01, 2.0, 1e3, 1e-3]))
                o.x, o.y, o.z, o.w = o.x * s, o.y * s, o.z * s, o.w * s
                if o.x == o.y == o.z == o.w == 0.0:
                    kind = "zero_quaternion"
            elif kind == "frame_wrong":
                msg.header.frame_id = WRONG_FRAMES[rng.integers(len(WRONG_FRAMES))]
            elif kind == "stamp_bad":
                _bad_stamp(rng, msg.header.stamp, kinds)
                continue
            elif kind == "huge_position":  # no measurement: 1e300 m (bad for the obstacle/object poses)
                setattr(p, "xyz"[int(rng.integers(3))], _huge_value(rng))
            kinds.append(kind)
    return msg, kinds


def _default_twist() -> TwistStamped:
    msg = TwistStamped()
    msg.header.frame_id = "panda_link0"
    msg.twist.linear.x = 0.05
    return msg


def _twist(rng, t: TwistStamped, bad: bool):
    msg = TwistStamped()
    msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id = (t.header.stamp.sec, t.header.stamp.nanosec,
                                                                          t.header.frame_id)
    for part in ("linear", "angular"):
        src, dst = getattr(t.twist, part), getattr(msg.twist, part)
        dst.x, dst.y, dst.z = src.x, src.y, src.z
    fields = [(msg.twist.linear, a) for a in "xyz"] + [(msg.twist.angular, a) for a in "xyz"]
    kinds: list[str] = []
    for kind in _pick(rng, ["zero", "frame_wrong_unchecked", "stamp", "large", "none"], 2):
        if kind == "zero":
            for obj, a in fields:
                setattr(obj, a, 0.0)
        elif kind == "frame_wrong_unchecked":
            msg.header.frame_id = WRONG_FRAMES[rng.integers(len(WRONG_FRAMES))]
        elif kind == "stamp":
            _edge_stamp(rng, msg.header.stamp, kinds)
            continue
        elif kind == "large":  # fast, but finite
            obj, a = fields[int(rng.integers(6))]
            setattr(obj, a, float(rng.choice([-1.0, 1.0]) * 10 ** rng.uniform(0, 6)))
        else:
            continue
        kinds.append(kind)
    if bad:
        for kind in _pick(rng, ["nonfinite", "nonfinite", "stamp_bad", "overflow"], 2):
            if kind == "nonfinite":
                obj, a = fields[int(rng.integers(6))]
                setattr(obj, a, _bad_value(rng))
            elif kind == "stamp_bad":
                _bad_stamp(rng, msg.header.stamp, kinds)
                continue
            elif kind == "overflow":  # finite components whose norm overflows
                for obj, a in fields[:3]:
                    setattr(obj, a, 1.7e308)
                kind = "nonfinite"
            kinds.append(kind)
    return msg, kinds


# -- sensor_msgs/Joy ----------------------------------------------------------------------

def _default_joy() -> Joy:
    return Joy(axes=[0.0] * 6 + [1.0], buttons=[0, 0, 0])


def _joy(rng, t: Joy, bad: bool):
    axes, buttons = list(t.axes), list(t.buttons)
    msg = Joy()
    msg.header.stamp.sec, msg.header.stamp.nanosec = t.header.stamp.sec, t.header.stamp.nanosec
    kinds: list[str] = []
    for kind in _pick(rng, ["button_values", "frame_wrong_unchecked", "stamp", "axes_values", "none"], 2):
        if kind == "button_values" and buttons:
            buttons[int(rng.integers(len(buttons)))] = int(rng.choice([2, -1, INT32_MAX, -2**31]))
        elif kind == "frame_wrong_unchecked":
            msg.header.frame_id = WRONG_FRAMES[rng.integers(len(WRONG_FRAMES))]
        elif kind == "stamp":
            _edge_stamp(rng, msg.header.stamp, kinds)
            continue
        elif kind == "axes_values" and len(axes) > 1:
            axes[int(rng.integers(len(axes) - 1))] = float(rng.uniform(-1e6, 1e6))
        else:
            continue
        kinds.append(kind)
    if bad:
        for kind in _pick(rng, ["axes_len", "buttons_len", "nonfinite", "gripper_range", "stamp_bad"], 2):
            if kind == "axes_len":
                axes = axes[:int(rng.integers(0, len(axes)))] if rng.random() < 0.5 else axes + [0.0]
            elif kind == "buttons_len":
                buttons = buttons[:int(rng.integers(0, len(buttons)))] if rng.random() < 0.5 else buttons + [0]
            elif kind == "nonfinite" and axes:
                axes[int(rng.integers(len(axes)))] = _bad_value(rng)
            elif kind == "gripper_range" and len(axes) == len(t.axes):
                axes[-1] = float(rng.choice([-1.0, 1.0]) * rng.uniform(1.001, 1e3))
            elif kind == "stamp_bad":
                _bad_stamp(rng, msg.header.stamp, kinds)
                continue
            else:
                continue
            kinds.append(kind)
        if rng.random() < P_HUGE:
            if rng.random() < 0.5:
                axes = "huge"
            else:
                buttons = array.array("i", bytes(4 * _huge_n(rng)))
            kinds.append("huge_array")
        if not any(k in BAD for k in kinds):
            axes = []
            kinds.append("axes_len")
    if isinstance(axes, str):  # huge
        axes = rng.standard_normal(_huge_n(rng))
    msg.axes = array.array("f", np.asarray(axes, np.float32).tobytes())
    msg.buttons = buttons if isinstance(buttons, array.array) else [int(b) for b in buttons]
    return msg, kinds


_GENERATORS = {
    JointState: _joint_state, JointTrajectory: _joint_trajectory, MultiDOFJointTrajectory: _cartesian,
    Float64MultiArray: _array, Float64: _float, Bool: _bool, PoseStamped: _pose, TwistStamped: _twist, Joy: _joy,
}
_DEFAULTS = {
    JointState: _default_joint_state, JointTrajectory: _default_joint_trajectory,
    MultiDOFJointTrajectory: _default_cartesian, Float64MultiArray: _default_array, Float64: _default_float,
    Bool: _default_bool, PoseStamped: _default_pose, TwistStamped: _default_twist, Joy: _default_joy,
}
