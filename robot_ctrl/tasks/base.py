"""Manipulation tasks as Gymnasium environments on the MuJoCo simulator (no ROS needed).

Every task shares the action and the robot part of the observation:

- action (10,): an absolute end-effector target, position (3, world frame, m) and a 6-D
  rotation (the first two columns of the rotation matrix), plus the gripper command in
  [−1 closed, +1 open]. It is held for one policy step (`policy_dt`, 0.1 s): differential IK
  turns it into a joint target, the chunk executor interpolates to it and computed torque
  (the same controller as the ROS graph) tracks it at 500 Hz.
- observation: joint positions (n), joint velocities (n), end-effector position (3) and
  6-D rotation (6), gripper opening (1, the mean finger position), then the task's own part
  (targets, object poses).

The task part is the pose (position + 6-D rotation) of each body in `objects`, then the goal
vector (`goal()`, `goal_size` numbers). `build_observation` assembles the whole vector from
joint states, object poses and the goal alone, so the ROS policy node (joint states, object
PoseStamped topics, the goal topic) builds exactly what the environment does.

With `action_mode="joint"` the action is instead a joint-position target (n,) for every
joint, gripper fingers included, held for one policy step through the same feasibility box as
the IK (`joint_chunk`); the scripted expert's Cartesian action is converted by the IK
(`joint_action`). Joint-space policies train on these (task names `<task>-joint`) and the policy
node publishes their chunks as `JointTrajectory`.

A task subclass sets `objects` and `goal_size` and implements `_reset_task(rng)`, `goal()`,
`_success()`, `_dense_reward()` and a scripted `expert(noise)`.
"""
from __future__ import annotations

import gymnasium as gym
import mujoco
import numpy as np

from robot_ctrl.control.cartesian import DiffIK, ik_chunk, joint_chunk, matrix_from_rot6d, rot6d_from_matrix
from robot_ctrl.control.computed_torque import JointController
from robot_ctrl.model.robot import RobotModel
from robot_ctrl.sim import Simulator

ACTION_SIZE = 10


def yaw_quat(yaw: float) -> np.ndarray:
    """MuJoCo (w, x, y, z) quaternion of a rotation about the world z axis."""
    return np.array([np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)])


def build_observation(ik: DiffIK, q, v, object_poses, goal) -> np.ndarray:
    """The observation vector (see the module doc) from joint positions and velocities, a list
    of (position, rotation matrix) per task object, and the goal vector."""
    q = np.asarray(q, dtype=float)
    p, R = ik.ee_pose(q)
    grip = np.array([q[ik.gripper].mean()]) if len(ik.gripper) else np.zeros(1)
    parts = [q, np.asarray(v, dtype=float), p, rot6d_from_matrix(R), grip]
    parts += [np.concatenate([op, rot6d_from_matrix(oR)]) for op, oR in object_poses]
    parts.append(np.asarray(goal, dtype=float).reshape(-1))
    return np.concatenate(parts).astype(np.float32)


class TaskEnv(gym.Env):
    metadata = {"render_modes": []}
    objects: tuple[str, ...] = ()
    goal_size = 0
    expert_noise = 0.0
    scene = "table"

    def __init__(self, robot: str = "panda", policy_dt: float = 0.1, horizon: int = 60, control_dt: float = 0.002,
                 reward: str = "dense", safety: str | None = None, action_mode: str = "cartesian"):
        if reward not in ("dense", "sparse"):
            raise ValueError(f"reward must be 'dense' or 'sparse', got '{reward}'")
        if action_mode not in ("cartesian", "joint"):
            raise ValueError(f"action_mode must be 'cartesian' or 'joint', got '{action_mode}'")
        self.action_mode = action_mode
        self.robot = RobotModel.load(robot)
        self.sim = Simulator(self.robot, scene=self.scene, command_mode="effort", control_dt=control_dt)
        self.ctrl = JointController(self.robot, "effort")
        self.ik = DiffIK(self.robot)
        # optional: the safety filter between the controller and the simulator, as in the graph
        self.safety = None
        if safety:
            from robot_ctrl.safety.config import build_filter

            self.safety = build_filter(self.robot, safety, "effort", dt=control_dt)
        self.policy_dt, self.horizon, self.reward_kind = float(policy_dt), int(horizon), reward
        self.periods = int(round(policy_dt / control_dt))
        n = self.robot.n
        self.task_obs_size = 9 * len(self.objects) + self.goal_size
        self.obs_size = 2 * n + 10 + self.task_obs_size
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (self.obs_size,), np.float32)
        if action_mode == "joint":
            self.action_space = gym.spaces.Box(self.robot.q_min.astype(np.float32), self.robot.q_max.astype(np.float32),
                                               (n,), np.float32)
        else:
            low = np.array([-2.0] * 3 + [-1.0] * 6 + [-1.0], np.float32)
            self.action_space = gym.spaces.Box(low, -low, (ACTION_SIZE,), np.float32)
        self.steps = 0
        self.q_ref = self.robot.home.copy()
        self.v_ref = np.zeros(self.robot.n)

    # -- to implement ------------------------------------------------------------------------
    def _reset_task(self, rng: np.random.Generator) -> None:
        raise NotImplementedError

    def goal(self) -> np.ndarray:
        """The task's goal vector (part of the observation; published on /task/goal in ROS)."""
        return np.zeros(0)

    def _success(self) -> bool:
        raise NotImplementedError

    def _dense_reward(self) -> float:
        raise NotImplementedError

    # -- objects -----------------------------------------------------------------------------
    def _free_adr(self, body: str) -> tuple[int, int]:
        j = self.sim.model.body(body).jntadr[0]
        return int(self.sim.model.jnt_qposadr[j]), int(self.sim.model.jnt_dofadr[j])

    def set_object(self, body: str, pos, yaw: float = 0.0) -> None:
        """Place a free body at `pos` with heading `yaw`, at rest."""
        qa, da = self._free_adr(body)
        self.sim.data.qpos[qa:qa + 3] = pos
        self.sim.data.qpos[qa + 3:qa + 7] = yaw_quat(yaw)
        self.sim.data.qvel[da:da + 6] = 0.0
        mujoco.mj_forward(self.sim.model, self.sim.data)

    def object_pose(self, body: str) -> tuple[np.ndarray, np.ndarray]:
        """World position and rotation matrix of a body."""
        b = self.sim.data.body(body)
        return b.xpos.copy(), b.xmat.reshape(3, 3).copy()

    def object_obs(self, body: str) -> np.ndarray:
        """Position (3) and 6-D rotation (6) of a body: how objects enter observations."""
        p, R = self.object_pose(body)
        return np.concatenate([p, rot6d_from_matrix(R)])

    def gripper_opening(self) -> float:
        """Mean finger position (m)."""
        return float(self.sim.q[self.ik.gripper].mean()) if len(self.ik.gripper) else 0.0

    def toward(self, goal, max_dist: float = 0.04) -> np.ndarray:
        """A hand target at most `max_dist` (m) from the hand on the straight line to `goal`:
        scripted experts move in short straight segments instead of jumping to far targets, whose
        joint-space path would bend away from the line."""
        hand = self.ee()[0]
        d = np.asarray(goal, float) - hand
        n = float(np.linalg.norm(d))
        d = d * min(1.0, max_dist / max(n, 1e-12))
        # and slowing down on the way down to the table, as a person would (and as the safety
        # filter's braking barriers at the table require): a descent step at most 30 % of the height
        if d[2] < 0:
            d[2] = max(d[2], -max(0.008, 0.3 * hand[2]))
        return hand + d

    def action(self, p, g: float, R=None) -> np.ndarray:
        """The 10-D action for a hand position, gripper command and rotation (default: home)."""
        R = self.home_rotation() if R is None else R
        return np.concatenate([p, rot6d_from_matrix(R), [g]]).astype(np.float32)

    # -- gymnasium ---------------------------------------------------------------------------
    def ee(self) -> tuple[np.ndarray, np.ndarray]:
        return self.ik.ee_pose(self.sim.q)

    def _obs(self) -> np.ndarray:
        return build_observation(self.ik, self.sim.q, self.sim.v, [self.object_pose(b) for b in self.objects],
                                 self.goal())

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.sim.reset()
        self.ctrl = JointController(self.robot, "effort")
        self.q_ref = self.robot.home.copy()
        self.v_ref = np.zeros(self.robot.n)
        if self.safety is not None:
            self.safety.reset()
        self._reset_task(self.np_random)
        self.steps = 0
        return self._obs(), {"success": False}

    def joint_action(self, action) -> np.ndarray:
        """A Cartesian action (10,) as the joint target (n,) this step's IK makes of it."""
        a = np.asarray(action, dtype=float)
        Q, _ = ik_chunk(self.ik, self.q_ref, [self.policy_dt], [a[:3]], [matrix_from_rot6d(a[3:9])], [a[9]],
                        self.robot.v_max, v_start=self.v_ref)
        return Q[0].astype(np.float32)

    def step(self, action):
        a = np.asarray(action, dtype=float)
        if self.action_mode == "joint":
            if a.shape != (self.robot.n,) or not np.all(np.isfinite(a)):
                raise ValueError(f"action must be {self.robot.n} finite joint positions "
                                 f"({', '.join(self.robot.joint_names)}), got shape {a.shape}")
            Q, V = joint_chunk(self.q_ref, [self.policy_dt], [a], self.robot.v_max, self.robot.q_min,
                               self.robot.q_max, v_start=self.v_ref)
        else:
            if a.shape != (ACTION_SIZE,) or not np.all(np.isfinite(a)):
                raise ValueError(f"action must be {ACTION_SIZE} finite numbers (position 3, 6-D rotation 6, "
                                 f"gripper 1), got shape {a.shape}")
            # joint target by IK from the current reference, at most half the velocity limit per
            # step, reached along a cubic Hermite piece that arrives with the segment's mean
            # velocity: consecutive steps join with C1 continuity, the same pieces the controller
            # node builds from a whole chunk (robot_ctrl.control.cartesian.ik_chunk)
            Q, V = ik_chunk(self.ik, self.q_ref, [self.policy_dt], [a[:3]], [matrix_from_rot6d(a[3:9])], [a[9]],
                            self.robot.v_max, v_start=self.v_ref)
        q_goal = Q[0]
        t0 = self.sim.time
        if not self.ctrl.started:
            self.ctrl.update(t0, self.sim.q, self.sim.v)
        self.ctrl.executor.set_chunk(t0, [self.policy_dt], Q, velocities=V)
        for _ in range(self.periods):
            u = self.ctrl.update(self.sim.time, self.sim.q, self.sim.v)
            if self.safety is not None:
                u = self.safety.step(self.sim.q, self.sim.v, u).u
            self.sim.set_command(u)
            self.sim.step()
        self.q_ref, self.v_ref = q_goal, V[0]
        self.steps += 1
        success = bool(self._success())
        reward = float(success) if self.reward_kind == "sparse" else float(self._dense_reward())
        truncated = self.steps >= self.horizon
        return self._obs(), reward, success, truncated, {"success": success}

    def expert(self, noise: float = 0.0) -> np.ndarray:
        raise NotImplementedError

    def home_rotation(self) -> np.ndarray:
        if not hasattr(self, "_home_R"):
            self._home_R = self.ik.ee_pose(self.robot.home)[1]
        return self._home_R


class BlockTask(TaskEnv):
    """Tasks with the scene's 4 cm block and a target circle on the table (sim/scenes/table.xml):
    the block and the target are drawn uniformly from the subclass's `block_region` and
    `target_region` ((low, high) in x, y); the goal is the target's (x, y)."""

    objects = ("block",)
    goal_size = 2
    half = 0.02  # block half size (m)
    block_region = (np.array([0.45, 0.05]), np.array([0.60, 0.15]))
    target_region = (np.array([0.45, -0.15]), np.array([0.60, -0.05]))

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.target = np.zeros(2)
        self._site = self.sim.model.site("target").id

    def _reset_task(self, rng):
        self.set_object("block", [*rng.uniform(*self.block_region), self.half])
        self.target = rng.uniform(*self.target_region)
        self.sim.model.site_pos[self._site, :2] = self.target

    def goal(self):
        return self.target.copy()

    def disturb(self, rng: np.random.Generator, shift: float = 0.03, max_yaw: float = 0.6) -> bool:
        """A shove for demonstrations of recovery (`robot-ctrl collect --disturb`): the block,
        resting on the table, is moved by 1 cm to `shift` (m) in a random planar direction and
        turned by up to `max_yaw` (rad), at rest, as a knock off the push line would leave it.
        Refused (False, nothing moved) while the block is lifted or in the hand's way, or if the
        new place would be within 3 cm of the hand or off the block's and target's area."""
        pos, R = self.object_pose("block")
        hand = self.ee()[0]
        if pos[2] > self.half + 0.005 or np.linalg.norm(hand[:2] - pos[:2]) < self.half + 0.02 and hand[2] < 0.06:
            return False
        a = rng.uniform(0, 2 * np.pi)
        new = pos[:2] + rng.uniform(0.01, shift) * np.array([np.cos(a), np.sin(a)])
        lo = np.minimum(self.block_region[0], self.target_region[0]) - 0.05
        hi = np.maximum(self.block_region[1], self.target_region[1]) + 0.05
        if np.any(new < lo) or np.any(new > hi) or (np.linalg.norm(hand[:2] - new) < self.half + 0.03
                                                     and hand[2] < 0.06):
            return False
        yaw = float(np.arctan2(R[1, 0], R[0, 0])) + rng.uniform(-max_yaw, max_yaw)
        self.set_object("block", [*new, self.half], yaw)
        return True

    def block_distance(self) -> float:
        return float(np.linalg.norm(self.object_pose("block")[0][:2] - self.target))
