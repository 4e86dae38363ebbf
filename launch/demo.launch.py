"""The demo graph: sim.launch.py (simulator + controller) plus the demo driver, a stand-in
policy that sends overlapping 16-point chunks through a waypoint tour.

    ros2 launch robot_ctrl demo.launch.py [robot:=panda] [command_mode:=effort]
        [timing_mode:=realtime] [use_sim_time:=true] [controller_name:=forward_effort_controller]
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare


def generate_launch_description():
    arguments = [
        DeclareLaunchArgument("robot", default_value="panda", description="Robot name or path to a robot YAML."),
        DeclareLaunchArgument("command_mode", default_value="effort", choices=["effort", "velocity"],
                              description="Actuator interface of the simulator and output of the controller."),
        DeclareLaunchArgument("timing_mode", default_value="realtime", choices=["lockstep", "realtime"],
                              description="lockstep: one control period per command; realtime: wall-clock paced."),
        DeclareLaunchArgument("use_sim_time", default_value="true", description="Follow /clock from the simulator."),
        DeclareLaunchArgument("controller_name", default_value="forward_effort_controller",
                              description="Commands travel on /<controller_name>/commands."),
    ]
    stack = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(PathJoinSubstitution([FindPackageShare("robot_ctrl"), "launch",
                                                            "sim.launch.py"])),
        launch_arguments={
            "robot": LaunchConfiguration("robot"),
            "command_mode": LaunchConfiguration("command_mode"),
            "timing_mode": LaunchConfiguration("timing_mode"),
            "use_sim_time": LaunchConfiguration("use_sim_time"),
            "controller_name": LaunchConfiguration("controller_name"),
        }.items(),
    )
    # Publishes chunks on /controller/joint_trajectory (config/demo_driver.yaml), the
    # controller's ~/joint_trajectory.
    demo_driver = Node(
        package="robot_ctrl",
        executable="demo_driver",
        name="demo_driver",
        output="screen",
        parameters=[
            PathJoinSubstitution([FindPackageShare("robot_ctrl"), "config", "demo_driver.yaml"]),
            {"robot": LaunchConfiguration("robot"), "use_sim_time": LaunchConfiguration("use_sim_time")},
        ],
    )
    return LaunchDescription(arguments + [stack, demo_driver])
