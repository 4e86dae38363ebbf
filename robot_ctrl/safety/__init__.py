"""Safety layer (ROS-free): CBF constraints as QP rows, the QP filter, fallbacks."""
from robot_ctrl.safety.constraints import (
    CONSTRAINTS,
    AccelerationLimits,
    CollisionDistance,
    Constraint,
    EffortLimits,
    JointPositionLimits,
    JointVelocityLimits,
    SpeedSeparation,
    WorkspaceBox,
)
from robot_ctrl.safety.filter import FilterOutcome, SafetyFilter, adaptive_alpha
from robot_ctrl.safety.geometry import DistanceSet, GeometryConfigError, Kinematics, fit_capsule
from robot_ctrl.safety.robust import GPResidual, RobustSafetyFilter

__all__ = ["CONSTRAINTS", "AccelerationLimits", "CollisionDistance", "Constraint", "DistanceSet",
           "EffortLimits", "FilterOutcome", "GPResidual", "GeometryConfigError", "JointPositionLimits",
           "JointVelocityLimits", "Kinematics", "RobustSafetyFilter", "SafetyFilter", "SpeedSeparation",
           "WorkspaceBox", "adaptive_alpha", "fit_capsule"]
