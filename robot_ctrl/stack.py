"""Compose the simulation stack in one process: sim + controller (+ demo driver).

Used by `robot-ctrl sim`, `robot-ctrl demo` and the benchmarks. Parameters come from the same
config/*.yaml params files the launch files use, with explicit overrides on top.
"""
from __future__ import annotations

from dataclasses import dataclass

from robot_ctrl.paths import config_path

PARAMS_FILES = ("sim.yaml", "controller.yaml", "demo_driver.yaml")


def ros_args(extra_files=()) -> list[str]:
    args = ["--ros-args"]
    for f in list(PARAMS_FILES) + list(extra_files):
        args += ["--params-file", str(config_path(f))]
    return args


def controller_name(mode: str) -> str:
    return f"forward_{mode}_controller"


@dataclass
class StackOptions:
    robot: str = "panda"
    command_mode: str = "effort"
    timing_mode: str = "lockstep"

    def overrides(self, node: str):
        from rclpy.parameter import Parameter

        common = {"robot": self.robot}
        if node in ("sim", "controller"):
            common["command_mode"] = self.command_mode
            common["controller_name"] = controller_name(self.command_mode)
        if node == "sim":
            common["timing_mode"] = self.timing_mode
        return [Parameter(k, value=v) for k, v in common.items()]


def make_nodes(opts: StackOptions, driver: bool = True):
    from robot_ctrl.ros.controller_node import ControllerNode
    from robot_ctrl.ros.demo_driver import DemoDriver
    from robot_ctrl.ros.runner import create_nodes
    from robot_ctrl.ros.sim_node import SimNode

    classes = [SimNode, ControllerNode] + ([DemoDriver] if driver else [])
    names = ["sim", "controller", "demo_driver"]
    nodes = []
    for cls, name in zip(classes, names):
        nodes += create_nodes([cls], parameter_overrides=opts.overrides(name))
    return nodes
