"""The V4 attention layer (core/v4_layers.py) pins the V4 accounting (core/accounting.py, core/v4.py).

Proves, for small CSA (ratio 4 + indexer), HCA (ratio 16 stands in for 128) and sliding-only layers:
(a) the KV cache bytes core.accounting counts (window + entries + indexer keys) equal the `nbytes` of the
    cache tensors the layer returns, at contexts below/above the window and the ratio, batch 1 and 2,
    fp32 and bf16; the compressor state rides outside the cache and holds fewer than 2m tokens;
    the parameter count equals core.accounting.designs.v4 (via attention_params) exactly;
(b) one decode step at context N (after a prefill of N - 1) costs, by FlopCounterMode,
    decode_core_flops(N) + 2 x attention matmul weights, for every N in 1..40;
(c) decoding token by token, or prefilling in chunks, after any split equals one full forward;
(d) the output equals a slow plain-Python reference of the same math: each complete block pooled with
    explicit loops (per-channel softmax, CSA's overlapping halves), the visible set built per query,
    the softmax with the sink done by hand, inverse RoPE, grouped output;
(e) CSA's top-k equals a brute-force lightning-indexer reference; ties go to the earliest entry; with
    index_topk >= entries CSA attends to every complete entry; sliding-only outputs depend on relative
    positions only (RoPE on K=V plus inverse RoPE on the output);
(f) construction is deterministic in the seed, and the layer runs on CUDA when there is one.
Everything runs in float64 on CPU unless a test is about dtypes or CUDA.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from core.accounting import totals as acc
from core.layers.attention import cache_nbytes
from core.layers.compressed import CompressedAttention, CompressedCache, visible
from core.model.specs import CompressedSpec, DenseMLP, ModelSpec

F64 = torch.float64
D_MODEL = 24
BASE = dict(n_heads=4, head_dim=16, qk_rope_head_dim=4, sliding_window=8, o_groups=2)
INDEX = dict(index_n_heads=2, index_head_dim=8, index_topk=3)
SPECS = {
    "CSA": CompressedSpec(**BASE, compress_ratio=4, q_lora_rank=12, o_lora_rank=6, **INDEX),
    "CSA-full-rank": CompressedSpec(**BASE, compress_ratio=4, **INDEX),
    "HCA": CompressedSpec(**BASE, compress_ratio=16, q_lora_rank=12, o_lora_rank=6),
    "HCA-full-rank": CompressedSpec(**BASE, compress_ratio=16),
    "SWA": CompressedSpec(**BASE, compress_ratio=0, q_lora_rank=12, o_lora_rank=6),
    "SWA-full-rank": CompressedSpec(**BASE, compress_ratio=0),
}
ALL = list(SPECS)
MAIN = ["CSA", "HCA", "SWA"]


def build(name_or_spec, seed: int = 0, dtype=F64, device="cpu") -> CompressedAttention:
    spec = SPECS[name_or_spec] if isinstance(name_or_spec, str) else name_or_spec
    return CompressedAttention(spec, D_MODEL, seed=seed, device=device, dtype=dtype)


def inputs(batch: int, tokens: int, seed: int = 0, dtype=F64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, tokens, D_MODEL, generator=g, dtype=F64).to(dtype)


def one_layer(spec: CompressedSpec) -> ModelSpec:
    return ModelSpec(
        name="t", model_type="t", hidden_size=D_MODEL, vocab_size=10, attention=(spec,), mlp=(DenseMLP(16),)
    )


def run_chunks(layer, x, sizes) -> tuple[torch.Tensor, CompressedCache]:
    """Feed x in consecutive chunks of the given sizes (the rest one token at a time)."""
    outs, cache, t = [], None, 0
    sizes = list(sizes) + [1] * x.shape[1]
    for n in sizes:
        if t >= x.shape[1]:
            break
        o, cache = layer(x[:, t : t + n], cache)
        outs.append(o)
        t += n
    return torch.cat(outs, 1), cache


# ----------------------------------------------------------------------------- (a) bytes and parameters


@pytest.mark.parametrize("name", ALL)
def test_parameter_count_equals_v4_accounting(name):
    layer = build(name)
    p = acc.attention_params(layer.spec, D_MODEL)
    assert sum(t.numel() for t in layer.parameters()) == p.total
    assert sum(mod.weight.numel() for mod in layer.modules() if isinstance(mod, nn.Linear)) == p.matmul


CONTEXTS = [1, 3, 4, 5, 7, 8, 9, 15, 16, 17, 22, 33, 38]


@pytest.mark.parametrize("name", MAIN)
@pytest.mark.parametrize("dtype, dtype_name", [(torch.float32, "fp32"), (torch.bfloat16, "bf16")])
@pytest.mark.parametrize("batch", [1, 2])
def test_cache_bytes_equal_tensor_nbytes(name, dtype, dtype_name, batch):
    layer = build(name, dtype=dtype)
    spec = layer.spec
    model = one_layer(spec)
    x = inputs(batch, max(CONTEXTS), dtype=dtype)
    with torch.no_grad():
        for n in CONTEXTS:  # prefill of n tokens from empty
            _, cache = layer(x[:, :n])
            assert cache_nbytes(cache) == acc.kv_cache_bytes(model, n, batch, dtype_name), (name, n)
        cache = None
        for n in range(1, max(CONTEXTS) + 1):  # and after every decode step
            _, cache = layer(x[:, n - 1 : n], cache)
            assert cache_nbytes(cache) == acc.kv_cache_bytes(model, n, batch, dtype_name), (name, n)
            m = spec.compress_ratio
            assert cache.window.shape == (batch, min(n, spec.sliding_window), spec.head_dim)
            if m:
                assert cache.entries.shape == (batch, n // m, spec.head_dim)
                state_tokens = cache.compressor_state.kv.shape[1]
                assert state_tokens == n - (max(0, m * (n // m - 1)) if m == 4 else m * (n // m)) < 2 * m
            else:
                assert cache.entries is None and cache.compressor_state is None
            if spec.indexed:
                assert cache.index_keys.shape == (batch, n // 4, spec.index_head_dim)
            else:
                assert cache.index_keys is None and cache.index_state is None


def test_compressor_state_is_outside_the_kv_cache():
    _, cache = build("CSA")(inputs(1, 10))
    kv_ids = {id(t) for t in cache.tensors()}
    assert len(cache.state_tensors()) == 4 and not any(id(t) in kv_ids for t in cache.state_tensors())
    assert cache_nbytes(cache) == sum(t.nbytes for t in (cache.window, cache.entries, cache.index_keys))


# ----------------------------------------------------------------------------- (b) FLOPs


def counted(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def decode_flops(layer, x: torch.Tensor, n: int) -> int:
    """FlopCounterMode's count for decoding token n - 1 of x after a prefill of the n - 1 before it."""
    with torch.no_grad():
        cache = layer(x[:, : n - 1])[1] if n > 1 else None
        return counted(lambda: layer(x[:, n - 1 : n], cache))


@pytest.mark.parametrize("name", ALL)
def test_decode_flops_equal_flop_counter(name):
    layer = build(name)
    spec = layer.spec
    proj = 2 * acc.attention_params(spec, D_MODEL).matmul
    x = inputs(2, 40)
    for n in range(1, 41):
        assert decode_flops(layer, x[:1], n) == acc.decode_core_flops(spec, n) + proj, (name, n)
    for n in (1, 5, 17, 40):  # per sequence: batch 2 costs twice as much
        assert decode_flops(layer, x, n) == 2 * (acc.decode_core_flops(spec, n) + proj), (name, n)


def test_flop_counter_sees_the_compressed_core():
    """Guards (b) against a counter that only sees nn.Linear: one more entry adds pair FLOPs."""
    layer = build("HCA")
    spec = layer.spec
    x = inputs(1, 33)
    diff = decode_flops(layer, x, 16) - decode_flops(layer, x, 15)
    assert diff == acc.pair_flops(spec) > 0  # window full (8) at both; entry 0 completes at context 16


# ----------------------------------------------------------------------------- (c) decode == full forward


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("split", [0, 1, 3, 4, 7, 8, 16, 21])
def test_decode_after_prefill_equals_full_forward(name, split):
    layer = build(name)
    x = inputs(2, 37)
    with torch.no_grad():
        full, full_cache = layer(x)
        got, cache = run_chunks(layer, x, [split] if split else [])
    torch.testing.assert_close(got, full, atol=1e-10, rtol=0)
    for a, b in zip(
        cache.tensors() + cache.state_tensors(), full_cache.tensors() + full_cache.state_tensors(), strict=True
    ):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=0)
    assert cache.seen == full_cache.seen == 37


@pytest.mark.parametrize("name", MAIN)
@pytest.mark.parametrize("sizes", [[5, 3, 1, 9, 2, 6], [2, 2, 2, 2, 2, 2], [17, 4, 12], [3, 13, 1, 1, 16]])
def test_chunked_prefill_equals_full_forward(name, sizes):
    layer = build(name)
    x = inputs(1, 40, seed=2)
    with torch.no_grad():
        full, _ = layer(x)
        got, _ = run_chunks(layer, x, sizes)
    torch.testing.assert_close(got, full, atol=1e-10, rtol=0)


# ----------------------------------------------------------------------------- (d) slow reference


def _vec(t: torch.Tensor) -> list[float]:
    return [float(v) for v in t]


def _matvec(w: torch.Tensor, v: list[float]) -> list[float]:
    return _vec(w @ torch.tensor(v, dtype=w.dtype))


def _rms(v: list[float], gain: list[float] | None = None, eps: float = 1e-6) -> list[float]:
    r = 1 / math.sqrt(sum(a * a for a in v) / len(v) + eps)
    return [a * r * (1.0 if gain is None else g) for a, g in zip(v, gain or [1.0] * len(v), strict=True)]


def _rope_tail(v: list[float], pos: int, r: int, theta: float) -> list[float]:
    """Rotate-half RoPE on the last r channels: channel i pairs with i + r/2, angle pos theta^(-2i/r)."""
    if r == 0:
        return list(v)
    head, t = list(v[:-r]), list(v[-r:])
    h = r // 2
    out = list(t)
    for i in range(h):
        a = pos * theta ** (-2 * i / r)
        c, s = math.cos(a), math.sin(a)
        out[i], out[i + h] = t[i] * c - t[i + h] * s, t[i] * s + t[i + h] * c
    return head + out


def _pool(comp, xs: list[list[float]], j: int, rope_dim: int, theta: float) -> list[float]:
    """Entry j of a compressor, one channel at a time, from the per-token projections."""
    m, width = comp.ratio, comp.width
    ape = comp.ape.detach()
    wkv, wgate = comp.wkv.weight.detach(), comp.wgate.weight.detach()
    kv = {t: _matvec(wkv, xs[t]) for t in range(max(0, m * j - m), m * j + m)}
    gate = {t: [g + float(a) for g, a in zip(_matvec(wgate, xs[t]), ape[t % m], strict=True)] for t in kv}
    if comp.overlap:  # first half of the previous block, second half of this one
        members = [(t, 0) for t in range(m * j - m, m * j) if t >= 0] + [(t, width) for t in range(m * j, m * j + m)]
    else:
        members = [(t, 0) for t in range(m * j, m * j + m)]
    out = []
    for c in range(width):
        scores = [gate[t][off + c] for t, off in members]
        top = max(scores)
        e = [math.exp(s - top) for s in scores]
        out.append(sum(ei / sum(e) * kv[t][off + c] for ei, (t, off) in zip(e, members, strict=True)))
    return _rope_tail(_rms(out, _vec(comp.norm.weight.detach())), m * j, min(rope_dim, width), theta)


def reference(layer: CompressedAttention, x: torch.Tensor):
    """Slow plain-Python forward of the whole sequence x (B, T, W). Returns the output, each query's chosen
    entries (best first) and, for CSA, its indexer score of every complete entry ({entry: score})."""
    s = layer.spec
    H, D, R, w, m, th = s.n_heads, s.head_dim, s.qk_rope_head_dim, s.sliding_window, s.compress_ratio, layer.theta
    W = {k: v.detach() for k, v in layer.named_parameters()}
    B, T, _ = x.shape
    out = torch.zeros(B, T, layer.d_model, dtype=x.dtype)
    chosen, index_scores = [], []
    for b in range(B):
        xs = [_vec(x[b, t]) for t in range(T)]
        if s.q_lora_rank:
            q_in = [_rms(_matvec(W["wq_a.weight"], v), _vec(W["q_norm.weight"])) for v in xs]
            q_all = [_matvec(W["wq_b.weight"], v) for v in q_in]
        else:
            q_in, q_all = xs, [_matvec(W["wq.weight"], v) for v in xs]
        keys = [
            _rope_tail(_rms(_matvec(W["wkv.weight"], v), _vec(W["kv_norm.weight"])), t, R, th) for t, v in enumerate(xs)
        ]
        n_ent = T // m if m else 0
        entries = [_pool(layer.compressor, xs, j, R, th) for j in range(n_ent)]
        if s.indexed:
            I, J = s.index_n_heads, s.index_head_dim
            idx_keys = [_pool(layer.indexer.compressor, xs, j, R, th) for j in range(n_ent)]
        chosen_b, scores_b = [], []
        for t in range(T):
            complete = [j for j in range(n_ent) if t >= m * j + m - 1]
            if s.indexed:  # brute-force lightning indexer
                qi = _matvec(W["indexer.wq_b.weight"], q_in[t])
                qi = [_rope_tail(qi[h * J : (h + 1) * J], t, min(R, J), th) for h in range(I)]
                wt = [v * J**-0.5 * I**-0.5 for v in _matvec(W["indexer.weights_proj.weight"], xs[t])]
                score = {
                    e: sum(
                        wt[h] * max(0.0, sum(a * c for a, c in zip(qi[h], idx_keys[e], strict=True))) for h in range(I)
                    )
                    for e in complete
                }
                scores_b.append(score)
                complete = sorted(complete, key=lambda e: (-score[e], e))[: s.index_topk]
            chosen_b.append(complete)
            kv_set = [keys[p] for p in range(max(0, t - w + 1), t + 1)] + [entries[j] for j in complete]
            o = []
            for h in range(H):
                qh = _rope_tail(_rms(q_all[t][h * D : (h + 1) * D]), t, R, th)
                logits = [sum(a * c for a, c in zip(qh, k, strict=True)) / math.sqrt(D) for k in kv_set]
                sink = float(W["attn_sink"][h])
                top = max(logits + [sink])
                denom = sum(math.exp(v - top) for v in logits) + math.exp(sink - top)  # the sink has no value
                oh = [
                    sum(math.exp(v - top) / denom * k[c] for v, k in zip(logits, kv_set, strict=True)) for c in range(D)
                ]
                o += _rope_tail(oh, -t, R, th)  # inverse RoPE at the query position
            if s.o_lora_rank:
                G, L, per = s.o_groups, s.o_lora_rank, H * D // s.o_groups
                a = []
                for g in range(G):
                    a += _matvec(W["wo_a.weight"][g * L : (g + 1) * L], o[g * per : (g + 1) * per])
                out[b, t] = torch.tensor(_matvec(W["wo_b.weight"], a), dtype=x.dtype)
            else:
                out[b, t] = torch.tensor(_matvec(W["wo.weight"], o), dtype=x.dtype)
        chosen.append(chosen_b)
        index_scores.append(scores_b)
    return out, chosen, index_scores


@pytest.mark.parametrize("name", ALL)
def test_output_equals_slow_reference(name):
    layer = build(name, seed=5)
    T = 36 if layer.spec.compress_ratio == 16 else 22
    x = inputs(1 if layer.spec.compress_ratio != 4 else 2, T, seed=3)
    with torch.no_grad():
        got = layer(x)[0]
    want = reference(layer, x)[0]
    torch.testing.assert_close(got, want, atol=1e-10, rtol=0)


# ----------------------------------------------------------------------------- (e) selection


def _as_lists(entry_idx: torch.Tensor) -> list[list[list[int]]]:
    return [[[int(e) for e in row if e >= 0] for row in seq] for seq in entry_idx]


@pytest.mark.parametrize("name", ["CSA", "CSA-full-rank"])
def test_csa_top_k_equals_brute_force(name):
    layer = build(name, seed=7)
    x = inputs(2, 30, seed=4)
    with torch.no_grad():
        tr = layer.trace(x)
    _, chosen, scores = reference(layer, x)
    assert _as_lists(tr.entry_idx) == chosen  # same entries, in the same (score-descending) order
    counts = [len(c) for c in chosen[0]]
    assert counts == [min(3, (t + 1) // 4) for t in range(30)]  # k = min(index_topk, complete entries)
    want = torch.full((2, 30, 7), float("-inf"), dtype=F64)  # -inf: entries not complete yet
    for b, t in ((b, t) for b in range(2) for t in range(30)):
        for e, v in scores[b][t].items():
            want[b, t, e] = v
    torch.testing.assert_close(tr.index_scores, want, atol=1e-10, rtol=0)
    assert torch.equal(tr.index_scores.isinf(), ~visible(torch.arange(30), 7, 4).expand(2, 30, 7))


def test_csa_ties_go_to_the_earliest_entry_and_decode_still_matches():
    layer = build("CSA", seed=1)
    with torch.no_grad():
        layer.indexer.weights_proj.weight.zero_()  # every indexer score is 0: all entries tie
    x = inputs(1, 29, seed=6)
    with torch.no_grad():
        tr = layer.trace(x)
        got, _ = run_chunks(layer, x, [6])
    assert _as_lists(tr.entry_idx)[0] == [list(range(min(3, (t + 1) // 4))) for t in range(29)]
    torch.testing.assert_close(got, tr.out, atol=1e-10, rtol=0)


def test_csa_with_large_top_k_attends_every_complete_entry():
    spec = CompressedSpec(
        **BASE, compress_ratio=4, q_lora_rank=12, o_lora_rank=6, index_n_heads=2, index_head_dim=8, index_topk=50
    )
    layer = build(spec, seed=2)
    x = inputs(1, 30, seed=8)
    with torch.no_grad():
        tr = layer.trace(x)
    assert [sorted(c) for c in _as_lists(tr.entry_idx)[0]] == [list(range((t + 1) // 4)) for t in range(30)]
    torch.testing.assert_close(tr.out, reference(layer, x)[0], atol=1e-10, rtol=0)


def test_hca_attends_every_complete_entry():
    layer = build("HCA")
    with torch.no_grad():
        tr = layer.trace(inputs(1, 40))
    assert _as_lists(tr.entry_idx)[0] == [list(range((t + 1) // 16)) for t in range(40)]


def test_attention_weights_plus_sink_sum_to_one():
    with torch.no_grad():
        tr = build("CSA").trace(inputs(1, 20))
    total = tr.probs.sum(-1)
    assert bool(((total > 0) & (total < 1)).all())  # the sink always takes a share


def test_sliding_only_output_depends_on_relative_positions():
    """RoPE on K=V and inverse RoPE on the output: the same last w tokens give the same output
    wherever they sit in the sequence."""
    layer = build("SWA")
    x = inputs(1, 30, seed=9)
    with torch.no_grad():
        full = layer(x)[0]
        shifted = layer(x[:, 11:])[0]  # the same tokens, 11 positions earlier
    torch.testing.assert_close(shifted[:, 7:], full[:, 18:], atol=1e-10, rtol=0)  # windows fully inside both


# ----------------------------------------------------------------------------- (f) seed, device


@pytest.mark.parametrize("name", MAIN)
def test_deterministic_construction_from_seed(name):
    a, b, c = build(name, seed=3), build(name, seed=3), build(name, seed=4)
    for (n1, p1), (_, p2), (_, p3) in zip(
        a.named_parameters(), b.named_parameters(), c.named_parameters(), strict=True
    ):
        assert torch.equal(p1, p2), n1
        assert not torch.equal(p1, p3) or p1.numel() == 0, n1


def test_layers_hold_no_cache_state():
    layer = build("CSA")
    x = inputs(1, 12)
    with torch.no_grad():
        a, _ = layer(x)
        layer(inputs(1, 9, seed=3))
        b, _ = layer(x)
    assert torch.equal(a, b) and not list(layer.buffers())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("name", MAIN)
def test_layer_runs_on_cuda(name):
    cpu, gpu = build(name, seed=2), build(name, seed=2, device="cuda")
    x = inputs(2, 37, seed=1)
    with torch.no_grad():
        want = cpu(x)[0]
        full, _ = gpu(x.cuda())
        step, cache = run_chunks(gpu, x.cuda(), [9])
        _, cache32 = build(name, seed=2, dtype=torch.float32, device="cuda")(x.float().cuda())
    assert full.is_cuda and all(t.is_cuda for t in cache.tensors() + cache.state_tensors())
    torch.testing.assert_close(full.cpu(), want, atol=1e-10, rtol=0)
    torch.testing.assert_close(step, full, atol=1e-10, rtol=0)
    assert cache_nbytes(cache32) == acc.kv_cache_bytes(one_layer(cpu.spec), 37, 2, "fp32")


# ---------------------------------------------------------------------------- random specs (hypothesis)
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@st.composite
def v4_specs(draw):
    heads = draw(st.sampled_from([2, 4]))
    ratio = draw(st.sampled_from([0, 4, 2, 3, 8]))
    indexed = ratio == 4
    return CompressedSpec(
        n_heads=heads,
        head_dim=draw(st.sampled_from([8, 12, 16])),
        qk_rope_head_dim=draw(st.sampled_from([0, 2, 4])),
        compress_ratio=ratio,
        sliding_window=draw(st.integers(2, 7)),
        q_lora_rank=draw(st.sampled_from([None, 6])),
        o_groups=draw(st.sampled_from([1, 2])),
        o_lora_rank=draw(st.sampled_from([None, 4])),
        index_n_heads=2 if indexed else 0,
        index_head_dim=6 if indexed else 0,
        index_topk=draw(st.integers(2, 4)) if indexed else 0,
    )


@settings(max_examples=30, deadline=None)
@given(spec=v4_specs(), context=st.integers(2, 30), batch=st.integers(1, 2), seed=st.integers(0, 99))
def test_random_specs_bytes_and_decode_flops_match_accounting(spec, context, batch, seed):
    """Any small V4 spec: cache nbytes after a prefill of `context` tokens, and the FLOPs of the next
    decode step, equal the accounting."""
    layer = build(spec, seed=seed, dtype=torch.float32)
    x = inputs(batch, context + 1, seed, dtype=torch.float32)
    _, cache = layer(x[:, :context])
    assert cache_nbytes(cache) == acc.kv_cache_bytes(one_layer(spec), context, batch, "fp32")
    with FlopCounterMode(display=False) as fc:
        layer(x[:, context:], cache)
    per_seq = acc.decode_core_flops(spec, context + 1) + 2 * acc.attention_params(spec, D_MODEL).matmul
    assert fc.get_total_flops() == batch * per_seq


@settings(max_examples=20, deadline=None)
@given(spec=v4_specs(), tokens=st.integers(2, 30), seed=st.integers(0, 99))
def test_random_specs_dense_prefill_flops_match_formula(spec, tokens, seed):
    """A prefill of T tokens from an empty cache executes the dense count prefill_core_flops(causal=False)."""
    layer = build(spec, seed=seed)
    with FlopCounterMode(display=False) as fc:
        layer(inputs(1, tokens, seed))
    dense = acc.prefill_core_flops(spec, tokens, causal=False)
    assert fc.get_total_flops() == dense + 2 * tokens * acc.attention_params(spec, D_MODEL).matmul
