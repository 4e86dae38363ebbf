"""Policy node: runs a trained chunk policy (CARP, diffusion, MLP) in the ROS graph.

Subscribes  /joint_states                sensor_msgs/JointState
            /objects/<body>/pose         geometry_msgs/PoseStamped, one per object of the task
                                         (the simulator's stand-in for perception)
            /task/goal                   std_msgs/Float64MultiArray (latched): the goal vector
Publishes   <trajectory_topic>           trajectory_msgs/MultiDOFJointTrajectory (Cartesian
                                         policies: hand pose + gripper as a joint) or
                                         JointTrajectory (joint-space policies), one chunk per
                                         policy period, stamped with the observation's time
            /policy/ready_until          std_msgs/Float64: the sim time the published chunks cover
                                         (the simulator's lockstep gate waits on it)
            /policy/alive                std_msgs/Bool (1 Hz: active or not), DDS liveliness
                                         AUTOMATIC with a 16 ms lease: the safety filter and the
                                         controller notice this process dying within the lease
            /diagnostics                 diagnostic_msgs/DiagnosticArray (1 Hz)
            /teleop/intervening          std_msgs/Bool: per chunk, whether the operator commanded it
                                         (prompt modes shared and teleop; recorded as the dataset's
                                         intervention flag)
Service     ~/reset                      std_srvs/Trigger: forget the observation history

Prompts (`prompt_mode`, issue 5; the teleop node publishes them, robot_ctrl.ros.teleop_msgs):
  none       the policy alone (default).
  goal       the operator sets the task goal: the position of /teleop/pose becomes the goal
             vector (x, y[, z]) the policy conditions on, instead of /task/goal. Every pose
             updates the goal; the policy replans at once only when the goal has moved more than
             `goal_replan` from the goal of the last chunk (a held clutch streams poses at the
             device rate; smaller moves enter at the next chunk).
  shared     shared autonomy (HIL-SERL): every `teleop_period` the operator's prompt is checked;
             while the operator acts (input above the deadband, or the intervene button) the
             operator's chunk overrides (`shared_rule: override`) or blends with a fresh policy
             chunk (`blend`, `blend_alpha`); when the operator lets go, the policy is asked
             again at once, from the new state. See robot_ctrl.teleop.shared.
  guidance   diffusion policies only: while the operator acts, sampling is steered toward the
             operator's chunk (x ← x − λ∇‖x̂₀ − x_prompt‖², λ = `guide_scale`).
  teleop     no policy: the operator's prompts drive the arm (twist or clutch pose), the hand
             holds where the operator let go; no checkpoint is loaded. Joint targets (a leader
             arm, /teleop/joints) go to /controller/joint_trajectory, mapped by joint name.
An e-stop prompt stops chunk publishing (the teleop node sends /estop to the safety filter).

Timing follows the state stamps (sim time in simulation): a chunk is predicted from the first
state at or after the previous chunk's stamp + action_steps·dt, so the policy runs at its
training rate whatever the wall clock does. The stamps pass the controller's guard
(robot_ctrl.control.stamps): a state older than the last (a storm's copies) or one stamped a jump
ahead is refused, so that no chunk is scheduled or stamped on it; a confirmed new timeline (a
simulator reset) restarts the episode. Chunk point k is the target for stamp + (k+1)·dt,
as in the Gymnasium environment. The controller starts each chunk from its current reference
(C1 joins: no jump where chunks meet) and the safety filter stays in between.

The observation is `robot_ctrl.tasks.base.build_observation` on the newest joint state, object
poses and goal: the same function the environment uses. An observation that is incomplete
(no goal or pose yet) waits; one with NaN/Inf is rejected and counted, and the node holds: it
publishes no chunk (the controller keeps the last good one) and never a non-finite chunk.

Inputs are checked on arrival and counted on /diagnostics, one counter per message: joint
states `states` / `rejected_states` (robot_ctrl.ros.validation: sizes, names, NaN/Inf, values
beyond 1e4, the stamp, out of order or a jump: `stamp_jumps`, `stamps_older`); goals `goals` / `rejected_goals` (wrong length: ignored; NaN/Inf:
counted, and the node holds until a good goal) / `ignored_goals` (the operator's goal wins, or
teleop); object poses `poses` / `rejected_poses` (frame "world" or empty, the stamp, NaN/Inf,
a quaternion not unit within 1e-3, farther than 1 km: the node holds until a good pose);
prompts `prompts_<twist|pose|joy|joints>` / `rejected_prompts_<...>` (see teleop_msgs). A
chunk that would hold NaN/Inf is not published (`nonfinite_chunks`). Rejections are logged
once per second and kind.
"""
from __future__ import annotations

import time

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import PoseStamped, Transform
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Float64, Float64MultiArray
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint, MultiDOFJointTrajectory, MultiDOFJointTrajectoryPoint

from robot_ctrl.ros.common import (
    GOAL_QOS,
    LIVELINESS_QOS,
    STATE_QOS,
    TRAJECTORY_QOS,
    JointOrder,
    JointStateError,
    Param,
    ParameterError,
    publish_status,
    quaternion_from_rotation,
    rotation_from_quaternion,
    sec_to_stamp,
    stamp_to_sec,
    steady_clock,
)
from robot_ctrl.control.stamps import StampError, StampGuard
from robot_ctrl.ros.lifecycle import ManagedNode
from robot_ctrl.ros.validation import LogThrottle, check_stamp

PARAMS = {
    "checkpoint": Param("", "Policy checkpoint (.safetensors) from `robot-ctrl train`; empty: the committed "
                            "CARP pick-and-place checkpoint (checkpoints/carp_pick_place.safetensors)."),
    "robot": Param("panda", "Robot name (config/robots/<robot>.yaml) or path to a robot YAML."),
    "task": Param("", "Task whose observation to build; empty: the task the checkpoint was trained on."),
    "trajectory_topic": Param("", "Where chunks go; empty: /controller/cartesian_trajectory for Cartesian "
                                  "policies, /controller/joint_trajectory for joint-space ones."),
    "threads": Param(1, "torch CPU threads for inference.", positive=True),
    "prompt_mode": Param("none", "How operator prompts enter (see the module doc).",
                         choices=("none", "goal", "shared", "guidance", "teleop")),
    "shared_rule": Param("override", "Shared autonomy: the operator's chunk replaces or blends with the policy's.",
                         choices=("override", "blend")),
    "blend_alpha": Param(0.5, "Blend rule: the operator's share while acting, in [0, 1]."),
    "alpha_mode": Param("constant", "Blend share: constant, or scaled by input magnitude.",
                        choices=("constant", "magnitude")),
    "deadband": Param(0.01, "Operator input below this (m/s) does not count as acting.", positive=True),
    "teleop_period": Param(0.1, "Seconds (state time) between operator checks and teleop chunks.", positive=True),
    "prompt_timeout": Param(0.3, "Seconds (wall clock) a prompt message stays fresh.", positive=True),
    "max_speed": Param(0.10, "m/s: pose prompts' approach speed and full-scale input for magnitude blending.",
                       positive=True),
    "guide_scale": Param(0.5, "Guidance strength λ (prompt_mode guidance)."),
    "goal_replan": Param(0.02, "prompt_mode goal: metres the operator's goal must move from the goal of the "
                               "last chunk before the policy replans at once (smaller moves wait for the next "
                               "chunk).", positive=True),
}


OBJECT_FRAMES = ("", "world")
MAX_POSITION_M = 1e3  # an object pose farther than this from the origin is no measurement  # object poses are world-frame (the simulator says "world")
_NO_POSE = (np.full(3, np.nan), np.full((3, 3), np.nan))  # after a bad pose: the observation check holds


def _pose(msg: PoseStamped):
    """(position, rotation) of a world-frame pose; ValueError naming what is wrong."""
    if msg.header.frame_id not in OBJECT_FRAMES:
        raise ValueError(f"frame_id '{msg.header.frame_id[:40]}' (expected 'world' or empty)")
    check_stamp(msg.header.stamp)
    p, o = msg.pose.position, msg.pose.orientation
    pos = np.array([p.x, p.y, p.z])
    if not (np.all(np.isfinite(pos)) and np.abs(pos).max() <= MAX_POSITION_M):
        raise ValueError(f"position must be finite and within {MAX_POSITION_M:g} m of the origin")
    return pos, rotation_from_quaternion(o.x, o.y, o.z, o.w)


def _finite_chunk(msg) -> bool:
    """Whether every number of an outgoing JointTrajectory / MultiDOFJointTrajectory is finite."""
    for pt in msg.points:
        if isinstance(pt, JointTrajectoryPoint):
            if not (np.all(np.isfinite(pt.positions)) and np.all(np.isfinite(pt.velocities))):
                return False
        else:
            for tr in pt.transforms:
                t, r = tr.translation, tr.rotation
                if not np.all(np.isfinite((t.x, t.y, t.z, r.x, r.y, r.z, r.w))):
                    return False
    return True


class PolicyNode(ManagedNode):
    def __init__(self, **kwargs):
        super().__init__("policy", PARAMS, **kwargs)

    def configure(self) -> None:
        self._log = LogThrottle(self.get_logger())  # rejections: once per second per kind
        import json

        import torch

        from robot_ctrl.learning.base import read_checkpoint
        from robot_ctrl.learning.envs import base_task
        from robot_ctrl.tasks import TASK_CLASSES, TASKS

        p = self.params
        self.mode = p["prompt_mode"]
        torch.set_num_threads(int(p["threads"]))
        task = ""
        if self.mode != "teleop":  # teleop alone loads no policy
            if not p["checkpoint"]:
                from robot_ctrl.paths import checkpoint_path

                p["checkpoint"] = str(checkpoint_path("carp_pick_place.safetensors"))
            meta, _ = read_checkpoint(p["checkpoint"])
            task = p["task"] or json.loads(meta.get("spec", "{}")).get("task", "")
            task = base_task(task)  # a joint-space policy's `<task>-joint` observes `<task>`
            if task not in TASKS:
                raise ParameterError(f"task '{task}' is not a robot_ctrl task ({', '.join(TASKS)})")
            self.task_cls = TASK_CLASSES[task]
        self._setup(p, task)

    def _setup(self, p, task: str) -> None:
        from robot_ctrl.control.cartesian import DiffIK
        from robot_ctrl.learning import load_policy
        from robot_ctrl.model import RobotModel
        from robot_ctrl.tasks.base import ACTION_SIZE
        from robot_ctrl.teleop.shared import SharedAutonomy, SharedConfig
        from robot_ctrl.ros.teleop_msgs import PromptAssembler  # noqa: I001

        self.robot = RobotModel.load(p["robot"])
        self.ik = DiffIK(self.robot)
        self.objects = tuple(self.task_cls.objects) if task else ()
        if task:
            obs_size = 2 * self.robot.n + 10 + 9 * len(self.objects) + self.task_cls.goal_size
            self.policy = load_policy(p["checkpoint"], expect_obs_size=obs_size)
            if self.policy.spec.act_size == ACTION_SIZE:
                self.cartesian = True
            elif self.policy.spec.act_size == self.robot.n:
                self.cartesian = False
            else:
                raise ParameterError(f"{p['checkpoint']}: action size {self.policy.spec.act_size} is neither "
                                     f"Cartesian ({ACTION_SIZE}) nor joint-space ({self.robot.n} joints)")
            self.dt = float(self.policy.spec.dt)
            self.period = self.policy.spec.action_steps * self.dt
        else:  # teleop alone
            self.policy, self.cartesian = None, True
            self.dt = self.period = float(p["teleop_period"])
        if self.mode in ("shared", "guidance", "teleop") and not self.cartesian:
            raise ParameterError(f"prompt_mode '{self.mode}' needs a Cartesian policy (hand targets)")
        if self.mode == "guidance" and not self.policy.supports_guidance:
            raise ParameterError(f"prompt_mode 'guidance' needs a policy with a guidance hook (diffusion), "
                                 f"got {self.policy.kind}")
        if not 0.0 <= p["blend_alpha"] <= 1.0:
            raise ParameterError(f"parameter 'blend_alpha' of node 'policy' must be in [0, 1], got {p['blend_alpha']}")
        if p["guide_scale"] < 0:
            raise ParameterError(f"parameter 'guide_scale' of node 'policy' must be >= 0, got {p['guide_scale']}")
        horizon = self.policy.spec.horizon if self.policy is not None else 8
        step_dt = self.dt if self.policy is not None else float(p["teleop_period"])
        self.shared = SharedAutonomy(SharedConfig(
            rule=p["shared_rule"], alpha=p["blend_alpha"], alpha_mode=p["alpha_mode"], deadband=p["deadband"],
            horizon=horizon, dt=step_dt, max_speed=p["max_speed"]))
        self.prompts = PromptAssembler(timeout=p["prompt_timeout"], log=self._log)
        self.t_teleop = -np.inf
        self._acting = False
        self.gripper = 1.0
        self.task = task
        self.order = JointOrder(self.robot.joint_names)
        self.poses: dict[str, tuple] = {}
        self.goal: np.ndarray | None = None
        self.goal_planned: np.ndarray | None = None  # the goal the last (or the next, after a replan) chunk is for
        self.t_next = -np.inf
        self.t_last = -np.inf
        self.stamps = StampGuard()  # the state stamps' time base (robot_ctrl.control.stamps)
        self.counts = {"chunks": 0, "rejected_observations": 0, "states": 0, "rejected_states": 0, "waiting": 0,
                       "policy_errors": 0, "time_resets": 0, "operator_chunks": 0, "estop_holds": 0,
                       "goal_replans": 0, "goals": 0, "rejected_goals": 0, "ignored_goals": 0, "poses": 0,
                       "rejected_poses": 0, "nonfinite_chunks": 0}
        self.latency_ms: list[float] = []

        topic = p["trajectory_topic"] or ("/controller/cartesian_trajectory" if self.cartesian
                                          else "/controller/joint_trajectory")
        m = self.managed  # made here, destroyed by cleanup
        self.chunk_pub = m(self.create_publisher(MultiDOFJointTrajectory if self.cartesian else JointTrajectory,
                                                 topic, TRAJECTORY_QOS))
        self.ready_pub = m(self.create_publisher(Float64, "/policy/ready_until", STATE_QOS))
        self.diag_pub = m(self.create_publisher(DiagnosticArray, "/diagnostics", 10))
        for b in self.objects:
            m(self.create_subscription(PoseStamped, f"/objects/{b}/pose", lambda msg, b=b: self._on_pose(b, msg),
                                       STATE_QOS))
        m(self.create_subscription(Float64MultiArray, "/task/goal", self._on_goal, GOAL_QOS))
        self.goal_from_operator = False
        if self.mode != "none":
            from geometry_msgs.msg import TwistStamped
            from sensor_msgs.msg import Joy

            from robot_ctrl.ros.teleop_msgs import BUTTON_QOS, COMMAND_STREAM_QOS, TOPICS

            now = time.monotonic
            m(self.create_subscription(TwistStamped, TOPICS["twist"], lambda msg: self.prompts.on_twist(msg, now()),
                                       COMMAND_STREAM_QOS))
            m(self.create_subscription(PoseStamped, TOPICS["pose"], self._on_prompt_pose, COMMAND_STREAM_QOS))
            m(self.create_subscription(Joy, TOPICS["joy"], lambda msg: self.prompts.on_joy(msg, now()), BUTTON_QOS))
            m(self.create_subscription(JointState, TOPICS["joints"], lambda msg: self.prompts.on_joints(msg, now()),
                                       COMMAND_STREAM_QOS))
            # leader-arm joint targets (teleop mode) go to the controller's joint-space input
            self.joint_pub = m(self.create_publisher(JointTrajectory, "/controller/joint_trajectory", TRAJECTORY_QOS))
            self.intervening_pub = m(self.create_publisher(Bool, "/teleop/intervening", STATE_QOS))
        m(self.create_subscription(JointState, "/joint_states", self._on_state, STATE_QOS))
        m(self.create_service(Trigger, "~/reset", self._on_reset))
        # liveliness (the safety filter brakes when this process dies); the 1 Hz message only
        # says which lifecycle state the node is in
        self.alive_pub = m(self.create_publisher(Bool, "/policy/alive", LIVELINESS_QOS))
        m(self.create_timer(1.0, lambda: self.alive_pub.publish(Bool(data=self.active))))
        m(self.create_timer(1.0, self._publish_diagnostics, clock=steady_clock()))
        if self.policy is None:
            self.get_logger().info(f"teleop (no policy): operator chunks every {self.period:.2f} s on {topic}")
        else:
            self.get_logger().info(f"{self.policy.kind} policy for {task} from {p['checkpoint']}: chunks of "
                                   f"{self.policy.spec.horizon} x {self.dt:.3f} s every {self.period:.2f} s on {topic}"
                                   f"; prompts: {self.mode}")

    # -- inputs --------------------------------------------------------------------------
    def _on_pose(self, body: str, msg: PoseStamped) -> None:
        try:
            self.poses[body] = _pose(msg)
        except ValueError as exc:
            # where the object is, is unknown now: hold (no chunk) until a good pose comes
            self.poses[body] = _NO_POSE
            self.counts["rejected_poses"] += 1
            self._log("1", f"rejected pose of '{body}', holding: {exc}")
            return
        self.counts["poses"] += 1

    def _on_prompt_pose(self, msg: PoseStamped) -> None:
        if not self.prompts.on_pose(msg, time.monotonic()):
            return  # rejected (counted by the assembler)
        if self.mode != "goal" or self.policy is None:
            return
        p = msg.pose.position
        g = np.array([p.x, p.y, p.z])[:self.task_cls.goal_size]
        if not np.all(np.isfinite(g)) or self.task_cls.goal_size > 3:
            self.counts["rejected_observations"] += 1
            return
        self.goal_from_operator = True
        self.goal = g
        if self.goal_planned is None or np.linalg.norm(g - self.goal_planned) > self.params["goal_replan"]:
            self.counts["goal_replans"] += 1
            self._restart()
            # the next chunk is predicted for g: the same goal streamed again before that chunk
            # (at a pose rate above the policy rate, or a slow simulator) is not a new replan
            self.goal_planned = g.copy()

    def _on_goal(self, msg: Float64MultiArray) -> None:
        if self.goal_from_operator or self.policy is None:
            self.counts["ignored_goals"] += 1
            return  # prompt_mode goal: the operator's goal wins once given; teleop: no goal
        if len(msg.data) != self.task_cls.goal_size:  # the length first: a huge array is never converted
            self.counts["rejected_observations"] += 1
            self.counts["rejected_goals"] += 1
            self._log("2", f"goal must have {self.task_cls.goal_size} values, got {len(msg.data)}")
            return
        g = np.asarray(msg.data, dtype=float)
        if not np.all(np.isfinite(g)):
            # counted here; and the goal is unusable now: every observation is refused (holding,
            # no chunk) until a good goal arrives (no new episode: nothing is restarted)
            self.counts["rejected_goals"] += 1
            self._log("3", "goal has NaN/Inf: holding until a good goal")
            self.goal = g
            return
        self.counts["goals"] += 1
        self.goal = g
        self._restart()

    def _restart(self) -> None:
        if self.policy is not None:
            self.policy.reset()
        self.shared.reset()  # (a new episode: no latched hold from the last one)
        self.t_next = self.t_teleop = -np.inf

    def on_activated(self) -> None:
        self._restart()  # a fresh start: no history or schedule from before the pause

    def _on_reset(self, request, response):
        self._restart()
        response.success, response.message = True, "observation history cleared"
        return response

    def _on_state(self, msg: JointState) -> None:
        try:
            q, v = self.order.state(msg)
        except JointStateError as exc:
            self.counts["rejected_states"] += 1
            self._log("4", f"rejected joint state: {exc}")
            return
        t = stamp_to_sec(msg.header.stamp)
        try:  # out of order (a storm's copies) or a jump: refused, as the controller does (a
            # jumped stamp would schedule the next chunks a jump ahead, and stamp them there)
            verdict = self.stamps.check(t, time.monotonic())
        except StampError as exc:
            self.counts["rejected_states"] += 1
            self._log("8", f"rejected joint state: {exc}")
            return
        self.counts["states"] += 1
        self.q_now, self.v_now = q, v
        if verdict == "reset" or t < self.t_last:  # a new timeline (a simulator reset): a new episode
            self.counts["time_resets"] += 1
            self._restart()
        elif t == self.t_last and np.isfinite(self.t_next):
            # a re-published state: the simulator is waiting; say again how far the chunks go
            # (the first message may have gone out before its subscription matched)
            self.ready_pub.publish(Float64(data=self.t_next))
        self.t_last = t
        self.note_state()
        if not self.active:
            return  # inactive: no chunks (the controller holds; the safety filter stays in between)
        if self.mode in ("shared", "teleop") and self._operator_step(msg.header.stamp, t, q, v):
            return
        if t < self.t_next - 1e-9:
            return
        if (self.goal is None or any(b not in self.poses for b in self.objects)
                or self.chunk_pub.get_subscription_count() == 0):
            self.counts["waiting"] += 1  # no goal, pose or controller yet
            return
        from robot_ctrl.tasks.base import build_observation

        obs = build_observation(self.ik, q, v, [self.poses[b] for b in self.objects], self.goal)
        if not np.all(np.isfinite(obs)):
            self.counts["rejected_observations"] += 1
            self._log("5", "observation has NaN/Inf: holding (no new chunk)")
            return
        kwargs = {}
        if self.mode == "guidance":
            prompt = self.prompts.prompt(time.monotonic())
            if prompt is not None and prompt.estop:
                self.counts["estop_holds"] += 1
                return
            if self.shared.acting(prompt):
                p_hand, R_hand = self.ik.ee_pose(q)
                kwargs = {"guide_to": self.shared.operator_chunk(p_hand, R_hand, prompt, prompt.gripper),
                          "guide_scale": self.params["guide_scale"]}
                self.counts["operator_chunks"] += 1
        t0 = time.perf_counter()
        try:
            chunk = self.policy.act(obs, **kwargs)
        except (ValueError, FloatingPointError) as exc:
            self.counts["policy_errors"] += 1
            self._log("6", f"policy failed, holding: {exc}")
            return
        self.latency_ms.append(1e3 * (time.perf_counter() - t0))
        if not self._publish_chunk(self.chunk_pub, self._chunk_msg(msg.header.stamp, chunk.actions)):
            return
        self.goal_planned = self.goal.copy()
        self.gripper = float(chunk.actions[0, -1]) if self.cartesian else self.gripper
        if self.mode in ("shared", "guidance"):
            self.intervening_pub.publish(Bool(data=bool(kwargs)))
        self.counts["chunks"] += 1
        self.t_next = t + self.period
        self.ready_pub.publish(Float64(data=t + self.period))

    def _observation(self, q, v):
        from robot_ctrl.tasks.base import build_observation

        return build_observation(self.ik, q, v, [self.poses[b] for b in self.objects], self.goal)

    def _operator_step(self, stamp, t: float, q, v) -> bool:
        """Shared autonomy and teleop: every teleop_period, let the operator act. Returns True
        when this state is handled (operator chunk published, or held for an e-stop)."""
        if t < self.t_teleop - 1e-9 or self.chunk_pub.get_subscription_count() == 0:
            return self.policy is None or self._acting
        self.t_teleop = t + float(self.params["teleop_period"])
        prompt = self.prompts.prompt(time.monotonic())
        if prompt is not None and prompt.estop:
            self.counts["estop_holds"] += 1
            self._acting = True
            return True
        acting = self.shared.acting(prompt)
        self._acting = acting
        if not acting and self.policy is not None:
            return False
        if acting and prompt.mode == "joints":
            return self._joint_prompt(stamp, q, prompt)
        p_hand, R_hand = self.ik.ee_pose(q)
        policy_chunk = None
        if acting and self.policy is not None and self.params["shared_rule"] == "blend":
            if self.goal is None or any(b not in self.poses for b in self.objects):
                return True
            obs = self._observation(q, v)
            try:
                policy_chunk = self.policy.act(obs).actions if np.all(np.isfinite(obs)) else None
            except (ValueError, FloatingPointError):
                policy_chunk = None
        chunk, acted = self.shared.step(p_hand, R_hand, prompt, policy_chunk, gripper=self.gripper)
        if chunk is None or not self._publish_chunk(self.chunk_pub, self._chunk_msg(stamp, chunk)):
            return True
        self.intervening_pub.publish(Bool(data=bool(acted)))
        self.gripper = float(chunk[0, 9])
        self.counts["operator_chunks" if acted else "chunks"] += 1
        if self.policy is not None:
            self.t_next = t  # when the operator lets go, the policy answers from the new state at once
            self.policy.reset()
        return True

    def _joint_prompt(self, stamp, q, prompt) -> bool:
        """A leader arm's joint targets: one joint-space point per teleop period, mapped by
        name; joints the leader does not name keep their current position, unknown names are
        ignored."""
        names = list(self.robot.joint_names)
        target = np.array(q, dtype=float)
        for n, x in zip(prompt.joint_names, prompt.joint_positions):
            if n in names:
                target[names.index(n)] = x
        target = np.clip(target, self.robot.q_min, self.robot.q_max)
        msg = JointTrajectory(joint_names=names)
        pt = JointTrajectoryPoint(positions=[float(x) for x in target])
        sec_to_stamp(float(self.params["teleop_period"]), pt.time_from_start)
        msg.points.append(pt)
        msg.header.stamp = stamp
        if not self._publish_chunk(self.joint_pub, msg):
            return True
        self.intervening_pub.publish(Bool(data=True))
        self.counts["operator_chunks"] += 1
        if self.policy is not None:
            self.t_next = self.t_last
            self.policy.reset()
        return True

    # -- output --------------------------------------------------------------------------
    def _publish_chunk(self, pub, msg) -> bool:
        """Publish a chunk unless it holds NaN/Inf (then count it and hold: nothing is sent)."""
        if not _finite_chunk(msg):
            self.counts["nonfinite_chunks"] += 1
            self._log("7", "chunk with NaN/Inf not published: holding")
            return False
        pub.publish(msg)
        return True

    def _chunk_msg(self, stamp, actions: np.ndarray):
        from robot_ctrl.control.cartesian import matrix_from_rot6d

        if not self.cartesian:
            from robot_ctrl.control.cartesian import joint_chunk

            # the same feasibility box as the environment's joint actions, from the newest state
            Q, V = joint_chunk(self.q_now, [self.dt] * len(actions), actions, self.robot.v_max, self.robot.q_min,
                               self.robot.q_max, v_start=self.v_now)
            msg = JointTrajectory(joint_names=list(self.robot.joint_names))
            for k in range(len(Q)):
                pt = JointTrajectoryPoint(positions=[float(x) for x in Q[k]], velocities=[float(x) for x in V[k]])
                sec_to_stamp((k + 1) * self.dt, pt.time_from_start)
                msg.points.append(pt)
        else:
            msg = MultiDOFJointTrajectory(joint_names=[self.robot.cfg.ee_frame, "gripper"])
            for k, a in enumerate(actions):
                hand = Transform()
                hand.translation.x, hand.translation.y, hand.translation.z = (float(x) for x in a[:3])
                (hand.rotation.x, hand.rotation.y, hand.rotation.z,
                 hand.rotation.w) = (float(x) for x in quaternion_from_rotation(matrix_from_rot6d(a[3:9])))
                grip = Transform()
                grip.translation.x = float(np.clip(a[9], -1.0, 1.0))
                grip.rotation.w = 1.0
                pt = MultiDOFJointTrajectoryPoint(transforms=[hand, grip])
                sec_to_stamp((k + 1) * self.dt, pt.time_from_start)
                msg.points.append(pt)
        msg.header.stamp = stamp
        return msg

    def _publish_diagnostics(self) -> None:
        lat = np.array(self.latency_ms[-200:]) if self.latency_ms else np.zeros(1)
        bad = self.counts["rejected_observations"] + self.counts["policy_errors"]
        level = DiagnosticStatus.WARN if bad else DiagnosticStatus.OK
        publish_status(self, self.diag_pub, "robot_ctrl/policy", self.policy.kind if self.policy else "teleop", level,
                       "holding after bad input" if bad else "running",
                       {**self.counts, **self.prompts.counts(), **self.lifecycle_values(), "task": self.task,
                        "prompt_mode": self.mode, "stamp_jumps": self.stamps.jumps,
                        "stamps_older": self.stamps.older, "interventions": self.shared.interventions, "chunk_ms_p50": f"{np.percentile(lat, 50):.2f}",
                        "chunk_ms_p99": f"{np.percentile(lat, 99):.2f}"})


def main(args=None):
    from robot_ctrl.ros.runner import run_nodes

    run_nodes([PolicyNode], args=args)


if __name__ == "__main__":
    main()
