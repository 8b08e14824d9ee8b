"""The Mamba-1 (core/layers/mamba1.py), lightning-attention (lightning.py), short-convolution (short_conv.py) and
parallel-mixer (parallel.py) layers against their accounting and against transcriptions of their references.

Proves, in float64 on CPU with small specs:
(a) the state is fixed-size: its tensors' nbytes equal the accounting's state elements x element size after 1, 7
    or 64 tokens; a Falcon-H1 layer (GQA + Mamba-2) holds the attention's growing KV cache plus the fixed
    Mamba-2 state, and its nbytes equal kv_cache_bytes + state_bytes at every context;
(b) one call over a sequence equals the same sequence in pieces (prefill, then decode steps) with the state
    carried, to 1e-12, outputs and final state;
(c) each layer equals an independent transcription of its reference, written here, to 1e-10: Jamba's
    JambaMambaMixer.slow_forward (elementwise discretisation, padded conv), MiniMaxLightningAttention's prefill
    in blocks (intra-block decay mask, inter-block state; blocks of 4 over 9 tokens, so a partial block too),
    Lfm2ShortConv.slow_forward; the decay rates are HF's get_slope_rate, equal to vLLM's _build_slope_tensor
    when the head count is a power of two; a parallel layer equals the sum of its parts built alone;
(d) FlopCounterMode counts the accounting's decode-step FLOPs (core + 2 x matmul weights) for T = 1, per
    sequence in the batch, and each layer has the accounting's parameter count (the designs' formulas);
(e) they run on CUDA in float32 when a device is there.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from recurrent import F64, E, assert_pieces_equal_one_call, assert_state_is_accounted, step_flops, tokens
from torch.utils.flop_counter import FlopCounterMode

from core.accounting import totals as acc
from core.layers.build import build_layer
from core.layers.lightning import LightningAttention, slope_rate
from core.layers.mamba1 import Mamba1
from core.layers.parallel import ParallelMixers
from core.layers.short_conv import ShortConv
from core.model.specs import (
    DenseMLP,
    GQASpec,
    LightningSpec,
    LinearAttentionSpec,
    Mamba1Spec,
    Mamba2Spec,
    ModelSpec,
    ParallelSpec,
    ShortConvSpec,
)

MAMBA1 = [
    Mamba1Spec(d_inner=6, state_size=3, conv_kernel=4, dt_rank=2),
    Mamba1Spec(d_inner=8, state_size=4, conv_kernel=2, dt_rank=1, conv_bias=False, proj_bias=True, dt_norms=True),
]
LIGHTNING = [LightningSpec(n_heads=1, head_dim=4), LightningSpec(n_heads=3, head_dim=5)]
SHORT_CONV = [ShortConvSpec(channels=7, conv_kernel=3), ShortConvSpec(channels=5, conv_kernel=1, conv_bias=True)]
PARALLEL = [ParallelSpec((MAMBA1[0], SHORT_CONV[0], LIGHTNING[1])), ParallelSpec((Mamba2Spec(2, 4, 3), MAMBA1[1]))]
SPECS = MAMBA1 + LIGHTNING + SHORT_CONV + PARALLEL
FALCON_H1 = ParallelSpec((GQASpec(4, 2, 6), Mamba2Spec(4, 3, 4, n_groups=2)))  # attention and Mamba-2 side by side


def make(spec, seed: int = 0):
    return build_layer(spec, E, seed=seed, device="cpu", dtype=F64)


def rms(x: torch.Tensor, weight: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.kind)
@pytest.mark.parametrize("T", [1, 7, 64])
def test_state_bytes_are_constant(spec, T):
    assert_state_is_accounted(make(spec), spec, T)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.kind)
@pytest.mark.parametrize("pieces", [(5, 4), (6, 1, 2), (1, 1, 7)])
def test_pieces_equal_one_call(spec, pieces):
    assert_pieces_equal_one_call(make(spec), pieces)


# ----------------------------------------------------------------------------- (c) references


def reference_mamba1(layer: Mamba1, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """JambaMambaMixer.slow_forward from an empty cache, transcribed from modeling_jamba.py: channels first,
    padded conv, discrete_A = exp(A dt), deltaB_u = dt B x elementwise, readout h . C. Returns (out, final h)."""
    s, w = layer.spec, {k: v.detach() for k, v in layer.state_dict().items()}
    B, T, _ = x.shape
    D, N, R, W = s.d_inner, s.state_size, s.dt_rank, s.conv_kernel
    projected = F.linear(x, w["in_proj.weight"], w.get("in_proj.bias")).transpose(1, 2)  # (B, 2D, T)
    hidden, gate = projected.chunk(2, dim=1)
    conv = F.conv1d(hidden, w["conv1d.weight"], w.get("conv1d.bias"), padding=W - 1, groups=D)
    hidden = F.silu(conv[..., :T])  # (B, D, T)
    time_step, Bm, Cm = (hidden.transpose(1, 2) @ w["x_proj.weight"].T).split([R, N, N], dim=-1)
    if s.dt_norms:
        time_step = rms(time_step, w["dt_layernorm.weight"])
        Bm, Cm = rms(Bm, w["b_layernorm.weight"]), rms(Cm, w["c_layernorm.weight"])
    dt = F.softplus(time_step @ w["dt_proj.weight"].T + w["dt_proj.bias"]).transpose(1, 2)  # (B, D, T)
    A = -torch.exp(w["A_log"])  # (D, N)
    discrete_A = torch.exp(A[None, :, None, :] * dt[:, :, :, None])  # (B, D, T, N)
    deltaB_u = dt[:, :, :, None] * Bm[:, None, :, :] * hidden[:, :, :, None]  # (B, D, T, N)
    h, ys = torch.zeros(B, D, N, dtype=x.dtype), []
    for i in range(T):
        h = discrete_A[:, :, i, :] * h + deltaB_u[:, :, i, :]
        ys.append((h * Cm[:, None, i, :]).sum(-1))  # (B, D)
    y = (torch.stack(ys, dim=-1) + hidden * w["D"][None, :, None]) * F.silu(gate)  # (B, D, T)
    return F.linear(y.transpose(1, 2), w["out_proj.weight"], w.get("out_proj.bias")), h


def reference_lightning(layer: LightningAttention, x: torch.Tensor, block: int) -> tuple[torch.Tensor, torch.Tensor]:
    """MiniMaxLightningAttention.forward from an empty cache (its prefill branch), transcribed from
    modeling_minimax.py with block_size `block`: within a block (Q K^T * decay mask) V, across blocks the decayed
    state; slope rates from get_slope_rate for layer 0 of 1. Returns (out, final kv state)."""
    s, w = layer.spec, {k: v.detach() for k, v in layer.state_dict().items()}
    B, T, _ = x.shape
    H, K = s.n_heads, s.head_dim
    qkv = F.silu(x @ w["qkv_proj.weight"].T).reshape(B, T, H, 3 * K)
    q, k, v = (t.transpose(1, 2) for t in torch.split(qkv, K, dim=3))  # (B, H, T, K)
    layer_idx, num_hidden_layers = 0, 1
    base, factor = 1 / (2 ** (8 / H)), 1 - layer_idx / (num_hidden_layers - 1 + 1e-5) + 1e-5
    slope = (base ** (torch.arange(H, dtype=F64) + 1) * factor)[:, None, None]  # (H, 1, 1)
    r = torch.arange(block, dtype=F64) + 1
    query_decay = torch.exp(-slope * r[:, None])  # (H, block, 1)
    key_decay = torch.exp(-slope * (block - r[:, None]))
    diag = slope * (r[:, None] - r[None, :])[None, None]  # (1, H, block, block)
    diag = torch.exp(torch.where(diag >= 0, -diag, float("-inf")))
    kv, outs = torch.zeros(B, H, K, K, dtype=x.dtype), []
    for start in range(0, T, block):
        n = min(start + block, T) - start
        qb, kb, vb = q[:, :, start : start + n], k[:, :, start : start + n], v[:, :, start : start + n]
        intra = ((qb @ kb.transpose(-1, -2)) * diag[:, :, :n, :n]) @ vb
        inter = (qb * query_decay[:, :n]) @ kv
        outs.append(intra + inter)
        kv = kv * torch.exp(-slope * n) + (kb * key_decay[:, -n:]).transpose(-1, -2) @ vb
    o = rms(torch.cat(outs, dim=-2).transpose(1, 2).reshape(B, T, H * K), w["norm.weight"])
    return (torch.sigmoid(x @ w["output_gate.weight"].T) * o) @ w["out_proj.weight"].T, kv


def reference_short_conv(layer: ShortConv, x: torch.Tensor) -> torch.Tensor:
    """Lfm2ShortConv.slow_forward without a cache, transcribed from modeling_lfm2.py."""
    s, w = layer.spec, {k: v.detach() for k, v in layer.state_dict().items()}
    T = x.shape[1]
    BCx = F.linear(x, w["in_proj.weight"], w.get("in_proj.bias")).transpose(-1, -2)
    Bg, Cg, xs = BCx.chunk(3, dim=-2)
    conv = F.conv1d(Bg * xs, w["conv.weight"], w.get("conv.bias"), padding=s.conv_kernel - 1, groups=s.channels)
    return F.linear((Cg * conv[..., :T]).transpose(-1, -2), w["out_proj.weight"], w.get("out_proj.bias"))


@pytest.mark.parametrize("spec", MAMBA1, ids=["plain", "jamba-norms"])
def test_mamba1_matches_jamba_transcription(spec):
    layer, x = make(spec, seed=3), tokens(2, 9, seed=4)
    out, state = layer(x)
    ref_out, ref_h = reference_mamba1(layer, x)
    torch.testing.assert_close(out, ref_out, atol=1e-10, rtol=0)
    torch.testing.assert_close(state.ssm, ref_h, atol=1e-10, rtol=0)


@pytest.mark.parametrize("spec", LIGHTNING, ids=["1 head", "3 heads"])
def test_lightning_matches_minimax_block_form(spec):
    layer, x = make(spec, seed=3), tokens(2, 9, seed=4)
    out, state = layer(x)
    ref_out, ref_kv = reference_lightning(layer, x, block=4)
    torch.testing.assert_close(out, ref_out, atol=1e-10, rtol=0)
    torch.testing.assert_close(state.kv, ref_kv, atol=1e-10, rtol=0)


def test_slope_rates_are_hf_and_vllm_for_powers_of_two():
    """vLLM's _build_slope_tensor for n a power of two: start = 2^(-2^-(log2 n - 3)), slopes start^(i+1); both
    scale them by 1 + 1e-5 for layer 0 (vLLM: num_hidden_layers <= 1); later layers decay more slowly."""
    for n in (1, 2, 4, 8, 64):
        start = 2 ** (-(2 ** -(math.log2(n) - 3)))
        vllm = torch.tensor([start * start**i for i in range(n)], dtype=F64) * (1 + 1e-5)
        torch.testing.assert_close(slope_rate(n), vllm, atol=0, rtol=1e-12)
    assert (slope_rate(8, layer_idx=5, n_layers=10) < slope_rate(8)).all()


@pytest.mark.parametrize("spec", SHORT_CONV, ids=["no bias", "bias"])
def test_short_conv_matches_lfm2_transcription(spec):
    layer, x = make(spec, seed=3), tokens(2, 9, seed=4)
    torch.testing.assert_close(layer(x)[0], reference_short_conv(layer, x), atol=1e-10, rtol=0)


@pytest.mark.parametrize("spec", PARALLEL + [FALCON_H1], ids=lambda s: s.kind)
def test_parallel_is_the_sum_of_its_parts(spec):
    layer, x = make(spec, seed=3), tokens(2, 6, seed=4)
    assert isinstance(layer, ParallelMixers)
    out, cache = layer(x)
    alone = [build_layer(p, E, seed=3 + i, device="cpu", dtype=F64)(x) for i, p in enumerate(spec.parts)]
    torch.testing.assert_close(out, sum(o for o, _ in alone), atol=1e-12, rtol=0)
    assert [t.shape for t in cache.tensors()] == [t.shape for _, c in alone for t in c.tensors()]


@pytest.mark.parametrize("context", [1, 16, 200])
def test_falcon_h1_layer_holds_a_growing_cache_and_a_fixed_state(context):
    """Beside the attention's KV cache, which grows with the context, the Mamba-2 state stays the same."""
    spec = ParallelSpec((GQASpec(4, 2, 6), Mamba2Spec(4, 3, 4, n_groups=2, ssm_dtype="fp32", conv_dtype="fp32")))
    model = ModelSpec("falcon-h1", "test", E, 16, (spec,), (DenseMLP(8),))
    x = torch.randn(1, context, E, generator=torch.Generator().manual_seed(0))
    _, cache = build_layer(spec, E, device="cpu")(x)
    kv = acc.kv_cache_bytes(model, context, kv_dtype="fp32")
    assert kv == context * 2 * 2 * 6 * 4
    assert sum(t.nbytes for t in cache.tensors()) == kv + acc.state_bytes(model)


# ----------------------------------------------------------------------------- (d) FLOPs and parameters


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.kind)
@pytest.mark.parametrize("batch", [1, 3])
def test_decode_flops_and_params(spec, batch):
    layer = make(spec)
    _, state = layer(tokens(batch, 5))
    with FlopCounterMode(display=False) as counter:
        layer(tokens(batch, 1, seed=2), state)
    assert counter.get_total_flops() == batch * step_flops(spec)
    assert sum(p.numel() for p in layer.parameters()) == acc.attention_params(spec, E).total


def test_falcon_h1_decode_flops_count_the_attention_context():
    layer = make(FALCON_H1)
    _, cache = layer(tokens(2, 5))
    with FlopCounterMode(display=False) as counter:
        layer(tokens(2, 1, seed=2), cache)
    per_seq = acc.decode_core_flops(FALCON_H1, 6) + 2 * acc.attention_params(FALCON_H1, E).matmul
    assert counter.get_total_flops() == 2 * per_seq
    assert sum(p.numel() for p in layer.parameters()) == acc.attention_params(FALCON_H1, E).total


def test_parallel_refuses_a_part_field_no_layer_runs():
    with pytest.raises(NotImplementedError, match="variant='KDA'"):
        make(ParallelSpec((GQASpec(2, 1, 4), LinearAttentionSpec(1, 1, 4, 4, variant="KDA"))))
    with pytest.raises(TypeError, match="build_layer"):  # its parts are built through build_layer only
        ParallelMixers(FALCON_H1, E)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("spec", [MAMBA1[1], LIGHTNING[1], SHORT_CONV[1], FALCON_H1], ids=lambda s: s.kind)
def test_runs_on_cuda_in_float32(spec):
    cpu = build_layer(spec, E, seed=2, device="cpu", dtype=torch.float32)
    gpu = build_layer(spec, E, seed=2, device="cuda", dtype=torch.float32)
    x = tokens(2, 6).float()
    out_c, st_c = cpu(x)
    out_g, st_g = gpu(x.cuda())
    torch.testing.assert_close(out_g.cpu(), out_c, atol=1e-4, rtol=1e-4)
    for a, b in zip(st_g.tensors(), st_c.tensors(), strict=True):
        assert a.device.type == "cuda" and a.dtype == torch.float32
        torch.testing.assert_close(a.cpu(), b, atol=1e-4, rtol=1e-4)
