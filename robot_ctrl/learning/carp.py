"""CARP — Coarse-to-Fine AutoRegressive Policy (Gong et al., 2024, arXiv 2412.06782), on a CPU scale.

CARP splits action generation in two learned parts, trained one after the other (the model's
`stages`):

1. **"tokenizer"** — a multi-scale action tokenizer (the paper's MSAT, a VQ-VAE in the style of
   VAR's multi-scale residual quantizer). Each action dimension has a tokenizer of its own:

   * **One tokenizer per action dimension, all run at once.** The paper trains an independent
     VQ-VAE (encoder, quantizer with its own codebook, decoder) for every action dimension. Here
     all of them live in one set of *grouped* 1-D convolutions (``groups=act_dim``): channel block
     ``d`` of every layer belongs to dimension ``d`` only, so weights are not shared between
     dimensions (as in the paper) but one conv call serves all of them — no Python loop over
     dimensions anywhere. Group norms use one group per dimension (the paper's ``GroupNorm(1, C)``
     per tokenizer). The codebooks are one tensor ``(act_dim, vocab_size, code_dim)``.
   * **Encoder**: a 1-D conv over time (``conv_in``), then log2(horizon/latent_len) levels of
     [residual conv block, stride-2 conv, residual conv block] with channels ``ch·2, ch·4, …``,
     then GroupNorm·SiLU·conv to ``code_dim`` channels and a 3-tap ``quant_conv``: a chunk of
     ``horizon`` (16) steps becomes a latent ``f`` of ``latent_len`` (4) vectors per dimension.
     The decoder mirrors it with stride-2 transposed convs back to ``horizon`` steps.
   * **Residual quantization over scales** ``scales`` = (1, 2, 3, 4) (VAR): with ``r = f``, for
     every scale ``k`` of length ``p_k``: area-downsample ``r`` to ``p_k`` vectors, pick for each
     the code of highest *cosine* similarity (both normalized), look up the raw code vectors,
     upsample them back to ``latent_len`` (bicubic, as in the authors' code), refine with VAR's
     ``φ_k`` (``h·(1−ρ) + conv3(h)·ρ``, ρ = ``phi_ratio``; ``phi_count`` φ convs partially shared
     across scales exactly like VAR's ``share_quant_resi``), add to ``f̂`` and subtract from ``r``.
     The last scale has ``p = latent_len`` (no resampling).
   * **Loss** (VAR/CARP): ``MSE(decode(f̂), a) + mean_k[MSE(f̂_k, sg f) + β·MSE(sg f̂_k, f)]``
     with ``f̂_k`` the running sum after scale ``k``; the decoder sees ``sg(f̂) + f − sg(f)``
     (straight-through estimator). Reported as ``recon``, ``vq`` and ``commit``. No dead-code
     restarts (the authors do none either); ``usage`` (share of codes hit in the batch) is
     logged instead.

2. **"policy"** — a GPT-style next-scale transformer (the paper's CFAP, derived from VAR):

   * **Token layout** (as the authors' code): scale 1 first, then scale 2, …; inside scale ``k``
     there are ``p_k·act_dim`` tokens, position-major and dimension-minor (token ``j·act_dim + d``
     is position ``j`` of dimension ``d``). L = ``act_dim·Σ scales`` (100 for 10 dimensions).
     Every token predicts one index of its dimension's codebook with one shared head; which
     codebook a token belongs to is told by its learned position embedding (one per token).
   * **Inputs**: the scale-1 tokens are the *start tokens*: the linear observation embedding
     (``obs_embed``) broadcast over the first scale, plus learned ``pos_start``. The tokens of
     scale ``k+1`` are VAR's next-scale input: the tokenizer's running ``f̂`` after scale ``k``
     (per dimension) area-interpolated to ``p_{k+1}`` vectors, embedded by a shared linear
     (``word_embed``). Every token also gets its learned position embedding and the embedding of
     its scale (level).
   * **Observation conditioning** also enters every block through adaptive LayerNorm
     (VAR's AdaLNSelfAttn): ``SiLU·Linear(obs embedding)`` gives per block the shift, scale and
     gate of the attention and the MLP branch (LayerNorms without affine parameters), and a
     last AdaLN before the head. Initialization follows VAR/CARP (gates scaled ~1e-3, head
     ×0.02, output projections / sqrt(2·depth)); attention uses VAR's L2-normalized q/k with a
     learned per-head temperature (the authors' default ``anorm``).
   * **Block-causal mask**: a token attends to every token of its own scale and all earlier
     scales, never later ones. Training is teacher-forced with cross-entropy on the
     tokenizer's indices (the tokenizer frozen: eval mode, no gradients).
   * **Inference with a KV cache**: one transformer forward per scale, on that scale's whole
     block of tokens, whose queries attend to the cached keys/values of all earlier scales plus
     their own block — the same thing the block-causal mask gives in training. Argmax (or
     temperature / top-k sampling) picks the codes, the tokenizer adds them to ``f̂`` and
     builds the next scale's input; after the last scale ``f̂`` is decoded to the chunk.
     ``predict(..., use_cache=False)`` / ``predict_nocache`` recomputes the whole prefix every
     scale instead (a test checks both agree).

Sizes and deviations from the paper / the authors' code (their defaults in brackets):
codebook ``vocab_size`` 256 [512], ``code_dim`` 32 [8], tokenizer base width ``tok_channels`` 8
[2]; transformer ``width`` 128 [64], ``depth`` 4 [8], ``heads`` 4 [8] — about 1.95 M parameters
for obs_dim 40, act_dim 10 (0.67 M tokenizer, 1.28 M transformer), with fewer, wider layers
because batch-1 latency on a CPU is dominated by the number of layer calls (4 scales × depth).
Other differences: the observation is a flat vector (no image encoder); the ten tokenizers are
trained jointly in one stage (the authors train one per dimension, separately — the losses are
per-dimension means, so only the optimizer sees them together); exact GELU instead of the tanh
approximation; no drop-path, no weight EMA (a trainer can add EMA), no dead-code restarts.
"""
from __future__ import annotations

import math
import operator

import torch
import torch.nn.functional as F
from torch import nn

from robot_ctrl.learning.base import ChunkModel, register

# ------------------------------------------------------------------------------------------------
# Multi-scale action tokenizer (one VQ-VAE per action dimension, as grouped convolutions)
# ------------------------------------------------------------------------------------------------


def _gconv(groups: int, cin: int, cout: int, k: int = 3, stride: int = 1, padding: int = 1) -> nn.Conv1d:
    """A conv acting on `groups` independent channel blocks of `cin` → `cout` channels."""
    return nn.Conv1d(groups * cin, groups * cout, k, stride=stride, padding=padding, groups=groups)


def _gnorm(groups: int, c: int) -> nn.GroupNorm:
    """GroupNorm(1, c) of each dimension's block of channels. eps is 1e-2, not the usual 1e-6:
    an action dimension that never varies (the expert's fixed hand rotation) gives a group of
    exactly zero variance, and with eps=1e-6 the stacked norms amplify its gradient to ~1e18."""
    return nn.GroupNorm(groups, groups * c, eps=1e-2)


class _ConvBlock(nn.Module):
    """Residual block: norm·SiLU·conv3 twice, 1×1 shortcut when the width changes."""

    def __init__(self, groups: int, cin: int, cout: int, dropout: float):
        super().__init__()
        self.norm1, self.conv1 = _gnorm(groups, cin), _gconv(groups, cin, cout)
        self.norm2, self.conv2 = _gnorm(groups, cout), _gconv(groups, cout, cout)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.skip = _gconv(groups, cin, cout, 1, 1, 0) if cin != cout else nn.Identity()

    def forward(self, x):
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(self.drop(F.silu(self.norm2(h))))
        return self.skip(x) + h


class _Down(nn.Module):
    """Halve the length: pad one step on the right, conv3 with stride 2."""

    def __init__(self, groups: int, c: int):
        super().__init__()
        self.conv = _gconv(groups, c, c, 3, 2, 0)

    def forward(self, x):
        return self.conv(F.pad(x, (0, 1)))


class _Up(nn.Module):
    """Double the length with a stride-2 transposed conv."""

    def __init__(self, groups: int, c: int):
        super().__init__()
        self.conv = nn.ConvTranspose1d(groups * c, groups * c, 3, stride=2, padding=1, output_padding=1,
                                       groups=groups)

    def forward(self, x):
        return self.conv(x)


class _Phi(nn.Module):
    """VAR's residual refinement φ(h) = (1−ρ)·h + ρ·conv3(h), per dimension."""

    def __init__(self, groups: int, c: int, ratio: float):
        super().__init__()
        self.conv, self.ratio = _gconv(groups, c, c), float(ratio)

    def forward(self, h):
        return h * (1.0 - self.ratio) + self.conv(h) * self.ratio


class MultiScaleActionTokenizer(nn.Module):
    """`act_dim` independent multi-scale residual VQ-VAEs over 1-D action sequences.

    Latents are kept as (B, act_dim·code_dim, latent_len), channel block d = dimension d.
    Token indices of one scale are laid out (B, p, act_dim) → flattened position-major."""

    def __init__(self, act_dim: int, horizon: int, latent_len: int, scales: list[int], vocab_size: int,
                 code_dim: int, channels: int, beta: float, phi_ratio: float, phi_count: int, dropout: float):
        super().__init__()
        A, C = act_dim, code_dim
        self.A, self.C, self.V, self.T, self.horizon = A, C, vocab_size, latent_len, horizon
        self.scales, self.beta = list(scales), float(beta)
        n_down = int(round(math.log2(horizon // latent_len)))
        widths = [channels * 2 ** (i + 1) for i in range(n_down)]

        enc = [_gconv(A, 1, channels)]
        c = channels
        for w in widths:
            enc += [_ConvBlock(A, c, w, dropout), _Down(A, w), _ConvBlock(A, w, w, dropout)]
            c = w
        self.encoder = nn.Sequential(*enc, _gnorm(A, c), nn.SiLU(), _gconv(A, c, C))
        self.quant_conv = _gconv(A, C, C)
        self.post_quant_conv = _gconv(A, C, C)
        dec = [_gnorm(A, C), nn.SiLU(), _gconv(A, C, c)]
        for i in reversed(range(n_down)):
            w_next = channels * 2 ** i
            dec += [_ConvBlock(A, c, c, dropout), _Up(A, c), _ConvBlock(A, c, w_next, dropout)]
            c = w_next
        self.decoder = nn.Sequential(*dec, _gconv(A, c, 1))

        self.codebook = nn.Parameter(torch.empty(A, vocab_size, C))
        S = len(self.scales)
        if phi_ratio > 0:
            K = max(1, min(int(phi_count), S))
            self.phis = nn.ModuleList([_Phi(A, C, phi_ratio) for _ in range(K)])
            # VAR's partial sharing: scale si uses the φ whose tick is nearest to si/(S−1)
            edge = 1 / 3 / K if K == 4 else 1 / 2 / K
            ticks = torch.linspace(edge, 1 - edge, K)
            at = [si / (S - 1) if S > 1 else 0.0 for si in range(S)]
            self._phi_of_scale = [int(torch.argmin((ticks - a).abs())) for a in at]
        else:
            self.phis = nn.ModuleList()
            self._phi_of_scale = [None] * S
        self.register_buffer("_dim_offset", torch.arange(A) * vocab_size, persistent=False)
        self._init_weights()

    def _init_weights(self, gain: float = 0.5):
        # the authors' init: xavier_normal(gain 0.5) for convs (fans per group), small uniform codebook
        for m in self.modules():
            if isinstance(m, (nn.Conv1d, nn.ConvTranspose1d)):
                g, k = m.groups, m.kernel_size[0]
                fan_in, fan_out = m.in_channels // g * k, m.out_channels // g * k
                nn.init.normal_(m.weight, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)))
                nn.init.zeros_(m.bias)
        bound = self.C ** -0.5 / 36
        nn.init.uniform_(self.codebook, -bound, bound)

    # -- pieces ----------------------------------------------------------------------------------
    def encode(self, actions: torch.Tensor) -> torch.Tensor:
        """(B, horizon, A) → latent f (B, A·C, latent_len)."""
        return self.quant_conv(self.encoder(actions.transpose(1, 2)))

    def decode(self, f_hat: torch.Tensor) -> torch.Tensor:
        """latent (B, A·C, latent_len) → actions (B, horizon, A)."""
        return self.decoder(self.post_quant_conv(f_hat)).transpose(1, 2)

    def _down(self, f: torch.Tensor, p: int) -> torch.Tensor:
        return f if p == f.shape[-1] else F.interpolate(f, size=p, mode="area")

    def _up(self, h: torch.Tensor) -> torch.Tensor:
        if h.shape[-1] == self.T:
            return h
        return F.interpolate(h.unsqueeze(-1), size=(self.T, 1), mode="bicubic").squeeze(-1)

    def _phi(self, si: int, h: torch.Tensor) -> torch.Tensor:
        j = self._phi_of_scale[si]
        return h if j is None else self.phis[j](h)

    def nearest(self, r: torch.Tensor) -> torch.Tensor:
        """Residual (B, A·C, p) → code indices (B, p, A), by cosine similarity per dimension."""
        B, _, p = r.shape
        q = F.normalize(r.view(B, self.A, self.C, p).permute(1, 0, 3, 2).reshape(self.A, B * p, self.C), dim=-1)
        e = F.normalize(self.codebook.detach(), dim=-1)
        idx = torch.bmm(q, e.transpose(1, 2)).argmax(-1)  # (A, B·p)
        return idx.view(self.A, B, p).permute(1, 2, 0)

    def lookup(self, idx: torch.Tensor) -> torch.Tensor:
        """Indices (B, p, A) → raw code vectors (B, A·C, p)."""
        B, p, _ = idx.shape
        z = F.embedding(idx + self._dim_offset, self.codebook.view(self.A * self.V, self.C))  # (B, p, A, C)
        return z.permute(0, 2, 3, 1).reshape(B, self.A * self.C, p)

    def tokens_to_input(self, f: torch.Tensor) -> torch.Tensor:
        """(B, A·C, p) → (B, p·A, C): one token per (position, dimension), dimension-minor."""
        B, _, p = f.shape
        return f.view(B, self.A, self.C, p).permute(0, 3, 1, 2).reshape(B, p * self.A, self.C)

    def add_scale(self, si: int, f_hat: torch.Tensor, idx: torch.Tensor):
        """Add scale `si`'s codes `idx` (B, p, A) to f̂; return the new f̂ and the next scale's
        transformer input (B, p_next·A, C), or None after the last scale."""
        f_hat = f_hat + self._phi(si, self._up(self.lookup(idx)))
        if si == len(self.scales) - 1:
            return f_hat, None
        return f_hat, self.tokens_to_input(self._down(f_hat, self.scales[si + 1]))

    # -- training --------------------------------------------------------------------------------
    def forward(self, actions: torch.Tensor):
        """Returns reconstruction, (vq, commit) losses and the codes hit (for usage)."""
        f = self.encode(actions)
        f_ng = f.detach()
        f_rest, f_hat = f_ng.clone(), torch.zeros_like(f_ng)
        vq = commit = f.new_zeros(())
        hits = []
        for si, p in enumerate(self.scales):
            idx = self.nearest(self._down(f_rest, p))
            h = self._phi(si, self._up(self.lookup(idx)))
            f_hat = f_hat + h
            f_rest = f_rest - h.detach()
            vq = vq + F.mse_loss(f_hat, f_ng)
            commit = commit + F.mse_loss(f_hat.detach(), f)
            hits.append((idx + self._dim_offset).reshape(-1))
        S = len(self.scales)
        f_st = f_hat.detach() + (f - f_ng)  # straight-through: value f̂, gradient to the encoder
        return self.decode(f_st), vq / S, commit / S, torch.cat(hits)

    @torch.no_grad()
    def tokenize(self, actions: torch.Tensor):
        """Actions → (indices (B, L) in token order, teacher-forcing inputs (B, L − p_1·A, C), f̂)."""
        f = self.encode(actions)
        f_hat = torch.zeros_like(f)
        idxs, inputs = [], []
        for si, p in enumerate(self.scales):
            idx = self.nearest(self._down(f - f_hat, p))
            f_hat, nxt = self.add_scale(si, f_hat, idx)
            idxs.append(idx.reshape(idx.shape[0], -1))
            if nxt is not None:
                inputs.append(nxt)
        return torch.cat(idxs, 1), torch.cat(inputs, 1) if inputs else f.new_zeros(f.shape[0], 0, self.C), f_hat

    @torch.no_grad()
    def detokenize(self, idx: torch.Tensor) -> torch.Tensor:
        """Indices (B, L) in token order → actions (B, horizon, A)."""
        B = idx.shape[0]
        f_hat = idx.new_zeros(B, self.A * self.C, self.T, dtype=self.codebook.dtype)
        at = 0
        for si, p in enumerate(self.scales):
            f_hat, _ = self.add_scale(si, f_hat, idx[:, at:at + p * self.A].view(B, p, self.A))
            at += p * self.A
        return self.decode(f_hat)


# ------------------------------------------------------------------------------------------------
# Next-scale prediction transformer (VAR-style, AdaLN conditioned on the observation)
# ------------------------------------------------------------------------------------------------


class _Attention(nn.Module):
    def __init__(self, width: int, heads: int, dropout: float, l2_norm: bool):
        super().__init__()
        self.h, self.hd, self.dropout, self.l2_norm = heads, width // heads, float(dropout), bool(l2_norm)
        self.qkv = nn.Linear(width, 3 * width, bias=False)
        self.q_bias, self.v_bias = nn.Parameter(torch.zeros(width)), nn.Parameter(torch.zeros(width))
        self.register_buffer("_k_bias", torch.zeros(width), persistent=False)
        if self.l2_norm:  # VAR: cosine attention with a learned per-head temperature ≤ 100
            self.scale_mul = nn.Parameter(torch.full((1, heads, 1, 1), 4.0).log())
            self.scale, self._max_log = 1.0, math.log(100.0)
        else:
            self.scale = 0.25 / math.sqrt(self.hd)
        self.proj = nn.Linear(width, width)
        self.proj_drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def consts(self):
        """Per-forward constants: the qkv bias (no key bias) and the per-head query scale."""
        bias = torch.cat((self.q_bias, self._k_bias, self.v_bias))
        return bias, self.scale_mul.clamp_max(self._max_log).exp() if self.l2_norm else None

    def forward(self, x, consts, mask=None, cache: dict | None = None):
        B, N, W = x.shape
        bias, q_scale = consts
        qkv = F.linear(x, self.qkv.weight, bias).view(B, N, 3, self.h, self.hd)
        if self.l2_norm:
            qk = F.normalize(qkv[:, :, :2], dim=-1).permute(2, 0, 3, 1, 4)  # (2, B, h, N, hd)
            q, k = qk[0] * q_scale, qk[1]
        else:
            q, k = qkv[:, :, 0].transpose(1, 2), qkv[:, :, 1].transpose(1, 2)
        v = qkv[:, :, 2].transpose(1, 2)
        if cache is not None:
            if "k" in cache:
                k, v = torch.cat((cache["k"], k), 2), torch.cat((cache["v"], v), 2)
            cache["k"], cache["v"] = k, v
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=self.scale,
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.proj_drop(self.proj(o.transpose(1, 2).reshape(B, N, W)))


class _Block(nn.Module):
    """VAR's AdaLNSelfAttn: x += γ1·attn(LN(x)(1+s1)+b1); x += γ2·mlp(LN(x)(1+s2)+b2)."""

    def __init__(self, width: int, heads: int, mlp_ratio: float, dropout: float, l2_norm: bool):
        super().__init__()
        self.width = width
        self.attn = _Attention(width, heads, dropout, l2_norm)
        hidden = round(width * mlp_ratio)
        self.fc1, self.fc2 = nn.Linear(width, hidden), nn.Linear(hidden, width)
        self.mlp_drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.ada_lin = nn.Sequential(nn.SiLU(), nn.Linear(width, 6 * width))

    def ada(self, cond):
        """(B, W) → gamma1, gamma2, 1 + scale1, 1 + scale2, shift1, shift2 (each (B, 1, W)) and
        the attention's constants: everything a forward needs that does not depend on x."""
        g1, g2, s1, s2, b1, b2 = self.ada_lin(cond).view(-1, 1, 6, self.width).unbind(2)
        return g1, g2, s1 + 1, s2 + 1, b1, b2, self.attn.consts()

    def forward(self, x, ada, mask=None, cache=None):
        g1, g2, s1, s2, b1, b2, consts = ada
        h = torch.addcmul(b1, F.layer_norm(x, (self.width,), eps=1e-6), s1)
        x = torch.addcmul(x, self.attn(h, consts, mask, cache), g1)
        h = torch.addcmul(b2, F.layer_norm(x, (self.width,), eps=1e-6), s2)
        return torch.addcmul(x, self.mlp_drop(self.fc2(F.gelu(self.fc1(h)))), g2)


class NextScaleTransformer(nn.Module):
    def __init__(self, obs_dim: int, act_dim: int, scales: list[int], code_dim: int, vocab_size: int,
                 width: int, depth: int, heads: int, mlp_ratio: float, dropout: float, attn_l2_norm: bool,
                 obs_hidden: int = 0):
        super().__init__()
        self.A, self.W, self.V = act_dim, width, vocab_size
        self.lens = [p * act_dim for p in scales]  # tokens per scale
        self.L, self.first = sum(self.lens), self.lens[0]
        # the observation encoder: linear (the paper's state-based setting), or with obs_hidden > 0
        # a two-layer MLP (a smoother map from continuous goals to the conditioning)
        self.obs_embed = nn.Linear(obs_dim, width) if obs_hidden <= 0 else nn.Sequential(
            nn.Linear(obs_dim, obs_hidden), nn.Mish(), nn.Linear(obs_hidden, width))
        self.word_embed = nn.Linear(code_dim, width)
        self.pos_start = nn.Parameter(torch.empty(1, self.first, width))
        self.pos = nn.Parameter(torch.empty(1, self.L, width))
        self.lvl_embed = nn.Embedding(len(scales), width)
        self.blocks = nn.ModuleList([_Block(width, heads, mlp_ratio, dropout, attn_l2_norm) for _ in range(depth)])
        self.head_ada = nn.Sequential(nn.SiLU(), nn.Linear(width, 2 * width))
        self.head = nn.Linear(width, vocab_size)
        lvl = torch.cat([torch.full((n,), i) for i, n in enumerate(self.lens)])
        self.register_buffer("_lvl", lvl, persistent=False)
        self.register_buffer("_mask", lvl[:, None] >= lvl[None, :], persistent=False)  # True = may attend
        self._init_weights()

    def _init_weights(self, ada=0.5, ada_gamma=1e-3, head=0.02):
        # VAR/CARP init with the authors' defaults (tini −1 → std √(1/3W), taln, talng, thd)
        std = math.sqrt(1.0 / self.W / 3)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=std)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Embedding):
                nn.init.trunc_normal_(m.weight, std=std)
        nn.init.trunc_normal_(self.pos_start, std=std)
        nn.init.trunc_normal_(self.pos, std=std)
        with torch.no_grad():
            self.head.weight.mul_(head)
            self.head_ada[-1].weight.mul_(ada)
            for b in self.blocks:
                b.attn.proj.weight.div_(math.sqrt(2 * len(self.blocks)))
                b.fc2.weight.div_(math.sqrt(2 * len(self.blocks)))
                b.ada_lin[-1].weight[2 * self.W:].mul_(ada)
                b.ada_lin[-1].weight[:2 * self.W].mul_(ada_gamma)

    def condition(self, obs):
        """Observation embedding (also the start token), the per-block AdaLN terms and the head's."""
        cond = self.obs_embed(obs)
        s, b = self.head_ada(cond).view(-1, 1, 2, self.W).unbind(2)
        return cond, [blk.ada(cond) for blk in self.blocks], (s + 1, b)

    def start_tokens(self, cond):
        B = cond.shape[0]
        return cond[:, None].expand(B, self.first, self.W) + self.pos_start

    def level_pos(self, a: int, b: int):
        return self.lvl_embed(self._lvl[a:b])[None] + self.pos[:, a:b]

    def run(self, x, adas, head_ada, mask=None, caches=None):
        for i, blk in enumerate(self.blocks):
            x = blk(x, adas[i], mask, None if caches is None else caches[i])
        s, b = head_ada
        return self.head(torch.addcmul(b, F.layer_norm(x, (self.W,), eps=1e-6), s))

    def forward(self, obs, x_in):
        """Teacher forcing. obs (B, obs_dim), x_in (B, L − first, code_dim) the next-scale inputs
        of scales 2…S → logits (B, L, V)."""
        cond, adas, head_ada = self.condition(obs)
        x = torch.cat((self.start_tokens(cond), self.word_embed(x_in)), 1) + self.level_pos(0, self.L)
        return self.run(x, adas, head_ada, self._mask)


# ------------------------------------------------------------------------------------------------
# The policy model
# ------------------------------------------------------------------------------------------------


def _pick(logits, temperature: float, top_k: int, generator):
    if temperature is None or temperature <= 0:
        return logits.argmax(-1)
    logits = logits / temperature
    if top_k and 0 < top_k < logits.shape[-1]:
        kth = logits.topk(int(top_k), -1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = logits.softmax(-1)
    return torch.multinomial(probs.reshape(-1, probs.shape[-1]), 1, generator=generator).view(probs.shape[:-1])


@register
class CARP(ChunkModel):
    """Coarse-to-fine autoregressive chunk policy; see the module docstring."""

    kind = "carp"
    stages = ("tokenizer", "policy")

    def __init__(self, obs_dim: int, act_dim: int, horizon: int = 16, *, latent_len: int = 4,
                 scales=(1, 2, 3, 4), vocab_size: int = 256, code_dim: int = 32, tok_channels: int = 8,
                 beta: float = 0.25, phi_ratio: float = 0.5, phi_count: int = 4, tok_dropout: float = 0.0,
                 width: int = 128, depth: int = 4, heads: int = 4, mlp_ratio: float = 4.0, dropout: float = 0.0,
                 attn_l2_norm: bool = True, label_smoothing: float = 0.0, obs_hidden: int = 0):
        if not isinstance(obs_hidden, int) or isinstance(obs_hidden, bool) or obs_hidden < 0:
            raise ValueError(f"obs_hidden must be an integer >= 0, got {obs_hidden!r}")
        scales = _check_config(obs_dim, act_dim, horizon, latent_len, scales, vocab_size, code_dim, tok_channels,
                               beta, phi_ratio, phi_count, width, depth, heads, mlp_ratio, dropout, tok_dropout,
                               label_smoothing)
        super().__init__(obs_dim, act_dim, horizon, latent_len=int(latent_len), scales=scales,
                         vocab_size=int(vocab_size), code_dim=int(code_dim), tok_channels=int(tok_channels),
                         beta=float(beta), phi_ratio=float(phi_ratio), phi_count=int(phi_count),
                         tok_dropout=float(tok_dropout), width=int(width), depth=int(depth), heads=int(heads),
                         mlp_ratio=float(mlp_ratio), dropout=float(dropout), attn_l2_norm=bool(attn_l2_norm),
                         label_smoothing=float(label_smoothing), obs_hidden=int(obs_hidden))
        c = self._cfg
        self.scales = scales
        self.tokenizer = MultiScaleActionTokenizer(self.act_dim, self.horizon, c["latent_len"], scales,
                                                   c["vocab_size"], c["code_dim"], c["tok_channels"], c["beta"],
                                                   c["phi_ratio"], c["phi_count"], c["tok_dropout"])
        self.transformer = NextScaleTransformer(self.obs_dim, self.act_dim, scales, c["code_dim"], c["vocab_size"],
                                                c["width"], c["depth"], c["heads"], c["mlp_ratio"], c["dropout"],
                                                c["attn_l2_norm"], c["obs_hidden"])

    def stage_parameters(self, stage: str):
        if stage == "tokenizer":
            return self.tokenizer.parameters()
        if stage == "policy":
            return self.transformer.parameters()
        raise ValueError(f"unknown CARP stage {stage!r} (stages: {', '.join(self.stages)})")

    def _check(self, obs=None, actions=None):
        if obs is not None and (obs.ndim != 2 or obs.shape[1] != self.obs_dim):
            raise ValueError(f"obs must have shape (B, {self.obs_dim}), got {tuple(obs.shape)}")
        if actions is not None and (actions.ndim != 3 or tuple(actions.shape[1:]) != (self.horizon, self.act_dim)):
            raise ValueError(f"actions must have shape (B, {self.horizon}, {self.act_dim}), got {tuple(actions.shape)}")

    # -- training --------------------------------------------------------------------------------
    def loss(self, obs, actions, stage: str = "policy"):
        self._check(obs if stage == "policy" else None, actions)
        if stage == "tokenizer":
            recon, vq, commit, hits = self.tokenizer(actions)
            rec = F.mse_loss(recon, actions)
            total = rec + vq + self.tokenizer.beta * commit
            usage = torch.bincount(hits, minlength=self.act_dim * self.tokenizer.V).gt(0).float().mean()
            return total, {"loss": total.item(), "recon": rec.item(), "vq": vq.item(), "commit": commit.item(),
                           "usage": usage.item()}
        if stage == "policy":
            was_training = self.tokenizer.training
            self.tokenizer.eval()
            try:
                gt, x_in, _ = self.tokenizer.tokenize(actions)
            finally:
                self.tokenizer.train(was_training)
            logits = self.transformer(obs, x_in)
            V = logits.shape[-1]
            ce = F.cross_entropy(logits.reshape(-1, V), gt.reshape(-1), label_smoothing=self._cfg["label_smoothing"])
            with torch.no_grad():
                hit = logits.argmax(-1) == gt
                last = self.transformer.lens[-1]
                ce_last = F.cross_entropy(logits[:, -last:].reshape(-1, V), gt[:, -last:].reshape(-1))
            return ce, {"loss": ce.item(), "ce": ce.item(), "acc": hit.float().mean().item(),
                        "ce_last": ce_last.item(), "acc_last": hit[:, -last:].float().mean().item()}
        raise ValueError(f"unknown CARP stage {stage!r} (stages: {', '.join(self.stages)})")

    # -- inference -------------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, obs, temperature: float = 0.0, top_k: int = 0, use_cache: bool = True, generator=None):
        """Coarse-to-fine decoding → (token indices (B, L), latent f̂ (B, A·C, latent_len)).

        With `use_cache` each scale runs one transformer forward on its own block of tokens
        against the cached keys/values of the earlier scales; without, the whole prefix is
        recomputed under the block-causal mask."""
        self._check(obs)
        tr, tok = self.transformer, self.tokenizer
        B = obs.shape[0]
        cond, adas, head_ada = tr.condition(obs)
        lvl_pos = tr.level_pos(0, tr.L)
        x = tr.start_tokens(cond) + lvl_pos[:, :tr.first]
        f_hat = obs.new_zeros(B, self.act_dim * tok.C, tok.T)
        caches = [{} for _ in tr.blocks] if use_cache else None
        prefix, idxs, at = [], [], 0
        for si, p in enumerate(self.scales):
            n = tr.lens[si]
            if use_cache:
                logits = tr.run(x, adas, head_ada, None, caches)
            else:
                prefix.append(x)
                seq = torch.cat(prefix, 1)
                logits = tr.run(seq, adas, head_ada, tr._mask[:at + n, :at + n])[:, at:]
            idx = _pick(logits, temperature, top_k, generator)  # (B, p·A)
            idxs.append(idx)
            f_hat, nxt = tok.add_scale(si, f_hat, idx.view(B, p, self.act_dim))
            at += n
            if nxt is not None:
                x = tr.word_embed(nxt) + lvl_pos[:, at:at + tr.lens[si + 1]]
        return torch.cat(idxs, 1), f_hat

    @torch.no_grad()
    def predict(self, obs, temperature: float = 0.0, top_k: int = 0, use_cache: bool = True, generator=None):
        """obs (B, obs_dim) → actions (B, horizon, act_dim); greedy unless `temperature` > 0."""
        _, f_hat = self.generate(obs, temperature, top_k, use_cache, generator)
        return self.tokenizer.decode(f_hat)

    @torch.no_grad()
    def predict_nocache(self, obs, **kw):
        """`predict` recomputing the full token sequence at every scale (reference for the cache)."""
        return self.predict(obs, use_cache=False, **kw)

    @torch.no_grad()
    def reconstruct(self, actions):
        """Tokenize and decode `actions` (B, horizon, act_dim): the tokenizer's reconstruction."""
        self._check(actions=actions)
        _, _, f_hat = self.tokenizer.tokenize(actions)
        return self.tokenizer.decode(f_hat)


def _raise():
    raise TypeError


def _check_config(obs_dim, act_dim, horizon, latent_len, scales, vocab_size, code_dim, tok_channels, beta, phi_ratio,
                  phi_count, width, depth, heads, mlp_ratio, dropout, tok_dropout, label_smoothing) -> list[int]:
    def positive_int(name, v):
        try:
            ok = not isinstance(v, bool) and operator.index(v) >= 1
        except TypeError:
            ok = False
        if not ok:
            raise ValueError(f"CARP: {name} must be a positive integer, got {v!r}")

    for name, v in (("obs_dim", obs_dim), ("act_dim", act_dim), ("horizon", horizon), ("latent_len", latent_len),
                    ("vocab_size", vocab_size), ("code_dim", code_dim), ("tok_channels", tok_channels),
                    ("width", width), ("depth", depth), ("heads", heads), ("phi_count", phi_count)):
        positive_int(name, v)
    if vocab_size < 2:
        raise ValueError(f"CARP: vocab_size must be at least 2, got {vocab_size}")
    ratio = horizon // latent_len
    if horizon % latent_len or ratio & (ratio - 1):
        raise ValueError(f"CARP: horizon ({horizon}) must be latent_len ({latent_len}) times a power of two "
                         "(the tokenizer halves the length with stride-2 convolutions)")
    try:
        scales = [operator.index(s) for s in scales if not isinstance(s, bool) or _raise()]
    except TypeError:
        raise ValueError(f"CARP: scales must be a list of positive integers, got {scales!r}") from None
    if not scales or scales[0] < 1 or any(b <= a for a, b in zip(scales, scales[1:])):
        raise ValueError(f"CARP: scales must be strictly increasing positive integers, got {scales!r}")
    if scales[-1] != latent_len:
        raise ValueError(f"CARP: the last scale must equal latent_len ({latent_len}), got scales {scales}")
    for name, v in (("beta", beta), ("phi_ratio", phi_ratio), ("mlp_ratio", mlp_ratio), ("dropout", dropout),
                    ("tok_dropout", tok_dropout), ("label_smoothing", label_smoothing)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ValueError(f"CARP: {name} must be a finite number, got {v!r}")
    if width % heads:
        raise ValueError(f"CARP: width ({width}) must be divisible by heads ({heads})")
    if not beta >= 0 or not 0 <= phi_ratio <= 1 or not mlp_ratio > 0:
        raise ValueError(f"CARP: need beta ≥ 0 (got {beta}), 0 ≤ phi_ratio ≤ 1 (got {phi_ratio}), "
                         f"mlp_ratio > 0 (got {mlp_ratio})")
    for name, v in (("dropout", dropout), ("tok_dropout", tok_dropout), ("label_smoothing", label_smoothing)):
        if not 0 <= v < 1:
            raise ValueError(f"CARP: {name} must be in [0, 1), got {v}")
    return scales
