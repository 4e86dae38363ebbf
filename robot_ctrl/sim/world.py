"""Build the MuJoCo world from the robot description plus a scene from top-level sim/.

The robot comes from the same URDF text pinocchio loads (RobotModel.urdf_xml), so the
simulated and the modelled mechanism are one. Actuators are added per command mode:

- effort:   torque motors, ctrl = joint torque, clamped to the effort limits;
- position: joint servos (MuJoCo position actuators) with gravity compensation, as a
            robot's own position interface has;
- velocity: joint velocity servos with gravity compensation.
"""
from __future__ import annotations

from pathlib import Path

import mujoco
import numpy as np

from robot_ctrl.model.robot import RobotModel, mujoco_urdf
from robot_ctrl.paths import ResourceNotFound, sim_path

COMMAND_MODES = ("effort", "position", "velocity")
ROBOT_PREFIX = "robot/"  # MuJoCo names of robot elements: "robot/<urdf name>"


class WorldError(ValueError):
    """The world cannot be built from the given robot, scene or options."""


def scene_file(scene: str) -> Path:
    p = Path(scene)
    if p.suffix == ".xml":
        if not p.exists():
            raise ResourceNotFound(f"scene file not found: {p}")
        return p
    candidate = sim_path("scenes", f"{scene}.xml")
    if not candidate.exists():
        avail = sorted(x.stem for x in sim_path("scenes").glob("*.xml"))
        raise ResourceNotFound(f"unknown scene '{scene}': no file {candidate} (available: {', '.join(avail)})")
    return candidate


VELOCITY_LOOP_SCALE = 1.0


def servo_gains(robot: RobotModel) -> tuple[np.ndarray, np.ndarray]:
    """Joint servo stiffness (N m/rad) and damping (N m s/rad) for the position/velocity modes.

    Stands in for a robot's own joint servo, which is much stiffer than the outer loop: natural
    frequency sqrt(10 kp) with damping ratio 0.7, where kp is the robot YAML's computed-torque
    gain (an acceleration per unit error). Scaling by the diagonal of the mass matrix at home
    turns accelerations into torques, so one set of gains fits any robot.
    """
    m_diag = np.diag(robot.mass_matrix(robot.home)).copy()
    omega = np.sqrt(10.0 * robot.kp)
    return omega**2 * m_diag, 2.0 * 0.7 * omega * m_diag


def exclude_adjacent_links(spec: mujoco.MjSpec, prefix: str) -> None:
    """No contacts between a robot link and its parent link, as in URDF/SRDF practice.

    MuJoCo filters parent-child contacts itself except where the parent is welded to the
    world (a fixed robot base): then the base and the first moving link collide, and robots
    whose meshes overlap at that joint (e.g. the SO-100) are pushed apart from the start.
    """
    world = spec.worldbody.name
    for body in spec.bodies:
        parent = body.parent
        if parent is None or parent.name == world or not body.name.startswith(prefix):
            continue
        spec.add_exclude(bodyname1=parent.name, bodyname2=body.name)


def build_spec(
    robot: RobotModel,
    scene: str | None = "table",
    command_mode: str = "effort",
    physics_dt: float | None = None,
) -> mujoco.MjSpec:
    if command_mode not in COMMAND_MODES:
        raise WorldError(f"command_mode must be one of {COMMAND_MODES}, got '{command_mode}'")
    robot_spec = mujoco.MjSpec.from_string(mujoco_urdf(robot.urdf_xml, robot.cfg.urdf))
    if scene:
        spec = mujoco.MjSpec.from_file(str(scene_file(scene)))
        frame = spec.worldbody.add_frame(pos=robot.base_pos.tolist())
        spec.attach(robot_spec, frame=frame, prefix=ROBOT_PREFIX)
        prefix = ROBOT_PREFIX
    else:
        spec, prefix = robot_spec, ""
    if physics_dt is not None:
        spec.option.timestep = float(physics_dt)
    exclude_adjacent_links(spec, prefix)

    kp, kd = servo_gains(robot)
    gravcomp = command_mode != "effort"
    if gravcomp:
        robot_bodies = [b for b in spec.bodies if b.name.startswith(prefix)] if prefix else spec.bodies
        for body in robot_bodies:
            body.gravcomp = 1.0
    for i, name in enumerate(robot.joint_names):
        joint = spec.joint(prefix + name)
        if joint is None:
            raise WorldError(f"joint '{name}' missing from the compiled MuJoCo model")
        if gravcomp:
            joint.actgravcomp = True
        joint.armature = float(robot.armature[i])
        act = spec.add_actuator(name=f"{prefix}{name}_{command_mode}", target=prefix + name, trntype=mujoco.mjtTrn.mjTRN_JOINT)
        tau = float(robot.tau_max[i]) if np.isfinite(robot.tau_max[i]) else 0.0
        if command_mode == "effort":
            act.set_to_motor()
            if tau > 0:
                act.ctrllimited = mujoco.mjtLimited.mjLIMITED_TRUE
                act.ctrlrange = [-tau, tau]
        elif command_mode == "position":
            act.set_to_position(kp=float(kp[i]), kv=float(kd[i]))
            act.ctrllimited = mujoco.mjtLimited.mjLIMITED_TRUE
            act.ctrlrange = [float(robot.q_min[i]), float(robot.q_max[i])]
        else:
            # a joint's velocity loop is much faster than its position loop: time constant
            # 1/(1.4·5ω), about 2 ms, so inertial coupling from the other joints (which moves a
            # light joint such as a gripper finger) is rejected
            act.set_to_velocity(kv=float(VELOCITY_LOOP_SCALE * kd[i]))
            vmax = float(robot.v_max[i])
            if np.isfinite(vmax):
                act.ctrllimited = mujoco.mjtLimited.mjLIMITED_TRUE
                act.ctrlrange = [-vmax, vmax]
        if command_mode != "effort" and tau > 0:
            act.forcelimited = mujoco.mjtLimited.mjLIMITED_TRUE
            act.forcerange = [-tau, tau]
    return spec


def robot_prefix(model: mujoco.MjModel) -> str:
    """Prefix of the robot's element names in a model from build_world (empty without a scene)."""
    for i in range(model.njnt):
        if model.joint(i).name.startswith(ROBOT_PREFIX):
            return ROBOT_PREFIX
    return ""


def build_world(robot: RobotModel, scene: str | None = "table", command_mode: str = "effort",
                physics_dt: float | None = None) -> mujoco.MjModel:
    """Compile the MuJoCo model: scene + robot + actuators for `command_mode`."""
    spec = build_spec(robot, scene, command_mode, physics_dt)
    try:
        return spec.compile()
    except Exception as exc:  # mujoco raises ValueError with its compiler message
        raise WorldError(f"MuJoCo could not compile {robot.cfg.urdf} with scene '{scene}': {exc}") from None
