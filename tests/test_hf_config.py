"""Parsing real Hugging Face config.json files into ModelSpecs (core/hf_config.py, core/presets.py).

Proves that every shipped config in assets/configs parses, that the parser reads the facts that matter
from each family (GQA shapes, sliding-window patterns from `sliding_window`, `layer_types` and
`sliding_window_pattern`, `text_config` nesting, MLA/DSA/V4 fields, the ignored MLA
`num_key_value_heads`), that bad files and bad fields raise ValueError with a message naming the
problem, and (by fuzzing real configs with hypothesis) that no input makes the parser raise anything
other than ValueError.
"""

from __future__ import annotations

import copy
import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.accounting import totals as acc
from core.model.hf_config import MAX_CONFIG_BYTES, from_hf_config, load_config_file, load_config_text
from core.model.presets import CONFIG_DIR, load_preset, preset_names, resolve
from core.model.specs import CompressedSpec, DSASpec, GQASpec, MLASpec, ModelSpec


def raw(name: str) -> dict:
    return json.loads((CONFIG_DIR / f"{name}.json").read_text())


# ----------------------------------------------------------------------------- every shipped file


def test_the_presets_the_app_relies_on_are_shipped():
    names = set(preset_names())
    expected = {
        "llama-3.1-8b",
        "llama-3.1-70b",
        "mistral-7b",
        "gemma-3-27b",
        "gpt-oss-120b",
        "gpt2",
        "deepseek-v2-lite",
        "deepseek-v3",
        "deepseek-v3.2",
        "deepseek-v4-pro",
        "deepseek-v4-flash",
        "kimi-k2",
    }
    assert expected <= names


@pytest.mark.parametrize("name", preset_names())
def test_every_shipped_config_parses(name):
    spec = load_preset(name)
    assert isinstance(spec, ModelSpec)
    assert spec.name == name
    assert spec.n_layers == len(spec.attention) == len(spec.mlp) >= 1
    assert sum(spec.layer_kinds.values()) == spec.n_layers
    # The same file through the text path gives the same spec.
    text = (CONFIG_DIR / f"{name}.json").read_text()
    assert from_hf_config(load_config_text(text), name=name) == spec
    # And the numbers the app shows can be computed for it.
    assert acc.kv_cache_bytes(spec, 4096) > 0
    assert acc.param_count(spec).total > acc.param_count(spec).embedding > 0


@pytest.mark.parametrize("name", preset_names())
def test_preset_names_are_lower_case_and_resolve(name):
    assert name == name.lower()
    assert resolve(name) == load_preset(name)
    assert resolve(name.upper()) == load_preset(name)


# ----------------------------------------------------------------------------- family facts


def test_llama_3_1_8b_is_32_gqa_layers_of_8_kv_heads_by_128():
    m = load_preset("llama-3.1-8b")
    assert m.model_type == "llama"
    assert m.n_layers == 32
    assert m.design == "GQA"
    assert set(m.attention) == {GQASpec(32, 8, 128)}
    assert m.hidden_size == 4096 and m.vocab_size == 128256


def test_llama_3_1_70b_is_80_gqa_layers():
    m = load_preset("llama-3.1-70b")
    assert m.layer_kinds == {"GQA": 80}
    assert set(m.attention) == {GQASpec(64, 8, 128)}


def test_mistral_7b_every_layer_slides_over_4096():
    m = load_preset("mistral-7b")
    assert m.n_layers == 32
    assert m.layer_kinds == {"GQA sliding": 32}
    assert all(a.sliding_window == 4096 and a.n_kv_heads == 8 for a in m.attention)


def test_gemma_3_27b_reads_text_config_and_the_5_to_1_pattern():
    assert "text_config" in raw("gemma-3-27b")  # the multimodal nesting is really there
    m = load_preset("gemma-3-27b")
    assert m.model_type == "gemma3_text"
    assert m.n_layers == 62
    assert m.layer_kinds == {"GQA sliding": 52, "GQA": 10}
    windows = [a.sliding_window for a in m.attention]
    # Every 6th layer is global (transformers Gemma3TextConfig default sliding_window_pattern 6).
    assert windows == [None if (i + 1) % 6 == 0 else 1024 for i in range(62)]
    assert m.hidden_size == 5376  # from text_config, not the vision tower's 1152
    assert set(a.head_dim for a in m.attention) == {128}


def test_gpt_oss_120b_alternates_128_token_windows_with_full_layers():
    m = load_preset("gpt-oss-120b")
    assert m.layer_kinds == {"GQA sliding": 18, "GQA": 18}
    assert [a.sliding_window for a in m.attention] == [128, None] * 18
    assert all(a.qkv_bias and a.o_bias for a in m.attention)  # attention_bias: true


def test_gpt2_is_mha_12_heads_of_64_from_its_own_field_names():
    m = load_preset("gpt2")
    assert m.model_type == "gpt2"
    assert m.n_layers == 12
    assert m.design == "MHA"
    assert set(m.attention) == {GQASpec(12, 12, 64, None, True, True)}
    assert dict(m.extra_params)["position embeddings"] == 1024 * 768
    assert m.tie_word_embeddings


def test_deepseek_v3_is_mla_512_plus_64_and_ignores_num_key_value_heads():
    assert raw("deepseek-v3")["num_key_value_heads"] == 128
    m = load_preset("deepseek-v3")
    assert m.layer_kinds == {"MLA": 61}
    a = m.attention[0]
    assert type(a) is MLASpec
    assert (a.kv_lora_rank, a.qk_rope_head_dim) == (512, 64)
    assert (a.n_heads, a.qk_nope_head_dim, a.v_head_dim, a.q_lora_rank) == (128, 128, 128, 1536)
    assert any("num_key_value_heads (128) is ignored" in n for n in m.notes)
    assert m.n_mtp_layers == 1


def test_deepseek_v2_lite_has_a_full_rank_query():
    a = load_preset("deepseek-v2-lite").attention[0]
    assert type(a) is MLASpec
    assert a.q_lora_rank is None and a.kv_lora_rank == 512 and a.n_heads == 16


def test_deepseek_v3_2_is_dsa_with_top_2048():
    m = load_preset("deepseek-v3.2")
    assert m.layer_kinds == {"DSA": 61}
    a = m.attention[0]
    assert isinstance(a, DSASpec)
    assert (a.index_topk, a.index_n_heads, a.index_head_dim) == (2048, 64, 128)
    assert (a.kv_lora_rank, a.qk_rope_head_dim) == (512, 64)


def test_deepseek_v4_pro_is_30_csa_and_31_hca_layers():
    m = load_preset("deepseek-v4-pro")
    assert m.n_layers == 61
    assert m.layer_kinds == {"HCA": 31, "CSA": 30}
    assert all(isinstance(a, CompressedSpec) for a in m.attention)
    assert all(a.head_dim == 512 and a.sliding_window == 128 for a in m.attention)
    # The first num_hidden_layers entries of compress_ratios, not the MTP tail.
    ratios = raw("deepseek-v4-pro")["compress_ratios"]
    assert len(ratios) > m.n_layers
    assert [a.compress_ratio for a in m.attention] == ratios[:61]
    assert dict(m.extra_params)["hyper-connections"] > 0


def test_deepseek_v4_flash_is_2_swa_21_csa_20_hca_layers():
    m = load_preset("deepseek-v4-flash")
    assert m.layer_kinds == {"SWA": 2, "CSA": 21, "HCA": 20}
    assert m.design == "2 SWA + 21 CSA + 20 HCA"
    csa = [a for a in m.attention if a.kind == "CSA"]
    assert {(a.index_topk, a.index_n_heads, a.index_head_dim) for a in csa} == {(512, 64, 128)}


def test_kimi_k2_reuses_deepseek_v3_mla():
    m = load_preset("kimi-k2")
    assert m.layer_kinds == {"MLA": 61}
    a = m.attention[0]
    assert (a.n_heads, a.kv_lora_rank, a.qk_rope_head_dim) == (64, 512, 64)


def test_qwen2_5_sliding_window_is_off_unless_asked():
    cfg = raw("qwen2.5-7b")
    assert cfg["use_sliding_window"] is False and cfg["sliding_window"]
    assert load_preset("qwen2.5-7b").layer_kinds == {"GQA": 28}
    cfg.update(use_sliding_window=True, max_window_layers=20, sliding_window=4096)
    assert from_hf_config(cfg).layer_kinds == {"GQA": 20, "GQA sliding": 8}


def test_unknown_family_with_llama_fields_parses():
    """A model_type no family claims is read by the generic reader when every key is read by it or harmless."""
    cfg = raw("llama-3.1-8b")
    cfg["model_type"] = "my_new_arch"
    cfg["architectures"] = ["MyNewArchForCausalLM"]
    m = from_hf_config(cfg)
    assert m.model_type == "my_new_arch"
    assert m.attention == load_preset("llama-3.1-8b").attention


def test_unknown_family_with_an_unknown_key_is_refused_naming_it():
    """The same file with one key nobody reads is refused: the key might lay the cache out otherwise."""
    cfg = raw("llama-3.1-8b") | {"model_type": "my_new_arch", "some_new_field": {"nested": [1, 2, 3]}}
    with pytest.raises(ValueError, match=r"\('my_new_arch'\) is not supported: its config has some_new_field,"):
        from_hf_config(cfg)


def test_missing_model_type_still_parses_standard_fields():
    cfg = {
        "hidden_size": 256,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "intermediate_size": 512,
        "vocab_size": 1000,
    }
    m = from_hf_config(cfg)
    assert m.model_type == "unknown"
    assert set(m.attention) == {GQASpec(4, 4, 64)}  # head_dim = hidden / heads, MHA by default


def test_head_dim_may_differ_from_hidden_over_heads():
    cfg = raw("llama-3.1-8b") | {"head_dim": 256}
    assert from_hf_config(cfg).attention[0].head_dim == 256


def test_float_whole_numbers_are_accepted():
    cfg = raw("llama-3.1-8b") | {"num_hidden_layers": 32.0, "hidden_size": 4096.0}
    assert from_hf_config(cfg) == from_hf_config(raw("llama-3.1-8b"))


def test_load_config_file_reads_a_path(tmp_path):
    p = tmp_path / "config.json"
    p.write_text(json.dumps(raw("mistral-7b")))
    assert from_hf_config(load_config_file(p)).layer_kinds == {"GQA sliding": 32}


# ----------------------------------------------------------------------------- bad files


@pytest.mark.parametrize(
    "text, words",
    [
        ("{not json", "not valid JSON"),
        ("", "is empty"),
        ("  \n", "is empty"),
        ('{"a": 1,}', "not valid JSON"),
        ("[1, 2, 3]", "JSON object"),
        ('"a string"', "JSON object"),
        ("42", "JSON object"),
        ("null", "JSON object"),
        (b"\xff\xfe\x00garbage", "not valid JSON"),
    ],
)
def test_load_config_text_refuses_non_objects(text, words):
    with pytest.raises(ValueError, match=words) as e:
        load_config_text(text, source="upload.json")
    assert "upload.json" in str(e.value)


def test_load_config_text_reports_line_and_column():
    with pytest.raises(ValueError, match=r"line 3, column"):
        load_config_text('{\n  "a": 1,\n  oops\n}')


def test_load_config_text_refuses_more_than_1_mib():
    big = '{"pad": "' + "x" * MAX_CONFIG_BYTES + '"}'
    with pytest.raises(ValueError, match="1 MiB"):
        load_config_text(big)
    with pytest.raises(ValueError, match="1 MiB"):
        load_config_text(big.encode())


def test_load_config_file_refuses_missing_and_directories(tmp_path):
    with pytest.raises(ValueError, match="no such file"):
        load_config_file(tmp_path / "absent.json")
    with pytest.raises(ValueError, match="is a folder"):
        load_config_file(tmp_path)


def test_from_hf_config_refuses_non_dicts():
    with pytest.raises(ValueError, match="JSON object"):
        from_hf_config([1, 2])  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- bad fields


def _without(cfg: dict, key: str) -> dict:
    return {k: v for k, v in cfg.items() if k != key}


@pytest.mark.parametrize(
    "base, change, field",
    [
        ("llama-3.1-8b", dict(num_hidden_layers=1e12), "num_hidden_layers"),
        ("llama-3.1-8b", dict(num_hidden_layers=0), "num_hidden_layers"),
        ("llama-3.1-8b", dict(num_hidden_layers=-32), "num_hidden_layers"),
        ("llama-3.1-8b", dict(num_hidden_layers=32.5), "num_hidden_layers"),
        ("llama-3.1-8b", dict(num_hidden_layers="32"), "num_hidden_layers"),
        ("llama-3.1-8b", dict(num_hidden_layers=True), "num_hidden_layers"),
        ("llama-3.1-8b", dict(hidden_size="4096"), "hidden_size"),
        ("llama-3.1-8b", dict(hidden_size=0), "hidden_size"),
        ("llama-3.1-8b", dict(hidden_size=-4096), "hidden_size"),
        ("llama-3.1-8b", dict(hidden_size=[4096]), "hidden_size"),
        ("llama-3.1-8b", dict(hidden_size=float("nan")), "hidden_size"),
        ("llama-3.1-8b", dict(hidden_size=float("inf")), "hidden_size"),
        ("llama-3.1-8b", dict(num_attention_heads=0), "num_attention_heads"),
        ("llama-3.1-8b", dict(num_attention_heads="32"), "num_attention_heads"),
        ("llama-3.1-8b", dict(num_key_value_heads=5), "num_key_value_heads"),
        ("llama-3.1-8b", dict(num_key_value_heads=-8), "num_key_value_heads"),
        ("llama-3.1-8b", dict(num_attention_heads=31), "num_attention_heads"),  # 4096 % 31, no head_dim
        ("llama-3.1-8b", dict(head_dim=0), "head_dim"),
        ("llama-3.1-8b", dict(vocab_size=10**12), "vocab_size"),
        ("llama-3.1-8b", dict(vocab_size=0), "vocab_size"),
        ("llama-3.1-8b", dict(intermediate_size=-1), "intermediate_size"),
        ("llama-3.1-8b", dict(tie_word_embeddings="yes"), "tie_word_embeddings"),
        ("llama-3.1-8b", dict(model_type=7), "model_type"),
        ("mistral-7b", dict(sliding_window=0), "sliding_window"),
        ("mistral-7b", dict(sliding_window="4096"), "sliding_window"),
        ("gpt-oss-120b", dict(layer_types=["sliding_attention"] * 3), "layer_types"),
        ("gpt-oss-120b", dict(layer_types="sliding"), "layer_types"),
        ("gpt-oss-120b", dict(sliding_window=None), "sliding_window"),
        ("gemma-3-27b", dict(text_config="nope"), "text_config"),
        ("deepseek-v3", dict(kv_lora_rank=0), "kv_lora_rank"),
        ("deepseek-v3", dict(kv_lora_rank=-512), "kv_lora_rank"),
        ("deepseek-v3", dict(qk_rope_head_dim=63), "qk_rope_head_dim"),
        ("deepseek-v3", dict(q_lora_rank="1536"), "q_lora_rank"),
        ("deepseek-v3", dict(n_routed_experts=0), "n_routed_experts"),
        ("deepseek-v3", dict(num_experts_per_tok=1000), "num_experts_per_tok"),
        ("deepseek-v3.2", dict(index_topk=0), "index_topk"),
        ("deepseek-v3.2", dict(index_n_heads=-64), "index_n_heads"),
        ("deepseek-v4-pro", dict(compress_ratios=[4, 128]), "compress_ratios"),
        ("deepseek-v4-pro", dict(compress_ratios="4,128"), "compress_ratios"),
        ("deepseek-v4-pro", dict(compress_ratios=[4, -1] * 40), "compress_ratios"),
        ("deepseek-v4-pro", dict(compress_ratios=[4, "x"] * 40), "compress_ratios"),
        ("deepseek-v4-pro", dict(index_topk=0), "index_topk"),
        ("deepseek-v4-pro", dict(o_groups=7), "o_groups"),
        ("deepseek-v4-pro", dict(hc_mult=0), "hc_mult"),
    ],
)
def test_bad_field_raises_value_error_naming_it(base, change, field):
    cfg = raw(base)
    if base == "gemma-3-27b" and "text_config" not in change:
        cfg["text_config"].update(change)
    else:
        cfg.update({k: v for k, v in change.items() if v is not None})
        for k, v in change.items():
            if v is None:
                cfg.pop(k, None)
    with pytest.raises(ValueError, match=field):
        from_hf_config(cfg)


@pytest.mark.parametrize(
    "base, field",
    [
        ("llama-3.1-8b", "hidden_size"),
        ("llama-3.1-8b", "num_hidden_layers"),
        ("llama-3.1-8b", "num_attention_heads"),
        ("deepseek-v3", "qk_nope_head_dim"),
        ("deepseek-v3", "v_head_dim"),
        ("deepseek-v3.2", "index_head_dim"),
        ("deepseek-v4-pro", "head_dim"),
        ("deepseek-v4-pro", "compress_ratios"),
        ("deepseek-v4-pro", "sliding_window"),
    ],
)
def test_missing_required_field_raises_value_error_naming_it(base, field):
    with pytest.raises(ValueError, match=field):
        from_hf_config(_without(raw(base), field))


@pytest.mark.parametrize("fields", [("vocab_size",), ("intermediate_size",), ("vocab_size", "intermediate_size")])
def test_kv_only_configs_give_the_cache_and_say_parameters_are_unknown(fields):
    """Configs with only what the cache needs (as other calculators' fixtures are) are not refused: the KV
    figures are exact and the parameter count raises ParamsUnknown naming the missing fields."""
    full = from_hf_config(raw("llama-3.1-8b"))
    cfg = raw("llama-3.1-8b")
    for f in fields:
        cfg = _without(cfg, f)
    m = from_hf_config(cfg)
    assert m.params_unknown == fields
    assert acc.kv_cache_bytes(m, 1000) == acc.kv_cache_bytes(full, 1000) == 1000 * 131_072
    with pytest.raises(acc.ParamsUnknown, match=" and ".join(fields).replace(" and ", ", ")):
        acc.param_count(m)
    assert acc.decode_cost(m, 1000).model_flops is None
    assert any("parameters unknown" in n for n in m.notes)


def test_heads_not_divisible_message_gives_both_numbers():
    with pytest.raises(ValueError) as e:
        from_hf_config(raw("llama-3.1-8b") | {"num_key_value_heads": 5})
    assert "num_attention_heads (32)" in str(e.value) and "num_key_value_heads (5)" in str(e.value)


def test_absurd_layer_count_is_refused_before_any_work():
    with pytest.raises(ValueError, match="num_hidden_layers") as e:
        from_hf_config(raw("deepseek-v3") | {"num_hidden_layers": 1e12})
    assert "1,000,000,000,000" in str(e.value)


# ----------------------------------------------------------------------------- fuzzing

FUZZ_BASES = ["llama-3.1-8b", "gemma-3-27b", "gpt-oss-120b", "deepseek-v3.2", "deepseek-v4-flash", "gpt2"]
FUZZ_BASES += ["minimax-m1", "minimax-m3", "lfm2-350m", "glm-5.2", "nemotron-3-ultra-550b-a55b", "exaone-4.0-32b"]
FIELDS = [
    "model_type",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "vocab_size",
    "intermediate_size",
    "sliding_window",
    "sliding_window_pattern",
    "layer_types",
    "use_sliding_window",
    "max_window_layers",
    "tie_word_embeddings",
    "attention_bias",
    "text_config",
    "kv_lora_rank",
    "q_lora_rank",
    "qk_nope_head_dim",
    "qk_rope_head_dim",
    "v_head_dim",
    "index_topk",
    "index_n_heads",
    "index_head_dim",
    "compress_ratios",
    "o_groups",
    "o_lora_rank",
    "hc_mult",
    "n_routed_experts",
    "num_experts_per_tok",
    "experts_per_token",
    "moe_intermediate_size",
    "n_shared_experts",
    "first_k_dense_replace",
    "moe_layer_freq",
    "num_experts",
    "num_local_experts",
    "decoder_sparse_step",
    "mlp_only_layers",
    "shared_expert_intermediate_size",
    "num_nextn_predict_layers",
    "n_positions",
    "n_embd",
    "n_layer",
    "n_head",
    "n_inner",
    # the families of the config-allowlist issue
    "attn_type_list",
    "full_attn_idxs",
    "conv_L_cache",
    "conv_dim",
    "block_ff_dim",
    "block_auto_adjust_ff_dim",
    "block_ffn_dim_multiplier",
    "block_multiple_of",
    "layers_block_type",
    "indexer_types",
    "index_topk_freq",
    "index_skip_topk_offset",
    "index_topk_pattern",
    "mlp_layer_types",
    "moe_latent_size",
    "sparse_attention_config",
    "dense_intermediate_size",
    "shared_intermediate_size",
    "mamba_num_heads",
    "ssm_state_size",
]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.integers(-2, 300),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, 1.0, 4.0, 64.0, 4096.0, 1e12, -1.0, 2.5]),
    st.text(max_size=8),
    st.sampled_from(["sliding_attention", "full_attention", "local", "deepseek_v4", "gemma2", "gpt2"]),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=6),
        st.dictionaries(st.sampled_from(FIELDS + ["x"]), inner, max_size=4),
    ),
    max_leaves=12,
)
mutation = st.tuples(st.sampled_from(FIELDS), st.one_of(json_values, st.just("<delete>")))


def _mutate(cfg: dict, edits: list) -> dict:
    cfg = copy.deepcopy(cfg)
    target = cfg["text_config"] if "text_config" in cfg else cfg
    for key, value in edits:
        if value == "<delete>":
            target.pop(key, None)
        else:
            target[key] = value
    return cfg


def _parse_or_value_error(cfg: dict) -> ModelSpec | None:
    try:
        spec = from_hf_config(cfg)
    except ValueError as e:
        assert str(e), "a ValueError needs a message"
        return None
    # What parses must also be usable by the accounting.
    assert acc.kv_cache_bytes(spec, 1000) >= 0
    assert spec.params_unknown or acc.param_count(spec).total > 0
    assert acc.decode_cost(spec, 1000).attention_core_flops >= 0
    return spec


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(base=st.sampled_from(FUZZ_BASES), edits=st.lists(mutation, min_size=1, max_size=3))
def test_fuzzed_fields_parse_or_raise_value_error(base, edits):
    _parse_or_value_error(_mutate(raw(base), edits))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(base=st.sampled_from(FUZZ_BASES), edits=st.lists(mutation, min_size=1, max_size=3))
def test_fuzzed_text_parses_or_raises_value_error(base, edits):
    cfg = _mutate(raw(base), edits)
    try:
        text = json.dumps(cfg)  # NaN/Infinity become the non-standard tokens Python's json accepts
    except ValueError:
        return
    try:
        parsed = load_config_text(text)
    except ValueError:
        return
    _parse_or_value_error(parsed)


@settings(max_examples=30, deadline=None)
@given(value=json_values)
def test_fuzzed_whole_config_parses_or_raises_value_error(value):
    if isinstance(value, dict):
        _parse_or_value_error(value)
    else:
        with pytest.raises(ValueError):
            from_hf_config(value)  # type: ignore[arg-type]


@settings(max_examples=25, deadline=None)
@given(data=st.binary(max_size=64))
def test_fuzzed_bytes_load_or_raise_value_error(data):
    try:
        cfg = load_config_text(data)
    except ValueError:
        return
    assert isinstance(cfg, dict)


def test_fuzz_helpers_really_mutate():
    """Guards the fuzz tests against silently testing the unmodified file."""
    cfg = _mutate(raw("gemma-3-27b"), [("num_hidden_layers", 3), ("head_dim", "<delete>")])
    assert cfg["text_config"]["num_hidden_layers"] == 3 and "head_dim" not in cfg["text_config"]
    assert _parse_or_value_error(_mutate(raw("llama-3.1-8b"), [("hidden_size", "x")])) is None
    spec = _parse_or_value_error(_mutate(raw("llama-3.1-8b"), [("num_hidden_layers", 2)]))
    assert spec is not None and spec.n_layers == 2
    assert math.isnan(_mutate(raw("gpt2"), [("n_embd", float("nan"))])["n_embd"])
