"""Prompts → action chunks: teleoperation alone, and shared autonomy with a policy (HIL-SERL).

The chunk format is the tasks' action (`robot_ctrl.tasks.base`): per point an absolute hand
position (3), a 6-D rotation (6) and the gripper command (1), one point every `dt`.

**Operator chunk.** A twist prompt (v, ω in the base frame) becomes the chunk the hand would
follow at that velocity for `horizon` points, starting from the *measured* hand pose:
``p_k = p + v·(k+1)·dt``, ``R_k = exp([ω]·(k+1)·dt)·R``. Anchoring on the measured pose, not on
an integrated reference, means nothing winds up while the safety filter holds the hand back.
When the operator lets go (a zero or `none` prompt) the hand holds the pose it had at that
moment (latched, so it does not creep). A pose prompt (the clutch form) is a chunk that goes
straight to the pose at most `max_speed` per second.

**Shared autonomy** (`rule`):

* ``override`` — HIL-SERL: while the operator acts, the operator's chunk replaces the policy's;
  otherwise the policy's chunk passes unchanged.
* ``blend`` — linear blending (Dragan & Srinivasa's arbitration): while the operator acts,
  hand positions are ``α·operator + (1−α)·policy`` with ``α = alpha`` (``alpha_mode:
  constant``) or ``α = alpha·min(1, ‖v‖/max_speed)`` (``magnitude``: the harder the operator
  pushes, the more they take over). Rotation follows the operator while they command one,
  else the policy; the gripper follows the operator's button while they act.

The operator *acts* when the linear input exceeds `deadband` (m/s), the angular input
`deadband_angular` (rad/s), or the intervene button is held. Every step reports whether it did,
so the recorder flags those steps as interventions for imitation and residual RL. An e-stop
prompt gives no chunk at all (the caller publishes /estop; the safety filter stops the robot).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from robot_ctrl.control.cartesian import rot6d_from_matrix
from robot_ctrl.teleop.schema import Prompt

RULES = ("override", "blend")


@dataclass
class SharedConfig:
    rule: str = "override"
    alpha: float = 0.5               # blend: the operator's share while acting
    alpha_mode: str = "constant"     # or "magnitude"
    deadband: float = 0.01           # m/s
    deadband_angular: float = 0.05   # rad/s
    horizon: int = 8                 # points per chunk
    dt: float = 0.1                  # s between points
    max_speed: float = 0.10          # m/s: scales `magnitude` blending and limits pose prompts

    def __post_init__(self):
        if self.rule not in RULES:
            raise ValueError(f"rule must be one of {RULES}, got '{self.rule}'")
        if self.alpha_mode not in ("constant", "magnitude"):
            raise ValueError(f"alpha_mode must be 'constant' or 'magnitude', got '{self.alpha_mode}'")
        for name in ("alpha", "deadband", "deadband_angular", "dt", "max_speed"):
            v = float(getattr(self, name))
            if not np.isfinite(v) or v < 0 or (name in ("dt", "max_speed") and v == 0):
                raise ValueError(f"{name} must be a finite {'positive' if name in ('dt', 'max_speed') else 'non-negative'} "
                                 f"number, got {v}")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {self.alpha}")
        if int(self.horizon) < 1:
            raise ValueError(f"horizon must be at least 1, got {self.horizon}")


class SharedAutonomy:
    """One arbitration step per policy/teleop period (see the module doc)."""

    def __init__(self, cfg: SharedConfig | None = None, **kwargs):
        self.cfg = cfg or SharedConfig(**kwargs)
        self._k = np.arange(1, self.cfg.horizon + 1, dtype=float)[:, None]  # (H, 1)
        self.reset()

    def reset(self) -> None:
        self._hold: np.ndarray | None = None   # latched hold action (10,)
        self.interventions = 0
        self.steps = 0

    def acting(self, prompt: Prompt | None) -> bool:
        """Whether the operator takes part in this step."""
        if prompt is None or prompt.estop or prompt.mode == "none":
            return False
        if prompt.intervene:
            return True
        if prompt.mode == "twist":
            return bool(np.linalg.norm(prompt.linear) > self.cfg.deadband
                        or np.linalg.norm(prompt.angular) > self.cfg.deadband_angular)
        return True  # a pose or joint prompt is a command by itself

    def operator_chunk(self, hand_p, hand_R, prompt: Prompt, gripper: float) -> np.ndarray:
        """The operator's chunk (horizon, 10) from the measured hand pose."""
        c = self.cfg
        H = c.horizon
        out = np.empty((H, 10))
        p = np.asarray(hand_p, float)
        R = np.asarray(hand_R, float)
        if prompt.mode == "pose":
            d = np.asarray(prompt.position) - p
            dist = float(np.linalg.norm(d))
            reach = np.minimum(self._k[:, 0] * c.dt * c.max_speed, dist)
            out[:, :3] = p + (d / max(dist, 1e-12))[None] * reach[:, None]
            w, x, y, z = prompt.quaternion
            Rt = Rotation.from_quat([x, y, z, w]).as_matrix()
            out[:, 3:9] = rot6d_from_matrix(Rt)
        else:
            v = prompt.linear if prompt.mode == "twist" else np.zeros(3)
            w = prompt.angular if prompt.mode == "twist" else np.zeros(3)
            out[:, :3] = p + self._k * c.dt * v
            if np.linalg.norm(w) > 0:
                Rk = Rotation.from_rotvec(self._k * c.dt * w).as_matrix() @ R
                out[:, 3:9] = np.stack([rot6d_from_matrix(m) for m in Rk])
            else:
                out[:, 3:9] = rot6d_from_matrix(R)
        out[:, 9] = float(np.clip(gripper, -1.0, 1.0))
        return out

    def step(self, hand_p, hand_R, prompt: Prompt | None, policy_chunk: np.ndarray | None = None,
             gripper: float = 1.0) -> tuple[np.ndarray | None, bool]:
        """(chunk (horizon', 10) or None, operator acted). `gripper` is the current gripper
        command (kept while the operator does not set one). No chunk: e-stop. With a policy
        chunk, the result has the policy chunk's length."""
        self.steps += 1
        if prompt is not None and prompt.estop:
            self._hold = None
            return None, False
        acting = self.acting(prompt)
        g = float(prompt.gripper) if (prompt is not None and acting) else gripper
        if policy_chunk is not None:
            pc = np.asarray(policy_chunk, float)
            if pc.ndim != 2 or pc.shape[1] != 10 or not np.all(np.isfinite(pc)):
                raise ValueError(f"policy chunk must be finite with shape (H, 10), got {pc.shape}")
            self._hold = None
            if not acting:
                return pc, False
            self.interventions += 1
            op = self._fit(self.operator_chunk(hand_p, hand_R, prompt, g), len(pc))
            if self.cfg.rule == "override":
                return op, True
            alpha = self.cfg.alpha
            if self.cfg.alpha_mode == "magnitude" and prompt.mode == "twist":
                alpha *= min(1.0, float(np.linalg.norm(prompt.linear)) / self.cfg.max_speed)
            out = pc.copy()
            out[:, :3] = alpha * op[:, :3] + (1.0 - alpha) * pc[:, :3]
            if prompt.mode == "pose" or (prompt.mode == "twist"
                                         and np.linalg.norm(prompt.angular) > self.cfg.deadband_angular):
                out[:, 3:9] = op[:, 3:9]
            out[:, 9] = op[:, 9]
            return out, True
        # teleoperation alone: the gripper follows the prompt's button state whenever there is one
        g = float(prompt.gripper) if prompt is not None else gripper
        if acting:
            self.interventions += 1
            self._hold = None
            return self.operator_chunk(hand_p, hand_R, prompt, g), True
        if self._hold is None:
            self._hold = np.concatenate([np.asarray(hand_p, float), rot6d_from_matrix(np.asarray(hand_R, float)), [g]])
        self._hold[9] = g
        return np.tile(self._hold, (self.cfg.horizon, 1)), False

    @staticmethod
    def _fit(chunk: np.ndarray, n: int) -> np.ndarray:
        """`chunk` cut or padded (last point held) to n points."""
        if len(chunk) >= n:
            return chunk[:n]
        return np.concatenate([chunk, np.repeat(chunk[-1:], n - len(chunk), axis=0)])
