"""Hand-centred frames for learned policies (`frame: hand` in a training preset).

A policy trained on absolute world coordinates has to learn the map from a goal or an object
position to the matching action *value*. From 100 demonstrations a token classifier (CARP)
does not interpolate that map between the training goals: on reach its first chunk missed
held-out targets by 12–70 mm while fitting the training ones to 2 mm, and the miss never
shrinks, because an absolute target is the same wherever the hand is.

The hand frame changes two things, for every policy type alike:

* **Observation features.** Every listed point of the observation (object positions, the goal)
  is appended once more *relative to the hand* (point − hand, over the point's 2 or 3
  coordinates). The raw observation stays as it was, so nothing is lost.
* **Relative actions.** The hand-position part of every action in a chunk (dimensions 0–2) is
  predicted relative to the hand position of the observation the chunk was predicted from,
  and turned back into world coordinates before the chunk leaves the policy (`Policy.act`).
  Rotation and gripper stay absolute. A prediction error is then a fraction of the remaining
  motion, so the closed loop shrinks it as the hand closes in, the way Diffusion Policy's and
  UMI's relative trajectories behave.

Policies still *output* absolute end-effector targets (the task's action), so the controller,
the ROS policy node and the safety filter see no difference. The frame is stored in the
checkpoint's spec (`PolicySpec.frame`); checkpoints without one are world-frame.

The layout (where the hand and the points sit in the observation) comes from the task:
`frame_for_task(task, obs_size)`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


class FrameError(ValueError):
    """A frame that does not fit the observation or action it is applied to."""


@dataclass(frozen=True)
class HandFrame:
    ee: int                                     # index of the hand position (x, y, z) in one observation
    points: tuple[tuple[int, int], ...] = ()    # (index, size 2 or 3): positions also given relative to the hand
    relative_actions: bool = True               # action dimensions 0–2 relative to the hand

    def __post_init__(self):
        if self.ee < 0 or any(i < 0 or not 1 <= s <= 3 for i, s in self.points):
            raise FrameError(f"bad hand frame: hand index {self.ee}, points {self.points}")

    @property
    def extra_size(self) -> int:
        return sum(s for _, s in self.points)

    def check(self, obs_size: int, act_size: int) -> None:
        """Raise FrameError if the frame does not fit observations/actions of these sizes."""
        last = max([self.ee + 3] + [i + s for i, s in self.points])
        if last > obs_size:
            raise FrameError(f"hand frame reads observation index {last - 1}, but observations have {obs_size} numbers")
        if self.relative_actions and act_size < 3:
            raise FrameError(f"relative actions need a hand position (3 numbers) in the action, got {act_size}")

    def features(self, obs: np.ndarray, obs_size: int) -> np.ndarray:
        """Observations (..., k·obs_size) with k stacked observations → (..., k·(obs_size +
        extra_size)): each observation followed by its hand-relative points."""
        obs = np.asarray(obs)
        if not self.points:
            return obs
        lead, k = obs.shape[:-1], obs.shape[-1] // obs_size
        o = obs.reshape(*lead, k, obs_size)
        hand = o[..., self.ee:self.ee + 3]
        rel = [o[..., i:i + s] - hand[..., :s] for i, s in self.points]
        return np.concatenate([o, *rel], axis=-1).reshape(*lead, k * (obs_size + self.extra_size))

    def _hand(self, obs: np.ndarray, obs_size: int) -> np.ndarray:
        """The hand position of the newest observation in (..., k·obs_size)."""
        newest = np.asarray(obs)[..., -obs_size:]
        return newest[..., self.ee:self.ee + 3]

    def to_relative(self, actions: np.ndarray, obs: np.ndarray, obs_size: int) -> np.ndarray:
        """World-frame chunks (..., H, A) → hand-relative, given the observations they follow."""
        if not self.relative_actions:
            return actions
        out = np.array(actions, copy=True)
        out[..., :3] -= self._hand(obs, obs_size)[..., None, :]
        return out

    def to_world(self, actions: np.ndarray, obs: np.ndarray, obs_size: int) -> np.ndarray:
        """The inverse of `to_relative`."""
        if not self.relative_actions:
            return actions
        out = np.array(actions, copy=True)
        out[..., :3] += self._hand(obs, obs_size)[..., None, :]
        return out

    def to_dict(self) -> dict:
        return {"kind": "hand", "ee": self.ee, "points": [list(p) for p in self.points],
                "relative_actions": self.relative_actions}

    @classmethod
    def from_dict(cls, d: dict | None) -> "HandFrame | None":
        if not d:
            return None
        if d.get("kind") != "hand":
            raise FrameError(f"unknown policy frame {d.get('kind')!r} (known: hand)")
        try:
            return cls(int(d["ee"]), tuple((int(i), int(s)) for i, s in d.get("points", [])),
                       bool(d.get("relative_actions", True)))
        except (KeyError, TypeError, ValueError) as e:
            raise FrameError(f"damaged policy frame {d} ({e})") from e


# Meta-World's 39-number observation: hand xyz 0:3, gripper 3, object 1 pose 4:11, object 2 pose
# 11:18, the same one step earlier 18:36, goal xyz 36:39. Its actions are already hand
# displacements, so only the observation features apply.
_METAWORLD = HandFrame(ee=0, points=((4, 3), (11, 3), (36, 3)), relative_actions=False)


def frame_for_task(task: str, obs_size: int) -> HandFrame:
    """The hand frame of a task by name: the robot_ctrl tasks (their observation layout, see
    `robot_ctrl.tasks.base`; `<task>-joint` variants get the observation features only) and
    Meta-World (`metaworld:<name>`)."""
    if task.startswith("metaworld:"):
        frame = _METAWORLD
    else:
        from robot_ctrl.learning.envs import base_task
        from robot_ctrl.tasks import TASK_CLASSES

        # joint-space actions (`<task>-joint`) stay absolute: measured, relative joint targets
        # made an MLP's rollouts diverge on reach-joint (0 of 8 vs 6 of 8 absolute)
        joint = base_task(task) != task
        task = base_task(task)
        if task not in TASK_CLASSES:
            raise FrameError(f"the hand frame needs a known observation layout; task '{task}' has none "
                             f"(known: {', '.join(sorted(TASK_CLASSES))}, metaworld:<name>). "
                             f"Train with frame: world instead")
        cls = TASK_CLASSES[task]
        task_size = 9 * len(cls.objects) + cls.goal_size
        n2 = obs_size - 10 - task_size  # 2n: joint positions and velocities
        if n2 <= 0 or n2 % 2:
            raise FrameError(f"observation size {obs_size} does not fit task '{task}' "
                             f"({len(cls.objects)} objects, goal of {cls.goal_size})")
        start = n2 + 10
        points = [(start + 9 * k, 3) for k in range(len(cls.objects))]
        if 2 <= cls.goal_size <= 3:
            points.append((obs_size - cls.goal_size, cls.goal_size))
        frame = HandFrame(ee=n2, points=tuple(points), relative_actions=not joint)
    frame.check(obs_size, 3)
    return frame
