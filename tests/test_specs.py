"""Spec validation and labels (core/specs.py).

Proves that every attention, MLP and model spec refuses bad values (wrong types, bools, zero or
negative sizes, inconsistent head counts) with a ValueError whose message names the field, that valid
specs get the right design and layer-kind labels (MHA/GQA/MQA, sliding, MLA, DSA, V4 CSA/HCA/SWA), and
that ModelSpec.layer_kinds / ModelSpec.design summarise per-layer attention in order of appearance.
"""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.model.specs import (
    MAX_VOCAB,
    CompressedSpec,
    DenseMLP,
    DSASpec,
    GQASpec,
    MLASpec,
    ModelSpec,
    MoEMLP,
)

MLA = dict(n_heads=4, kv_lora_rank=32, qk_nope_head_dim=16, qk_rope_head_dim=8, v_head_dim=16)
DSA = dict(MLA, index_n_heads=2, index_head_dim=8, index_topk=16)
V4 = dict(n_heads=8, head_dim=64, qk_rope_head_dim=16, compress_ratio=4, sliding_window=128, o_groups=2)
V4_INDEX = dict(index_n_heads=4, index_head_dim=32, index_topk=64)


def model(attention, name: str = "m") -> ModelSpec:
    return ModelSpec(
        name=name,
        model_type="test",
        hidden_size=64,
        vocab_size=100,
        attention=tuple(attention),
        mlp=tuple(DenseMLP(128) for _ in attention),
    )


# ----------------------------------------------------------------------------- GQA


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(n_heads=12, n_kv_heads=5, head_dim=64), "n_kv_heads"),
        (dict(n_heads=0, n_kv_heads=1, head_dim=64), "n_heads"),
        (dict(n_heads=-8, n_kv_heads=1, head_dim=64), "n_heads"),
        (dict(n_heads=8, n_kv_heads=0, head_dim=64), "n_kv_heads"),
        (dict(n_heads=8, n_kv_heads=-2, head_dim=64), "n_kv_heads"),
        (dict(n_heads=8, n_kv_heads=16, head_dim=64), "n_kv_heads"),
        (dict(n_heads=8, n_kv_heads=8, head_dim=0), "head_dim"),
        (dict(n_heads=8, n_kv_heads=8, head_dim=-64), "head_dim"),
        (dict(n_heads=8, n_kv_heads=8, head_dim=64.0), "head_dim"),
        (dict(n_heads="8", n_kv_heads=8, head_dim=64), "n_heads"),
        (dict(n_heads=True, n_kv_heads=1, head_dim=64), "n_heads"),
        (dict(n_heads=8, n_kv_heads=True, head_dim=64), "n_kv_heads"),
        (dict(n_heads=8, n_kv_heads=8, head_dim=True), "head_dim"),
        (dict(n_heads=8, n_kv_heads=8, head_dim=64, sliding_window=0), "sliding_window"),
        (dict(n_heads=8, n_kv_heads=8, head_dim=64, sliding_window=-1), "sliding_window"),
        (dict(n_heads=8, n_kv_heads=8, head_dim=64, sliding_window=True), "sliding_window"),
        (dict(n_heads=8, n_kv_heads=8, head_dim=64, sliding_window=1.5), "sliding_window"),
        (dict(n_heads=1 << 20, n_kv_heads=1, head_dim=64), "n_heads"),
    ],
)
def test_gqa_rejects_bad_values_naming_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        GQASpec(**kwargs)


def test_gqa_divisibility_message_gives_both_numbers():
    with pytest.raises(ValueError) as e:
        GQASpec(n_heads=12, n_kv_heads=5, head_dim=64)
    msg = str(e.value)
    assert "n_heads (12)" in msg and "n_kv_heads (5)" in msg and "multiple" in msg


@pytest.mark.parametrize(
    "n_heads, n_kv, window, design, kind",
    [
        (32, 32, None, "MHA", "MHA"),
        (32, 8, None, "GQA", "GQA"),
        (32, 1, None, "MQA", "MQA"),
        (32, 8, 4096, "GQA", "GQA sliding"),
        (16, 16, 512, "MHA", "MHA sliding"),
        (8, 1, 128, "MQA", "MQA sliding"),
        (1, 1, None, "MHA", "MHA"),  # one head is MHA (n_kv = n_h), not MQA
    ],
)
def test_gqa_design_and_kind(n_heads, n_kv, window, design, kind):
    spec = GQASpec(n_heads, n_kv, 64, window)
    assert spec.design == design
    assert spec.kind == kind
    assert spec.group_size == n_heads // n_kv


def test_specs_are_frozen():
    spec = GQASpec(8, 2, 64)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.n_heads = 4  # type: ignore[misc]


@settings(max_examples=40, deadline=None)
@given(
    n_heads=st.integers(-3, 70),
    n_kv=st.integers(-3, 70),
    head_dim=st.one_of(st.integers(-3, 300), st.booleans(), st.floats(1, 10), st.none()),
)
def test_gqa_either_valid_or_value_error(n_heads, n_kv, head_dim):
    """Any combination is accepted exactly when it is consistent; otherwise ValueError, never another.
    An odd head_dim may go either way (RoPE needs pairs; a spec may refuse it up front)."""
    valid = (
        n_heads >= 1
        and n_kv >= 1
        and n_heads % n_kv == 0
        and isinstance(head_dim, int)
        and not isinstance(head_dim, bool)
        and head_dim >= 1
    )
    if valid and head_dim % 2:
        try:
            GQASpec(n_heads, n_kv, head_dim)
        except ValueError as e:
            assert "head_dim" in str(e)
    elif valid:
        spec = GQASpec(n_heads, n_kv, head_dim)
        assert spec.group_size * spec.n_kv_heads == spec.n_heads
    else:
        with pytest.raises(ValueError):
            GQASpec(n_heads, n_kv, head_dim)


# ----------------------------------------------------------------------------- MLA / DSA


@pytest.mark.parametrize(
    "change, field",
    [
        (dict(n_heads=0), "n_heads"),
        (dict(kv_lora_rank=0), "kv_lora_rank"),
        (dict(kv_lora_rank=-512), "kv_lora_rank"),
        (dict(kv_lora_rank=True), "kv_lora_rank"),
        (dict(kv_lora_rank=512.0), "kv_lora_rank"),
        (dict(qk_nope_head_dim=-1), "qk_nope_head_dim"),
        (dict(qk_rope_head_dim=-2), "qk_rope_head_dim"),
        (dict(qk_rope_head_dim=7), "qk_rope_head_dim"),  # RoPE rotates pairs
        (dict(v_head_dim=0), "v_head_dim"),
        (dict(q_lora_rank=0), "q_lora_rank"),
        (dict(q_lora_rank=False), "q_lora_rank"),
        (dict(qk_nope_head_dim=0, qk_rope_head_dim=0), "qk_nope_head_dim"),
    ],
)
def test_mla_rejects_bad_values_naming_the_field(change, field):
    with pytest.raises(ValueError, match=field):
        MLASpec(**{**MLA, **change})


@pytest.mark.parametrize(
    "change, field",
    [
        (dict(index_n_heads=0), "index_n_heads"),
        (dict(index_head_dim=-128), "index_head_dim"),
        (dict(index_topk=0), "index_topk"),
        (dict(index_topk=True), "index_topk"),
        (dict(kv_lora_rank=0), "kv_lora_rank"),  # the MLA part is validated too
    ],
)
def test_dsa_rejects_bad_values_naming_the_field(change, field):
    with pytest.raises(ValueError, match=field):
        DSASpec(**{**DSA, **change})


def test_mla_and_dsa_labels_and_derived_sizes():
    mla, dsa = MLASpec(**MLA), DSASpec(**DSA)
    assert (mla.design, mla.kind) == ("MLA", "MLA")
    assert (dsa.design, dsa.kind) == ("DSA", "DSA")
    assert mla.qk_head_dim == 16 + 8
    assert isinstance(dsa, MLASpec)  # DSA is MLA plus an indexer
    assert MLASpec(**{**MLA, "qk_nope_head_dim": 0}).qk_head_dim == 8  # rope-only keys are allowed
    assert MLASpec(**{**MLA, "qk_rope_head_dim": 0}).qk_head_dim == 16  # so are rope-free ones


# ----------------------------------------------------------------------------- V4 compressed


@pytest.mark.parametrize(
    "ratio, kind",
    [(4, "CSA"), (128, "HCA"), (0, "SWA"), (16, "HCA")],
)
def test_compressed_kind_and_design(ratio, kind):
    index = V4_INDEX if ratio == 4 else {}
    spec = CompressedSpec(**{**V4, "compress_ratio": ratio, **index})
    assert spec.kind == kind
    assert spec.design == f"V4 {kind}"
    assert spec.indexed == (ratio == 4)


@pytest.mark.parametrize(
    "change, field",
    [
        (dict(n_heads=0), "n_heads"),
        (dict(head_dim=0), "head_dim"),
        (dict(qk_rope_head_dim=65), "qk_rope_head_dim"),  # more rope channels than the head has
        (dict(qk_rope_head_dim=-1), "qk_rope_head_dim"),
        (dict(compress_ratio=-4), "compress_ratio"),
        (dict(compress_ratio=True), "compress_ratio"),
        (dict(sliding_window=0), "sliding_window"),
        (dict(o_groups=3), "o_groups"),  # 8 heads are not a multiple of 3 groups
        (dict(o_groups=0), "o_groups"),
        (dict(q_lora_rank=0), "q_lora_rank"),
        (dict(o_lora_rank=-1), "o_lora_rank"),
    ],
)
def test_compressed_rejects_bad_values_naming_the_field(change, field):
    with pytest.raises(ValueError, match=field):
        CompressedSpec(**{**V4, **V4_INDEX, **change})


@pytest.mark.parametrize("field", ["index_n_heads", "index_head_dim", "index_topk"])
def test_csa_layer_needs_its_indexer(field):
    with pytest.raises(ValueError, match=field):
        CompressedSpec(**{**V4, **V4_INDEX, field: 0})


def test_hca_and_swa_layers_need_no_indexer():
    assert not CompressedSpec(**{**V4, "compress_ratio": 128}).indexed
    assert not CompressedSpec(**{**V4, "compress_ratio": 0}).indexed


# ----------------------------------------------------------------------------- MLPs


@pytest.mark.parametrize(
    "build, field",
    [
        (lambda: DenseMLP(0), "intermediate_size"),
        (lambda: DenseMLP(-1), "intermediate_size"),
        (lambda: DenseMLP(True), "intermediate_size"),
        (lambda: MoEMLP(0, 1, 64), "n_routed_experts"),
        (lambda: MoEMLP(8, 9, 64), "num_experts_per_tok"),
        (lambda: MoEMLP(8, 0, 64), "num_experts_per_tok"),
        (lambda: MoEMLP(8, 2, 0), "moe_intermediate_size"),
        (lambda: MoEMLP(8, 2, 64, n_shared=-1), "n_shared_experts"),
        (lambda: MoEMLP(8, 2, 64, n_shared=1, shared_intermediate_size=0), "shared expert"),
    ],
)
def test_mlp_rejects_bad_values_naming_the_field(build, field):
    with pytest.raises(ValueError, match=field):
        build()


# ----------------------------------------------------------------------------- models


@pytest.mark.parametrize(
    "change, field",
    [
        (dict(hidden_size=0), "hidden_size"),
        (dict(hidden_size=-4096), "hidden_size"),
        (dict(hidden_size=True), "hidden_size"),
        (dict(vocab_size=0), "vocab_size"),
        (dict(vocab_size=MAX_VOCAB + 1), "vocab_size"),
        (dict(attention=(), mlp=()), "num_hidden_layers"),
    ],
)
def test_model_rejects_bad_values_naming_the_field(change, field):
    base = dict(
        name="m",
        model_type="t",
        hidden_size=64,
        vocab_size=100,
        attention=(GQASpec(4, 2, 16),),
        mlp=(DenseMLP(128),),
    )
    with pytest.raises(ValueError, match=field):
        ModelSpec(**{**base, **change})


def test_model_needs_one_mlp_per_layer():
    with pytest.raises(ValueError, match="MLP"):
        ModelSpec("m", "t", 64, 100, (GQASpec(4, 2, 16),) * 2, (DenseMLP(128),))


def test_uniform_model_design_is_one_word():
    m = model([GQASpec(64, 8, 128)] * 80)
    assert m.n_layers == 80
    assert m.layer_kinds == {"GQA": 80}
    assert m.design == "GQA"
    assert model([MLASpec(**MLA)] * 3).design == "MLA"


def test_hybrid_model_design_lists_kinds_in_order_of_first_appearance():
    swa = CompressedSpec(**{**V4, "compress_ratio": 0})
    csa = CompressedSpec(**{**V4, **V4_INDEX})
    hca = CompressedSpec(**{**V4, "compress_ratio": 128})
    layers = [swa, swa] + [csa, hca] * 20 + [csa]  # the V4-Flash pattern: 2 SWA + 21 CSA + 20 HCA
    m = model(layers)
    assert m.layer_kinds == {"SWA": 2, "CSA": 21, "HCA": 20}
    assert list(m.layer_kinds) == ["SWA", "CSA", "HCA"]
    assert m.design == "2 SWA + 21 CSA + 20 HCA"


def test_sliding_and_global_layers_are_different_kinds():
    local, glob = GQASpec(32, 16, 128, 1024), GQASpec(32, 16, 128)
    m = model(([local] * 5 + [glob]) * 2)
    assert m.layer_kinds == {"GQA sliding": 10, "GQA": 2}
    assert m.design == "10 GQA sliding + 2 GQA"
