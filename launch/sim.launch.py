"""MuJoCo simulator + controller + safety filter, wired like a ros2_control robot.

    ros2 launch robot_ctrl sim.launch.py [robot:=panda] [command_mode:=effort|velocity]
        [timing_mode:=lockstep|realtime] [use_sim_time:=true] [controller_name:=forward_effort_controller]
        [safety_config:=<robot>] [task:=<reach|push|pick_place|peg_in_hole>] [lockstep_gate:=false]

The controller's output (/<controller_name>/commands) is remapped to /safety_filter/nominal;
the safety filter publishes the filtered command on /<controller_name>/commands, where the
simulator listens. The filter handles effort and velocity commands.

The sim node is the clock source (/clock), so it always runs on wall time; the other nodes
follow use_sim_time. Parameter values come from config/sim.yaml and config/controller.yaml;
the launch arguments override the entries named in the dicts below.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare


def generate_launch_description():
    robot = LaunchConfiguration("robot")
    command_mode = LaunchConfiguration("command_mode")
    timing_mode = LaunchConfiguration("timing_mode")
    use_sim_time = LaunchConfiguration("use_sim_time")
    controller_name = LaunchConfiguration("controller_name")
    safety_config = LaunchConfiguration("safety_config")
    task = LaunchConfiguration("task")
    lockstep_gate = LaunchConfiguration("lockstep_gate")

    arguments = [
        DeclareLaunchArgument("robot", default_value="panda",
                              description="Robot name (config/robots/<robot>.yaml) or path to a robot YAML."),
        DeclareLaunchArgument("command_mode", default_value="effort", choices=["effort", "velocity"],
                              description="Actuator interface of the simulator and output of the controller."),
        DeclareLaunchArgument("timing_mode", default_value="lockstep", choices=["lockstep", "realtime"],
                              description="lockstep: one control period per command; realtime: wall-clock paced."),
        DeclareLaunchArgument("use_sim_time", default_value="true",
                              description="Controller (and later nodes) follow /clock from the simulator."),
        DeclareLaunchArgument("controller_name", default_value="forward_effort_controller",
                              description="Commands travel on /<controller_name>/commands."),
        DeclareLaunchArgument("safety_config", default_value="",
                              description="Safety config (config/safety/<name>.yaml or a path); empty: the robot's."),
        DeclareLaunchArgument("task", default_value="",
                              description="Task world for the simulator (objects, goal, success); empty: the scene."),
        DeclareLaunchArgument("lockstep_gate", default_value="false",
                              description="Lockstep: the simulator waits for the policy's /policy/ready_until."),
    ]

    sim = Node(
        package="robot_ctrl",
        executable="sim_node",
        name="sim",
        output="screen",
        parameters=[
            PathJoinSubstitution([FindPackageShare("robot_ctrl"), "config", "sim.yaml"]),
            {
                "robot": robot,
                "command_mode": command_mode,
                "timing_mode": timing_mode,
                "controller_name": controller_name,
                "task": task,
                "lockstep_gate": lockstep_gate,
                "use_sim_time": False,  # the simulator publishes /clock; it never waits for it
            },
        ],
    )

    controller = Node(
        package="robot_ctrl",
        executable="controller_node",
        name="controller",
        output="screen",
        parameters=[
            PathJoinSubstitution([FindPackageShare("robot_ctrl"), "config", "controller.yaml"]),
            {
                "robot": robot,
                "command_mode": command_mode,
                "controller_name": controller_name,
                "use_sim_time": use_sim_time,
            },
        ],
        # the controller's command goes to the safety filter, not to the robot
        remappings=[(["/", controller_name, "/commands"], "/safety_filter/nominal")],
    )

    safety_filter = Node(
        package="robot_ctrl",
        executable="safety_node",
        name="safety_filter",
        output="screen",
        parameters=[
            PathJoinSubstitution([FindPackageShare("robot_ctrl"), "config", "safety_filter.yaml"]),
            {
                "robot": robot,
                "config": safety_config,
                "command_mode": command_mode,
                "controller_name": controller_name,
                "use_sim_time": use_sim_time,
            },
        ],
    )

    # The policy node joins in policy.launch.py; teleop nodes in a later issue.

    return LaunchDescription(arguments + [sim, controller, safety_filter])
