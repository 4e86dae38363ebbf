"""Safety filter configuration from YAML (config/safety/<robot>.yaml): a new robot needs no code.

    cfg = load_safety_config("panda")                 # or a path
    f = build_filter(robot, cfg, mode="effort", dt=0.002)

Keys: robot, weights, brake_deceleration, constraints: {name: params} with names from
`CONSTRAINTS` (joint_position, joint_velocity, effort, acceleration, workspace, collision, ssm).
`include: other.yaml` merges another file first: keys here win and constraints are replaced
whole, by name; a constraint with `merge: true` is merged into the included one instead
(mappings key by key, a null removes a key, e.g. a world object).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from robot_ctrl.model.robot import RobotModel
from robot_ctrl.paths import share_dir
from robot_ctrl.safety.constraints import CONSTRAINTS
from robot_ctrl.safety.filter import SafetyFilter
from robot_ctrl.safety.geometry import GeometryConfigError

ROBOT_ARG = ("collision", "ssm")  # constraints built from the robot's geometry


class SafetyConfigError(ValueError):
    """The safety YAML is invalid; the message names the file and the key."""


@dataclass
class SafetyConfig:
    robot: str
    constraints: dict
    weights: list | None = None
    brake_deceleration: float | list | None = None
    source: Path | None = None
    extra: dict = field(default_factory=dict)


def safety_yaml_path(name_or_path: str) -> Path:
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists():
        if not p.is_file():
            raise SafetyConfigError(f"safety config file not found: {p}")
        return p
    p = share_dir() / "config" / "safety" / f"{name_or_path}.yaml"
    if not p.is_file():
        have = sorted(x.stem for x in (share_dir() / "config" / "safety").glob("*.yaml"))
        raise SafetyConfigError(f"no safety config '{name_or_path}' (have: {', '.join(have)})")
    return p


def _read(path: Path, seen: tuple = ()) -> dict:
    if path.resolve() in seen:
        raise SafetyConfigError(f"{path}: include cycle")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise SafetyConfigError(f"{path}: invalid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise SafetyConfigError(f"{path}: top level must be a mapping")
    if not isinstance(raw.get("constraints") or {}, dict):
        raise SafetyConfigError(f"{path}: 'constraints' must be a mapping")
    inc = raw.pop("include", None)
    if inc is None:
        return raw
    if not isinstance(inc, str):
        raise SafetyConfigError(f"{path}: 'include' must be a file name")
    inc_path = (path.parent / inc) if not Path(inc).is_absolute() else Path(inc)
    if not inc_path.is_file():
        raise SafetyConfigError(f"{path}: included file not found: {inc_path}")
    base = _read(inc_path, seen + (path.resolve(),))
    merged = {**base, **raw}
    cons = dict(base.get("constraints") or {})
    for name, spec in (raw.get("constraints") or {}).items():
        if isinstance(spec, dict) and spec.get("merge") is True and isinstance(cons.get(name), dict):
            cons[name] = _merge(cons[name], {k: v for k, v in spec.items() if k != "merge"})
        else:
            cons[name] = spec  # replaced whole, by name
    merged["constraints"] = cons
    return merged


def _merge(base: dict, over: dict) -> dict:
    """`over` on top of `base`: mappings merge key by key, a null removes the key (e.g. a world
    object of the included file), other values replace."""
    out = dict(base)
    for k, v in over.items():
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def load_safety_config(name_or_path: str) -> SafetyConfig:
    path = safety_yaml_path(name_or_path)
    raw = _read(path)
    known = {"robot", "weights", "brake_deceleration", "constraints"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise SafetyConfigError(f"{path}: unknown keys {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    if not isinstance(raw.get("robot"), str):
        raise SafetyConfigError(f"{path}: 'robot' (the robot config name) is required")
    cons = raw.get("constraints")
    if not isinstance(cons, dict) or not cons:
        raise SafetyConfigError(f"{path}: 'constraints' must be a non-empty mapping")
    bad = sorted(set(cons) - set(CONSTRAINTS))
    if bad:
        raise SafetyConfigError(f"{path}: unknown constraints {', '.join(bad)} (known: {', '.join(CONSTRAINTS)})")
    for k, v in cons.items():
        if v is not None and not isinstance(v, dict):
            raise SafetyConfigError(f"{path}: constraints.{k} must be a mapping of parameters")
    return SafetyConfig(robot=raw["robot"], constraints=cons, weights=raw.get("weights"),
                        brake_deceleration=raw.get("brake_deceleration"), source=path)


def build_constraints(robot: RobotModel, cfg: SafetyConfig) -> list:
    out = []
    for name, params in cfg.constraints.items():
        params = dict(params or {})
        cls = CONSTRAINTS[name]
        try:
            out.append(cls(robot, **params) if name in ROBOT_ARG else cls(**params))
        except TypeError as exc:
            raise SafetyConfigError(f"{cfg.source}: constraints.{name}: {exc}") from None
        except (GeometryConfigError, ValueError) as exc:
            raise SafetyConfigError(f"{cfg.source}: constraints.{name}: {exc}") from None
    return out


def build_filter(robot: RobotModel, cfg: SafetyConfig | str, mode: str = "effort", dt: float = 0.002,
                 backend: str = "daqp", alpha_fn=None) -> SafetyFilter:
    """The configured filter for `robot` (whose name must match the config's robot)."""
    if isinstance(cfg, str):
        cfg = load_safety_config(cfg)
    if cfg.robot != robot.name:
        raise SafetyConfigError(f"{cfg.source}: written for robot '{cfg.robot}', not '{robot.name}'")
    constraints = build_constraints(robot, cfg)
    try:
        f = SafetyFilter(robot, constraints, mode=mode, dt=dt, weights=cfg.weights, backend=backend,
                         a_brake=cfg.brake_deceleration, alpha_fn=alpha_fn)
    except ValueError as exc:
        raise SafetyConfigError(f"{cfg.source}: {exc}") from None
    # every configured limit must hold at home, or the filter would brake from the start
    hold = robot.gravity(robot.home) if mode == "effort" else np.zeros(robot.n)
    out = f.step(robot.home, np.zeros(robot.n), hold)
    f.reset_counters()
    if out.h_min < 0:
        raise SafetyConfigError(f"{cfg.source}: the home configuration violates "
                                f"{', '.join(_negative_rows(f)) or 'a barrier'}")
    return f


def _negative_rows(f: SafetyFilter) -> list[str]:
    return [f.row_names[i] for i in np.flatnonzero(np.isfinite(f.h) & (f.h < 0))]
