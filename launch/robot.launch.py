"""The stack against a real ros2_control robot: controller + safety filter (+ a policy).

    ros2 launch robot_ctrl robot.launch.py [robot:=panda] [command_mode:=effort|velocity]
        [controller_type:=forward|trajectory] [controller_name:=forward_effort_controller]
        [controller_joints:="panda_joint1,...,panda_joint7"] [joint_states:=/joint_states]
        [safety_config:=<robot>] [policy:=false checkpoint:=<path> task:=<task>]

The robot runs ros2_control with joint_state_broadcaster and one of:
  * a forward command controller (controller_type:=forward, command_mode effort or velocity):
    the safety filter publishes std_msgs/Float64MultiArray on /<controller_name>/commands in the
    order of `controller_joints` (the controller's `joints` list; empty: the robot YAML's order);
  * a joint trajectory controller (controller_type:=trajectory, command_mode:=velocity): a
    one-point JointTrajectory on /<controller_name>/joint_trajectory every control period.
State is read by joint name from `joint_states` (the broadcaster's topic): joints the stack does
not control are ignored; a missing one is reported by name. The controller's output goes to the
safety filter (/safety_filter/nominal), never straight to the robot. The managed nodes start
unconfigured (autostart false); the lifecycle supervisor configures them, activates the safety
filter first (each activation needs a fresh joint state), and deactivates it last. Wall clock
(use_sim_time:=false): the robot's stamps are wall time. The fake hardware
(fake_robot.launch.py) runs this same file against a simulated driver.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare


def generate_launch_description():
    robot = LaunchConfiguration("robot")
    command_mode = LaunchConfiguration("command_mode")
    controller_name = LaunchConfiguration("controller_name")
    joint_states = LaunchConfiguration("joint_states")
    use_sim_time = LaunchConfiguration("use_sim_time")

    arguments = [
        DeclareLaunchArgument("robot", default_value="panda",
                              description="Robot name (config/robots/<robot>.yaml) or path to a robot YAML."),
        DeclareLaunchArgument("command_mode", default_value="effort", choices=["effort", "velocity"],
                              description="What the stack commands: torques or joint velocities."),
        DeclareLaunchArgument("controller_type", default_value="forward", choices=["forward", "trajectory"],
                              description="The robot's controller: forward command or joint trajectory "
                                          "(trajectory needs command_mode:=velocity)."),
        DeclareLaunchArgument("controller_name", default_value="forward_effort_controller",
                              description="The ros2_control controller's name (its topics' namespace)."),
        DeclareLaunchArgument("controller_joints", default_value="",
                              description="The controller's joints in its command order, comma-separated; "
                                          "empty: the robot YAML's."),
        DeclareLaunchArgument("joint_states", default_value="/joint_states",
                              description="joint_state_broadcaster's topic."),
        DeclareLaunchArgument("safety_config", default_value="",
                              description="Safety config (config/safety/<name>.yaml or a path); empty: the robot's."),
        DeclareLaunchArgument("use_sim_time", default_value="false",
                              description="A real robot stamps its state in wall time."),
        DeclareLaunchArgument("policy", default_value="false", description="Also start the policy node."),
        DeclareLaunchArgument("checkpoint", default_value="",
                              description="Policy checkpoint (with policy:=true); empty: the committed CARP one."),
        DeclareLaunchArgument("task", default_value="", description="Policy task; empty: the checkpoint's."),
    ]

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
                "autostart": False,  # the supervisor orders the lifecycle
            },
        ],
        remappings=[(["/", controller_name, "/commands"], "/safety_filter/nominal"),
                    ("/joint_states", joint_states)],
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
                "config": LaunchConfiguration("safety_config"),
                "command_mode": command_mode,
                "controller_type": LaunchConfiguration("controller_type"),
                "controller_name": controller_name,
                # a string (comma-separated names) whatever it looks like: the node splits it
                "controller_joints": ParameterValue(LaunchConfiguration("controller_joints"), value_type=str),
                "use_sim_time": use_sim_time,
                "autostart": False,
            },
        ],
        remappings=[("/joint_states", joint_states)],
    )

    policy = Node(
        package="robot_ctrl",
        executable="policy_node",
        name="policy",
        output="screen",
        condition=IfCondition(LaunchConfiguration("policy")),
        parameters=[
            PathJoinSubstitution([FindPackageShare("robot_ctrl"), "config", "policy.yaml"]),
            {"robot": robot, "checkpoint": LaunchConfiguration("checkpoint"), "task": LaunchConfiguration("task"),
             "use_sim_time": use_sim_time, "autostart": False},
        ],
        remappings=[("/joint_states", joint_states)],
    )

    # configure all, activate the safety filter first, then the controller, then the policy;
    # deactivate in reverse; bring a restarted node back to a hold (robot_ctrl/ros/supervisor.py)
    supervisor = Node(
        package="robot_ctrl",
        executable="lifecycle_supervisor",
        name="lifecycle_supervisor",
        output="screen",
        parameters=[
            PathJoinSubstitution([FindPackageShare("robot_ctrl"), "config", "supervisor.yaml"]),
            {"use_sim_time": use_sim_time},
        ],
    )

    return LaunchDescription(arguments + [controller, safety_filter, policy, supervisor])
