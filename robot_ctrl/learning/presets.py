"""Training presets (config/policies/<policy>.yaml) → TrainConfig, with command-line overrides."""
from __future__ import annotations

from dataclasses import fields

import yaml

from robot_ctrl.learning.train import TrainConfig
from robot_ctrl.paths import config_path


def load_preset(policy: str, path: str | None = None, **overrides) -> TrainConfig:
    """The preset for `policy` (or the YAML file `path`), with non-None `overrides` applied;
    `model` overrides are merged key by key."""
    from pathlib import Path

    p = Path(path) if path else config_path("policies", f"{policy}.yaml")
    if not p.is_file():
        raise FileNotFoundError(f"no training preset {p} (policies with presets: "
                                f"{', '.join(sorted(x.stem for x in config_path('policies').glob('*.yaml')))})")
    try:
        raw = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        raise ValueError(f"{p}: not valid YAML ({e})") from e
    known = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ValueError(f"{p}: unknown keys {unknown} (known: {', '.join(sorted(known))})")
    if raw.get("policy", policy) != policy and not path:
        raise ValueError(f"{p}: preset is for policy '{raw['policy']}', not '{policy}'")
    raw["policy"] = policy
    model_over = overrides.pop("model", None) or {}
    raw.update({k: v for k, v in overrides.items() if v is not None})
    raw["model"] = {**(raw.get("model") or {}), **model_over}
    return TrainConfig(**raw)
