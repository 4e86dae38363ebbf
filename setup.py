"""robot_ctrl: a ROS 2 (Jazzy) control stack that runs learned robot policies safely.

An ament_python package: `colcon build` installs node executables into
lib/robot_ctrl (see setup.cfg) and launch/, config/, sim/ into share/robot_ctrl.
"""
import os
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "robot_ctrl"


def tree(top):
    """data_files entries mirroring directory `top` under share/robot_ctrl/."""
    entries = {}
    for path in glob(os.path.join(top, "**", "*"), recursive=True):
        if os.path.isfile(path):
            dest = os.path.join("share", PACKAGE, os.path.dirname(path))
            entries.setdefault(dest, []).append(path)
    return sorted(entries.items())


# Node executables: one per node, so `ros2 run robot_ctrl <name>` and launch files work.
NODES = [
    "sim_node = robot_ctrl.ros.sim_node:main",
    "controller_node = robot_ctrl.ros.controller_node:main",
    "demo_driver = robot_ctrl.ros.demo_driver:main",
    "safety_node = robot_ctrl.ros.safety_node:main",
    "policy_node = robot_ctrl.ros.policy_node:main",
    "teleop_node = robot_ctrl.ros.teleop_node:main",
    "fake_hardware_node = robot_ctrl.ros.fake_hardware_node:main",
    "lifecycle_supervisor = robot_ctrl.ros.supervisor:main",
]

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["tests", "tests.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + PACKAGE]),
        ("share/" + PACKAGE, ["package.xml"]),
    ]
    + tree("launch")
    + tree("config")
    + tree("sim")
    + tree("checkpoints"),
    python_requires=">=3.10",
    install_requires=[
        "numpy>=1.26",
        "scipy>=1.11",
        "mujoco>=4.0",  # 3.x: the MjSpec calls used by sim/world.py crash or are missing
        "pin>=3.0",
        "example-robot-data>=4.1",
        "cvxpy>=1.5",
        "daqp>=0.5",
        "numba>=0.60",
        "gymnasium>=1.0",
        "torch==2.13.0",
        "safetensors>=0.4",
        "zarr>=3.0",
        "pyyaml>=6",
        "mcap>=1.1",
        "rosbags>=0.10",
        "matplotlib>=3.7",
        "imageio>=2.31",
        "tqdm>=4.66",
        "rich>=13",
        "websockets>=13",  # the browser teleop device (websockets.asyncio.server)
    ],
    extras_require={
        # On a robot these come from the ROS 2 Jazzy install; this extra installs
        # the same packages as PyPI wheels for machines without ROS.
        "ros": [
            "ros-jazzy-rclpy",
            "ros-jazzy-std-msgs",
            "ros-jazzy-sensor-msgs",
            "ros-jazzy-geometry-msgs",
            "ros-jazzy-trajectory-msgs",
            "ros-jazzy-nav-msgs",
            "ros-jazzy-diagnostic-msgs",
            "ros-jazzy-std-srvs",
            "ros-jazzy-lifecycle-msgs",
            "ros-jazzy-visualization-msgs",
            "ros-jazzy-rosgraph-msgs",
            "ros-jazzy-rmw-fastrtps-cpp",
            "ros-jazzy-ament-package",
        ],
        # teleop hardware: SpaceMouse (hidapi) and gamepads (evdev); imported only when opened
        "teleop": ["hidapi>=0.14", "evdev>=1.6; sys_platform == 'linux'"],
        # tests: selenium drives Debian's chromium/chromedriver (make test installs them)
        "dev": ["pytest>=7", "pytest-xdist>=3.5", "colcon-common-extensions", "selenium>=4.10"],
    },
    package_data={"robot_ctrl.teleop": ["static/*.html"]},
    zip_safe=True,
    maintainer="robot_ctrl developers",
    maintainer_email="dev@robot-ctrl.local",
    description="ROS 2 control stack that runs learned robot policies behind a safety filter",
    license="Apache-2.0",
    entry_points={
        "console_scripts": ["robot-ctrl = robot_ctrl.cli:main"] + NODES,
    },
)
