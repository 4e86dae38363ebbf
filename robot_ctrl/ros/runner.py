"""Run one or more nodes in one process (the composed runner) with clean start-up errors.

Each node executable calls run_nodes([ItsNode]); `robot-ctrl sim` composes several. A bad
parameter, unknown robot or missing file stops start-up with one clear line and exit code 2.
"""
from __future__ import annotations

import os
import sys

import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor, SingleThreadedExecutor

from robot_ctrl.model.config import RobotConfigError
from robot_ctrl.paths import ResourceNotFound
from robot_ctrl.ros.common import ParameterError
from robot_ctrl.sim.world import WorldError

STARTUP_ERRORS = (ParameterError, ResourceNotFound, RobotConfigError, WorldError, ValueError)


def make_executor(kind: str | None = None):
    """`events` (rclpy.experimental.EventsExecutor), `single` or `multi`; env ROBOT_CTRL_EXECUTOR."""
    kind = kind or os.environ.get("ROBOT_CTRL_EXECUTOR", "events")
    if kind == "events":
        try:
            from rclpy.experimental import EventsExecutor

            return EventsExecutor()
        except ImportError:
            kind = "single"
    if kind == "multi":
        return MultiThreadedExecutor(num_threads=2)
    return SingleThreadedExecutor()


def create_nodes(node_classes, **kwargs):
    nodes = []
    try:
        for cls in node_classes:
            nodes.append(cls(**kwargs))
    except STARTUP_ERRORS as exc:
        for n in nodes:
            n.destroy_node()
        raise SystemExit(f"robot_ctrl: start-up failed: {exc}") from None
    return nodes


def spin(nodes, executor=None, until=None) -> None:
    """Spin until shutdown (SIGINT/SIGTERM) or until `until()` returns True."""
    executor = executor or make_executor()
    for n in nodes:
        executor.add_node(n)
    try:
        # spin_once in a loop rather than spin(): EventsExecutor.spin() in rclpy 7.1 neither
        # fires timers nor returns on shutdown; this loop does both for every executor.
        while rclpy.ok() and (until is None or not until()):
            try:
                executor.spin_once(timeout_sec=0.05)
            except Exception:  # noqa: BLE001
                if rclpy.ok():
                    raise
                break  # a callback raced with shutdown (publisher's context invalid): done
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        executor.shutdown()
        for n in nodes:
            n.destroy_node()


def run_nodes(node_classes, args=None) -> None:
    rclpy.init(args=args if args is not None else sys.argv)
    try:
        nodes = create_nodes(node_classes)
        spin(nodes)
    finally:
        if rclpy.ok():
            rclpy.shutdown()
