"""Managed (lifecycle) nodes: the controller, the safety filter and the policy node.

Each is an `rclpy.lifecycle` node with the standard states and services (`~/change_state`,
`~/get_state`, ...), so a supervisor (robot_ctrl.ros.supervisor) or `ros2 lifecycle set` steps
it through:

* **configure** loads what the node needs (robot model, constraints, checkpoint) and creates
  its topics. A failure returns FAILURE (the node stays unconfigured) and says why, in the log
  and in `last_error` on /diagnostics.
* **activate** needs a fresh joint state (newer than `activation_state_age_s`, wall clock on
  arrival): without one it is refused and the node stays inactive.
* **deactivate**: the node stops commanding; each node says what that means (the controller
  drops its chunk, the safety filter brakes to a stop and holds, the policy stops predicting).
* **cleanup** returns to unconfigured; **shutdown** ends it.

`autostart` (default true) runs configure at construction and activate with the first fresh
joint state, so `ros2 run`, the composed runner and the simulation launches work as before;
a configure failure under autostart stops start-up with the error (exit 2). robot.launch.py
sets `autostart: false` and lets the supervisor order the transitions.

A node subclass passes its parameter spec to `ManagedNode.__init__` (declared at once, so a bad
value stops the process naming it) and implements `configure()` (raise on a bad configuration), optionally
`on_activated()`, `on_deactivated()`, `on_cleanup_entities()`, and calls `self.note_state()`
from its joint-state callback (which also triggers the autostart activation).
"""
from __future__ import annotations

import time

from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn

from robot_ctrl.ros.common import Param, declare_parameters

LIFECYCLE_PARAMS = {
    "autostart": Param(True, "Configure at start-up and activate with the first fresh joint state; false: "
                             "wait for a supervisor (or `ros2 lifecycle set`)."),
    "activation_state_age_s": Param(0.5, "activate needs a joint state that arrived at most this long ago (s).",
                                    positive=True),
}


class ManagedNode(LifecycleNode):
    """Base of the stack's lifecycle nodes (see the module doc)."""

    def __init__(self, name: str, params: dict[str, Param], **kwargs):
        """Declares `params` (the node's, validated: a bad value stops start-up naming it) and
        the lifecycle parameters; configures at once under autostart."""
        super().__init__(name, **kwargs)
        self.params = declare_parameters(self, params)
        self.params.update(self.declare_more_parameters())
        self.lifecycle = declare_parameters(self, LIFECYCLE_PARAMS)
        self._autostart_pending = False
        self.active = False
        self.configured = False
        self.last_error = ""
        self.state_rx: float | None = None  # monotonic time of the latest accepted joint state
        self.transitions = {"configure": 0, "activate": 0, "deactivate": 0, "refused": 0}
        self._entities: list = []
        if self.lifecycle["autostart"]:
            self._configure_or_raise()

    # -- what subclasses implement ---------------------------------------------------------
    def configure(self) -> None:
        raise NotImplementedError

    def declare_more_parameters(self) -> dict:
        """Parameters the spec cannot express (e.g. string lists), declared at construction."""
        return {}

    def on_activated(self) -> None:
        """Called when the node becomes active (e.g. hold where the robot is)."""

    def on_deactivated(self) -> None:
        """Called when the node stops being active."""

    # -- helpers for subclasses ------------------------------------------------------------
    def managed(self, entity):
        """Register a subscription, publisher, timer or service made in configure(), so cleanup
        destroys it; returns it."""
        self._entities.append(entity)
        return entity

    def note_state(self) -> None:
        """A joint state was accepted: remember when, and activate now under autostart."""
        self.state_rx = time.monotonic()
        if self.lifecycle["autostart"] and self.configured and not self.active and self._autostart_pending:
            self._autostart_pending = False
            self.trigger_activate()

    def state_fresh(self) -> bool:
        return self.state_rx is not None and time.monotonic() - self.state_rx <= self.lifecycle["activation_state_age_s"]

    # -- transitions -----------------------------------------------------------------------
    def _configure_or_raise(self) -> None:
        self._do_configure()  # a start-up error propagates: the runner exits naming it
        # move the state machine along with what was done (the callback sees it is configured)
        self._autostart_pending = True
        self.trigger_configure()

    def _do_configure(self) -> None:
        if not self.configured:
            self.configure()
            self.configured = True
            self.last_error = ""

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        from robot_ctrl.ros.runner import STARTUP_ERRORS

        try:
            self._do_configure()
        except STARTUP_ERRORS as exc:
            self.last_error = f"configure failed: {exc}"
            self.get_logger().error(self.last_error)
            self._destroy_entities()
            return TransitionCallbackReturn.FAILURE
        self.transitions["configure"] += 1
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        if not self.state_fresh():
            age = "no joint state yet" if self.state_rx is None else \
                f"the latest joint state is {time.monotonic() - self.state_rx:.2f} s old"
            self.last_error = f"activate refused: needs a fresh joint state ({age})"
            self.get_logger().error(self.last_error)
            self.transitions["refused"] += 1
            if self.lifecycle["autostart"]:
                self._autostart_pending = True  # try again with the next state
            return TransitionCallbackReturn.FAILURE
        self.active = True
        self.last_error = ""
        self.transitions["activate"] += 1
        self.on_activated()
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.active = False
        self.transitions["deactivate"] += 1
        self.on_deactivated()
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._destroy_entities()
        self.configured = False
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        if self.active:
            self.active = False
            self.on_deactivated()
        return TransitionCallbackReturn.SUCCESS

    def _destroy_entities(self) -> None:
        for e in reversed(self._entities):
            kind = type(e).__name__
            destroy = {"Subscription": self.destroy_subscription, "Publisher": self.destroy_publisher,
                       "Timer": self.destroy_timer, "Service": self.destroy_service}.get(kind)
            if destroy is not None:
                destroy(e)
        self._entities.clear()

    def lifecycle_values(self) -> dict:
        """For /diagnostics."""
        return {"lifecycle": "active" if self.active else ("inactive" if self.configured else "unconfigured"),
                "last_error": self.last_error, **{f"transitions_{k}": v for k, v in self.transitions.items()}}
