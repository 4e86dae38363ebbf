"""Meta-World v3 tasks behind the `TaskAdapter` interface (`make_task("metaworld:<name>-v3")`).

Needs the optional extra `robot_ctrl[metaworld]` (the `metaworld` package, which pins its own
MuJoCo version); the import happens when a task is made, so the rest of robot_ctrl never needs it.

What one task is:
- the MT1 benchmark of `<name>-v3`: Meta-World's 50 standard variations of the task (object and
  goal positions), made once from `benchmark_seed` (0 by default, so they are the same in every
  process). Each `reset(seed)` draws one of the 50 with `numpy.random.default_rng(seed)`, so a
  seed always gives the same initial state; `reset()` without a seed goes on with the task's
  own generator. The goal is part of the observation (MT1 is goal-observable).
- observation: Meta-World's 39 floats (hand xyz, gripper opening, two objects' pose, the same
  18 values one step earlier, goal xyz), as float64.
- action: 4 floats in [-1, 1]: hand displacement (1 unit = 1 cm per step, Meta-World's
  action_scale of 1/100 m) and gripper effort. Actions are clipped to [-1, 1] as Meta-World
  itself does.
- dt: one env step is 5 physics steps of 2.5 ms, 12.5 ms (80 Hz); horizon 500 steps (6.25 s),
  Meta-World's `max_path_length`.
- success: Meta-World's `info["success"]`. By default the episode ends at the first success
  (`terminate_on_success=True`), the usual protocol for evaluating imitation-learned policies
  (a success counts once, whatever happens after); otherwise it ends at the horizon only.
- expert: Meta-World's own scripted policy for the task (`metaworld.policies.ENV_POLICY_MAP`)
  on the current observation, clipped to the action space, plus Gaussian noise of std `noise`
  (action units) drawn from the task's generator, so a seeded episode is reproducible.
"""
from __future__ import annotations

import difflib
import warnings

import numpy as np

from robot_ctrl.learning.envs import StepResult, TaskAdapter, TaskError

PREFIX = "metaworld:"
INSTALL_HINT = "pip install 'robot_ctrl[metaworld]' (or: pip install metaworld)"


def _import_metaworld():
    """(metaworld, ENV_POLICY_MAP), or a TaskError saying how to install it."""
    try:
        import metaworld
        from metaworld.policies import ENV_POLICY_MAP
    except ImportError as exc:
        if getattr(exc, "name", None) == "metaworld":
            raise TaskError(f"Meta-World tasks need the optional 'metaworld' package, which is not "
                            f"installed ({exc}); install it with {INSTALL_HINT}") from None
        raise TaskError(f"the 'metaworld' package is installed but failed to import "
                        f"({type(exc).__name__}: {exc}); reinstall it with {INSTALL_HINT}") from exc
    except Exception as exc:  # e.g. a MuJoCo version metaworld does not work with
        raise TaskError(f"the 'metaworld' package is installed but failed to import "
                        f"({type(exc).__name__}: {exc}); reinstall it with {INSTALL_HINT}") from exc
    return metaworld, ENV_POLICY_MAP


def _versions() -> str:
    from importlib.metadata import PackageNotFoundError, requires, version

    try:
        pins = [r for r in requires("metaworld") or [] if r.replace(" ", "").startswith("mujoco")]
        return (f"metaworld {version('metaworld')} (requires {', '.join(pins) or 'mujoco'}) "
                f"with mujoco {version('mujoco')}")
    except PackageNotFoundError:
        return "metaworld with an unknown MuJoCo version"


def task_names() -> list[str]:
    """The Meta-World v3 task names that have an environment and a scripted expert."""
    metaworld, policies = _import_metaworld()
    return sorted(set(metaworld.MT1.ENV_NAMES) & set(policies))


class MetaWorldTask(TaskAdapter):
    """One Meta-World v3 task (see the module doc)."""

    # 0.1 action units = 1 mm of hand displacement per step. Measured over 20 episodes each, the
    # scripted experts of pick-place, reach, push, door-open, drawer-close and button-press-topdown
    # succeed in 20/20 with it, as without noise; at 0.3 push drops to 16/20.
    default_noise = 0.1

    def __init__(self, name: str, *, benchmark_seed: int = 0, terminate_on_success: bool = True,
                 horizon: int | None = None):
        metaworld, policies = _import_metaworld()
        env_name = name[len(PREFIX):] if name.startswith(PREFIX) else name
        valid = sorted(set(metaworld.MT1.ENV_NAMES) & set(policies))
        if env_name not in valid:
            close = difflib.get_close_matches(env_name, valid, n=3, cutoff=0.5)
            hint = f"did you mean {', '.join(close)}? " if close else ""
            raise TaskError(f"unknown Meta-World task '{env_name}': {hint}valid tasks include "
                            f"{', '.join(valid[:6])}, … ({len(valid)} in all, e.g. "
                            f"metaworld:reach-v3)")
        self.name = PREFIX + env_name
        self.env_name = env_name
        self.terminate_on_success = bool(terminate_on_success)

        try:
            self._benchmark = metaworld.MT1(env_name, seed=benchmark_seed)
            self._tasks = list(self._benchmark.train_tasks)
            self.env = self._benchmark.train_classes[env_name]()
        except Exception as exc:
            # e.g. metaworld 3.1 under MuJoCo 4 (its pinned MuJoCo is 3.3.0): the model's
            # arrays changed size and building the scene fails
            raise TaskError(f"Meta-World could not build '{env_name}' ({type(exc).__name__}: {exc}); "
                            f"{_versions()}: metaworld needs the MuJoCo version it pins, so "
                            f"install it in an environment of its own with {INSTALL_HINT}") from exc
        self.env.set_task(self._tasks[0])  # sets the goal-observable observation space
        if horizon is not None:
            if int(horizon) < 1:
                raise ValueError(f"horizon must be at least 1, got {horizon}")
            self.env.max_path_length = int(horizon)
        self.policy = policies[env_name]()

        self.obs_size = int(self.env.observation_space.shape[0])
        self.act_size = int(self.env.action_space.shape[0])
        self.dt = float(self.env.dt)
        self.horizon = int(self.env.max_path_length)
        self._low = self.env.action_space.low.astype(np.float64)
        self._high = self.env.action_space.high.astype(np.float64)

        self._rng = np.random.default_rng()
        self._obs: np.ndarray | None = None
        self._done = True
        self.task_index: int | None = None  # which of the 50 variations the episode runs

    @property
    def num_variations(self) -> int:
        return len(self._tasks)

    def reset(self, seed: int | None = None) -> np.ndarray:
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self.task_index = int(self._rng.integers(len(self._tasks)))
        self.env.set_task(self._tasks[self.task_index])
        obs, _ = self.env.reset()
        self._obs = np.asarray(obs, dtype=np.float64).copy()
        self._done = False
        return self._obs.copy()

    def step(self, action: np.ndarray) -> StepResult:
        if self._obs is None or self._done:
            raise RuntimeError(f"{self.name}: the episode is over (or never started); call reset()")
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        if a.shape != (self.act_size,) or not np.all(np.isfinite(a)):
            raise ValueError(f"{self.name}: action must be {self.act_size} finite numbers, got {action!r}")
        obs, _, terminated, truncated, info = self.env.step(np.clip(a, self._low, self._high))
        self._obs = np.asarray(obs, dtype=np.float64).copy()
        success = bool(info["success"])
        self._done = bool(terminated or truncated or (success and self.terminate_on_success))
        return StepResult(self._obs.copy(), success, self._done)

    def expert(self, noise: float = 0.0) -> np.ndarray:
        if self._obs is None:
            raise RuntimeError(f"{self.name}: call reset() before asking the expert")
        noise = float(noise)
        if not (np.isfinite(noise) and noise >= 0):
            raise ValueError(f"noise must be a finite number ≥ 0, got {noise}")
        with warnings.catch_warnings():
            # the scripted policies warn whenever their P-gain saturates the action
            warnings.simplefilter("ignore", UserWarning)
            a = np.asarray(self.policy.get_action(self._obs), dtype=np.float64)
        if noise > 0:
            a = a + self._rng.normal(0.0, noise, size=a.shape)
        return np.clip(a, self._low, self._high)

    def close(self) -> None:
        self.env.close()
