"""Teleop latency benchmark (`robot-ctrl bench teleop`, issue 5 "Measures").

Two figures, all times ``time.monotonic()`` on one machine, in one process:

**Input → topic** (`input_to_topic`, per device). Each device runs its real parsing path fed by
a fake source — keyboard: a real pty (``os.openpty``), a key byte written to the master;
gamepad: the injectable evdev event source; SpaceMouse: the injectable HID report reader; web:
a ``websockets`` client sending ``input`` messages to the device's ``ws_url`` (a 20 Hz
heartbeat between changes, as the page sends); replay: a recorded stream with step changes at
known times. The device is injected into a `TeleopNode` (polled at ``rate_hz``, the deadman in
between) and a probe node subscribes to ``/teleop/twist`` (``COMMAND_STREAM_QOS``); each spins
in its own executor thread. The input alternates between zero and a nonzero command; a trial
is the time from the input (the write to the pty, the event queued, the report queued, just
before the websocket send, the scheduled step of the stream) to the probe's receipt of the
first twist that reflects it. After each edge is seen the benchmark idles
``0.04 s + U(0, 2/rate_hz)`` (the replay stream's steps are ``0.08 s + U(0, 2/rate_hz)``
apart) so the phase of the input against the node's poll period is uniform. The
top-level figures are the press (zero → nonzero, every device); ``release`` (nonzero →
zero) is given for devices with a release (a terminal sends no key-up: the keyboard's twist
ends by itself after ``key_hold``, 0.05 s here to keep the run short, which is not timed).
With ``rate_hz`` 50 a poll waits 0–20 ms, so a p50 near 10 ms plus the transport is
expected.

**Prompt → command** (`prompt_to_command`, once per ``teleop_period``). The graph of
``robot-ctrl teleop`` composed in one process, as `robot_ctrl.teleop.session` does: `SimNode`
(realtime, scene only), `ControllerNode` (output remapped to the safety filter's nominal
topic), `SafetyNode` (``panda_tasks``), `PolicyNode` (``prompt_mode teleop``, the given
``teleop_period``), `TeleopNode` with an injected device whose twist the benchmark sets, and a
probe, all in one executor thread. A trial starts from a steady hold; the operator twist is
set to ±5 cm/s along y (alternating, so the arm stays put); from the probe's receipt of the
first nonzero ``/teleop/twist`` (t0) the benchmark times

* ``prompt_to_chunk``: the receipt of the first operator chunk on
  ``/controller/cartesian_trajectory`` (a chunk whose hand targets move; the policy node's
  ``/teleop/intervening`` flag, published right after it, is checked to be true:
  ``intervening_confirmed`` counts those trials);
* ``prompt_to_command``: the receipt of the first effort command on
  ``/forward_effort_controller/commands`` (the safety filter's output, what the simulator
  applies) after that chunk whose largest joint-torque change from the previous command exceeds
  the hold jitter: ``max(0.05 N·m, 5 × the 90th percentile of the step changes in the 0.15 s
  of hold before the trial)`` (the controller's first command on a moving chunk jumps by
  several N·m; the hold changes by hundredths). A trial starts once the hold is steady (p90
  step change under 0.1 N·m over 0.15 s), after a further random wait of
  ``U(0, max(teleop_period, 4/rate_hz))``;
* ``prompt_to_first_command_after_chunk``: the first command received after the chunk at all
  (the lower bound; usually computed before the controller saw the chunk).

The policy node looks at the operator's prompt once every ``teleop_period`` of sim time, so
``prompt_to_chunk`` is about uniform on [0, teleop_period / realtime factor] plus the transport;
``realtime_factor`` (sim s per wall s during the trials) is reported with it.

`bench_latency` runs both with DDS on the loopback (`robot_ctrl.ros.env.use_loopback`), cleans
up (devices closed, executor threads joined, ``rclpy.shutdown``) and gives every device and
every graph run a time limit (``device_time_limit``, ``graph_time_limit``): no trial starts
after it and every wait inside a trial is bounded, so a stuck part overruns by a few seconds
at most and reports what it measured with ``timed_out: true``; a part that fails reports
``{"error": ...}`` and the others still run. With the defaults (30 trials) the whole
benchmark takes about 50 s. It initialises rclpy itself (the
simulator's thread watches the global context): call it with rclpy not initialised.
"""
from __future__ import annotations

import contextlib
import itertools
import os
import struct
import threading
import time
from collections import deque

import numpy as np

DEVICE_NAMES = ("keyboard", "gamepad", "spacemouse", "web", "replay")
OPERATOR_SPEED = 0.05         # m/s of the graph trials' operator twist
WAIT_S = 1.0                  # longest wait for one edge to show on the topic
IDLE_S = 0.04                 # input -> topic: idle after an edge, plus U(0, 2 poll periods)
HOLD_WINDOW_S = 0.15          # hold before a graph trial whose jitter sets the threshold
JITTER_FLOOR = 0.05           # N·m: the smallest command change counted as "changed"
JITTER_FACTOR = 5.0


def _stats(ms) -> dict:
    """p50/p99/max/mean in ms of a list of latencies (None when empty)."""
    a = np.asarray([x for x in ms if x is not None and np.isfinite(x)], dtype=float)
    if a.size == 0:
        return {"n": 0, "p50_ms": None, "p99_ms": None, "max_ms": None, "mean_ms": None}
    return {"n": int(a.size), "p50_ms": float(np.percentile(a, 50)), "p99_ms": float(np.percentile(a, 99)),
            "max_ms": float(a.max()), "mean_ms": float(a.mean())}


class _Spinner:
    """One executor spun in a background thread (spin_once loop, like runner.spin)."""

    def __init__(self, nodes, name: str):
        from robot_ctrl.ros.runner import make_executor

        self.executor = make_executor()
        for n in nodes:
            self.executor.add_node(n)
        self._stop = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name=f"latency-{name}", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        import rclpy

        try:
            while not self._stop.is_set() and rclpy.ok():
                self.executor.spin_once(timeout_sec=0.02)
        except BaseException as e:  # noqa: BLE001 - reported by the caller
            if rclpy.ok() and not self._stop.is_set():
                self.error = e

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(timeout=5.0)
        self.executor.shutdown()


class _Recorder:
    """Thread-safe log of (receipt time, value) with a wait for the first match after a time."""

    def __init__(self):
        self.items: list[tuple[float, object]] = []
        self.cond = threading.Condition()

    def add(self, value) -> None:
        t = time.monotonic()
        with self.cond:
            self.items.append((t, value))
            self.cond.notify_all()

    def first(self, pred, after: float, timeout: float):
        """(t, value) of the first item received after `after` with pred(value), or None."""
        deadline = time.monotonic() + timeout
        i = 0
        with self.cond:
            while True:
                while i < len(self.items):
                    t, v = self.items[i]
                    i += 1
                    if t > after and pred(v):
                        return t, v
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)

    def window(self, t0: float, t1: float) -> list:
        with self.cond:
            return [(t, v) for t, v in self.items if t0 <= t < t1]

    def trim(self, before: float) -> None:
        with self.cond:
            self.items = [x for x in self.items if x[0] >= before]


def _twist(msg) -> np.ndarray:
    t = msg.twist
    return np.array([t.linear.x, t.linear.y, t.linear.z, t.angular.x, t.angular.y, t.angular.z])


# ---------------------------------------------------------------------------------------
# Input -> topic: a fake source per device, feeding the device's real parsing path
# ---------------------------------------------------------------------------------------

class _QueueEvents:
    """Gamepad event source (`gamepad.EventSource`): events queued by the benchmark."""

    def __init__(self):
        self.q: deque = deque()

    def read(self):
        out = []
        while self.q:
            out.append(self.q.popleft())
        return out


class _QueueHid:
    """SpaceMouse report source (`spacemouse.HidReader`): reports queued by the benchmark."""

    def __init__(self):
        self.q: deque = deque()

    def read(self, size: int, timeout_ms: int) -> bytes:
        return self.q.popleft()[:size] if self.q else b""


class _Driver:
    """Makes a device's input go zero / nonzero. `inject` returns the input's time."""

    has_release = True

    def start(self, node) -> None:
        """Called once the teleop node has opened the device and the probe sees it."""

    def inject(self, active: bool) -> float:
        raise NotImplementedError

    def idle(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds))

    def close(self) -> None:
        """Release the fake source (the node closes the device)."""


class _KeyboardDriver(_Driver):
    has_release = False  # a terminal sends no key-up: the twist ends after key_hold

    def __init__(self, key_hold: float):
        from .keyboard import KeyboardDevice

        self.master, self.slave = os.openpty()
        self.device = KeyboardDevice(fd=self.slave, key_hold=key_hold)

    def inject(self, active: bool) -> float:
        t = time.monotonic()
        os.write(self.master, b"w")  # +x for key_hold
        return t

    def close(self) -> None:
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass


class _GamepadDriver(_Driver):
    def __init__(self):
        from . import gamepad as gp

        self.gp = gp
        self.events = _QueueEvents()
        self.device = gp.GamepadDevice(self.events)

    def inject(self, active: bool) -> float:
        gp = self.gp
        value = -32768 if active else 0  # left stick full forward / back to rest
        t = time.monotonic()
        self.events.q.extend([(gp.EV_ABS, gp.ABS_Y, value), (gp.EV_SYN, 0, 0)])
        return t


class _SpaceMouseDriver(_Driver):
    def __init__(self):
        from .spacemouse import SpaceMouseDevice

        self.hid = _QueueHid()
        self.device = SpaceMouseDevice(self.hid)

    def inject(self, active: bool) -> float:
        report = struct.pack("<Bhhh", 1, 0, -350 if active else 0, 0)  # push away (+x) / rest
        t = time.monotonic()
        self.hid.q.append(report)
        return t


class _WebDriver(_Driver):
    HEARTBEAT_S = 0.05  # the page's 20 Hz input heartbeat

    def __init__(self):
        from .web import WebDevice

        self.device = WebDevice()
        self.ws = None
        self.seq = 0
        self.twist = [0.0] * 6

    def start(self, node) -> None:
        import json

        from websockets.sync.client import connect

        if not self.device.ok:
            raise RuntimeError(f"web device did not open: {self.device.error}")
        self._stack = contextlib.ExitStack()  # connect() is a context manager (websockets >= 17.1)
        self.ws = self._stack.enter_context(
            connect(self.device.ws_url, proxy=None, open_timeout=5, close_timeout=1))
        hello = json.loads(self.ws.recv(timeout=5))
        if hello.get("role") != "controller":
            raise RuntimeError(f"web: expected the controller role, got {hello}")
        self._send()

    def _send(self) -> None:
        import json

        self.seq += 1
        self.ws.send(json.dumps({"type": "input", "seq": self.seq, "twist": self.twist, "gripper": 1.0,
                                 "buttons": {"clutch": False, "intervene": False, "estop": False}}))

    def inject(self, active: bool) -> float:
        self.twist = [1.0 if active else 0.0] + [0.0] * 5
        t = time.monotonic()
        self._send()
        return t

    def idle(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while True:
            self._drain()
            left = end - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(self.HEARTBEAT_S, left))
            if time.monotonic() < end:
                self._send()

    def _drain(self) -> None:
        while True:  # the server's 10 Hz state broadcasts: keep the client's queue empty
            try:
                self.ws.recv(timeout=0)
            except TimeoutError:
                return

    def close(self) -> None:
        if self.ws is not None:
            self.ws = None
            self._stack.close()


class _ReplayDriver(_Driver):
    """A recorded stream with steps at known times; `inject` waits for the next step."""

    def __init__(self, trials: int, rng, rate_hz: float):
        from .replay import ReplayDevice
        from .schema import Prompt

        # step k at t_k: zero -> nonzero for even k, back for odd k; gaps long enough for the
        # previous step to show (tens of ms), random so the poll phase is uniform.
        gaps = 0.08 + rng.uniform(0.0, 2.0 / rate_hz, size=2 * trials)
        self.times = 0.1 + np.concatenate([[0.0], np.cumsum(gaps[:-1])])
        prompts = [Prompt(stamp=0.0, mode="twist")]
        for k, t in enumerate(self.times):
            prompts.append(Prompt(stamp=float(t), mode="twist",
                                  twist=[0.1 if k % 2 == 0 else 0.0, 0, 0, 0, 0, 0]))
        prompts.append(Prompt(stamp=float(self.times[-1] + 0.5), mode="twist"))
        # start at +inf: zero prompts until `start` sets the stream's start time
        self.device = ReplayDevice(prompts, start=float("inf"))
        self.k = 0
        self.t0 = None

    def start(self, node) -> None:
        self.t0 = time.monotonic() + 0.05
        self.device.start = self.t0

    def inject(self, active: bool) -> float:
        t = self.t0 + float(self.times[self.k])
        self.k += 1
        time.sleep(max(0.0, t - time.monotonic()))
        return t

    def idle(self, seconds: float) -> None:
        pass  # the schedule is in the stream


def _make_driver(name: str, trials: int, rng, rate_hz: float, key_hold: float) -> _Driver:
    if name == "keyboard":
        return _KeyboardDriver(key_hold)
    if name == "gamepad":
        return _GamepadDriver()
    if name == "spacemouse":
        return _SpaceMouseDriver()
    if name == "web":
        return _WebDriver()
    if name == "replay":
        return _ReplayDriver(trials, rng, rate_hz)
    raise ValueError(f"unknown teleop device {name!r}; known: {', '.join(DEVICE_NAMES)}")


def _device_latency(name: str, trials: int, rate_hz: float, rng, time_limit: float, key_hold: float) -> dict:
    """One device: TeleopNode(device) + probe, `trials` zero→nonzero(→zero) edges."""
    import rclpy
    from geometry_msgs.msg import TwistStamped
    from rclpy.parameter import Parameter

    from robot_ctrl.ros.teleop_msgs import COMMAND_STREAM_QOS, TOPICS
    from robot_ctrl.ros.teleop_node import TeleopNode

    deadline = time.monotonic() + time_limit
    driver = _make_driver(name, trials, rng, rate_hz, key_hold)
    rec = _Recorder()
    node = probe = None
    spinners = []
    press, release, missed = [], [], 0
    timed_out = False
    try:
        node = TeleopNode(device=driver.device, parameter_overrides=[
            Parameter("device", value=name), Parameter("rate_hz", value=float(rate_hz)),
            Parameter("deadman_timeout", value=0.3)])
        probe = rclpy.create_node(f"latency_probe_{name}")
        probe.create_subscription(TwistStamped, TOPICS["twist"],
                                  lambda m: rec.add(bool(np.any(_twist(m) != 0.0))), COMMAND_STREAM_QOS)
        spinners = [_Spinner([node], f"teleop-{name}"), _Spinner([probe], f"probe-{name}")]
        if rec.first(lambda v: True, -np.inf, min(10.0, time_limit)) is None:
            raise RuntimeError(f"{name}: the probe received no /teleop/twist within 10 s")
        if not driver.device.ok:
            raise RuntimeError(f"{name}: device not ok: {driver.device.status} {driver.device.error}")
        driver.start(node)
        period = 1.0 / rate_hz
        t_seen = time.monotonic()
        for k in range(2 * trials):
            if time.monotonic() > deadline:
                timed_out = True
                break
            active = k % 2 == 0
            t_in = driver.inject(active)
            if active or driver.has_release:
                hit = rec.first(lambda v, a=active: v == a, t_in, WAIT_S)
                if hit is None:
                    missed += 1
                else:
                    (press if active else release).append(1e3 * (hit[0] - t_in))
                    t_seen = hit[0]
            else:  # keyboard: the key's hold ends by itself; wait for the zero before the next press
                rec.first(lambda v: not v, t_seen, WAIT_S + key_hold)
            driver.idle(IDLE_S + rng.uniform(0.0, 2.0 * period))
            rec.trim(time.monotonic() - 1.0)
        for s in spinners:
            if s.error is not None:
                raise RuntimeError(f"{name}: executor failed: {s.error!r}")
    finally:
        for s in spinners:
            s.stop()
        if isinstance(driver, _WebDriver):
            driver.close()  # before the server stops: no close handshake to wait for
        for n in (probe, node):
            if n is not None:
                n.destroy_node()  # the teleop node closes the device
        driver.close()
    out = {**_stats(press), "missed": missed, "timed_out": timed_out,
           "release": _stats(release) if driver.has_release else None}
    if name == "keyboard":
        out["key_hold_s"] = key_hold
    return out


def input_to_topic(devices=DEVICE_NAMES, trials: int = 30, rate_hz: float = 50.0, seed: int = 0,
                   time_limit: float = 30.0, key_hold: float = 0.05) -> dict:
    """Device input → /teleop/twist receipt, per device (see the module doc). rclpy must be
    initialised. A device that fails reports ``{"error": ...}`` and the others still run."""
    rng = np.random.default_rng(seed)
    out = {}
    for name in devices:
        try:
            out[name] = _device_latency(name, int(trials), float(rate_hz), rng, float(time_limit), key_hold)
        except Exception as e:  # noqa: BLE001 - one device's failure is its result
            out[name] = {"error": f"{type(e).__name__}: {e}"}
    return out


# ---------------------------------------------------------------------------------------
# Prompt -> command: the composed graph
# ---------------------------------------------------------------------------------------

def _setpoint_device():
    """A device whose twist the benchmark sets (fresh on every poll)."""
    from .base import Device
    from .schema import Prompt

    class SetpointDevice(Device):
        name = "setpoint"

        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.twist = np.zeros(6)

        def _open(self) -> None:
            pass

        def _poll(self, now: float) -> Prompt:
            self.fresh = True
            return Prompt(stamp=now, mode="twist", twist=self.twist)

    return SetpointDevice()


def _steps(cmds: _Recorder, t0: float, t1: float) -> list[float]:
    """Largest joint-torque change between consecutive commands received in [t0, t1)."""
    u = [v for _, v in cmds.window(t0, t1)]
    return [float(np.abs(b - a).max()) for a, b in itertools.pairwise(u)]


def _wait_steady(cmds: _Recorder, window: float, tol: float = 0.1, timeout: float = 2.0) -> bool:
    """Wait until the commands of the last `window` s change by less than `tol` N·m per
    step (p90: a lone watchdog brake does not count), at most `timeout` s."""
    t_start = time.monotonic()
    while True:
        time.sleep(0.02)
        now = time.monotonic()
        steps = _steps(cmds, now - window, now)
        if now - t_start >= window and len(steps) >= 10 and float(np.percentile(steps, 90)) < tol:
            return True
        if now - t_start > timeout:
            return False


def _moving(msg) -> bool:
    """A chunk whose hand targets move (an operator chunk; a hold chunk repeats one pose)."""
    pts = [(p.transforms[0].translation.x, p.transforms[0].translation.y, p.transforms[0].translation.z)
           for p in msg.points]
    return len(pts) > 1 and float(np.ptp(np.array(pts), axis=0).max()) > 1e-6


def prompt_to_command(teleop_period: float = 0.1, trials: int = 30, rate_hz: float = 50.0, seed: int = 0,
                      time_limit: float = 60.0, task: str = "") -> dict:
    """Operator prompt → chunk → effort command at the simulator, through the composed graph
    (see the module doc). Initialises and shuts down rclpy."""
    os.environ.setdefault("MUJOCO_GL", "egl")
    import rclpy
    from geometry_msgs.msg import TwistStamped
    from rclpy.parameter import Parameter
    from std_msgs.msg import Bool, Float64MultiArray
    from trajectory_msgs.msg import MultiDOFJointTrajectory

    from robot_ctrl.ros.common import COMMAND_QOS, STATE_QOS, TRAJECTORY_QOS
    from robot_ctrl.ros.controller_node import ControllerNode
    from robot_ctrl.ros.policy_node import PolicyNode
    from robot_ctrl.ros.runner import create_nodes
    from robot_ctrl.ros.safety_node import COMPOSED_OVERRIDES, SafetyNode
    from robot_ctrl.ros.sim_node import SimNode
    from robot_ctrl.ros.teleop_msgs import COMMAND_STREAM_QOS, TOPICS
    from robot_ctrl.ros.teleop_node import TeleopNode
    from robot_ctrl.stack import NOMINAL_TOPIC, controller_name, ros_args

    from .session import TASK_SAFETY

    def params(**kw):
        return [Parameter(k, value=v) for k, v in kw.items()]

    from robot_ctrl.ros.env import use_loopback

    use_loopback()
    t_start = time.monotonic()
    deadline = t_start + time_limit
    rng = np.random.default_rng(seed)
    cmd_topic = f"/{controller_name('effort')}/commands"
    dev = _setpoint_device()
    tw, chunks, flags, cmds = _Recorder(), _Recorder(), _Recorder(), _Recorder()
    nodes, spinner = [], None
    res = {"prompt_to_chunk": [], "prompt_to_command": [], "prompt_to_first_command_after_chunk": [],
           "thresholds": [], "confirmed": 0, "missed": 0}
    timed_out = False
    rtf = None
    rclpy.init(args=ros_args(["policy.yaml", "teleop.yaml"]))
    try:
        sim_kw = {"task": task, "task_seed": 3000} if task else {"task": ""}
        sim = create_nodes([SimNode], parameter_overrides=params(
            timing_mode="realtime", command_mode="effort", controller_name=controller_name("effort"), **sim_kw))[0]
        nodes.append(sim)
        nodes += create_nodes([ControllerNode], parameter_overrides=params(command_mode="effort", policy_liveliness=False),
                              cli_args=["--ros-args", "-r", f"{cmd_topic}:={NOMINAL_TOPIC}"])
        nodes += create_nodes([SafetyNode], parameter_overrides=params(
            config=TASK_SAFETY, command_mode="effort", use_sim_time=True, **COMPOSED_OVERRIDES))
        nodes += create_nodes([PolicyNode], parameter_overrides=params(
            prompt_mode="teleop", teleop_period=float(teleop_period)))
        nodes.append(TeleopNode(device=dev, parameter_overrides=params(device=dev.name, rate_hz=float(rate_hz))))
        probe = rclpy.create_node("latency_probe")
        nodes.append(probe)
        probe.create_subscription(TwistStamped, TOPICS["twist"], lambda m: tw.add(bool(np.any(_twist(m) != 0.0))),
                                  COMMAND_STREAM_QOS)
        probe.create_subscription(MultiDOFJointTrajectory, "/controller/cartesian_trajectory",
                                  lambda m: chunks.add(_moving(m)), TRAJECTORY_QOS)
        probe.create_subscription(Bool, "/teleop/intervening", lambda m: flags.add(bool(m.data)), STATE_QOS)
        probe.create_subscription(Float64MultiArray, cmd_topic, lambda m: cmds.add(np.array(m.data)), COMMAND_QOS)
        spinner = _Spinner(nodes, "graph")

        # warm up: hold chunks and commands flowing, then let the arm settle
        if chunks.first(lambda v: True, -np.inf, min(20.0, time_limit)) is None:
            raise RuntimeError("no chunk from the policy node within 20 s")
        if cmds.first(lambda v: True, -np.inf, 5.0) is None:
            raise RuntimeError(f"no command on {cmd_topic} within 5 s")
        w0, s0 = time.monotonic(), sim.sim.time
        for k in range(int(trials)):
            if time.monotonic() > deadline - 3.0:
                timed_out = True
                break
            # a steady hold, then a random wait: uniform phase against teleop_period and the poll
            _wait_steady(cmds, HOLD_WINDOW_S)
            time.sleep(rng.uniform(0.0, max(teleop_period, 4.0 / rate_hz)))
            t_set = time.monotonic()
            steps = _steps(cmds, t_set - HOLD_WINDOW_S, t_set)
            # p90, not the max: a watchdog brake during the hold must not hide the change
            jitter = float(np.percentile(steps, 90)) if steps else 0.0
            thr = max(JITTER_FLOOR, JITTER_FACTOR * jitter)
            sign = 1.0 if k % 2 == 0 else -1.0
            dev.twist = np.array([0.0, sign * OPERATOR_SPEED, 0.0, 0.0, 0.0, 0.0])
            try:
                hit = tw.first(lambda v: v, t_set, WAIT_S)
                # any moving chunk after t_set answers this twist (the previous trial ended on hold chunks)
                ch = hit and chunks.first(lambda v: v, t_set, 2.0 * teleop_period + 2.0)
                if not ch:
                    res["missed"] += 1
                    continue
                t0, t_ch = hit[0], ch[0]
                first = cmds.first(lambda v: True, t_ch, 0.5)
                prev = {"u": None}

                def changed(u, prev=prev, thr=thr):
                    # the first command after the chunk is compared with the last one before it
                    before = prev["u"]
                    prev["u"] = u
                    return before is not None and float(np.abs(u - before).max()) > thr

                last_before = cmds.window(t_ch - 1.0, t_ch)
                prev["u"] = last_before[-1][1] if last_before else None
                chg = cmds.first(changed, t_ch, 0.5)
                res["prompt_to_chunk"].append(1e3 * (t_ch - t0))
                res["prompt_to_first_command_after_chunk"].append(1e3 * (first[0] - t0) if first else None)
                res["prompt_to_command"].append(1e3 * (chg[0] - t0) if chg else None)
                res["thresholds"].append(thr)
                if any(v for _, v in flags.window(t_ch - 0.005, t_ch + 0.1)):
                    res["confirmed"] += 1
                time.sleep(0.03)
            finally:
                t_rel = time.monotonic()
                dev.twist = np.zeros(6)
                chunks.first(lambda v: not v, t_rel, 2.0 * teleop_period + 1.0)  # back to hold chunks
                for r in (tw, chunks, flags, cmds):
                    r.trim(time.monotonic() - 2.0)
        wall = time.monotonic() - w0
        rtf = (sim.sim.time - s0) / wall if wall > 0 else None
        if spinner.error is not None:
            raise RuntimeError(f"graph executor failed: {spinner.error!r}")
    finally:
        if spinner is not None:
            spinner.stop()
        for n in reversed(nodes):
            n.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    n = len(res["prompt_to_chunk"])
    return {"teleop_period_s": float(teleop_period), "task": task or "scene", "trials": n,
            "missed": res["missed"], "timed_out": timed_out,
            "prompt_to_chunk": _stats(res["prompt_to_chunk"]),
            "prompt_to_command": _stats(res["prompt_to_command"]),
            "prompt_to_first_command_after_chunk": _stats(res["prompt_to_first_command_after_chunk"]),
            "command_change_not_found": sum(x is None for x in res["prompt_to_command"]),
            "intervening_confirmed": res["confirmed"],
            "hold_jitter_threshold_nm_median": float(np.median(res["thresholds"])) if res["thresholds"] else None,
            "realtime_factor": rtf, "wall_s": time.monotonic() - t_start}


# ---------------------------------------------------------------------------------------
# Both
# ---------------------------------------------------------------------------------------

def bench_latency(devices=DEVICE_NAMES, trials: int = 30, rate_hz: float = 50.0, *,
                  teleop_periods=(0.1, 0.02), graph_trials: int | None = None, seed: int = 0,
                  device_time_limit: float = 30.0, graph_time_limit: float = 60.0,
                  key_hold: float = 0.05) -> dict:
    """Input → topic for each of `devices` and prompt → chunk → command for each of
    `teleop_periods` (empty: skip the graph). See the module doc for what is measured."""
    import rclpy

    from robot_ctrl.ros.env import use_loopback

    if int(trials) < 1 or not rate_hz > 0:
        raise ValueError(f"trials must be >= 1 and rate_hz > 0, got {trials!r}, {rate_hz!r}")
    if rclpy.ok():
        raise RuntimeError("bench_latency initialises rclpy itself: call it with rclpy shut down")
    use_loopback()
    t0 = time.monotonic()
    rclpy.init()
    try:
        devs = input_to_topic(tuple(devices), trials, rate_hz, seed, device_time_limit, key_hold)
    finally:
        if rclpy.ok():
            rclpy.shutdown()
    graph = {}
    for k, period in enumerate(teleop_periods):
        try:
            graph[f"{float(period):g}"] = prompt_to_command(
                float(period), graph_trials if graph_trials is not None else trials, rate_hz, seed + 1 + k,
                graph_time_limit)
        except Exception as e:  # noqa: BLE001 - reported in the result
            graph[f"{float(period):g}"] = {"teleop_period_s": float(period), "error": f"{type(e).__name__}: {e}"}
    return {"benchmark": "teleop_latency", "rate_hz": float(rate_hz), "trials": int(trials),
            "input_to_topic": devs, "prompt_to_command_by_teleop_period": graph,
            "measures": {
                "input_to_topic": "device input (pty write, event/report queued, websocket send, replay step) -> "
                                  "probe receipt of the first /teleop/twist reflecting it; press = zero->nonzero, "
                                  "release = nonzero->zero",
                "prompt_to_chunk": "probe receipt of the first nonzero /teleop/twist -> receipt of the first "
                                   "operator (moving) chunk on /controller/cartesian_trajectory",
                "prompt_to_command": "same start -> first effort command on /forward_effort_controller/commands "
                                     "after that chunk changing by more than max(0.05 N m, 5 x hold jitter)",
                "prompt_to_first_command_after_chunk": "same start -> first effort command received after the chunk",
            },
            "wall_s": time.monotonic() - t0}


def summary_rows(result: dict) -> dict:
    """`robot-ctrl bench teleop` without ``--json``: the nested result as flat table rows
    (latencies as "p50 / p99 / max ms")."""

    def ms(s: dict | None) -> str:
        if not s or not s.get("n"):
            return "no samples"
        return f"{s['p50_ms']:.1f} / {s['p99_ms']:.1f} / {s['max_ms']:.1f}  (n={s['n']})"

    rows = {"benchmark": result.get("benchmark", "teleop")}
    lat = result.get("latency")
    if lat:
        for dev, r in lat["input_to_topic"].items():
            if "error" in r:
                rows[f"input→topic {dev}"] = r["error"]
                continue
            rows[f"input→topic {dev} press p50/p99/max ms"] = ms(r)
            if r.get("release"):
                rows[f"input→topic {dev} release p50/p99/max ms"] = ms(r["release"])
        for period, g in lat["prompt_to_command_by_teleop_period"].items():
            if "error" in g:
                rows[f"prompt→command teleop_period {period} s"] = g["error"]
                continue
            rows[f"prompt→chunk (teleop_period {period} s) ms"] = ms(g["prompt_to_chunk"])
            rows[f"prompt→command (teleop_period {period} s) ms"] = ms(g["prompt_to_command"])
            rtf = g.get("realtime_factor")
            rows[f"sim realtime factor (teleop_period {period} s)"] = f"{rtf:.2f}" if rtf else "-"
    study = result.get("operator_study")
    if study:
        for arm in ("teleop_only", "shared_autonomy", "policy_only"):
            s = study[arm]
            ttt = s["time_to_target_s_median"]
            rows[f"study {arm}: success / median time-to-target"] = (
                f"{100 * s['success_rate']:.0f} % / " + (f"{ttt:.1f} s" if ttt is not None else "-"))
    return rows
