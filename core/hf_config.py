"""Turn a real Hugging Face `config.json` into a ModelSpec.

Families read: llama, mistral, mixtral, qwen2, qwen2_moe, qwen3, qwen3_moe, gemma, gemma2, gemma3
(incl. the multimodal `text_config` nesting), gpt2, gpt_oss, deepseek_v2, deepseek_v3 (and files
such as Kimi-K2 that reuse it), deepseek_v32 and deepseek_v4. Unknown families with the standard
fields (hidden_size, num_hidden_layers, num_attention_heads, ...) work too.

Anything inconsistent raises ValueError with a sentence that names the field.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from core.specs import (
    MAX_EXPERTS,
    MAX_HEADS,
    MAX_LAYERS,
    MAX_VOCAB,
    MAX_WIDTH,
    AttentionSpec,
    CompressedSpec,
    DenseMLP,
    DSASpec,
    GQASpec,
    MLASpec,
    MLPSpec,
    ModelSpec,
    MoEMLP,
)

MAX_CONFIG_BYTES = 1 << 20  # 1 MiB: real config.json files are a few KiB

# Defaults that Hugging Face's config classes supply when a file leaves the field out.
FAMILY_DEFAULTS: dict[str, dict[str, Any]] = {
    "gemma": {"vocab_size": 256_000, "tie_word_embeddings": True},
    "gemma2": {"vocab_size": 256_000, "tie_word_embeddings": True, "sliding_window": 4096},
    "gemma3_text": {
        "vocab_size": 262_208,
        "tie_word_embeddings": True,
        "sliding_window": 4096,
        "sliding_window_pattern": 6,
    },
    "gpt2": {"vocab_size": 50_257, "n_positions": 1024, "tie_word_embeddings": True},
    "llama": {"tie_word_embeddings": False},
    "mistral": {"tie_word_embeddings": False},
    "qwen2": {"tie_word_embeddings": False},
    "qwen3": {"tie_word_embeddings": False},
}

# GPT-2 style names for the standard fields.
ALIASES = {
    "n_embd": "hidden_size",
    "n_layer": "num_hidden_layers",
    "n_head": "num_attention_heads",
    "n_inner": "intermediate_size",
}


def load_config_text(data: str | bytes, source: str = "config") -> dict[str, Any]:
    """Parse the text of a config.json; refuse files over 1 MiB, non-JSON and non-objects."""
    size = len(data.encode() if isinstance(data, str) else data)
    if size > MAX_CONFIG_BYTES:
        raise ValueError(
            f"{source} is {size / 2**20:.2f} MiB ({size:,} bytes); a config.json is a few KiB, the limit is 1 MiB."
        )
    try:
        cfg = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        where = f" (line {e.lineno}, column {e.colno})" if isinstance(e, json.JSONDecodeError) else ""
        raise ValueError(f"{source} is not valid JSON{where}: {getattr(e, 'msg', e)}.") from None
    if not isinstance(cfg, dict):
        raise ValueError(f"{source} must be a JSON object ({{...}}), got a {type(cfg).__name__}.")
    return cfg


def load_config_file(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if p.is_dir():
        raise ValueError(f"{p} is a folder; give the path of a config.json file.")
    if not p.is_file():
        raise ValueError(f"no such file: {p}.")
    if p.stat().st_size > MAX_CONFIG_BYTES:
        raise ValueError(f"{p.name} is over 1 MiB; a config.json is a few KiB.")
    return load_config_text(p.read_bytes(), p.name)


class _Reader:
    """Typed, bounded access to config fields; every error names the field."""

    def __init__(self, cfg: dict[str, Any]):
        self.cfg = cfg

    def has(self, key: str) -> bool:
        return self.cfg.get(key) is not None

    def int(self, key: str, default: Any = ..., lo: int = 1, hi: int = MAX_WIDTH) -> Any:
        v = self.cfg.get(key)
        if v is None:
            if default is ...:
                raise ValueError(f"the config has no {key!r}, which is required.")
            return default
        if isinstance(v, float) and v.is_integer() and abs(v) < 2**53:
            v = int(v)
        if isinstance(v, bool) or not isinstance(v, int):
            raise ValueError(f"{key} must be a whole number, got {v!r}.")
        if not lo <= v <= hi:
            raise ValueError(f"{key} must be between {lo:,} and {hi:,}, got {v:,}.")
        return v

    def bool(self, key: str, default: bool) -> bool:
        v = self.cfg.get(key)
        if v is None:
            return default
        if not isinstance(v, bool):
            raise ValueError(f"{key} must be true or false, got {v!r}.")
        return v

    def int_list(self, key: str, lo: int = 0, hi: int = MAX_WIDTH) -> list[int]:
        v = self.cfg.get(key)
        if not isinstance(v, list) or len(v) > 100_000:
            raise ValueError(f"{key} must be a list of whole numbers.")
        return [_as_int(key, i, x, lo, hi) for i, x in enumerate(v)]


def _as_int(key: str, i: int, x: Any, lo: int, hi: int) -> int:
    if isinstance(x, float) and x.is_integer():
        x = int(x)
    if isinstance(x, bool) or not isinstance(x, int) or not lo <= x <= hi:
        raise ValueError(f"{key}[{i}] must be a whole number between {lo:,} and {hi:,}, got {x!r}.")
    return x


def _flatten(cfg: dict[str, Any]) -> dict[str, Any]:
    """Lift `text_config` (multimodal files) to the top, apply aliases and family defaults."""
    top_type = cfg.get("model_type")
    text = cfg.get("text_config")
    if text is not None:
        if not isinstance(text, dict):
            raise ValueError("text_config must be a JSON object.")
        merged = {k: v for k, v in cfg.items() if k not in ("text_config", "vision_config", "audio_config")}
        merged.update(text)
        cfg = merged
    out = dict(cfg)
    for old, new in ALIASES.items():
        if old in out and out.get(new) is None:
            out[new] = out[old]
    mt = out.get("model_type") or top_type or "unknown"
    if not isinstance(mt, str):
        raise ValueError("model_type must be a string.")
    if mt == "gemma3":  # a text-only gemma3 file without nesting
        mt = "gemma3_text"
    out["model_type"] = mt
    for k, v in FAMILY_DEFAULTS.get(mt, {}).items():
        if out.get(k) is None:
            out[k] = v
    return out


def _windows(r: _Reader, n_layers: int) -> list[int | None]:
    """Per-layer sliding window (None = full attention), from whichever fields the family uses."""
    cfg, mt = r.cfg, r.cfg["model_type"]
    sw = r.int("sliding_window", None, 1, 1 << 30) if r.has("sliding_window") else None
    types = cfg.get("layer_types")
    if types is not None:
        if not isinstance(types, list) or len(types) < n_layers or not all(isinstance(t, str) for t in types):
            raise ValueError(f"layer_types must be a list of {n_layers} strings, one per layer.")
        sliding = ["sliding" in t or t == "local" for t in types[:n_layers]]
        if any(sliding) and sw is None:
            raise ValueError("layer_types names sliding layers but sliding_window is missing.")
        return [sw if s else None for s in sliding]
    if sw is None:
        return [None] * n_layers
    if mt == "gemma2" or mt == "gpt_oss":  # alternate: even layers local, odd layers global
        return [sw if i % 2 == 0 else None for i in range(n_layers)]
    if r.has("sliding_window_pattern"):  # gemma3: every p-th layer is global
        p = r.int("sliding_window_pattern", hi=MAX_LAYERS)
        return [None if (i + 1) % p == 0 else sw for i in range(n_layers)]
    if "use_sliding_window" in cfg:  # qwen2/qwen3: off unless asked; then layers >= max_window_layers
        if not r.bool("use_sliding_window", False):
            return [None] * n_layers
        first = r.int("max_window_layers", 0, 0, MAX_LAYERS)
        return [sw if i >= first else None for i in range(n_layers)]
    return [sw] * n_layers  # mistral and other all-sliding models


def _gqa(r: _Reader, hidden: int, windows: list[int | None]) -> list[AttentionSpec]:
    n_heads = r.int("num_attention_heads", hi=MAX_HEADS)
    n_kv = r.int("num_key_value_heads", n_heads, hi=MAX_HEADS)
    if r.has("head_dim"):
        head_dim = r.int("head_dim")
    else:
        if hidden % n_heads:
            raise ValueError(
                f"hidden_size ({hidden}) must be a multiple of num_attention_heads ({n_heads}) "
                "when the config gives no head_dim."
            )
        head_dim = hidden // n_heads
    if n_heads % n_kv:
        raise ValueError(f"num_attention_heads ({n_heads}) must be a multiple of num_key_value_heads ({n_kv}).")
    mt = r.cfg["model_type"]
    qkv_bias = mt in ("gpt2", "qwen2", "qwen2_moe") or r.bool("attention_bias", False)
    o_bias = mt == "gpt2" or r.bool("attention_bias", False)
    return [GQASpec(n_heads, n_kv, head_dim, w, qkv_bias, o_bias) for w in windows]


def _mla_fields(r: _Reader) -> dict[str, Any]:
    return dict(
        n_heads=r.int("num_attention_heads", hi=MAX_HEADS),
        kv_lora_rank=r.int("kv_lora_rank"),
        qk_nope_head_dim=r.int("qk_nope_head_dim", lo=0),
        qk_rope_head_dim=r.int("qk_rope_head_dim", lo=0),
        v_head_dim=r.int("v_head_dim"),
        q_lora_rank=r.int("q_lora_rank", None),
    )


def _v4(r: _Reader, n_layers: int) -> list[AttentionSpec]:
    ratios = r.int_list("compress_ratios", 0, 1 << 20)
    if len(ratios) < n_layers:
        raise ValueError(f"compress_ratios has {len(ratios)} entries; it needs one per layer ({n_layers}).")
    common = dict(
        n_heads=r.int("num_attention_heads", hi=MAX_HEADS),
        head_dim=r.int("head_dim"),
        qk_rope_head_dim=r.int("qk_rope_head_dim", lo=0),
        sliding_window=r.int("sliding_window", hi=1 << 30),
        q_lora_rank=r.int("q_lora_rank", None),
        o_groups=r.int("o_groups", 1, hi=MAX_HEADS),
        o_lora_rank=r.int("o_lora_rank", None),
        index_n_heads=r.int("index_n_heads", 0, 0, MAX_HEADS),
        index_head_dim=r.int("index_head_dim", 0, 0),
        index_topk=r.int("index_topk", 0, 0, 1 << 30),
    )
    return [CompressedSpec(compress_ratio=m, **common) for m in ratios[:n_layers]]


def _mlps(r: _Reader, n_layers: int) -> list[MLPSpec]:
    cfg = r.cfg
    mt = cfg["model_type"]
    bias = mt == "gpt2"
    hidden = r.int("hidden_size")
    if r.has("n_routed_experts"):  # DeepSeek family
        moe = MoEMLP(
            n_routed=r.int("n_routed_experts", hi=MAX_EXPERTS),
            top_k=r.int("num_experts_per_tok", hi=MAX_EXPERTS),
            expert_intermediate_size=r.int("moe_intermediate_size"),
            n_shared=r.int("n_shared_experts", 0, 0, MAX_EXPERTS),
            shared_intermediate_size=r.int("moe_intermediate_size"),
        )
        first_dense = r.int("first_k_dense_replace", 0, 0, MAX_LAYERS)
        freq = r.int("moe_layer_freq", 1, 1, MAX_LAYERS)
        dense = DenseMLP(r.int("intermediate_size")) if first_dense or freq > 1 else None
        return [moe if i >= first_dense and i % freq == 0 else dense for i in range(n_layers)]
    n_experts = r.int("num_experts", 0, 0, MAX_EXPERTS) or r.int("num_local_experts", 0, 0, MAX_EXPERTS)
    if n_experts:
        top_k = r.int("num_experts_per_tok", None, hi=MAX_EXPERTS) or r.int("experts_per_token", hi=MAX_EXPERTS)
        size = r.int("moe_intermediate_size", None) or r.int("intermediate_size")
        shared = r.int("shared_expert_intermediate_size", 0, 0)
        moe = MoEMLP(n_experts, top_k, size, 1 if shared else 0, shared, bias=mt == "gpt_oss")
        step = r.int("decoder_sparse_step", 1, 1, MAX_LAYERS)
        only_dense = set(r.int_list("mlp_only_layers", 0, MAX_LAYERS)) if r.has("mlp_only_layers") else set()
        if only_dense or step > 1:
            dense = DenseMLP(r.int("intermediate_size"))
            return [moe if i not in only_dense and (i + 1) % step == 0 else dense for i in range(n_layers)]
        return [moe] * n_layers
    if mt == "gpt2":
        return [DenseMLP(r.int("intermediate_size", 4 * hidden), gated=False, bias=bias)] * n_layers
    return [DenseMLP(r.int("intermediate_size"))] * n_layers


def _native_weights(cfg: dict[str, Any]) -> tuple[str, str, str]:
    """Formats of (embeddings + lm_head, routed experts, the rest) as released, from torch_dtype,
    quantization_config (fp8 block-scaled: DeepSeek; mxfp4 on experts only: gpt-oss) and V4's
    expert_dtype ("fp4": packed e2m1 with an 8-bit scale per 32 values, the MXFP4 layout)."""
    dtype = {"float32": "fp32", "float16": "fp16"}.get(str(cfg.get("torch_dtype") or cfg.get("dtype")), "bf16")
    experts = rest = dtype
    q = cfg.get("quantization_config")
    method = q.get("quant_method") if isinstance(q, dict) else None
    if method == "fp8":
        experts = rest = "fp8"
    elif method == "mxfp4":
        experts = "mxfp4"
    if cfg.get("expert_dtype") == "fp4" or cfg.get("model_type") == "deepseek_v4":
        # V4 checkpoints store routed experts as packed fp4 + an e8m0 scale per 32 values, whether or
        # not the config says expert_dtype (the V4-Pro file does not; its tensor list shows it)
        experts = "mxfp4"
    return dtype, experts, rest


def from_hf_config(cfg: dict[str, Any], name: str | None = None) -> ModelSpec:
    """Build a ModelSpec from the dict of a Hugging Face config.json (see module docstring)."""
    if not isinstance(cfg, dict):
        raise ValueError("the config must be a JSON object.")
    r = _Reader(_flatten(cfg))
    mt = r.cfg["model_type"]
    hidden = r.int("hidden_size")
    n_layers = r.int("num_hidden_layers", hi=MAX_LAYERS)
    vocab = r.int("vocab_size", hi=MAX_VOCAB)
    notes: list[str] = []
    extra: list[tuple[str, int]] = []

    if r.has("compress_ratios") or mt == "deepseek_v4":
        attention = _v4(r, n_layers)
        notes.append(
            "DeepSeek V4: each layer compresses the cache by its compress_ratios entry "
            "(4: CSA with an indexer, 128: HCA, 0: sliding window only)."
        )
    elif r.has("kv_lora_rank"):
        fields = _mla_fields(r)
        if r.has("index_topk") or mt == "deepseek_v32":
            spec: AttentionSpec = DSASpec(
                **fields,
                index_n_heads=r.int("index_n_heads", hi=MAX_HEADS),
                index_head_dim=r.int("index_head_dim"),
                index_topk=r.int("index_topk", hi=1 << 30),
            )
        else:
            spec = MLASpec(**fields)
        attention = [spec] * n_layers
        if r.has("num_key_value_heads"):
            notes.append(
                f"num_key_value_heads ({r.cfg['num_key_value_heads']}) is ignored: MLA caches one "
                "shared latent per token, not per-head keys and values."
            )
    else:
        attention = _gqa(r, hidden, _windows(r, n_layers))

    if mt == "gpt2":
        extra.append(("position embeddings", r.int("n_positions", 1024) * hidden))
    if r.has("hc_mult"):
        from core.v4 import hyper_connection_params

        extra.append(("hyper-connections", hyper_connection_params(hidden, n_layers, r.int("hc_mult", hi=64))))
    n_mtp = r.int("num_nextn_predict_layers", 0, 0, MAX_LAYERS)
    native = _native_weights(r.cfg)
    if len(set(native)) > 1:
        notes.append(
            f"released weights: embeddings {native[0]}, routed experts {native[1]}, the rest {native[2]} "
            "(from quantization_config / expert_dtype)."
        )
    elif native[0] != "bf16":
        notes.append(f"released weights: {native[0]} (torch_dtype).")
    return ModelSpec(
        name=name or str(cfg.get("_name_or_path") or mt),
        model_type=mt,
        hidden_size=hidden,
        vocab_size=vocab,
        attention=tuple(attention),
        mlp=tuple(_mlps(r, n_layers)),
        tie_word_embeddings=r.bool("tie_word_embeddings", False),
        n_mtp_layers=n_mtp,
        native_weights=native,
        extra_params=tuple(extra),
        notes=tuple(notes),
    )
