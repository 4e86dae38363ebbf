"""Safety layer (ROS-free): CBF constraints as QP rows, the QP filter, fallbacks."""
from robot_ctrl.safety.constraints import (
    CONSTRAINTS,
    AccelerationLimits,
    Constraint,
    EffortLimits,
    JointPositionLimits,
    JointVelocityLimits,
    WorkspaceBox,
)
from robot_ctrl.safety.filter import FilterOutcome, SafetyFilter, adaptive_alpha

__all__ = ["CONSTRAINTS", "AccelerationLimits", "Constraint", "EffortLimits", "FilterOutcome",
           "JointPositionLimits", "JointVelocityLimits", "SafetyFilter", "WorkspaceBox", "adaptive_alpha"]
