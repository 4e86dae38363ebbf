"""Meta-World v3 tasks through make_task (optional extra robot_ctrl[metaworld]; skipped without it)."""
import importlib
import sys

import numpy as np
import pytest

pytest.importorskip("metaworld")

from robot_ctrl.learning.envs import TaskError, make_task  # noqa: E402


@pytest.fixture(scope="module")
def reach():
    task = make_task("metaworld:reach-v3")
    yield task
    task.close()


def test_reach_sizes_timing_and_name(reach):
    assert (reach.obs_size, reach.act_size) == (39, 4)
    assert reach.horizon == 500
    assert reach.dt == pytest.approx(0.0125)
    assert reach.name == "metaworld:reach-v3"
    assert reach.default_noise > 0


def test_reset_is_reproducible_per_seed_and_seeds_vary_the_goal(reach):
    a, b = reach.reset(seed=3), reach.reset(seed=3)
    assert a.dtype == np.float64 and a.shape == (39,)
    np.testing.assert_array_equal(a, b)
    goals = {tuple(np.round(reach.reset(seed=s)[-3:], 6)) for s in range(5)}
    assert len(goals) >= 2, "different seeds should give different goals"
    assert reach.num_variations == 50


def test_steps_return_finite_float64_obs_and_a_seeded_episode_replays(reach):
    def rollout():
        reach.reset(seed=11)
        out = []
        for _ in range(20):
            r = reach.step(reach.expert(0.3))
            assert r.obs.dtype == np.float64 and r.obs.shape == (39,)
            assert np.all(np.isfinite(r.obs))
            out.append(r.obs)
        return np.array(out)

    np.testing.assert_array_equal(rollout(), rollout())


def test_expert_is_clipped_and_noise_is_checked(reach):
    reach.reset(seed=0)
    a = reach.expert(0.0)
    assert a.shape == (4,) and a.dtype == np.float64
    assert np.all(np.abs(reach.expert(5.0)) <= 1.0)
    with pytest.raises(ValueError):
        reach.expert(-0.1)
    with pytest.raises(ValueError):
        reach.step(np.zeros(3))


def test_reach_expert_succeeds_and_the_episode_ends_at_success(reach):
    wins = 0
    for seed in range(5):
        reach.reset(seed=100 + seed)
        for _ in range(reach.horizon):
            r = reach.step(reach.expert(reach.default_noise))
            if r.done:
                break
        assert r.done
        wins += r.success
        if r.success:
            with pytest.raises(RuntimeError):
                reach.step(np.zeros(4))
    assert wins >= 4, f"the scripted reach expert succeeded in only {wins}/5 episodes"


def test_a_passive_policy_does_not_succeed_and_times_out_at_the_horizon():
    task = make_task("metaworld:reach-v3", horizon=30)
    try:
        task.reset(seed=1)
        for i in range(30):
            r = task.step(np.zeros(4))
            assert not r.success
            assert r.done == (i == 29)
    finally:
        task.close()


def test_unknown_task_names_the_task_and_lists_valid_ones():
    with pytest.raises(TaskError) as info:
        make_task("metaworld:pick-plaice-v3")
    msg = str(info.value)
    assert "pick-plaice-v3" in msg
    assert "pick-place-v3" in msg  # the close match
    assert "reach-v3" in msg or "assembly-v3" in msg  # a few valid names
    with pytest.raises(TaskError, match="reach-v2"):
        make_task("metaworld:reach-v2")


def test_missing_metaworld_gives_a_clear_task_error(monkeypatch):
    import robot_ctrl.learning.metaworld_env as mw_env

    for mod in [m for m in sys.modules if m == "metaworld" or m.startswith("metaworld.")]:
        monkeypatch.delitem(sys.modules, mod)
    monkeypatch.setitem(sys.modules, "metaworld", None)
    importlib.reload(mw_env)  # the module itself imports without metaworld
    with pytest.raises(TaskError, match=r"metaworld.*not installed.*pip install"):
        make_task("metaworld:reach-v3")
    with pytest.raises(TaskError, match="robot_ctrl\\[metaworld\\]"):
        mw_env.MetaWorldTask("reach-v3")
