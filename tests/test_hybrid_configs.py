"""Hybrid models from their real config.json files, exact or refused (core/model/hf_config.py and the
design modules in core/accounting/designs).

Proves:
- every hybrid preset gives the KV cache and the fixed-size state computed here by hand from the config's
  own fields (read from the JSON in this file, not through the parser), at several contexts;
- the state does not grow with the context, and it is reported apart from the KV cache (CLI JSON keys
  state_bytes and state_bytes_by_layer_type);
- parameter counts equal published checkpoint totals where a tensor-level total is known (Kimi-Linear,
  Llama-4-Scout's text model) and include Llama-4's shared expert;
- configs that carry a layout field the parser does not read are refused with one sentence that names it,
  by the parser and by the CLI (exit 2, one line); so are options that do not apply (an MLA layout on a
  GQA model);
- hostile files (2,000-deep nesting, huge numbers, BOM and UTF-16 text) end in a sentence or parse,
  never in a traceback;
- an unknown layer spec type raises TypeError naming it everywhere the engine dispatches.
"""

from __future__ import annotations

import codecs
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.accounting import totals as acc
from core.accounting.describe import describe
from core.layers.build import build_layer
from core.model.hf_config import from_hf_config, load_config_text
from core.model.presets import CONFIG_DIR, load_preset
from core.model.specs import DenseMLP, ModelSpec
from core.report import report

ROOT = Path(__file__).resolve().parent.parent
CONTEXTS = [1, 1000, 8192, 32_768, 1_048_576]
BF16 = 2


def cfg(name: str) -> dict:
    return json.loads((CONFIG_DIR / f"{name}.json").read_text())


def text(name: str) -> dict:
    c = cfg(name)
    return c.get("text_config", c)


# ----------------------------------------------------------------------------- by hand, per family


def qwen_next_by_hand(c: dict, n: int) -> tuple[int, int]:
    layers = c["num_hidden_layers"]
    types = c.get("layer_types") or [
        "full_attention" if (i + 1) % c["full_attention_interval"] == 0 else "linear_attention" for i in range(layers)
    ]
    full, linear = types.count("full_attention"), types.count("linear_attention")
    kv = full * 2 * c["num_key_value_heads"] * c["head_dim"] * BF16 * n
    conv_dim = 2 * c["linear_num_key_heads"] * c["linear_key_head_dim"] + (
        c["linear_num_value_heads"] * c["linear_value_head_dim"]
    )
    ssm_bytes = 4 if c.get("mamba_ssm_dtype") == "float32" else BF16
    rec = c["linear_num_value_heads"] * c["linear_key_head_dim"] * c["linear_value_head_dim"] * ssm_bytes
    conv = (c["linear_conv_kernel_dim"] - 1) * conv_dim * BF16
    return kv, linear * (rec + conv)


def nemotron_by_hand(c: dict, n: int) -> tuple[int, int]:
    letters = {"mamba": "M", "attention": "*", "mlp": "-", "moe": "E"}  # the newer schema's block names
    p = c.get("hybrid_override_pattern") or "".join(letters[t] for t in c["layers_block_type"])
    head_dim = c.get("head_dim") or c["attention_head_dim"]
    kv = p.count("*") * 2 * c["num_key_value_heads"] * head_dim * BF16 * n
    ssm = c["mamba_num_heads"] * c["mamba_head_dim"] * c["ssm_state_size"] * 4  # float32 unless the file says
    conv_dim = c["mamba_num_heads"] * c["mamba_head_dim"] + 2 * c["n_groups"] * c["ssm_state_size"]
    conv = (c["conv_kernel"] - 1) * conv_dim * BF16
    return kv, p.count("M") * (ssm + conv)


def llama4_by_hand(c: dict, n: int) -> tuple[int, int]:
    layers, chunk = c["num_hidden_layers"], c["attention_chunk_size"]
    chunked = sum(1 for i in range(layers) if (i + 1) % 4)  # NoPE (global) every 4th layer
    per_token = 2 * c["num_key_value_heads"] * c["head_dim"] * BF16
    current_chunk = (n - 1) % chunk + 1  # tokens of the chunk the newest token is in
    return ((layers - chunked) * n + chunked * current_chunk) * per_token, 0


def gemma4_by_hand(c: dict, n: int) -> tuple[int, int]:
    types = c["layer_types"]
    full = types.count("full_attention") * 2 * c["num_global_key_value_heads"] * c["global_head_dim"] * BF16 * n
    w = min(n, c["sliding_window"])
    sliding = types.count("sliding_attention") * 2 * c["num_key_value_heads"] * c["head_dim"] * BF16 * w
    return full + sliding, 0


def mimo_by_hand(c: dict, n: int) -> tuple[int, int]:
    p = c["hybrid_layer_pattern"]
    full = p.count(0) * c["num_key_value_heads"] * (c["head_dim"] + c["v_head_dim"]) * BF16 * n
    w = min(n, c["sliding_window_size"])
    swa = p.count(1) * c["swa_num_key_value_heads"] * (c["swa_head_dim"] + c["swa_v_head_dim"]) * BF16 * w
    return full + swa, 0


def decilm_by_hand(c: dict, n: int) -> tuple[int, int]:
    head_dim = c["hidden_size"] // c["num_attention_heads"]
    kv = 0
    for b in c["block_configs"]:
        a = b["attention"]
        if not a["no_op"] and not a["replace_with_linear"]:
            kv += 2 * (c["num_attention_heads"] // a["n_heads_in_group"]) * head_dim * BF16 * n
    return kv, 0


def kimi_by_hand(c: dict, n: int) -> tuple[int, int]:
    lac = c["linear_attn_config"]
    kv = len(lac["full_attn_layers"]) * (c["kv_lora_rank"] + c["qk_rope_head_dim"]) * BF16 * n
    proj = lac["num_heads"] * lac["head_dim"]
    rec = lac["num_heads"] * lac["head_dim"] ** 2 * 4  # float32
    conv = (lac["short_conv_kernel_size"] - 1) * 3 * proj * BF16  # q, k and v convolutions
    return kv, len(lac["kda_layers"]) * (rec + conv)


def minimax_by_hand(c: dict, n: int) -> tuple[int, int]:
    """attn_type_list: 1 = softmax (GQA), 0 = lightning, one head_dim^2 state per head in the model dtype."""
    types = c["attn_type_list"]
    kv = types.count(1) * 2 * c["num_key_value_heads"] * c["head_dim"] * BF16 * n
    return kv, types.count(0) * c["num_attention_heads"] * c["head_dim"] ** 2 * BF16


def lfm2_by_hand(c: dict, n: int) -> tuple[int, int]:
    """full_attn_idxs are the attention layers; the others keep conv_L_cache - 1 inputs of conv_dim channels."""
    attn = len(c["full_attn_idxs"])
    head_dim = c["hidden_size"] // c["num_attention_heads"]
    kv = attn * 2 * c["num_key_value_heads"] * head_dim * BF16 * n
    return kv, (c["num_hidden_layers"] - attn) * (c["conv_L_cache"] - 1) * c["conv_dim"] * BF16


def glm52_by_hand(c: dict, n: int) -> tuple[int, int]:
    """Every layer caches the latent and rope key; only the "full" layers of indexer_types an indexer key."""
    latent = c["num_hidden_layers"] * (c["kv_lora_rank"] + c["qk_rope_head_dim"]) * BF16 * n
    return latent + c["indexer_types"].count("full") * c["index_head_dim"] * BF16 * n, 0


def exaone4_by_hand(c: dict, n: int) -> tuple[int, int]:
    """sliding_window_pattern "LLLG": three sliding layers of sliding_window tokens, then a global one."""
    pattern = c["sliding_window_pattern"]
    sliding = sum(pattern[i % len(pattern)] == "L" for i in range(c["num_hidden_layers"]))
    per_token = 2 * c["num_key_value_heads"] * c["head_dim"] * BF16
    return per_token * ((c["num_hidden_layers"] - sliding) * n + sliding * min(n, c["sliding_window"])), 0


def minimax_m3_by_hand(c: dict, n: int) -> tuple[int, int]:
    """Keys and values on every layer; an indexer key (sparse_index_dim, bf16 whatever the cache) on the
    layers whose sparse_attention_freq is 1."""
    sc = c["sparse_attention_config"]
    kv = c["num_hidden_layers"] * 2 * c["num_key_value_heads"] * c["head_dim"] * BF16 * n
    return kv + sum(sc["sparse_attention_freq"]) * sc["sparse_index_dim"] * BF16 * n, 0


HYBRIDS = {
    "minimax-m3": minimax_m3_by_hand,
    "exaone-4.0-32b": exaone4_by_hand,
    "minimax-m1": minimax_by_hand,
    "lfm2-350m": lfm2_by_hand,
    "glm-5.2": glm52_by_hand,
    "nemotron-3-ultra-550b-a55b": nemotron_by_hand,
    "qwen3-next-80b-a3b": qwen_next_by_hand,
    "qwen3.5-27b": qwen_next_by_hand,
    "nemotron-h-56b": nemotron_by_hand,
    "nemotron-3-nano-30b-a3b": nemotron_by_hand,
    "llama-4-scout": llama4_by_hand,
    "gemma-4-26b-a4b": gemma4_by_hand,
    "mimo-v2-flash": mimo_by_hand,
    "llama-3.3-nemotron-super-49b": decilm_by_hand,
    "kimi-linear-48b-a3b": kimi_by_hand,
}


@pytest.mark.parametrize("context", CONTEXTS)
@pytest.mark.parametrize("name", sorted(HYBRIDS))
def test_cache_and_state_equal_the_hand_computation(name, context):
    kv, state = HYBRIDS[name](text(name), context)
    spec = load_preset(name)
    assert acc.kv_cache_bytes(spec, context) == kv
    assert acc.state_bytes(spec) == state
    assert acc.state_bytes(spec, batch=3) == 3 * state


def test_the_figures_the_issue_computed_by_hand():
    """The four silently wrong cases of the config-allowlist issue, now exact at 32,768 tokens in bf16:
    MiniMax-M1 was 8.0x too high (every layer counted as softmax attention), LFM2 2.67x (every layer
    attention), GLM-5.2's indexer keys counted on all 78 layers instead of the 21 that run an indexer."""
    n = 32_768
    m1 = load_preset("minimax-m1")
    assert acc.kv_cache_bytes(m1, n) * 8 == 80 * 2 * 8 * 128 * BF16 * n
    lfm = load_preset("lfm2-350m")
    assert acc.kv_cache_bytes(lfm, n) == 6 * 2 * 8 * 64 * BF16 * n  # 6 of 16 layers: 16 / 6 = 2.67x less
    glm = load_preset("glm-5.2")
    assert sum(1 for a in glm.attention if a.own_indexer) == 21
    assert acc.kv_cache_bytes(glm, n) == n * BF16 * (78 * (512 + 64) + 21 * 128)


def test_the_published_hand_figures():
    """docs/facts.md section 9: Qwen3-Next-80B and Llama-4-Scout at 32,768 tokens in bf16."""
    assert acc.kv_cache_bytes(load_preset("qwen3-next-80b-a3b"), 32_768) == 805_306_368
    assert acc.kv_cache_bytes(load_preset("llama-4-scout"), 32_768) == 2_818_572_288
    # Nemotron-H would be 11.8x too high with every layer counted as attention: now 10 of 118 layers are
    assert acc.kv_cache_bytes(load_preset("nemotron-h-56b"), 32_768) == 1_342_177_280


@pytest.mark.parametrize("name", sorted(HYBRIDS))
def test_the_state_does_not_grow_and_is_reported_apart(name):
    spec = load_preset(name)
    short, long = report(spec, context=1000), report(spec, context=1_000_000)
    assert short["state_bytes"] == long["state_bytes"] == acc.state_bytes(spec)
    assert sum(short["state_bytes_by_layer_type"].values()) == short["state_bytes"]
    assert short["kv_cache_bytes"] == acc.kv_cache_bytes(spec, 1000)


def test_models_without_state_report_zero():
    r = report(load_preset("llama-3.1-70b"))
    assert r["state_bytes"] == 0 and r["state_bytes_by_layer_type"] == {}


def test_parameters_equal_checkpoint_totals():
    """Kimi-Linear: 49,122,681,728 parameters in its checkpoint's tensor list; Llama-4-Scout's text model:
    107,769,861,120 (with a shared expert on every MoE layer; active 17.17B with the embedding table)."""
    assert acc.param_count(load_preset("kimi-linear-48b-a3b")).total == 49_122_681_728
    scout = acc.param_count(load_preset("llama-4-scout"))
    assert scout.total == 107_769_861_120
    assert scout.active + scout.embedding == 17_172_894_720


def test_gemma4_k_eq_v_layers_save_weights_not_cache():
    spec = load_preset("gemma-4-26b-a4b")
    full = next(a for a in spec.attention if a.kind == "GQA")
    assert full.k_eq_v and full.head_dim == 512 and full.n_kv_heads == 2
    rows = acc.layer_cache_rows(full, 10, acc.cache_dtype("bf16"))
    assert [r.tensor for r in rows] == ["keys", "values"]
    with_v = acc.attention_params(type(full)(16, 2, 512), 2816).matmul
    assert with_v - acc.attention_params(full, 2816).matmul == 2816 * 2 * 512  # no v_proj


# ----------------------------------------------------------------------------- refusals


LLAMA = "llama-3.1-8b"


@pytest.mark.parametrize(
    "field, value",
    [
        ("attention_chunk_size", 8192),
        ("hybrid_override_pattern", "M*M*"),
        ("block_configs", [{}]),
        ("linear_num_value_heads", 32),
        ("mamba_num_heads", 64),
        ("ssm_state_size", 128),
        ("global_head_dim", 512),
        ("num_global_key_value_heads", 2),
        ("swa_num_key_value_heads", 8),
        ("full_attention_interval", 4),
        ("layers_block_type", ["mamba", "attention"]),
        ("attn_layer_period", 8),
        ("num_kv_shared_layers", 4),
        ("attention_k_eq_v", True),
    ],
)
def test_unread_layout_fields_are_refused_naming_the_field(field, value):
    with pytest.raises(ValueError, match=f"not supported.*{field}") as e:
        from_hf_config(cfg(LLAMA) | {field: value})
    assert "refusing to guess" in str(e.value)


def test_no_rope_layers_change_no_cached_shape():
    """SmolLM3 and Llama-4 turn RoPE off on some layers: the keys keep their shape, so the cache is the same."""
    plain = from_hf_config(cfg(LLAMA))
    assert from_hf_config(cfg(LLAMA) | {"no_rope_layers": [1, 1, 1, 0] * 8}).attention == plain.attention


@pytest.mark.parametrize(
    "name, change, words",
    [
        (LLAMA, {"layer_types": ["full_attention"] * 31 + ["mystery_attention"]}, "layer_types\\[31\\]"),
        ("qwen3-next-80b-a3b", {"layer_types": ["sliding_attention"] * 48}, "layer_types\\[0\\]"),
        ("nemotron-h-56b", {"hybrid_override_pattern": "X" * 118}, "hybrid_override_pattern\\[0\\]"),
        ("gemma-4-26b-a4b", {"num_kv_shared_layers": 10}, "num_kv_shared_layers"),
        ("mimo-v2-flash", {"hybrid_layer_pattern": [0, 2] * 24}, "hybrid_layer_pattern\\[1\\]"),
    ],
)
def test_unknown_values_in_known_families_are_refused(name, change, words):
    c = cfg(name)
    (c.get("text_config", c)).update(change)
    with pytest.raises(ValueError, match=words):
        from_hf_config(c)


def test_decilm_windows_are_refused():
    c = cfg("llama-3.3-nemotron-super-49b")
    c["block_configs"][0]["attention"]["window_length"] = 4096
    with pytest.raises(ValueError, match=r"block_configs\[0\]\.attention\.window_length is not supported"):
        from_hf_config(c)


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "core.report", *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def one_line(stderr: str) -> str:
    assert "Traceback" not in stderr
    (line,) = stderr.strip().splitlines()
    return line


def test_cli_refuses_unsupported_architectures_with_one_line(tmp_path):
    hybrid = tmp_path / "config.json"
    hybrid.write_text(json.dumps(cfg(LLAMA) | {"model_type": "my_hybrid", "attn_layer_period": 8, "mamba_d_state": 16}))
    r = cli(str(hybrid), "--json")
    assert r.returncode == 2
    line = one_line(r.stderr)
    assert "not supported" in line and "attn_layer_period" in line


def test_cli_refuses_a_layout_that_does_not_apply():
    r = cli(LLAMA, "--layout", "fp8_ds_mla")
    assert r.returncode == 2 and "applies to MLA" in one_line(r.stderr)
    assert cli("deepseek-v3", "--layout", "fp8_ds_mla").returncode == 0


def test_cli_gives_kv_for_kv_only_configs_and_null_parameters(tmp_path):
    c = {k: v for k, v in cfg(LLAMA).items() if k not in ("vocab_size", "intermediate_size")}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(c))
    r = cli(str(path), "--json", "--context", "1000")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["kv_cache_bytes"] == 1000 * 131_072
    assert out["params_total"] is None and out["weights_bytes"] is None and out["decode_flops_per_token"] is None
    assert any("parameters unknown" in n for n in out["notes"])
    assert cli(str(path)).returncode == 0  # the text form too


# ----------------------------------------------------------------------------- hostile files


def test_deep_nesting_is_a_sentence_not_a_recursion_error():
    deep = "[" * 2000 + "]" * 2000
    with pytest.raises(ValueError, match="levels deep"):
        load_config_text('{"a": ' + deep + "}")


def test_brackets_inside_strings_do_not_count_as_nesting():
    assert load_config_text(json.dumps({"note": "[" * 500}))["note"] == "[" * 500


def test_huge_numbers_are_a_sentence():
    with pytest.raises(ValueError, match="digits"):
        load_config_text('{"hidden_size": ' + "9" * 5000 + "}")


@pytest.mark.parametrize(
    "encode",
    [
        lambda s: codecs.BOM_UTF8 + s.encode(),
        lambda s: s.encode("utf-16"),  # with a BOM, as Notepad saves "Unicode"
        lambda s: s.encode("utf-16-le"),
        lambda s: s.encode("utf-16-be"),
    ],
)
def test_bom_and_utf16_files_parse(encode):
    assert from_hf_config(load_config_text(encode(json.dumps(cfg(LLAMA))))).n_layers == 32


def test_bytes_that_are_no_text_are_a_sentence():
    with pytest.raises(ValueError, match="not text in UTF-8 or UTF-16"):
        load_config_text(b"\x80\x81\x82 not utf8")


def test_long_values_are_shown_truncated():
    with pytest.raises(ValueError) as e:
        from_hf_config(cfg(LLAMA) | {"hidden_size": "9" * 1_000_000})
    assert len(str(e.value)) < 300 and "more characters" in str(e.value)


# ----------------------------------------------------------------------------- dispatch


@dataclass(frozen=True)
class Unknown:
    kind = "mystery"


def test_an_unknown_spec_type_is_a_type_error_everywhere():
    spec = ModelSpec("m", "x", 16, 16, (Unknown(),), (DenseMLP(8),))  # type: ignore[arg-type]
    for call in (
        lambda: acc.kv_cache_bytes(spec, 10),
        lambda: acc.state_bytes(spec),
        lambda: acc.param_count(spec),
        lambda: acc.decode_cost(spec, 10),
        lambda: acc.prefill_core_flops(Unknown(), 10),
        lambda: describe(spec),
        lambda: build_layer(Unknown(), 16),
    ):
        with pytest.raises(TypeError, match="Unknown"):
            call()


@pytest.mark.parametrize(
    "name, field",
    [("gemma-4-26b-a4b", "global_head_dim"), ("nemotron-h-56b", "n_groups"), ("nemotron-h-56b", "conv_kernel")],
)
def test_fields_that_size_a_cache_or_state_are_never_defaulted(name, field):
    """Without the field the layout is unknown: refused naming it, never filled in with a guess."""
    c = cfg(name)
    (c.get("text_config", c)).pop(field)
    with pytest.raises(ValueError, match=field):
        from_hf_config(c)
