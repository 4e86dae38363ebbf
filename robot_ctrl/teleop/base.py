"""Abstract teleop `Device`, the device registry and `make_device`.

A device turns its hardware input into `Prompt`s. The contract:

* ``open()`` connects. A missing package, a missing device or a non-tty never raises:
  ``status`` names the problem (``not_installed``, ``not_found``, ``not_a_tty``, ...),
  ``error`` says it in words (logged once), and ``poll`` returns zero prompts.
* ``poll(now) -> Prompt`` never raises for an unplugged device: an ``OSError`` from the
  hardware sets ``status = "disconnected"`` and returns a zero prompt (which keeps the last
  gripper command). With ``reconnect_period`` set, a failed device is reopened that often.
* ``fresh`` says whether this poll's prompt reflects live input. Devices that report their
  state (keyboard with its key hold, gamepad, SpaceMouse) are fresh while healthy; stream
  devices (replay, web) only when a new message arrived — feed
  ``deadman.update(now, p if dev.fresh else None)``.
* ``close()`` releases the hardware; a device is a context manager.

Subclasses implement ``_open``, ``_poll`` and ``_close``; ``_open`` raises
`DeviceUnavailable` with a status and a message for the cases above.
"""
from __future__ import annotations

import abc
import importlib
import logging
from collections.abc import Callable

import numpy as np

from .schema import Prompt

log = logging.getLogger(__name__)

# Status values.
CLOSED, OK, NOT_INSTALLED, NOT_FOUND, NOT_A_TTY, DISCONNECTED, ENDED = (
    "closed", "ok", "not_installed", "not_found", "not_a_tty", "disconnected", "ended")

DEVICES: dict[str, type[Device]] = {}
_BUILTIN_MODULES = ("keyboard", "gamepad", "spacemouse", "replay", "web")


class DeviceUnavailable(Exception):
    """Raised by ``_open`` when the device cannot be used; carries a status value."""

    def __init__(self, status: str, message: str):
        super().__init__(message)
        self.status = status


def deadband(u: np.ndarray, d: float) -> np.ndarray:
    """Zero inside ``|u| <= d``, rescaled linearly outside so that ±1 still maps to ±1."""
    return np.sign(u) * np.maximum(np.abs(u) - d, 0.0) / (1.0 - d)


def register(name: str) -> Callable[[type[Device]], type[Device]]:
    """Class decorator: make a device available to `make_device` under `name`."""

    def deco(cls):
        if name in DEVICES and DEVICES[name] is not cls:
            raise ValueError(f"device name {name!r} already registered by {DEVICES[name].__name__}")
        DEVICES[name] = cls
        cls.name = name
        return cls

    return deco


def make_device(name: str, **kwargs) -> Device:
    """Instantiate a registered device by name (not opened)."""
    for mod in _BUILTIN_MODULES:
        importlib.import_module(f"{__package__}.{mod}")
    try:
        cls = DEVICES[name]
    except KeyError:
        raise ValueError(f"unknown teleop device {name!r}; known devices: "
                         f"{', '.join(sorted(DEVICES))}") from None
    return cls(**kwargs)


class Device(abc.ABC):
    """Base class of every teleop device.

    Args:
        max_linear_speed: m/s at full deflection (default 0.10).
        max_angular_speed: rad/s at full deflection (default 0.5).
        reconnect_period: s between reopen attempts after a failure; None = never.
    """

    name = "device"

    def __init__(self, *, max_linear_speed: float = 0.10, max_angular_speed: float = 0.5,
                 reconnect_period: float | None = None):
        for key, v in (("max_linear_speed", max_linear_speed),
                       ("max_angular_speed", max_angular_speed)):
            if not (np.isfinite(v) and v > 0.0):
                raise ValueError(f"{key}: must be a finite number > 0, got {v!r}")
        if reconnect_period is not None and not reconnect_period > 0.0:
            raise ValueError(f"reconnect_period: must be > 0 s or None, got {reconnect_period!r}")
        self.max_linear_speed = float(max_linear_speed)
        self.max_angular_speed = float(max_angular_speed)
        self.reconnect_period = reconnect_period
        self.scale = np.array([self.max_linear_speed] * 3 + [self.max_angular_speed] * 3)
        self.status = CLOSED
        self.error: str | None = None
        self.fresh = False
        self.last: Prompt | None = None
        self._t_retry = -np.inf

    # -- public API --------------------------------------------------------------------

    @property
    def ok(self) -> bool:
        return self.status == OK

    def open(self) -> Device:
        """Connect; never raises for a missing device (see ``status`` / ``error``)."""
        try:
            self._open()
        except DeviceUnavailable as e:
            self._fail(e.status, str(e))
        else:
            self.status, self.error = OK, None
        return self

    def poll(self, now: float) -> Prompt:
        """The current prompt at time `now` (s). Zero prompt while the device is not ok."""
        if self.status not in (OK, CLOSED, ENDED) and self.reconnect_period is not None \
                and now >= self._t_retry:
            self._t_retry = now + self.reconnect_period
            self._close_quietly()
            self.open()
        if not self.ok:
            self.fresh = False
            return self._zero(now)
        try:
            prompt = self._poll(now)
        except BlockingIOError:  # a non-blocking read with nothing pending is not a failure
            self.fresh = False
            return self.last if self.last is not None else self._zero(now)
        except OSError as e:
            self._fail(DISCONNECTED, f"{self.name}: device read failed ({e}); "
                                     f"is it unplugged? sending zero prompts")
            self._t_retry = now + (self.reconnect_period or 0.0)
            self.fresh = False
            return self._zero(now)
        self.last = prompt
        return prompt

    def close(self) -> None:
        """Release the hardware (idempotent)."""
        self._close_quietly()
        self.status, self.fresh = CLOSED, False

    def __enter__(self) -> Device:
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} status={self.status}>"

    # -- for subclasses ----------------------------------------------------------------

    @abc.abstractmethod
    def _open(self) -> None:
        """Connect; raise `DeviceUnavailable` for a missing package/device."""

    @abc.abstractmethod
    def _poll(self, now: float) -> Prompt:
        """Read pending input and return the prompt; set ``self.fresh``. May raise OSError."""

    def _close(self) -> None:
        """Release the hardware."""

    def _press(self, action: str | None) -> None:
        """A button press's latched effect, for devices with `gripper` and `estop` state."""
        if action == "gripper_toggle":
            self.gripper = -self.gripper
        elif action == "estop":
            self.estop = True
        elif action == "estop_release":
            self.estop = False

    def _zero(self, now: float) -> Prompt:
        """Zero prompt keeping the last gripper command and e-stop flag."""
        if self.last is None:
            return Prompt.zero(now)
        return Prompt.zero(now, gripper=self.last.gripper, estop=self.last.estop)

    def _fail(self, status: str, message: str) -> None:
        if (status, message) != (self.status, self.error):
            log.warning("%s", message)
        self.status, self.error = status, message

    def _close_quietly(self) -> None:
        try:
            self._close()
        except OSError as e:  # closing an unplugged device may fail; nothing to do about it
            log.debug("%s: close failed: %s", self.name, e)
