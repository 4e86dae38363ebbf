"""Test-wide setup: DDS stays on the loopback, with a ROS domain of its own per test run."""
import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

os.environ["FASTRTPS_DEFAULT_PROFILES_FILE"] = str(REPO / "config" / "dds" / "loopback.xml")
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ["RMW_IMPLEMENTATION"] = "rmw_fastrtps_cpp"


def _domain() -> int:
    """This test process's ROS domain (10..89). Alone: from its pid. As one of W pytest-xdist
    workers (make test runs two): the run's block of W domains (from the controller's pid, the
    workers' parent) and the worker's index in it, so the workers of one run never share one."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")  # gw0, gw1, ...
    if not worker:
        return 10 + os.getpid() % 80
    count = max(int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")), 1)
    blocks = max(80 // count, 1)
    return 10 + (os.getppid() % blocks) * count + int(worker[2:]) % count


os.environ["ROS_DOMAIN_ID"] = str(_domain())
os.environ.setdefault("MUJOCO_GL", "egl")


import pytest  # noqa: E402

_SHM = Path("/dev/shm")


def _dds_segments() -> set:
    return set(_SHM.glob("fastrtps_*")) | set(_SHM.glob("sem.fastrtps_*")) if _SHM.is_dir() else set()


# Test files that start no node process and whose verdicts depend on no timing: make test runs
# them on two pytest-xdist workers (-m parallel -n 2), then everything else alone (-m "not
# parallel"), so that the graphs' timing (watchdogs, kill -> brake, lockstep episodes) is never
# measured beside a second test. (The fuzz spins its nodes in its own process and counts every
# message, with timeouts no load reaches.) A new file runs alone unless it is listed here.
PARALLEL_FILES = {
    "test_carp.py", "test_control.py", "test_diffusion.py", "test_frames.py", "test_fuzz.py", "test_learning.py",
    "test_mcap_convert.py", "test_metaworld.py", "test_model.py", "test_safety_core.py",
    "test_safety_geometry.py", "test_safety_robust.py", "test_sim.py", "test_stamps.py", "test_tasks.py",
    "test_teleop_devices.py", "test_teleop_shared.py", "test_teleop_study.py",
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.path.name in PARALLEL_FILES:
            item.add_marker(pytest.mark.parallel)


def pytest_configure(config):
    config.addinivalue_line("markers", "parallel: no node process, no timing (PARALLEL_FILES): "
                                       "make test runs these on two workers")
    if not hasattr(config, "workerinput"):  # the controller (or a plain run), not an xdist worker
        config._robot_ctrl_dds_before = _dds_segments()


def pytest_unconfigure(config):
    """Fast DDS leaves its shared-memory segments behind when a process is killed (the fault
    tests SIGKILL nodes on purpose). Remove the segments this run created, at its very end, when
    every node of it has stopped: in the controller only, never in an xdist worker (the other
    worker's nodes may still use theirs)."""
    before = getattr(config, "_robot_ctrl_dds_before", None)
    if before is None:
        return
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
