"""Teleoperation through the whole graph: sim.launch.py in a task world in real time, the policy
node taking operator prompts (prompt_mode teleop: the operator alone; shared / guidance / goal
with a checkpoint) and the teleop node with a device.

    ros2 launch robot_ctrl teleop.launch.py [device:=web] [device_args:='{"port": 8765}']
        [task:=reach] [prompt_mode:=teleop] [checkpoint:=<a policy for shared autonomy>]

With the default web device, open http://127.0.0.1:8765 (phone or desktop browser on this
machine; bind elsewhere with device_args '{"host": "0.0.0.0", "port": 8765}'). The keyboard
device needs a terminal: run `robot-ctrl teleop --device keyboard` instead, or
`ros2 run robot_ctrl teleop_node --ros-args -p device:=keyboard` in its own terminal.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare


def generate_launch_description():
    share = FindPackageShare("robot_ctrl")
    arguments = [
        DeclareLaunchArgument("device", default_value="web",
                              choices=["keyboard", "gamepad", "spacemouse", "web", "replay"],
                              description="Teleop device."),
        DeclareLaunchArgument("device_args", default_value='{"port": 8765}',
                              description="Device options as a JSON object."),
        DeclareLaunchArgument("task", default_value="reach", choices=["reach", "push", "pick_place", "peg_in_hole"],
                              description="Task world."),
        DeclareLaunchArgument("prompt_mode", default_value="teleop", choices=["teleop", "shared", "guidance", "goal"],
                              description="How prompts enter the policy node (teleop: no policy)."),
        DeclareLaunchArgument("checkpoint", default_value="",
                              description="Policy checkpoint for shared / guidance / goal."),
        DeclareLaunchArgument("use_sim_time", default_value="true", description="Follow /clock from the simulator."),
    ]
    stack = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(PathJoinSubstitution([share, "launch", "sim.launch.py"])),
        launch_arguments={"task": LaunchConfiguration("task"), "timing_mode": "realtime",
                          "use_sim_time": LaunchConfiguration("use_sim_time"),
                          "safety_config": "panda_tasks"}.items(),
    )
    policy = Node(
        package="robot_ctrl", executable="policy_node", name="policy", output="screen",
        parameters=[PathJoinSubstitution([share, "config", "policy.yaml"]),
                    {"prompt_mode": LaunchConfiguration("prompt_mode"), "checkpoint": LaunchConfiguration("checkpoint"),
                     "use_sim_time": LaunchConfiguration("use_sim_time")}],
    )
    teleop = Node(
        package="robot_ctrl", executable="teleop_node", name="teleop", output="screen",
        parameters=[PathJoinSubstitution([share, "config", "teleop.yaml"]),
                    {"device": LaunchConfiguration("device"), "device_args": LaunchConfiguration("device_args"),
                     "use_sim_time": LaunchConfiguration("use_sim_time")}],
    )
    return LaunchDescription(arguments + [stack, policy, teleop])
