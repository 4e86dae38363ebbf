"""Robot description from one YAML file in config/robots/.

A robot is a URDF plus a few choices: which joints the stack controls, the end-effector
frame, the home configuration, limit overrides and default gains. Adding a robot means
adding a YAML file; no code.

    name: panda
    urdf: package://example-robot-data/robots/panda_description/urdf/panda.urdf
    controlled_joints: [panda_joint1, ...]
    ee_frame: panda_hand_tcp
    home: [0.0, -0.785, ...]            # one value per controlled joint
    limits:                             # optional per-joint overrides
      panda_joint1: {effort: 80.0, velocity: 2.0, lower: -2.8, upper: 2.8}
    gains:                              # defaults for the controller and sim servos
      kp: [...]                         # 1/s^2, computed-torque stiffness per joint
      kd: [...]                         # 1/s
    base_pos: [0.0, 0.0, 0.0]           # robot base in the scene (world) frame
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from robot_ctrl.paths import ResourceNotFound, config_path, resolve_uri


class RobotConfigError(ValueError):
    """A robot YAML file is malformed; the message names the file and the key."""


LIMIT_KEYS = ("lower", "upper", "velocity", "effort")


@dataclass
class RobotConfig:
    name: str
    urdf: Path
    controlled_joints: list[str]
    ee_frame: str
    home: list[float]
    limits: dict[str, dict[str, float]] = field(default_factory=dict)
    kp: list[float] | None = None
    kd: list[float] | None = None
    base_pos: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    armature: dict[str, float] = field(default_factory=dict)  # joint -> reflected rotor inertia
    source: Path | None = None

    @property
    def n(self) -> int:
        return len(self.controlled_joints)


def available_robots() -> list[str]:
    return sorted(p.stem for p in config_path("robots").glob("*.yaml"))


def robot_yaml_path(name_or_path: str) -> Path:
    """`panda` -> config/robots/panda.yaml; an existing path is used as is."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml"):
        if not p.exists():
            raise ResourceNotFound(f"robot file not found: {p}")
        return p
    candidate = config_path("robots", f"{name_or_path}.yaml")
    if not candidate.exists():
        raise ResourceNotFound(
            f"unknown robot '{name_or_path}': no file {candidate} "
            f"(available: {', '.join(available_robots()) or 'none'})"
        )
    return candidate


def _float_list(value, key: str, src: Path, n: int | None = None) -> list[float]:
    if not isinstance(value, (list, tuple)):
        raise RobotConfigError(f"{src}: '{key}' must be a list of numbers")
    try:
        out = [float(v) for v in value]
    except (TypeError, ValueError) as exc:
        raise RobotConfigError(f"{src}: '{key}' must be a list of numbers ({exc})") from None
    if n is not None and len(out) != n:
        raise RobotConfigError(f"{src}: '{key}' has {len(out)} values, expected {n} (one per controlled joint)")
    if not all(math.isfinite(v) for v in out):
        raise RobotConfigError(f"{src}: '{key}' has a non-finite value")
    return out


def load_robot_config(name_or_path: str) -> RobotConfig:
    src = robot_yaml_path(name_or_path)
    try:
        raw = yaml.safe_load(src.read_text())
    except yaml.YAMLError as exc:
        raise RobotConfigError(f"{src}: invalid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise RobotConfigError(f"{src}: expected a mapping at top level")
    for key in ("urdf", "controlled_joints", "ee_frame", "home"):
        if key not in raw:
            raise RobotConfigError(f"{src}: missing required key '{key}'")
    joints = raw["controlled_joints"]
    if not isinstance(joints, list) or not joints or not all(isinstance(j, str) for j in joints):
        raise RobotConfigError(f"{src}: 'controlled_joints' must be a non-empty list of joint names")
    if len(set(joints)) != len(joints):
        raise RobotConfigError(f"{src}: 'controlled_joints' has duplicates")
    n = len(joints)
    urdf = resolve_uri(str(raw["urdf"]), base=src.parent)  # raises ResourceNotFound naming the file
    limits = raw.get("limits") or {}
    if not isinstance(limits, dict):
        raise RobotConfigError(f"{src}: 'limits' must map joint names to {{lower, upper, velocity, effort}}")
    for jn, lim in limits.items():
        if jn not in joints:
            raise RobotConfigError(f"{src}: 'limits' names '{jn}', which is not a controlled joint")
        if not isinstance(lim, dict) or any(k not in LIMIT_KEYS for k in lim):
            raise RobotConfigError(f"{src}: limits.{jn} must only use keys {LIMIT_KEYS}")
        for k, v in lim.items():
            if not isinstance(v, (int, float)) or not math.isfinite(v):
                raise RobotConfigError(f"{src}: limits.{jn}.{k} must be a finite number")
    gains = raw.get("gains") or {}
    armature = raw.get("armature") or {}
    if not isinstance(armature, dict):
        raise RobotConfigError(f"{src}: 'armature' must map joint names to a rotor inertia (kg m² or kg)")
    for jn, val in armature.items():
        if jn not in joints:
            raise RobotConfigError(f"{src}: 'armature' names '{jn}', which is not a controlled joint")
        if not isinstance(val, (int, float)) or not math.isfinite(val) or val < 0:
            raise RobotConfigError(f"{src}: armature.{jn} must be a finite number >= 0")
    return RobotConfig(
        name=str(raw.get("name", src.stem)),
        urdf=urdf,
        controlled_joints=list(joints),
        ee_frame=str(raw["ee_frame"]),
        home=_float_list(raw["home"], "home", src, n),
        limits={k: {kk: float(vv) for kk, vv in v.items()} for k, v in limits.items()},
        kp=_float_list(gains["kp"], "gains.kp", src, n) if "kp" in gains else None,
        kd=_float_list(gains["kd"], "gains.kd", src, n) if "kd" in gains else None,
        base_pos=_float_list(raw.get("base_pos", [0.0, 0.0, 0.0]), "base_pos", src, 3),
        armature={k: float(v) for k, v in armature.items()},
        source=src,
    )
