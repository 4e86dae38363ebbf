"""A /joint_states storm for the fault suite (robot_ctrl.ros.faults): a separate process that,
for every genuine joint state it sees, publishes `copies` more of it at once, half with the same
stamp (duplicates) and half stamped 2-20 ms in the past (out of order). The state stream then
arrives at (1 + copies)x its rate, with the genuine states inside it.

The copies are the genuine state's own serialized bytes (taken raw, the stamp rewritten in
place), so that the rate is not limited by building messages in Python.

    python -m robot_ctrl.ros.storm --seconds 3 --copies 10

prints one JSON line at the end: {"genuine": n, "sent": n, "seconds": s, "rate_x": r}
(rate_x: copies sent per genuine state seen, so the storm is (1 + rate_x)x the state rate).
"""
from __future__ import annotations

import argparse
import json
import struct
import time

import numpy as np


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--copies", type=int, default=10, help="copies per genuine state (>= 1)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.copies < 1 or not args.seconds > 0:
        ap.error("--copies must be >= 1 and --seconds > 0")

    import rclpy
    from sensor_msgs.msg import JointState

    from robot_ctrl.ros.common import STATE_QOS
    from robot_ctrl.ros.env import use_loopback

    use_loopback()
    rclpy.init()
    node = rclpy.create_node("fault_storm")
    pub = node.create_publisher(JointState, "/joint_states", STATE_QOS)
    rng = np.random.default_rng(args.seed)
    counts = {"genuine": 0, "sent": 0}
    newest = [-1]

    def on_state(raw: bytes) -> None:
        # raw CDR (no Python message is built): 4 bytes of encapsulation, then header.stamp
        # (int32 sec, uint32 nanosec) in the byte order the encapsulation names
        order = "<" if raw[1] & 1 else ">"
        sec, nsec = struct.unpack_from(order + "iI", raw, 4)
        ns = sec * 1_000_000_000 + nsec
        if ns <= newest[0]:
            return  # one of the storm's own copies (or another old one)
        newest[0] = ns
        counts["genuine"] += 1
        buf = bytearray(raw)
        for i in range(args.copies):
            if i % 2:  # out of order: 2-20 ms in the past
                old = max(ns - int(rng.integers(2, 21)) * 1_000_000, 0)
                struct.pack_into(order + "iI", buf, 4, *divmod(old, 1_000_000_000))
                pub.publish(bytes(buf))
            else:  # a duplicate
                pub.publish(raw)
            counts["sent"] += 1

    node.create_subscription(JointState, "/joint_states", on_state, STATE_QOS, raw=True)
    t0 = time.monotonic()
    try:
        while time.monotonic() - t0 < args.seconds:
            rclpy.spin_once(node, timeout_sec=0.01)
    finally:
        seconds = time.monotonic() - t0
        node.destroy_node()
        rclpy.shutdown()
    rate = counts["sent"] / max(counts["genuine"], 1)
    print(json.dumps({**counts, "seconds": seconds, "rate_x": rate}), flush=True)


if __name__ == "__main__":
    main()
