"""CARP (robot_ctrl.learning.carp): multi-scale action tokenizer, next-scale transformer, KV-cache
decoding, the block-causal mask, config and checkpoint round trips, config errors.

Real torch on the CPU, one thread, small models and short trainings on synthetic smooth chunks.
"""
from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from robot_ctrl.learning.base import MODELS, Normalizer, Policy, PolicySpec, load_policy
from robot_ctrl.learning.carp import CARP

torch.set_num_threads(1)

A, H, OBS = 3, 16, 5
# a small tokenizer (the defaults are bigger) and a tiny transformer
TOK = dict(vocab_size=128, code_dim=16, tok_channels=8)
TINY = dict(width=32, depth=1, heads=2)


def smooth_chunks(n: int, seed: int) -> torch.Tensor:
    """Chunks (n, H, A) of a random low-frequency sinusoid plus a ramp and an offset per dimension."""
    g = torch.Generator().manual_seed(seed)
    t = torch.linspace(0, 1, H)[None, :, None]
    u = lambda: torch.rand(n, 1, A, generator=g)  # noqa: E731
    freq, phase, amp = u() * 1.5 + 0.2, u() * 2 * math.pi, u() * 0.6
    ramp, offset = (u() * 2 - 1) * 0.4, (u() * 2 - 1) * 0.3
    return (amp * torch.sin(2 * math.pi * freq * t + phase) + ramp * (2 * t - 1) + offset).clamp(-1, 1)


def train(model: CARP, stage: str, batches, steps: int, lr: float) -> list[dict]:
    opt = torch.optim.AdamW(model.stage_parameters(stage), lr=lr, betas=(0.5, 0.9), weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps, pct_start=0.1)
    model.train()
    logs = []
    for it in range(steps):
        obs, act = batches(it)
        loss, info = model.loss(obs, act, stage)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        logs.append(info)
    model.eval()
    return logs


@pytest.fixture(scope="module")
def tokenized():
    """A CARP whose tokenizer is trained on smooth chunks (250 steps), with its training log."""
    torch.manual_seed(0)
    model = CARP(OBS, A, H, **TOK, **TINY)
    data = smooth_chunks(2048, seed=0)
    g = torch.Generator().manual_seed(0)

    def batches(_):
        return None, data[torch.randint(0, len(data), (64,), generator=g)]

    logs = train(model, "tokenizer", batches, steps=250, lr=3e-3)
    return model, logs


def test_tokenizer_reconstructs_smooth_chunks(tokenized):
    model, logs = tokenized
    first = np.mean([d["loss"] for d in logs[:10]])
    last = np.mean([d["loss"] for d in logs[-20:]])
    assert last < 0.25 * first, (first, last)
    held_out = smooth_chunks(512, seed=1)
    recon = model.reconstruct(held_out)
    mse = F.mse_loss(recon, held_out).item()
    assert mse < 0.01, mse  # the chunks' variance is ≈ 0.11
    assert logs[-1]["usage"] > 0.2  # codes in use, not a collapsed codebook
    # the tokens decode to the same reconstruction
    idx, _, _ = model.tokenizer.tokenize(held_out[:8])
    assert idx.shape == (8, A * sum(model.scales)) and int(idx.max()) < TOK["vocab_size"]
    torch.testing.assert_close(model.tokenizer.detokenize(idx), recon[:8], rtol=0, atol=1e-5)


def test_policy_learns_a_conditional_task(tokenized):
    """8 distinct observations, each with its own chunk: CE falls and greedy decoding gives the chunk."""
    model = copy.deepcopy(tokenized[0])
    tok_state = {k: v.clone() for k, v in model.tokenizer.state_dict().items()}
    torch.manual_seed(1)
    obs = torch.rand(8, OBS) * 2 - 1
    chunks = smooth_chunks(8, seed=2)
    g = torch.Generator().manual_seed(1)

    def batches(_):
        i = torch.randint(0, 8, (32,), generator=g)
        return obs[i], chunks[i]

    logs = train(model, "policy", batches, steps=250, lr=3e-3)
    first, last = np.mean([d["ce"] for d in logs[:5]]), np.mean([d["ce"] for d in logs[-10:]])
    assert last < 0.5 * first, (first, last)
    assert logs[-1]["acc"] > 0.9
    # the policy stage leaves the tokenizer alone
    for k, v in model.tokenizer.state_dict().items():
        assert torch.equal(v, tok_state[k]), k
    tokens, _ = model.generate(obs)
    target, _, _ = model.tokenizer.tokenize(chunks)
    assert (tokens == target).float().mean().item() > 0.9
    pred = model.predict(obs)
    assert pred.shape == (8, H, A)
    assert F.mse_loss(pred, chunks).item() < 0.01  # ≈ the tokenizer's own reconstruction error (0.002)


def test_kv_cache_decoding_equals_full_recompute():
    torch.manual_seed(3)
    for cfg in (dict(TINY), dict(width=64, depth=3, heads=4, scales=[1, 2, 4], latent_len=4, attn_l2_norm=False)):
        model = CARP(7, 4, 16, **cfg).eval()
        # random weights give near-uniform logits; spread them so the argmax is well defined
        with torch.no_grad():
            model.transformer.head.weight.mul_(50)
            for blk in model.transformer.blocks:
                blk.ada_lin[-1].weight.mul_(100)
        obs = torch.randn(5, 7)
        t1, f1 = model.generate(obs, use_cache=True)
        t2, f2 = model.generate(obs, use_cache=False)
        assert torch.equal(t1, t2)
        torch.testing.assert_close(f1, f2, rtol=0, atol=1e-5)
        torch.testing.assert_close(model.predict(obs), model.predict_nocache(obs), rtol=0, atol=1e-5)
        # the greedy tokens are the argmax of the teacher-forced logits on their own inputs
        _, inputs, _ = _inputs_of(model, t1)
        logits = model.transformer(obs, inputs)
        assert torch.equal(logits.argmax(-1), t1)
    # sampling: reproducible with a generator, top_k=1 is greedy
    s1 = model.predict(obs, temperature=1.0, generator=torch.Generator().manual_seed(0))
    s2 = model.predict(obs, temperature=1.0, generator=torch.Generator().manual_seed(0))
    assert torch.equal(s1, s2)
    torch.testing.assert_close(model.predict(obs, temperature=1.0, top_k=1), model.predict(obs), rtol=0, atol=1e-5)


def _inputs_of(model: CARP, tokens: torch.Tensor):
    """Teacher-forcing inputs built from given token indices (as the tokenizer does from its own)."""
    tok, B, at = model.tokenizer, tokens.shape[0], 0
    f_hat = torch.zeros(B, model.act_dim * tok.C, tok.T)
    inputs = []
    for si, p in enumerate(model.scales):
        f_hat, nxt = tok.add_scale(si, f_hat, tokens[:, at:at + p * model.act_dim].view(B, p, model.act_dim))
        at += p * model.act_dim
        if nxt is not None:
            inputs.append(nxt)
    return tokens, torch.cat(inputs, 1), f_hat


def test_block_causal_mask():
    torch.manual_seed(4)
    model = CARP(6, 3, 16, width=32, depth=2, heads=2).eval()
    tr = model.transformer
    with torch.no_grad():  # open the blocks' gates (initialized near zero, as in VAR)
        for blk in tr.blocks:
            blk.ada_lin[-1].weight.mul_(100)
    obs = torch.randn(2, 6)
    x = torch.randn(2, tr.L - tr.first, model.tokenizer.C)
    with torch.no_grad():
        ref = tr(obs, x)
        starts = np.cumsum([0] + tr.lens)  # token offsets of the scales
        for k in range(1, len(tr.lens)):  # perturb the inputs of scale k (and so everything after it)
            y = x.clone()
            y[:, starts[k] - tr.first:starts[k + 1] - tr.first] += torch.randn(2, tr.lens[k], x.shape[-1])
            out = tr(obs, y)
            assert torch.equal(out[:, :starts[k]], ref[:, :starts[k]]), k  # earlier scales untouched
            assert not torch.allclose(out[:, starts[k]:starts[k + 1]], ref[:, starts[k]:starts[k + 1]])
            # inside the scale, a token sees its whole scale: changing one input changes the others
            z = x.clone()
            z[:, starts[k] - tr.first] += 1.0
            out = tr(obs, z)
            assert not torch.allclose(out[:, starts[k] + 1:starts[k + 1]], ref[:, starts[k] + 1:starts[k + 1]])
        # the observation reaches the first scale (through the start tokens and AdaLN)
        assert not torch.allclose(tr(obs + 1.0, x)[:, :tr.first], ref[:, :tr.first])


def test_config_and_checkpoint_round_trip(tmp_path):
    torch.manual_seed(5)
    model = CARP(2 * OBS, A, H, scales=[1, 2, 4], latent_len=4, vocab_size=64, code_dim=8, tok_channels=4,
                 width=32, depth=2, heads=4).eval()
    with torch.no_grad():  # make the prediction depend on the weights
        model.transformer.head.weight.mul_(50)
    cfg = model.config()
    assert cfg["obs_dim"] == 2 * OBS and cfg["scales"] == [1, 2, 4] and cfg["width"] == 32

    rebuilt = MODELS["carp"](**json.loads(json.dumps(cfg))).eval()
    assert rebuilt.config() == cfg
    rebuilt.load_state_dict(model.state_dict())
    obs = torch.rand(4, 2 * OBS) * 2 - 1
    assert torch.equal(rebuilt.predict(obs), model.predict(obs))

    rng = np.random.default_rng(0)
    spec = PolicySpec(task="t", obs_size=OBS, act_size=A, obs_horizon=2, horizon=H)
    policy = Policy(model, spec, Normalizer.fit(rng.normal(size=(100, 2 * OBS))),
                    Normalizer.fit(rng.normal(size=(100, A))))
    path = policy.save(tmp_path / "carp.safetensors")
    loaded = load_policy(path, expect_obs_size=OBS, expect_act_size=A)
    assert loaded.kind == "carp" and loaded.model.config() == cfg
    for o in rng.normal(size=(3, OBS)):
        a, b = policy.act(o), loaded.act(o)
        np.testing.assert_array_equal(a.actions, b.actions)
        np.testing.assert_array_equal(a.times, b.times)
    assert a.actions.shape == (H, A)


@pytest.mark.parametrize("kw, match", [
    (dict(horizon=15), "horizon"),
    (dict(horizon=12), "power of two"),
    (dict(scales=[1, 2, 3]), "last scale"),
    (dict(scales=[1, 3, 2, 4]), "increasing"),
    (dict(scales=[0, 4]), "increasing"),
    (dict(scales=[]), "increasing"),
    (dict(scales="1234"), "scales"),
    (dict(scales=[1.5, 4]), "scales"),
    (dict(width=30, heads=4), "divisible"),
    (dict(vocab_size=1), "vocab_size"),
    (dict(act_dim=0), "act_dim"),
    (dict(phi_ratio=1.5), "phi_ratio"),
    (dict(dropout=1.0), "dropout"),
    (dict(beta="0.25"), "beta"),
])
def test_bad_config_is_a_clear_value_error(kw, match):
    args = dict(obs_dim=4, act_dim=2, horizon=16) | kw
    with pytest.raises(ValueError, match=match):
        CARP(**args)


def test_stages_and_shapes():
    model = CARP(4, 2, 16, **TINY)
    assert model.kind == "carp" and model.stages == ("tokenizer", "policy") and MODELS["carp"] is CARP
    tok = set(map(id, model.stage_parameters("tokenizer")))
    pol = set(map(id, model.stage_parameters("policy")))
    assert tok and pol and not tok & pol and tok | pol == set(map(id, model.parameters()))
    with pytest.raises(ValueError, match="stage"):
        model.stage_parameters("diffusion")
    with pytest.raises(ValueError, match="stage"):
        model.loss(torch.zeros(1, 4), torch.zeros(1, 16, 2), "diffusion")
    with pytest.raises(ValueError, match="actions"):
        model.loss(torch.zeros(1, 4), torch.zeros(1, 8, 2), "tokenizer")
    with pytest.raises(ValueError, match="obs"):
        model.predict(torch.zeros(1, 5))
    loss, info = model.loss(torch.zeros(3, 4), torch.zeros(3, 16, 2), "policy")
    assert loss.requires_grad and set(info) >= {"ce", "acc"} and all(isinstance(v, float) for v in info.values())
    loss.backward()
    assert all(p.grad is None for p in model.tokenizer.parameters())
    # defaults: the sizes the real runs use
    big = CARP(40, 10, 16)
    n = sum(p.numel() for p in big.parameters())
    assert 1_000_000 < n < 3_000_000, n
    assert big.transformer.L == 10 * (1 + 2 + 3 + 4)


def test_constant_action_dimensions_keep_gradients_finite():
    """A dimension that never varies (a scripted expert's fixed hand rotation, normalized to 0)
    must not blow up the tokenizer's gradients: it did with GroupNorm eps=1e-6 (~1e18)."""
    torch.manual_seed(0)
    model = CARP(OBS, A, H, **TOK, **TINY)
    act = smooth_chunks(64, seed=3)
    act[:, :, 1] = 0.0  # constant dimension
    loss, _ = model.loss(None, act, "tokenizer")
    loss.backward()
    norms = [p.grad.norm() for p in model.stage_parameters("tokenizer") if p.grad is not None]
    assert torch.isfinite(torch.stack(norms)).all()
    assert torch.stack(norms).max() < 1e4


def test_mlp_observation_encoder_option_round_trips():
    torch.manual_seed(0)
    m = CARP(OBS, A, H, **TOK, **TINY, obs_hidden=16)
    assert isinstance(m.transformer.obs_embed, torch.nn.Sequential)
    m2 = MODELS["carp"](**json.loads(json.dumps(m.config())))
    m2.load_state_dict(m.state_dict())
    obs = torch.randn(3, OBS)
    torch.testing.assert_close(m.eval().predict(obs), m2.eval().predict(obs))
    with pytest.raises(ValueError, match="obs_hidden"):
        CARP(OBS, A, H, **TOK, **TINY, obs_hidden=-1)
