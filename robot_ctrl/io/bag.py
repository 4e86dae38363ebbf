"""Read rosbag2 bags (MCAP or SQLite3) back into Python and numpy, without rclpy.

    msgs = read_topics("runs/demo_bag")                  # {topic: [(t_log_ns, msg), ...]}
    js = read_joint_states("runs/demo_bag", joint_names=robot.joint_names)
    js["t"], js["q"], js["v"], js["effort"]              # [N], [N, n], [N, n], [N, n]

Messages are deserialized by rosbags from the definitions embedded in the bag (falling back
to rosbags' Jazzy typestore), so they are rosbags dataclasses with the ROS field names;
numeric arrays are numpy arrays. Log times are what the recorder stamped (BagRecorder: wall
clock receive time, ns since the epoch).
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
from rosbags.highlevel import AnyReader, AnyReaderError
from rosbags.typesys import Stores, get_typestore

JOINT_STATE = "sensor_msgs/msg/JointState"


class BagError(ValueError):
    """The bag cannot be read as asked (unknown topic, wrong type, malformed message)."""


def _bag_dir(path: str | Path) -> Path:
    p = Path(path)
    if p.is_file() and p.suffix in (".mcap", ".db3") and (p.parent / "metadata.yaml").exists():
        p = p.parent  # a bag's storage file: open the bag directory it sits in
    if not p.exists():
        raise FileNotFoundError(f"no rosbag2 bag at {p}: path does not exist")
    if not (p / "metadata.yaml").exists():
        raise FileNotFoundError(f"no rosbag2 bag at {p}: metadata.yaml missing (not a bag directory, "
                                "or the recording was not closed)")
    return p


def _messages(path: str | Path, topics: Iterable[str] | None) -> Iterator[tuple[str, str, int, object]]:
    """(topic, msgtype, log time ns, message) in log-time order, for `topics` (None: all)."""
    bag = _bag_dir(path)
    try:
        reader = AnyReader([bag], default_typestore=get_typestore(Stores.ROS2_JAZZY))
        reader.open()
    except AnyReaderError as exc:
        raise BagError(f"cannot open bag {bag}: {exc}") from None
    try:
        available = {c.topic: c.msgtype for c in reader.connections}
        if topics is None:
            conns = reader.connections
        else:
            wanted = list(topics)
            missing = [t for t in wanted if t not in available]
            if missing:
                raise BagError(f"topic(s) {', '.join(missing)} not in bag {bag}; "
                               f"it has: {', '.join(sorted(available)) or 'no topics'}")
            conns = [c for c in reader.connections if c.topic in set(wanted)]
        if conns:
            for conn, t_ns, raw in reader.messages(connections=conns):
                yield conn.topic, conn.msgtype, t_ns, reader.deserialize(raw, conn.msgtype)
    finally:
        reader.close()


def bag_topics(path: str | Path) -> dict[str, str]:
    """Topic name -> message type name of every topic in the bag."""
    bag = _bag_dir(path)
    with AnyReader([bag], default_typestore=get_typestore(Stores.ROS2_JAZZY)) as reader:
        return {c.topic: c.msgtype for c in reader.connections}


def read_topics(path: str | Path, topics: Iterable[str] | None = None) -> dict[str, list[tuple[int, object]]]:
    """Every message of `topics` (default: all topics) as {topic: [(log time ns, msg), ...]}.

    Topics present in the bag but without messages map to an empty list.
    """
    wanted = None if topics is None else list(topics)
    names = wanted if wanted is not None else list(bag_topics(path))
    out: dict[str, list[tuple[int, object]]] = {t: [] for t in names}
    for topic, _, t_ns, msg in _messages(path, wanted):
        out[topic].append((t_ns, msg))
    return out


def _stamp_sec(stamp) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def read_joint_states(path: str | Path, topic: str = "/joint_states",
                      joint_names: Sequence[str] | None = None) -> dict:
    """A sensor_msgs/JointState topic as arrays, columns mapped by joint name.

    Returns a dict with
        't':        header stamps in seconds, shape [N] (sim time under use_sim_time);
        't_log':    log (receive) times in seconds since the epoch, shape [N];
        'q', 'v', 'effort': shape [N, n], column j is joint `joint_names[j]`;
        'joint_names': the column order.

    `joint_names` defaults to the names of the first message. Columns are filled by name,
    whatever order each message lists its joints in. A value a message does not carry (joint
    absent, or empty velocity/effort, which JointState allows) is NaN; messages that carry none
    of the joints (e.g. a gripper published separately) are skipped.
    """
    rows = []
    names = list(joint_names) if joint_names is not None else None
    cache: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
    for i, (_, msgtype, t_ns, msg) in enumerate(_messages(path, [topic])):
        if msgtype != JOINT_STATE:
            raise BagError(f"topic {topic} holds {msgtype}, not {JOINT_STATE}")
        key = tuple(msg.name)
        if names is None:
            if not key:
                continue
            names = list(key)
        if key not in cache:
            pos = {}
            for k, name in enumerate(key):
                if name in pos:
                    raise BagError(f"{topic} message {i}: joint '{name}' listed twice")
                pos[name] = k
            cols = np.array([j for j, name in enumerate(names) if name in pos], dtype=int)
            src = np.array([pos[names[j]] for j in cols], dtype=int)
            cache[key] = (cols, src)
        cols, src = cache[key]
        if cols.size == 0:
            continue
        fields = []
        for field in ("position", "velocity", "effort"):
            values = np.asarray(getattr(msg, field), dtype=float)
            row = np.full(len(names), np.nan)
            if values.size:
                if values.size != len(key):
                    raise BagError(f"{topic} message {i}: {values.size} {field} values for {len(key)} names")
                row[cols] = values[src]
            fields.append(row)
        rows.append((_stamp_sec(msg.header.stamp), t_ns * 1e-9, *fields))

    if names is None:
        raise BagError(f"topic {topic} has no JointState messages with joint names")
    if not rows:
        raise BagError(f"topic {topic} has no messages carrying any of the joints {', '.join(names)}")
    t, t_log, q, v, effort = zip(*rows)
    q = np.array(q)
    never = [n for j, n in enumerate(names) if np.all(np.isnan(q[:, j]))]
    if never:
        raise BagError(f"joint(s) {', '.join(never)} never appear with a position on {topic}")
    return {"t": np.array(t), "t_log": np.array(t_log), "q": q, "v": np.array(v),
            "effort": np.array(effort), "joint_names": names}


def read_joint_reference(path: str | Path, topic: str, joint_names: Sequence[str] | None = None) -> dict:
    """A reference published as sensor_msgs/JointState (desired q, v, effort): same as read_joint_states."""
    return read_joint_states(path, topic=topic, joint_names=joint_names)
