"""MuJoCo simulation (ROS-free): world building and the stepped simulator."""
from robot_ctrl.sim.simulator import CommandError, Simulator
from robot_ctrl.sim.world import COMMAND_MODES, WorldError, build_world

__all__ = ["COMMAND_MODES", "CommandError", "Simulator", "WorldError", "build_world"]
