"""Record ROS topics from inside a running rclpy node into a rosbag2 directory (MCAP storage).

    rec = BagRecorder(node, "runs/demo_bag", {"/joint_states": JointState,
                                              "/arm_controller/joint_trajectory": JointTrajectory})
    ...                       # spin the node as usual; messages are written as they arrive
    rec.close()               # writes the MCAP summary and metadata.yaml
    rec.counts                # {"/joint_states": 5012, ...}

The result is a rosbag2 bag directory (metadata.yaml version 9, as ROS 2 Jazzy writes)
with one `<dirname>.mcap` file that `ros2 bag info`, `ros2 bag play` and Foxglove open. Message
definitions come from rosbags' Jazzy typestore and are embedded in the file, so the bag is
self-describing; `robot_ctrl.io.bag` reads it back without rclpy.

Subscriptions are raw (`raw=True`): rclpy hands over the serialized CDR bytes, which are
written as they are, with no deserialize/serialize round trip.

Timestamps: each message is logged at its *receive* time, wall clock, `time.time_ns()`
(ns since the Unix epoch), as `ros2 bag record` does without `--use-sim-time`. It is not the
simulation time: with `use_sim_time`, use the messages' header stamps (read_joint_states
does) for time series, and the log time only for ordering and playback pacing.
"""
from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

# Best effort + volatile is the subscription QoS that matches every publisher: a best-effort
# reader is compatible with reliable and best-effort writers, a volatile reader with volatile
# and transient-local writers (a reliable reader would not match a best-effort publisher, and
# the recording would silently stay empty). The cost: a best-effort reader gets no
# retransmissions, so a sample lost on the wire is not recorded. On the loopback / shared
# memory that happens only when the reader's queue overflows, hence the deep queue (100
# messages, 0.1 s of a 1 kHz topic) to absorb executor hiccups.
RECORDER_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=100,
    reliability=ReliabilityPolicy.BEST_EFFORT,
    durability=DurabilityPolicy.VOLATILE,
)

# rosbag2 metadata version written by ROS 2 Jazzy's rosbag2 (QoS profiles as a YAML list).
BAG_VERSION = 9

_TYPESTORE = None


def jazzy_typestore():
    """rosbags' typestore for ROS 2 Jazzy (built once, shared)."""
    global _TYPESTORE
    if _TYPESTORE is None:
        _TYPESTORE = get_typestore(Stores.ROS2_JAZZY)
    return _TYPESTORE


def msgtype_name(msg_type: type) -> str:
    """ROS interface name of an rclpy message class: sensor_msgs.msg.JointState -> 'sensor_msgs/msg/JointState'."""
    module = getattr(msg_type, "__module__", "") or ""
    parts = module.split(".")
    if len(parts) < 2 or parts[1] != "msg" or not isinstance(msg_type, type):
        raise ValueError(f"{msg_type!r} is not an rclpy message class (expected e.g. sensor_msgs.msg.JointState)")
    return f"{parts[0]}/msg/{msg_type.__name__}"


class BagRecorder:
    """Writes the given topics of a running node to a new rosbag2/MCAP directory.

    Args:
        node: the rclpy node that owns the subscriptions (spun by the caller's executor).
        path: bag directory to create; it must not exist yet.
        topics: topic name -> rclpy message class. Relative names resolve against the node's
            namespace; the bag holds the resolved names, `counts` uses the names as given.
        qos: subscription QoS, default RECORDER_QOS (best effort, depth 100; see above).
        typestore: rosbags typestore that knows the message types (default: Jazzy's).

    Thread-safe: callbacks may run concurrently on a MultiThreadedExecutor and `close` may be
    called from any thread. The subscriptions live in their own callback group, so recording
    does not wait for the node's other callbacks (or hold them up). Messages arriving after
    `close` are dropped.
    """

    def __init__(self, node: Node, path: str | Path, topics: dict[str, type],
                 qos: QoSProfile | None = None, typestore=None, topic_qos: dict[str, QoSProfile] | None = None):
        """topic_qos: per-topic subscription QoS instead of `qos`, e.g. transient local for a
        latched topic (the task goal) so the message published before recording began is
        replayed into the bag."""
        self.path = Path(path)
        if self.path.exists():
            raise ValueError(f"bag output path already exists: {self.path} (BagRecorder only creates new bags)")
        if not topics:
            raise ValueError("BagRecorder needs at least one topic")
        self._node = node
        self._typestore = typestore if typestore is not None else jazzy_typestore()
        plan = []  # (given name, resolved name, msg class, msgtype)
        seen = {}
        for topic, msg_type in topics.items():
            msgtype = msgtype_name(msg_type)
            if msgtype not in self._typestore.fielddefs:
                raise ValueError(f"topic '{topic}': message type {msgtype} is unknown to the rosbags typestore; "
                                 "pass typestore= with the type registered")
            resolved = node.resolve_topic_name(topic)
            if resolved in seen:
                raise ValueError(f"topics '{seen[resolved]}' and '{topic}' both resolve to '{resolved}'")
            seen[resolved] = topic
            plan.append((topic, resolved, msg_type, msgtype))

        self._lock = threading.Lock()
        self._counts = {topic: 0 for topic, *_ in plan}
        self._errors = 0
        self._closed = False
        self._subs = []
        self._writer = Writer(self.path, version=BAG_VERSION, storage_plugin=StoragePlugin.MCAP)
        self._writer.open()
        try:
            # Connections first: once a subscription exists, a spinning executor may call back.
            # The bag gets the names rcl resolves the subscriptions to (namespace, remapping).
            conns = [self._writer.add_connection(resolved, msgtype, typestore=self._typestore)
                     for _, resolved, _, msgtype in plan]
            group = MutuallyExclusiveCallbackGroup()
            for (topic, resolved, msg_type, _), conn in zip(plan, conns):
                self._subs.append(node.create_subscription(
                    msg_type, topic, self._callback(topic, conn),
                    (topic_qos or {}).get(topic) or qos or RECORDER_QOS,
                    callback_group=group, raw=True))
        except Exception:
            self._destroy_subscriptions()
            self._writer.abort()
            shutil.rmtree(self.path, ignore_errors=True)  # created just above by Writer.open
            raise

    def _callback(self, topic: str, conn):
        def on_message(data: bytes) -> None:
            with self._lock:
                if self._closed:
                    return
                stamp = time.time_ns()  # under the lock: log times are written in order
                try:
                    self._writer.write(conn, stamp, data)
                except Exception as exc:  # noqa: BLE001 - a full disk must not kill the executor
                    self._errors += 1
                    if self._errors == 1:
                        self._node.get_logger().error(f"BagRecorder: writing {topic} to {self.path} failed: {exc}")
                    return
                self._counts[topic] += 1
        return on_message

    @property
    def counts(self) -> dict[str, int]:
        """Messages written per topic (a snapshot)."""
        with self._lock:
            return dict(self._counts)

    @property
    def errors(self) -> int:
        """Messages that could not be written (logged once)."""
        return self._errors

    @property
    def closed(self) -> bool:
        return self._closed

    def _destroy_subscriptions(self) -> None:
        for sub in self._subs:
            try:
                self._node.destroy_subscription(sub)
            except Exception:  # noqa: BLE001 - node already destroyed or context shut down
                pass
        self._subs = []

    def close(self) -> None:
        """Stop recording and finish the bag (MCAP summary, metadata.yaml). Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._destroy_subscriptions()
        with self._lock:
            self._writer.close()

    def __enter__(self) -> "BagRecorder":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
