"""`robot-ctrl`: run the stack, the demo and the benchmarks.

    robot-ctrl sim   [--robot panda] [--mode effort] [--timing lockstep|realtime] [--no-driver]
    robot-ctrl demo  [--out out/demo] [--timing realtime|lockstep] [--no-video]
    robot-ctrl bench sim  [--seconds 5] [--json]
    robot-ctrl bench loop [--lockstep] [--seconds 10] [--json]
    robot-ctrl bench safety [--mode effort|velocity] [--steps 4000] [--falsify N] [--json]
"""
from __future__ import annotations

import argparse
import json
import sys

from robot_ctrl.sim.world import COMMAND_MODES


def _stack_args(p: argparse.ArgumentParser, timing: str) -> None:
    p.add_argument("--robot", default="panda", help="robot name (config/robots/<name>.yaml) or YAML path")
    p.add_argument("--mode", default="effort", choices=COMMAND_MODES, help="command interface")
    p.add_argument("--timing", default=timing, choices=("realtime", "lockstep"))


def cmd_sim(args) -> int:
    import rclpy

    from robot_ctrl.ros.env import use_loopback
    from robot_ctrl.ros.runner import spin
    from robot_ctrl.stack import StackOptions, make_nodes, ros_args

    if args.loopback:
        use_loopback()
    rclpy.init(args=ros_args())
    try:
        nodes = make_nodes(StackOptions(args.robot, args.mode, args.timing), driver=not args.no_driver)
        spin(nodes)
    finally:
        if rclpy.ok():
            rclpy.shutdown()
    return 0


def cmd_demo(args) -> int:
    from robot_ctrl.demo import run_demo

    summary = run_demo(out=args.out, robot=args.robot, mode=args.mode, timing=args.timing,
                       video=not args.no_video, segment_s=args.segment_s)
    if args.json:
        print(json.dumps(summary))
    return 0 if summary["ok"] else 1


def cmd_bench(args) -> int:
    from robot_ctrl import bench

    if args.what == "sim":
        result = bench.bench_sim(robot=args.robot, seconds=args.seconds)
    elif args.what == "safety":
        result = bench.bench_safety(robot=args.robot, mode=args.mode, steps=args.steps,
                                    falsify_steps=args.falsify, progress=not args.json)
    else:
        result = bench.bench_loop(robot=args.robot, seconds=args.seconds, lockstep=args.lockstep)
    bench.report(result, as_json=args.json)
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="robot-ctrl", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("sim", help="run sim + controller (+ demo driver) as ROS 2 nodes in one process")
    _stack_args(p, "lockstep")
    p.add_argument("--no-driver", action="store_true", help="do not start the demo driver")
    p.add_argument("--loopback", action="store_true", help="keep DDS on the loopback (test profile)")
    p.set_defaults(func=cmd_sim)

    p = sub.add_parser("demo", help="headless demo: Panda through waypoints; MCAP, PNG, GIF, summary")
    _stack_args(p, "realtime")
    p.add_argument("--out", default="out/demo", help="output directory")
    p.add_argument("--no-video", action="store_true", help="skip the GIF")
    p.add_argument("--segment-s", type=float, default=2.0, help="seconds between waypoints")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("bench", help="benchmarks")
    p.add_argument("what", choices=("sim", "loop", "safety"))
    p.add_argument("--robot", default="panda")
    p.add_argument("--seconds", type=float, default=None, help="measurement length (wall s)")
    p.add_argument("--lockstep", action="store_true", help="loop: lockstep timing instead of realtime")
    p.add_argument("--mode", default="effort", choices=("effort", "velocity"), help="safety: command mode")
    p.add_argument("--steps", type=int, default=4000, help="safety: filter steps timed")
    p.add_argument("--falsify", type=int, default=0, metavar="N", help="safety: also run N falsification steps")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_bench)

    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except SystemExit:
        raise
    except (ValueError, FileNotFoundError) as exc:
        print(f"robot-ctrl: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
