"""Compose the simulation stack in one process: sim + controller (+ demo driver).

Used by `robot-ctrl sim`, `robot-ctrl demo` and the benchmarks. Parameters come from the same
config/*.yaml params files the launch files use, with explicit overrides on top.
"""
from __future__ import annotations

from dataclasses import dataclass

from robot_ctrl.paths import config_path

PARAMS_FILES = ("sim.yaml", "controller.yaml", "demo_driver.yaml", "safety_filter.yaml")
NOMINAL_TOPIC = "/safety_filter/nominal"  # the controller's output, remapped, when the filter runs


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
    safety: bool = True
    safety_config: str = ""

    def overrides(self, node: str):
        from rclpy.parameter import Parameter

        common = {"robot": self.robot}
        if node == "safety_filter":
            from robot_ctrl.ros.safety_node import COMPOSED_OVERRIDES

            common["config"] = self.safety_config
            common.update(COMPOSED_OVERRIDES)
        if node == "controller":
            common["policy_liveliness"] = False  # composed: the policy cannot die alone
        if node in ("sim", "controller", "safety_filter"):
            common["command_mode"] = self.command_mode
            common["controller_name"] = controller_name(self.command_mode)
        if node == "sim":
            common["timing_mode"] = self.timing_mode
        return [Parameter(k, value=v) for k, v in common.items()]


def make_nodes(opts: StackOptions, driver: bool = True):
    """sim, controller (+ safety filter between them) (+ demo driver), in one process."""
    from robot_ctrl.ros.controller_node import ControllerNode
    from robot_ctrl.ros.demo_driver import DemoDriver
    from robot_ctrl.ros.runner import create_nodes
    from robot_ctrl.ros.sim_node import SimNode

    plan = [(SimNode, "sim", None)]
    if opts.safety:
        from robot_ctrl.ros.safety_node import SafetyNode

        remap = ["--ros-args", "-r", f"/{controller_name(opts.command_mode)}/commands:={NOMINAL_TOPIC}"]
        plan += [(ControllerNode, "controller", remap), (SafetyNode, "safety_filter", None)]
    else:
        plan += [(ControllerNode, "controller", None)]
    if driver:
        plan.append((DemoDriver, "demo_driver", None))
    nodes = []
    for cls, name, cli in plan:
        kwargs = {"parameter_overrides": opts.overrides(name)}
        if cli:
            kwargs["cli_args"] = cli
        nodes += create_nodes([cls], **kwargs)
    return nodes
