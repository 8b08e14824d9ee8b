"""Families read from their configs as the reference library writes them (core/model/hf_config.py).

Jamba, Falcon-H1, Granite-4.0-H, Zamba2, EXAONE-4 and SmolLM3 have no verbatim config.json in this repo
(none was found), so their configs come from transformers' own config classes (a test-only dependency),
in full as `save_pretrained` writes them, with the shapes of released models set through the class.

Proves, for each family:
- the KV cache and the fixed state equal a computation written here from the config's own fields (not
  through the parser), following the family's reference code (HF modeling files, vLLM's
  MambaStateShapeCalculator), at several contexts;
- the parameter count equals the number of parameters of transformers' model built from the same config
  on the meta device (exact, or off by named parts the engine does not count);
- keys that change what is cached and are not read, or that disagree, refuse the config by name.
"""

from __future__ import annotations

import json

import pytest
import torch

from core.accounting import totals as acc
from core.model.hf_config import from_hf_config

transformers = pytest.importorskip("transformers")

BF16 = 2
CONTEXTS = [1, 1000, 4096, 32_768, 1_048_576]


def config(model_type: str, **fields) -> dict:
    """The full config.json transformers writes for this family with these fields."""
    c = transformers.AutoConfig.for_model(model_type, **fields)
    return json.loads(c.to_json_string(use_diff=False))


def hf_params(model_type: str, fields: dict) -> int:
    """Parameters of transformers' model for this config, built on the meta device (no memory, no weights)."""
    c = transformers.AutoConfig.for_model(model_type, **fields)
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(c)
    return sum(p.numel() for p in model.parameters())


# ----------------------------------------------------------------------------- by hand, per family


def jamba_by_hand(c: dict, n: int) -> tuple[int, int]:
    """Attention where i % attn_layer_period == attn_layer_offset (head width hidden / heads); Mamba-1 of
    expand x hidden channels elsewhere: conv (d_conv - 1) x D and SSM D x d_state, in the model dtype."""
    layers = c["num_hidden_layers"]
    attn = sum(1 for i in range(layers) if i % c["attn_layer_period"] == c["attn_layer_offset"])
    head_dim = c["hidden_size"] // c["num_attention_heads"]
    d = c["mamba_expand"] * c["hidden_size"]
    state = (layers - attn) * ((c["mamba_d_conv"] - 1) * d + d * c["mamba_d_state"]) * BF16
    return attn * 2 * c["num_key_value_heads"] * head_dim * BF16 * n, state


def mamba2_state(d_inner: int, heads: int, groups: int, d_state: int, d_conv: int) -> int:
    """vLLM mamba2_state_shape: SSM heads x (d_inner / heads) x d_state; conv (d_conv - 1) x (d_inner + 2 G N)."""
    return (d_inner * d_state + (d_conv - 1) * (d_inner + 2 * groups * d_state)) * BF16


def falcon_h1_by_hand(c: dict, n: int) -> tuple[int, int]:
    """Every layer: attention (head_dim or hidden / heads) and Mamba-2 of mamba_d_ssm channels."""
    layers = c["num_hidden_layers"]
    head_dim = c.get("head_dim") or c["hidden_size"] // c["num_attention_heads"]
    kv = layers * 2 * c["num_key_value_heads"] * head_dim * BF16 * n
    d = c["mamba_d_ssm"] or int(c["mamba_expand"] * c["hidden_size"])
    state = mamba2_state(d, c["mamba_n_heads"], c["mamba_n_groups"], c["mamba_d_state"], c["mamba_d_conv"])
    return kv, layers * state


def granite_by_hand(c: dict, n: int) -> tuple[int, int]:
    types = c["layer_types"]
    attn = sum(t in ("attention", "full_attention") for t in types)
    head_dim = c["hidden_size"] // c["num_attention_heads"]
    d = c["mamba_expand"] * c["hidden_size"]
    state = mamba2_state(d, c["mamba_n_heads"], c["mamba_n_groups"], c["mamba_d_state"], c["mamba_d_conv"])
    return attn * 2 * c["num_key_value_heads"] * head_dim * BF16 * n, (len(types) - attn) * state


def zamba2_by_hand(c: dict, n: int) -> tuple[int, int]:
    """Every layer keeps a Mamba-2 state; each hybrid layer also its own keys and values of all heads, each
    2 hidden / heads wide (the shared block reads [hidden, embeddings])."""
    hybrid = c["layers_block_type"].count("hybrid")
    kv = hybrid * 2 * c["num_attention_heads"] * (2 * c["hidden_size"] // c["num_attention_heads"]) * BF16 * n
    d = c["mamba_expand"] * c["hidden_size"]
    state = mamba2_state(d, c["n_mamba_heads"], c["mamba_ngroups"], c["mamba_d_state"], c["mamba_d_conv"])
    return kv, c["num_hidden_layers"] * state


def exaone4_by_hand(c: dict, n: int) -> tuple[int, int]:
    head_dim = c.get("head_dim") or c["hidden_size"] // c["num_attention_heads"]
    per_token = 2 * c["num_key_value_heads"] * head_dim * BF16
    sliding = c["layer_types"].count("sliding_attention")
    full = c["num_hidden_layers"] - sliding
    return per_token * (full * n + sliding * min(n, c["sliding_window"])), 0


def smollm3_by_hand(c: dict, n: int) -> tuple[int, int]:
    head_dim = c["hidden_size"] // c["num_attention_heads"]
    return c["num_hidden_layers"] * 2 * c["num_key_value_heads"] * head_dim * BF16 * n, 0


GRANITE_TYPES = (["mamba"] * 9 + ["attention"]) * 4  # Granite-4.0-H: 4 attention layers of 40
# shapes of released models, set through the config classes (the class fills in every other field)
CASES = {
    "jamba-1.5-mini": ("jamba", {"dtype": "bfloat16"}, jamba_by_hand),
    "falcon-h1-7b": (
        "falcon_h1",
        dict(
            hidden_size=3072,
            num_hidden_layers=44,
            num_attention_heads=12,
            num_key_value_heads=2,
            head_dim=128,
            mamba_d_ssm=6144,
            mamba_n_heads=24,
            mamba_d_head=256,
            mamba_d_state=256,
            intermediate_size=12288,
            dtype="bfloat16",
        ),
        falcon_h1_by_hand,
    ),
    "falcon-h1-rms-norm": ("falcon_h1", {"mamba_rms_norm": True, "dtype": "bfloat16"}, falcon_h1_by_hand),
    "granite-4.0-h-small": (
        "granitemoehybrid",
        dict(
            hidden_size=4096,
            num_hidden_layers=40,
            num_attention_heads=32,
            num_key_value_heads=8,
            layer_types=GRANITE_TYPES,
            mamba_n_heads=128,
            mamba_d_head=64,
            mamba_n_groups=1,
            mamba_d_state=128,
            num_local_experts=72,
            num_experts_per_tok=10,
            intermediate_size=768,
            shared_intermediate_size=1024,
            position_embedding_type="nope",
            dtype="bfloat16",
        ),
        granite_by_hand,
    ),
    "granite-4.0-h-dense": (
        "granitemoehybrid",
        dict(layer_types=GRANITE_TYPES[:32], num_hidden_layers=32, num_local_experts=0, dtype="bfloat16"),
        granite_by_hand,
    ),
    "zamba2-2.7b": ("zamba2", {"dtype": "bfloat16"}, zamba2_by_hand),
    "exaone-4.0-32b": (
        "exaone4",
        dict(
            hidden_size=5120,
            num_hidden_layers=64,
            num_attention_heads=40,
            num_key_value_heads=8,
            head_dim=128,
            intermediate_size=27392,
            sliding_window=4096,
            sliding_window_pattern=4,  # the released file says "LLLG" beside layer_types (set below)
            dtype="bfloat16",
        ),
        exaone4_by_hand,
    ),
    "smollm3-3b": ("smollm3", {"dtype": "bfloat16"}, smollm3_by_hand),
}
# Parameters the engine leaves out, by design: per-head RMS norms on queries and keys (EXAONE-4's q_norm and
# k_norm, head_dim each per layer); Zamba2's shared blocks are not counted at all (params_unknown).
NOT_COUNTED = {"exaone-4.0-32b": lambda c: c["num_hidden_layers"] * 2 * c["head_dim"]}


@pytest.fixture(scope="module", params=sorted(CASES))
def case(request):
    model_type, fields, by_hand = CASES[request.param]
    cfg = config(model_type, **fields)
    if model_type == "exaone4":  # as EXAONE-4.0 ships it: the letters, and the layer types they spell
        cfg["sliding_window_pattern"] = "LLLG"
    return request.param, cfg, from_hf_config(cfg), by_hand


def test_cache_and_state_equal_the_hand_computation(case):
    name, cfg, spec, by_hand = case
    for n in CONTEXTS:
        kv, state = by_hand(cfg, n)
        assert acc.kv_cache_bytes(spec, n) == kv, (name, n)
        assert acc.state_bytes(spec) == state, name


def test_parameters_equal_the_reference_model(case):
    name, cfg, spec, _ = case
    model_type, fields, _ = CASES[name]
    if spec.params_unknown:
        assert name.startswith("zamba2") and "shared transformer blocks" in spec.params_unknown[0]
        with pytest.raises(acc.ParamsUnknown, match="shared transformer blocks"):
            acc.param_count(spec)
        return
    left_out = NOT_COUNTED.get(name, lambda c: 0)(cfg)
    assert acc.param_count(spec).total + left_out == hf_params(model_type, fields), name


def test_layer_kinds_follow_the_schedules():
    jamba = from_hf_config(config("jamba"))
    assert [a.kind for a in jamba.attention[:8]] == ["Mamba-1"] * 4 + ["GQA"] + ["Mamba-1"] * 3
    assert [type(m).__name__ for m in jamba.mlp[:4]] == ["DenseMLP", "MoEMLP", "DenseMLP", "MoEMLP"]
    falcon = from_hf_config(config("falcon_h1"))
    assert set(falcon.layer_kinds) == {"GQA + Mamba-2"}
    zamba = from_hf_config(config("zamba2"))
    assert zamba.layer_kinds == {"Mamba-2": 45, "MHA + Mamba-2": 9}
    exaone = config("exaone4", num_hidden_layers=8)
    exaone["sliding_window_pattern"] = "LLLG"
    assert [a.sliding_window for a in from_hf_config(exaone).attention] == [4096, 4096, 4096, None] * 2
    del exaone["layer_types"]  # the letters alone give the same layout
    assert [a.sliding_window for a in from_hf_config(exaone).attention] == [4096, 4096, 4096, None] * 2


@pytest.mark.parametrize(
    "model_type, fields, change, words",
    [
        ("jamba", {}, {"attn_layer_offset": 9}, "below their periods"),
        ("jamba", {}, {"mamba_expand": "two"}, "mamba_expand"),
        ("falcon_h1", {}, {"mamba_d_head": 7}, "must equal the Mamba width"),
        ("falcon_h1", {}, {"projectors_bias": True}, "must agree"),
        ("granitemoehybrid", {}, {"layer_types": ["mamba"] * 31 + ["lightning"]}, r"layer_types\[31\]"),
        ("granitemoehybrid", {}, {"head_dim": 64}, "hidden_size / num_attention_heads"),
        ("zamba2", {}, {"num_key_value_heads": 8}, "vLLM gives every query head"),
        ("zamba2", {}, {"hybrid_layer_ids": [1, 2]}, "disagree"),
        ("exaone4", {}, {"sliding_window_pattern": "LLXG"}, "letters L"),
        ("exaone4", {}, {"layer_types": ["full_attention"] * 32}, "disagree on which layers slide"),
        ("smollm3", {}, {"mystery_layer_schedule": [1, 0]}, "mystery_layer_schedule"),
    ],
)
def test_what_the_engine_cannot_read_is_refused_by_name(model_type, fields, change, words):
    cfg = config(model_type, **fields) | change
    with pytest.raises(ValueError, match=words):
        from_hf_config(cfg)


def test_tied_output_heads_follow_each_familys_library_default():
    """TIED_BY_DEFAULT (used when a file does not say tie_word_embeddings) equals transformers' config class
    default for every family it lists."""
    from core.model.hf_config import TIED_BY_DEFAULT

    for model_type, tied in TIED_BY_DEFAULT.items():
        assert transformers.AutoConfig.for_model(model_type).tie_word_embeddings is tied, model_type


def test_family_defaults_for_the_context_length_are_the_librarys():
    """FAMILY_DEFAULTS fills a length key a file leaves out (vLLM reads the library's config object, so its
    default is what vLLM derives max_model_len from): each equals transformers' config class default."""
    from core.model.hf_config import FAMILY_DEFAULTS, LENGTH_KEYS

    checked = 0
    for model_type, defaults in FAMILY_DEFAULTS.items():
        for key in set(defaults) & set(LENGTH_KEYS):
            assert getattr(transformers.AutoConfig.for_model(model_type), key) == defaults[key], (model_type, key)
            checked += 1
    assert checked >= 3


def test_a_family_without_a_known_default_and_no_tie_field_has_no_parameter_count():
    cfg = config("llama") | {"model_type": "my_new_llama"}
    del cfg["tie_word_embeddings"]
    spec = from_hf_config(cfg)
    assert acc.kv_cache_bytes(spec, 100) > 0
    with pytest.raises(acc.ParamsUnknown, match="shares the embedding table"):
        acc.param_count(spec)


# ----------------------------------------------------------------------------- MiniMax-M3 (a verbatim preset)


def test_minimax_m3_parameters_equal_the_reference_model():
    """Built by transformers on the meta device from the shipped file. The engine counts the router's
    correction bias (a buffer in HF, a parameter in vLLM: 57 x 128) and leaves out the per-head q/k norms
    (60 layers x 2 x 128)."""
    from transformers.models.minimax_m3_vl.configuration_minimax_m3_vl import MiniMaxM3VLTextConfig
    from transformers.models.minimax_m3_vl.modeling_minimax_m3_vl import MiniMaxM3VLForCausalLM

    from core.model.presets import CONFIG_DIR, load_preset

    cfg = MiniMaxM3VLTextConfig(**json.loads((CONFIG_DIR / "minimax-m3.json").read_text()))
    with torch.device("meta"):
        model = MiniMaxM3VLForCausalLM(cfg)
    hf = sum(p.numel() for p in model.parameters())
    router = sum(b.numel() for k, b in model.named_buffers() if k.endswith("e_score_correction_bias"))
    assert acc.param_count(load_preset("minimax-m3")).total + 60 * 2 * 128 == hf + router == 426_174_572_928


def test_minimax_m3_decode_reads_the_chosen_blocks_and_scores_every_key():
    """At N tokens a sparse layer attends to N tokens up to 16 x 128, then to 15 whole blocks plus the
    query's own partial block; its indexer scores all N keys with 4 heads of 128."""
    from core.accounting.base import design_of
    from core.model.presets import load_preset

    spec = load_preset("minimax-m3")
    sparse = spec.attention[3]
    d = design_of(sparse)
    for n, expected in [(1, 1), (2048, 2048), (2049, 1921), (2176, 2048), (2177, 1921), (32_768, 2048)]:
        assert d.attended(sparse, n) == expected
    assert d.decode_core_flops(sparse, 32_768, "absorbed") == 2048 * 2 * 64 * 256 + 32_768 * 2 * 4 * 128
    for t in (1, 100, 2048, 2049, 5000):  # the prefill sum, in closed form, against the loop
        loop = sum(d.attended(sparse, p) for p in range(1, t + 1)) * d.pair_flops(sparse, "absorbed")
        assert d.prefill_core_flops(sparse, t, "absorbed", True) == loop + t * (t + 1) // 2 * 1024


@pytest.mark.parametrize(
    "change, words",
    [
        ({"attention_output_gate": True}, "attention_output_gate"),
        ({"sparse_init_block": 2}, "sparse_init_block"),
        ({"sparse_disable_index_value": [0] * 60}, "sparse_disable_index_value"),
        ({"sparse_attention_freq": [2] * 60}, r"sparse_attention_freq\[0\]"),
        ({"sparse_new_field": 1}, r"sparse_attention_config\.sparse_new_field"),
    ],
)
def test_minimax_m3_refuses_what_it_cannot_read(change, words):
    from core.model.presets import CONFIG_DIR

    cfg = json.loads((CONFIG_DIR / "minimax-m3.json").read_text())
    for k, v in change.items():
        (cfg if k == "attention_output_gate" else cfg["sparse_attention_config"])[k] = v
    with pytest.raises(ValueError, match=words):
        from_hf_config(cfg)
