"""Demo driver: a stand-in policy that sends overlapping action chunks through waypoints.

Every chunk_period_s of sim time (taken from /joint_states stamps) it publishes a
trajectory_msgs/JointTrajectory with chunk_points points over the next chunk_horizon_s of a
minimum-jerk path through the waypoints. After the path ends it sets `done`.
"""
from __future__ import annotations

import numpy as np
from builtin_interfaces.msg import Duration
from rclpy.node import Node
from sensor_msgs.msg import JointState
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from robot_ctrl.control.waypoints import MinJerkPath, default_waypoints
from robot_ctrl.model import RobotModel
from robot_ctrl.ros.common import STATE_QOS, TRAJECTORY_QOS, Param, ParameterError, declare_parameters, stamp_to_sec

PARAMS = {
    "robot": Param("panda", "Robot name or path to a robot YAML."),
    "trajectory_topic": Param("/controller/joint_trajectory", "Where chunks are published."),
    "waypoints": Param([], "Joint waypoints, flattened row-major (k x n); empty: a default tour around home."),
    "segment_s": Param(2.0, "Time between waypoints (s).", positive=True),
    "chunk_period_s": Param(0.4, "A new chunk every this many seconds of sim time.", positive=True),
    "chunk_horizon_s": Param(0.8, "Each chunk covers this far ahead (s).", positive=True),
    "chunk_points": Param(16, "Points per chunk.", positive=True),
    "start_delay_s": Param(0.2, "Sim time to wait before the first chunk.", positive=True),
}


class DemoDriver(Node):
    def __init__(self, **kwargs):
        super().__init__("demo_driver", **kwargs)
        p = declare_parameters(self, PARAMS)
        self.params = p
        robot = RobotModel.load(p["robot"])
        self.joint_names = list(robot.joint_names)
        if p["waypoints"]:
            w = np.asarray(p["waypoints"])
            if w.size % robot.n:
                raise ParameterError(f"parameter 'waypoints' has {w.size} values, not a multiple of {robot.n}")
            w = w.reshape(-1, robot.n)
        else:
            w = default_waypoints(robot)
        self.waypoints = w
        self.path: MinJerkPath | None = None
        self.next_chunk_t = None
        self.done = False
        self.chunks_sent = 0
        self.pub = self.create_publisher(JointTrajectory, p["trajectory_topic"], TRAJECTORY_QOS)
        self.create_subscription(JointState, "/joint_states", self._on_state, STATE_QOS)

    def _on_state(self, msg: JointState) -> None:
        t = stamp_to_sec(msg.header.stamp)
        p = self.params
        if self.path is None:
            self.path = MinJerkPath(self.waypoints, p["segment_s"], t0=t + p["start_delay_s"])
            self.next_chunk_t = t + p["start_delay_s"]
            self.end_t = self.path.t0 + self.path.duration
        if self.done or t < self.next_chunk_t:
            return
        if t >= self.end_t + p["chunk_horizon_s"]:
            self.done = True
            self.get_logger().info(f"path done after {self.chunks_sent} chunks")
            return
        rel, qs = self.path.chunk(t, p["chunk_horizon_s"], p["chunk_points"])
        traj = JointTrajectory()
        traj.header.stamp = msg.header.stamp  # absolute start: the state time the chunk was made for
        traj.joint_names = self.joint_names
        for r, q in zip(rel, qs):
            sec = int(r)
            traj.points.append(JointTrajectoryPoint(
                positions=q.tolist(), time_from_start=Duration(sec=sec, nanosec=int(round((r - sec) * 1e9)))))
        self.pub.publish(traj)
        self.chunks_sent += 1
        self.next_chunk_t += p["chunk_period_s"]


def main(args=None):
    from robot_ctrl.ros.runner import run_nodes

    run_nodes([DemoDriver], args=args)


if __name__ == "__main__":
    main()
