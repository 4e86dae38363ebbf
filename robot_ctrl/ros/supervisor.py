"""Lifecycle supervisor: steps the managed nodes (robot_ctrl.ros.lifecycle) through their
lifecycle in order, and brings a restarted node back to a safe hold.

Parameters  nodes                   the managed nodes in activation order (default
                                    safety_filter, controller, policy): configure all in this
                                    order, then activate in this order (the safety filter first);
                                    deactivate in the reverse order (the safety filter last)
            optional_nodes          listed nodes that may be absent (default policy: robot.launch.py
                                    starts it only with policy:=true); an absent one is skipped,
                                    and brought up if it appears later
            autostart               start up when the nodes are there (default true); a required
                                    node that is not there yet is waited for, retrying every
                                    monitor_period_s
            activate_timeout_s      how long activation is retried while a node refuses it
                                    (no fresh joint state yet)
            service_timeout_s       how long to wait for a node's lifecycle services
            monitor_period_s        how often every node's state is checked
Services    ~/startup, ~/shutdown   std_srvs/Trigger: bring the stack up / down (reverse order)
Publishes   /diagnostics            robot_ctrl/supervisor: each node's state, the last failure

A transition that fails stops the sequence with the node and the transition named (the node's
own log and /diagnostics say why: `last_error`); nodes activated before it are deactivated
again, in reverse order, so nothing is left commanding. While the stack is up, a node that
disappears (crash) is reported; when it comes back (respawned: unconfigured), it is configured
and activated again once every node before it is active. Each node decides what activation
means for safety: the controller starts by holding where the robot is, never resuming the last
motion command, and the safety filter refuses to activate without a fresh joint state.

The service calls run on a worker thread; the node's executor completes their futures.
"""
from __future__ import annotations

import threading
import time

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from lifecycle_msgs.msg import State, Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rclpy.node import Node
from std_srvs.srv import Trigger

from robot_ctrl.ros.common import Param, ParameterError, declare_parameters, declare_string_list, publish_status

PARAMS = {
    "autostart": Param(True, "Bring the stack up as soon as the nodes are there."),
    "activate_timeout_s": Param(10.0, "Seconds activation is retried while a node refuses it.", positive=True),
    "service_timeout_s": Param(10.0, "Seconds to wait for a node's lifecycle services.", positive=True),
    "monitor_period_s": Param(1.0, "Seconds between state checks of every node.", positive=True),
}
DEFAULT_NODES = ["safety_filter", "controller", "policy"]
STATE_NAMES = {State.PRIMARY_STATE_UNKNOWN: "unknown", State.PRIMARY_STATE_UNCONFIGURED: "unconfigured",
               State.PRIMARY_STATE_INACTIVE: "inactive", State.PRIMARY_STATE_ACTIVE: "active",
               State.PRIMARY_STATE_FINALIZED: "finalized"}


class TransitionFailed(RuntimeError):
    pass


class NodeMissing(TransitionFailed):
    """A required node's lifecycle services are not there (yet)."""


class Supervisor(Node):
    def __init__(self, **kwargs):
        super().__init__("lifecycle_supervisor", **kwargs)
        self.params = declare_parameters(self, PARAMS)
        nodes = declare_string_list(self, "nodes", "Managed nodes in activation order.", default=DEFAULT_NODES)
        if not nodes:
            raise ParameterError("parameter 'nodes' of node 'lifecycle_supervisor' is empty")
        if "safety_filter" in nodes and nodes[0] != "safety_filter":
            raise ParameterError("parameter 'nodes' of node 'lifecycle_supervisor': the safety filter must come "
                                 f"first (it activates first and deactivates last), got {nodes}")
        self.nodes = [n.strip("/") for n in nodes]
        self.optional = set(declare_string_list(self, "optional_nodes", "Listed nodes that may be absent.",
                                                default=["policy"]))
        self.change = {n: self.create_client(ChangeState, f"/{n}/change_state") for n in self.nodes}
        self.get = {n: self.create_client(GetState, f"/{n}/get_state") for n in self.nodes}
        self.states = {n: "unknown" for n in self.nodes}
        self.want_up = False
        self.last_failure = ""
        self.waiting_for = ""  # the required node a start-up found missing (and is still waiting for)
        self.counts = {"startups": 0, "shutdowns": 0, "failures": 0, "lost": 0, "recovered": 0}
        self._lock = threading.Lock()  # one sequence at a time
        self._stop = threading.Event()
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_service(Trigger, "~/startup", self._on_startup)
        self.create_service(Trigger, "~/shutdown", self._on_shutdown)
        self.create_timer(1.0, self._publish_diagnostics)
        self._worker = threading.Thread(target=self._run, name="lifecycle-supervisor", daemon=True)
        self._worker.start()
        self.get_logger().info(f"supervising {', '.join(self.nodes)}")

    # -- service calls (worker thread) -------------------------------------------------------
    def _call(self, client, request, timeout: float):
        if not client.wait_for_service(timeout_sec=timeout):
            return None
        done = threading.Event()
        fut = client.call_async(request)
        fut.add_done_callback(lambda _: done.set())
        if not done.wait(timeout):
            client.remove_pending_request(fut)
            return None
        return fut.result()

    def _state(self, node: str, timeout: float | None = None) -> str:
        r = self._call(self.get[node], GetState.Request(), timeout or self.params["service_timeout_s"])
        state = "missing" if r is None else STATE_NAMES.get(r.current_state.id, r.current_state.label)
        self.states[node] = state
        return state

    def _transition(self, node: str, transition: int, name: str) -> None:
        req = ChangeState.Request()
        req.transition.id = transition
        r = self._call(self.change[node], req, self.params["service_timeout_s"])
        if r is None:
            raise TransitionFailed(f"{name} {node}: no answer from /{node}/change_state")
        if not r.success:
            raise TransitionFailed(f"{name} {node} failed (see /{node}'s log and last_error on /diagnostics)")
        self._state(node)

    def _activate(self, node: str) -> None:
        deadline = time.monotonic() + self.params["activate_timeout_s"]
        while True:
            try:
                self._transition(node, Transition.TRANSITION_ACTIVATE, "activate")
                return
            except TransitionFailed:
                if time.monotonic() > deadline or self._stop.is_set():
                    raise
                time.sleep(0.1)  # refused (no fresh joint state yet): try again

    def startup(self) -> tuple[bool, str]:
        """Configure every node (in order), then activate them in order."""
        with self._lock:
            self.want_up = True
            activated = []
            try:
                for n in self.nodes:
                    state = self._state(n, timeout=2.0 if n in self.optional else None)
                    if state == "missing" and n in self.optional:
                        self.states[n] = "absent"
                        continue
                    if state == "missing":
                        raise NodeMissing(f"configure {n}: /{n}/get_state not available (is the node running?)")
                    if state == "unconfigured":
                        self._transition(n, Transition.TRANSITION_CONFIGURE, "configure")
                for n in self.nodes:
                    if self.states[n] == "absent":
                        continue
                    if self.states[n] != "active":
                        self._activate(n)
                    activated.append(n)
            except TransitionFailed as exc:
                self.counts["failures"] += 1
                self.last_failure = str(exc)
                self.get_logger().error(f"startup stopped: {exc}")
                for n in reversed(activated):
                    try:
                        self._transition(n, Transition.TRANSITION_DEACTIVATE, "deactivate")
                    except TransitionFailed as exc2:
                        self.get_logger().error(str(exc2))
                self.want_up = False
                self.waiting_for = str(exc) if isinstance(exc, NodeMissing) else ""
                return False, str(exc)
            self.counts["startups"] += 1
            self.last_failure = self.waiting_for = ""
            up = [n for n in self.nodes if self.states[n] == "active"]
            self.get_logger().info(f"up: {', '.join(up)} active")
            return True, "active: " + ", ".join(up)

    def shutdown(self) -> tuple[bool, str]:
        """Deactivate in reverse order (the safety filter last: it brakes and holds)."""
        with self._lock:
            self.want_up = False
            problems = []
            for n in reversed(self.nodes):
                if self.states[n] == "absent":
                    continue  # an optional node that is not there: nothing to wait for
                if self._state(n) == "active":
                    try:
                        self._transition(n, Transition.TRANSITION_DEACTIVATE, "deactivate")
                    except TransitionFailed as exc:
                        problems.append(str(exc))
            self.counts["shutdowns"] += 1
            if problems:
                self.last_failure = "; ".join(problems)
                return False, self.last_failure
            return True, "inactive (safety filter holding): " + ", ".join(reversed(self.nodes))

    def _monitor(self) -> None:
        """While up: a node that is gone is reported; one that is back unconfigured (restarted)
        is brought up again behind the nodes before it."""
        with self._lock:
            if not self.want_up:
                return
            for i, n in enumerate(self.nodes):
                before = self.states[n]
                state = self._state(n, timeout=0.5)
                if state == "missing" and before == "absent":
                    self.states[n] = "absent"  # an optional node that is not there
                    continue
                if state == "missing" and before != "missing":
                    self.counts["lost"] += 1
                    self.last_failure = f"{n} lost (crashed or stopped)"
                    self.get_logger().error(self.last_failure)
                if state in ("unconfigured", "inactive") and all(self.states[m] in ("active", "absent") for m in self.nodes[:i]):
                    try:
                        if state == "unconfigured":
                            self._transition(n, Transition.TRANSITION_CONFIGURE, "configure")
                        self._activate(n)
                        self.counts["recovered"] += 1
                        self.get_logger().warn(f"{n} back: configured and activated again")
                    except TransitionFailed as exc:
                        self.counts["failures"] += 1
                        self.last_failure = str(exc)
                        self.get_logger().error(str(exc))

    def _run(self) -> None:
        if self.params["autostart"]:
            ok, _ = self.startup()
            # at launch the nodes come up together and a loaded machine can take longer than
            # service_timeout_s to start one: a missing required node is waited for (a refused
            # transition is not retried: that needs the operator)
            while not ok and self.waiting_for and not self._stop.wait(self.params["monitor_period_s"]):
                self.get_logger().warn(f"still waiting: {self.waiting_for}")
                ok, _ = self.startup()
        while not self._stop.wait(self.params["monitor_period_s"]):
            try:
                self._monitor()
            except Exception as exc:  # noqa: BLE001  (the context went away at shutdown)
                if self._stop.is_set():
                    return
                self.get_logger().error(f"monitor: {exc}")

    # -- services / diagnostics --------------------------------------------------------------
    def _on_startup(self, request, response):
        threading.Thread(target=self.startup, daemon=True).start()  # (the executor must keep spinning)
        response.success, response.message = True, "starting up: " + ", ".join(self.nodes)
        return response

    def _on_shutdown(self, request, response):
        threading.Thread(target=self.shutdown, daemon=True).start()
        response.success, response.message = True, "shutting down: " + ", ".join(reversed(self.nodes))
        return response

    def _publish_diagnostics(self) -> None:
        up = all(self.states[n] in ("active", "absent") for n in self.nodes)
        level = DiagnosticStatus.OK if up else (DiagnosticStatus.ERROR if self.last_failure else DiagnosticStatus.WARN)
        message = "all active" if up else (self.last_failure or "not all active")
        publish_status(self, self.diag_pub, "robot_ctrl/supervisor", "lifecycle", level, message,
                       {**{f"state_{n}": s for n, s in self.states.items()}, **self.counts,
                        "order": ",".join(self.nodes), "last_failure": self.last_failure})

    def destroy_node(self):
        self._stop.set()
        return super().destroy_node()


def main(args=None):
    from robot_ctrl.ros.runner import run_nodes

    run_nodes([Supervisor], args=args)


if __name__ == "__main__":
    main()
