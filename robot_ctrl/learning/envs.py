"""One interface over every environment the learning commands run on.

`make_task(name)` returns a `TaskAdapter`:
- robot_ctrl tasks by short name (`reach`, `push`, `pick_place`, `peg_in_hole`) or Gymnasium id
  (`robot_ctrl/Reach-v0`), and their joint-action variants `<task>-joint` (the action is a
  joint-position target; the scripted expert's Cartesian action is converted by the IK);
- Meta-World v3 tasks as `metaworld:<name>-v3` (optional extra `robot_ctrl[metaworld]`), with
  Meta-World's own scripted policies as the expert and `info["success"]` as success.

An adapter owns its Gymnasium environment and knows its scripted expert. Actions and
observations are float arrays in physical units.
"""
from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np


class TaskError(ValueError):
    """An unknown task name, or a task whose optional dependency is missing."""


@dataclass
class StepResult:
    obs: np.ndarray
    success: bool
    done: bool


class TaskAdapter:
    """Base: `reset(seed) -> obs`, `step(action) -> StepResult`, `expert(noise) -> action`
    (the scripted expert's action for the current state, with `noise` ≥ 0 in the task's own
    units), and the sizes and timing."""

    name: str
    default_noise: float = 0.0
    obs_size: int
    act_size: int
    dt: float
    horizon: int

    def reset(self, seed: int | None = None) -> np.ndarray:
        raise NotImplementedError

    def step(self, action: np.ndarray) -> StepResult:
        raise NotImplementedError

    def expert(self, noise: float = 0.0) -> np.ndarray:
        raise NotImplementedError

    def disturb(self, rng: np.random.Generator) -> np.ndarray | None:
        """Knock the task's object to a nearby random place (demonstrations of recovery); the
        new observation, or None where the task has no such disturbance or refuses it now."""
        return None

    def close(self) -> None:
        pass


# Demonstrations and evaluations run with the safety filter between the controller and the
# simulator, as the ROS graph does (it limits accelerations, keeps the hand off the table), so
# the data, the Gymnasium evaluation and the graph see the same closed loop.
DEFAULT_SAFETY = "panda_tasks"
# `<task>-joint`: the task with joint-position actions (robot_ctrl.tasks.base, action_mode joint)
JOINT_SUFFIX = "-joint"


def base_task(name: str) -> str:
    """The task whose world and observation `name` uses (`reach-joint` → `reach`)."""
    return name[:-len(JOINT_SUFFIX)] if name.endswith(JOINT_SUFFIX) else name


class RobotCtrlTask(TaskAdapter):
    """A robot_ctrl task (robot_ctrl.tasks). `safety`: the safety-filter config in the loop
    (default panda_tasks; None or "" for none)."""

    def __init__(self, gym_id: str, safety: str | None = DEFAULT_SAFETY, name: str | None = None, **kwargs):
        self.name = name or gym_id
        self.env = gym.make(gym_id, safety=safety or None, **kwargs).unwrapped
        self.default_noise = float(self.env.expert_noise)
        self.obs_size = int(self.env.observation_space.shape[0])
        self.act_size = int(self.env.action_space.shape[0])
        self.dt = float(self.env.policy_dt)
        self.horizon = int(self.env.horizon)

    def reset(self, seed=None):
        return self.env.reset(seed=seed)[0].astype(np.float64)

    def step(self, action):
        obs, _, term, trunc, info = self.env.step(np.asarray(action, dtype=np.float64))
        return StepResult(obs.astype(np.float64), bool(info["success"]), bool(term or trunc))

    def disturb(self, rng):
        if not hasattr(self.env, "disturb") or not self.env.disturb(rng):
            return None
        return self.env._obs().astype(np.float64)

    def expert(self, noise=0.0):
        a = self.env.expert(noise)
        if self.env.action_mode == "joint":  # the expert plans in Cartesian space; the IK converts
            a = self.env.joint_action(a)
        return a.astype(np.float64)


def make_task(name: str, **kwargs) -> TaskAdapter:
    """The adapter for a task name (see the module doc)."""
    if name.startswith("metaworld:"):
        from robot_ctrl.learning.metaworld_env import MetaWorldTask

        return MetaWorldTask(name.split(":", 1)[1], **kwargs)
    from robot_ctrl.tasks import TASKS  # here: Meta-World's environment runs without the robot_ctrl simulator
    if name.endswith(JOINT_SUFFIX) and name[:-len(JOINT_SUFFIX)] in TASKS:
        return RobotCtrlTask(TASKS[name[:-len(JOINT_SUFFIX)]], action_mode="joint", name=name, **kwargs)
    gym_id = TASKS.get(name, name)
    if gym_id not in TASKS.values():
        raise TaskError(f"unknown task '{name}' (robot_ctrl tasks: {', '.join(TASKS)}; "
                        f"Meta-World: metaworld:<task>-v3)")
    return RobotCtrlTask(gym_id, **kwargs)
