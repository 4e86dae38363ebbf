"""The one prompt schema every teleop device produces, plus the deadman and the pose clutch.

A `Prompt` carries one of four command forms (``mode``) and the buttons:

==========  ==============================================================================
mode        meaning
==========  ==============================================================================
``twist``   end-effector velocity ``twist = (vx, vy, vz, wx, wy, wz)``, m/s and rad/s, in
            the robot base frame (-> ``geometry_msgs/TwistStamped``)
``pose``    absolute end-effector target ``(position, quaternion wxyz)`` in the base frame,
            built by `Clutch` as clutch reference ∘ device delta (-> ``PoseStamped``)
``joints``  joint targets of a leader arm, by name (-> ``sensor_msgs/JointState``)
``none``    no operator command (a zero prompt; the twist is zero)
==========  ==============================================================================

Buttons (-> ``sensor_msgs/Joy``): ``gripper`` in [-1 closed, +1 open] (a command, so the
"no change" value of a zero prompt is the last one, not 0), ``clutch``, ``intervene``,
``estop``.

Quaternions are ``wxyz`` (project convention). A prompt never holds NaN or Inf: the
constructor validates every field and raises a ValueError naming the field.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

MODES = ("twist", "pose", "joints", "none")
QUAT_TOL = 1e-3  # |‖q‖ − 1| up to this is renormalised; beyond it the quaternion is rejected
_IDENTITY = (1.0, 0.0, 0.0, 0.0)


# ---------------------------------------------------------------------------------------
# Quaternion helpers (wxyz, numpy)
# ---------------------------------------------------------------------------------------

def quat_mul(a, b) -> np.ndarray:
    """Hamilton product a ⊗ b (wxyz): the rotation b followed by a."""
    aw, ax, ay, az = np.asarray(a, dtype=float)
    bw, bx, by, bz = np.asarray(b, dtype=float)
    return np.array([
        aw * bw - ax * bx - ay * by - az * bz,
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
    ])


def quat_conj(q) -> np.ndarray:
    """Conjugate (= inverse of a unit quaternion)."""
    q = np.asarray(q, dtype=float)
    return np.array([q[0], -q[1], -q[2], -q[3]])


def quat_rotate(q, v) -> np.ndarray:
    """Rotate vector v by unit quaternion q: R(q) v."""
    q = np.asarray(q, dtype=float)
    w, u = q[0], q[1:]
    v = np.asarray(v, dtype=float)
    t = 2.0 * np.cross(u, v)
    return v + w * t + np.cross(u, t)


def _check_quat(q, name: str) -> np.ndarray:
    q = _vec(q, 4, name)
    norm = float(np.linalg.norm(q))
    if abs(norm - 1.0) > QUAT_TOL:
        raise ValueError(f"{name}: not a unit quaternion (norm {norm:.6g}, wxyz {q.tolist()}); "
                         f"norms within {QUAT_TOL} of 1 are renormalised")
    return q / norm


def _vec(x, n: int, name: str) -> np.ndarray:
    try:
        a = np.array(x, dtype=float)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name}: not numeric ({e})") from None
    if a.shape != (n,):
        raise ValueError(f"{name}: expected shape ({n},), got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name}: contains NaN or Inf: {a.tolist()}")
    return a


def _scalar(x, name: str) -> float:
    try:
        v = float(x)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a number, got {x!r}") from None
    if not np.isfinite(v):
        raise ValueError(f"{name}: NaN or Inf ({v})")
    return v


def _frozen(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


# ---------------------------------------------------------------------------------------
# Prompt
# ---------------------------------------------------------------------------------------

@dataclass(eq=False)
class Prompt:
    """One operator prompt. Arrays are copied, validated and made read-only on construction;
    derive changed prompts with `dataclasses.replace` (which validates again)."""

    stamp: float = 0.0
    mode: str = "none"
    twist: np.ndarray = field(default_factory=lambda: np.zeros(6))
    position: np.ndarray = field(default_factory=lambda: np.zeros(3))
    quaternion: np.ndarray = field(default_factory=lambda: np.array(_IDENTITY))
    joint_names: tuple[str, ...] = ()
    joint_positions: np.ndarray = field(default_factory=lambda: np.zeros(0))
    gripper: float = 1.0
    clutch: bool = False
    intervene: bool = False
    estop: bool = False

    def __post_init__(self):
        self.validate()

    def validate(self) -> Prompt:
        """Check and normalise every field in place; ValueError naming the field otherwise."""
        self.stamp = _scalar(self.stamp, "stamp")
        if self.mode not in MODES:
            raise ValueError(f"mode: {self.mode!r} is not one of {MODES}")
        self.twist = _frozen(_vec(self.twist, 6, "twist"))
        self.position = _frozen(_vec(self.position, 3, "position"))
        self.quaternion = _frozen(_check_quat(self.quaternion, "quaternion"))
        if isinstance(self.joint_names, str):
            raise ValueError("joint_names: expected a sequence of names, got one string")
        names = tuple(self.joint_names)
        if not all(isinstance(n, str) and n for n in names):
            raise ValueError(f"joint_names: every name must be a non-empty string, got {names}")
        if len(set(names)) != len(names):
            raise ValueError(f"joint_names: duplicate names in {names}")
        self.joint_names = names
        self.joint_positions = _frozen(_vec(self.joint_positions, len(names), "joint_positions"))
        if self.mode == "joints" and not names:
            raise ValueError("joint_names: mode 'joints' needs at least one joint")
        g = _scalar(self.gripper, "gripper")
        if not -1.0 - 1e-9 <= g <= 1.0 + 1e-9:
            raise ValueError(f"gripper: {g} outside [-1 (closed), +1 (open)]")
        self.gripper = float(np.clip(g, -1.0, 1.0))
        for name in ("clutch", "intervene", "estop"):
            v = getattr(self, name)
            if not (isinstance(v, (bool, np.bool_))
                    or (isinstance(v, (int, np.integer)) and v in (0, 1))):
                raise ValueError(f"{name}: expected a bool, got {v!r}")
            setattr(self, name, bool(v))
        return self

    # -- constructors / derived prompts ---------------------------------------------------

    @classmethod
    def zero(cls, stamp: float, *, gripper: float = 1.0, estop: bool = False) -> Prompt:
        """No operator command: mode 'none', zero twist. `gripper` keeps its last command."""
        return cls(stamp=stamp, mode="none", gripper=gripper, estop=estop)

    def hold(self, stamp: float) -> Prompt:
        """Hold still: the same prompt with zero twist (pose and joint targets, buttons kept)."""
        return dataclasses.replace(self, stamp=stamp, twist=np.zeros(6))

    def with_stamp(self, stamp: float) -> Prompt:
        return dataclasses.replace(self, stamp=stamp)

    @property
    def linear(self) -> np.ndarray:
        return self.twist[:3]

    @property
    def angular(self) -> np.ndarray:
        return self.twist[3:]

    # -- comparison and serialisation -----------------------------------------------------

    def __eq__(self, other) -> bool:
        if not isinstance(other, Prompt):
            return NotImplemented
        return all(
            np.array_equal(getattr(self, f.name), getattr(other, f.name))
            if isinstance(getattr(self, f.name), np.ndarray)
            else getattr(self, f.name) == getattr(other, f.name)
            for f in dataclasses.fields(self)
        )

    __hash__ = None

    def to_dict(self) -> dict:
        """Plain JSON-able dict (lists for arrays)."""
        out = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            out[f.name] = v.tolist() if isinstance(v, np.ndarray) else (
                list(v) if isinstance(v, tuple) else v)
        return out

    @classmethod
    def from_dict(cls, d: dict) -> Prompt:
        """Inverse of `to_dict`; missing keys take defaults, unknown keys are an error."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"prompt: unknown field(s) {sorted(unknown)}; known: {sorted(known)}")
        return cls(**d)


# ---------------------------------------------------------------------------------------
# Deadman
# ---------------------------------------------------------------------------------------

class Deadman:
    """Passes fresh prompts through; after `timeout` s without input, zero or hold.

    ``update(now, prompt)`` with a prompt records it as the latest input and returns it;
    with ``None`` (no new input this cycle) it returns the last prompt while
    ``now − t_last <= timeout``, and afterwards (``tripped``):

    * ``"zero"``: `Prompt.zero` (mode 'none', zero twist), keeping the last gripper command
      and e-stop flag, releasing clutch and intervene;
    * ``"hold"``: ``last.hold(now)`` (zero twist, pose/joint targets and buttons kept).
    """

    BEHAVIOURS = ("zero", "hold")

    def __init__(self, timeout: float = 0.25, behaviour: str = "zero"):
        timeout = _scalar(timeout, "timeout")
        if timeout <= 0.0:
            raise ValueError(f"timeout: must be > 0 s, got {timeout}")
        if behaviour not in self.BEHAVIOURS:
            raise ValueError(f"behaviour: {behaviour!r} is not one of {self.BEHAVIOURS}")
        self.timeout = timeout
        self.behaviour = behaviour
        self.reset()

    def reset(self) -> None:
        self.last: Prompt | None = None
        self.t_last = -np.inf
        self.tripped = False

    def update(self, now: float, prompt: Prompt | None = None) -> Prompt:
        if prompt is not None:
            self.last, self.t_last, self.tripped = prompt, float(now), False
            return prompt
        if self.last is None:
            self.tripped = True
            return Prompt.zero(now)
        if now - self.t_last <= self.timeout:
            return self.last
        self.tripped = True
        if self.behaviour == "hold":
            return self.last.hold(now)
        return Prompt.zero(now, gripper=self.last.gripper, estop=self.last.estop)


# ---------------------------------------------------------------------------------------
# Clutch (pose form)
# ---------------------------------------------------------------------------------------

class Clutch:
    """Absolute pose target from a device pose and a clutch button.

    On the press edge it captures the robot's end-effector pose ``T_ref = (p_r, q_r)`` and
    the device pose ``T_d0 = (p_0, q_0)``. While held, with the device at ``(p, q)``:

    * ``frame="base"`` (default; the device axes are aligned with the robot base):
      ``p* = p_r + (p − p_0)``, ``q* = (q ⊗ q_0⁻¹) ⊗ q_r`` — the device's motion, in the base
      frame, applied to the reference;
    * ``frame="ee"``: ``T* = T_ref ∘ (T_d0⁻¹ ∘ T_d)``, i.e. ``p* = p_r + R_r R_0ᵀ (p − p_0)``,
      ``q* = q_r ⊗ q_0⁻¹ ⊗ q`` — the delta expressed in the device frame at the press and
      applied in the end-effector frame.

    On release the target holds. ``target`` is None until the first press.
    """

    FRAMES = ("base", "ee")

    def __init__(self, frame: str = "base"):
        if frame not in self.FRAMES:
            raise ValueError(f"frame: {frame!r} is not one of {self.FRAMES}")
        self.frame = frame
        self.engaged = False
        self.target: tuple[np.ndarray, np.ndarray] | None = None
        self._ref = self._dev0 = None

    def update(self, pressed: bool, device_position, device_quaternion,
               robot_position=None, robot_quaternion=None):
        """Advance one cycle; returns the target ``(position, quaternion)`` or None."""
        p = _vec(device_position, 3, "device_position")
        q = _check_quat(device_quaternion, "device_quaternion")
        if pressed and not self.engaged:
            if robot_position is not None and robot_quaternion is not None:
                ref = (_vec(robot_position, 3, "robot_position"),
                       _check_quat(robot_quaternion, "robot_quaternion"))
            elif self.target is not None:
                ref = self.target
            else:
                raise ValueError("robot_position/robot_quaternion: the robot's end-effector pose "
                                 "is needed when the clutch is first pressed")
            self._ref, self._dev0 = ref, (p, q)
        self.engaged = bool(pressed)
        if self.engaged:
            (pr, qr), (p0, q0) = self._ref, self._dev0
            if self.frame == "base":
                pos = pr + (p - p0)
                quat = quat_mul(quat_mul(q, quat_conj(q0)), qr)
            else:
                pos = pr + quat_rotate(qr, quat_rotate(quat_conj(q0), p - p0))
                quat = quat_mul(qr, quat_mul(quat_conj(q0), q))
            self.target = (pos, quat / np.linalg.norm(quat))
        return self.target
