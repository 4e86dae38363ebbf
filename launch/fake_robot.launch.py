"""robot.launch.py against the fake hardware: a simulated ros2_control driver that speaks the
same topics as a real robot (robot_ctrl/ros/fake_hardware_node.py), with actuator lag and
configurable faults. No MuJoCo and no /clock: everything runs on the wall clock, as on a robot.

    ros2 launch robot_ctrl fake_robot.launch.py [command_mode:=effort|velocity]
        [controller_type:=forward|trajectory] [controller_name:=forward_effort_controller]
        [hardware_interface:=effort] [latency_s:=0.0] [noise_std_position:=0.0] [drop_prob:=0.0]

`hardware_interface` is the fake driver's command interface: the stack's command_mode for a
forward controller, `position` for a joint trajectory controller (the stack then streams
q + v·lead_s points from velocity commands). Other fault knobs: config/fake_hardware.yaml.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare


def generate_launch_description():
    arguments = [
        DeclareLaunchArgument("robot", default_value="panda", description="Robot name or robot YAML path."),
        DeclareLaunchArgument("command_mode", default_value="effort", choices=["effort", "velocity"],
                              description="What the stack commands."),
        DeclareLaunchArgument("controller_type", default_value="forward", choices=["forward", "trajectory"],
                              description="The fake driver's controller."),
        DeclareLaunchArgument("controller_name", default_value="forward_effort_controller",
                              description="The controller's name (its topics' namespace)."),
        DeclareLaunchArgument("hardware_interface", default_value="effort",
                              choices=["position", "velocity", "effort"],
                              description="The fake driver's command interface (position for trajectory)."),
        DeclareLaunchArgument("latency_s", default_value="0.0", description="Command → actuator delay (s)."),
        DeclareLaunchArgument("noise_std_position", default_value="0.0", description="Encoder noise (rad)."),
        DeclareLaunchArgument("drop_prob", default_value="0.0", description="Probability a state is dropped."),
    ]
    stack = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(PathJoinSubstitution([FindPackageShare("robot_ctrl"), "launch",
                                                            "robot.launch.py"])),
        launch_arguments={
            "robot": LaunchConfiguration("robot"),
            "command_mode": LaunchConfiguration("command_mode"),
            "controller_type": LaunchConfiguration("controller_type"),
            "controller_name": LaunchConfiguration("controller_name"),
        }.items(),
    )
    hardware = Node(
        package="robot_ctrl",
        executable="fake_hardware_node",
        name="fake_hardware",
        output="screen",
        parameters=[
            PathJoinSubstitution([FindPackageShare("robot_ctrl"), "config", "fake_hardware.yaml"]),
            {
                "robot": LaunchConfiguration("robot"),
                "controller_type": LaunchConfiguration("controller_type"),
                "controller_name": LaunchConfiguration("controller_name"),
                "interface": LaunchConfiguration("hardware_interface"),
                "latency_s": LaunchConfiguration("latency_s"),
                "noise_std_position": LaunchConfiguration("noise_std_position"),
                "drop_prob": LaunchConfiguration("drop_prob"),
                "use_sim_time": False,
            },
        ],
    )
    return LaunchDescription(arguments + [stack, hardware])
