"""Teleop node: one device → the prompt topics (robot_ctrl.ros.teleop_msgs) at a fixed rate.

Publishes   /teleop/twist, /teleop/pose, /teleop/joints, /teleop/joy   (see teleop_msgs)
            /estop                       std_msgs/Bool: true when the e-stop button goes down
            /diagnostics                 device, status (ok, not_installed, not_found,
                                         disconnected, ...), the error in words, counts

With `clutch_pose`, the node publishes the pose form instead: while the clutch button is held,
the device's integrated motion is applied to the hand pose captured at the press (from
/joint_states and the robot's kinematics), and on release the target holds.

Every period the device is polled (wall clock: input devices live in real time) and its prompt
goes through the deadman: with no fresh input for `deadman_timeout` the prompt becomes zero
(`deadman: zero`) or holds the last command with zero velocity (`hold`). A device that is
missing, unplugged or not installed never stops the node: it reports why in diagnostics and
the node publishes zero prompts until the device is back (`reconnect_period`).
"""
from __future__ import annotations

import json
import time

import numpy as np
from scipy.spatial.transform import Rotation

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import PoseStamped, TwistStamped
from rclpy.node import Node
from sensor_msgs.msg import Joy, JointState
from std_msgs.msg import Bool

from robot_ctrl.ros.common import Param, ParameterError, declare_parameters, publish_status
from robot_ctrl.ros.teleop_msgs import BUTTON_QOS, COMMAND_STREAM_QOS, TOPICS, prompt_to_msgs

PARAMS = {
    "device": Param("keyboard", "Teleop device: keyboard, gamepad, spacemouse, web or replay."),
    "device_args": Param("{}", "Device options as a JSON object, e.g. {\"path\": \"prompts.jsonl\"} for replay "
                               "or {\"port\": 8765} for web."),
    "rate_hz": Param(50.0, "Prompt publishing rate (Hz).", positive=True),
    "deadman_timeout": Param(0.3, "Seconds without fresh input before the prompt goes to zero or hold.",
                             positive=True),
    "deadman": Param("zero", "What the deadman does.", choices=("zero", "hold")),
    "max_linear_speed": Param(0.10, "Full device deflection in m/s.", positive=True),
    "max_angular_speed": Param(0.5, "Full device deflection in rad/s.", positive=True),
    "reconnect_period": Param(1.0, "Seconds between attempts to reopen a missing or unplugged device.",
                              positive=True),
    "frame_id": Param("panda_link0", "Frame of the published twists and poses (the robot's base)."),
    "clutch_pose": Param(False, "Publish the clutch pose form: while the clutch button is held, the device's "
                                "integrated motion is applied to the hand pose captured at the press "
                                "(/teleop/pose); on release the target holds."),
    "robot": Param("panda", "Robot (for the hand pose the clutch captures; clutch_pose only)."),
    "wait_for_subscriber": Param(False, "Do not poll the device until a node subscribes to a prompt topic (a "
                                        "replay's clock starts at its first poll, so a recorded stream is not "
                                        "spent before the policy node has matched)."),
}


class TeleopNode(Node):
    def __init__(self, device=None, **kwargs):
        """`device`: an already built `robot_ctrl.teleop.Device` to use instead of the `device`
        parameter's (benchmarks and tests inject devices with fake input sources this way)."""
        super().__init__("teleop", **kwargs)
        from robot_ctrl.teleop.base import make_device
        from robot_ctrl.teleop.schema import Deadman

        p = declare_parameters(self, PARAMS)
        self.params = p
        try:
            dev_args = json.loads(p["device_args"])
        except json.JSONDecodeError as e:
            raise ParameterError(f"parameter 'device_args' of node 'teleop' is not JSON: {e}") from None
        if not isinstance(dev_args, dict):
            raise ParameterError("parameter 'device_args' of node 'teleop' must be a JSON object")
        if device is not None:
            self.device = device
        else:
            self.device = self._make_device(make_device, p, dev_args)
        self.device.open()
        if self.device.error:
            self.get_logger().error(f"teleop device '{p['device']}': {self.device.error} (publishing zero prompts)")
        self.deadman = Deadman(timeout=p["deadman_timeout"], behaviour=p["deadman"])
        self.pubs = {
            "twist": self.create_publisher(TwistStamped, TOPICS["twist"], COMMAND_STREAM_QOS),
            "pose": self.create_publisher(PoseStamped, TOPICS["pose"], COMMAND_STREAM_QOS),
            "joints": self.create_publisher(JointState, TOPICS["joints"], COMMAND_STREAM_QOS),
            "joy": self.create_publisher(Joy, TOPICS["joy"], BUTTON_QOS),
        }
        self.estop_pub = self.create_publisher(Bool, "/estop", BUTTON_QOS)
        self.clutch = None
        if p["clutch_pose"]:
            self._setup_clutch(p["robot"])
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.counts = {"published": 0, "deadman_trips": 0, "estops": 0, "waiting": 0}
        self._estop = False
        self._tripped = False
        self.prompt = None
        self.create_timer(1.0 / p["rate_hz"], self._tick)
        self.create_timer(1.0, self._publish_diagnostics)
        self.get_logger().info(f"teleop: {p['device']} at {p['rate_hz']:.0f} Hz, deadman {p['deadman']} after "
                               f"{p['deadman_timeout']:.2f} s")

    def _setup_clutch(self, robot: str) -> None:
        from robot_ctrl.control.cartesian import DiffIK
        from robot_ctrl.model import RobotModel
        from robot_ctrl.ros.common import STATE_QOS, JointOrder, JointStateError
        from robot_ctrl.teleop.schema import Clutch

        ik = DiffIK(RobotModel.load(robot))
        order = JointOrder(ik.robot.joint_names)
        self.clutch, self.hand = Clutch(frame="base"), None
        self.dev_p, self.dev_q, self.t_dev = np.zeros(3), np.array([1.0, 0.0, 0.0, 0.0]), None

        def on_state(msg):
            try:
                q, _ = order.state(msg)
            except JointStateError:
                return
            pos, R = ik.ee_pose(q)
            x, y, z, w = Rotation.from_matrix(R).as_quat()
            self.hand = (pos, np.array([w, x, y, z]))

        self.create_subscription(JointState, "/joint_states", on_state, STATE_QOS)

    def _clutch_prompt(self, prompt, now: float):
        """The pose form of a twist prompt (see `clutch_pose`)."""
        from robot_ctrl.teleop.schema import Prompt

        dt = 0.0 if self.t_dev is None else min(now - self.t_dev, 0.5)  # (a longer stall: the node was stopped)
        self.t_dev = now
        if prompt.mode == "twist":  # the device's own pose: its velocity output, integrated
            self.dev_p = self.dev_p + prompt.linear * dt
            x, y, z, w = (Rotation.from_rotvec(prompt.angular * dt)
                          * Rotation.from_quat([*self.dev_q[1:], self.dev_q[0]])).as_quat()
            self.dev_q = np.array([w, x, y, z])
        if prompt.clutch and not self.clutch.engaged and self.hand is None and self.clutch.target is None:
            return prompt  # no robot state yet to capture
        target = self.clutch.update(prompt.clutch, self.dev_p, self.dev_q,
                                    *(self.hand if self.hand is not None else (None, None)))
        if target is None or prompt.estop:
            return prompt
        return Prompt(stamp=prompt.stamp, mode="pose", position=target[0], quaternion=target[1],
                      gripper=prompt.gripper, clutch=prompt.clutch, intervene=prompt.intervene, estop=prompt.estop)

    @staticmethod
    def _make_device(make_device, p, dev_args):
        try:
            return make_device(p["device"], max_linear_speed=p["max_linear_speed"],
                               max_angular_speed=p["max_angular_speed"], reconnect_period=p["reconnect_period"],
                               **dev_args)
        except TypeError as e:
            raise ParameterError(f"device '{p['device']}' does not take these device_args: {e}") from None

    def _tick(self) -> None:
        if self.params["wait_for_subscriber"] and self.counts["published"] == 0 and not any(
                self.pubs[k].get_subscription_count() for k in ("twist", "pose", "joints")):
            self.counts["waiting"] += 1
            return
        now = time.monotonic()
        raw = self.device.poll(now)
        prompt = self.deadman.update(now, raw if self.device.fresh else None)
        if self.clutch is not None:
            prompt = self._clutch_prompt(prompt, now)
        if self.deadman.tripped and not self._tripped:
            self.counts["deadman_trips"] += 1
        self._tripped = self.deadman.tripped
        stamp = self.get_clock().now().to_msg()
        for key, msg in prompt_to_msgs(prompt, stamp, self.params["frame_id"]).items():
            self.pubs[key].publish(msg)
        if prompt.estop and not self._estop:
            self.estop_pub.publish(Bool(data=True))
            self.counts["estops"] += 1
            self.get_logger().warning("e-stop pressed: /estop sent")
        self._estop = prompt.estop
        self.counts["published"] += 1
        self.prompt = prompt

    def _publish_diagnostics(self) -> None:
        ok = self.device.ok
        publish_status(self, self.diag_pub, "robot_ctrl/teleop", self.params["device"],
                       DiagnosticStatus.OK if ok else DiagnosticStatus.ERROR,
                       "ok" if ok else (self.device.error or self.device.status),
                       {**self.counts, "status": self.device.status,
                        "deadman": "tripped" if self._tripped else "fresh"})

    def destroy_node(self):
        self.device.close()
        return super().destroy_node()


def main(args=None):
    from robot_ctrl.ros.runner import run_nodes

    run_nodes([TeleopNode], args=args)


if __name__ == "__main__":
    main()
