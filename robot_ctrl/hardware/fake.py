"""Fake robot hardware: what a ros2_control robot does to a command, with the faults of a real one.

`FakeHardware` holds the joint state (q, v) of a `RobotModel`, in the robot's joint order. A
command (`command(u, t)`) is queued and takes effect `latency_s` later; between its effect and
the joints sits an actuator that lags it (first order, time constant `actuator_tau`). With u the
command in effect and y the applied command, over an interval h with u held (exact):

    y <- u + (y - u) exp(-h / tau)              (tau = 0: y = u)

and, per command interface,

- position: u is clipped to the position limits; the joint follows the applied target exactly,
  q = y, v = dy/dt = (u - y) / tau (tau = 0: the finite difference over the step).
- velocity: u is clipped to +-v_max; v = y, q integrates it exactly over the interval; at a
  position limit q is clipped and a velocity pushing further out is zeroed.
- effort: u is clipped to +-tau_max; forward dynamics with pinocchio's ABA (gravity included,
  plus viscous damping `damping` v):  a = ABA(q, v, y - damping v),  semi-implicit Euler
  (v += a h; q += v h) in substeps of at most `max_substep_s`; at a position limit q is clipped
  and a velocity pushing further out is zeroed.

Before the first command, position and velocity hardware hold the current position (u = q0,
resp. u = 0). Effort hardware keeps its brakes on until the first command takes effect
(`brake_until_command`, as a torque-controlled arm such as the Panda does before its controller
starts); after that there is no hidden gravity compensation: zero torque and the arm falls.
With `brake_until_command: false` it falls from the start.

`measure(t)` is what the joint_state_broadcaster would publish at t: None when the sample is
dropped (probability `drop_prob`), else a `Sample(stamp, position, velocity, effort)` with
Gaussian noise on position and velocity, the stamp off by Gaussian jitter (std `jitter_s`) and,
with probability `stamp_jump_prob`, jumped by `stamp_jump_s`. Only that sample's stamp is
wrong; the hardware's clock and state are not touched. `effort` is the applied torque
(effort interface) or the inverse-dynamics torque RNEA(q, v, a) of the motion (position,
velocity), noise-free.

Commands with NaN/Inf or of the wrong size raise ValueError and change nothing. The queue of
commands waiting out the latency is bounded (`max_queue`); beyond it the oldest is dropped and
counted (`queue_overflows`).

`LinearTrajectory` is what a joint trajectory controller with linear interpolation commands:
positions interpolated between points, held before the first and after the last.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import asdict, dataclass
from numbers import Integral, Real
from typing import NamedTuple

import numpy as np
import pinocchio as pin

INTERFACES = ("position", "velocity", "effort")


@dataclass(frozen=True)
class FakeHardwareConfig:
    """How the fake hardware behaves. Times in s, angles in rad (m for prismatic joints)."""

    interface: str = "position"       # command interface: position | velocity | effort
    actuator_tau: float = 0.02        # first-order lag of the applied command behind the commanded one; 0 = none
    latency_s: float = 0.0            # command received -> takes effect
    noise_std_position: float = 0.0   # measurement noise std, rad
    noise_std_velocity: float = 0.0   # measurement noise std, rad/s
    drop_prob: float = 0.0            # probability a state sample is not published
    jitter_s: float = 0.0             # std of the error of a state's stamp
    stamp_jump_prob: float = 0.0      # probability a state's stamp jumps by stamp_jump_s
    stamp_jump_s: float = 0.0         # the jump (> 0 forward, < 0 backward)
    seed: int = 0                     # of the noise, drop, jitter and jump draws
    damping: float = 0.1              # effort interface: viscous joint damping, N m s/rad
    max_queue: int = 1000             # commands waiting out the latency; beyond, the oldest is dropped
    max_substep_s: float = 0.001      # effort interface: longest integration substep
    brake_until_command: bool = True  # effort interface: joints held (brakes) until the first command

    def __post_init__(self):
        if not isinstance(self.interface, str) or self.interface not in INTERFACES:
            raise ValueError(f"FakeHardwareConfig.interface is {self.interface!r}; expected one of {list(INTERFACES)}")
        for name in ("actuator_tau", "latency_s", "noise_std_position", "noise_std_velocity", "jitter_s", "damping"):
            self._set(name, _number(name, getattr(self, name), lo=0.0))
        for name in ("drop_prob", "stamp_jump_prob"):
            self._set(name, _number(name, getattr(self, name), lo=0.0, hi=1.0))
        self._set("stamp_jump_s", _number("stamp_jump_s", self.stamp_jump_s))
        self._set("max_substep_s", _number("max_substep_s", self.max_substep_s, lo=0.0, lo_open=True))
        self._set("seed", _integer("seed", self.seed, lo=0))
        self._set("max_queue", _integer("max_queue", self.max_queue, lo=1))
        if not isinstance(self.brake_until_command, bool):
            raise ValueError(f"FakeHardwareConfig.brake_until_command must be true or false, "
                             f"got {self.brake_until_command!r}")

    def _set(self, name, value):
        object.__setattr__(self, name, value)

    def as_dict(self) -> dict:
        return asdict(self)


def _number(name, value, lo=None, hi=None, lo_open=False) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        raise ValueError(f"FakeHardwareConfig.{name} must be a finite number, got {value!r}")
    value = float(value)
    if lo is not None and (value < lo or (lo_open and value == lo)):
        raise ValueError(f"FakeHardwareConfig.{name} must be {'>' if lo_open else '>='} {lo}, got {value}")
    if hi is not None and value > hi:
        raise ValueError(f"FakeHardwareConfig.{name} must be <= {hi}, got {value}")
    return value


def _integer(name, value, lo) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise ValueError(f"FakeHardwareConfig.{name} must be an integer, got {value!r}")
    if value < lo:
        raise ValueError(f"FakeHardwareConfig.{name} must be >= {lo}, got {value}")
    return int(value)


class Sample(NamedTuple):
    """One joint-state sample as published: stamp (s) and arrays in the robot's joint order."""

    stamp: float
    position: np.ndarray
    velocity: np.ndarray
    effort: np.ndarray


class FakeHardware:
    """A fake ros2_control robot over a RobotModel; arrays in `robot.joint_names` order."""

    def __init__(self, robot, config: FakeHardwareConfig | None = None, q0=None):
        self.robot = robot
        self.config = config if config is not None else FakeHardwareConfig()
        self.joint_names = list(robot.joint_names)
        self.n = robot.n
        self.interface = self.config.interface
        self._model = robot.model
        self._data = robot.model.createData()  # own data: the robot's may be in use elsewhere
        perm = np.array([self._model.joints[self._model.getJointId(j)].idx_q for j in self.joint_names], dtype=int)
        self._perm = None if np.all(perm == np.arange(self.n)) else perm
        self._pin_q, self._pin_v, self._pin_tau = np.zeros(self.n), np.zeros(self.n), np.zeros(self.n)
        self._q_min, self._q_max = robot.q_min, robot.q_max
        if self.interface == "position":
            self._u_lo, self._u_hi = robot.q_min, robot.q_max
        elif self.interface == "velocity":
            self._u_lo, self._u_hi = -robot.v_max, robot.v_max
        else:
            self._u_lo, self._u_hi = -robot.tau_max, robot.tau_max
        self._rng = np.random.default_rng(self.config.seed)
        self._noise = np.empty(self.n)
        self._queue: deque = deque()
        # counters
        self.commands = 0
        self.rejected_commands = 0
        self.queue_overflows = 0
        self.samples = 0
        self.states_published = 0
        self.states_dropped = 0
        self.stamp_jumps = 0
        self.numerical_faults = 0
        self.steps = 0
        self.q = np.zeros(self.n)
        self.v = np.zeros(self.n)
        self.a = np.zeros(self.n)
        self._u = np.zeros(self.n)       # command in effect (after latency)
        self._y = np.zeros(self.n)       # applied command (after the actuator lag)
        self._tmp = np.zeros(self.n)
        self._q_prev = np.zeros(self.n)
        self._v_prev = np.zeros(self.n)
        self.reset(q0)

    # -- state ---------------------------------------------------------------------------
    def reset(self, q0=None, t: float = 0.0) -> None:
        """Joints at q0 (default: the robot's home) at rest, no command pending, time t.
        Counters are kept."""
        q0 = self.robot.home if q0 is None else self._check(q0, "initial position")
        self.q[:] = np.clip(q0, self._q_min, self._q_max)
        self.v[:] = 0.0
        self.a[:] = 0.0
        self._queue.clear()
        self._last_effect = -math.inf
        self.t = float(t)
        self.commanded = False
        if self.interface == "position":
            self._u[:] = self.q  # hold where it is
        else:
            self._u[:] = 0.0     # velocity: stand still; effort: no torque (falls under gravity)
        self._y[:] = self._u

    @property
    def applied(self) -> np.ndarray:
        """The applied command y (after latency and actuator lag); a copy."""
        return self._y.copy()

    @property
    def pending(self) -> int:
        """Commands waiting out the latency."""
        return len(self._queue)

    @property
    def effort(self) -> np.ndarray:
        """Measured joint effort (noise-free): the applied torque (effort interface) or the
        inverse-dynamics torque of the current motion (position, velocity)."""
        if self.interface == "effort":
            return self._y.copy()
        tau = pin.rnea(self._model, self._data, self._to_pin(self.q, self._pin_q),
                       self._to_pin(self.v, self._pin_v), self._to_pin(self.a, self._pin_tau))
        return self._from_pin(tau)

    def stats(self) -> dict:
        return {
            "states_published": self.states_published,
            "states_dropped": self.states_dropped,
            "stamp_jumps": self.stamp_jumps,
            "commands": self.commands,
            "rejected_commands": self.rejected_commands,
            "queue_overflows": self.queue_overflows,
            "pending_commands": len(self._queue),
            "numerical_faults": self.numerical_faults,
        }

    # -- commands --------------------------------------------------------------------------
    def _check(self, u, what: str) -> np.ndarray:
        try:
            arr = np.asarray(u, dtype=float)
        except (TypeError, ValueError):
            raise ValueError(f"{what} is not an array of numbers") from None
        if arr.shape != (self.n,):
            raise ValueError(f"{what} has shape {arr.shape}; expected ({self.n},) for joints {self.joint_names}")
        bad = ~np.isfinite(arr)
        if bad.any():
            names = [self.joint_names[i] for i in np.flatnonzero(bad)]
            raise ValueError(f"{what} has NaN or Inf for {', '.join(names)}")
        return arr

    def command(self, u, t: float | None = None) -> None:
        """Queue command u (robot order, length n, of the configured interface) received at t
        (default: the hardware's time); it takes effect at t + latency_s. Raises ValueError
        (and changes nothing) for a wrong size, NaN or Inf."""
        try:
            arr = self._check(u, f"{self.interface} command")
            if t is not None and not math.isfinite(t):
                raise ValueError(f"command time {t} is not finite")
        except ValueError:
            self.rejected_commands += 1
            raise
        t = self.t if t is None else float(t)
        effect = max(t + self.config.latency_s, self._last_effect)  # commands take effect in order
        self._last_effect = effect
        if len(self._queue) >= self.config.max_queue:
            self._queue.popleft()
            self.queue_overflows += 1
        self._queue.append((effect, arr.copy()))
        self.commands += 1

    # -- dynamics ------------------------------------------------------------------------
    def step(self, dt: float, t: float | None = None) -> None:
        """Advance by dt from t (default: the hardware's time; afterwards t + dt). A command
        taking effect inside the step is applied from its exact time on."""
        if not (math.isfinite(dt) and dt > 0):
            raise ValueError(f"step dt must be a finite number > 0, got {dt}")
        if t is not None:
            self.t = float(t)
        t_end = self.t + dt
        self._q_prev[:] = self.q
        self._v_prev[:] = self.v
        eps = 1e-12
        while True:
            q = self._queue
            while q and q[0][0] <= self.t + eps:
                np.clip(q.popleft()[1], self._u_lo, self._u_hi, out=self._u)
                self.commanded = True
            until = min(q[0][0], t_end) if q else t_end
            h = until - self.t
            if h > eps:
                self._advance(h)
            self.t = until
            if until >= t_end - eps:
                break
        self.t = t_end
        if self.interface == "position" and self.config.actuator_tau == 0.0:
            np.subtract(self.q, self._q_prev, out=self.v)
            self.v /= dt
        np.subtract(self.v, self._v_prev, out=self.a)
        self.a /= dt
        if not (np.isfinite(self.q).all() and np.isfinite(self.v).all()):
            # never hand out NaN: back to the state before the step, at rest
            self.numerical_faults += 1
            self.q[:] = self._q_prev
            self.v[:] = 0.0
            self.a[:] = 0.0
        self.steps += 1

    def _lag(self, h: float) -> float:
        """y <- u + (y - u) exp(-h/tau); returns exp(-h/tau)."""
        tau = self.config.actuator_tau
        decay = math.exp(-h / tau) if tau > 0 else 0.0
        y, u = self._y, self._u
        y -= u
        y *= decay
        y += u
        return decay

    def _advance(self, h: float) -> None:
        u, y = self._u, self._y
        if self.interface == "position":
            self._lag(h)
            self.q[:] = y
            if self.config.actuator_tau > 0:
                np.subtract(u, y, out=self.v)
                self.v /= self.config.actuator_tau
        elif self.interface == "velocity":
            tau = self.config.actuator_tau
            # exact integral of y over the interval: u h + (y0 - u) tau (1 - exp(-h/tau))
            np.subtract(y, u, out=self._tmp)
            decay = self._lag(h)
            self._tmp *= tau * (1.0 - decay)
            self.q += self._tmp
            np.multiply(u, h, out=self._tmp)
            self.q += self._tmp
            self.v[:] = y
            self._limit()
        elif not self.commanded and self.config.brake_until_command:
            self.v[:] = 0.0  # brakes on: no command has taken effect yet
        else:
            m = max(1, math.ceil(h / self.config.max_substep_s - 1e-9))
            hs = h / m
            for _ in range(m):
                self._lag(hs)
                np.multiply(self.v, -self.config.damping, out=self._tmp)
                self._tmp += y
                acc = pin.aba(self._model, self._data, self._to_pin(self.q, self._pin_q),
                              self._to_pin(self.v, self._pin_v), self._to_pin(self._tmp, self._pin_tau))
                if self._perm is None:
                    self.v += hs * acc
                else:
                    self.v += hs * acc[self._perm]
                self.q += hs * self.v
                self._limit()

    def _limit(self) -> None:
        """Clip q to the position limits; zero a velocity that pushes further out."""
        low = self.q < self._q_min
        high = self.q > self._q_max
        if low.any() or high.any():
            np.clip(self.q, self._q_min, self._q_max, out=self.q)
            self.v[(low & (self.v < 0)) | (high & (self.v > 0))] = 0.0

    def _to_pin(self, x: np.ndarray, out: np.ndarray) -> np.ndarray:
        if self._perm is None:
            return x
        out[self._perm] = x
        return out

    def _from_pin(self, x: np.ndarray) -> np.ndarray:
        return np.array(x if self._perm is None else x[self._perm], dtype=float)

    # -- measurement -----------------------------------------------------------------------
    def measure(self, t: float | None = None) -> Sample | None:
        """The joint-state sample published at t (default: the hardware's time): None when
        dropped, else the noisy state with a stamp that may be off (jitter, jumps)."""
        cfg = self.config
        rng = self._rng
        self.samples += 1
        t = self.t if t is None else float(t)
        if cfg.drop_prob > 0 and rng.random() < cfg.drop_prob:
            self.states_dropped += 1
            return None
        stamp = t
        if cfg.jitter_s > 0:
            stamp += cfg.jitter_s * rng.standard_normal()
        if cfg.stamp_jump_prob > 0 and rng.random() < cfg.stamp_jump_prob:
            stamp += cfg.stamp_jump_s
            self.stamp_jumps += 1
        q = self.q.copy()
        v = self.v.copy()
        if cfg.noise_std_position > 0:
            rng.standard_normal(out=self._noise)
            self._noise *= cfg.noise_std_position
            q += self._noise
        if cfg.noise_std_velocity > 0:
            rng.standard_normal(out=self._noise)
            self._noise *= cfg.noise_std_velocity
            v += self._noise
        self.states_published += 1
        return Sample(stamp, q, v, self.effort)


class LinearTrajectory:
    """Positions interpolated linearly in time between points, held before the first and after
    the last (what a joint trajectory controller with linear interpolation commands).

    times: (K,) strictly increasing, absolute (s); positions: (K, n), finite."""

    def __init__(self, times, positions):
        T = np.asarray(times, dtype=float).reshape(-1)
        P = np.asarray(positions, dtype=float)
        if T.size == 0:
            raise ValueError("trajectory has no points")
        if P.ndim != 2 or P.shape[0] != T.size:
            raise ValueError(f"trajectory has {T.size} times for positions of shape {P.shape}")
        if not (np.isfinite(T).all() and np.isfinite(P).all()):
            raise ValueError("trajectory has NaN or Inf")
        if np.any(np.diff(T) <= 0):
            raise ValueError("trajectory times must be strictly increasing")
        self.times, self.positions = T, P
        self.start, self.end = float(T[0]), float(T[-1])

    def sample(self, t: float, out: np.ndarray | None = None) -> np.ndarray:
        T, P = self.times, self.positions
        out = np.empty(P.shape[1]) if out is None else out
        k = int(np.searchsorted(T, t, side="right"))
        if k == 0:
            out[:] = P[0]
        elif k >= T.size:
            out[:] = P[-1]
        else:
            s = (t - T[k - 1]) / (T[k] - T[k - 1])
            np.subtract(P[k], P[k - 1], out=out)
            out *= s
            out += P[k - 1]
        return out
