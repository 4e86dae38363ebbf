"""BagRecorder (rclpy -> rosbag2/MCAP), reading bags back (robot_ctrl.io.bag), plots and GIFs."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


# -- DDS on the loopback, unique domain (a conftest may set these first) ---------------------
@pytest.fixture(scope="module")
def ros_env():
    os.environ.setdefault("FASTRTPS_DEFAULT_PROFILES_FILE", str(REPO / "config/dds/loopback.xml"))
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    os.environ.setdefault("ROS_DOMAIN_ID", str(10 + os.getpid() % 80))


@pytest.fixture(scope="module")
def ros(ros_env):
    """A private rclpy context with a recording node and a publishing node, spun by a
    MultiThreadedExecutor in a background thread."""
    import rclpy
    from rclpy.executors import MultiThreadedExecutor

    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    rec_node = rclpy.create_node("bag_recorder_test", context=ctx)
    pub_node = rclpy.create_node("bag_publisher_test", context=ctx)
    executor = MultiThreadedExecutor(num_threads=2, context=ctx)
    executor.add_node(rec_node)
    executor.add_node(pub_node)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    yield rec_node, pub_node
    executor.shutdown()
    thread.join(timeout=5)
    rec_node.destroy_node()
    pub_node.destroy_node()
    rclpy.shutdown(context=ctx)


def wait_for(cond, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


JOINTS = [f"panda_joint{i}" for i in range(1, 8)]
N_JS, N_CMD, N_TRAJ = 20, 5, 2


def joint_values(i: int) -> np.ndarray:
    """Position of message i, in JOINTS order: distinct per joint and per message."""
    return i + 0.1 * np.arange(1, len(JOINTS) + 1)


@pytest.fixture(scope="module")
def recorded_bag(ros, tmp_path_factory):
    """Record real messages from real publishers; return (bag path, recorder, wall window, publishers)."""
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import JointState
    from std_msgs.msg import Float64MultiArray
    from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

    from robot_ctrl.ros.recorder import BagRecorder

    rec_node, pub_node = ros
    bag = tmp_path_factory.mktemp("bags") / "run1"
    topics = {"/joint_states": JointState, "/joint_reference": JointState,
              "/arm_controller/commands": Float64MultiArray,
              "/arm_controller/joint_trajectory": JointTrajectory}
    recorder = BagRecorder(rec_node, bag, topics)

    # One publisher per QoS flavour the recorder must accept.
    reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    best_effort = QoSProfile(depth=10, reliability=ReliabilityPolicy.BEST_EFFORT)
    latched = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
    pubs = {
        "/joint_states": pub_node.create_publisher(JointState, "/joint_states", reliable),
        "/joint_reference": pub_node.create_publisher(JointState, "/joint_reference", reliable),
        "/arm_controller/commands": pub_node.create_publisher(Float64MultiArray, "/arm_controller/commands",
                                                              best_effort),
        "/arm_controller/joint_trajectory": pub_node.create_publisher(
            JointTrajectory, "/arm_controller/joint_trajectory", latched),
    }
    for name, pub in pubs.items():
        wait_for(lambda pub=pub: pub.get_subscription_count() >= 1, what=f"recorder to match {name}")

    rng = np.random.default_rng(0)
    t_start = time.time_ns()
    for i in range(N_JS):
        order = rng.permutation(len(JOINTS))  # joints in a different order in every message
        q = joint_values(i)
        msg = JointState(name=[JOINTS[k] for k in order], position=q[order].tolist(),
                         velocity=(-q[order]).tolist(), effort=(2 * q[order]).tolist())
        msg.header.stamp.sec, msg.header.stamp.nanosec = 100 + i // 10, (i % 10) * 100_000_000
        pubs["/joint_states"].publish(msg)
        ref = JointState(name=[JOINTS[k] for k in order[::-1]], position=(q[order[::-1]] + 0.5).tolist())
        ref.header.stamp = msg.header.stamp
        pubs["/joint_reference"].publish(ref)
        time.sleep(0.002)
    for k in range(N_CMD):
        pubs["/arm_controller/commands"].publish(Float64MultiArray(data=[float(k), k + 0.5, -k]))
        time.sleep(0.002)
    for k in range(N_TRAJ):
        traj = JointTrajectory(joint_names=JOINTS[:3])
        for p in range(3):
            pt = JointTrajectoryPoint(positions=[k + 0.1 * p] * 3)
            pt.time_from_start.sec, pt.time_from_start.nanosec = 0, (p + 1) * 100_000_000
            traj.points.append(pt)
        pubs["/arm_controller/joint_trajectory"].publish(traj)
    expected = {"/joint_states": N_JS, "/joint_reference": N_JS,
                "/arm_controller/commands": N_CMD, "/arm_controller/joint_trajectory": N_TRAJ}
    wait_for(lambda: recorder.counts == expected, what=f"counts {expected}, have {recorder.counts}")
    t_end = time.time_ns()
    hashes = {name: pub_node.get_publishers_info_by_topic(name)[0].topic_type_hash for name in pubs}
    recorder.close()
    recorder.close()  # idempotent
    return bag, recorder, (t_start, t_end), hashes


def test_recorder_counts_and_bag_files(recorded_bag):
    bag, recorder, _, _ = recorded_bag
    assert recorder.closed
    assert recorder.counts == {"/joint_states": N_JS, "/joint_reference": N_JS,
                               "/arm_controller/commands": N_CMD, "/arm_controller/joint_trajectory": N_TRAJ}
    assert recorder.errors == 0
    assert (bag / "metadata.yaml").is_file()
    assert len(list(bag.glob("*.mcap"))) == 1


def test_mcap_schemas_and_metadata(recorded_bag):
    import yaml
    from mcap.reader import make_reader

    bag, _, _, hashes = recorded_bag
    (mcap_file,) = bag.glob("*.mcap")
    with open(mcap_file, "rb") as f:
        reader = make_reader(f, validate_crcs=True)
        assert reader.get_header().profile == "ros2"
        summary = reader.get_summary()
        schemas = {s.name: s for s in summary.schemas.values()}
        channels = {c.topic: c for c in summary.channels.values()}
        n_messages = sum(1 for _ in reader.iter_messages())
    assert set(schemas) == {"sensor_msgs/msg/JointState", "std_msgs/msg/Float64MultiArray",
                            "trajectory_msgs/msg/JointTrajectory"}
    assert all(s.encoding == "ros2msg" for s in schemas.values())
    assert b"string[] name" in schemas["sensor_msgs/msg/JointState"].data
    assert {c.message_encoding for c in channels.values()} == {"cdr"}
    assert schemas["sensor_msgs/msg/JointState"].id == channels["/joint_states"].schema_id
    assert "offered_qos_profiles" in channels["/joint_states"].metadata
    assert n_messages == 2 * N_JS + N_CMD + N_TRAJ

    meta = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert meta["version"] == 9 and meta["storage_identifier"] == "mcap"
    assert meta["relative_file_paths"] == [mcap_file.name]
    assert meta["message_count"] == n_messages
    by_topic = {t["topic_metadata"]["name"]: t for t in meta["topics_with_message_count"]}
    assert by_topic["/joint_states"]["message_count"] == N_JS
    assert by_topic["/joint_states"]["topic_metadata"]["type"] == "sensor_msgs/msg/JointState"
    # The type hash rosbags writes is the one the live publishers advertise (ros2 bag play checks).
    for topic, live_hash in hashes.items():
        assert by_topic[topic]["topic_metadata"]["type_description_hash"] == str(live_hash)


def test_read_topics_values_and_times(recorded_bag):
    from robot_ctrl.io.bag import read_topics

    bag, _, (t_start, t_end), _ = recorded_bag
    msgs = read_topics(bag)
    assert {t: len(v) for t, v in msgs.items()} == {
        "/joint_states": N_JS, "/joint_reference": N_JS,
        "/arm_controller/commands": N_CMD, "/arm_controller/joint_trajectory": N_TRAJ}
    for topic, items in msgs.items():
        stamps = [t for t, _ in items]
        assert stamps == sorted(stamps)
        assert t_start <= stamps[0] and stamps[-1] <= t_end, topic  # wall-clock receive time
    cmds = [m.data.tolist() for _, m in msgs["/arm_controller/commands"]]
    assert cmds == [[float(k), k + 0.5, -k] for k in range(N_CMD)]
    traj = msgs["/arm_controller/joint_trajectory"][1][1]
    assert traj.joint_names == JOINTS[:3]
    assert [p.time_from_start.nanosec for p in traj.points] == [100_000_000, 200_000_000, 300_000_000]
    np.testing.assert_allclose(traj.points[2].positions, [1.2] * 3)

    only = read_topics(bag, ["/arm_controller/commands"])
    assert list(only) == ["/arm_controller/commands"] and len(only["/arm_controller/commands"]) == N_CMD


def test_read_joint_states_maps_columns_by_name(recorded_bag):
    from robot_ctrl.io.bag import read_joint_reference, read_joint_states

    bag, _, (t_start, t_end), _ = recorded_bag
    js = read_joint_states(bag, joint_names=JOINTS)
    expected_q = np.array([joint_values(i) for i in range(N_JS)])
    assert js["joint_names"] == JOINTS
    assert js["q"].shape == js["v"].shape == js["effort"].shape == (N_JS, len(JOINTS))
    np.testing.assert_allclose(js["q"], expected_q)
    np.testing.assert_allclose(js["v"], -expected_q)
    np.testing.assert_allclose(js["effort"], 2 * expected_q)
    np.testing.assert_allclose(js["t"], 100 + 0.1 * np.arange(N_JS), atol=1e-9)  # header stamps
    assert np.all((js["t_log"] >= t_start * 1e-9) & (js["t_log"] <= t_end * 1e-9))

    # A subset in another order: still by name.
    sub = read_joint_states(bag, joint_names=["panda_joint5", "panda_joint2"])
    np.testing.assert_allclose(sub["q"], expected_q[:, [4, 1]])

    # Default column order = the first message's (shuffled) order, still mapped by name.
    default = read_joint_states(bag)
    assert sorted(default["joint_names"]) == JOINTS and default["joint_names"] != JOINTS
    for k, name in enumerate(default["joint_names"]):
        np.testing.assert_allclose(default["q"][:, k], expected_q[:, JOINTS.index(name)])

    ref = read_joint_reference(bag, "/joint_reference", joint_names=JOINTS)
    np.testing.assert_allclose(ref["q"], expected_q + 0.5)
    assert np.all(np.isnan(ref["v"])) and np.all(np.isnan(ref["effort"]))  # not published
    np.testing.assert_allclose(ref["t"], js["t"])


def test_bag_errors(recorded_bag, ros, tmp_path):
    from sensor_msgs.msg import JointState

    from robot_ctrl.io.bag import BagError, read_joint_states, read_topics
    from robot_ctrl.ros.recorder import BagRecorder

    bag, *_ = recorded_bag
    with pytest.raises(ValueError, match="already exists"):
        BagRecorder(ros[0], bag, {"/joint_states": JointState})
    with pytest.raises(FileNotFoundError, match="no rosbag2 bag"):
        read_topics(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="metadata.yaml"):
        read_topics(tmp_path)
    with pytest.raises(BagError, match=r"/nope not in bag.*/joint_states"):
        read_topics(bag, ["/nope"])
    with pytest.raises(BagError, match="not sensor_msgs/msg/JointState"):
        read_joint_states(bag, topic="/arm_controller/commands")
    with pytest.raises(BagError, match="panda_joint9"):
        read_joint_states(bag, joint_names=["panda_joint1", "panda_joint9"])


def test_recorder_context_manager_without_messages(ros, tmp_path):
    from sensor_msgs.msg import JointState

    from robot_ctrl.io.bag import read_topics
    from robot_ctrl.ros.recorder import BagRecorder

    with BagRecorder(ros[0], tmp_path / "empty", {"/quiet": JointState}) as rec:
        assert rec.counts == {"/quiet": 0}
    assert rec.closed
    assert read_topics(tmp_path / "empty") == {"/quiet": []}
    with pytest.raises(ValueError, match="not an rclpy message class"):
        BagRecorder(ros[0], tmp_path / "bad", {"/x": dict})
    assert not (tmp_path / "bad").exists()


def test_recorder_close_while_publishing(ros, tmp_path):
    """close() races with callbacks on a MultiThreadedExecutor: the bag stays consistent."""
    from sensor_msgs.msg import JointState
    from std_msgs.msg import Float64MultiArray

    from robot_ctrl.io.bag import read_topics
    from robot_ctrl.ros.recorder import BagRecorder

    rec_node, pub_node = ros
    rec = BagRecorder(rec_node, tmp_path / "race", {"/race/js": JointState, "/race/cmd": Float64MultiArray})
    pubs = [pub_node.create_publisher(JointState, "/race/js", 10),
            pub_node.create_publisher(Float64MultiArray, "/race/cmd", 10)]
    for pub in pubs:
        wait_for(lambda pub=pub: pub.get_subscription_count() >= 1, what="recorder to match")
    stop = threading.Event()

    def publish():
        i = 0
        while not stop.is_set():
            pubs[0].publish(JointState(name=["a"], position=[float(i)]))
            pubs[1].publish(Float64MultiArray(data=[float(i)]))
            i += 1
            time.sleep(0.002)  # 500 Hz: leaves the GIL to the executor threads that record

    thread = threading.Thread(target=publish)
    thread.start()
    try:
        wait_for(lambda: min(rec.counts.values()) >= 50, timeout=30.0, what="messages to arrive")
        rec.close()
    finally:
        stop.set()
        thread.join()
        for pub in pubs:
            pub_node.destroy_publisher(pub)
    counts = rec.counts
    msgs = read_topics(tmp_path / "race")
    assert {t: len(v) for t, v in msgs.items()} == counts
    values = [m.position[0] for _, m in msgs["/race/js"]]
    assert values == sorted(values)  # one publisher, in order


# -- plots and GIFs ----------------------------------------------------------------------------
def test_plot_tracking_writes_png(tmp_path):
    from robot_ctrl.viz import plot_tracking

    t = np.linspace(0, 2, 400)
    q_ref = np.stack([np.sin(t + k) for k in range(len(JOINTS))], axis=1)
    q = q_ref + 0.01 * np.cos(5 * t)[:, None]
    out = plot_tracking(t, q, q_ref, JOINTS, tmp_path / "plots" / "tracking.png", title="test run")
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 10_000
    with pytest.raises(ValueError, match="shape"):
        plot_tracking(t, q[:, :3], q_ref, JOINTS, tmp_path / "bad.png")


@pytest.fixture(scope="module")
def panda():
    from robot_ctrl.model import RobotModel

    return RobotModel.load("panda")


def test_render_gif_frames(panda, tmp_path):
    import imageio.v3 as iio

    from robot_ctrl.viz import RenderUnavailable, render_gif

    qs = np.repeat(panda.home[None], 7, axis=0)
    qs[:, 0] += np.linspace(0.0, 1.2, 7)  # swing the base joint
    qs[:, 3] += np.linspace(0.0, 0.6, 7)
    try:
        out = render_gif(panda, qs, tmp_path / "anim.gif", fps=10, size=(160, 120), every=2)
    except RenderUnavailable as exc:
        pytest.skip(str(exc))
    assert out.read_bytes()[:6] == b"GIF89a"
    frames = iio.imread(out, index=None)
    assert frames.shape == (4, 120, 160, 3)  # qs[::2]
    for a, b in zip(frames[:-1], frames[1:]):
        changed = np.any(a != b, axis=-1).mean()
        assert changed > 0.005, changed  # the robot moved: part of the image changed
    assert iio.immeta(out)["loop"] == 0
    assert [iio.immeta(out, index=k)["duration"] for k in range(4)] == [100] * 4


def test_render_gif_merges_still_frames(panda, tmp_path):
    """Pillow folds identical consecutive frames into one longer frame: timing is kept."""
    import imageio.v3 as iio

    from robot_ctrl.viz import RenderUnavailable, render_gif

    q1 = panda.home.copy()
    q1[0] += 1.0
    try:
        out = render_gif(panda, np.array([panda.home, panda.home, q1]), tmp_path / "still.gif", fps=10,
                         size=(160, 120))
    except RenderUnavailable as exc:
        pytest.skip(str(exc))
    frames = iio.imread(out, index=None)
    assert frames.shape[0] == 2
    assert [iio.immeta(out, index=k)["duration"] for k in range(2)] == [200, 100]


def test_render_gif_after_mujoco_imported_without_mujoco_gl(tmp_path):
    """mujoco imported (robot_ctrl.sim) before viz, with MUJOCO_GL unset: viz still renders headless."""
    code = (
        "import sys, numpy as np\n"
        "from robot_ctrl.sim.simulator import Simulator\n"
        "from robot_ctrl.model import RobotModel\n"
        "from robot_ctrl.viz import render_gif, RenderUnavailable\n"
        "r = RobotModel.load('panda')\n"
        "try:\n"
        "    render_gif(r, np.array([r.home, r.home]), sys.argv[1], size=(64, 48))\n"
        "except RenderUnavailable as e:\n"
        "    print('UNAVAILABLE', e); sys.exit(3)\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("MUJOCO_GL", "PYOPENGL_PLATFORM")}
    env.pop("DISPLAY", None)
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "a.gif")], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    if proc.returncode == 3:
        pytest.skip(proc.stdout.strip())
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "a.gif").stat().st_size > 0
