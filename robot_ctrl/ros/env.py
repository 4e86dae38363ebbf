"""DDS environment: keep traffic on the loopback for tests, demos and benchmarks.

Import-safe without rclpy. Call `use_loopback()` before `rclpy.init()`.
"""
from __future__ import annotations

import os

from robot_ctrl.paths import config_path


def loopback_profile() -> str:
    return str(config_path("dds", "loopback.xml"))


def use_loopback(domain_id: int | None = None, force: bool = False) -> dict[str, str]:
    """Point Fast DDS at the project's loopback profile and pick a ROS domain.

    Existing settings are kept unless `force`. With no ROS_DOMAIN_ID set and no `domain_id`,
    one is derived from the process id so concurrent runs do not see each other.
    Returns the variables that were set.
    """
    wanted = {
        "FASTRTPS_DEFAULT_PROFILES_FILE": loopback_profile(),
        "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
        "RMW_IMPLEMENTATION": "rmw_fastrtps_cpp",
        "ROS_DOMAIN_ID": str(domain_id if domain_id is not None else 10 + os.getpid() % 90),
    }
    if domain_id is not None:
        os.environ["ROS_DOMAIN_ID"] = str(domain_id)
    changed = {}
    for key, value in wanted.items():
        if force or not os.environ.get(key):
            os.environ[key] = value
            changed[key] = value
    return changed
