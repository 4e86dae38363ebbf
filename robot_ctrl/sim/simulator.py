"""MuJoCo simulator core (ROS-free): one robot in a scene, stepped one control period at a time.

    sim = Simulator(RobotModel.load("panda"), command_mode="effort", control_dt=0.002)
    sim.reset()
    sim.set_command(tau)      # validated: right length, finite; else CommandError
    sim.step()                # advances one control period (several physics steps)
    t, q, v, tau = sim.time, sim.q, sim.v, sim.effort

Commands are held (zero-order) until the next set_command. Stepping is deterministic:
the same commands from the same reset give the same trajectory bit for bit.
"""
from __future__ import annotations

import math

import mujoco
import numpy as np

from robot_ctrl.model.robot import RobotModel
from robot_ctrl.sim.world import WorldError, build_world, robot_prefix


class CommandError(ValueError):
    """A command was rejected (wrong length or non-finite); the previous command stays."""


class Simulator:
    def __init__(
        self,
        robot: RobotModel,
        scene: str | None = "table",
        command_mode: str = "effort",
        control_dt: float = 0.002,
        physics_dt: float = 0.001,
    ):
        if not (control_dt > 0 and physics_dt > 0 and math.isfinite(control_dt) and math.isfinite(physics_dt)):
            raise WorldError(f"control_dt and physics_dt must be positive, got {control_dt}, {physics_dt}")
        ratio = control_dt / physics_dt
        if abs(ratio - round(ratio)) > 1e-9 or round(ratio) < 1:
            raise WorldError(f"control_dt ({control_dt}) must be a whole multiple of physics_dt ({physics_dt})")
        self.robot = robot
        self.command_mode = command_mode
        self.control_dt = float(control_dt)
        self.n_substeps = int(round(ratio))
        self.model = build_world(robot, scene, command_mode, physics_dt)
        self.data = mujoco.MjData(self.model)
        prefix = robot_prefix(self.model)
        jids = [self.model.joint(prefix + j).id for j in robot.joint_names]
        self.qadr = np.array([self.model.jnt_qposadr[j] for j in jids], dtype=int)
        self.dadr = np.array([self.model.jnt_dofadr[j] for j in jids], dtype=int)
        self.joint_names = list(robot.joint_names)
        self.n = robot.n
        self.steps = 0
        self.rejected = 0
        self.reset()

    # -- state -------------------------------------------------------------------------
    @property
    def time(self) -> float:
        return float(self.data.time)

    @property
    def q(self) -> np.ndarray:
        return self.data.qpos[self.qadr]

    @property
    def v(self) -> np.ndarray:
        return self.data.qvel[self.dadr]

    @property
    def effort(self) -> np.ndarray:
        """Joint torque from the actuators (includes gravity compensation in servo modes)."""
        return self.data.qfrc_actuator[self.dadr]

    @property
    def command(self) -> np.ndarray:
        return self.data.ctrl.copy()

    def hold_command(self) -> np.ndarray:
        """The command that holds the current configuration."""
        if self.command_mode == "effort":
            return self.robot.gravity(self.q)
        if self.command_mode == "position":
            return self.q.copy()
        return np.zeros(self.n)

    def reset(self, q: np.ndarray | None = None, v: np.ndarray | None = None) -> None:
        """Back to the scene's initial state, with the robot at `q` (default: home), at rest."""
        mujoco.mj_resetData(self.model, self.data)
        q0 = self.robot.home if q is None else self.check(q, "reset q")
        self.data.qpos[self.qadr] = q0
        if v is not None:
            self.data.qvel[self.dadr] = self.check(v, "reset v")
        mujoco.mj_forward(self.model, self.data)
        self.data.ctrl[:] = self.hold_command()
        self.steps = 0

    # -- commands ----------------------------------------------------------------------
    def check(self, u, what: str) -> np.ndarray:
        """`u` as a flat float array of n finite values, else CommandError naming `what`."""
        try:
            arr = np.asarray(u, dtype=float)
        except (TypeError, ValueError):
            raise CommandError(f"{what}: not a numeric array") from None
        if arr.ndim != 1:
            raise CommandError(f"{what}: expected a flat array of {self.n} values, got shape {arr.shape}")
        if arr.shape[0] != self.n:
            raise CommandError(f"{what}: expected {self.n} values ({', '.join(self.joint_names)}), got {arr.shape[0]}")
        if not np.all(np.isfinite(arr)):
            raise CommandError(f"{what}: non-finite value in {arr.tolist()}")
        return arr

    def set_command(self, u) -> None:
        """Set the command for the next steps (torques, positions or velocities per command_mode)."""
        try:
            self.data.ctrl[:] = self.check(u, f"{self.command_mode} command")
        except CommandError:
            self.rejected += 1
            raise

    def step(self, n_periods: int = 1) -> None:
        """Advance `n_periods` control periods with the held command."""
        mujoco.mj_step(self.model, self.data, nstep=self.n_substeps * n_periods)
        self.steps += n_periods
