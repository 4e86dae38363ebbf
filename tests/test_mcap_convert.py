"""MCAP bags of a task run → dataset (robot_ctrl.learning.mcap_convert), on real rosbag2/MCAP files.

The bags are written with rosbags' Writer and the Jazzy typestore's CDR serializer (what
BagRecorder writes), from a real PickPlaceEnv run: the simulator's topics at 500 Hz (object
poses and success at 50 Hz, published just before the state, the goal on reset), and one
1-point Cartesian chunk per policy step with the scripted expert's action, stamped with the
state it was computed from, as the policy node does.
"""
from __future__ import annotations

import mujoco
import numpy as np
import pytest
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from robot_ctrl.control.cartesian import matrix_from_rot6d
from robot_ctrl.learning.dataset import DatasetError, load_dataset
from robot_ctrl.learning.mcap_convert import convert_mcap, extract_episodes

TS = get_typestore(Stores.ROS2_JAZZY)
T = TS.types
JS, POSE, F64A, BOOL, CHUNK = ("sensor_msgs/msg/JointState", "geometry_msgs/msg/PoseStamped",
                               "std_msgs/msg/Float64MultiArray", "std_msgs/msg/Bool",
                               "trajectory_msgs/msg/MultiDOFJointTrajectory")
ACTION_TOPIC = "/controller/cartesian_trajectory"
DT = 0.1
OBJECT_EVERY = 10  # poses/success every 10 control periods (50 Hz at 500 Hz)


def _time(t: float):
    sec, ns = divmod(round(t * 1e9), 1_000_000_000)
    return T["builtin_interfaces/msg/Time"](sec=sec, nanosec=ns)


def _header(t: float):
    return T["std_msgs/msg/Header"](stamp=_time(t), frame_id="world")


def _quat_xyzw(R) -> tuple[float, float, float, float]:
    q = np.zeros(4)
    mujoco.mju_mat2Quat(q, np.asarray(R, float).reshape(-1))
    return float(q[1]), float(q[2]), float(q[3]), float(q[0])


class BagWriter:
    """A rosbag2 directory with one MCAP file; log times advance 1 µs per message."""

    def __init__(self, path):
        self.path = path
        self.w = Writer(path, version=9, storage_plugin=StoragePlugin.MCAP)
        self.w.open()
        self.conns = {}
        self.log = 1_700_000_000_000_000_000

    def write(self, topic: str, msgtype: str, msg) -> None:
        if topic not in self.conns:
            self.conns[topic] = self.w.add_connection(topic, msgtype, typestore=TS)
        self.log += 1000
        self.w.write(self.conns[topic], self.log, TS.serialize_cdr(msg, msgtype))

    def joint_state(self, t, names, q, v) -> None:
        self.write("/joint_states", JS, T[JS](header=_header(t), name=list(names), position=np.asarray(q, float),
                                              velocity=np.asarray(v, float), effort=np.zeros(len(names))))

    def pose(self, body, t, p, R) -> None:
        x, y, z, w = _quat_xyzw(R)
        pose = T["geometry_msgs/msg/Pose"](position=T["geometry_msgs/msg/Point"](x=float(p[0]), y=float(p[1]),
                                                                                 z=float(p[2])),
                                           orientation=T["geometry_msgs/msg/Quaternion"](x=x, y=y, z=z, w=w))
        self.write(f"/objects/{body}/pose", POSE, T[POSE](header=_header(t), pose=pose))

    def goal(self, g) -> None:
        layout = T["std_msgs/msg/MultiArrayLayout"](dim=[], data_offset=0)
        self.write("/task/goal", F64A, T[F64A](layout=layout, data=np.asarray(g, float)))

    def success(self, ok: bool) -> None:
        self.write("/task/success", BOOL, T[BOOL](data=bool(ok)))

    def chunk(self, t, actions, ee_frame="panda_hand_tcp") -> None:
        """A Cartesian chunk as the policy node publishes it: point k is the target for t + (k+1)·DT."""
        V3, Q, TF = (T["geometry_msgs/msg/Vector3"], T["geometry_msgs/msg/Quaternion"],
                     T["geometry_msgs/msg/Transform"])
        points = []
        for k, a in enumerate(actions):
            x, y, z, w = _quat_xyzw(matrix_from_rot6d(np.asarray(a[3:9], float)))
            hand = TF(translation=V3(x=float(a[0]), y=float(a[1]), z=float(a[2])), rotation=Q(x=x, y=y, z=z, w=w))
            grip = TF(translation=V3(x=float(a[9]), y=0.0, z=0.0), rotation=Q(x=0.0, y=0.0, z=0.0, w=1.0))
            sec, ns = divmod(round((k + 1) * DT * 1e9), 1_000_000_000)
            points.append(T["trajectory_msgs/msg/MultiDOFJointTrajectoryPoint"](
                transforms=[hand, grip], velocities=[], accelerations=[],
                time_from_start=T["builtin_interfaces/msg/Duration"](sec=sec, nanosec=ns)))
        self.write(ACTION_TOPIC, CHUNK, T[CHUNK](header=_header(t), joint_names=[ee_frame, "gripper"], points=points))

    def close(self) -> None:
        self.w.close()


class SimPublisher:
    """Publishes what the sim node would for a PickPlaceEnv: every control period (sim.step),
    the object poses and success (every OBJECT_EVERY periods) and then the joint state."""

    def __init__(self, env, bag: BagWriter):
        self.env, self.bag = env, bag
        self._step = env.sim.step
        env.sim.step = self._stepped  # the env's own physics step, then publish as the sim node

    def _stepped(self, *args, **kwargs):
        out = self._step(*args, **kwargs)
        self.publish()
        return out

    def publish(self) -> None:
        env, sim = self.env, self.env.sim
        if sim.steps % OBJECT_EVERY == 0:
            for b in env.objects:
                self.bag.pose(b, sim.time, *env.object_pose(b))
            self.bag.success(env._success())
        self.bag.joint_state(sim.time, sim.joint_names, sim.q, sim.v)

    def reset(self, seed: int) -> np.ndarray:
        obs, _ = self.env.reset(seed=seed)
        self.bag.goal(self.env.goal())  # the sim node: goal on reset, then the new state
        self.publish()
        return obs


def run_episode(pub: SimPublisher, seed: int, max_steps: int, idle: int = 0, after_success: int = 0):
    """Expert episode; returns the observations before each step, the actions, and whether and
    after how many steps it succeeded (the Gymnasium episode: obs/action pairs up to success)."""
    env = pub.env
    obs = pub.reset(seed)
    for _ in range(idle):  # the policy starts late: the sim holds, nothing is commanded
        env.sim.step()
    if idle:
        obs = env._obs()
    O, A, done_at = [], [], None
    for k in range(max_steps):
        a = env.expert(0.0)
        pub.bag.chunk(env.sim.time, [a])  # stamped with the state it was computed from
        O.append(obs)
        A.append(a)
        obs, _, term, _, _ = env.step(a)
        if term and done_at is None:
            done_at = k + 1
        if done_at is not None and k + 1 >= done_at + after_success:
            break
    return np.array(O), np.array(A), obs, done_at


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    from robot_ctrl.tasks import PickPlaceEnv

    root = tmp_path_factory.mktemp("mcap")
    env = PickPlaceEnv(safety=None)
    bag = BagWriter(root / "run_bag")
    pub = SimPublisher(env, bag)
    # episode 0: to success, and the policy goes on for 3 more steps (to be cut off)
    O0, A0, _, done0 = run_episode(pub, seed=0, max_steps=150, after_success=3)
    # episode 1 (after a reset: time back to 0): the policy starts at 0.04 s, stopped after 15 steps
    O1, A1, last1, done1 = run_episode(pub, seed=1, max_steps=15, idle=20)
    # episode 2: a reset, the sim runs, nothing commanded (no chunks): skipped
    pub.reset(2)
    for _ in range(30):
        env.sim.step()
    bag.close()
    assert done0 is not None and done1 is None
    return {"root": root, "bag": root / "run_bag", "ep0": (O0[:done0], A0[:done0]),
            "ep1": (np.vstack([O1, last1[None]]), np.vstack([A1, A1[-1:]])), "obs_size": env.obs_size}


def test_converts_episodes_like_the_environment(recorded, tmp_path):
    out = tmp_path / "demos.zarr"
    ds = convert_mcap([recorded["bag"]], out, "pick_place", dt=DT)
    assert ds.source == "mcap" and ds.task == "pick_place" and ds.dt == pytest.approx(DT)
    assert ds.obs_size == recorded["obs_size"] and ds.act_size == 10
    assert ds.n_episodes == 2
    assert ds.success.tolist() == [True, False]
    # episode 0 ends with the step that reached success (as the Gymnasium episode terminates);
    # episode 1 runs as long as there are states: its last tick (t=1.54 s) holds the last chunk's target
    for i, key in enumerate(("ep0", "ep1")):
        obs, act = recorded[key]
        sl = ds.episode(i)
        assert sl.stop - sl.start == len(obs)
        np.testing.assert_allclose(ds.obs[sl], obs, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(ds.action[sl], act, rtol=1e-6, atol=1e-6)
    assert load_dataset(out).n_episodes == 2

    # the episode without actions is reported, not converted
    conv = extract_episodes(str(recorded["bag"] / "run_bag.mcap"), "robot_ctrl/PickPlace-v0", dt=DT)
    assert [e.index for e in conv.episodes] == [0, 1]
    assert conv.episodes[1].t_start == pytest.approx(0.04)
    assert [(s.index, ACTION_TOPIC in s.reason) for s in conv.skipped] == [(2, True)]
    assert "skipped" in conv.summary()

    # appending the same run again; a different dt is refused
    ds2 = convert_mcap([recorded["bag"]], out, "pick_place", dt=DT, append=True)
    assert ds2.n_episodes == 4 and ds2.success.tolist() == [True, False, True, False]
    with pytest.raises(DatasetError, match="dt=0.1"):
        convert_mcap([recorded["bag"]], out, "pick_place", dt=0.05, append=True)


def _act(x: float) -> np.ndarray:
    return np.array([x, 0.0, 0.3, 1, 0, 0, 0, -1, 0, 1.0])


def _small_bag(path, *, joint_states=True, chunks=True, q_nan=False, drop_joint=None, success_at=None):
    """A short pick_place recording (states every 0.05 s up to 0.45 s), with whatever is asked
    broken. Chunks: at t=0 three points x=0.40, 0.41, 0.42 (targets for 0.1, 0.2, 0.3 s); at
    t=0.2 one point x=0.50; one with a zero stamp ("start now") logged after the state of
    0.35 s, x=0.60. Success (if asked) turns True with the poses published before state k."""
    from robot_ctrl.model import RobotModel

    robot = RobotModel.load("panda")
    names = [n for n in robot.joint_names if n != drop_joint]
    q = dict(zip(robot.joint_names, robot.home))
    bag = BagWriter(path)
    bag.goal([0.5, -0.1])
    for k in range(10):
        t = 0.05 * k
        bag.pose("block", t, [0.5, 0.1, 0.02], np.eye(3))
        bag.success(success_at is not None and k >= success_at)
        if joint_states:
            pos = [np.nan if (q_nan and k == 3 and n == "panda_joint4") else q[n] for n in names]
            bag.joint_state(t, names, pos, np.zeros(len(names)))
        if chunks and k == 0:
            bag.chunk(t, [_act(0.40), _act(0.41), _act(0.42)])
        if chunks and k == 4:
            bag.chunk(t, [_act(0.50)])
        if chunks and k == 7:
            bag.chunk(0.0, [_act(0.60)])
    bag.close()
    return path


@pytest.mark.parametrize("case, topic, match", [
    ({"joint_states": False}, "/joint_states", "missing"),
    ({"chunks": False}, ACTION_TOPIC, "missing"),
    ({"q_nan": True}, "/joint_states", "non-finite .*panda_joint4"),
    ({"drop_joint": "panda_finger_joint2"}, "/joint_states", "panda_finger_joint2 missing"),
])
def test_refuses_broken_bags_naming_file_and_topic(tmp_path, case, topic, match):
    bag = _small_bag(tmp_path / "broken_bag", **case)
    out = tmp_path / "out.zarr"
    with pytest.raises(DatasetError, match=match) as err:
        convert_mcap([bag], out, "pick_place")
    assert str(bag) in str(err.value) and topic in str(err.value)
    assert not out.exists()


def test_ticks_follow_the_active_chunk(tmp_path):
    """Ticks 0..0.4 s; each takes the active chunk's target for t + dt (held past its end)."""
    ds = convert_mcap([_small_bag(tmp_path / "ok_bag")], tmp_path / "out.zarr", "pick_place")
    assert ds.n_episodes == 1 and not ds.success[0]
    np.testing.assert_allclose(ds.action[:, 0], [0.40, 0.41, 0.50, 0.50, 0.60], atol=1e-7)
    np.testing.assert_allclose(ds.action[:, 1:], [_act(0)[1:]] * 5, atol=1e-7)
    np.testing.assert_allclose(ds.obs[:, -2:], [[0.5, -0.1]] * 5)


def test_success_ends_the_episode_with_the_step_that_reached_it(tmp_path):
    """Success first describes the state of 0.15 s: reached by the step from the tick at 0.1 s."""
    ds = convert_mcap([_small_bag(tmp_path / "ok_bag", success_at=3)], tmp_path / "out.zarr", "pick_place")
    assert ds.success.tolist() == [True] and len(ds.obs) == 2
