"""The policy node in the ROS graph (issue 4): sim (task world, lockstep, gated on the policy),
controller (Cartesian chunks → IK → computed torque), safety filter and policy node, started as
processes like `ros2 launch` would. The committed CARP reach checkpoint completes reach with the
same per-episode outcome as the Gymnasium evaluation with the same safety filter, and the node
refuses bad observations without publishing a chunk."""
from __future__ import annotations

import math

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Float64MultiArray
from std_srvs.srv import Trigger
from trajectory_msgs.msg import MultiDOFJointTrajectory

from robot_ctrl.paths import checkpoint_path
from rosgraph import diag_values, refusals_fixture, spin_until, start_node, stop

CKPT = checkpoint_path("mlp_reach.safetensors")
SEED, EPISODES = 700, 6


def _graph(task_seed: int, ckpt=CKPT):
    return [
        start_node("sim_node", "sim.yaml", {"task": "reach", "task_seed": task_seed, "timing_mode": "lockstep",
                                            "lockstep_gate": "true"}),
        start_node("controller_node", "controller.yaml",
                   remap={"/forward_effort_controller/commands": "/safety_filter/nominal"}),
        start_node("safety_node", "safety_filter.yaml", {"config": "panda_tasks", "use_sim_time": "true"}),
        start_node("policy_node", "policy.yaml", {"checkpoint": str(ckpt)}),
    ]


class Probe:
    def __init__(self, node):
        self.node = node
        self.success, self.t, self.chunks, self.diags = False, 0.0, [], []
        node.create_subscription(Bool, "/task/success", self._on_success, 10)
        node.create_subscription(JointState, "/joint_states", self._on_state, 10)
        node.create_subscription(MultiDOFJointTrajectory, "/controller/cartesian_trajectory", self.chunks.append, 10)
        node.create_subscription(DiagnosticArray, "/diagnostics", self.diags.append, 50)
        from robot_ctrl.ros.common import GOAL_QOS

        self.goal = node.create_publisher(Float64MultiArray, "/task/goal", GOAL_QOS)
        self.reset = node.create_client(Trigger, "/sim/reset")

    def _on_success(self, m):
        self.success = self.success or m.data

    def _on_state(self, m):
        self.t = m.header.stamp.sec + m.header.stamp.nanosec * 1e-9

    def new_episode(self, procs):
        assert self.reset.wait_for_service(timeout_sec=10)
        fut = self.reset.call_async(Trigger.Request())
        assert spin_until(self.node, fut.done, 10, procs)
        # drop what is still in flight from the last episode
        spin_until(self.node, lambda: False, 0.3, procs)
        self.success, self.t = False, 0.0


class TestReachGraph:
    """Reach through the graph, then a NaN observation, on one graph (one start-up; it stops at
    the end of the class, before the next test starts a graph of its own)."""

    @pytest.fixture(scope="class")
    def reach_graph(self):
        """One reach graph for the episodes and the NaN observation after them (one start-up)."""
        procs = _graph(SEED)
        yield procs
        stop(procs)

    def test_policy_node_completes_reach_like_the_gymnasium_evaluation(self, ros, reach_graph):
        from robot_ctrl.learning.evaluate import evaluate

        gym_eval = evaluate(CKPT, task="reach", episodes=EPISODES, seed=SEED, progress=False)  # filter in the loop
        horizon_s = 40 * 0.1
        probe = Probe(ros)
        procs = reach_graph
        outcomes = []
        for ep in range(EPISODES):
            if ep:
                probe.new_episode(procs)
            assert spin_until(ros, lambda: probe.success or probe.t > horizon_s, 120, procs)
            outcomes.append(probe.success)
        chunks = list(probe.chunks)
        assert spin_until(ros, lambda: "rejected_observations" in diag_values(probe.diags, "robot_ctrl/policy"),
                          5, procs)
        diag = diag_values(probe.diags, "robot_ctrl/policy")
        assert sum(outcomes) >= EPISODES - 1, outcomes                      # the node completes reach
        assert abs(sum(outcomes) - gym_eval["successes"]) <= 1, (outcomes, gym_eval["per_episode"])
        assert chunks and all(len(c.points) == 16 for c in chunks)
        assert all(math.isfinite(p.transforms[0].translation.x) for c in chunks for p in c.points)
        assert int(diag.get("chunks", 0)) >= EPISODES and int(diag.get("rejected_observations", -1)) == 0

    def test_policy_node_holds_on_a_nan_observation(self, ros, reach_graph):
        probe = Probe(ros)
        procs = reach_graph
        probe.new_episode(procs)  # (after the episodes of the test above, on the same graph)
        assert spin_until(ros, lambda: len(probe.chunks) >= 1, 60, procs)
        # a goal with NaN: every observation from now on is refused; no chunk, and with the
        # simulation gated on the policy, no motion past the last chunk's end either
        probe.goal.publish(Float64MultiArray(data=[0.5, float("nan"), 0.3]))
        spin_until(ros, lambda: False, 0.5, procs)
        n = len(probe.chunks)
        spin_until(ros, lambda: False, 2.0, procs)
        assert len(probe.chunks) == n
        assert spin_until(ros, lambda: int(diag_values(probe.diags, "robot_ctrl/policy")
                                           .get("rejected_observations", 0)) > 0, 5, procs)
        # a good goal again: chunks resume
        probe.goal.publish(Float64MultiArray(data=[0.45, 0.1, 0.3]))
        assert spin_until(ros, lambda: len(probe.chunks) > n, 20, procs)
        bad = [c for c in probe.chunks for p in c.points if not np.isfinite(p.transforms[0].translation.x)]
        assert not bad


def test_joint_space_policy_publishes_joint_trajectories_and_matches_gymnasium(ros):
    """A joint-space checkpoint (reach-joint: joint-position actions) drives the arm through
    /controller/joint_trajectory with the same outcomes as the Gymnasium evaluation."""
    from robot_ctrl.learning.evaluate import evaluate
    from trajectory_msgs.msg import JointTrajectory

    ckpt, episodes, seed = checkpoint_path("mlp_reach_joint.safetensors"), 4, 720
    gym_eval = evaluate(ckpt, episodes=episodes, seed=seed, progress=False)
    probe = Probe(ros)
    joint_chunks = []
    ros.create_subscription(JointTrajectory, "/controller/joint_trajectory", joint_chunks.append, 10)
    procs = _graph(seed, ckpt)
    outcomes = []
    try:
        for ep in range(episodes):
            if ep:
                probe.new_episode(procs)
            assert spin_until(ros, lambda: probe.success or probe.t > 4.0, 120, procs)
            outcomes.append(probe.success)
    finally:
        stop(procs)
    assert abs(sum(outcomes) - gym_eval["successes"]) <= 1, (outcomes, gym_eval["per_episode"])
    assert sum(outcomes) >= 1 and not probe.chunks  # joint chunks only, no Cartesian ones
    assert joint_chunks and all(len(c.points) == 16 and len(c.points[0].velocities) == 9 for c in joint_chunks)
    assert all(np.all(np.isfinite(p.positions)) for c in joint_chunks for p in c.points)


BAD_CHECKPOINTS = [
    ({"checkpoint": "/nonexistent.safetensors"}, "checkpoint not found"),
    ({"checkpoint": str(CKPT), "task": "push"}, "observation size"),
    ({"checkpoint": str(CKPT), "task": "stack"}, "not a robot_ctrl task"),
]


refusals = refusals_fixture("policy_node", "policy.yaml", BAD_CHECKPOINTS)


@pytest.mark.parametrize("params, message", BAD_CHECKPOINTS)
def test_policy_node_refuses_a_missing_or_mismatched_checkpoint(refusals, params, message):
    code, out = refusals.result(params)
    assert code != 0
    assert message in out, out
