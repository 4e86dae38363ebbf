"""Terminal keyboard device: raw bytes from a tty (works over ``ssh -t``).

The terminal is put in cbreak mode (no line buffering, no echo; Ctrl-C still interrupts)
with termios and restored on close; reads are non-blocking (select). Twists are in the
robot base frame (x forward, y left, z up), at the device's max speeds.

=================  ==========================================================
key                command
=================  ==========================================================
``w`` / ``s``      +x / −x  (forward / back)
``a`` / ``d``      +y / −y  (left / right)
``r`` / ``f``      +z / −z  (up / down)
``u`` / ``o``      +roll / −roll   (about x)
``i`` / ``k``      +pitch / −pitch (about y); also arrow ↑ / ↓
``j`` / ``l``      +yaw / −yaw     (about z, + = counter-clockwise from above);
                   also arrow ← / →
space              gripper toggle (starts open, +1 ↔ −1)
``c``              clutch toggle
``v``              intervene toggle
Esc or ``x``       e-stop (latched in the device)
``R`` (shift-r)    release the device's e-stop latch (the safety filter has its own reset)
``0``              stop: all motion to zero at once
=================  ==========================================================

Terminals send no key-up events: a key press holds its velocity for ``key_hold`` s (longer
than the auto-repeat interval, ~30 ms), so a held key moves continuously and a released key
stops within ``key_hold``. Each axis holds independently; the opposite key on an axis
replaces it. Most terminals wait 250–600 ms before auto-repeat starts, so a held key moves
for ``key_hold``, pauses, then moves continuously. Keys are case-sensitive (caps lock off).
A lone Esc is taken as e-stop at once, even when it ends a read (the safe reading of an
arrow-key sequence split across reads, which almost never happens).
"""
from __future__ import annotations

import os
import select
import sys
import termios

import numpy as np

from .base import NOT_A_TTY, Device, DeviceUnavailable, register
from .schema import Prompt

ESC = 0x1B

# key byte -> (twist index 0..5, sign)
MOTION_KEYS: dict[int, tuple[int, float]] = {
    ord("w"): (0, +1.0), ord("s"): (0, -1.0),
    ord("a"): (1, +1.0), ord("d"): (1, -1.0),
    ord("r"): (2, +1.0), ord("f"): (2, -1.0),
    ord("u"): (3, +1.0), ord("o"): (3, -1.0),
    ord("i"): (4, +1.0), ord("k"): (4, -1.0),
    ord("j"): (5, +1.0), ord("l"): (5, -1.0),
}
# final byte of ESC [ X / ESC O X arrow sequences -> the letter key it aliases
ARROWS = {ord("A"): ord("i"), ord("B"): ord("k"), ord("D"): ord("j"), ord("C"): ord("l")}


@register("keyboard")
class KeyboardDevice(Device):
    """Keyboard teleop on a terminal file descriptor.

    Args:
        fd: file descriptor of a tty; default stdin's.
        path: open this tty instead (e.g. "/dev/tty"); closed on close.
        key_hold: s a key press keeps its velocity (default 0.15).
        **kwargs: `Device` scales.
    """

    def __init__(self, fd: int | None = None, *, path: str | None = None,
                 key_hold: float = 0.15, **kwargs):
        super().__init__(**kwargs)
        if not (np.isfinite(key_hold) and key_hold > 0.0):
            raise ValueError(f"key_hold: must be > 0 s, got {key_hold!r}")
        self.key_hold = float(key_hold)
        self._fd_arg, self._path = fd, path
        self.fd: int | None = None
        self._own_fd = False
        self._saved_attrs = None
        self.gripper = 1.0  # toggles persist across reconnects
        self.clutch = self.intervene = self.estop = False
        self._reset_motion()

    def _reset_motion(self) -> None:
        self._sign = np.zeros(6)           # direction per twist axis
        self._until = np.full(6, -np.inf)  # hold deadline per axis
        self._pending = b""                # an escape sequence split across reads
        self._esc_tail = False             # the previous read ended with a lone Esc

    # -- Device ------------------------------------------------------------------------

    def _open(self) -> None:
        self._reset_motion()
        if self._path is not None:
            try:
                self.fd = os.open(self._path, os.O_RDONLY | os.O_NOCTTY)
            except OSError as e:
                raise DeviceUnavailable(NOT_A_TTY, f"keyboard: cannot open {self._path}: {e}") from None
            self._own_fd = True
        elif self._fd_arg is not None:
            self.fd = self._fd_arg
        else:
            try:
                self.fd = sys.stdin.fileno()
            except (AttributeError, ValueError, OSError):
                raise DeviceUnavailable(NOT_A_TTY, "keyboard: stdin has no file descriptor; run in "
                                        "an interactive terminal or pass path='/dev/tty'") from None
        if not os.isatty(self.fd):
            where = self._path or f"fd {self.fd}"
            self._close()
            raise DeviceUnavailable(NOT_A_TTY, f"keyboard: {where} is not a terminal (tty); run "
                                    "in an interactive terminal (over SSH use `ssh -t`); "
                                    "sending zero prompts")
        self._saved_attrs = termios.tcgetattr(self.fd)
        mode = termios.tcgetattr(self.fd)
        mode[3] &= ~(termios.ICANON | termios.ECHO)  # lflag: cbreak, no echo; ISIG kept
        mode[6][termios.VMIN] = 0
        mode[6][termios.VTIME] = 0
        termios.tcsetattr(self.fd, termios.TCSANOW, mode)

    def _close(self) -> None:
        fd, self.fd = self.fd, None
        if fd is None:
            return
        try:
            if self._saved_attrs is not None:
                termios.tcsetattr(fd, termios.TCSADRAIN, self._saved_attrs)
        except (termios.error, OSError):
            pass
        finally:
            self._saved_attrs = None
            if self._own_fd:
                self._own_fd = False
                os.close(fd)

    def _poll(self, now: float) -> Prompt:
        data = self._read_pending()
        if data is None:
            raise OSError(f"terminal {self.fd} hung up")
        self.handle_bytes(data, now)
        self.fresh = True
        active = now < self._until
        twist = np.where(active, self._sign, 0.0) * self.scale
        return Prompt(stamp=now, mode="twist", twist=twist, gripper=self.gripper,
                      clutch=self.clutch, intervene=self.intervene, estop=self.estop)

    # -- input -------------------------------------------------------------------------

    def _read_pending(self) -> bytes | None:
        """All bytes available now; None on hang-up (EOF)."""
        chunks = []
        for _ in range(64):  # bounded: a flood of input cannot stall the poll
            if not select.select([self.fd], [], [], 0.0)[0]:
                break
            try:
                b = os.read(self.fd, 1024)
            except BlockingIOError:
                break
            if not b:
                if chunks:
                    break
                return None
            chunks.append(b)
        return b"".join(chunks)

    def handle_bytes(self, data: bytes, now: float) -> None:
        """Apply key bytes received at time `now` to the device state."""
        if not data:
            return
        if self._esc_tail and data[:1] in (b"[", b"O"):
            data = data[2:]  # the rest of an arrow sequence whose Esc already fired e-stop
        self._esc_tail = False
        data = self._pending + data
        self._pending = b""
        i, n = 0, len(data)
        while i < n:
            b = data[i]
            if b != ESC:
                self._key(b, now)
                i += 1
            elif i + 1 == n:  # a lone Esc at the end of the read: e-stop now
                self.estop = True
                self._esc_tail = True
                i += 1
            elif data[i + 1] not in (ord("["), ord("O")):  # Esc followed by another key
                self.estop = True
                i += 1
            else:  # ESC [ params final  /  ESC O final
                j = i + 2
                while j < n and 0x20 <= data[j] <= 0x3F:  # parameter/intermediate bytes
                    j += 1
                if j == n:
                    self._pending = data[i:]  # sequence split across reads: finish next time
                    return
                if j == i + 2 and data[j] in ARROWS:
                    self._motion(ARROWS[data[j]], now)
                i = j + 1

    def _key(self, b: int, now: float) -> None:
        if b in MOTION_KEYS:
            self._motion(b, now)
        elif b == ord(" "):
            self.gripper = -self.gripper
        elif b == ord("c"):
            self.clutch = not self.clutch
        elif b == ord("v"):
            self.intervene = not self.intervene
        elif b == ord("x"):
            self.estop = True
        elif b == ord("R"):
            self.estop = False
        elif b == ord("0"):
            self._sign[:] = 0.0
            self._until[:] = -np.inf

    def _motion(self, key: int, now: float) -> None:
        axis, sign = MOTION_KEYS[key]
        self._sign[axis] = sign
        self._until[axis] = now + self.key_hold

