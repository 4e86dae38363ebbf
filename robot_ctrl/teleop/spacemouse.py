"""3Dconnexion SpaceMouse through hidapi, with the HID reports parsed here.

Reports (all values little-endian int16, about ±350 at full deflection):

* id 1, 7 bytes: translation ``(x, y, z)``; id 1, 13 bytes (newer/wireless models):
  translation then rotation ``(rx, ry, rz)``;
* id 2, 7 bytes: rotation ``(rx, ry, rz)``;
* id 3: button bitmask (bit k = button k); other ids (battery, ...) are ignored.

Axes. The raw HID frame is right-handed with +x right, +y toward the user, +z down
(push the cap down), and rotations about those axes (the "HID" convention documented by
pyspacemouse; its ``Z_UP`` convention negates y and z). The robot base frame here has
+x forward (away from the operator, who stands behind the robot facing the same way),
+y left, +z up, so with the default ``axes_to_base``::

    base = A @ hid,   A = [[0, -1, 0], [-1, 0, 0], [0, 0, -1]]   (det +1)

push away → +x, push left → +y, lift → +z; the same proper rotation maps the rotation
vector, so twisting the cap counter-clockwise (seen from above) → +yaw. Pass another 3×3
rotation for a different operator position.

Scaling: each axis ``u = clip(raw / full_scale, −1, 1)``, then a deadband rescaled to stay
continuous, ``sign(u) · max(|u| − d, 0) / (1 − d)``, then × max speed.

Buttons (default; bit 0/1 are left/right on SpaceNavigator, Compact and Wireless):
bit 0 = gripper toggle (on press), bit 1 = clutch (held). Other actions for ``buttons``:
``"intervene"`` (held), ``"estop"`` (latched), ``"estop_release"``.
"""
from __future__ import annotations

from typing import Protocol

import numpy as np

from .base import NOT_FOUND, NOT_INSTALLED, Device, DeviceUnavailable, deadband, register
from .schema import Prompt

LOGITECH, THREEDCONNEXION = 0x046D, 0x256F
# Known SpaceMouse (vendor, product) ids; any product of the 3Dconnexion vendor id is tried too.
KNOWN_IDS = {
    (LOGITECH, pid) for pid in (0xC603, 0xC625, 0xC626, 0xC627, 0xC628, 0xC629, 0xC62B)
}
AXES_TO_BASE = np.array([[0.0, -1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])
ACTIONS = ("gripper_toggle", "clutch", "intervene", "estop", "estop_release")


class HidReader(Protocol):
    def read(self, size: int, timeout_ms: int) -> bytes:
        """One HID report (report id first), b"" if none pending; OSError when unplugged."""


class _HidapiReader:
    """Adapts `hidapi` (``hid.device``) and `hid` (``hid.Device``) objects to `HidReader`."""

    def __init__(self, dev):
        self.dev = dev

    def read(self, size: int, timeout_ms: int) -> bytes:
        try:
            return bytes(self.dev.read(size, timeout_ms))
        except OSError:
            raise
        except Exception as e:  # the `hid` package raises HIDException: report it as I/O
            raise OSError(str(e)) from e

    def close(self) -> None:
        self.dev.close()


def _int16s(data: bytes, offset: int) -> np.ndarray:
    return np.frombuffer(data, dtype="<i2", count=3, offset=offset).astype(float)


@register("spacemouse")
class SpaceMouseDevice(Device):
    """SpaceMouse teleop (twist form).

    Args:
        reader: report source with ``read(size, timeout_ms) -> bytes``; default: open the
            first SpaceMouse found with hidapi.
        vendor_id, product_id, path: pick a specific HID device.
        deadband: fraction of full scale ignored around rest (default 0.1).
        full_scale: raw count at full deflection (default 350).
        axes_to_base: 3×3 rotation from the HID frame to the robot base frame.
        buttons: ``{bit: action}``; default ``{0: "gripper_toggle", 1: "clutch"}``.
        max_reports: most reports drained per poll.
        **kwargs: `Device` scales.
    """

    def __init__(self, reader: HidReader | None = None, *, vendor_id: int | None = None,
                 product_id: int | None = None, path: bytes | str | None = None,
                 deadband: float = 0.1, full_scale: float = 350.0, axes_to_base=AXES_TO_BASE,
                 buttons: dict[int, str] | None = None, max_reports: int = 256, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= deadband < 1.0:
            raise ValueError(f"deadband: must be in [0, 1), got {deadband!r}")
        if not full_scale > 0:
            raise ValueError(f"full_scale: must be > 0, got {full_scale!r}")
        A = np.asarray(axes_to_base, dtype=float)
        if A.shape != (3, 3) or not np.allclose(A @ A.T, np.eye(3), atol=1e-6) \
                or np.linalg.det(A) < 0:
            raise ValueError("axes_to_base: must be a 3x3 rotation matrix (orthonormal, det +1)")
        self.buttons = dict({0: "gripper_toggle", 1: "clutch"} if buttons is None else buttons)
        bad = {a for a in self.buttons.values() if a not in ACTIONS}
        if bad:
            raise ValueError(f"buttons: unknown action(s) {sorted(bad)}; known: {ACTIONS}")
        self.deadband, self.full_scale, self.axes_to_base = float(deadband), float(full_scale), A
        self.max_reports = int(max_reports)
        self._reader_arg, self._ids, self._path = reader, (vendor_id, product_id), path
        self.reader: HidReader | None = None
        self.raw = np.zeros(6)  # latest raw (tx, ty, tz, rx, ry, rz), HID frame
        self.button_mask = 0
        self.gripper, self.estop = 1.0, False  # toggles persist across reconnects

    # -- Device ------------------------------------------------------------------------

    def _open(self) -> None:
        self.raw[:], self.button_mask = 0.0, 0
        self.reader = self._reader_arg if self._reader_arg is not None else self._open_hid()

    def _close(self) -> None:
        reader, self.reader = self.reader, None
        if reader is not None and reader is not self._reader_arg:
            reader.close()

    def _poll(self, now: float) -> Prompt:
        for _ in range(self.max_reports):
            data = self.reader.read(64, 0)
            if not data:
                break
            self.handle_report(bytes(data))
        self.fresh = True
        return self.prompt(now)

    # -- parsing -----------------------------------------------------------------------

    def handle_report(self, data: bytes) -> None:
        """Update the state from one HID report (report id in byte 0)."""
        rid = data[0]
        if rid == 1 and len(data) >= 13:
            self.raw[:] = np.concatenate([_int16s(data, 1), _int16s(data, 7)])
        elif rid == 1 and len(data) >= 7:
            self.raw[:3] = _int16s(data, 1)
        elif rid == 2 and len(data) >= 7:
            self.raw[3:] = _int16s(data, 1)
        elif rid == 3 and len(data) >= 2:
            mask = int.from_bytes(data[1:], "little")
            pressed = mask & ~self.button_mask
            for bit, action in self.buttons.items():
                if pressed >> bit & 1:
                    self._press(action)
            self.button_mask = mask

    def _held(self, action: str) -> bool:
        return any(self.button_mask >> bit & 1 for bit, a in self.buttons.items() if a == action)

    def prompt(self, now: float) -> Prompt:
        """The prompt of the current state."""
        u = deadband(np.clip(self.raw / self.full_scale, -1.0, 1.0), self.deadband)
        A = self.axes_to_base
        twist = np.concatenate([A @ u[:3], A @ u[3:]]) * self.scale
        return Prompt(stamp=now, mode="twist", twist=twist, gripper=self.gripper,
                      clutch=self._held("clutch"), intervene=self._held("intervene"),
                      estop=self.estop)

    # -- hidapi ------------------------------------------------------------------------

    def _open_hid(self) -> HidReader:
        try:
            import hid  # the `hidapi` package (hid.device) or the `hid` package (hid.Device)
        except (ImportError, OSError) as e:
            raise DeviceUnavailable(NOT_INSTALLED, "spacemouse: the Python package 'hidapi' is not "
                                    f"installed or its library is missing ({e}); "
                                    "pip install 'robot_ctrl[teleop]' or pip install hidapi; "
                                    "sending zero prompts") from None
        if self._path is not None:  # an explicit hidraw path: open it as is
            path = self._path.encode() if isinstance(self._path, str) else self._path
        else:
            vid, pid = self._ids

            def wanted(i: dict) -> bool:
                ids = (i["vendor_id"], i["product_id"])
                if vid is None and pid is None:
                    return ids[0] == THREEDCONNEXION or ids in KNOWN_IDS
                return vid in (None, ids[0]) and pid in (None, ids[1])

            infos = [i for i in hid.enumerate() if wanted(i)]
            if not infos:
                raise DeviceUnavailable(NOT_FOUND, "spacemouse: no 3Dconnexion SpaceMouse found "
                                        "(is it plugged in? on Linux the user needs read access to "
                                        "/dev/hidraw*: add a udev rule); sending zero prompts")
            # Prefer a multi-axis controller interface (usage page 1, usage 8) when reported.
            infos.sort(key=lambda i: (i.get("usage_page"), i.get("usage")) != (1, 8))
            path = infos[0]["path"]
        try:
            if hasattr(hid, "device"):
                dev = hid.device()
                dev.open_path(path)
            else:
                dev = hid.Device(path=path)
        except Exception as e:  # OSError (hidapi) or HIDException (hid)
            raise DeviceUnavailable(NOT_FOUND, f"spacemouse: cannot open {path!r} ({e}); "
                                    "check the permissions of /dev/hidraw* (udev rule)") from None
        return _HidapiReader(dev)
