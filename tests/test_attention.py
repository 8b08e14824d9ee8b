"""The reference layers (core/layers/) pin the accounting (core/accounting/), and vice versa.

Proves, with real layers of every spec type `build_layer` builds (GQA with sliding windows, chunks, other
value widths, K=V and output gates; MLA materialised and absorbed; DSA; DeepSeek V4 compressed; Gated DeltaNet;
Mamba-2; Mamba-1; lightning attention; short convolutions; several mixers in parallel; no mixer) on random
small specs drawn by hypothesis, which set every field of every spec:
(a) the accounting's KV cache (and fixed state) bytes equal the `nbytes` of the cache tensors the layer
    returns, after prefill and after every decode step, in fp32/bf16/fp16 (MLA absorbed = layout
    "latent", MLA materialised = layout "materialised");
(b) the accounting's FLOPs equal what `FlopCounterMode` counts: one decode step after a prefill of P
    tokens costs decode_core_flops(P + 1) + 2 x attention matmul weights per sequence, and a prefill of
    T tokens from empty costs prefill_core_flops(T, causal=False) + 2 T x attention matmul weights; the
    layer's parameters number attention_params(spec, d_model).total;
(c) MLA materialised and absorbed paths compute the same function; decoding token by token equals one
    full-sequence forward; GQA equals a slow per-query reference of the HF math (chunk and window masks,
    Gemma-4 K=V, Qwen3-Next output gate); construction is deterministic in the seed; the rotate-half RoPE
    convention (norm-preserving, scores depend on relative position only); DSA's top-k equals a
    brute-force lightning-indexer reference; DSA with index_topk >= context is exactly absorbed MLA;
(d) the strategies set every field of every spec type (a field added later fails that test until it is
    drawn), and a layer refuses, naming the field, every field it does not run.
Everything runs in float64 on CPU unless a test is about dtypes or CUDA.
"""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict
from typing import get_args

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch.utils.flop_counter import FlopCounterMode

from core.accounting import totals as acc
from core.layers import build
from core.layers.attention import (
    DSAttention,
    GQAttention,
    KVCache,
    LatentCache,
    MLAttention,
    cache_nbytes,
    causal_mask,
    rope,
)
from core.layers.build import build_layer, unrun_fields
from core.layers.decode_kernels import empty_buffer, gqa_step
from core.layers.gated_deltanet import GatedDeltaNet
from core.model.specs import (
    AttentionSpec,
    CompressedSpec,
    DenseMLP,
    DSASpec,
    GQASpec,
    LightningSpec,
    LinearAttentionSpec,
    Mamba1Spec,
    Mamba2Spec,
    MLASpec,
    ModelSpec,
    NoMixer,
    ParallelSpec,
    ShortConvSpec,
)

F64 = torch.float64
DTYPES = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}
SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def one_layer(spec, d_model: int) -> ModelSpec:
    return ModelSpec("t", "t", d_model, 10, (spec,), (DenseMLP(16),))


def layout_for(spec, mode: str) -> str:
    return "materialised" if isinstance(spec, MLASpec) and mode == "materialised" else "latent"


def run(layer, x, cache=None, mode: str = "absorbed"):
    """Forward one chunk; only the MLA layers (MLA, DSA) take a mode."""
    if isinstance(layer, MLAttention):
        return layer(x, cache, mode=mode)
    return layer(x, cache)


def modes_for(spec) -> list[str]:
    return ["absorbed", "materialised"] if type(spec) is MLASpec else ["absorbed"]


def inputs(batch: int, tokens: int, d_model: int, seed: int = 0, dtype=F64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, tokens, d_model, generator=g, dtype=F64).to(dtype)


# Strategies: one per spec type, each setting every field of its spec (test_strategies_set_every_field).
# Every contracted dimension is 0 or >= 2 (head dims, ranks, state sizes, top-k): torch.einsum lowers a
# size-1 contraction to an elementwise multiply, which FlopCounterMode does not count, so size 1 would
# make (b) test torch rather than our formulas. Head and indexer dims are even: see test_odd_head_dim_*
# for what odd dims do today.
even = st.integers(1, 4).map(lambda n: 2 * n)
state_dtypes = st.sampled_from(list(DTYPES.values()))


@st.composite
def gqa_specs(draw) -> GQASpec:
    g, r, d = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(even)
    local = draw(st.sampled_from(["full", "window", "chunk"]))  # a layer is one of them
    k_eq_v, gate = draw(st.booleans()), draw(st.booleans())
    # K=V needs equal widths; an output gate with another value width is refused (test_*_refuse_*)
    v = draw(st.sampled_from([None, d]) if k_eq_v or gate else st.one_of(st.none(), even))
    return GQASpec(
        n_heads=g * r,
        n_kv_heads=g,
        head_dim=d,
        sliding_window=draw(st.integers(2, 6)) if local == "window" else None,
        qkv_bias=draw(st.booleans()),
        o_bias=draw(st.booleans()),
        v_head_dim=v,
        chunk_size=draw(st.integers(1, 6)) if local == "chunk" else None,
        k_eq_v=k_eq_v,
        output_gate=gate,
    )


@st.composite
def mla_fields(draw) -> dict:
    nope = draw(st.sampled_from([0, 2, 3, 5]))
    rope_dim = draw(st.sampled_from([0, 2, 4] if nope else [2, 4]))
    return dict(
        n_heads=draw(st.integers(1, 3)),
        kv_lora_rank=draw(st.integers(2, 10)),
        qk_nope_head_dim=nope,
        qk_rope_head_dim=rope_dim,
        v_head_dim=draw(st.integers(2, 6)),
        q_lora_rank=draw(st.one_of(st.none(), st.integers(2, 8))),
    )


mla_specs = mla_fields().map(lambda f: MLASpec(**f))
dsa_specs = st.builds(
    lambda f, ih, id_, k: DSASpec(**f, index_n_heads=ih, index_head_dim=id_, index_topk=k),
    mla_fields(),
    st.integers(1, 3),
    even,
    st.integers(2, 8),
)


@st.composite
def v4_specs(draw) -> CompressedSpec:
    """V4 layers; the index_* fields are drawn for every ratio, as V4 configs set them on every layer (only
    CSA, ratio 4, runs an indexer)."""
    heads = draw(st.sampled_from([2, 4]))
    ratio = draw(st.sampled_from([0, 2, 3, 4]))
    index = [draw(st.integers(1, 2)), draw(st.sampled_from([2, 4])), draw(st.integers(2, 4))]
    if ratio != 4 and draw(st.booleans()):
        index = [0, 0, 0]
    return CompressedSpec(
        n_heads=heads,
        head_dim=draw(st.sampled_from([4, 8])),
        qk_rope_head_dim=draw(st.sampled_from([0, 2, 4])),
        compress_ratio=ratio,
        sliding_window=draw(st.integers(2, 6)),
        q_lora_rank=draw(st.sampled_from([None, 6])),
        o_groups=draw(st.sampled_from([1, 2])),
        o_lora_rank=draw(st.sampled_from([None, 2, 4])),
        index_n_heads=index[0],
        index_head_dim=index[1],
        index_topk=index[2],
    )


@st.composite
def linear_specs(draw) -> LinearAttentionSpec:
    """Gated DeltaNet; variant "KDA" has no layer and is refused (test_layers_refuse_*)."""
    hk = draw(st.integers(1, 2))
    return LinearAttentionSpec(
        n_key_heads=hk,
        n_value_heads=hk * draw(st.integers(1, 2)),
        key_head_dim=draw(st.integers(2, 4)),
        value_head_dim=draw(st.integers(2, 4)),
        conv_kernel=draw(st.integers(1, 4)),
        variant="GDN",
        ssm_dtype=draw(state_dtypes),
        conv_dtype=draw(state_dtypes),
    )


@st.composite
def mamba_specs(draw) -> Mamba2Spec:
    groups = draw(st.integers(1, 2))
    return Mamba2Spec(
        n_heads=groups * draw(st.integers(1, 2)),
        head_dim=draw(st.integers(2, 4)),
        state_size=draw(st.integers(2, 4)),
        n_groups=groups,
        conv_kernel=draw(st.integers(1, 4)),
        ssm_dtype=draw(state_dtypes),
        conv_dtype=draw(state_dtypes),
        conv_bias=draw(st.booleans()),
        proj_bias=draw(st.booleans()),
        gated_norm=draw(st.booleans()),
        ssm_dtype_stated=draw(st.booleans()),
        chunk_size=draw(st.one_of(st.none(), st.integers(1, 256))),
    )


@st.composite
def mamba1_specs(draw) -> Mamba1Spec:
    return Mamba1Spec(
        d_inner=draw(st.integers(2, 6)),
        state_size=draw(st.integers(2, 4)),
        conv_kernel=draw(st.integers(1, 4)),
        dt_rank=draw(st.integers(1, 3)),  # dt_proj is a Linear: a rank of 1 is still counted
        ssm_dtype=draw(state_dtypes),
        conv_dtype=draw(state_dtypes),
        conv_bias=draw(st.booleans()),
        proj_bias=draw(st.booleans()),
        dt_norms=draw(st.booleans()),
    )


lightning_specs = st.builds(
    LightningSpec, n_heads=st.integers(1, 3), head_dim=st.integers(2, 4), state_dtype=state_dtypes
)
short_conv_specs = st.builds(
    ShortConvSpec,
    channels=st.integers(2, 6),
    conv_kernel=st.integers(1, 4),
    conv_dtype=state_dtypes,
    conv_bias=st.booleans(),
)
# Falcon-H1 runs GQA and Mamba-2 side by side; the strategy draws any two or three mixers but DSA (near-ties in
# its top-k, see test_dsa_decode_*) and V4 (no model puts it beside another mixer).
parallel_specs = st.lists(
    st.one_of(gqa_specs(), mla_specs, linear_specs(), mamba_specs(), mamba1_specs(), lightning_specs, short_conv_specs),
    min_size=2,
    max_size=3,
).map(lambda parts: ParallelSpec(tuple(parts)))
no_mixer_specs = st.builds(NoMixer, linear=st.booleans())
SPEC_STRATEGIES = (
    gqa_specs(),
    mla_specs,
    dsa_specs,
    v4_specs(),
    linear_specs(),
    mamba_specs(),
    mamba1_specs(),
    lightning_specs,
    short_conv_specs,
    parallel_specs,
    no_mixer_specs,
)
any_spec = st.one_of(SPEC_STRATEGIES)
# Fields whose non-default values the layer refuses, with one such value: drawn by no strategy above,
# each pinned by test_layers_refuse_what_they_do_not_run instead. GLM-5.2's shared-index DSA layers attend
# to the top-k of an earlier layer's indexer, which one layer on its own cannot run.
REFUSED = {
    LinearAttentionSpec: {"variant": "KDA"},
    DSASpec: {"own_indexer": False},
    ParallelSpec: {"sequential": True},  # Zamba2 chains its mixers; the parallel layer adds them (Falcon-H1)
}
d_models = st.integers(2, 12)


# ----------------------------------------------------------------------------- (a) bytes


STATE_DTYPE_FIELDS = ("ssm_dtype", "conv_dtype", "state_dtype")


def at_state_dtype(spec, name: str):
    """`spec` with its state formats (ssm_dtype, conv_dtype, state_dtype; of each part of a parallel layer) set
    to `name`."""
    if isinstance(spec, ParallelSpec):
        return ParallelSpec(tuple(at_state_dtype(p, name) for p in spec.parts), spec.sequential)
    fields = {f.name for f in dataclasses.fields(spec)} & set(STATE_DTYPE_FIELDS)
    return dataclasses.replace(spec, **dict.fromkeys(fields, name))


def accounted_bytes(spec, d_model: int, context: int, batch: int, name: str, layout: str) -> int:
    """KV cache plus fixed state, as the accounting counts them. The recurrent layers hold their state in the
    dtype they are built with; ssm_dtype, conv_dtype and state_dtype price a deployment's formats, so they are
    set to it."""
    model = one_layer(at_state_dtype(spec, name), d_model)
    return acc.kv_cache_bytes(model, context, batch, name, layout) + acc.state_bytes(model, batch)


def assert_bytes_match(spec, d_model, batch, prefill, steps, dtype, mode, seed=0):
    layout = layout_for(spec, mode)
    name = DTYPES[dtype]
    layer = build_layer(spec, d_model, seed=seed, device="cpu", dtype=dtype)
    with torch.no_grad():
        _, cache = run(layer, inputs(batch, prefill, d_model, seed, dtype), mode=mode)
        for t in cache.tensors():
            assert t.dtype == dtype
        assert cache_nbytes(cache) == accounted_bytes(spec, d_model, prefill, batch, name, layout)
        for i in range(1, steps + 1):
            _, cache = run(layer, inputs(batch, 1, d_model, seed + i, dtype), cache, mode=mode)
            n = prefill + i
            assert cache.seen == n
            assert cache_nbytes(cache) == accounted_bytes(spec, d_model, n, batch, name, layout), (n, spec)


@SETTINGS
@given(
    spec=any_spec,
    d_model=d_models,
    batch=st.integers(1, 3),
    prefill=st.integers(1, 10),
    steps=st.integers(0, 4),
    dtype=st.sampled_from(list(DTYPES)),
    data=st.data(),
)
def test_cache_bytes_equal_tensor_nbytes(spec, d_model, batch, prefill, steps, dtype, data):
    mode = data.draw(st.sampled_from(modes_for(spec)))
    assert_bytes_match(spec, d_model, batch, prefill, steps, dtype, mode)


@pytest.mark.parametrize("dtype", list(DTYPES), ids=list(DTYPES.values()))
@pytest.mark.parametrize(
    "spec, mode",
    [
        (GQASpec(4, 4, 8), "absorbed"),
        (GQASpec(4, 2, 8), "absorbed"),
        (GQASpec(4, 1, 8), "absorbed"),
        (GQASpec(4, 2, 8, sliding_window=3), "absorbed"),
        (GQASpec(4, 2, 8, chunk_size=3), "absorbed"),
        (GQASpec(4, 2, 8, v_head_dim=6), "absorbed"),
        (GQASpec(4, 2, 8, k_eq_v=True), "absorbed"),
        (GQASpec(4, 2, 8, qkv_bias=True, output_gate=True), "absorbed"),
        (MLASpec(4, 12, 8, 4, 6, q_lora_rank=10), "absorbed"),
        (MLASpec(4, 12, 8, 4, 6, q_lora_rank=10), "materialised"),
        (MLASpec(2, 6, 0, 4, 6), "absorbed"),
        (MLASpec(2, 6, 4, 0, 6), "materialised"),
        (DSASpec(4, 12, 8, 4, 6, index_n_heads=3, index_head_dim=6, index_topk=3), "absorbed"),
    ],
    ids=lambda v: v if isinstance(v, str) else v.kind,
)
@pytest.mark.parametrize("batch, prefill", [(1, 1), (2, 2), (3, 7)])
def test_cache_bytes_equal_tensor_nbytes_named_cases(spec, mode, dtype, batch, prefill):
    assert_bytes_match(spec, 16, batch, prefill, 5, dtype, mode)


def test_sliding_window_cache_holds_min_n_w_tokens():
    spec = GQASpec(4, 2, 8, sliding_window=4)
    layer = GQAttention(spec, 16, dtype=F64)
    _, cache = layer(inputs(2, 2, 16))
    held = [cache.k.shape[2]]
    for i in range(6):
        _, cache = layer(inputs(2, 1, 16, seed=i + 1), cache)
        held.append(cache.k.shape[2])
        assert cache.v.shape[2] == cache.k.shape[2]
    assert held == [min(n, 4) for n in range(2, 9)]
    _, long = layer(inputs(1, 11, 16))  # a prefill longer than the window also keeps only w tokens
    assert long.k.shape[2] == 4 and long.seen == 11


def test_chunked_cache_holds_the_current_chunk():
    """Llama-4 chunked local attention with c = 3: after N tokens the cache holds (N - 1) mod c + 1 tokens,
    whether they came in one prefill or one by one (what core.accounting.designs.gqa counts)."""
    layer = GQAttention(GQASpec(4, 2, 8, chunk_size=3), 16, dtype=F64)
    _, cache = layer(inputs(2, 2, 16))
    held = [cache.k.shape[2]]
    for i in range(8):
        _, cache = layer(inputs(2, 1, 16, seed=i + 1), cache)
        held.append(cache.k.shape[2])
        assert cache.v.shape == cache.k.shape
    assert held == [(n - 1) % 3 + 1 for n in range(2, 11)] == [2, 3, 1, 2, 3, 1, 2, 3, 1]
    for n in range(1, 12):
        assert layer(inputs(1, n, 16))[1].k.shape[2] == (n - 1) % 3 + 1


def test_cache_types_match_the_layout():
    mla = MLAttention(MLASpec(2, 8, 4, 2, 4), 8, dtype=F64)
    x = inputs(1, 3, 8)
    assert isinstance(mla(x, mode="materialised")[1], KVCache)
    latent = mla(x, mode="absorbed")[1]
    assert isinstance(latent, LatentCache) and latent.k_index is None
    dsa = DSAttention(DSASpec(2, 8, 4, 2, 4, index_n_heads=2, index_head_dim=4, index_topk=2), 8, dtype=F64)
    assert dsa(x)[1].k_index.shape == (1, 3, 4)


# ----------------------------------------------------------------------------- (b) FLOPs


def counted(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def expected_decode(spec, d_model, prefill, mode, batch) -> int:
    per_seq = acc.decode_core_flops(spec, prefill + 1, mode) + 2 * acc.attention_params(spec, d_model).matmul
    return batch * per_seq


def expected_prefill(spec, d_model, tokens, mode, batch) -> int:
    core = acc.prefill_core_flops(spec, tokens, mode, causal=False)
    return batch * (core + 2 * tokens * acc.attention_params(spec, d_model).matmul)


def assert_flops_match(spec, d_model, batch, prefill, mode):
    """FLOPs of a prefill and of the next decode step, and the parameter count, equal the accounting."""
    layer = build_layer(spec, d_model, seed=3, device="cpu", dtype=F64)
    assert sum(p.numel() for p in layer.parameters()) == acc.attention_params(spec, d_model).total
    x = inputs(batch, prefill, d_model)
    with torch.no_grad():
        if prefill >= 2:  # a 1-token prefill has size-1 contractions (see the strategies' comment)
            got = counted(lambda: run(layer, x, mode=mode))
            assert got == expected_prefill(spec, d_model, prefill, mode, batch), ("prefill", prefill)
        _, cache = run(layer, x, mode=mode)
        y = inputs(batch, 1, d_model, seed=1)
        got = counted(lambda: run(layer, y, cache, mode=mode))
        assert got == expected_decode(spec, d_model, prefill, mode, batch), ("decode after", prefill)


FLOP_CASES = [
    (GQASpec(4, 4, 8), "absorbed"),
    (GQASpec(4, 2, 8, qkv_bias=True, o_bias=True), "absorbed"),
    (GQASpec(6, 1, 4), "absorbed"),
    (GQASpec(4, 2, 8, sliding_window=3), "absorbed"),
    (GQASpec(4, 2, 8, chunk_size=3), "absorbed"),
    (GQASpec(4, 2, 8, v_head_dim=6), "absorbed"),
    (GQASpec(4, 2, 8, qkv_bias=True, k_eq_v=True), "absorbed"),
    (GQASpec(4, 2, 8, qkv_bias=True, output_gate=True), "absorbed"),
    (MLASpec(4, 12, 8, 4, 6), "absorbed"),
    (MLASpec(4, 12, 8, 4, 6), "materialised"),
    (MLASpec(4, 12, 8, 4, 6, q_lora_rank=10), "absorbed"),
    (MLASpec(4, 12, 8, 4, 6, q_lora_rank=10), "materialised"),
    (MLASpec(2, 6, 0, 4, 6), "materialised"),
    (DSASpec(4, 12, 8, 4, 6, q_lora_rank=10, index_n_heads=3, index_head_dim=6, index_topk=3), "absorbed"),
    (DSASpec(4, 12, 8, 4, 6, index_n_heads=3, index_head_dim=2, index_topk=5), "absorbed"),
]


@pytest.mark.parametrize(
    "spec, mode",
    FLOP_CASES,
    ids=[f"{s.kind}-{m}-{i}" for i, (s, m) in enumerate(FLOP_CASES)],
)
@pytest.mark.parametrize("prefill", [1, 2, 3, 5, 8])
@pytest.mark.parametrize("batch", [1, 2])
def test_flops_equal_flop_counter(spec, mode, prefill, batch):
    assert_flops_match(spec, 16, batch, prefill, mode)


@SETTINGS
@given(spec=any_spec, d_model=d_models, batch=st.integers(1, 2), prefill=st.integers(1, 9), data=st.data())
def test_flops_equal_flop_counter_random(spec, d_model, batch, prefill, data):
    mode = data.draw(st.sampled_from(modes_for(spec)))
    assert_flops_match(spec, d_model, batch, prefill, mode)


@SETTINGS
@given(
    spec=gqa_specs(),
    d_model=d_models,
    batch=st.integers(1, 2),
    prefill=st.integers(1, 9),
    steps=st.integers(0, 4),
    dtype=st.sampled_from(list(DTYPES)),
)
def test_gqa_options_bytes_flops_and_params_match_accounting(spec, d_model, batch, prefill, steps, dtype):
    """GQA alone, so every combination of its options (window or chunk, value width, K=V, output gate,
    biases) is drawn often: cache bytes at every step, FLOPs and parameters equal the accounting."""
    assert_bytes_match(spec, d_model, batch, prefill, steps, dtype, "absorbed")
    assert_flops_match(spec, d_model, batch, prefill, "absorbed")


def test_flop_counter_sees_the_attention_core():
    """Guards (b) against a counter that only sees nn.Linear: doubling the context adds core FLOPs."""
    spec = GQASpec(4, 2, 8)
    layer = GQAttention(spec, 16, dtype=F64)
    _, c4 = layer(inputs(1, 4, 16))
    _, c8 = layer(inputs(1, 8, 16))
    y = inputs(1, 1, 16, seed=9)
    diff = counted(lambda: layer(y, c8)) - counted(lambda: layer(y, c4))
    assert diff == 4 * acc.pair_flops(spec) > 0


# ----------------------------------------------------------------------------- (c) equivalences


@SETTINGS
@given(fields=mla_fields(), d_model=d_models, batch=st.integers(1, 2), prefill=st.integers(1, 8))
def test_mla_materialised_equals_absorbed(fields, d_model, batch, prefill):
    spec = MLASpec(**fields)
    layer = MLAttention(spec, d_model, seed=5, device="cpu", dtype=F64)
    x = inputs(batch, prefill, d_model)
    out_n, cache_n = layer(x, mode="materialised")
    out_a, cache_a = layer(x, mode="absorbed")
    torch.testing.assert_close(out_n, out_a, atol=1e-10, rtol=0)
    for i in range(3):
        y = inputs(batch, 1, d_model, seed=i + 1)
        out_n, cache_n = layer(y, cache_n, mode="materialised")
        out_a, cache_a = layer(y, cache_a, mode="absorbed")
        torch.testing.assert_close(out_n, out_a, atol=1e-10, rtol=0)


def test_mla_materialised_and_absorbed_really_differ_in_what_they_cache():
    spec = MLASpec(4, 8, 8, 4, 8)
    layer = MLAttention(spec, 16, dtype=F64)
    x = inputs(2, 5, 16)
    _, materialised = layer(x, mode="materialised")
    _, latent = layer(x, mode="absorbed")
    assert materialised.k.shape == (2, 4, 5, 12) and materialised.v.shape == (2, 4, 5, 8)
    assert latent.c_kv.shape == (2, 5, 8) and latent.k_pe.shape == (2, 5, 4)


def assert_decode_equals_full(layer, batch, prefill, mode, steps=4, seed=0):
    x = inputs(batch, prefill + steps, layer.d_model, seed)
    full, _ = run(layer, x, mode=mode)
    out, cache = run(layer, x[:, :prefill], mode=mode)
    parts = [out]
    for i in range(prefill, prefill + steps):
        out, cache = run(layer, x[:, i : i + 1], cache, mode=mode)
        parts.append(out)
    torch.testing.assert_close(torch.cat(parts, dim=1), full, atol=1e-10, rtol=0)


@SETTINGS
@given(
    spec=st.one_of(
        gqa_specs(),
        gqa_specs(),
        mla_specs,
        v4_specs(),
        linear_specs(),
        mamba_specs(),
        mamba1_specs(),
        lightning_specs,
        short_conv_specs,
        parallel_specs,
        no_mixer_specs,
    ),
    d_model=d_models,
    batch=st.integers(1, 2),
    prefill=st.integers(1, 5),
    data=st.data(),
)
def test_decode_after_prefill_equals_full_forward(spec, d_model, batch, prefill, data):
    """Every design but DSA, which has its own test (few indexer heads make near-ties)."""
    mode = data.draw(st.sampled_from(modes_for(spec)))
    assert_decode_equals_full(build_layer(spec, d_model, seed=7, device="cpu", dtype=F64), batch, prefill, mode)


def reference_gqa(layer: GQAttention, x: torch.Tensor) -> torch.Tensor:
    """The layer's output from an empty cache, one query and one head at a time, as HF computes it: a key
    at j is visible from t if j <= t, t - j < window, t // chunk == j // chunk; Gemma-4 K=V: v_j = the key
    projection before RoPE, RMS-normalised without a gain; Qwen3-Next gate: per head [query | gate] from
    q_proj, output times sigmoid(gate) before o_proj."""
    s = layer.spec
    B, T, _ = x.shape
    H, G, D, V = s.n_heads, s.n_kv_heads, s.head_dim, s.v_dim
    pos = torch.arange(T)
    q_all = layer.wq(x).view(B, T, H, -1)  # (B, T, H, D or 2D)
    k_raw = layer.wk(x).view(B, T, G, D)
    if s.k_eq_v:
        v_all = k_raw / (k_raw.pow(2).mean(-1, keepdim=True) + 1e-6).sqrt()
    else:
        v_all = layer.wv(x).view(B, T, G, V)
    o = torch.zeros(B, T, H, V, dtype=x.dtype)
    for b in range(B):
        for t in range(T):
            seen = [
                j
                for j in range(t + 1)
                if (not s.sliding_window or t - j < s.sliding_window)
                and (not s.chunk_size or t // s.chunk_size == j // s.chunk_size)
            ]
            for h in range(H):
                g = h // (H // G)
                q = rope(q_all[b, t : t + 1, h, :D], pos[t : t + 1])[0]
                scores = torch.stack([q @ rope(k_raw[b, j : j + 1, g], pos[j : j + 1])[0] for j in seen])
                w = (scores / math.sqrt(D)).softmax(0)
                o[b, t, h] = sum(w[i] * v_all[b, j, g] for i, j in enumerate(seen))
                if s.output_gate:
                    o[b, t, h] = o[b, t, h] * q_all[b, t, h, D:].sigmoid()
    return layer.wo(o.reshape(B, T, H * V))


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=gqa_specs(), d_model=d_models, tokens=st.integers(1, 8))
def test_gqa_equals_per_query_reference(spec, d_model, tokens):
    layer = GQAttention(spec, d_model, seed=4, device="cpu", dtype=F64)
    x = inputs(1, tokens, d_model, seed=6)
    with torch.no_grad():
        torch.testing.assert_close(layer(x)[0], reference_gqa(layer, x), atol=1e-10, rtol=0)


def test_chunked_attention_is_not_full_attention():
    """The issue's case: a Llama-4 chunked layer (c = 3) equals full attention in its first chunk only."""
    chunked = GQAttention(GQASpec(4, 2, 8, chunk_size=3), 16, seed=1, dtype=F64)
    full = GQAttention(GQASpec(4, 2, 8), 16, seed=1, dtype=F64)
    x = inputs(1, 7, 16)
    a, b = chunked(x)[0], full(x)[0]
    torch.testing.assert_close(a[:, :3], b[:, :3], atol=1e-12, rtol=0)
    assert not torch.allclose(a[:, 3:], b[:, 3:], atol=1e-6)
    probs = chunked.trace(x).probs  # (B, H, T, S): no weight crosses a chunk boundary
    assert probs[0, :, 3:, :3].abs().max() == 0 and probs[0, :, 6, 3:6].abs().max() == 0


def test_k_eq_v_caches_the_normalised_key_projection_as_value():
    """Gemma-4 full layers: no v_proj; the cached value is RMSNorm(k_proj(x)) (no RoPE, no gain), the cached
    key is RoPE(k_proj(x)), so the two differ and both are cached."""
    layer = GQAttention(GQASpec(4, 2, 8, k_eq_v=True), 16, dtype=F64)
    assert layer.wv is None and "wv.weight" not in layer.state_dict()
    x = inputs(2, 5, 16)
    _, cache = layer(x)
    k_raw = layer.wk(x).view(2, 5, 2, 8).transpose(1, 2)
    torch.testing.assert_close(cache.v, k_raw / (k_raw.pow(2).mean(-1, keepdim=True) + 1e-6).sqrt())
    torch.testing.assert_close(cache.k, rope(k_raw, torch.arange(5)))
    assert cache.k.shape == cache.v.shape and not torch.allclose(cache.k, cache.v)


def test_mamba2_without_gated_norm_gates_by_silu():
    """Falcon-H1 without mamba_rms_norm: no norm weights, out_proj(y * SiLU(z)); the recurrent form still
    equals the quadratic one, so the gate is applied the same way in both."""
    layer = build_layer(Mamba2Spec(2, 4, 3, gated_norm=False), 8, seed=2, device="cpu", dtype=F64)
    assert layer.norm is None
    x = inputs(2, 6, 8)
    with torch.no_grad():
        torch.testing.assert_close(layer(x)[0], layer.chunked_forward(x)[0], atol=1e-12, rtol=0)


def test_output_gate_and_value_width_shape_the_projections():
    gated = GQAttention(GQASpec(4, 2, 8, output_gate=True), 16, dtype=F64)
    assert gated.wq.weight.shape == (2 * 4 * 8, 16) and gated.wo.weight.shape == (16, 4 * 8)
    wide = GQAttention(GQASpec(4, 2, 8, v_head_dim=6), 16, dtype=F64)
    assert wide.wv.weight.shape == (2 * 6, 16) and wide.wo.weight.shape == (16, 4 * 6)
    _, cache = wide(inputs(1, 3, 16))
    assert cache.k.shape == (1, 2, 3, 8) and cache.v.shape == (1, 2, 3, 6)
    with torch.no_grad():  # a gate of sigmoid(0) halves the output; bias-free, so wo halves it too
        gated.wq.weight.view(4, 2, 8, 16)[:, 1].zero_()
        plain = GQAttention(GQASpec(4, 2, 8), 16, dtype=F64)
        plain.wq.weight.copy_(gated.wq.weight.view(4, 2, 8, 16)[:, 0].reshape(32, 16))
        plain.wk.weight.copy_(gated.wk.weight), plain.wv.weight.copy_(gated.wv.weight)
        plain.wo.weight.copy_(gated.wo.weight)
        x = inputs(1, 4, 16)
        torch.testing.assert_close(gated(x)[0], plain(x)[0] / 2, atol=1e-12, rtol=0)


@SETTINGS
@given(
    fields=mla_fields(),
    d_model=st.integers(4, 12),
    topk=st.integers(2, 8),
    batch=st.integers(1, 2),
    prefill=st.integers(1, 5),
)
def test_dsa_decode_after_prefill_equals_full_forward(fields, d_model, topk, batch, prefill):
    # 8 indexer heads: an index score is exactly 0 only if all 8 ReLUs clip, so ties are rare here;
    # the tied case has its own test below.
    spec = DSASpec(**fields, index_n_heads=8, index_head_dim=4, index_topk=topk)
    layer = DSAttention(spec, d_model, seed=7, device="cpu", dtype=F64)
    assert_decode_equals_full(layer, batch, prefill, "absorbed")


def test_dsa_decode_equals_full_forward_when_index_scores_tie():
    """ReLU makes exact ties (score 0) common. The selection, and so the output, must not depend on
    whether a token arrives in a prefill chunk or a decode step."""
    spec = DSASpec(2, 8, 4, 4, 4, index_n_heads=2, index_head_dim=4, index_topk=2)
    layer = DSAttention(spec, 8, seed=1, device="cpu", dtype=F64)
    with torch.no_grad():
        layer.index_wq.weight.zero_()  # every index score is 0: all visible tokens tie
    assert_decode_equals_full(layer, 1, 3, "absorbed", steps=5)


@pytest.mark.parametrize(
    "spec",
    [
        GQASpec(4, 2, 8),
        GQASpec(4, 2, 8, sliding_window=3),
        GQASpec(4, 2, 8, k_eq_v=True, output_gate=True),
        MLASpec(4, 12, 8, 4, 6, q_lora_rank=10),
        DSASpec(4, 12, 8, 4, 6, index_n_heads=3, index_head_dim=6, index_topk=3),
    ],
    ids=lambda s: s.kind,
)
def test_deterministic_construction_from_seed(spec):
    a = build_layer(spec, 16, seed=11, device="cpu", dtype=F64).state_dict()
    b = build_layer(spec, 16, seed=11, device="cpu", dtype=F64).state_dict()
    c = build_layer(spec, 16, seed=12, device="cpu", dtype=F64).state_dict()
    assert a.keys() == b.keys() == c.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert any(not torch.equal(a[k], c[k]) for k in a)
    matrices = [k for k in a if a[k].ndim == 2]
    assert matrices and all(not torch.equal(a[k], c[k]) for k in matrices)


def test_same_seed_same_weights_across_dtypes():
    spec = MLASpec(2, 8, 4, 2, 4)
    w64 = MLAttention(spec, 8, seed=1, dtype=F64).wkv_b.weight
    w32 = MLAttention(spec, 8, seed=1, dtype=torch.float32).wkv_b.weight
    torch.testing.assert_close(w32.double(), w64, atol=1e-6, rtol=0)


def test_layers_hold_no_cache_state():
    layer = GQAttention(GQASpec(2, 1, 4), 8, dtype=F64)
    x = inputs(1, 3, 8)
    first, _ = layer(x)
    layer(inputs(1, 5, 8, seed=4))  # an unrelated call in between
    again, _ = layer(x)
    assert torch.equal(first, again)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize(
    "spec",
    [
        GQASpec(4, 2, 8, sliding_window=3),
        GQASpec(4, 2, 8, chunk_size=4, output_gate=True),
        GQASpec(4, 2, 8, v_head_dim=6, qkv_bias=True),
        GQASpec(4, 2, 8, k_eq_v=True),
        MLASpec(4, 12, 8, 4, 6, q_lora_rank=10),
        DSASpec(4, 12, 8, 4, 6, index_n_heads=3, index_head_dim=6, index_topk=3),
    ],
    ids=lambda s: s.kind,
)
def test_layer_runs_on_cuda(spec):
    cpu = build_layer(spec, 16, seed=2, device="cpu", dtype=F64)
    gpu = build_layer(spec, 16, seed=2, device="cuda", dtype=F64)
    assert next(gpu.parameters()).device.type == "cuda"
    x = inputs(2, 6, 16)
    out_c, cache_c = cpu(x)
    out_g, cache_g = gpu(x.cuda())
    torch.testing.assert_close(out_g.cpu(), out_c, atol=1e-10, rtol=0)
    assert cache_nbytes(cache_g) == cache_nbytes(cache_c)


# ----------------------------------------------------------------------------- RoPE


@settings(max_examples=30, deadline=None)
@given(r=even, m=st.integers(0, 5000), seed=st.integers(0, 10**6))
def test_rope_preserves_norms(r, m, seed):
    x = torch.randn(3, 1, r, generator=torch.Generator().manual_seed(seed), dtype=F64)
    y = rope(x, torch.tensor([m]))
    torch.testing.assert_close(y.norm(dim=-1), x.norm(dim=-1), atol=1e-10, rtol=0)


@settings(max_examples=30, deadline=None)
@given(r=even, m=st.integers(0, 3000), n=st.integers(0, 3000), shift=st.integers(-3000, 3000))
def test_rope_scores_depend_only_on_relative_position(r, m, n, shift):
    g = torch.Generator().manual_seed(r + m)
    q, k = torch.randn(1, r, generator=g, dtype=F64), torch.randn(1, r, generator=g, dtype=F64)
    m2, n2 = max(m + shift, 0), max(n + shift, 0)
    if m2 - n2 != m - n:
        m2, n2 = m + abs(shift), n + abs(shift)
    s1 = (rope(q, torch.tensor([m])) * rope(k, torch.tensor([n]))).sum()
    s2 = (rope(q, torch.tensor([m2])) * rope(k, torch.tensor([n2]))).sum()
    torch.testing.assert_close(s1, s2, atol=1e-9, rtol=0)


def test_rope_is_rotate_half():
    """Channel i pairs with channel i + r/2 (GPT-NeoX / HF Llama), frequency theta^(-2i/r)."""
    r, theta, m = 8, 10000.0, 3
    x = torch.arange(1.0, r + 1, dtype=F64)[None, :]
    y = rope(x, torch.tensor([m]), theta)[0]
    for i in range(r // 2):
        ang = m * theta ** (-2 * i / r)
        a, b = x[0, i].item(), x[0, i + r // 2].item()
        assert y[i].item() == pytest.approx(a * math.cos(ang) - b * math.sin(ang), abs=1e-12)
        assert y[i + r // 2].item() == pytest.approx(a * math.sin(ang) + b * math.cos(ang), abs=1e-12)
    torch.testing.assert_close(rope(x, torch.tensor([0])), x)  # position 0 is the identity
    assert rope(torch.zeros(2, 0, dtype=F64), torch.tensor([1, 2])).shape == (2, 0)


def test_rope_is_a_real_rotation_not_the_identity():
    x = torch.ones(1, 4, dtype=F64)
    assert not torch.allclose(rope(x, torch.tensor([1])), x)


def test_causal_mask_with_window():
    q = torch.arange(3, 6)
    k = torch.arange(0, 6)
    m = causal_mask(q, k, window=2)
    assert m.tolist() == [
        [False, False, True, True, False, False],
        [False, False, False, True, True, False],
        [False, False, False, False, True, True],
    ]


# ----------------------------------------------------------------------------- DSA


def brute_index_scores(layer: DSAttention, x: torch.Tensor) -> torch.Tensor:
    """I(t,s) = sum_j w_tj ReLU(q_tj . k_s) by explicit loops (DeepSeek-V3.2-Exp lightning indexer),
    using the layer's projections and RoPE on the first min(d_r, d^I) indexer channels."""
    s = layer.spec
    B, T, _ = x.shape
    I, J = s.index_n_heads, s.index_head_dim
    rr = min(s.qk_rope_head_dim, J)
    pos = torch.arange(T)
    q_in = layer.q_norm(layer.wq_a(x)) if s.q_lora_rank else x
    q = layer.index_wq(q_in).view(B, T, I, J)
    k = layer.index_k_norm(layer.index_wk(x))  # (B, T, J)
    w = layer.index_weights(x) / math.sqrt(I)  # (B, T, I)
    out = torch.full((B, T, T), float("-inf"), dtype=x.dtype)
    for b in range(B):
        for t in range(T):
            for src in range(t + 1):
                total = 0.0
                k_s = torch.cat([rope(k[b, src : src + 1, :rr], pos[src : src + 1])[0], k[b, src, rr:]])
                for j in range(I):
                    q_tj = torch.cat([rope(q[b, t : t + 1, j, :rr], pos[t : t + 1])[0], q[b, t, j, rr:]])
                    total += w[b, t, j].item() * max(0.0, float(q_tj @ k_s))
                out[b, t, src] = total
    return out


@pytest.mark.parametrize("q_lora_rank", [None, 6])
@pytest.mark.parametrize("topk", [1, 3, 5])
def test_dsa_topk_matches_brute_force_indexer(q_lora_rank, topk):
    spec = DSASpec(2, 8, 4, 4, 4, q_lora_rank, index_n_heads=3, index_head_dim=6, index_topk=topk)
    layer = DSAttention(spec, 8, seed=4, dtype=F64)
    x = inputs(2, 9, 8, seed=8)
    with torch.no_grad():
        sel = layer.selected(x)
        ref = brute_index_scores(layer, x)
    assert sel.shape == (2, 9, min(9, topk))
    n_nontrivial = 0
    for b in range(2):
        for t in range(9):
            visible = t + 1
            k = min(visible, topk)
            got = sorted(i for i in sel[b, t].tolist() if i <= t)
            assert len(got) == k, (b, t)
            # Tie-robust: the selected tokens carry exactly the k best brute-force scores.
            got_scores = ref[b, t, got].sort().values
            best = ref[b, t, :visible].topk(k).values.sort().values
            torch.testing.assert_close(got_scores, best, atol=1e-12, rtol=0)
            n_nontrivial += visible > topk
    assert n_nontrivial > 0  # some queries really had to choose


def test_dsa_selection_after_prefill_matches_full_selection():
    spec = DSASpec(2, 8, 4, 4, 4, index_n_heads=2, index_head_dim=4, index_topk=3)
    layer = DSAttention(spec, 8, seed=1, dtype=F64)
    x = inputs(1, 8, 8, seed=2)
    with torch.no_grad():
        full = layer.selected(x)
        _, cache = layer(x[:, :7])
        last = layer.selected(x[:, 7:], cache)
    assert set(last[0, 0].tolist()) == set(full[0, 7].tolist())


@pytest.mark.parametrize("q_lora_rank", [None, 6])
@pytest.mark.parametrize("topk", [12, 100])
def test_dsa_with_topk_at_least_context_is_absorbed_mla(q_lora_rank, topk):
    fields = dict(n_heads=3, kv_lora_rank=8, qk_nope_head_dim=4, qk_rope_head_dim=4, v_head_dim=5)
    dsa = DSAttention(
        DSASpec(**fields, q_lora_rank=q_lora_rank, index_n_heads=2, index_head_dim=4, index_topk=topk),
        10,
        seed=3,
        dtype=F64,
    )
    mla = MLAttention(MLASpec(**fields, q_lora_rank=q_lora_rank), 10, seed=99, dtype=F64)
    mla.load_state_dict({k: v for k, v in dsa.state_dict().items() if not k.startswith("index_")})
    x = inputs(2, 12, 10, seed=5)
    with torch.no_grad():
        out_d, cache_d = dsa(x[:, :8])
        out_m, cache_m = mla(x[:, :8], mode="absorbed")
        torch.testing.assert_close(out_d, out_m, atol=1e-10, rtol=0)
        for i in range(8, 12):
            out_d, cache_d = dsa(x[:, i : i + 1], cache_d)
            out_m, cache_m = mla(x[:, i : i + 1], cache_m, mode="absorbed")
            torch.testing.assert_close(out_d, out_m, atol=1e-10, rtol=0)
    torch.testing.assert_close(cache_d.c_kv, cache_m.c_kv, atol=0, rtol=0)


def test_dsa_with_small_topk_differs_from_mla():
    """Guards the test above: a real top-k does change the output."""
    fields = dict(n_heads=3, kv_lora_rank=8, qk_nope_head_dim=4, qk_rope_head_dim=4, v_head_dim=5)
    dsa = DSAttention(DSASpec(**fields, index_n_heads=2, index_head_dim=4, index_topk=2), 10, dtype=F64)
    mla = MLAttention(MLASpec(**fields), 10, dtype=F64)
    mla.load_state_dict({k: v for k, v in dsa.state_dict().items() if not k.startswith("index_")})
    x = inputs(1, 8, 10)
    with torch.no_grad():
        assert not torch.allclose(dsa(x)[0], mla(x, mode="absorbed")[0], atol=1e-6)


# ----------------------------------------------------------------------------- errors and edge cases


def test_bad_modes_and_unsupported_specs_raise_value_error():
    mla = MLAttention(MLASpec(2, 8, 4, 2, 4), 8, dtype=F64)
    with pytest.raises(ValueError, match="mode"):
        mla(inputs(1, 2, 8), mode="fused")
    dsa = DSAttention(DSASpec(2, 8, 4, 2, 4, index_n_heads=2, index_head_dim=4, index_topk=2), 8, dtype=F64)
    with pytest.raises(ValueError, match="absorbed"):
        dsa(inputs(1, 2, 8), mode="materialised")
    assert type(build_layer(CompressedSpec(4, 16, 4, 128, 8), 8)).__name__ == "CompressedAttention"
    with pytest.raises(TypeError, match="DenseMLP"):
        build_layer(DenseMLP(8), 8)


def test_strategies_set_every_field_of_every_spec():
    """Each field of each spec type `build_layer` takes is set (to a value other than its default) by some
    drawn spec, or is in REFUSED; a field added to a spec fails here until a strategy draws it."""
    seen: dict[type, set[str]] = defaultdict(set)  # spec type -> fields some drawn spec sets
    for strategy in SPEC_STRATEGIES:

        @settings(max_examples=100, derandomize=True, database=None, deadline=None)
        @given(spec=strategy)
        def collect(spec):
            seen[type(spec)] |= set(unrun_fields(object, spec))  # object runs nothing: the fields spec sets

        collect()
    assert set(build._LAYERS) <= set(seen), "a spec type with a layer has no strategy"
    for spec_type in build._LAYERS:
        every = {f.name for f in dataclasses.fields(spec_type)}
        assert seen[spec_type] | set(REFUSED.get(spec_type, {})) == every, spec_type.__name__


def test_layers_list_only_fields_of_their_spec():
    """`RUNS` names real fields, so a typo there cannot let a field through unchecked."""
    for spec_type, layer_cls in build._LAYERS.items():
        assert layer_cls.RUNS <= {f.name for f in dataclasses.fields(spec_type)}, layer_cls.__name__
    assert set(build._LAYERS) <= set(get_args(AttentionSpec))  # the others have no layer: TypeError


REFUSED_BASE = {
    LinearAttentionSpec: LinearAttentionSpec(2, 2, 4, 4),
    DSASpec: DSASpec(2, 8, 4, 2, 4, index_n_heads=2, index_head_dim=4, index_topk=2),
    ParallelSpec: ParallelSpec((GQASpec(2, 1, 4), Mamba2Spec(2, 4, 4))),
}


@pytest.mark.parametrize(
    "spec_type, field, value",
    [(t, f, v) for t, fields in REFUSED.items() for f, v in fields.items()],
    ids=lambda v: v.__name__ if isinstance(v, type) else str(v),
)
def test_layers_refuse_what_they_do_not_run(spec_type, field, value):
    spec = dataclasses.replace(REFUSED_BASE[spec_type], **{field: value})
    with pytest.raises(NotImplementedError, match=f"{field}={value!r}"):
        build_layer(spec, 8)
    build_layer(REFUSED_BASE[spec_type], 8)  # the same spec with the field at its default runs


def test_refusals_that_depend_on_values():
    kda = LinearAttentionSpec(2, 2, 4, 4, variant="KDA")
    with pytest.raises(NotImplementedError, match="variant"):
        GatedDeltaNet(kda, 8)  # built directly, not through build_layer
    with pytest.raises(NotImplementedError, match="output_gate with v_head_dim"):
        build_layer(GQASpec(4, 2, 8, v_head_dim=6, output_gate=True), 8)


@dataclasses.dataclass(frozen=True)
class FutureGQASpec(GQASpec):
    """GQASpec with a field added after its layer was written."""

    attention_sink: bool = False


def test_a_field_added_later_is_refused_until_a_layer_runs_it(monkeypatch):
    monkeypatch.setitem(build._LAYERS, FutureGQASpec, GQAttention)
    assert isinstance(build_layer(FutureGQASpec(4, 2, 8), 8), GQAttention)  # left at its default: fine
    with pytest.raises(NotImplementedError, match="attention_sink=True"):
        build_layer(FutureGQASpec(4, 2, 8, attention_sink=True), 8)
    assert unrun_fields(GQAttention, FutureGQASpec(4, 2, 8, chunk_size=2, attention_sink=True)) == ["attention_sink"]


@pytest.mark.parametrize(
    "spec, field",
    [
        (GQASpec(4, 2, 8, sliding_window=3), "sliding"),
        (GQASpec(4, 2, 8, chunk_size=3), "chunk_size"),
        (GQASpec(4, 2, 8, v_head_dim=6), "v_head_dim"),
        (GQASpec(4, 2, 8, k_eq_v=True), "k_eq_v"),
        (GQASpec(4, 2, 8, output_gate=True), "output_gate"),
    ],
)
def test_decode_kernels_refuse_gqa_options(spec, field):
    """The flash-decoding kernels run plain GQA only, and say so rather than ignore an option."""
    layer = GQAttention(spec, 16, dtype=F64)
    with pytest.raises(ValueError, match=field):
        empty_buffer(spec, 1, 8, dtype=F64)
    with pytest.raises(ValueError, match=field):
        gqa_step(layer, inputs(1, 1, 16), None)


def _odd_dim_case(spec):
    """A spec the spec classes accept (these two are: odd dimensions are legal) gives a working layer whose
    cache the accounting matches, byte for byte."""
    layer = build_layer(spec, 8, device="cpu", dtype=torch.float32)
    _, cache = layer(inputs(1, 3, 8, dtype=torch.float32))
    assert cache_nbytes(cache) == acc.kv_cache_bytes(one_layer(spec, 8), 3, 1, "fp32")


def test_odd_head_dim_gqa_layer_works():
    _odd_dim_case(GQASpec(2, 1, 5))


def test_odd_index_head_dim_below_rope_dim_works():
    _odd_dim_case(DSASpec(2, 8, 4, 4, 4, index_n_heads=2, index_head_dim=3, index_topk=4))
