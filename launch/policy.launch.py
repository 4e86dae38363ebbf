"""A trained policy on a task through the whole graph: sim.launch.py in the task's world (the
simulator publishes object poses, the goal and success; the safety filter uses the task config)
plus the policy node with a checkpoint.

    ros2 launch robot_ctrl policy.launch.py [task:=pick_place]
        [checkpoint:=<share>/checkpoints/carp_pick_place.safetensors] [timing_mode:=lockstep]
        [lockstep_gate:=true] [use_sim_time:=true] [safety_config:=panda_tasks]

Reset to the next randomized episode with `ros2 service call /sim/reset std_srvs/srv/Trigger`.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare


def generate_launch_description():
    arguments = [
        DeclareLaunchArgument("task", default_value="pick_place", choices=["reach", "push", "pick_place", "peg_in_hole"],
                              description="Task world and observation."),
        DeclareLaunchArgument("checkpoint",
                              default_value=PathJoinSubstitution([FindPackageShare("robot_ctrl"), "checkpoints",
                                                                  "carp_pick_place.safetensors"]),
                              description="Policy checkpoint (.safetensors from robot-ctrl train)."),
        DeclareLaunchArgument("timing_mode", default_value="lockstep", choices=["lockstep", "realtime"],
                              description="lockstep: one control period per command; realtime: wall-clock paced."),
        DeclareLaunchArgument("lockstep_gate", default_value="true",
                              description="Lockstep: the simulator waits for the policy's chunks."),
        DeclareLaunchArgument("use_sim_time", default_value="true", description="Follow /clock from the simulator."),
        DeclareLaunchArgument("safety_config", default_value="panda_tasks",
                              description="Safety config for the task (the task objects are not obstacles)."),
    ]
    stack = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(PathJoinSubstitution([FindPackageShare("robot_ctrl"), "launch",
                                                            "sim.launch.py"])),
        launch_arguments={
            "task": LaunchConfiguration("task"),
            "timing_mode": LaunchConfiguration("timing_mode"),
            "lockstep_gate": LaunchConfiguration("lockstep_gate"),
            "use_sim_time": LaunchConfiguration("use_sim_time"),
            "safety_config": LaunchConfiguration("safety_config"),
        }.items(),
    )
    # Publishes Cartesian chunks on /controller/cartesian_trajectory, the controller's
    # ~/cartesian_trajectory, and /policy/ready_until for the simulator's lockstep gate.
    policy = Node(
        package="robot_ctrl",
        executable="policy_node",
        name="policy",
        output="screen",
        parameters=[
            PathJoinSubstitution([FindPackageShare("robot_ctrl"), "config", "policy.yaml"]),
            {"checkpoint": LaunchConfiguration("checkpoint"), "task": LaunchConfiguration("task"),
             "use_sim_time": LaunchConfiguration("use_sim_time")},
        ],
    )
    return LaunchDescription(arguments + [stack, policy])
