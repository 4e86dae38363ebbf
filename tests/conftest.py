"""Test-wide setup: DDS stays on the loopback, with a ROS domain of its own per test run."""
import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

os.environ["FASTRTPS_DEFAULT_PROFILES_FILE"] = str(REPO / "config" / "dds" / "loopback.xml")
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ["RMW_IMPLEMENTATION"] = "rmw_fastrtps_cpp"
os.environ["ROS_DOMAIN_ID"] = str(10 + os.getpid() % 90)
os.environ.setdefault("MUJOCO_GL", "egl")


import pytest  # noqa: E402

_SHM = Path("/dev/shm")


def _dds_segments() -> set:
    return set(_SHM.glob("fastrtps_*")) | set(_SHM.glob("sem.fastrtps_*")) if _SHM.is_dir() else set()


@pytest.fixture(scope="session", autouse=True)
def _dds_shared_memory_hygiene():
    """Fast DDS leaves its shared-memory segments behind when a process is killed (the fault
    tests SIGKILL nodes on purpose). Remove the segments this session created, at its end,
    when every node of the session has stopped."""
    before = _dds_segments()
    yield
    for seg in _dds_segments() - before:
        try:
            seg.unlink()
        except OSError:
            pass


@pytest.fixture(scope="session")
def panda():
    from robot_ctrl.model import RobotModel

    return RobotModel.load("panda")


@pytest.fixture(scope="session")
def ur5():
    from robot_ctrl.model import RobotModel

    return RobotModel.load("ur5")


@pytest.fixture
def ros():
    """rclpy initialised for one test, with a probe node the test drives and observes through."""
    import rclpy

    rclpy.init()
    node = rclpy.create_node("probe")
    yield node
    node.destroy_node()
    rclpy.shutdown()
