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
`frame_for_task(task, obs_size, kind)`.

**Task frame** (`frame: task`, `TaskFrame`), for tasks that move an object to a planar goal
(push, pick-and-place). The hand frame still sees the world's axes: a push toward −y and a push
toward −x+−y are different inputs, so 100 demonstrations at different angles teach 100 separate
cases of the same motion, and the rare recoveries (re-approaching a block that turned off the
push line) are each seen once or twice. The task frame is planar and rotates with the task:

* origin at the hand of the newest observation, x axis along the object-to-goal direction in the
  table plane, z up;
* the model sees *only* invariant numbers: per observation the hand, the object and the goal in
  that frame (x, y rotated; heights stay heights), the object's rotation with its yaw taken
  relative to the frame, the gripper, and the object-to-goal distance. Joint positions and
  velocities are dropped: they are tied to the world's axes. So is the hand's rotation: the
  experts hold it fixed in the world, so in the task frame it would only encode the push
  direction, the one thing the frame is there to hide;
* actions: hand positions in that frame (x, y rotated, z relative to the hand, as in the hand
  frame); rotation and gripper stay absolute.

`object_rotation: false` (a preset key) leaves the object's rotation out as well. On push the
block always starts at yaw 0 in the world, so in the task frame its rotation *is* the push
direction, and the push expert never looks at it.

A rotated copy of a scene then is the same input, and every demonstration is evidence for every
push direction.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_EPS = 1e-9


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

    def feature_size(self, obs_size: int) -> int:
        """Numbers per observation the model sees."""
        return obs_size + self.extra_size

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
    def from_dict(cls, d: dict | None) -> "HandFrame | TaskFrame | None":
        return frame_from_dict(d)


def _rotate_xy(xy: np.ndarray, c: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Planar vectors (..., k, 2) into the frame whose x axis is (c, s) (shapes (..., 1))."""
    x, y = xy[..., 0], xy[..., 1]
    return np.stack([c * x + s * y, -s * x + c * y], axis=-1)


@dataclass(frozen=True)
class TaskFrame:
    """The planar task frame (module doc): hand position at `ee`, gripper at `grip`, the object's pose (position 3, 6-D rotation 6) at `obj`, the planar goal
    (x, y) at `goal`."""
    ee: int
    grip: int
    obj: int
    goal: int
    object_rotation: bool = True                # False: the object's rotation is left out (see below)

    FEATURES = 3 + 1 + 3 + 6 + 2 + 1  # hand, gripper, object, its rotation, goal, distance

    def __post_init__(self):
        if min(self.ee, self.grip, self.obj, self.goal) < 0:
            raise FrameError(f"bad task frame: {self.to_dict()}")

    relative_actions = True

    @property
    def n_features(self) -> int:
        """Numbers per observation: FEATURES, less the object's 6-D rotation without object_rotation."""
        return self.FEATURES - (0 if self.object_rotation else 6)

    def feature_size(self, obs_size: int) -> int:
        return self.n_features

    def check(self, obs_size: int, act_size: int) -> None:
        last = max(self.ee + 3, self.grip + 1, self.obj + 9, self.goal + 2)
        if last > obs_size:
            raise FrameError(f"task frame reads observation index {last - 1}, but observations have {obs_size} numbers")
        if act_size < 3:
            raise FrameError(f"task-frame actions need a hand position (3 numbers) in the action, got {act_size}")

    def _axes(self, newest: np.ndarray):
        """Origin (..., 1, 2) and x axis (c, s), each (..., 1), of the frame of the newest observations."""
        d = newest[..., self.goal:self.goal + 2] - newest[..., self.obj:self.obj + 2]
        n = np.linalg.norm(d, axis=-1, keepdims=True)
        ok = n > _EPS  # the object on the goal: no direction, keep the world's x axis
        c = np.where(ok, d[..., :1] / np.maximum(n, _EPS), 1.0)
        s = np.where(ok, d[..., 1:2] / np.maximum(n, _EPS), 0.0)
        return newest[..., None, self.ee:self.ee + 2], c, s

    def _rot6d(self, r6: np.ndarray, c, s) -> np.ndarray:
        """6-D rotations (..., k, 6): both columns' planar parts into the frame."""
        out = r6.copy()
        for j in (0, 3):
            out[..., j:j + 2] = _rotate_xy(r6[..., j:j + 2], c, s)
        return out

    def features(self, obs: np.ndarray, obs_size: int) -> np.ndarray:
        """Observations (..., k·obs_size) → (..., k·n_features), all in the newest one's frame."""
        obs = np.asarray(obs, dtype=np.float64)
        lead, k = obs.shape[:-1], obs.shape[-1] // obs_size
        o = obs.reshape(*lead, k, obs_size)
        origin, c, s = self._axes(o[..., -1, :])
        hand, obj = o[..., self.ee:self.ee + 3], o[..., self.obj:self.obj + 3]
        goal = o[..., self.goal:self.goal + 2]
        dist = np.linalg.norm(goal - obj[..., :2], axis=-1, keepdims=True)
        parts = [_rotate_xy(hand[..., :2] - origin, c, s), hand[..., 2:3], o[..., self.grip:self.grip + 1],
                 _rotate_xy(obj[..., :2] - origin, c, s), obj[..., 2:3]]
        if self.object_rotation:
            parts.append(self._rot6d(o[..., self.obj + 3:self.obj + 9], c, s))
        parts += [_rotate_xy(goal - origin, c, s), dist]
        return np.concatenate(parts, axis=-1).reshape(*lead, k * self.n_features)

    def _newest(self, obs: np.ndarray, obs_size: int) -> np.ndarray:
        return np.asarray(obs, dtype=np.float64)[..., -obs_size:]

    def to_relative(self, actions: np.ndarray, obs: np.ndarray, obs_size: int) -> np.ndarray:
        """World-frame chunks (..., H, A) → hand positions in the task frame of the observations."""
        newest = self._newest(obs, obs_size)
        origin, c, s = self._axes(newest)
        out = np.array(actions, dtype=np.float64, copy=True)
        out[..., :2] = _rotate_xy(out[..., :2] - origin, c, s)
        out[..., 2] -= newest[..., None, self.ee + 2]
        return out

    def to_world(self, actions: np.ndarray, obs: np.ndarray, obs_size: int) -> np.ndarray:
        """The inverse of `to_relative`."""
        newest = self._newest(obs, obs_size)
        origin, c, s = self._axes(newest)
        out = np.array(actions, dtype=np.float64, copy=True)
        out[..., :2] = _rotate_xy(out[..., :2], c, -s) + origin
        out[..., 2] += newest[..., None, self.ee + 2]
        return out

    def to_dict(self) -> dict:
        d = {"kind": "task", "ee": self.ee, "grip": self.grip, "obj": self.obj, "goal": self.goal}
        if not self.object_rotation:  # (older checkpoints, without the key, have the rotation)
            d["object_rotation"] = False
        return d


def frame_from_dict(d: dict | None) -> "HandFrame | TaskFrame | None":
    """The frame stored in a checkpoint's spec (None: world coordinates)."""
    if not d:
        return None
    kind = d.get("kind") if isinstance(d, dict) else None
    if kind not in ("hand", "task"):
        raise FrameError(f"unknown policy frame {kind!r} (known: hand, task)")
    try:
        if kind == "task":
            rot = d.get("object_rotation", True)
            if not isinstance(rot, bool):
                raise TypeError(f"object_rotation must be true or false, got {rot!r}")
            return TaskFrame(int(d["ee"]), int(d["grip"]), int(d["obj"]), int(d["goal"]), rot)
        return HandFrame(int(d["ee"]), tuple((int(i), int(s)) for i, s in d.get("points", [])),
                         bool(d.get("relative_actions", True)))
    except (KeyError, TypeError, ValueError) as e:
        raise FrameError(f"damaged policy frame {d} ({e})") from e


# Meta-World's 39-number observation: hand xyz 0:3, gripper 3, object 1 pose 4:11, object 2 pose
# 11:18, the same one step earlier 18:36, goal xyz 36:39. Its actions are already hand
# displacements, so only the observation features apply.
_METAWORLD = HandFrame(ee=0, points=((4, 3), (11, 3), (36, 3)), relative_actions=False)


def frame_for_task(task: str, obs_size: int, kind: str = "hand",
                   object_rotation: bool = True) -> "HandFrame | TaskFrame":
    """The frame (`kind`: "hand" or "task") of a task by name: the robot_ctrl tasks (their
    observation layout, see `robot_ctrl.tasks.base`; `<task>-joint` variants get the hand frame's
    observation features only) and Meta-World (`metaworld:<name>`, hand frame only). The task
    frame needs a task with an object and a planar goal, moved in Cartesian space;
    `object_rotation=False` leaves the object's rotation out of its features (task frame only)."""
    if kind not in ("hand", "task"):
        raise FrameError(f"unknown policy frame {kind!r} (known: hand, task)")
    if not object_rotation and kind != "task":
        raise FrameError(f"object_rotation: false is an option of the task frame, not of the {kind} frame")
    if task.startswith("metaworld:"):
        if kind == "task":
            raise FrameError(f"the task frame needs a robot_ctrl task with an object and a planar goal; "
                             f"'{task}' is a Meta-World task (use frame: hand)")
        frame = _METAWORLD
    else:
        from robot_ctrl.learning.envs import base_task
        from robot_ctrl.tasks import TASK_CLASSES

        # joint-space actions (`<task>-joint`) stay absolute: measured, relative joint targets
        # made an MLP's rollouts diverge on reach-joint (0 of 8 vs 6 of 8 absolute)
        joint = base_task(task) != task
        task = base_task(task)
        if task not in TASK_CLASSES:
            raise FrameError(f"the {kind} frame needs a known observation layout; task '{task}' has none "
                             f"(known: {', '.join(sorted(TASK_CLASSES))}, metaworld:<name>). "
                             f"Train with frame: world instead")
        cls = TASK_CLASSES[task]
        task_size = 9 * len(cls.objects) + cls.goal_size
        n2 = obs_size - 10 - task_size  # 2n: joint positions and velocities
        if n2 <= 0 or n2 % 2:
            raise FrameError(f"observation size {obs_size} does not fit task '{task}' "
                             f"({len(cls.objects)} objects, goal of {cls.goal_size})")
        start = n2 + 10
        if kind == "task":
            if joint or not cls.objects or cls.goal_size != 2:
                raise FrameError(f"the task frame needs Cartesian actions, an object and a planar goal (x, y); "
                                 f"task '{task}{'-joint' if joint else ''}' has {len(cls.objects)} objects, "
                                 f"a goal of {cls.goal_size} and {'joint' if joint else 'Cartesian'} actions "
                                 f"(use frame: hand)")
            frame = TaskFrame(ee=n2, grip=n2 + 9, obj=start, goal=obs_size - 2, object_rotation=object_rotation)
        else:
            points = [(start + 9 * k, 3) for k in range(len(cls.objects))]
            if 2 <= cls.goal_size <= 3:
                points.append((obs_size - cls.goal_size, cls.goal_size))
            frame = HandFrame(ee=n2, points=tuple(points), relative_actions=not joint)
    frame.check(obs_size, 3)
    return frame
