"""Accounting formulas (core/accounting.py, core/dtypes.py, core/v4.py) against published numbers.

Proves the reference numbers of docs/facts.md section 7 (bf16 KV cache bytes per token and at 1M tokens
for Llama, Mistral, DeepSeek V2-Lite/V3/V3.2/V4-Pro, incl. the materialised and fp8_ds_mla layouts),
parameter counts within 3% of the published totals, that the closed-form causal prefill sums equal
brute-force sums of per-token decode costs for every design, that decode reads no more than is cached,
that cache formats with scales add the right bytes, that batch scales linearly, that the one per-layer
byte sum (bytes_by_layer) is a direct sum over the layers, and that bad context, batch, dtype, layout and
mode values raise ValueError.
"""

from __future__ import annotations

from dataclasses import replace
from math import ceil

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.accounting import totals as acc
from core.accounting.base import design_of
from core.model.dtypes import CACHE_DTYPES, WEIGHT_DTYPES, StorageFormat, cache_dtype, weight_dtype
from core.model.presets import load_preset, preset_names
from core.model.specs import CompressedSpec, DenseMLP, DSASpec, GQASpec, MLASpec, ModelSpec
from core.model.units import fmt_bytes

M = 1_048_576  # "1M tokens"
GiB = 1 << 30


def one_layer(attn, hidden: int = 64) -> ModelSpec:
    return ModelSpec("t", "t", hidden, 10, (attn,), (DenseMLP(16),))


# ------------------------------------------------------------------------- docs/facts.md section 7


@pytest.mark.parametrize(
    "name, per_token",
    [
        ("llama-3.1-8b", 131_072),
        ("llama-3.1-70b", 327_680),
        ("mistral-7b", 131_072),
        ("deepseek-v2-lite", 31_104),
        ("deepseek-v3", 70_272),
        ("kimi-k2", 70_272),
        ("deepseek-v3.2", 85_888),
    ],
)
def test_bf16_bytes_per_token(name, per_token):
    spec = load_preset(name)
    assert acc.kv_bytes_per_token(spec) == per_token
    assert acc.kv_cache_bytes(spec, 1, 1, "bf16") == per_token
    # A full-attention (or below-window) cache grows by exactly that much per token.
    assert acc.kv_cache_bytes(spec, 1000) == 1000 * per_token


@pytest.mark.parametrize(
    "name, per_token",
    [("deepseek-v2-lite", 276_480), ("deepseek-v3", 4_997_120)],
)
def test_mla_materialised_layout(name, per_token):
    spec = load_preset(name)
    assert acc.kv_bytes_per_token(spec, "bf16", "materialised") == per_token
    # Per-head K (n_h (d_nope + d_r)) and V (n_h d_v) per layer, 2 bytes each.
    a = spec.attention[0]
    assert per_token == spec.n_layers * 2 * a.n_heads * (a.qk_head_dim + a.v_head_dim)


def test_mla_latent_is_d_c_plus_d_r_per_layer():
    spec = load_preset("deepseek-v3")
    assert acc.kv_bytes_per_token(spec) == 61 * (512 + 64) * 2


def test_mistral_cache_stops_growing_at_the_window():
    spec = load_preset("mistral-7b")
    for n in (1, 100, 4095, 4096):
        assert acc.kv_cache_bytes(spec, n) == n * 131_072
    full = 4096 * 131_072
    for n in (4097, 10_000, 32_768, M):
        assert acc.kv_cache_bytes(spec, n) == full


def test_deepseek_v3_2_at_1m_tokens_is_83_9_gib():
    b = acc.kv_cache_bytes(load_preset("deepseek-v3.2"), M)
    assert b == 85_888 * M
    assert fmt_bytes(b) == "83.9 GiB"


def test_deepseek_v4_pro_at_1m_tokens_is_9_62_gib():
    spec = load_preset("deepseek-v4-pro")
    b = acc.kv_cache_bytes(spec, M)
    # Recomputed by hand (bf16): HCA keeps N/128 entries of 512 plus a 128-token window; CSA keeps N/4
    # entries of 512, N/4 indexer keys of 128 and the window.
    window = 128 * 512 * 2
    hca = (M // 128) * 512 * 2 + window
    csa = (M // 4) * 512 * 2 + (M // 4) * 128 * 2 + window
    assert b == 31 * hca + 30 * csa == 10_334_371_840
    assert fmt_bytes(b) == "9.62 GiB"
    assert acc.kv_cache(spec, M).by_layer_type() == {"HCA": 31 * hca, "CSA": 30 * csa}
    # vLLM's bf16 arithmetic: 8.7x smaller than V3.2 (docs/facts.md section 5).
    ratio = acc.kv_cache_bytes(load_preset("deepseek-v3.2"), M) / b
    assert round(ratio, 1) == 8.7


def test_v4_flash_counts_swa_layers_as_window_only():
    spec = load_preset("deepseek-v4-flash")
    by_type = acc.kv_cache(spec, M).by_layer_type()
    assert by_type["SWA"] == 2 * 128 * 512 * 2
    assert acc.kv_cache(spec, 100).by_layer_type()["SWA"] == 2 * 100 * 512 * 2


def test_fp8_ds_mla_is_656_bytes_per_token_per_layer_for_v3():
    spec = load_preset("deepseek-v3")
    assert acc.kv_bytes_per_token(spec, "bf16", "fp8_ds_mla") == 656 * 61


@pytest.mark.parametrize("rank, rope", [(512, 64), (256, 64), (1024, 32)])
def test_fp8_ds_mla_entry_is_fp8_latent_plus_a_scale_per_128_plus_bf16_rope(rank, rope):
    """The layout's entry follows the spec's dimensions (FlashMLA's fp8 cache): rank fp8 latent values, one
    fp32 scale per 128 of them, and the rope key in bf16; V3's 656 B is the rank-512, rope-64 case."""
    spec = load_preset("deepseek-v3")
    mla = replace(spec.attention[0], kv_lora_rank=rank, qk_rope_head_dim=rope)
    spec = replace(spec, attention=tuple(mla for _ in spec.attention))
    entry = acc.kv_bytes_per_token(spec, "bf16", "fp8_ds_mla") // spec.n_layers
    assert entry == rank * 1 + (rank // 128) * 4 + rope * 2


def test_fp8_ds_mla_v3_2_adds_a_scaled_fp8_indexer_key():
    spec = load_preset("deepseek-v3.2")
    assert acc.kv_bytes_per_token(spec, "bf16", "fp8_ds_mla") == (656 + 128 + 4) * 61


def test_v4_production_layout_entry_sizes():
    spec = load_preset("deepseek-v4-pro")
    csa = next(a for a in spec.attention if a.kind == "CSA")
    rows = {t: b for t, _r, _w, b in acc.layer_cache_rows(csa, 1024, cache_dtype("bf16"), "fp8_ds_mla")}
    assert rows == {"entries": 584, "indexer keys": 68, "window": 584}


def test_breakdowns_sum_to_the_total():
    for name in ("gemma-3-27b", "deepseek-v3.2", "deepseek-v4-flash", "gpt-oss-120b"):
        c = acc.kv_cache(load_preset(name), 50_000, 3, "int8")
        assert sum(c.by_layer_type().values()) == c.total == sum(c.by_tensor().values())
        assert sum(t.n_layers for t in c.terms if t.tensor in ("keys", "latent c_KV", "window")) == (
            load_preset(name).n_layers
        )


def test_hybrid_window_model_splits_by_layer_type():
    spec = load_preset("gemma-3-27b")
    per_layer = 2 * 16 * 128 * 2  # K and V, 16 kv heads x 128, bf16
    n = 100_000
    assert acc.kv_cache(spec, n).by_layer_type() == {
        "GQA sliding": 52 * 1024 * per_layer,
        "GQA": 10 * n * per_layer,
    }


# ----------------------------------------------------------------------------- parameters


@pytest.mark.parametrize(
    "name, total, active",
    [
        ("deepseek-v3", 671e9, 37e9),
        ("deepseek-v4-pro", 1.6e12, 49e9),
        ("deepseek-v4-flash", 284e9, 13e9),
        ("llama-3.1-70b", 70.6e9, None),
        ("llama-3.1-8b", 8.03e9, None),
        ("gpt-oss-120b", 116.8e9, 5.1e9),
        ("gpt2", 124e6, None),
        ("kimi-k2", 1.03e12, 32e9),
    ],
)
def test_parameter_counts_within_3_percent_of_published(name, total, active):
    pc = acc.param_count(load_preset(name))
    assert pc.total == pytest.approx(total, rel=0.03)
    if active is not None:
        assert pc.active == pytest.approx(active, rel=0.03)
    assert pc.active <= pc.total
    assert pc.attention + pc.mlp + pc.embedding <= pc.total


def test_mtp_modules_are_not_counted():
    spec = load_preset("deepseek-v3")
    assert spec.n_mtp_layers == 1
    assert acc.param_count(spec).total < 685e9 * 0.99  # 685B includes the MTP module


def test_dense_model_active_is_total_minus_embedding():
    pc = acc.param_count(load_preset("llama-3.1-70b"))
    assert pc.active == pc.total - pc.embedding


def test_weights_bytes_follow_the_weight_format():
    spec = load_preset("llama-3.1-8b")
    n = acc.param_count(spec).total
    assert acc.weights_bytes(spec, "bf16") == 2 * n
    assert acc.weights_bytes(spec, "fp32") == 4 * n
    assert acc.weights_bytes(spec, "int8") == ceil(n * (8 + 16 / 128) / 8)
    with pytest.raises(ValueError, match="weight dtype"):
        acc.weights_bytes(spec, "fp7")


# ----------------------------------------------------------------------------- prefill = sum of decodes

GQA_SPECS = [GQASpec(4, 2, 8), GQASpec(8, 1, 16, sliding_window=5), GQASpec(4, 4, 8, sliding_window=1)]
MLA_SPECS = [MLASpec(4, 12, 8, 4, 6), MLASpec(2, 8, 0, 2, 4, q_lora_rank=6)]
DSA_SPECS = [DSASpec(4, 12, 8, 4, 6, index_n_heads=3, index_head_dim=6, index_topk=7)]
V4_BASE = dict(n_heads=4, head_dim=16, qk_rope_head_dim=4, sliding_window=6)
V4_SPECS = [
    CompressedSpec(**V4_BASE, compress_ratio=4, index_n_heads=2, index_head_dim=8, index_topk=3),
    CompressedSpec(**V4_BASE, compress_ratio=128),
    CompressedSpec(**V4_BASE, compress_ratio=8),
    CompressedSpec(**V4_BASE, compress_ratio=0),
]
ALL_SPECS = GQA_SPECS + MLA_SPECS + DSA_SPECS + V4_SPECS


def brute_prefill(attn, t: int, mode: str) -> int:
    return sum(acc.decode_core_flops(attn, p, mode) for p in range(1, t + 1))


@pytest.mark.parametrize("attn", ALL_SPECS, ids=lambda a: f"{type(a).__name__}-{a.kind}")
@pytest.mark.parametrize("mode", ["absorbed", "materialised"])
@pytest.mark.parametrize("t", [0, 1, 2, 3, 4, 5, 6, 7, 8, 12, 13, 127, 128, 129, 300, 1025])
def test_causal_prefill_is_sum_of_decode_steps(attn, mode, t):
    assert acc.prefill_core_flops(attn, t, mode, causal=True) == brute_prefill(attn, t, mode)


gqa_st = st.builds(
    lambda g, r, d, w: GQASpec(g * r, g, d, w),
    st.integers(1, 4),
    st.integers(1, 4),
    st.integers(1, 8).map(lambda n: 2 * n),
    st.one_of(st.none(), st.integers(1, 40)),
)
dsa_st = st.builds(
    lambda h, c, n, r, v, ih, id_, k: DSASpec(h, c, n, 2 * r, v, None, ih, id_, k),
    st.integers(1, 4),
    st.integers(1, 16),
    st.integers(0, 8),
    st.integers(1, 4),
    st.integers(1, 8),
    st.integers(1, 4),
    st.integers(1, 4).map(lambda n: 2 * n),
    st.integers(1, 60),
)
v4_st = st.builds(
    lambda h, d, m, w, ih, k: CompressedSpec(
        h, d, 0, m, w, index_n_heads=ih, index_head_dim=8, index_topk=k if m == 4 else 0
    ),
    st.integers(1, 8),
    st.integers(1, 32),
    st.sampled_from([0, 2, 3, 4, 5, 16, 128]),
    st.integers(1, 50),
    st.integers(1, 4),
    st.integers(1, 40),
)


@settings(max_examples=40, deadline=None)
@given(attn=st.one_of(gqa_st, dsa_st, v4_st), t=st.integers(0, 400), mode=st.sampled_from(acc.MODES))
def test_causal_prefill_is_sum_of_decode_steps_random(attn, t, mode):
    assert acc.prefill_core_flops(attn, t, mode, causal=True) == brute_prefill(attn, t, mode)


@pytest.mark.parametrize("attn", GQA_SPECS + MLA_SPECS + DSA_SPECS, ids=lambda a: a.kind)
def test_dense_prefill_counts_every_query_key_pair(attn):
    t = 9
    pf, ix = acc.pair_flops(attn, "absorbed"), acc.index_flops_per_row(attn)
    k = min(t, attn.index_topk) if isinstance(attn, DSASpec) else t
    assert acc.prefill_core_flops(attn, t, causal=False) == t * k * pf + t * t * ix
    assert acc.prefill_core_flops(attn, t, causal=False) >= acc.prefill_core_flops(attn, t, causal=True)


def test_dense_prefill_of_v4_layers_counts_window_plus_entries():
    """Dense count: T x T window pairs plus T x E entries (CSA: top-k capped, plus T x E indexer rows);
    tests/test_v4_layers.py pins it against FlopCounterMode on the real layer."""
    hca = CompressedSpec(4, 16, 4, 8, 4)
    assert acc.prefill_core_flops(hca, 20, causal=False) == 20 * (20 + 20 // 8) * acc.pair_flops(hca)
    csa = CompressedSpec(4, 16, 4, 4, 4, index_n_heads=2, index_head_dim=8, index_topk=3)
    dense = 20 * (20 + 3) * acc.pair_flops(csa) + 20 * 5 * acc.index_flops_per_row(csa)
    assert acc.prefill_core_flops(csa, 20, causal=False) == dense


def test_pair_flops_follow_the_table():
    assert acc.pair_flops(GQASpec(64, 8, 128)) == 2 * 64 * (128 + 128)
    mla = load_preset("deepseek-v3").attention[0]
    assert acc.pair_flops(mla, "materialised") == 2 * 128 * (128 + 64 + 128)
    assert acc.pair_flops(mla, "absorbed") == 2 * 128 * (512 + 64 + 512)
    dsa = load_preset("deepseek-v3.2").attention[0]
    assert acc.index_flops_per_row(dsa) == 2 * 64 * 128
    assert acc.index_flops_per_row(mla) == 0


def test_dsa_decode_attends_to_top_k_but_scores_every_token():
    dsa = load_preset("deepseek-v3.2").attention[0]
    n = 100_000
    assert acc.attended(dsa, n) == 2048
    assert acc.indexed_rows(dsa, n) == n
    assert acc.decode_core_flops(dsa, n) == 2048 * acc.pair_flops(dsa) + n * 2 * 64 * 128


def test_v4_attended_entries():
    csa, hca, swa = V4_SPECS[0], V4_SPECS[1], V4_SPECS[3]
    assert acc.attended(csa, 100) == min(100 // 4, 3) + 6
    assert acc.attended(hca, 1000) == 1000 // 128 + 6
    assert acc.attended(swa, 1000) == 6
    assert acc.attended(swa, 4) == 4
    assert acc.indexed_rows(csa, 100) == 25
    assert acc.indexed_rows(hca, 100) == 0


def test_decode_cost_totals():
    spec = load_preset("deepseek-v3")
    cost = acc.decode_cost(spec, 4096)
    core = 61 * acc.decode_core_flops(spec.attention[0], 4096)
    proj = 61 * 2 * acc.attention_params(spec.attention[0], spec.hidden_size).matmul
    assert cost.attention_core_flops == core
    assert cost.attention_block_flops == core + proj
    assert cost.model_flops == core + 2 * acc.param_count(spec).matmul_active
    assert cost.arithmetic_intensity == pytest.approx(core / cost.cache_bytes_read)
    assert acc.prefill_flops(spec, 10) == 2 * acc.param_count(spec).matmul_active * 10 + 61 * (
        acc.prefill_core_flops(spec.attention[0], 10)
    )


def test_absorbed_mla_intensity_is_about_2_n_h_flops_per_byte():
    """FlashMLA's point (docs/facts.md section 6): ~2 n_h FLOPs per cache byte for MLA, ~n_h/n_kv for GQA."""
    v3 = acc.decode_cost(load_preset("deepseek-v3"), 32_768)
    assert v3.arithmetic_intensity == pytest.approx(2 * 128 * (512 + 64 + 512) / (2 * (512 + 64)), rel=1e-9)
    assert 230 < v3.arithmetic_intensity < 250
    llama = acc.decode_cost(load_preset("llama-3.1-70b"), 32_768)
    assert llama.arithmetic_intensity == pytest.approx(64 / 8)


# ----------------------------------------------------------------------------- reads vs cache


@pytest.mark.parametrize("name", preset_names())
@pytest.mark.parametrize("context", [1, 7, 128, 129, 4097, 100_000, M])
def test_decode_reads_no_more_than_is_cached(name, context):
    """Reads cover the cache (sparse layers read less of it) and the whole fixed-size state."""
    spec = load_preset(name)
    for dtype, layout in (("bf16", "latent"), ("int4", "latent"), ("bf16", "fp8_ds_mla"), ("fp32", "materialised")):
        assert (
            0
            < acc.cache_bytes_read(spec, context, dtype, layout)
            <= acc.kv_cache_bytes(spec, context, 1, dtype, layout) + acc.state_bytes(spec)
        )


def test_dense_models_read_their_whole_cache():
    for name in ("llama-3.1-70b", "mistral-7b", "deepseek-v3"):
        spec = load_preset(name)
        assert acc.cache_bytes_read(spec, 50_000) == acc.kv_cache_bytes(spec, 50_000)


def test_sparse_models_read_less_than_they_cache():
    dsa = load_preset("deepseek-v3.2")
    n = 100_000
    read = acc.cache_bytes_read(dsa, n)
    assert read == 61 * (2048 * (512 + 64) * 2 + n * 128 * 2)
    assert read < acc.kv_cache_bytes(dsa, n)
    pro = load_preset("deepseek-v4-pro")
    assert acc.cache_bytes_read(pro, M) < acc.kv_cache_bytes(pro, M)


# ----------------------------------------------------------------------------- formats


@pytest.mark.parametrize(
    "name, width, expected",
    [
        ("fp32", 128, 512),
        ("bf16", 128, 256),
        ("fp16", 7, 14),
        ("fp8", 128, 128),
        ("int8", 128, 128 + 2 * 2),  # two groups of 64, an fp16 scale each
        ("int8", 64, 64 + 2),
        ("int8", 65, 65 + 2 * 2),  # a partial group still stores its scale
        ("int8", 1, 1 + 2),
        ("int4", 128, 64 + 2 * 4),  # packed two per byte, scale + zero point per group
        ("int4", 512, 256 + 8 * 4),
        ("int4", 3, 2 + 4),  # 12 bits round up to 2 bytes
        ("int4", 100, 50 + 2 * 4),
    ],
)
def test_cache_vector_bytes(name, width, expected):
    assert cache_dtype(name).vector_bytes(width) == expected


def test_bits_per_element_includes_scales():
    assert cache_dtype("int8").bits_per_element == 8.25
    assert cache_dtype("int4").bits_per_element == 4.5
    assert cache_dtype("bf16").bits_per_element == 16
    assert StorageFormat("x", 3, 32, 1).vector_bytes(32) == 12 + 1


def test_quantized_caches_shrink_llama_by_the_expected_factor():
    spec = load_preset("llama-3.1-70b")
    bf16 = acc.kv_cache_bytes(spec, 1000)
    assert acc.kv_cache_bytes(spec, 1000, kv_dtype="int8") == bf16 * (128 + 4) // 256
    assert acc.kv_cache_bytes(spec, 1000, kv_dtype="int4") == bf16 * (64 + 8) // 256
    assert acc.kv_cache_bytes(spec, 1000, kv_dtype="fp32") == 2 * bf16


def test_every_format_has_a_description_and_is_found_by_name():
    for name, fmt in CACHE_DTYPES.items():
        assert fmt.description and cache_dtype(name) is fmt
    for name, fmt in WEIGHT_DTYPES.items():
        assert fmt.description and weight_dtype(name) is fmt


# ----------------------------------------------------------------------------- batch and errors


@pytest.mark.parametrize("name", ["llama-3.1-8b", "gemma-3-27b", "deepseek-v3.2", "deepseek-v4-flash"])
@pytest.mark.parametrize("batch", [1, 2, 3, 64])
def test_batch_scales_bytes_linearly(name, batch):
    spec = load_preset(name)
    for n in (0, 1, 5000, 300_000):
        for dtype in ("bf16", "int4"):
            assert acc.kv_cache_bytes(spec, n, batch, dtype) == batch * acc.kv_cache_bytes(spec, n, 1, dtype)


def test_zero_context_is_an_empty_cache():
    assert acc.kv_cache_bytes(load_preset("deepseek-v4-pro"), 0) == 0
    assert acc.kv_cache_bytes(load_preset("llama-3.1-8b"), 0, 8) == 0


def test_mla_layout_only_changes_mla_layers():
    spec = load_preset("llama-3.1-8b")
    n = 1234
    assert len({acc.kv_cache_bytes(spec, n, layout=lay) for lay in acc.LAYOUTS}) == 1


@pytest.mark.parametrize("context", [-1, 1.5, True, "10", None])
def test_bad_context_raises(context):
    spec = load_preset("llama-3.1-8b")
    with pytest.raises(ValueError, match="context"):
        acc.kv_cache_bytes(spec, context)
    with pytest.raises(ValueError, match="context"):
        acc.decode_cost(spec, context)
    with pytest.raises(ValueError, match="context"):
        acc.cache_bytes_read(spec, context)


@pytest.mark.parametrize("batch", [0, -3, 2.0, False, "4"])
def test_bad_batch_raises(batch):
    with pytest.raises(ValueError, match="batch"):
        acc.kv_cache_bytes(load_preset("llama-3.1-8b"), 10, batch)


@pytest.mark.parametrize("dtype", ["fp12", "BF16", "", "int2"])
def test_bad_dtype_raises(dtype):
    with pytest.raises(ValueError, match="cache dtype"):
        acc.kv_cache_bytes(load_preset("llama-3.1-8b"), 10, 1, dtype)


@pytest.mark.parametrize("layout", ["paged", "", "Latent"])
def test_bad_layout_raises(layout):
    spec = load_preset("deepseek-v3")
    with pytest.raises(ValueError, match="layout"):
        acc.kv_cache_bytes(spec, 10, layout=layout)
    with pytest.raises(ValueError, match="layout"):
        acc.decode_cost(spec, 10, layout=layout)


def test_bad_mode_raises():
    mla = load_preset("deepseek-v3").attention[0]
    with pytest.raises(ValueError, match="mode"):
        acc.pair_flops(mla, "fused")
    with pytest.raises(ValueError, match="mode"):
        acc.decode_cost(load_preset("deepseek-v3"), 10, mode="fused")


def test_unknown_attention_spec_is_a_type_error():
    with pytest.raises(TypeError):
        acc.layer_cache_rows(object(), 10, cache_dtype("bf16"))  # type: ignore[arg-type]


def test_one_layer_model_matches_the_per_layer_rows():
    attn = MLASpec(4, 12, 8, 4, 6)
    spec = one_layer(attn)
    rows = acc.layer_cache_rows(attn, 9, cache_dtype("fp16"))
    assert acc.kv_cache_bytes(spec, 9, 2, "fp16") == 2 * sum(r * b for _t, r, _w, b in rows) == 2 * 9 * 16 * 2


def test_native_weights_match_the_released_checkpoints():
    """As released: V4-Pro's checkpoint holds 805.32 GiB and V4-Flash's safetensors index 159,609,485,896 B,
    both including one MTP module that we do not count; DeepSeek-V3 ships fp8 (~ 1 byte per parameter)."""
    pro = acc.weights_bytes(load_preset("deepseek-v4-pro"), "native") / 2**30
    assert 0.97 * 805.32 < pro < 805.32
    flash = acc.weights_bytes(load_preset("deepseek-v4-flash"), "native")
    assert 0.95 * 159_609_485_896 < flash < 159_609_485_896
    v3 = load_preset("deepseek-v3")
    assert acc.weights_bytes(v3, "native") < 0.51 * acc.weights_bytes(v3, "bf16")
    assert acc.weights_bytes(load_preset("llama-3.1-8b"), "native") == acc.weights_bytes(load_preset("llama-3.1-8b"))


def test_the_released_weights_are_named_by_what_they_are():
    """'native' is not fp8 for DeepSeek-V3 (its embedding and lm_head stay bf16, so it weighs more than all-fp8):
    its label says so; gpt-oss names its mxfp4 experts; a bf16 checkpoint is plain bf16; other options are
    named as they are."""
    from core.model.dtypes import weights_label

    v3 = load_preset("deepseek-v3")
    assert weights_label("native", v3.native_weights) == "released: fp8, bf16 embedding and lm_head"
    assert acc.weights_bytes(v3, "native") > acc.weights_bytes(v3, "fp8")
    assert weights_label("native", load_preset("gpt-oss-120b").native_weights) == "released: bf16, mxfp4 experts"
    assert weights_label("native", load_preset("llama-3.1-8b").native_weights) == "released: bf16"
    assert weights_label("fp8", v3.native_weights) == "fp8"


def test_turboquant_formats_count_bits_and_the_norm():
    from core.model.dtypes import cache_dtype

    assert cache_dtype("tq3.5").vector_bytes(128) == 56 + 2
    assert cache_dtype("tq2.5").vector_bytes(128) == 40 + 2
    llama = load_preset("llama-3.1-8b")
    assert acc.kv_bytes_per_token(llama, "tq3.5") == 32 * 2 * 8 * 58


def test_llama_cpp_block_formats_refuse_partial_blocks():
    """q8_0 / q4_0 store rows in blocks of 32 values with an fp16 scale (34 and 18 bytes per block), so
    8.5 and 4.5 bits per value; int8 with 64-value groups (8.25 bits) is 2.9% smaller than q8_0."""
    q8, q4 = cache_dtype("q8_0"), cache_dtype("q4_0")
    assert (q8.vector_bytes(128), q4.vector_bytes(128)) == (4 * 34, 4 * 18)
    assert (q8.bits_per_element, q4.bits_per_element) == (8.5, 4.5)
    assert 1 - cache_dtype("int8").bits_per_element / q8.bits_per_element == pytest.approx(0.0294, abs=1e-4)
    with pytest.raises(ValueError, match="blocks of 32"):
        q8.vector_bytes(100)


# The one per-layer byte sum (acc.bytes_by_layer) against a direct sum over the layers: uniform, sliding-window,
# chunked, compressed (V4), sparse and hybrid models, with recurrent states and layers without attention.
SUM_PRESETS = (
    "llama-3.1-8b", "mistral-7b", "gemma-3-27b", "gpt-oss-120b", "llama-4-scout", "deepseek-v3", "glm-5.2",
    "deepseek-v4-flash", "minimax-m3", "qwen3-next-80b-a3b", "nemotron-h-56b", "lfm2-350m", "minimax-m1",
    "kimi-linear-48b-a3b",
)  # fmt: skip


def direct_layer_bytes(attn, context: int, kv_dtype: str, layout: str) -> tuple[int, int]:
    """One layer's cache and state, straight from its design's rows."""
    d = design_of(attn)
    rows = d.cache_rows(attn, context, cache_dtype(kv_dtype), layout if layout in d.layouts else "latent")
    return sum(r.rows * r.bytes_per_row for r in rows), sum(r.rows * r.bytes_per_row for r in d.state_rows(attn))


@pytest.mark.parametrize("name", SUM_PRESETS)
def test_bytes_by_layer_is_the_direct_sum_over_layers(name):
    spec = load_preset(name)
    for kv_dtype, layout in (("bf16", "latent"), ("fp8", "fp8_ds_mla"), ("q8_0", "materialised")):
        for context in (0, 1, 100, 4096, 131_072, M):
            direct = [direct_layer_bytes(a, context, kv_dtype, layout) for a in spec.attention]
            cache = acc.bytes_by_layer(spec.attention, context, kv_dtype, layout)
            both = acc.bytes_by_layer(spec.attention, context, kv_dtype, layout, state=True)
            assert cache == [c for c, _ in direct] and both == [c + s for c, s in direct]
            total = sum(c for c, _ in direct)
            assert acc.kv_cache_bytes(spec, context, 3, kv_dtype, layout) == 3 * total
            assert acc.kv_cache(spec, context, 3, kv_dtype, layout).total == 3 * total
        state = acc.bytes_by_layer(spec.attention, cache=False, state=True)
        assert state == [s for _, s in direct]
        assert acc.state_bytes(spec, 2) == acc.state(spec, 2).total == 2 * sum(state)
    assert acc.kv_bytes_per_token(spec) == sum(acc.bytes_by_layer(spec.attention))


def test_bytes_by_layer_checks_the_dtype():
    with pytest.raises(ValueError, match="unknown cache dtype"):
        acc.bytes_by_layer(load_preset("gpt2").attention, 1, "fp7")


def test_the_cache_dtype_legend_prices_every_dtype_with_the_accountings_bytes_and_names_its_scales():
    """cache_dtype_legend has one row per CACHE_DTYPES entry whose bytes are that format's vector_bytes (what the
    cache's rows are multiplied by); every stored scale's words add up to its bytes (fp16 = 2, fp32 = 4): q8_0
    34 B per 32 values = 8.5 bits, q4_1 an fp16 scale + fp16 minimum = 4 B, tq3.5 58 B per 128 values."""
    from core.model.dtypes import cache_dtype_legend

    rows = {r.dtype: r for r in cache_dtype_legend(128)}
    assert list(rows) == list(CACHE_DTYPES)
    for name, f in CACHE_DTYPES.items():
        assert rows[name].vector_bytes == f.vector_bytes(128)
        assert rows[name].bits_per_value == 8 * f.vector_bytes(128) / 128
        stored = f.scale_bytes or f.vector_extra_bytes
        if stored:
            assert 2 * f.scales.count("fp16") + 4 * f.scales.count("fp32") == stored, name
    assert (rows["q8_0"].bits_per_value, rows["q8_0"].block) == (8.5, "32 values")
    assert rows["q4_1"].scale_format == "fp16 scale + fp16 minimum (4 B)"
    assert (rows["tq3.5"].vector_bytes, rows["tq3.5"].bits_per_value) == (58, 3.625)
    assert rows["bf16"].scale_format == "none" and rows["fp8"].block == "none"
