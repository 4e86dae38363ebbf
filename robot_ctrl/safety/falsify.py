"""Falsification: drive the MuJoCo robot through the safety filter with random, adversarial and
NaN-injected nominal commands, and count violations of the joint limits and of the minimum
collision distances (measured on the simulator's state, not on the filter's prediction).

    report = falsify(robot, "panda", mode="velocity", steps=10_000, seed=0)

Nominal commands, switching every `segment` steps:
- random: uniform within the command limits;
- joints: every joint at full speed towards a point beyond one of its limits;
- cartesian: the end effector at full speed towards a point below the table or inside an
  obstacle (through the Jacobian pseudo-inverse);
and every `nan_every`-th command has a NaN in it.

A violation is a joint beyond its limit by more than `joint_tol`, or a configured collision
pair closer than `dist_tol` below zero distance (capsule/shape models: the robot's real
geometry is inside them), or a MuJoCo contact between the robot and the table. Loose objects
of the scene that the config tracks (the block) get their true pose each step, as perception
would publish it.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from robot_ctrl.model.robot import RobotModel
from robot_ctrl.safety.config import SafetyConfig, build_filter, load_safety_config
from robot_ctrl.safety.constraints import CollisionDistance
from robot_ctrl.safety.geometry import Kinematics


@dataclass
class FalsifyReport:
    mode: str
    steps: int
    joint_violations: int
    collision_violations: int
    contact_violations: int
    worst_joint_margin: float  # min over steps of the distance to the nearest joint limit (< 0: beyond)
    worst_distance: float  # min over steps and pairs of the collision distance (m)
    worst_barrier: float  # min over steps of the filter's h_min
    rejected: int
    fallbacks: int
    nonfinite_commands: int

    @property
    def violations(self) -> int:
        return self.joint_violations + self.collision_violations + self.contact_violations

    def as_dict(self) -> dict:
        return {**asdict(self), "violations": self.violations}


def _robot_table_contacts(sim, table_geom: int, robot_bodies: set) -> int:
    d = sim.data
    count = 0
    for i in range(d.ncon):
        c = d.contact[i]
        g1, g2 = int(c.geom1), int(c.geom2)
        if table_geom in (g1, g2):
            other = g2 if g1 == table_geom else g1
            if int(sim.model.geom_bodyid[other]) in robot_bodies and c.dist < -1e-4:
                count += 1
    return count


def falsify(robot: RobotModel, cfg: SafetyConfig | str, mode: str = "velocity", steps: int = 10_000,
            seed: int = 0, segment: int = 250, nan_every: int = 97, joint_tol: float = 1e-3,
            dist_tol: float = 2e-3, progress=None, record: list | None = None) -> FalsifyReport:
    import mujoco

    from robot_ctrl.sim import Simulator
    from robot_ctrl.sim.world import robot_prefix

    cfg = load_safety_config(cfg) if isinstance(cfg, str) else cfg
    f = build_filter(robot, cfg, mode=mode, dt=0.002)
    coll = next((c for c in f.constraints if isinstance(c, CollisionDistance)), None)
    kin = Kinematics(robot)
    sim = Simulator(robot, command_mode=mode, control_dt=0.002, physics_dt=0.001)
    table = mujoco.mj_name2id(sim.model, mujoco.mjtObj.mjOBJ_GEOM, "table_top")
    prefix = robot_prefix(sim.model)
    # the base links stand on the table: contacts of the moving links only
    moving = {b for b in range(sim.model.nbody)
              if sim.model.body(b).name.startswith(prefix)
              and not sim.model.body(b).name.endswith(("link0", "link1", "base_link", "base"))}
    # loose objects of the scene that the config tracks (a perception stand-in: their true pose)
    tracked = []
    if coll is not None:
        for name in sorted(coll.set.world):
            bid = mujoco.mj_name2id(sim.model, mujoco.mjtObj.mjOBJ_BODY, name)
            if bid >= 0 and sim.model.body_jntnum[bid] > 0:
                tracked.append((name, bid))
    rng = np.random.default_rng(seed)
    n = robot.n
    vmax = np.where(np.isfinite(robot.v_max), robot.v_max, 1.0)
    worst_joint = worst_dist = worst_h = np.inf
    jv = cv = ctv = nonfinite = 0
    kind, target, u_rand = "random", None, np.zeros(n)
    world_targets = [np.array([0.5, 0.0, -0.2]), np.array([0.3, 0.4, -0.1]), np.array([0.6, -0.3, -0.3])]
    if coll is not None and "obstacle" in coll.set.world:
        world_targets.append(coll.set.world_position("obstacle"))
    for k in range(steps):
        q, v = sim.q.copy(), sim.v.copy()
        if k % segment == 0:
            kind = ("random", "joints", "cartesian")[rng.integers(3)]
            target = np.where(rng.random(n) < 0.5, robot.q_min - 0.5, robot.q_max + 0.5)
            u_rand = rng.uniform(-1.0, 1.0, n) * (vmax if mode == "velocity" else robot.tau_max)
            p_goal = world_targets[rng.integers(len(world_targets))] + rng.normal(0, 0.05, 3)
        if kind == "random":
            u_nom = u_rand.copy()
        else:
            if kind == "joints":
                qd_des = np.clip(20.0 * (target - q), -vmax, vmax)
            else:
                p = robot.fk(q)[:3, 3]
                J = robot.jacobian(q)[:3]
                e = p_goal - p
                vc = 1.0 * e / max(np.linalg.norm(e), 1e-6)  # 1 m/s straight at it
                qd_des = np.clip(np.linalg.pinv(J, rcond=1e-3) @ vc, -vmax, vmax)
            u_nom = qd_des if mode == "velocity" else robot.rnea(q, v, 50.0 * (qd_des - v))
        if nan_every and k % nan_every == 0:
            u_nom[rng.integers(n)] = np.nan
        for name, bid in tracked:
            w, x, y, z = sim.data.xquat[bid]
            coll.set.set_world_pose(name, sim.data.xpos[bid], [x, y, z, w])
        if record is not None:
            record.append((q, v, u_nom.copy()))
        out = f.step(q, v, u_nom)
        if not np.all(np.isfinite(out.u)):
            nonfinite += 1
            out.u[:] = 0.0
        worst_h = min(worst_h, out.h_min)
        sim.set_command(out.u)
        sim.step()
        margin = float(np.min(np.minimum(sim.q - robot.q_min, robot.q_max - sim.q)))
        worst_joint = min(worst_joint, margin)
        jv += margin < -joint_tol
        if coll is not None:
            kin.update(sim.q)
            dmin = float(coll.set.compute().d.min())
            worst_dist = min(worst_dist, dmin)
            cv += dmin < -dist_tol
        ctv += _robot_table_contacts(sim, table, moving) > 0
        if progress is not None:
            progress(k)
    return FalsifyReport(mode=mode, steps=steps, joint_violations=int(jv), collision_violations=int(cv),
                         contact_violations=int(ctv), worst_joint_margin=float(worst_joint),
                         worst_distance=float(worst_dist), worst_barrier=float(worst_h),
                         rejected=f.rejected, fallbacks=f.fallbacks, nonfinite_commands=nonfinite)
