"""Recorded ROS runs (rosbag2 / MCAP bags) → a demonstration dataset.

    ds = convert_mcap(["runs/bag_a", "runs/bag_b"], "demos/pp.zarr", "pick_place")
    conv = extract_episodes(["runs/bag_a"], "pick_place")   # the same, without writing
    print(conv.summary())                                    # converted and skipped episodes

A bag is what `robot_ctrl.ros.recorder.BagRecorder` (or `ros2 bag record`) writes from the task
graph; it is read with `robot_ctrl.io.bag` (rosbags, no rclpy). Topics used:

    /joint_states                    sensor_msgs/JointState, header stamp = sim time     (required)
    <action_topic>                   trajectory_msgs/MultiDOFJointTrajectory chunks      (required)
    /objects/<body>/pose             geometry_msgs/PoseStamped per task object           (required)
    /task/goal                       std_msgs/Float64MultiArray (tasks with a goal)       (required)
    /task/success                    std_msgs/Bool                                        (optional)

Episodes. A bag starts an episode; so does every joint state whose header stamp is earlier than
the one before it (the simulator was reset and its clock went back). Equal stamps (a lockstep
re-publish) do not. Other messages are attributed to episodes by log (receive) order relative to
the joint states; where a message was logged in the gap between the last state of one episode
and the first state of the next, a stamped one (pose, chunk) goes to the side whose boundary
stamp is nearer its own (the simulator publishes the new episode's poses just before its first
state, the policy its last chunk just after the old episode's last state), an unstamped one
(success) to the next episode (see below).

Sampling. An episode is sampled at ticks t_k = t_start + k·dt, t_start being the earliest chunk
stamp of the episode (when the policy or operator first acted; what comes before is dropped),
for as long as the episode has joint states (t_k ≤ the last state's stamp). At each tick:
- observation: `build_observation` (the function the environment and the policy node use) on
  the latest joint state with stamp ≤ t_k, the latest pose of each task object with stamp ≤ t_k
  (both by header stamp, within the episode), and the goal: the latest /task/goal message logged
  at or before that joint state. Goals carry no stamp, so log order is all there is; the
  simulator publishes a new goal on reset just before the new episode's first state, so this is
  the goal of the episode (and follows a goal change mid-episode as the policy node would).
  Leading ticks without a complete observation (no pose or goal yet) are dropped, as the policy
  node waits for a complete one; the count is reported.
- action: the active chunk is the one with the latest stamp ≤ t_k (a tie goes to the one logged
  later, which the controller would have replaced the other with). Its target for t_k + dt is the
  point whose absolute time (stamp + time_from_start) is nearest t_k + dt; past the chunk's end,
  its last point. A chunk with a zero stamp means "start now" for the controller: it gets the
  stamp of the latest joint state logged before it. The target becomes the task action: hand
  position (3), 6-D rotation (first two columns of the rotation matrix), gripper (clipped to
  [-1, 1]; 1.0 = open when the chunk has no gripper joint, as the controller does).

Success. An episode succeeded if any /task/success message in it is True (False without the
topic). Success carries no stamp: a message is taken to describe the first joint state logged at
or after it (the simulator publishes it with the object poses just before that state), and has
that state's stamp. A successful episode ends at the tick whose step reached success: the tick k
with t_k < t_success ≤ t_k + dt is the last one kept, which is where a Gymnasium episode
terminates (its last (obs, action) pair is the step that returned success).

Times are compared in integer nanoseconds, "at or before" with a tolerance of 1 µs (the stamps
of float simulation times are rounded to the nanosecond).

Refused with a DatasetError naming the bag and topic (nothing is written): a bag without
/joint_states, the action topic, an object's pose topic or the goal topic, or with one of another
message type; a joint state without one of the robot's joints, or with NaN/Inf position or
velocity (an empty velocity reads as zeros, as in the policy node); a non-finite or non-unit
quaternion, pose, goal or chunk; a chunk the controller would reject (joint names, no points,
non-increasing times). Skipped and reported (`Conversion.skipped`, logged as warnings): episodes
without chunks, and episodes with no complete observation.
"""
from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from robot_ctrl.learning.dataset import (
    Dataset,
    DatasetError,
    DatasetWriter,
    load_dataset,
)

log = logging.getLogger(__name__)

ACTION_TOPIC = "/controller/cartesian_trajectory"
JOINT_STATES = "/joint_states"
GOAL_TOPIC = "/task/goal"
SUCCESS_TOPIC = "/task/success"
GRIPPER_JOINT = "gripper"

JOINT_STATE_TYPE = "sensor_msgs/msg/JointState"
POSE_TYPE = "geometry_msgs/msg/PoseStamped"
GOAL_TYPE = "std_msgs/msg/Float64MultiArray"
SUCCESS_TYPE = "std_msgs/msg/Bool"
CHUNK_TYPE = "trajectory_msgs/msg/MultiDOFJointTrajectory"

TIME_TOL_NS = 1_000  # "at or before" tolerance: 1 µs
QUAT_TOL = 1e-3      # |‖q‖ − 1| above this is not a rotation (the controller's and policy node's test)
ROBOT = "panda"      # the tasks are built for the panda


def object_topic(body: str) -> str:
    return f"/objects/{body}/pose"


@dataclass
class BagEpisode:
    """One converted episode."""
    bag: str
    index: int          # episode number in its bag (0-based, counting every reset)
    t_start: float      # sim time of the first kept tick (s)
    obs: np.ndarray     # (T, obs_size) float32
    actions: np.ndarray  # (T, 10) float32
    success: bool
    dropped: int = 0    # leading ticks without a complete observation

    def __len__(self) -> int:
        return len(self.obs)


@dataclass
class SkippedEpisode:
    bag: str
    index: int
    reason: str


@dataclass
class Conversion:
    """What `extract_episodes` found: the episodes to write and those skipped, with why."""
    task: str
    dt: float
    obs_size: int
    act_size: int
    episodes: list[BagEpisode] = field(default_factory=list)
    skipped: list[SkippedEpisode] = field(default_factory=list)

    def summary(self) -> str:
        n_ok = sum(e.success for e in self.episodes)
        steps = sum(len(e) for e in self.episodes)
        head = (f"{len(self.episodes)} episode(s) converted ({n_ok} successful, {steps} steps at "
                f"dt={self.dt:g} s), {len(self.skipped)} skipped")
        lines = [head]
        for e in self.episodes:
            extra = f", {e.dropped} leading tick(s) without a complete observation dropped" if e.dropped else ""
            lines.append(f"  {e.bag} episode {e.index}: {len(e)} steps from t={e.t_start:.3f} s, "
                         f"{'success' if e.success else 'no success'}{extra}")
        for s in self.skipped:
            lines.append(f"  {s.bag} episode {s.index}: skipped, {s.reason}")
        return "\n".join(lines)


# -- helpers -----------------------------------------------------------------------------------

def _ns(t) -> int:
    """builtin_interfaces Time/Duration → integer nanoseconds."""
    return int(t.sec) * 1_000_000_000 + int(t.nanosec)


def _sec(ns: int) -> float:
    return ns * 1e-9


def _quat_matrix(w: float, x: float, y: float, z: float) -> np.ndarray:
    """Rotation matrix of a unit quaternion (normalized first)."""
    n = np.sqrt(w * w + x * x + y * y + z * z)
    w, x, y, z = w / n, x / n, y / n, z / n
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])


def _rotation(bag: str, topic: str, what: str, q) -> np.ndarray:
    quat = np.array([q.w, q.x, q.y, q.z], dtype=float)
    if not np.all(np.isfinite(quat)):
        raise DatasetError(f"bag {bag}, topic {topic}: {what}: non-finite quaternion {quat.tolist()}")
    norm = float(np.linalg.norm(quat))
    if abs(norm - 1.0) > QUAT_TOL:
        raise DatasetError(f"bag {bag}, topic {topic}: {what}: quaternion of norm {norm:.4f} is not a rotation")
    return _quat_matrix(*quat)


def task_class(task: str) -> tuple[str, type]:
    """(short name, task class) of a robot_ctrl task given by short name or Gymnasium id."""
    import gymnasium as gym

    from robot_ctrl.tasks import TASKS

    short = {gid: name for name, gid in TASKS.items()}.get(task, task)
    if short not in TASKS:
        raise ValueError(f"unknown task '{task}' (MCAP conversion knows the robot_ctrl tasks: {', '.join(TASKS)})")
    mod, cls = gym.spec(TASKS[short]).entry_point.split(":")
    return short, getattr(importlib.import_module(mod), cls)


@dataclass
class _Chunk:
    log: int
    stamp: int          # ns, after resolving a zero stamp
    times: np.ndarray   # (K,) time_from_start, ns
    actions: np.ndarray  # (K, 10)
    episode: int = 0


class _BagData:
    """One bag's messages as arrays, validated, in log order."""

    def __init__(self, bag: str, cls: type, joint_names: list[str], ee_frame: str, action_topic: str):
        from robot_ctrl.io.bag import BagError, _messages, bag_topics

        self.bag = bag
        self.objects = tuple(cls.objects)
        self.goal_size = int(cls.goal_size)
        self.joint_names = joint_names
        self.ee_frame = ee_frame
        self.action_topic = action_topic
        try:
            topics = bag_topics(bag)
        except BagError as exc:
            raise DatasetError(f"bag {bag}: {exc}") from None
        required = {JOINT_STATES: JOINT_STATE_TYPE, action_topic: CHUNK_TYPE}
        required.update({object_topic(b): POSE_TYPE for b in self.objects})
        if self.goal_size:
            required[GOAL_TOPIC] = GOAL_TYPE
        for topic, msgtype in required.items():
            if topic not in topics:
                raise DatasetError(f"bag {bag}: topic {topic} ({msgtype}) is missing; the conversion needs it. "
                                   f"The bag has: {', '.join(sorted(topics)) or 'no topics'}")
            if topics[topic] != msgtype:
                raise DatasetError(f"bag {bag}, topic {topic}: holds {topics[topic]}, expected {msgtype}")
        self.has_success = SUCCESS_TOPIC in topics
        if self.has_success and topics[SUCCESS_TOPIC] != SUCCESS_TYPE:
            raise DatasetError(f"bag {bag}, topic {SUCCESS_TOPIC}: holds {topics[SUCCESS_TOPIC]}, "
                               f"expected {SUCCESS_TYPE}")
        wanted = list(required) + ([SUCCESS_TOPIC] if self.has_success else [])

        self._js_index: dict[tuple, np.ndarray] = {}
        js_s, js_l, js_q, js_v = [], [], [], []
        self.poses = {b: ([], [], [], []) for b in self.objects}  # log, stamp, position, rotation
        topic_body = {object_topic(b): b for b in self.objects}
        goal_l, goal_v, succ_l, succ_v = [], [], [], []
        chunks: list[_Chunk] = []
        raw_zero: list[int] = []
        counts = dict.fromkeys(wanted, 0)
        # streamed (one pass, messages turned into arrays as they come): a long 500 Hz
        # recording would not fit in memory as deserialized messages
        try:
            for topic, _, t_log, msg in _messages(bag, wanted):
                i = counts[topic]
                counts[topic] += 1
                if topic == JOINT_STATES:
                    q, v = self._joint_state(i, msg)
                    js_s.append(_ns(msg.header.stamp))
                    js_l.append(t_log)
                    js_q.append(q)
                    js_v.append(v)
                elif topic == action_topic:
                    stamp = _ns(msg.header.stamp)
                    times, actions = self._chunk(i, msg)
                    if stamp == 0:
                        raw_zero.append(len(chunks))
                    chunks.append(_Chunk(t_log, stamp, times, actions))
                elif topic in topic_body:
                    what = f"message {i} (stamp {_sec(_ns(msg.header.stamp)):.3f} s)"
                    p = msg.pose.position
                    pos = np.array([p.x, p.y, p.z], dtype=float)
                    if not np.all(np.isfinite(pos)):
                        raise DatasetError(f"bag {bag}, topic {topic}: {what}: non-finite position {pos.tolist()}")
                    lst = self.poses[topic_body[topic]]
                    lst[0].append(t_log)
                    lst[1].append(_ns(msg.header.stamp))
                    lst[2].append(pos)
                    lst[3].append(_rotation(bag, topic, what, msg.pose.orientation))
                elif topic == GOAL_TOPIC:
                    g = np.asarray(msg.data, dtype=float).reshape(-1)
                    if g.shape != (self.goal_size,):
                        raise DatasetError(f"bag {bag}, topic {topic}: message {i} has {g.size} values; the task's "
                                           f"goal has {self.goal_size}")
                    if not np.all(np.isfinite(g)):
                        raise DatasetError(f"bag {bag}, topic {topic}: message {i} has non-finite values {g.tolist()}")
                    goal_l.append(t_log)
                    goal_v.append(g)
                elif topic == SUCCESS_TOPIC:
                    succ_l.append(t_log)
                    succ_v.append(bool(msg.data))
        except BagError as exc:
            raise DatasetError(f"bag {bag}: {exc}") from None

        if not js_s:
            raise DatasetError(f"bag {bag}, topic {JOINT_STATES}: no messages")
        self.S = np.array(js_s, dtype=np.int64)   # header stamps (ns)
        self.L = np.array(js_l, dtype=np.int64)   # log times (ns), non-decreasing
        self.Q = np.array(js_q)
        self.V = np.array(js_v)
        if not np.any(self.S):
            raise DatasetError(f"bag {bag}, topic {JOINT_STATES}: every header stamp is zero; the conversion "
                               "samples by the states' (sim) time stamps")
        # episodes: a new one wherever the state clock goes back (simulator reset)
        self.ep = np.concatenate([[0], np.cumsum(np.diff(self.S) < 0)]).astype(int)
        self.n_episodes = int(self.ep[-1]) + 1
        bounds = np.flatnonzero(np.diff(self.ep)) + 1
        self.starts = np.concatenate([[0], bounds]).astype(int)
        self.ends = np.concatenate([bounds, [len(self.S)]]).astype(int)

        for c in chunks:
            if c.stamp == 0:  # "start now": the controller's time, its latest state
                i = int(np.searchsorted(self.L, c.log, side="right")) - 1
                c.stamp = int(self.S[max(i, 0)])
            c.episode = self._episode_stamped(c.log, c.stamp)
        self.chunks = chunks
        self.pose_arrays = {}
        for b, (pl, ps, pp, pr) in self.poses.items():
            pl, ps = np.array(pl, dtype=np.int64), np.array(ps, dtype=np.int64)
            eps = np.array([self._episode_stamped(a, s) for a, s in zip(pl, ps)], dtype=int)
            self.pose_arrays[b] = (eps, ps, np.array(pp).reshape(-1, 3), np.array(pr).reshape(-1, 3, 3))
        self.goal_l = np.array(goal_l, dtype=np.int64)
        self.goal_v = np.array(goal_v, dtype=float).reshape(len(goal_v), self.goal_size)
        # success: describes the first state logged at or after it
        succ_l = np.array(succ_l, dtype=np.int64)
        j = np.minimum(np.searchsorted(self.L, succ_l, side="left"), len(self.S) - 1)
        self.succ_ep = self.ep[j]
        self.succ_t = self.S[j]
        self.succ_v = np.array(succ_v, dtype=bool)

    # -- validation ------------------------------------------------------------------------
    def _joint_state(self, i: int, msg) -> tuple[np.ndarray, np.ndarray]:
        topic, bag = JOINT_STATES, self.bag
        what = f"message {i} (stamp {_sec(_ns(msg.header.stamp)):.3f} s)"
        key = tuple(msg.name)
        idx = self._js_index.get(key)
        if idx is None:
            pos = {}
            for k, name in enumerate(key):
                if name in pos:
                    raise DatasetError(f"bag {bag}, topic {topic}: {what}: joint '{name}' listed twice")
                pos[name] = k
            missing = [j for j in self.joint_names if j not in pos]
            if missing:
                raise DatasetError(f"bag {bag}, topic {topic}: {what}: robot joint(s) {', '.join(missing)} missing "
                                   f"(the message has: {', '.join(key) or 'no names'})")
            idx = self._js_index[key] = np.array([pos[j] for j in self.joint_names], dtype=int)
        position = np.asarray(msg.position, dtype=float)
        velocity = np.asarray(msg.velocity, dtype=float)
        if position.size != len(key):
            raise DatasetError(f"bag {bag}, topic {topic}: {what}: {position.size} positions for {len(key)} names")
        if velocity.size not in (0, len(key)):
            raise DatasetError(f"bag {bag}, topic {topic}: {what}: {velocity.size} velocities for {len(key)} names")
        q = position[idx]
        v = velocity[idx] if velocity.size else np.zeros(len(idx))  # as the policy node reads it
        bad = [self.joint_names[j] for j in np.flatnonzero(~(np.isfinite(q) & np.isfinite(v)))]
        if bad:
            raise DatasetError(f"bag {bag}, topic {topic}: {what}: non-finite position or velocity of "
                               f"{', '.join(bad)}")
        return q, v

    def _chunk(self, i: int, msg) -> tuple[np.ndarray, np.ndarray]:
        from robot_ctrl.control.cartesian import rot6d_from_matrix

        topic, bag = self.action_topic, self.bag
        what = f"message {i} (stamp {_sec(_ns(msg.header.stamp)):.3f} s)"
        names = list(msg.joint_names)
        if (not names or names[0] != self.ee_frame or len(names) > 2
                or (len(names) == 2 and names[1] != GRIPPER_JOINT)):
            raise DatasetError(f"bag {bag}, topic {topic}: {what}: joint_names must be ['{self.ee_frame}'] or "
                               f"['{self.ee_frame}', '{GRIPPER_JOINT}'], got {names}")
        if not msg.points:
            raise DatasetError(f"bag {bag}, topic {topic}: {what}: chunk has no points")
        times = np.empty(len(msg.points), dtype=np.int64)
        actions = np.empty((len(msg.points), 10))
        for k, pt in enumerate(msg.points):
            if len(pt.transforms) != len(names):
                raise DatasetError(f"bag {bag}, topic {topic}: {what}: point {k} has {len(pt.transforms)} "
                                   f"transforms for {len(names)} joints")
            tr = pt.transforms[0].translation
            p = np.array([tr.x, tr.y, tr.z], dtype=float)
            if not np.all(np.isfinite(p)):
                raise DatasetError(f"bag {bag}, topic {topic}: {what}: point {k}: non-finite position {p.tolist()}")
            R = _rotation(bag, topic, f"{what}: point {k}", pt.transforms[0].rotation)
            g = float(pt.transforms[1].translation.x) if len(names) == 2 else 1.0
            if not np.isfinite(g):
                raise DatasetError(f"bag {bag}, topic {topic}: {what}: point {k}: non-finite gripper command")
            actions[k] = np.concatenate([p, rot6d_from_matrix(R), [np.clip(g, -1.0, 1.0)]])
            times[k] = _ns(pt.time_from_start)
        if times[0] <= 0 or np.any(np.diff(times) <= 0):
            raise DatasetError(f"bag {bag}, topic {topic}: {what}: time_from_start must be positive and strictly "
                               "increasing")
        return times, actions

    # -- attribution -----------------------------------------------------------------------
    def _episode_stamped(self, t_log: int, stamp: int) -> int:
        """Episode of a stamped message from where it was logged among the joint states."""
        i = int(np.searchsorted(self.L, t_log, side="right"))  # states logged at or before it
        if i == 0:
            return 0
        if i == len(self.L):
            return int(self.ep[-1])
        a, b = int(self.ep[i - 1]), int(self.ep[i])
        if a == b:
            return a
        # logged between two episodes: the side whose boundary stamp is nearer
        return b if abs(stamp - int(self.S[i])) < abs(stamp - int(self.S[i - 1])) else a

    # -- sampling --------------------------------------------------------------------------
    def episode(self, e: int, dt_ns: int, ik, build_observation) -> BagEpisode | SkippedEpisode:
        a, b = int(self.starts[e]), int(self.ends[e])
        S = self.S[a:b]
        chunks = [c for c in self.chunks if c.episode == e]
        if not chunks:
            return SkippedEpisode(self.bag, e, f"no messages on {self.action_topic} (no actions) in "
                                               f"t={_sec(S[0]):.3f}..{_sec(S[-1]):.3f} s")
        t_start = min(c.stamp for c in chunks)
        if t_start > S[-1] + TIME_TOL_NS:
            return SkippedEpisode(self.bag, e, f"the first chunk (t={_sec(t_start):.3f} s) comes after the last "
                                               f"joint state (t={_sec(S[-1]):.3f} s)")
        n_ticks = int((S[-1] + TIME_TOL_NS - t_start) // dt_ns) + 1
        T = t_start + np.arange(n_ticks, dtype=np.int64) * dt_ns

        success = False
        if self.has_success:
            sel = (self.succ_ep == e) & self.succ_v
            if np.any(sel):
                success = True
                num = int(self.succ_t[sel].min()) - TIME_TOL_NS - t_start
                k_last = max(0, -(-num // dt_ns) - 1)  # the tick with t_k < t_success <= t_k + dt
                n_ticks = min(n_ticks, k_last + 1)
                T = T[:n_ticks]

        # latest state at or before each tick (the last logged among equal stamps)
        js = np.searchsorted(S, T + TIME_TOL_NS, side="right") - 1
        ok = js >= 0
        poses = {}
        for body, (eps, ps, pp, pr) in self.pose_arrays.items():
            sel = np.flatnonzero(eps == e)
            order = sel[np.argsort(ps[sel], kind="stable")]
            pi = np.searchsorted(ps[order], T + TIME_TOL_NS, side="right") - 1
            ok &= pi >= 0
            poses[body] = (order, pi, pp, pr)
        if self.goal_size:
            gi = np.searchsorted(self.goal_l, self.L[a + np.maximum(js, 0)], side="right") - 1
            ok &= gi >= 0
        # leading ticks without a complete observation are dropped (the policy node waits too)
        # (every index above is non-decreasing in k: once complete, an observation stays complete)
        k0 = int(np.argmax(ok)) if np.any(ok) else n_ticks
        if k0 >= n_ticks:
            missing = []
            if not np.any(js >= 0):
                missing.append(JOINT_STATES)
            missing += [object_topic(b) for b, (order, pi, _, _) in poses.items() if not np.any(pi >= 0)]
            if self.goal_size and not np.any(gi >= 0):
                missing.append(GOAL_TOPIC)
            return SkippedEpisode(self.bag, e, f"no complete observation from t={_sec(t_start):.3f} s to "
                                               f"t={_sec(T[-1]):.3f} s (nothing yet on {', '.join(missing)})")

        # active chunk: latest stamp <= t_k, ties to the one logged later
        chunks.sort(key=lambda c: (c.stamp, c.log))
        c_stamps = np.array([c.stamp for c in chunks], dtype=np.int64)
        ci = np.searchsorted(c_stamps, T + TIME_TOL_NS, side="right") - 1

        obs, acts = [], []
        for k in range(k0, n_ticks):
            j = a + int(js[k])
            object_poses = []
            for body in self.objects:
                order, pi, pp, pr = poses[body]
                m = order[pi[k]]
                object_poses.append((pp[m], pr[m]))
            goal = self.goal_v[gi[k]] if self.goal_size else np.zeros(0)
            obs.append(build_observation(ik, self.Q[j], self.V[j], object_poses, goal))
            c = chunks[int(ci[k])]
            target = T[k] + dt_ns
            p = int(np.argmin(np.abs(c.stamp + c.times - target)))
            acts.append(c.actions[p])
        return BagEpisode(self.bag, e, _sec(int(T[k0])), np.array(obs, np.float32), np.array(acts, np.float32),
                          success, dropped=k0)


def _as_list(bags) -> list[str]:
    if isinstance(bags, (str, os.PathLike)):
        return [os.fspath(bags)]
    return [os.fspath(b) for b in bags]


def extract_episodes(bags: Iterable[str | Path], task: str, dt: float = 0.1,
                     action_topic: str = ACTION_TOPIC) -> Conversion:
    """Read the bags and sample their episodes (see the module doc); writes nothing."""
    from robot_ctrl.control.cartesian import DiffIK
    from robot_ctrl.model import RobotModel
    from robot_ctrl.tasks.base import ACTION_SIZE, build_observation

    bags = _as_list(bags)
    if not bags:
        raise ValueError("no bags given")
    dt = float(dt)
    if not (np.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be a positive number of seconds, got {dt}")
    dt_ns = round(dt * 1e9)
    short, cls = task_class(task)
    robot = RobotModel.load(ROBOT)
    ik = DiffIK(robot)
    obs_size = 2 * robot.n + 10 + 9 * len(cls.objects) + int(cls.goal_size)
    conv = Conversion(short, dt, obs_size, ACTION_SIZE)
    for bag in bags:
        data = _BagData(bag, cls, list(robot.joint_names), robot.cfg.ee_frame, action_topic)
        for e in range(data.n_episodes):
            item = data.episode(e, dt_ns, ik, build_observation)
            (conv.episodes if isinstance(item, BagEpisode) else conv.skipped).append(item)
    return conv


def convert_mcap(bags: Iterable[str | Path], out: str | Path, task: str, dt: float = 0.1, append: bool = False,
                 action_topic: str = ACTION_TOPIC) -> Dataset:
    """Convert recorded bags of a task run into a dataset at `out` (source "mcap") and return it.

    Every bag is read and checked before anything is written: a refused bag leaves `out` as it
    was. Skipped episodes are logged (warning) with the reason; `extract_episodes` returns the
    same summary without writing.
    """
    bags = _as_list(bags)
    out = Path(out)
    if out.exists() and not append:
        raise DatasetError(f"{out} already exists (pass append=True to add episodes)")
    conv = extract_episodes(bags, task, dt=dt, action_topic=action_topic)
    for s in conv.skipped:
        log.warning("%s episode %d skipped: %s", s.bag, s.index, s.reason)
    if not conv.episodes:
        raise DatasetError(f"no episode to convert into {out}:\n{conv.summary()}")
    if append and out.exists():
        from robot_ctrl.tasks import TASKS

        old = load_dataset(out)
        old_task = {gid: name for name, gid in TASKS.items()}.get(old.task, old.task)
        if old_task and old_task != conv.task:
            raise DatasetError(f"{out}: holds task '{old.task}', cannot append '{conv.task}' episodes")
        if abs(old.dt - conv.dt) > 1e-9:
            raise DatasetError(f"{out}: sampled at dt={old.dt:g} s, cannot append episodes sampled at dt={conv.dt:g} s")
    writer = DatasetWriter(out, conv.task, conv.obs_size, conv.act_size, conv.dt, source="mcap", append=append)
    for e in conv.episodes:
        writer.add_episode(e.obs, e.actions, e.success)
    ds = writer.close()
    log.info("%s → %s\n%s", ", ".join(bags), out, conv.summary())
    return ds
