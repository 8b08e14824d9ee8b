"""The Gated DeltaNet layer (core/layers/gated_deltanet.py) against its accounting and against the Qwen3-Next reference.

Proves, in float64 on CPU with small specs (including several value heads per key head):
(a) the state is fixed-size: its tensors' nbytes equal the accounting's state elements x element size after 1, 7 or 64
    tokens, so unlike attention no KV cache grows with the context;
(b) one call over a sequence equals the same sequence in pieces (prefill, then decode steps) with the state
    carried, to 1e-12, outputs and final state;
(c) the layer equals an independent per-head transcription of Hugging Face's Qwen3NextGatedDeltaNet with
    torch_recurrent_gated_delta_rule, written here, to 1e-10; with no decay (A_log = -inf, so g = 0) and
    beta = 1, one token from an empty state leaves exactly S = k v^T;
(d) FlopCounterMode counts the accounting's decode-step FLOPs (core + 2 x matmul weights) for T = 1,
    per sequence in the batch, and the
    layer has the accounting's parameter count; construction is deterministic in the seed;
(e) it runs on CUDA in float32 when a device is there.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from recurrent import F64, E, assert_pieces_equal_one_call, assert_state_is_accounted, step_flops, tokens
from torch.utils.flop_counter import FlopCounterMode

from core.accounting import totals as acc
from core.layers.attention import GQAttention, cache_nbytes
from core.layers.gated_deltanet import DeltaState, GatedDeltaNet
from core.model.specs import DenseMLP, GQASpec, LinearAttentionSpec, ModelSpec

SPECS = [
    LinearAttentionSpec(n_key_heads=1, n_value_heads=1, key_head_dim=4, value_head_dim=5),
    LinearAttentionSpec(n_key_heads=2, n_value_heads=6, key_head_dim=8, value_head_dim=4, conv_kernel=3),
    LinearAttentionSpec(n_key_heads=2, n_value_heads=4, key_head_dim=3, value_head_dim=7, conv_kernel=1),
]


def make(spec: LinearAttentionSpec, seed: int = 0) -> GatedDeltaNet:
    return GatedDeltaNet(spec, E, seed=seed, device="cpu", dtype=F64)


@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("T", [1, 7, 64])
def test_state_bytes_are_constant(spec, T):
    assert_state_is_accounted(make(spec), spec, T)


@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("pieces", [(5, 4), (6, 1, 2), (1, 1, 7)])
def test_pieces_equal_one_call(spec, pieces):
    assert_pieces_equal_one_call(make(spec), pieces)


def reference(layer: GatedDeltaNet, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Qwen3NextGatedDeltaNet.forward from an empty cache, transcribed from modeling_qwen3_next.py: full-sequence
    padded conv, fix_query_key_value_ordering, then torch_recurrent_gated_delta_rule head by head with its
    elementwise products, Qwen3NextRMSNormGated and out_proj. Returns (out, final recurrent state)."""
    s, w = layer.spec, {k: v.detach() for k, v in layer.state_dict().items()}
    B, T, _ = x.shape
    nk, nv, dk, dv, W = s.n_key_heads, s.n_value_heads, s.key_head_dim, s.value_head_dim, s.conv_kernel
    r = nv // nk
    qkvz = (x @ w["in_proj_qkvz.weight"].T).view(B, T, nk, 2 * dk + 2 * r * dv)
    ba = (x @ w["in_proj_ba.weight"].T).view(B, T, nk, 2 * r)
    q, k, v, z = torch.split(qkvz, [dk, dk, r * dv, r * dv], dim=3)
    b, a = torch.split(ba, [r, r], dim=3)
    v, z = v.reshape(B, T, nv, dv), z.reshape(B, T, nv, dv)
    b, a = b.reshape(B, T, nv), a.reshape(B, T, nv)
    mixed = torch.cat([q.reshape(B, T, -1), k.reshape(B, T, -1), v.reshape(B, T, -1)], -1).transpose(1, 2)
    mixed = F.silu(F.conv1d(mixed, w["conv1d.weight"], padding=W - 1, groups=s.conv_dim)[:, :, :T]).transpose(1, 2)
    q, k, v = torch.split(mixed, [s.key_dim, s.key_dim, s.value_dim], dim=-1)
    q, k, v = q.reshape(B, T, nk, dk), k.reshape(B, T, nk, dk), v.reshape(B, T, nv, dv)
    beta = b.sigmoid()
    g = -w["A_log"].exp() * F.softplus(a + w["dt_bias"])
    q = q * torch.rsqrt((q * q).sum(-1, keepdim=True) + 1e-6) / math.sqrt(dk)
    k = k * torch.rsqrt((k * k).sum(-1, keepdim=True) + 1e-6)
    core = torch.zeros(B, T, nv, dv, dtype=x.dtype)
    state = torch.zeros(B, nv, dk, dv, dtype=x.dtype)
    for bi in range(B):
        for h in range(nv):
            S = torch.zeros(dk, dv, dtype=x.dtype)
            for t in range(T):
                qt, kt = q[bi, t, h // r], k[bi, t, h // r]  # repeat_interleave: value head h uses key head h // r
                S = S * g[bi, t, h].exp()
                kv_mem = (S * kt[:, None]).sum(0)
                delta = (v[bi, t, h] - kv_mem) * beta[bi, t, h]
                S = S + kt[:, None] * delta[None, :]
                core[bi, t, h] = (S * qt[:, None]).sum(0)
            state[bi, h] = S
    normed = core * torch.rsqrt(core.pow(2).mean(-1, keepdim=True) + 1e-6) * w["norm.weight"] * F.silu(z)
    return normed.reshape(B, T, -1) @ w["out_proj.weight"].T, state


@pytest.mark.parametrize("spec", SPECS)
def test_matches_reference_transcription(spec):
    layer, x = make(spec, seed=3), tokens(2, 9, seed=4)
    out, state = layer(x)
    ref_out, ref_state = reference(layer, x)
    torch.testing.assert_close(out, ref_out, atol=1e-10, rtol=0)
    torch.testing.assert_close(state.recurrent, ref_state, atol=1e-10, rtol=0)


def test_no_decay_full_write_stores_k_v_outer_product():
    """A_log = -inf makes g = 0 (exp(g) = 1, nothing forgotten); b = 50 makes beta = sigmoid(50) = 1.0 exactly
    in float64. From an empty state one token then leaves S = k v^T per value head: the delta rule's write."""
    spec = SPECS[1]
    layer, x = make(spec), tokens(1, 1)
    r = spec.n_value_heads // spec.n_key_heads
    with torch.no_grad():
        layer.A_log.fill_(float("-inf"))
        w = layer.in_proj_ba.weight.view(spec.n_key_heads, 2 * r, E)  # rows per key head: [b r, a r]
        w[:, :r] = 50 * x[0, 0] / x[0, 0].square().sum()  # b = 50 for every value head
    tr = layer.trace(x)
    assert (tr.g == 0).all() and (tr.beta == 1).all()
    k, v = tr.k[0, 0], tr.v[0, 0]  # (Hv, K), (Hv, V)
    torch.testing.assert_close(tr.state.recurrent[0], k[:, :, None] * v[:, None, :], atol=1e-15, rtol=0)


@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("batch", [1, 3])
def test_decode_flops_and_params(spec, batch):
    layer = make(spec)
    _, state = layer(tokens(batch, 5))
    with FlopCounterMode(display=False) as counter:
        layer(tokens(batch, 1, seed=2), state)
    assert counter.get_total_flops() == batch * step_flops(spec)
    assert sum(p.numel() for p in layer.parameters()) == acc.attention_params(spec, E).total


def test_deterministic_in_seed():
    a, b, c = make(SPECS[1], seed=5), make(SPECS[1], seed=5), make(SPECS[1], seed=6)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    assert not torch.equal(a.in_proj_qkvz.weight, c.in_proj_qkvz.weight)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_runs_on_cuda_in_float32():
    spec = SPECS[1]
    cpu = GatedDeltaNet(spec, E, seed=2, device="cpu", dtype=torch.float32)
    gpu = GatedDeltaNet(spec, E, seed=2, device="cuda", dtype=torch.float32)
    x = tokens(2, 6).float()
    out_c, st_c = cpu(x)
    out_g, st_g = gpu(x.cuda())
    assert isinstance(st_g, DeltaState) and st_g.recurrent.device.type == "cuda"
    assert st_g.recurrent.dtype == torch.float32
    torch.testing.assert_close(out_g.cpu(), out_c, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(st_g.recurrent.cpu(), st_c.recurrent, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("context", [1, 16, 200])
def test_state_is_the_accounting_at_any_context_while_attention_grows(context):
    """Beside a full-attention layer on the same tokens: the attention cache's nbytes grow with the context
    and equal kv_cache_bytes; the Gated DeltaNet state's nbytes equal state_bytes and do not change."""
    spec = LinearAttentionSpec(2, 4, 8, 8, ssm_dtype="fp32", conv_dtype="fp32")
    gqa = GQASpec(4, 2, 8)
    model = ModelSpec("hybrid", "test", E, 16, (spec, gqa), (DenseMLP(8), DenseMLP(8)))
    x = torch.randn(1, context, E, generator=torch.Generator().manual_seed(0))
    _, state = GatedDeltaNet(spec, E, device="cpu")(x)
    _, cache = GQAttention(gqa, E, device="cpu")(x)
    assert sum(t.nbytes for t in state.tensors()) == acc.state_bytes(model)
    assert cache_nbytes(cache) == acc.kv_cache_bytes(model, context, kv_dtype="fp32") == context * 2 * 2 * 8 * 4
