"""The diffusion policy (and its scheduler) and the MLP floor: real torch on tiny configs, seeded.

Synthetic data: four fixed observations; for three of them the chunk is a fixed function of the
observation, for the fourth it is one of two mirrored chunks (±c) with equal probability, so the
guidance test has two modes to steer between."""
import json
import math

import numpy as np
import pytest
import torch

from robot_ctrl.learning import MODELS, Normalizer, Policy, PolicySpec, load_policy
from robot_ctrl.learning.diffusion import DiffusionPolicy, NoiseScheduler
from robot_ctrl.learning.mlp import MLPPolicy

O, A, H = 4, 2, 8  # tiny observation size, action size, horizon
TINY = dict(down_dims=[16, 32], n_groups=4, step_embed_dim=16)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _dataset():
    g = torch.Generator().manual_seed(0)
    obs = torch.rand(4, O, generator=g) * 2 - 1
    k = torch.arange(H, dtype=torch.float32) / (H - 1)
    chunks = torch.stack([torch.stack([0.7 * torch.sin(math.pi * (k + 0.3 * i)),
                                       0.6 * torch.cos(math.pi * k * (1 + 0.25 * i))], -1) for i in range(4)])
    return obs, chunks


OBS, CHUNKS = _dataset()


def _batch(g: torch.Generator, n: int, bimodal: bool = True):
    idx = torch.randint(0, 4 if bimodal else 3, (n,), generator=g)
    a = CHUNKS[idx].clone()
    flip = (idx == 3) & (torch.rand(n, generator=g) < 0.5)
    a[flip] = -a[flip]
    return OBS[idx], a


def _train(model, steps: int, batch: int, lr: float, bimodal: bool = True) -> list[float]:
    torch.manual_seed(1)  # the diffusion loss draws noise and steps from the global generator
    g = torch.Generator().manual_seed(2)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    losses = []
    model.train()
    for _ in range(steps):
        loss, info = model.loss(*_batch(g, batch, bimodal))
        assert isinstance(info["mse"], float)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
    return losses


@pytest.fixture(scope="module")
def trained():
    torch.manual_seed(0)
    model = DiffusionPolicy(O, A, H, **TINY)
    losses = _train(model, steps=800, batch=64, lr=3e-3)
    return model.eval(), losses


def _rmse(x, y):
    return (x - y).pow(2).mean((1, 2)).sqrt()


# -- 1. scheduler -------------------------------------------------------------------------------
def test_schedule_is_a_decreasing_cumprod_in_unit_interval():
    s = NoiseScheduler(100)
    ac = s.alphas_cumprod
    assert ac.shape == (100,)
    assert torch.all(ac > 0) and torch.all(ac <= 1)
    assert torch.all(ac[1:] < ac[:-1])
    assert ac[0] > 0.999 and ac[-1] < 1e-3  # nearly clean at t = 0, nearly pure noise at T−1
    assert torch.all(s.betas <= 0.999)


def test_timestep_grids():
    s = NoiseScheduler(100)
    trailing = s.timesteps("ddim", 10)
    assert [t for t, _ in trailing] == [99, 89, 79, 69, 59, 49, 39, 29, 19, 9]
    assert [p for _, p in trailing] == [89, 79, 69, 59, 49, 39, 29, 19, 9, -1]
    assert [t for t, _ in s.timesteps("ddim", 10, spacing="leading")] == [90, 80, 70, 60, 50, 40, 30, 20, 10, 0]
    ddpm = s.timesteps("ddpm")
    assert len(ddpm) == 100 and ddpm[0] == (99, 98) and ddpm[-1] == (0, -1)
    assert [t for t, _ in s.timesteps("ddim", 3)] == [99, 66, 32]


def test_steps_with_the_true_noise_recover_x0():
    s = NoiseScheduler(100)
    g = torch.Generator().manual_seed(0)
    x0 = (torch.rand(5, H, A, generator=g) * 2 - 1) * 0.9
    eps = torch.randn(5, H, A, generator=g)
    for t in (0, 1, 9, 50, 98):
        xt = s.add_noise(x0, eps, t)
        for t_prev in (t - 1, max(t - 10, -1), -1):
            x_prev, x0_hat = s.ddim_step(eps, t, t_prev, xt)
            torch.testing.assert_close(x0_hat, x0, atol=1e-4, rtol=0)
            want = x0 if t_prev < 0 else s.add_noise(x0, eps, t_prev)
            torch.testing.assert_close(x_prev, want, atol=1e-4, rtol=0)
        x_prev, x0_hat = s.ddpm_step(eps, t, xt, generator=g)
        torch.testing.assert_close(x0_hat, x0, atol=1e-4, rtol=0)
        if t == 0:
            torch.testing.assert_close(x_prev, x0, atol=1e-5, rtol=0)  # the last DDPM step is noiseless
    # batched t as in training
    t = torch.tensor([0, 10, 50, 90, 99])
    xt = s.add_noise(x0, eps, t)
    for i in range(5):
        torch.testing.assert_close(xt[i], s.add_noise(x0[i:i + 1], eps[i:i + 1], int(t[i]))[0])


def test_ddpm_step_with_the_true_x0_keeps_the_forward_marginal():
    """x_t ~ q(x_t | x0) stepped with the true noise must give x_{t−1} ~ q(x_{t−1} | x0) =
    N(√ᾱ_{t−1} x0, 1 − ᾱ_{t−1}): checks the posterior mean and the variance of the DDPM step."""
    s = NoiseScheduler(100)
    g = torch.Generator().manual_seed(3)
    n = 40000
    x0 = torch.full((n, 1, 1), 0.6)
    for t in (5, 40, 80):
        eps = torch.randn(n, 1, 1, generator=g)
        x_prev, _ = s.ddpm_step(eps, t, s.add_noise(x0, eps, t), generator=g)
        a_prev = float(s.alphas_cumprod[t - 1])
        assert abs(x_prev.mean().item() - math.sqrt(a_prev) * 0.6) < 0.02
        assert abs(x_prev.var().item() - (1 - a_prev)) < 0.03 * (1 - a_prev) + 1e-3


@pytest.mark.parametrize("sampler", ["ddim", "ddpm"])
def test_full_chain_with_an_oracle_noise_model_ends_at_x0(sampler):
    s = NoiseScheduler(100)
    g = torch.Generator().manual_seed(4)
    x0 = (torch.rand(3, H, A, generator=g) * 2 - 1) * 0.9
    x = torch.randn(3, H, A, generator=g)
    for t, t_prev in s.timesteps(sampler, 10 if sampler == "ddim" else None):
        a = s.alphas_cumprod[t].float()
        eps = (x - a.sqrt() * x0) / (1 - a).sqrt()  # the noise that explains x given x0
        x, _ = s.ddim_step(eps, t, t_prev, x) if sampler == "ddim" else s.ddpm_step(eps, t, x, g)
    torch.testing.assert_close(x, x0, atol=1e-4, rtol=0)


# -- 2. diffusion training and sampling -----------------------------------------------------------
def test_diffusion_loss_falls(trained):
    _, losses = trained
    first, last = np.mean(losses[:20]), np.mean(losses[-50:])
    assert np.isfinite(losses).all()
    assert last < 0.5 * first, (first, last)


@pytest.mark.parametrize("sampler,steps", [("ddim", 10), ("ddpm", None)])
def test_diffusion_samples_land_on_the_true_chunk(trained, sampler, steps):
    model, _ = trained
    obs = OBS[:3].repeat_interleave(8, 0)  # the three deterministic observations, 8 noise draws each
    out = model.predict(obs, sampler=sampler, steps=steps, seed=1)
    assert out.shape == (24, H, A) and out.abs().max() <= 1.0
    err = _rmse(out, CHUNKS[:3].repeat_interleave(8, 0))
    # chunks of different observations are 0.33–0.74 apart (RMSE); observed: DDIM-10 mean ≈ 0.04,
    # max ≈ 0.19; DDPM-100 mean ≈ 0.007, max ≈ 0.02
    assert err.mean() < 0.1, err
    assert err.max() < (0.3 if sampler == "ddim" else 0.1), err


def test_sampling_is_reproducible(trained):
    model, _ = trained
    obs = OBS[:2]
    assert torch.equal(model.predict(obs, seed=7), model.predict(obs, generator=torch.Generator().manual_seed(7)))
    noise = torch.randn(2, H, A, generator=torch.Generator().manual_seed(8))
    assert torch.equal(model.predict(obs, noise=noise), model.predict(obs, noise=noise))
    a = model.predict(obs, sampler="ddpm", seed=5)
    assert torch.equal(a, model.predict(obs, sampler="ddpm", seed=5))
    assert not torch.equal(a, model.predict(obs, sampler="ddpm", seed=6))


def test_default_config_handles_horizon_16():
    torch.manual_seed(0)
    model = DiffusionPolicy(40, 10, 16).eval()
    n = sum(p.numel() for p in model.parameters())
    assert 1e6 < n < 5e6, n
    obs = torch.rand(2, 40) * 2 - 1
    out = model.predict(obs, steps=2, seed=0)
    assert out.shape == (2, 16, 10)
    loss, _ = model.loss(obs, torch.rand(2, 16, 10) * 2 - 1)
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())


# -- 3. MLP -------------------------------------------------------------------------------------
def test_mlp_learns_the_chunks():
    torch.manual_seed(0)
    model = MLPPolicy(O, A, H, hidden=[64, 64], activation="mish")
    losses = _train(model, steps=300, batch=32, lr=3e-3, bimodal=False)
    assert np.mean(losses[-20:]) < 0.5 * np.mean(losses[:5]), (losses[:5], losses[-20:])
    out = model.eval().predict(OBS[:3])
    assert out.shape == (3, H, A)
    assert _rmse(out, CHUNKS[:3]).max() < 0.05
    assert torch.equal(model.predict(OBS[:3], sampler="ddim"), out)  # sampler options are ignored


def test_mlp_default_size_and_options():
    model = MLPPolicy(40, 10, 16)
    assert sum(p.numel() for p in model.parameters()) == 40 * 512 + 512 + 2 * (512 * 512 + 512) + 512 * 160 + 160
    relu = MLPPolicy(O, A, H, hidden=[8], activation="relu", dropout=0.1)
    assert any(isinstance(m, torch.nn.Dropout) for m in relu.modules())
    assert any(isinstance(m, torch.nn.ReLU) for m in relu.modules())
    assert relu.predict(OBS).shape == (4, H, A)


# -- 4. guidance --------------------------------------------------------------------------------
def test_guidance_steers_to_the_prompted_mode(trained):
    model, _ = trained
    prompt = CHUNKS[3]  # the "+" mode of the bimodal observation
    obs = OBS[3:].repeat(32, 1)
    noise = torch.randn(32, H, A, generator=torch.Generator().manual_seed(5))

    def cost(x0):
        return (x0 - prompt).pow(2).sum((1, 2))

    model.zero_grad(set_to_none=True)
    free = model.predict(obs, noise=noise)
    guided = model.predict(obs, noise=noise, guide=cost, guide_scale=0.3)
    d_free, d_guided = _rmse(free, prompt), _rmse(guided, prompt)
    # unguided, the samples split between both modes; guided, (nearly) all take the prompted one
    assert (_rmse(free, -prompt) < 0.2).sum() >= 4, d_free
    assert d_guided.mean() < 0.5 * d_free.mean(), (d_free.mean(), d_guided.mean())
    assert (d_guided < 0.2).sum() >= 29, d_guided
    assert torch.equal(model.predict(obs, noise=noise, guide=cost, guide_scale=0.0), free)
    assert all(p.grad is None for p in model.parameters())  # guidance leaves no gradients behind

    # DDPM, with the same seed, and a guide that returns one scalar for the batch
    free = model.predict(obs, sampler="ddpm", seed=9)
    guided = model.predict(obs, sampler="ddpm", seed=9, guide=lambda x0: cost(x0).sum(), guide_scale=0.3)
    assert _rmse(guided, prompt).mean() < 0.5 * _rmse(free, prompt).mean()


# -- 5. config and checkpoint round trips -------------------------------------------------------
@pytest.mark.parametrize("cls,cfg", [(DiffusionPolicy, {}), (DiffusionPolicy, dict(TINY, kernel_size=3)),
                                     (MLPPolicy, {}), (MLPPolicy, dict(hidden=[32], activation="relu", dropout=0.2))])
def test_config_round_trip(cls, cfg):
    torch.manual_seed(0)
    model = cls(O, A, H, **cfg)
    conf = model.config()
    assert json.loads(json.dumps(conf)) == conf
    again = MODELS[model.kind](**json.loads(json.dumps(conf)))
    assert type(again) is cls and again.config() == conf
    again.load_state_dict(model.state_dict())  # strict: same parameter names and shapes


@pytest.mark.parametrize("kind", ["diffusion", "mlp"])
def test_policy_save_load_round_trip(tmp_path, kind):
    torch.manual_seed(0)
    obs_horizon = 2
    model = (DiffusionPolicy(O * obs_horizon, A, H, **TINY) if kind == "diffusion"
             else MLPPolicy(O * obs_horizon, A, H, hidden=[32, 32]))
    rng = np.random.default_rng(0)
    spec = PolicySpec(task="t", obs_size=O, act_size=A, obs_horizon=obs_horizon, horizon=H)
    policy = Policy(model, spec, Normalizer.fit(rng.normal(size=(50, O * obs_horizon))),
                    Normalizer.fit(rng.normal(size=(50, H, A))))
    path = policy.save(tmp_path / "p.safetensors")
    loaded = load_policy(path, expect_obs_size=O, expect_act_size=A)
    assert loaded.kind == kind and loaded.model.config() == model.config()

    def kw():  # a fresh generator per call: the same initial noise, so DDIM gives the same chunk
        return {"generator": torch.Generator().manual_seed(3)} if kind == "diffusion" else {}

    for obs in rng.normal(size=(3, O)):
        a, b = policy.act(obs, **kw()), loaded.act(obs, **kw())
        assert a.actions.shape == (H, A)
        np.testing.assert_array_equal(a.actions, b.actions)
        np.testing.assert_array_equal(a.times, b.times)


# -- 6. bad configuration and arguments ---------------------------------------------------------
@pytest.mark.parametrize("cfg,match", [
    (dict(horizon=6, down_dims=[16, 32, 64]), "divisible"),
    (dict(down_dims=[16, 18]), "n_groups"),
    (dict(kernel_size=4), "kernel_size"),
    (dict(down_dims=[]), "down_dims"),
    (dict(step_embed_dim=15), "step_embed_dim"),
    (dict(num_train_steps=0), "num_train_steps"),
    (dict(act_dim=0), "positive"),
])
def test_bad_diffusion_config(cfg, match):
    args = {"obs_dim": O, "act_dim": A, "horizon": H, **TINY, **cfg}
    with pytest.raises(ValueError, match=match):
        DiffusionPolicy(**args)


@pytest.mark.parametrize("cfg,match", [(dict(activation="tanh"), "activation"), (dict(dropout=1.0), "dropout"),
                                       (dict(hidden=[0]), "hidden")])
def test_bad_mlp_config(cfg, match):
    with pytest.raises(ValueError, match=match):
        MLPPolicy(O, A, H, **cfg)


def test_bad_predict_arguments():
    torch.manual_seed(0)
    model = DiffusionPolicy(O, A, H, **TINY).eval()
    obs = OBS[:2]
    with pytest.raises(ValueError, match="unknown sampler 'dpm'"):
        model.predict(obs, sampler="dpm")
    with pytest.raises(ValueError, match="ddpm sampler runs all 100"):
        model.predict(obs, sampler="ddpm", steps=10)
    with pytest.raises(ValueError, match="ddim steps"):
        model.predict(obs, steps=0)
    with pytest.raises(ValueError, match="spacing"):
        model.predict(obs, spacing="middle")
    with pytest.raises(ValueError, match="obs must have shape"):
        model.predict(obs[:, :3])
    with pytest.raises(ValueError, match="noise must have shape"):
        model.predict(obs, noise=torch.zeros(2, H + 1, A))
    with pytest.raises(ValueError, match="guide_scale"):
        model.predict(obs, guide=lambda x: x.sum(), guide_scale=-1.0)
    with pytest.raises(ValueError, match="actions must have shape"):
        model.loss(obs, torch.zeros(2, H, A + 1))
    with pytest.raises(ValueError, match="stage"):
        model.loss(obs, torch.zeros(2, H, A), stage="tokenizer")
    with pytest.raises(ValueError, match="obs must have shape"):
        MLPPolicy(O, A, H, hidden=[8]).predict(obs[0])
