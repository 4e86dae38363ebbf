"""Gamepad through Linux evdev (Xbox/PlayStation layout, as xpad and hid-playstation report it).

Twist in the robot base frame (+x forward, +y left, +z up), at the device's max speeds:

============================  =====================================================
input                         command
============================  =====================================================
left stick up / down          +x / −x
left stick left / right       +y / −y
right trigger / left trigger  +z / −z (RT − LT)
right stick up / down         +pitch / −pitch (about y; up tips the tool forward)
right stick left / right      +yaw / −yaw (about z, + = counter-clockwise from above)
north (Y/△) / west (X/□) held +roll / −roll (about x)
south (A/✕)                   gripper toggle (starts open)
east (B/○)                    e-stop (latched in the device)
start                         release the device's e-stop latch
left bumper (LB/L1) held      clutch
right bumper (RB/R1) held     intervene
============================  =====================================================

Axes: ABS_X, ABS_Y, ABS_RX, ABS_RY are sticks (evdev: +x right, +y down), ABS_Z, ABS_RZ
triggers. Each is normalised from its absinfo (min, max, flat): sticks to [−1, 1] about
the range centre, triggers to [0, 1] from min; values within ``flat`` of rest are zero;
then a deadband rescaled to stay continuous. ``axis_map`` (6×6, twist ← normalised
``[X, Y, Z, RX, RY, RZ]``) and ``buttons`` ({code: action}) change the layout.

The event source is injectable: any object whose ``read()`` returns the pending events as
``(type, code, value)`` tuples (or evdev ``InputEvent``s), ``[]`` when none, and raises
OSError when the device is gone.
"""
from __future__ import annotations

from typing import Protocol
from collections.abc import Iterable

import numpy as np

from .base import NOT_FOUND, NOT_INSTALLED, Device, DeviceUnavailable, deadband, register
from .schema import Prompt

EV_SYN, EV_KEY, EV_ABS = 0, 1, 3
ABS_X, ABS_Y, ABS_Z, ABS_RX, ABS_RY, ABS_RZ = 0, 1, 2, 3, 4, 5
BTN_SOUTH, BTN_EAST, BTN_NORTH, BTN_WEST = 304, 305, 307, 308
BTN_TL, BTN_TR, BTN_SELECT, BTN_START = 310, 311, 314, 315

AXES = (ABS_X, ABS_Y, ABS_Z, ABS_RX, ABS_RY, ABS_RZ)
TRIGGERS = (ABS_Z, ABS_RZ)
# twist (vx, vy, vz, wx, wy, wz) <- normalised (X, Y, Z, RX, RY, RZ)
AXIS_MAP = np.array([
    [0, -1, 0, 0, 0, 0],   # vx = −Y   (stick up is negative in evdev)
    [-1, 0, 0, 0, 0, 0],   # vy = −X
    [0, 0, -1, 0, 0, 1],   # vz = RT − LT
    [0, 0, 0, 0, 0, 0],    # wx from the roll buttons
    [0, 0, 0, 0, -1, 0],   # wy = −RY
    [0, 0, 0, -1, 0, 0],   # wz = −RX
], dtype=float)
BUTTONS = {
    BTN_SOUTH: "gripper_toggle", BTN_EAST: "estop", BTN_START: "estop_release",
    BTN_NORTH: "roll_plus", BTN_WEST: "roll_minus", BTN_TL: "clutch", BTN_TR: "intervene",
}
ACTIONS = ("gripper_toggle", "estop", "estop_release", "roll_plus", "roll_minus",
           "clutch", "intervene")
# (min, max, flat) used for axes the source gives no absinfo for (Xbox pad over xpad).
DEFAULT_ABSINFO = {ABS_X: (-32768, 32767, 128), ABS_Y: (-32768, 32767, 128),
                   ABS_RX: (-32768, 32767, 128), ABS_RY: (-32768, 32767, 128),
                   ABS_Z: (0, 1023, 0), ABS_RZ: (0, 1023, 0)}


class EventSource(Protocol):
    def read(self) -> Iterable:
        """Pending events, [] if none; OSError when the device is gone."""


class _EvdevSource:
    """Adapts an ``evdev.InputDevice`` to `EventSource`."""

    def __init__(self, dev):
        self.dev = dev

    def read(self):
        try:
            return [(e.type, e.code, e.value) for e in self.dev.read()]
        except BlockingIOError:
            return []

    def close(self) -> None:
        self.dev.close()


def _absinfo_tuple(info) -> tuple[float, float, float]:
    if hasattr(info, "min"):
        return float(info.min), float(info.max), float(getattr(info, "flat", 0))
    lo, hi, *flat = info
    return float(lo), float(hi), float(flat[0] if flat else 0)


@register("gamepad")
class GamepadDevice(Device):
    """Gamepad teleop (twist form).

    Args:
        events: event source (see module doc); default: the first evdev gamepad found.
        path: evdev node to open, e.g. "/dev/input/event5".
        absinfo: ``{code: (min, max, flat)}`` or evdev AbsInfo per axis; evdev devices
            report their own, missing axes take `DEFAULT_ABSINFO`.
        deadband: fraction of the normalised range ignored at rest (default 0.1).
        axis_map: 6×6 matrix, twist ← normalised axes.
        buttons: ``{code: action}``; default `BUTTONS`.
        **kwargs: `Device` scales.
    """

    def __init__(self, events: EventSource | None = None, *, path: str | None = None,
                 absinfo: dict | None = None, deadband: float = 0.1, axis_map=AXIS_MAP,
                 buttons: dict[int, str] | None = None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= deadband < 1.0:
            raise ValueError(f"deadband: must be in [0, 1), got {deadband!r}")
        M = np.asarray(axis_map, dtype=float)
        if M.shape != (6, 6) or not np.all(np.isfinite(M)):
            raise ValueError(f"axis_map: expected a finite 6x6 matrix, got shape {M.shape}")
        self.buttons = dict(BUTTONS if buttons is None else buttons)
        bad = {a for a in self.buttons.values() if a not in ACTIONS}
        if bad:
            raise ValueError(f"buttons: unknown action(s) {sorted(bad)}; known: {ACTIONS}")
        self.deadband, self.axis_map = float(deadband), M
        self._events_arg, self._path, self._absinfo_arg = events, path, absinfo
        self.events: EventSource | None = None
        self.gripper, self.estop = 1.0, False  # toggles persist across reconnects
        self._set_absinfo({})

    def _set_absinfo(self, device_absinfo: dict) -> None:
        info = {**DEFAULT_ABSINFO, **device_absinfo, **(self._absinfo_arg or {})}
        lo, hi, flat = np.array([_absinfo_tuple(info[c]) for c in AXES]).T
        if np.any(hi <= lo):
            raise ValueError(f"absinfo: max must exceed min for every axis, got {info}")
        self._lo, self._hi, self._flat = lo, hi, flat
        self._trigger = np.isin(AXES, TRIGGERS)
        self.raw = np.where(self._trigger, lo, (lo + hi) / 2.0)  # axes at rest
        self.pressed: set[int] = set()

    # -- Device ------------------------------------------------------------------------

    def _open(self) -> None:
        if self._events_arg is not None:
            self.events = self._events_arg
            self._set_absinfo({})
        else:
            self.events = self._open_evdev()

    def _close(self) -> None:
        events, self.events = self.events, None
        if events is not None and events is not self._events_arg:
            events.close()

    def _poll(self, now: float) -> Prompt:
        for ev in self.events.read():
            self.handle_event(*((ev.type, ev.code, ev.value) if hasattr(ev, "type") else ev))
        self.fresh = True
        return self.prompt(now)

    # -- mapping -----------------------------------------------------------------------

    def handle_event(self, type_: int, code: int, value: int) -> None:
        """Apply one evdev event."""
        if type_ == EV_ABS and code in AXES:
            self.raw[AXES.index(code)] = value
        elif type_ == EV_KEY:
            if value == 0:
                self.pressed.discard(code)
            elif value == 1 and code not in self.pressed:  # a press; 2 is auto-repeat
                self.pressed.add(code)
                self._press(self.buttons.get(code))

    def normalized(self) -> np.ndarray:
        """Axes ``[X, Y, Z, RX, RY, RZ]``: sticks in [−1, 1], triggers in [0, 1]."""
        lo, hi, flat = self._lo, self._hi, self._flat
        centre, half = (lo + hi) / 2.0, (hi - lo) / 2.0
        rest = np.where(self._trigger, lo, centre)
        off = self.raw - rest
        u = np.where(self._trigger, off / (hi - lo), off / half)
        u = np.where(np.abs(off) <= flat, 0.0, np.clip(u, -1.0, 1.0))
        return deadband(u, self.deadband)

    def _held(self, action: str) -> bool:
        return any(self.buttons.get(c) == action for c in self.pressed)

    def prompt(self, now: float) -> Prompt:
        """The prompt of the current state."""
        unit = self.axis_map @ self.normalized()
        unit[3] += float(self._held("roll_plus")) - float(self._held("roll_minus"))
        twist = np.clip(unit, -1.0, 1.0) * self.scale
        return Prompt(stamp=now, mode="twist", twist=twist, gripper=self.gripper,
                      clutch=self._held("clutch"), intervene=self._held("intervene"),
                      estop=self.estop)

    # -- evdev -------------------------------------------------------------------------

    def _open_evdev(self) -> EventSource:
        try:
            import evdev
        except ImportError as e:
            raise DeviceUnavailable(NOT_INSTALLED, "gamepad: the Python package 'evdev' is not "
                                    f"installed ({e}); pip install 'robot_ctrl[teleop]' or "
                                    "pip install evdev (Linux only); sending zero prompts") from None
        paths = [self._path] if self._path else evdev.list_devices()
        dev = None
        for p in paths:
            try:
                d = evdev.InputDevice(p)
            except OSError as e:
                if self._path:
                    raise DeviceUnavailable(NOT_FOUND, f"gamepad: cannot open {p} ({e}); is the "
                                            "user in the 'input' group?") from None
                continue
            caps = d.capabilities(absinfo=False)
            if BTN_SOUTH in caps.get(EV_KEY, ()) and ABS_X in caps.get(EV_ABS, ()):
                dev = d
                break
            d.close()
        if dev is None:
            raise DeviceUnavailable(NOT_FOUND, "gamepad: no gamepad found among /dev/input/event* "
                                    "(is it plugged in? is the user in the 'input' group?); "
                                    "sending zero prompts")
        absinfo = {c: info for c, info in dev.capabilities(absinfo=True).get(EV_ABS, [])
                   if c in AXES}
        self._set_absinfo(absinfo)
        for c, info in absinfo.items():
            self.raw[AXES.index(c)] = info.value  # current positions, e.g. a stick held at start
        self.pressed = set(dev.active_keys())
        return _EvdevSource(dev)
