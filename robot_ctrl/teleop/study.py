"""Scripted-operator study (`robot-ctrl bench teleop`, issue 5): teleoperation alone against
teleoperation + policy (shared autonomy), on the reach task, through the replay device.

The operator is scripted: for each episode it plans a straight reach from the hand's start to
the target at `speed` (`scripted_reach_stream`, open loop, as a person commits to a motion),
and that stream is replayed through `ReplayDevice` with the imperfections a real operator and
link add — Gaussian noise, a constant bias (a person misjudging depth), latency and dropouts —
then the deadman. The same corrupted prompts drive

* **teleop only**: `SharedAutonomy` without a policy (operator chunks, hold on release);
* **shared autonomy**: `SharedAutonomy` with the policy's chunk every step (rule `blend` by
  default: the operator steers, the policy pulls toward the goal; `override` for HIL-SERL
  style takeover).

One Gymnasium step (0.1 s, 500 Hz computed torque and the safety filter in the loop) per
prompt; success is the task's (hand within 2 cm of the target), time-to-target the sim time of
the first success. Identical seeds and device corruption for both arms of the comparison.
"""
from __future__ import annotations

import numpy as np

from robot_ctrl.teleop.replay import ReplayDevice, scripted_reach_stream
from robot_ctrl.teleop.schema import Deadman
from robot_ctrl.teleop.shared import SharedAutonomy, SharedConfig


def run_episode(env, policy, seed: int, corruption: dict | None, speed: float = 0.10, rule: str = "blend",
                alpha: float = 0.5, horizon_s: float | None = None) -> dict:
    """One episode; `policy` None: teleop only; `corruption` None: no operator (the policy
    alone). Returns success, time-to-target (s) and the final distance (m)."""
    obs, _ = env.reset(seed=seed)
    dt = env.policy_dt
    start = env.ee()[0]
    stream = scripted_reach_stream(start, [env.target], speed=speed, dt=dt)
    dev = None
    if corruption is not None:
        dev = ReplayDevice(stream, start=0.0, seed=seed, max_linear_speed=speed, **corruption).open()
    deadman = Deadman(timeout=0.3)
    sa = SharedAutonomy(SharedConfig(rule=rule, alpha=alpha, horizon=16 if policy else 8, dt=dt, max_speed=speed))
    if policy is not None:
        policy.reset()
    steps = int(round((horizon_s or env.horizon * dt) / dt))
    gripper, t_hit = 1.0, None
    for k in range(steps):
        t = k * dt
        prompt = None
        if dev is not None:
            raw = dev.poll(t)
            prompt = deadman.update(t, raw if dev.fresh else None)
        p, R = env.ee()
        pc = policy.act(obs).actions if policy is not None else None
        chunk, _ = sa.step(p, R, prompt, pc, gripper=gripper)
        obs, _, success, _, _ = env.step(chunk[0].astype(np.float32))  # (no e-stop in the scripted stream)
        if success and t_hit is None:
            t_hit = (k + 1) * dt
            break
    return {"success": t_hit is not None, "time_to_target": t_hit, "distance": env.distance(),
            "interventions": sa.interventions}


def operator_study(checkpoint: str, episodes: int = 20, seed: int = 20000, noise_std=(0.02, 0.0),
                   bias=(0.0, 0.0), latency: float = 0.2, dropout: float = 0.1, speed: float = 0.10,
                   rule: str = "blend", alpha: float = 0.5, safety: str | None = "panda_tasks") -> dict:
    """Both arms of the study on `episodes` seeds (see the module doc). `bias` (m/s on each
    linear axis, or (linear, angular)) is drawn per episode as a random direction of that size
    when given as a scalar-like pair, so the operator misjudges a different way every time."""
    from robot_ctrl.learning import load_policy
    from robot_ctrl.tasks import ReachEnv

    policy = load_policy(checkpoint)
    if policy.spec.task != "reach":
        raise ValueError(f"the operator study runs on reach; {checkpoint} was trained on {policy.spec.task}")
    env = ReachEnv(safety=safety)
    rng = np.random.default_rng(seed)
    arms = {"teleop": [], "shared": [], "policy": []}
    bias_lin = float(np.atleast_1d(bias)[0])
    for i in range(episodes):
        d = rng.normal(size=3)
        b = np.concatenate([bias_lin * d / np.linalg.norm(d), np.zeros(3)])
        corruption = {"noise_std": noise_std, "bias": b, "latency": latency, "dropout": dropout}
        for arm, pol in (("teleop", None), ("shared", policy)):
            arms[arm].append(run_episode(env, pol, seed + i, corruption, speed=speed, rule=rule, alpha=alpha))
        arms["policy"].append(run_episode(env, policy, seed + i, None, speed=speed))  # reference: no operator

    def summary(rs):
        hits = [r["time_to_target"] for r in rs if r["success"]]
        return {"success_rate": float(np.mean([r["success"] for r in rs])),
                "time_to_target_s_median": float(np.median(hits)) if hits else None,
                "final_distance_m_median": float(np.median([r["distance"] for r in rs]))}

    return {"benchmark": "teleop_operator_study", "task": "reach", "episodes": episodes, "checkpoint": str(checkpoint),
            "policy": policy.kind, "rule": rule, "alpha": alpha, "speed": speed, "safety": safety,
            "corruption": {"noise_std": list(np.atleast_1d(noise_std).astype(float)), "bias_m_s": bias_lin,
                           "latency_s": latency, "dropout": dropout},
            "teleop_only": summary(arms["teleop"]), "shared_autonomy": summary(arms["shared"]),
            "policy_only": summary(arms["policy"])}
