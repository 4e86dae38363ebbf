"""Fault injection against the running stack (issue 6): `robot-ctrl bench faults` and
tests/test_faults.py run the same scenarios; the bench reports the figures, the tests check
the required responses.

Each scenario starts the graph as processes, as `ros2 launch` would (robot_ctrl node
executables with the config/*.yaml params files): a backend (`sim`: the MuJoCo simulator in
real time, or `fake`: the fake ros2_control hardware, effort interface), the controller, the
safety filter, the policy node in `teleop` mode and a teleop node replaying a steady hand
motion (+y at 5 cm/s), so the arm is moving under a policy when the fault comes. A probe node
in this process watches /joint_states (the hand via the robot's kinematics) and the safety
filter's per-command metrics (status 0 ok, 1 relaxed, 2 brake, 3 rejected, 4 stop).

| scenario | fault | required response | figures |
|---|---|---|---|
| policy_kill | SIGKILL the policy node | the safety filter brakes to a stop and holds | kill → first braking command (ms), stopping distance, drift while held |
| state_stall | SIGSTOP the backend (state stream stalls) | watchdog brake within 2 periods | the filter's own last state → brake (periods), the same seen from here (ms, periods), late-state brakes before the stall |
| command_stall | SIGSTOP the controller | hold position | stall → brake (ms), drift while held |
| storm | every state followed by 10 copies from another process (robot_ctrl.ros.storm): duplicated and out-of-order stamps, 11x the stream | bounded queues and latency | command latency p50/p99 before/during, memory growth, messages/s, genuine state rate during |
| stamp_jump | a state stamped 1 s ahead (a clock jump) | detected, no burst, no NaN | commands in the busiest and a typical 50 ms, max command step, braking after |
| clock_jump | under use_sim_time, 50 ms of a /clock 1 s ahead, then the simulator's clock alone | detected, no burst, no NaN, back to motion | as stamp_jump, hand speed after |
| estop | /estop true | no motion command until a reset with fresh state | e-stop → stop (ms), stopping distance, motion commands after the stop |
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SCENARIOS = ("policy_kill", "state_stall", "command_stall", "storm", "stamp_jump", "clock_jump", "estop")
SIM_ONLY = {"clock_jump"}  # /clock comes from the simulator
BACKENDS = ("sim", "fake")
CMD = "/forward_effort_controller/commands"
NOMINAL = "/safety_filter/nominal"
BRAKING = (2.0, 4.0)  # metrics status: brake, stop
STOP = 4.0
CONTROL_PERIOD_S = 0.002


def _exe(name: str) -> str:
    path = Path(sys.executable).parent / name
    if not path.exists():
        raise FileNotFoundError(f"node executable {path} is not installed (pip install -e .)")
    return str(path)


def start(executable: str, params_file: str, overrides: dict | None = None, remap: dict | None = None):
    from robot_ctrl.paths import config_path

    cmd = [_exe(executable), "--ros-args", "--params-file", str(config_path(params_file))]
    for k, v in (overrides or {}).items():
        cmd += ["-p", f"{k}:={v}"]
    for k, v in (remap or {}).items():
        cmd += ["-r", f"{k}:={v}"]
    # ROBOT_CTRL_FAULT_LOGS=DIR: each node's output to DIR/<executable>.log (else discarded)
    logs = os.environ.get("ROBOT_CTRL_FAULT_LOGS")
    out = subprocess.DEVNULL
    if logs:
        Path(logs).mkdir(parents=True, exist_ok=True)
        out = open(Path(logs) / f"{executable}.log", "w")  # noqa: SIM115 (the child holds it)
    try:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=_env())
    finally:
        if out is not subprocess.DEVNULL:
            out.close()


# the ROS domain of the graph being run (a domain of its own when run_many owns the rclpy
# context: a node left over from an earlier graph or test, still publishing, cannot reach it)
_DOMAIN: list[int] = []
_RUNS = [0]


def _env() -> dict:
    """The environment of a process of the graph (its ROS domain, see _DOMAIN)."""
    return {**os.environ, **({"ROS_DOMAIN_ID": str(_DOMAIN[0])} if _DOMAIN else {})}


def stop_all(procs) -> None:
    for p in procs:
        if p.poll() is None:
            try:
                p.send_signal(signal.SIGCONT)
                p.send_signal(signal.SIGINT)
            except ProcessLookupError:
                pass
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


class Probe:
    """Watches the graph from this process."""

    def __init__(self, node, robot):
        from sensor_msgs.msg import JointState
        from std_msgs.msg import Float64MultiArray

        from robot_ctrl.control.cartesian import DiffIK

        self.node = node
        self.ik = DiffIK(robot)
        self.names = list(robot.joint_names)
        # (state stamp in s, hand position): kinematics on the robot's own timeline, so that this
        # process being held up (its receipts bunched) does not bend speeds and distances
        self.hands: list[tuple[float, np.ndarray]] = []
        self.state_rx: list[float] = []                   # (monotonic) receipt of each state
        self.last_state = None
        self._stamp = -1
        self.own_stamps: set[int] = set()  # (ns) of the states this process publishes itself
        self.metrics: list[tuple[float, list]] = []       # (monotonic, [t, h_min, |du|, solve_us, status])
        self.cmds: list[tuple[float, list]] = []
        node.create_subscription(JointState, "/joint_states", self._on_state, 50)
        node.create_subscription(Float64MultiArray, "/safety_filter/metrics",
                                 lambda m: self.metrics.append((time.monotonic(), list(m.data))), 200)
        node.create_subscription(Float64MultiArray, CMD, lambda m: self.cmds.append((time.monotonic(), list(m.data))),
                                 200)
        from diagnostic_msgs.msg import DiagnosticArray

        self.safety_diag: dict[str, str] = {}
        self.t_safety_diag = -np.inf  # (monotonic) when safety_diag came
        node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 20)

    def _on_diag(self, msg) -> None:
        for st in msg.status:
            if st.name == "robot_ctrl/safety_filter":
                self.safety_diag = {kv.key: kv.value for kv in st.values}
                self.t_safety_diag = time.monotonic()

    def fresh_safety_diag(self, timeout: float = 3.0) -> dict[str, str]:
        """The safety filter's next diagnostics (published after this call), or {} after `timeout`."""
        t = time.monotonic()
        self.spin(timeout, until=lambda: self.t_safety_diag > t, procs=())
        return self.safety_diag if self.t_safety_diag > t else {}

    def _on_state(self, m) -> None:
        stamp = m.header.stamp.sec * 1_000_000_000 + m.header.stamp.nanosec
        if stamp <= self._stamp or stamp in self.own_stamps:
            return  # a copy or an older state (the storm's, or this probe's own): not the robot's
        self._stamp = stamp
        names = list(m.name)
        try:
            q = np.array([m.position[names.index(j)] for j in self.names])
        except (ValueError, IndexError):
            return
        now = time.monotonic()
        self.state_rx.append(now)
        self.last_state = m
        self.hands.append((stamp * 1e-9, self.ik.ee_pose(q)[0].copy()))

    def spin(self, seconds: float, until=None, procs=()) -> bool:
        import rclpy

        end = time.monotonic() + seconds
        while time.monotonic() < end:
            rclpy.spin_once(self.node, timeout_sec=0.002)
            if until is not None and until():
                return True
            for p in procs:
                if p.poll() is not None and p.returncode not in (-signal.SIGKILL,):
                    raise RuntimeError(f"a node exited early ({p.args[0]}: {p.returncode})")
        return False

    def hand(self) -> np.ndarray:
        return self.hands[-1][1]

    def hand_at(self, stamp: float) -> np.ndarray:
        """The hand at the newest state stamped at or before `stamp` (s)."""
        for t, p in reversed(self.hands):
            if t <= stamp + 1e-9:
                return p
        return self.hands[0][1]

    def last_stamp(self) -> float:
        return self.hands[-1][0] if self.hands else -np.inf

    def velocity(self, window: float = 0.1) -> np.ndarray:
        """The hand's mean velocity over the last `window` s of states (zero before there are)."""
        if len(self.hands) >= 2:
            t1, p1 = self.hands[-1]
            for t0, p0 in reversed(self.hands):
                if t1 - t0 >= window:
                    return (p1 - p0) / (t1 - t0)
        return np.zeros(3)

    def speed(self, window: float = 0.1) -> float:
        return float(np.linalg.norm(self.velocity(window)))

    def first_braking_after(self, t: float, statuses=BRAKING) -> float | None:
        m = self.first_braking_metric_after(t, statuses)
        return None if m is None else m[0]

    def first_braking_metric_after(self, t: float, statuses=BRAKING):
        """(receipt time, metric) of the first braking command received at or after `t`."""
        for tm, m in self.metrics:
            if tm >= t and m[4] in statuses:
                return tm, m
        return None

    def settle(self, procs, timeout: float = 5.0, still: float = 0.002) -> float:
        """Spin until the hand is at rest (speed < `still` m/s over 0.1 s); return the time."""
        self.spin(timeout, until=lambda: self.speed() < still and len(self.hands) > 20, procs=procs)
        return time.monotonic()


def _stream(path: Path, seconds: float = 60.0, v: float = 0.05) -> str:
    from robot_ctrl.teleop.replay import save_prompts
    from robot_ctrl.teleop.schema import Prompt

    dt = 0.02
    save_prompts(path, [Prompt(stamp=k * dt, mode="twist", twist=[0, v, 0, 0, 0, 0]) for k in range(int(seconds / dt))])
    return str(path)


def _graph(backend: str, tmp: Path, backend_extra: dict | None = None, sim_time: bool = False) -> dict:
    clock = {"use_sim_time": "true"} if sim_time else {}
    if backend == "sim":
        hw = start("sim_node", "sim.yaml", {"timing_mode": "realtime", **(backend_extra or {})})
    else:
        hw = start("fake_hardware_node", "fake_hardware.yaml",
                   {"controller_name": "forward_effort_controller", "interface": "effort", "actuator_tau": 0.002,
                    **(backend_extra or {})})
    procs = {
        "backend": hw,
        "controller": start("controller_node", "controller.yaml", clock, remap={CMD: NOMINAL}),
        "safety": start("safety_node", "safety_filter.yaml", clock),
        "policy": start("policy_node", "policy.yaml", {"prompt_mode": "teleop", **clock}),
    }
    procs["teleop"] = start("teleop_node", "teleop.yaml", {
        "device": "replay", "device_args": json.dumps(json.dumps({"path": _stream(tmp / "prompts.jsonl")}))})
    return procs


def _moving(probe: Probe, procs, timeout: float = 60.0) -> bool:
    """Wait until the arm moves steadily under the policy's chunks: the policy node is up and
    the safety filter has seen its liveliness (a loaded machine starts the policy node last: an
    arm settling at start-up is not yet its motion), and the hand goes the operator's way (+y)."""
    def going() -> bool:
        return (probe.velocity(0.2)[1] > 0.02 and len(probe.metrics) > 100
                and probe.safety_diag.get("policy_seen") == "True")

    ok = probe.spin(timeout, until=going, procs=procs)
    probe.spin(0.5, procs=procs)
    return ok


def _drift(probe: Probe, procs, seconds: float = 1.0) -> float:
    p0 = probe.hand().copy()
    probe.spin(seconds, procs=procs)
    return float(np.linalg.norm(probe.hand() - p0))


def run(scenario: str, backend: str = "sim") -> dict:
    """One scenario on one backend, on a graph of its own; returns its figures (and `ok`: the
    response held)."""
    return run_many([scenario], backend)[0]


def run_many(scenarios, backend: str = "sim") -> list[dict]:
    """Several scenarios one after the other on one graph (one start-up, the time the graph
    takes to come up on a loaded machine, instead of one per scenario): each waits for the arm
    to move under the policy again (the graph's recovery from the one before is part of it).
    `policy_kill` ends the policy, so it must come last; `clock_jump` runs the graph under
    use_sim_time, so it runs alone. Returns one result per scenario, in order."""
    import rclpy

    from robot_ctrl.model import RobotModel
    from robot_ctrl.ros.env import use_loopback

    scenarios = list(scenarios)
    if not scenarios:
        raise ValueError("no fault scenario given")
    for scenario in scenarios:
        if scenario not in SCENARIOS:
            raise ValueError(f"unknown fault scenario '{scenario}' (known: {', '.join(SCENARIOS)})")
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend '{backend}' (known: {', '.join(BACKENDS)})")
    for scenario in scenarios:
        if scenario in SIM_ONLY and backend != "sim":
            raise ValueError(f"fault scenario '{scenario}' needs the sim backend (the simulator publishes /clock)")
    if "policy_kill" in scenarios[:-1]:
        raise ValueError("fault scenario 'policy_kill' ends the policy: it must come last")
    if "clock_jump" in scenarios and len(scenarios) > 1:
        raise ValueError("fault scenario 'clock_jump' runs the graph under use_sim_time: run it alone")
    use_loopback()
    own_context = not rclpy.ok()
    if own_context:
        _RUNS[0] += 1
        domain = 101 + (os.getpid() + _RUNS[0]) % 100  # (tests/conftest.py uses 10..99)
        _DOMAIN[:] = [domain]
        rclpy.init(domain_id=domain)
    node = rclpy.create_node(f"fault_probe_{scenarios[0]}")
    probe = Probe(node, RobotModel.load("panda"))
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        procs = _graph(backend, Path(tmp), sim_time=scenarios == ["clock_jump"])
        plist = list(procs.values())
        try:
            for k, scenario in enumerate(scenarios):
                if not _moving(probe, plist):
                    after = f" after {scenarios[k - 1]}" if k else ""
                    results += [{"scenario": s, "backend": backend, "ok": False, "error": f"the arm never moved{after}"}
                                for s in scenarios[k:]]
                    break
                results.append({"scenario": scenario, "backend": backend,
                                **globals()[f"_{scenario}"](probe, procs, plist, node)})
        finally:
            stop_all(plist)
            node.destroy_node()
            if own_context:
                rclpy.shutdown()
                _DOMAIN.clear()
    return results


# the order on a shared graph: the stamp jump after the stalls and the e-stop (their brakes keep
# one command per period, so its burst check against the filter's last ~4 s of output holds;
# in CI a command stall right after a stamp jump once braked only after 1 s), the storm last
# (it saturates the machine and lowers the output rate)
SHARED_ORDER = ("state_stall", "command_stall", "estop", "stamp_jump", "storm")
# on a graph of their own: the policy kill ends the policy, and its kill -> brake figure (the
# 20 ms target) is measured on a fresh graph (after a storm DDS liveliness had flapped and the
# brake came at 60 ms once); the clock jump runs under use_sim_time
ALONE = ("policy_kill", "clock_jump")


def sequences(scenarios=SCENARIOS, backends=BACKENDS) -> list[tuple[str, list[str]]]:
    """The bench's graphs: per backend one for the scenarios of SHARED_ORDER, then one for each
    of ALONE (clock_jump on sim only)."""
    out = []
    for b in backends:
        shared = [s for s in SHARED_ORDER if s in scenarios]
        if shared:
            out.append((b, shared))
        out += [(b, [s]) for s in ALONE if s in scenarios and (b == "sim" or s not in SIM_ONLY)]
    return out


# -- scenarios -------------------------------------------------------------------------------
def _policy_kill(probe, procs, plist, node) -> dict:
    # the cost of a short lease: losses while the policy was alive (a starved DDS thread)
    diag0 = probe.fresh_safety_diag()
    losses_before = int(diag0.get("policy_losses", 0))
    p_kill = probe.hand().copy()
    speed = probe.speed(0.2)
    t_kill = time.monotonic()
    procs["policy"].send_signal(signal.SIGKILL)
    # noticed: the safety filter saw the policy's liveliness go (not a late-state brake that
    # happened to come then); its diagnostics count it and name the state it braked on
    noticed = probe.spin(3.0, until=lambda: int(probe.safety_diag.get("policy_losses", 0)) > losses_before
                         and "policy_lost_state_stamp" in probe.safety_diag, procs=plist)
    t_rest = probe.settle(plist)
    lost_at = float(probe.safety_diag["policy_lost_state_stamp"]) if noticed else None
    # the loss's brake: the first braking command answering that state or a later one
    first = next(((tm, m) for tm, m in probe.metrics if tm >= t_kill and m[4] in BRAKING
                  and (lost_at is None or m[0] >= lost_at - 1e-6)), None)
    # the stopping distance from the state the safety filter had when it braked (its stamp,
    # the robot's own timeline) to rest; from the hand this process had at the kill as well
    # (that one adds the motion until the loss was noticed, and what this process had not yet
    # taken when it sent the kill)
    p_brake = probe.hand_at(lost_at) if lost_at is not None else p_kill
    dist = float(np.linalg.norm(probe.hand() - p_brake))
    drift = _drift(probe, plist)
    return {"ok": noticed and first is not None and drift < 0.005, "hand_speed_m_s": speed,
            "losses_while_alive": losses_before, "noticed": bool(noticed),
            "kill_to_brake_ms": None if first is None else 1e3 * (first[0] - t_kill),
            "stopping_distance_mm": 1e3 * dist, "kill_to_rest_mm": 1e3 * float(np.linalg.norm(probe.hand() - p_kill)),
            "stopping_time_ms": 1e3 * (t_rest - t_kill), "drift_while_held_mm": 1e3 * drift}


def _state_stall(probe, procs, plist, node) -> dict:
    # the cost of a tight timeout: brakes on a late state while nothing had stalled
    diag0 = probe.fresh_safety_diag()
    before = int(diag0.get("state_watchdog_brakes", 0))
    states_before = int(diag0.get("states", 0))
    t_stop = time.monotonic()
    procs["backend"].send_signal(signal.SIGSTOP)
    probe.spin(0.5, procs=plist)
    # the commands that answer the last state (a metric carries the stamp of the state it
    # answers): at most the nominal ones before the deadline, then only brakes. Matched by stamp,
    # not by when they reached this process: a held-up probe takes its queues in any order
    # the filter's last state: the newest one its commands answer (this process may have taken
    # one more, or one fewer, than the filter did)
    last = max((m[0] for _, m in probe.metrics), default=probe.last_stamp())
    t_last_rx = probe.state_rx[-1] if probe.state_rx else t_stop
    answers = [(tm, m) for tm, m in probe.metrics if abs(m[0] - last) < 1e-6]
    k_brake = next((k for k, (_, m) in enumerate(answers) if m[4] in BRAKING), None)
    braking = answers[k_brake:] if k_brake is not None else []
    probe.spin(3.0, until=lambda: "state_watchdog_delay_periods" in probe.safety_diag
               and int(probe.safety_diag.get("state_watchdog_brakes", 0)) > before, procs=plist)
    inside = probe.safety_diag.get("state_watchdog_delay_periods")
    procs["backend"].send_signal(signal.SIGCONT)
    resumed = probe.spin(3.0, until=lambda: probe.metrics and probe.metrics[-1][1][4] == 0.0, procs=plist)
    delay = None if k_brake is None else max(0.0, answers[k_brake][0] - t_last_rx)
    return {"ok": k_brake is not None and all(m[4] in BRAKING for _, m in braking) and resumed,
            # in the safety filter: its last state -> its brake (node clock), the watchdog itself
            "watchdog_delay_periods": None if inside is None else float(inside),
            "state_brakes_before_the_stall": before, "states_before_the_stall": states_before,
            # seen from outside (this process's receipts, its own executor delays included)
            "last_state_to_brake_ms": None if delay is None else 1e3 * delay,
            "last_state_to_brake_periods": None if delay is None else delay / CONTROL_PERIOD_S,
            "commands_while_stalled": len(braking), "resumed_filtering": bool(resumed)}


def _command_stall(probe, procs, plist, node) -> dict:
    p0 = probe.hand().copy()
    t_stop = time.monotonic()
    procs["controller"].send_signal(signal.SIGSTOP)
    probe.spin(0.5, until=lambda: probe.first_braking_after(t_stop) is not None, procs=plist)
    t_brake = probe.first_braking_after(t_stop)
    probe.settle(plist)
    dist = float(np.linalg.norm(probe.hand() - p0))
    drift = _drift(probe, plist)
    procs["controller"].send_signal(signal.SIGCONT)
    return {"ok": t_brake is not None and drift < 0.005,
            "stall_to_brake_ms": None if t_brake is None else 1e3 * (t_brake - t_stop),
            "stopping_distance_mm": 1e3 * dist, "drift_while_held_mm": 1e3 * drift}


def _latency(probe, since: float) -> np.ndarray:
    """Command latency: receipt of a metric − receipt of the newest state before it (ms)."""
    rx = np.array(probe.state_rx)
    out = []
    for tm, _ in probe.metrics:
        if tm < since:
            continue
        k = np.searchsorted(rx, tm) - 1
        if k >= 0:
            out.append(1e3 * (tm - rx[k]))
    return np.array(out) if out else np.zeros(1)


def _storm(probe, procs, plist, node) -> dict:
    """A separate process (robot_ctrl.ros.storm) answers every genuine state with 10 more: the
    stream arrives at 11x its rate, duplicated and out of order."""
    import json
    import subprocess
    import sys

    t0 = time.monotonic()
    probe.spin(1.0, procs=plist)
    before = _latency(probe, t0)
    rss0 = {k: _rss_mb(procs[k].pid) for k in ("controller", "safety")}
    storm = subprocess.Popen([sys.executable, "-m", "robot_ctrl.ros.storm", "--seconds", "4", "--copies", "10"],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             env=_env())
    # the storm's first second goes to its start-up (imports, discovery); measure the rest
    probe.spin(1.5, procs=plist + [storm])
    t1 = time.monotonic()
    probe.spin(6.0, until=lambda: storm.poll() is not None, procs=plist)
    t2 = time.monotonic()
    during = _latency(probe, t1)
    genuine_hz = sum(1 for t in probe.state_rx if t >= t1) / (t2 - t1)
    rss1 = {k: _rss_mb(procs[k].pid) for k in ("controller", "safety")}
    out, _ = storm.communicate(timeout=10)
    try:
        report = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"ok": False, "error": f"the storm process failed: {out[-500:]}"}
    growth = max(rss1[k] - rss0[k] for k in rss0)
    alive = probe.spin(1.0, until=lambda: probe.metrics and probe.metrics[-1][0] > time.monotonic() - 0.05,
                       procs=plist)
    rate_x = 1.0 + report["rate_x"]
    return {"ok": bool(alive) and growth < 50.0 and rate_x >= 10.0 and float(np.percentile(during, 99)) < 200.0,
            "storm_msgs_per_s": report["sent"] / report["seconds"], "storm_rate_x": rate_x,
            "genuine_state_hz_during": genuine_hz,
            "latency_ms_p50_before": float(np.percentile(before, 50)),
            "latency_ms_p99_before": float(np.percentile(before, 99)),
            "latency_ms_p50_during": float(np.percentile(during, 50)),
            "latency_ms_p99_during": float(np.percentile(during, 99)), "rss_growth_mb": growth}


def _stamp_jump(probe, procs, plist, node) -> dict:
    from sensor_msgs.msg import JointState

    from robot_ctrl.ros.common import STATE_QOS

    pub = node.create_publisher(JointState, "/joint_states", STATE_QOS)
    probe.spin(0.3, procs=plist)
    diag0 = probe.fresh_safety_diag()  # (its counts before the jump)
    m = probe.last_state
    jump = JointState(name=list(m.name), position=list(m.position), velocity=list(m.velocity), effort=list(m.effort))
    ns = m.header.stamp.sec * 1_000_000_000 + m.header.stamp.nanosec + 1_000_000_000  # 1 s ahead
    jump.header.stamp.sec, jump.header.stamp.nanosec = divmod(ns, 1_000_000_000)
    probe.own_stamps.add(ns)  # the robot's states go on under it
    t_jump = time.monotonic()
    pub.publish(jump)
    probe.spin(1.5, procs=plist)
    node.destroy_publisher(pub)
    return _after_jump(probe, t_jump, diag0)


def _states_in(diag: dict) -> int:
    return int(diag.get("states", 0)) + int(diag.get("rejected_states", 0))


def _after_jump(probe, t_jump: float, diag0: dict) -> dict:
    """No burst of commands, no NaN, no long braking after a jump at t_jump. A burst is commands
    beyond the states that came: the safety filter's own counts (diag0: its diagnostics from
    before the jump) of commands out against states in, so that states arriving bunched on a
    busy machine (and the commands answering them, one each) are no burst. The commands are
    also counted per 50 ms as received here, and as the filter sent them (its latest 2048)."""
    after = [(tm, u) for tm, u in probe.cmds if tm >= t_jump]
    times = np.array([tm for tm, _ in after])
    # commands per 50 ms window (receipt times bunch up on a busy machine; 50 ms smooths that)
    counts = [int(np.sum((times >= t) & (times < t + 0.05))) for t in times if t + 0.05 <= times[-1]] \
        if len(times) else [0]
    busiest, typical = max(counts or [0]), float(np.median(counts or [0]))
    u = np.array([u for _, u in after]) if after else np.zeros((1, 1))
    finite = bool(np.all(np.isfinite(u)))
    du = float(np.max(np.abs(np.diff(u, axis=0)))) if len(u) > 1 else 0.0
    braking = [m for tm, m in probe.metrics if tm >= t_jump + 0.05 and m[4] in BRAKING]
    diag = probe.fresh_safety_diag()
    states_in = _states_in(diag) - _states_in(diag0)
    commands_out = int(diag.get("published", 0)) - int(diag0.get("published", 0))
    extra = commands_out - states_in
    no_burst = bool(diag0) and bool(diag) and states_in > 0 and extra <= 0.1 * states_in + 10
    return {"ok": finite and no_burst and len(braking) < 50 and typical > 0,
            "states_in": states_in, "commands_out": commands_out, "extra_commands": extra, "no_burst": no_burst,
            "output_busiest_50ms": int(diag.get("recent_busiest_50ms", -1)),
            "output_typical_50ms": float(diag.get("recent_typical_50ms", -1)),
            "commands_busiest_50ms": busiest, "commands_typical_50ms": typical,
            "max_command_step_nm": du, "finite": finite, "braking_commands_after": len(braking)}


def _clock_jump(probe, procs, plist, node) -> dict:
    """Under use_sim_time: for 50 ms a second /clock source 1 s ahead of the simulator's, then
    the simulator's own clock alone (jumps forward and back). The nodes' clocks, timers and
    stamp checks all see it; the watchdogs run on it too (watchdog_clock auto under
    use_sim_time)."""
    from rosgraph_msgs.msg import Clock

    from robot_ctrl.ros.common import CLOCK_QOS

    pub = node.create_publisher(Clock, "/clock", CLOCK_QOS)
    # the controller, the safety filter and the policy listen to /clock (and the probe's own
    # clock does not: it runs on the wall clock)
    probe.spin(5.0, until=lambda: pub.get_subscription_count() >= 3, procs=plist)
    diag0 = probe.fresh_safety_diag()
    seen0 = int(diag0.get("clock_jumps", 0))
    # 50 ms of a clock 1 s ahead (one stray message can be overwritten in a node's depth-1 /clock
    # queue before it is read), then the simulator's clock alone again: it jumps back
    t_jump = time.monotonic()
    while time.monotonic() - t_jump < 0.05:
        m = probe.last_state
        ns = m.header.stamp.sec * 1_000_000_000 + m.header.stamp.nanosec + 1_000_000_000  # 1 s ahead
        jump = Clock()
        jump.clock.sec, jump.clock.nanosec = divmod(ns, 1_000_000_000)
        pub.publish(jump)
        probe.spin(0.002, procs=plist)
    probe.spin(1.5, procs=plist)
    node.destroy_publisher(pub)
    out = _after_jump(probe, t_jump, diag0)
    out["moving_after"] = probe.speed(0.2)
    probe.spin(1.0, until=lambda: int(probe.safety_diag.get("clock_jumps", 0)) >= seen0 + 2, procs=plist)
    out["clock_jumps_seen"] = int(probe.safety_diag.get("clock_jumps", 0)) - seen0  # by the safety filter
    # detected (ahead and back), back under the policy, not stuck
    out["ok"] = out["ok"] and out["moving_after"] > 0.01 and out["clock_jumps_seen"] >= 2
    return out


def _estop(probe, procs, plist, node) -> dict:
    from std_msgs.msg import Bool
    from std_srvs.srv import Trigger

    pub = node.create_publisher(Bool, "/estop", 10)
    probe.spin(0.3, until=lambda: pub.get_subscription_count() > 0, procs=plist)
    p0 = probe.hand().copy()
    t_stop = time.monotonic()
    pub.publish(Bool(data=True))
    # the e-stop's own response is status 4 (stop); a watchdog brake (2) on a busy machine is not it
    probe.spin(0.5, until=lambda: probe.first_braking_after(t_stop, (STOP,)) is not None, procs=plist)
    t_brake = probe.first_braking_after(t_stop, (STOP,))
    probe.settle(plist)
    dist = float(np.linalg.norm(probe.hand() - p0))
    probe.spin(1.0, procs=plist)
    after = [m for tm, m in probe.metrics if t_brake is not None and tm > t_brake]
    motion = sum(1 for m in after if m[4] not in BRAKING)
    drift = _drift(probe, plist, 0.5)
    cli = node.create_client(Trigger, "/safety_filter/reset")
    reset_ok = False
    if cli.wait_for_service(timeout_sec=5):
        fut = cli.call_async(Trigger.Request())
        probe.spin(5.0, until=fut.done, procs=plist)
        reset_ok = fut.done() and fut.result().success
    t_reset = time.monotonic()
    resumed = probe.spin(2.0, until=lambda: any(tm > t_reset and m[4] == 0.0 for tm, m in probe.metrics[-50:]),
                         procs=plist)
    return {"ok": t_brake is not None and motion == 0 and reset_ok and bool(resumed),
            "estop_to_stop_ms": None if t_brake is None else 1e3 * (t_brake - t_stop),
            "stopping_distance_mm": 1e3 * dist, "motion_commands_after_stop": motion,
            "drift_while_stopped_mm": 1e3 * drift, "reset_accepted": bool(reset_ok), "resumed": bool(resumed)}


def bench_faults(scenarios=SCENARIOS, backends=BACKENDS, progress: bool = True) -> dict:
    results = []
    for b, seq in sequences(scenarios, backends):
        if progress:
            print(f"faults on {b}: {', '.join(seq)} ...", file=sys.stderr, flush=True)
        results += run_many(seq, b)
    return {"benchmark": "faults", "results": results, "all_ok": all(r.get("ok") for r in results)}
