"""Demonstration datasets on disk, in zarr.

Why zarr: a demonstration set is a few flat arrays that grow one episode at a time and are read
back whole or in windows. zarr stores each array as compressed chunks in a directory, appends
without rewriting, opens lazily, and is the format of the diffusion-policy and CARP reference
code (their `ReplayBuffer`), so datasets convert either way without a custom reader. Parquet
(LeRobot) is row-oriented and suits tables with video references; these are dense numeric
arrays.

Layout (one directory, `*.zarr`):

    data/obs           (N, obs_size)  float32   observation at each step
    data/action        (N, act_size)  float32   the action label at each step
    data/intervention  (N,)           bool      step commanded by a human operator (teleop)
    meta/episode_ends  (E,)           int64     exclusive end index of each episode
    meta/success       (E,)           bool      whether the episode succeeded
    meta/stats/{obs,action}/{min,max,mean,std}  normalization statistics
    attrs: format, task, obs_size, act_size, dt, source, obs_names (optional), created

`DatasetWriter` appends episodes and writes the statistics on `close()`; `load_dataset` opens a
dataset and refuses a damaged one with an error that names the file and the field.
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FORMAT = "robot_ctrl.demos/1"


class DatasetError(ValueError):
    """A dataset that is missing, damaged, or does not fit what it is used for."""


def _zarr():
    import zarr

    return zarr


class DatasetWriter:
    """Append episodes to a new (or, with `append=True`, an existing) dataset."""

    def __init__(self, path: str | Path, task: str, obs_size: int, act_size: int, dt: float,
                 source: str = "scripted", append: bool = False, obs_names: list[str] | None = None):
        zarr = _zarr()
        self.path = Path(path)
        if append and self.path.exists():
            ds = load_dataset(self.path)
            if (ds.obs_size, ds.act_size) != (obs_size, act_size):
                raise DatasetError(f"{self.path}: holds obs {ds.obs_size}/action {ds.act_size}, "
                                   f"cannot append obs {obs_size}/action {act_size}")
            self.root = zarr.open_group(str(self.path), mode="a")
        else:
            if self.path.exists():
                raise DatasetError(f"{self.path} already exists (pass append=True to add episodes)")
            self.root = zarr.open_group(str(self.path), mode="w")
            data, meta = self.root.create_group("data"), self.root.create_group("meta")
            chunk = 4096
            data.create_array("obs", shape=(0, obs_size), chunks=(chunk, obs_size), dtype="float32")
            data.create_array("action", shape=(0, act_size), chunks=(chunk, act_size), dtype="float32")
            data.create_array("intervention", shape=(0,), chunks=(chunk,), dtype="bool")
            meta.create_array("episode_ends", shape=(0,), chunks=(1024,), dtype="int64")
            meta.create_array("success", shape=(0,), chunks=(1024,), dtype="bool")
            self.root.attrs.update({"format": FORMAT, "task": task, "obs_size": int(obs_size),
                                    "act_size": int(act_size), "dt": float(dt), "source": source,
                                    "obs_names": list(obs_names or []),
                                    "created": _dt.datetime.now(_dt.timezone.utc).isoformat()})
        self.obs_size, self.act_size = int(obs_size), int(act_size)

    def add_episode(self, obs, actions, success: bool, intervention=None) -> int:
        """Append one episode; returns its index. Refuses NaN/Inf and wrong shapes."""
        obs = np.asarray(obs, np.float32)
        actions = np.asarray(actions, np.float32)
        n = len(obs)
        if obs.ndim != 2 or obs.shape[1] != self.obs_size or n == 0:
            raise DatasetError(f"episode obs must have shape (T>0, {self.obs_size}), got {obs.shape}")
        if actions.shape != (n, self.act_size):
            raise DatasetError(f"episode actions must have shape ({n}, {self.act_size}), got {actions.shape}")
        if not (np.all(np.isfinite(obs)) and np.all(np.isfinite(actions))):
            raise DatasetError("episode has non-finite observations or actions")
        inter = np.zeros(n, bool) if intervention is None else np.asarray(intervention, bool)
        if inter.shape != (n,):
            raise DatasetError(f"intervention flags must have shape ({n},), got {inter.shape}")
        data, meta = self.root["data"], self.root["meta"]
        start = data["obs"].shape[0]
        for name, arr in (("obs", obs), ("action", actions), ("intervention", inter)):
            data[name].append(arr)
        meta["episode_ends"].append(np.array([start + n], np.int64))
        meta["success"].append(np.array([bool(success)]))
        return meta["episode_ends"].shape[0] - 1

    def close(self) -> "Dataset":
        """Write the normalization statistics and return the dataset, loaded and checked."""
        data = self.root["data"]
        stats = self.root.require_group("meta").require_group("stats")
        for field in ("obs", "action"):
            x = data[field][:].astype(np.float64)
            if len(x) == 0:
                raise DatasetError(f"{self.path}: no episodes recorded")
            g = stats.require_group(field)
            for k, v in (("min", x.min(0)), ("max", x.max(0)), ("mean", x.mean(0)), ("std", x.std(0))):
                if k in g:
                    del g[k]
                g.create_array(k, data=v.astype(np.float64))
        return load_dataset(self.path)


@dataclass
class Dataset:
    path: Path
    task: str
    obs: np.ndarray          # (N, obs_size) float32
    action: np.ndarray       # (N, act_size) float32
    intervention: np.ndarray  # (N,) bool
    episode_ends: np.ndarray  # (E,) int64
    success: np.ndarray      # (E,) bool
    stats: dict              # {"obs"|"action": {"min"|"max"|"mean"|"std": array}}
    dt: float
    source: str

    @property
    def obs_size(self) -> int:
        return self.obs.shape[1]

    @property
    def act_size(self) -> int:
        return self.action.shape[1]

    @property
    def n_episodes(self) -> int:
        return len(self.episode_ends)

    def episode(self, i: int) -> slice:
        start = 0 if i == 0 else int(self.episode_ends[i - 1])
        return slice(start, int(self.episode_ends[i]))

    def subset(self, episodes) -> "Dataset":
        """The listed episodes only (statistics are kept from the whole set)."""
        sl = [self.episode(i) for i in episodes]
        idx = np.concatenate([np.arange(s.start, s.stop) for s in sl])
        ends = np.cumsum([s.stop - s.start for s in sl])
        return Dataset(self.path, self.task, self.obs[idx], self.action[idx], self.intervention[idx],
                       ends.astype(np.int64), self.success[list(episodes)], self.stats, self.dt, self.source)

    def windows(self, horizon: int, obs_horizon: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Every training sample: stacked observations (M, obs_horizon·obs_size), the oldest
        first, and action chunks (M, horizon, act_size) starting at the current step. Windows
        are padded inside their episode: the first observation repeats before the start, the
        last action after the end (the robot holds its final target)."""
        obs_list, act_list = [], []
        for i in range(self.n_episodes):
            s = self.episode(i)
            T = s.stop - s.start
            t = np.arange(T)
            oi = np.clip(t[:, None] + np.arange(-obs_horizon + 1, 1)[None, :], 0, T - 1) + s.start
            ai = np.clip(t[:, None] + np.arange(horizon)[None, :], 0, T - 1) + s.start
            obs_list.append(self.obs[oi].reshape(T, -1))
            act_list.append(self.action[ai])
        return np.concatenate(obs_list), np.concatenate(act_list)


def load_dataset(path: str | Path) -> Dataset:
    """Open and check a dataset. Raises DatasetError naming the file and field at fault."""
    zarr = _zarr()
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"dataset not found: {path}")
    try:
        root = zarr.open_group(str(path), mode="r")
    except Exception as e:  # zarr raises several types for a non-zarr directory
        raise DatasetError(f"{path}: not a zarr dataset ({e})") from e
    attrs = dict(root.attrs)
    if attrs.get("format") != FORMAT:
        raise DatasetError(f"{path}: format {attrs.get('format')!r}, expected {FORMAT!r}")

    def arr(name, dtype, ndim):
        try:
            a = root[name][:]
        except KeyError:
            raise DatasetError(f"{path}: field '{name}' is missing") from None
        if a.ndim != ndim:
            raise DatasetError(f"{path}: field '{name}' has shape {a.shape}, expected {ndim} dimensions")
        if np.issubdtype(a.dtype, np.floating) and not np.all(np.isfinite(a)):
            bad = np.argwhere(~np.isfinite(a))[0].tolist()
            raise DatasetError(f"{path}: field '{name}' has a non-finite value at index {bad}")
        return a.astype(dtype, copy=False)

    obs = arr("data/obs", np.float32, 2)
    action = arr("data/action", np.float32, 2)
    inter = arr("data/intervention", bool, 1)
    ends = arr("meta/episode_ends", np.int64, 1)
    success = arr("meta/success", bool, 1)
    n = len(obs)
    if obs.shape[1] != attrs.get("obs_size"):
        raise DatasetError(f"{path}: field 'data/obs' has width {obs.shape[1]}, attrs say obs_size={attrs.get('obs_size')}")
    if action.shape[1] != attrs.get("act_size"):
        raise DatasetError(f"{path}: field 'data/action' has width {action.shape[1]}, "
                           f"attrs say act_size={attrs.get('act_size')}")
    if len(action) != n or len(inter) != n:
        raise DatasetError(f"{path}: fields 'data/obs' ({n}), 'data/action' ({len(action)}) and "
                           f"'data/intervention' ({len(inter)}) differ in length")
    if len(ends) == 0 or np.any(np.diff(ends) <= 0) or ends[0] <= 0 or ends[-1] != n:
        raise DatasetError(f"{path}: field 'meta/episode_ends' is not increasing up to {n}")
    if len(success) != len(ends):
        raise DatasetError(f"{path}: field 'meta/success' has {len(success)} entries for {len(ends)} episodes")
    stats = {}
    for field, width in (("obs", obs.shape[1]), ("action", action.shape[1])):
        stats[field] = {}
        for k in ("min", "max", "mean", "std"):
            v = arr(f"meta/stats/{field}/{k}", np.float64, 1)
            if v.shape != (width,):
                raise DatasetError(f"{path}: field 'meta/stats/{field}/{k}' has shape {v.shape}, expected ({width},)")
            stats[field][k] = v
    return Dataset(path, str(attrs.get("task", "")), obs, action, inter, ends, success, stats,
                   float(attrs.get("dt", 0.0)), str(attrs.get("source", "")))
