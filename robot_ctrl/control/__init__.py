"""Control core (ROS-free): chunk execution and model-based inverse dynamics.

The names below load on first use (PEP 562), so that a process that needs only a part of the
package (the safety filter: `robot_ctrl.control.stamps`) does not import the rest (the chunk
executor's scipy splines)."""
from __future__ import annotations

import importlib

_WHERE = {"OUTPUT_MODES": "computed_torque", "JointController": "computed_torque",
          "ChunkExecutor": "trajectory", "TrajectoryError": "trajectory"}

__all__ = ["OUTPUT_MODES", "ChunkExecutor", "JointController", "TrajectoryError"]


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f"robot_ctrl.control.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'robot_ctrl.control' has no attribute '{name}'")
