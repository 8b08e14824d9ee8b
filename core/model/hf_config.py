"""Turn a real Hugging Face `config.json` into a ModelSpec, or refuse with one sentence that names why.

Families read: llama, mistral, mixtral, qwen2, qwen2_moe, qwen3, qwen3_moe, gemma, gemma2, gemma3
(incl. the multimodal `text_config` nesting), gpt2, gpt_oss, deepseek_v2, deepseek_v3 (and files
such as Kimi-K2 that reuse it), deepseek_v32, deepseek_v4; and the hybrids qwen3_next and qwen3_5
(Gated DeltaNet + attention), nemotron_h (Mamba-2 + attention), llama4 (chunked local attention),
gemma4 (per-type head shapes), mimo_v2_flash (per-type heads, K and V of different widths),
nemotron-nas / DeciLM (`block_configs`) and kimi_linear (KDA + MLA). Unknown families with the
standard fields (hidden_size, num_hidden_layers, num_attention_heads, ...) work too.

Never a guessed layout: a config that carries a field that changes the cache layout and that the
parser did not read (any `*_pattern`, `block_configs`, `attention_chunk_size`, `linear_*`, `mamba_*`,
`ssm_*`, per-type head sizes, an unknown `layer_types` value, ...) is refused, naming the field.
Parameter-only fields (`vocab_size`, `intermediate_size`) may be missing: the cache is still exact and
the parameter count says it is unknown (`ModelSpec.params_unknown`).

Anything inconsistent raises ValueError with a sentence that names the field; values from the file are
shown truncated, never whole.
"""

from __future__ import annotations

import codecs
import json
from pathlib import Path
from typing import Any

from core.model.config_keys import HARMLESS
from core.model.specs import (
    MAX_EXPERTS,
    MAX_HEADS,
    MAX_LAYERS,
    MAX_VOCAB,
    MAX_WIDTH,
    AttentionSpec,
    BlockSparseSpec,
    CompressedSpec,
    ContextLimits,
    DenseMLP,
    DSASpec,
    GQASpec,
    LightningSpec,
    LinearAttentionSpec,
    Mamba1Spec,
    Mamba2Spec,
    MLASpec,
    MLPSpec,
    ModelSpec,
    MoEMLP,
    NoMixer,
    ParallelSpec,
    RopeScaling,
    ShortConvSpec,
    unknown_parameters,
)
from core.model.units import truncate

MAX_CONFIG_BYTES = 1 << 20  # 1 MiB: real config.json files are a few KiB
MAX_DEPTH = 32  # real configs nest 3-4 levels; json.loads recurses, so the depth is checked first
MAX_DIGITS = 40  # digits of one JSON number
SHOW_CHARS = 60  # characters of a value from the file an error message shows

FAMILY_DEFAULTS: dict[str, dict[str, Any]] = {
    "gemma": {"vocab_size": 256_000},
    "gemma2": {"vocab_size": 256_000, "sliding_window": 4096},
    "gemma3_text": {  # transformers' Gemma3TextConfig defaults, which it fills into minimal files (Gemma 3 4B)
        "num_attention_heads": 8,
        "num_key_value_heads": 4,
        "head_dim": 256,
        "vocab_size": 262_208,
        "sliding_window": 4096,
        "sliding_window_pattern": 6,
        "max_position_embeddings": 131_072,
    },
    "gpt2": {"vocab_size": 50_257, "n_positions": 1024},
    "falcon": {"max_position_embeddings": 2048},  # FalconConfig's default; Falcon-7B's file omits it
}

# Whether the output head shares the embedding table when a file does not say (tie_word_embeddings), as
# each family's transformers config class defaults (tests/test_config_families.py checks every entry
# against the library). A family not listed here, in a file without the field, gets no parameter count.
TIED_BY_DEFAULT = {
    **dict.fromkeys(["gemma", "gemma2", "gemma3_text", "gemma4_text", "gpt2", "gpt_bigcode", "lfm2"], True),
    **dict.fromkeys(["starcoder2", "falcon", "smollm3", "cohere", "zamba2"], True),
    **dict.fromkeys(["llama", "llama4_text", "mistral", "mixtral", "qwen2", "qwen2_moe", "qwen3", "qwen3_moe"], False),
    **dict.fromkeys(["phi", "phi3", "phimoe", "deepseek_v2", "deepseek_v3", "gpt_oss", "exaone4", "jamba"], False),
    **dict.fromkeys(["falcon_h1", "granitemoehybrid", "nemotron_h", "minimax", "minimax_m2", "glm4_moe"], False),
    **dict.fromkeys(["olmo3", "qwen3_next", "kimi_linear", "mimo_v2_flash"], False),
}

# GPT-2 style names for the standard fields.
ALIASES = {
    "n_embd": "hidden_size",
    "n_layer": "num_hidden_layers",
    "n_head": "num_attention_heads",
    "n_inner": "intermediate_size",
}


def show(value: Any, limit: int = SHOW_CHARS) -> str:
    """A value from the file, as its repr cut to `limit` characters (the rest counted, not shown)."""
    if isinstance(value, str):  # cut first, so a huge string is never copied whole into a repr
        more = len(value) - limit
        return repr(value[:limit]) + (f" (... {more:,} more characters)" if more > 0 else "")
    return truncate(repr(value), limit)


def _decode(data: bytes, source: str) -> str:
    """UTF-8 (with or without a BOM) or UTF-16 (with a BOM, or detected from zero bytes, as Notepad saves)."""
    if data.startswith(codecs.BOM_UTF8):
        encoding = "utf-8-sig"
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding = "utf-16"
    elif len(data) >= 2 and data[0] == 0 and data[1] != 0:
        encoding = "utf-16-be"
    elif len(data) >= 2 and data[1] == 0 and data[0] != 0:
        encoding = "utf-16-le"
    else:
        encoding = "utf-8"
    try:
        return data.decode(encoding)
    except UnicodeDecodeError:
        raise ValueError(f"{source} is not text in UTF-8 or UTF-16; save it as UTF-8 and try again.") from None


def _check_depth(text: str, source: str) -> None:
    """Refuse nesting deeper than MAX_DEPTH before json.loads (which recurses) sees it."""
    depth, in_string, escaped = 0, False, False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                raise ValueError(
                    f"{source} nests objects or lists more than {MAX_DEPTH} levels deep; a config.json nests 3 or 4."
                )
        elif ch in "]}":
            depth -= 1


def _parse_int(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_DIGITS:
        raise ValueError(f"a number with {len(digits):,} digits")
    return int(digits)


def load_config_text(data: str | bytes, source: str = "config") -> dict[str, Any]:
    """Parse the text of a config.json. Refuses, with one sentence each: files over 1 MiB, empty files,
    encodings other than UTF-8/UTF-16, nesting deeper than MAX_DEPTH, numbers longer than MAX_DIGITS,
    non-JSON and non-objects."""
    raw = data.encode() if isinstance(data, str) else bytes(data)
    size = len(raw)
    if size > MAX_CONFIG_BYTES:
        raise ValueError(
            f"{source} is {size / 2**20:.2f} MiB ({size:,} bytes); a config.json is a few KiB, the limit is 1 MiB."
        )
    text = data if isinstance(data, str) else _decode(raw, source)
    if not text.strip():
        raise ValueError(f'{source} is empty; a config.json is a JSON object such as {{"hidden_size": 4096, ...}}.')
    _check_depth(text, source)
    try:
        cfg = json.loads(text, parse_int=_parse_int)
    except json.JSONDecodeError as e:
        raise ValueError(f"{source} is not valid JSON (line {e.lineno}, column {e.colno}): {e.msg}.") from None
    except (ValueError, RecursionError) as e:
        raise ValueError(f"{source} is not a usable config: it holds {e}; real configs hold small numbers.") from None
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


class MissingField(ValueError):
    """A required field is absent (the parser turns this into `params_unknown` where only the parameter
    count needs the field)."""

    def __init__(self, key: str):
        super().__init__(f"the config has no {key!r}, which is required.")
        self.key = key


class _Reader:
    """Typed, bounded access to config fields; every error names the field. Remembers what it read, so
    the parser can refuse layout fields nobody read."""

    def __init__(self, cfg: dict[str, Any], prefix: str = ""):
        self.cfg = cfg
        self.prefix = prefix  # "block_configs[3].attention." for nested readers
        self.used: set[str] = set()
        self.children: list[_Reader] = []  # readers of nested objects, walked by `unaccounted`

    def child(self, cfg: Any, name: str) -> _Reader:
        """A reader of a nested object (`name` is its place, e.g. "block_configs[3]"), whose keys are
        accounted for like the top level's."""
        if not isinstance(cfg, dict):
            raise ValueError(f"{self.prefix}{name} must be a JSON object, got {show(cfg)}.")
        sub = _Reader(cfg, f"{self.prefix}{name}.")
        self.children.append(sub)
        return sub

    def sub(self, key: str) -> _Reader:
        """The nested object at `key`, read field by field."""
        return self.child(self.get(key), key)

    def unaccounted(self) -> list[str]:
        """Keys (with their nested place) that nobody read and that the harmless table does not list: each
        may change what is cached, so the config is refused while any is left. A null value is absent."""
        left = [(k, v) for k, v in self.cfg.items() if v is not None and k not in self.used and k not in HARMLESS]
        # per-layer lists and nested objects first: they are the likeliest to lay out a cache
        left.sort(key=lambda kv: not isinstance(kv[1], list | dict))
        out = [self.prefix + k for k, _ in left]
        for c in self.children:
            out += c.unaccounted()
        return out

    def get(self, key: str) -> Any:
        self.used.add(key)
        return self.cfg.get(key)

    def ignore(self, *keys: str) -> None:
        """Fields read and deliberately not used (they change nothing the engine counts)."""
        self.used.update(keys)

    def has(self, key: str) -> bool:
        return self.get(key) is not None

    def int(self, key: str, default: Any = ..., lo: int = 1, hi: int = MAX_WIDTH) -> Any:
        v = self.get(key)
        name = self.prefix + key
        if v is None:
            if default is ...:
                raise MissingField(name)
            return default
        if isinstance(v, float) and v.is_integer() and abs(v) < 2**53:
            v = int(v)
        if isinstance(v, bool) or not isinstance(v, int):
            raise ValueError(f"{name} must be a whole number, got {show(v)}.")
        if not lo <= v <= hi:
            raise ValueError(f"{name} must be between {lo:,} and {hi:,}, got {v:,}.")
        return v

    def bool(self, key: str, default: bool) -> bool:
        v = self.get(key)
        if v is None:
            return default
        if not isinstance(v, bool):
            raise ValueError(f"{self.prefix}{key} must be true or false, got {show(v)}.")
        return v

    def str(self, key: str, default: Any = ..., max_len: int = 100_000) -> Any:
        v = self.get(key)
        if v is None:
            if default is ...:
                raise MissingField(self.prefix + key)
            return default
        if not isinstance(v, str) or len(v) > max_len:
            raise ValueError(f"{self.prefix}{key} must be a string of at most {max_len:,} characters, got {show(v)}.")
        return v

    def dict(self, key: str) -> dict[str, Any]:
        v = self.get(key)
        if not isinstance(v, dict):
            raise ValueError(f"{self.prefix}{key} must be a JSON object, got {show(v)}.")
        return v

    def int_list(self, key: str, lo: int = 0, hi: int = MAX_WIDTH) -> list[int]:
        v = self.get(key)
        if not isinstance(v, list) or len(v) > 100_000:
            raise ValueError(f"{self.prefix}{key} must be a list of whole numbers, got {show(v)}.")
        return [_as_int(self.prefix + key, i, x, lo, hi) for i, x in enumerate(v)]


def _as_int(key: str, i: int, x: Any, lo: int, hi: int) -> int:
    if isinstance(x, float) and x.is_integer() and abs(x) < 2**53:
        x = int(x)
    if isinstance(x, bool) or not isinstance(x, int) or not lo <= x <= hi:
        raise ValueError(f"{key}[{i}] must be a whole number between {lo:,} and {hi:,}, got {show(x)}.")
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
    if not isinstance(mt, str) or len(mt) > 100:
        raise ValueError(f"model_type must be a short string, got {show(mt)}.")
    mt = FAMILY_ALIASES.get(mt, mt)
    out["model_type"] = mt
    for k, v in FAMILY_DEFAULTS.get(mt, {}).items():
        if out.get(k) is None:
            out[k] = v
    return out


# Fields that count multi-token-prediction modules, by family (each read; the largest is the count).
MTP_COUNTS = ("num_nextn_predict_layers", "mtp_num_hidden_layers", "num_mtp_modules", "_num_mtp_layers")

# Model types that are the same family for this parser.
FAMILY_ALIASES = {
    "RefinedWebModel": "falcon",  # Falcon-7B/40B's original files; HF maps them to FalconConfig
    "RefinedWeb": "falcon",
    "gemma3": "gemma3_text",  # a text-only gemma3 file without nesting
    "gemma4": "gemma4_text",
    "llama4": "llama4_text",
    "qwen3_5_text": "qwen3_5",
    "qwen3_5_moe": "qwen3_5",
    "qwen3_5_moe_text": "qwen3_5",
    "deci": "nemotron-nas",
}

# layer_types values this parser understands, and what each is.
FULL_TYPES = {"full_attention", "attention", "global"}
SLIDING_TYPES = {"sliding_attention", "sliding_window", "local"}


def _dtype_name(value: Any) -> str | None:
    return {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32", "half": "fp16", "float": "fp32"}.get(
        str(value).removeprefix("torch.")
    )


def _model_dtype(r: _Reader) -> str:
    """The model's dtype (vLLM's "auto" for caches and state): torch_dtype / dtype, bf16 when absent."""
    return _dtype_name(r.get("torch_dtype") or r.get("dtype")) or "bf16"


def _state_dtype(r: _Reader, key: str, default: str) -> str:
    v = r.get(key)
    if v is None:
        return default
    name = _dtype_name(v)
    if name is None:
        raise ValueError(f"{key} must be float32, bfloat16 or float16, got {show(v)}.")
    return name


def _chunk_size(r: _Reader) -> int | None:
    """The Mamba-2 prefill scan's chunk (mamba_chunk_size, else chunk_size; vLLM's get_mamba_chunk_size):
    it sets no state, but vLLM aligns its prefix-caching blocks to it."""
    key = "mamba_chunk_size" if r.get("mamba_chunk_size") is not None else "chunk_size"
    other = "chunk_size" if key == "mamba_chunk_size" else "mamba_chunk_size"
    r.ignore(other)
    return r.int(key, hi=1 << 20) if r.get(key) is not None else None


def _layer_types(r: _Reader, n_layers: int, known: set[str]) -> list[str] | None:
    types = r.get("layer_types")
    if types is None:
        return None
    if not isinstance(types, list) or len(types) < n_layers or not all(isinstance(t, str) for t in types):
        raise ValueError(f"layer_types must be a list of {n_layers} strings, one per layer.")
    for i, t in enumerate(types[:n_layers]):
        if t not in known:
            raise ValueError(
                f"layer_types[{i}] is {show(t)}, a layer type this engine does not support for "
                f"{r.cfg['model_type']}; refusing to guess its cache."
            )
    return types[:n_layers]


def _head_dim(r: _Reader, hidden: int, n_heads: int, *keys: str) -> int:
    for k in keys:
        if r.has(k):
            return r.int(k)
    if hidden % n_heads:
        raise ValueError(
            f"hidden_size ({hidden}) must be a multiple of num_attention_heads ({n_heads}) "
            "when the config gives no head_dim."
        )
    return hidden // n_heads


def _kv_heads(r: _Reader, key: str, n_heads: int, default: Any = ...) -> int:
    n_kv = r.int(key, n_heads if default is ... else default, hi=MAX_HEADS)
    if n_heads % n_kv:
        raise ValueError(f"num_attention_heads ({n_heads}) must be a multiple of {key} ({n_kv}).")
    return n_kv


def _windows(r: _Reader, n_layers: int) -> list[int | None]:
    """Per-layer sliding window (None = full attention), from whichever fields the family uses."""
    cfg, mt = r.cfg, r.cfg["model_type"]
    if r.has("use_sliding_window") and not r.bool("use_sliding_window", False):
        # Qwen2/Qwen3: HF sets sliding_window to None unless use_sliding_window, so every layer is full
        r.ignore("sliding_window", "max_window_layers")
        sw = None
    else:
        sw = r.int("sliding_window", None, 1, 1 << 30) if r.has("sliding_window") else None
    if mt == "gemma2" and r.has("sliding_window_size") and r.int("sliding_window_size", hi=1 << 30) != sw:
        raise ValueError("sliding_window and sliding_window_size disagree.")
    pattern = _window_pattern(r, n_layers) if sw is not None else None
    r.ignore("sliding_window_pattern")  # without a window every layer is global (HF Exaone4Config, Gemma3)
    types = _layer_types(r, n_layers, FULL_TYPES | SLIDING_TYPES)
    if types is not None:
        sliding = [t in SLIDING_TYPES for t in types]
        if any(sliding) and sw is None:
            raise ValueError("layer_types names sliding layers but sliding_window is missing.")
        if pattern is not None and pattern != sliding:
            raise ValueError("layer_types and sliding_window_pattern disagree on which layers slide.")
        return [sw if s else None for s in sliding]
    if sw is None:
        return [None] * n_layers
    if mt == "gemma2" or mt == "gpt_oss":  # alternate: even layers local, odd layers global
        return [sw if i % 2 == 0 else None for i in range(n_layers)]
    if pattern is not None:  # gemma3, EXAONE-4: every p-th layer is global
        return [sw if s else None for s in pattern]
    if "use_sliding_window" in cfg:  # qwen2/qwen3: off unless asked; then layers >= max_window_layers
        if not r.bool("use_sliding_window", False):
            return [None] * n_layers
        first = r.int("max_window_layers", 0, 0, MAX_LAYERS)
        return [sw if i >= first else None for i in range(n_layers)]
    return [sw] * n_layers  # mistral and other all-sliding models


def _window_pattern(r: _Reader, n_layers: int) -> list[bool] | None:
    """Which layers slide, from `sliding_window_pattern`: an int p (Gemma-3, HF Exaone4Config: layer i is
    global iff (i + 1) % p == 0), or EXAONE-4's letters ("LLLG": L local, G global, repeated)."""
    v = r.get("sliding_window_pattern")
    if v is None:
        return None
    if isinstance(v, str):
        if not v or len(v) > MAX_LAYERS or set(v) - set("LG"):
            raise ValueError(f"sliding_window_pattern must be letters L (local) and G (global), got {show(v)}.")
        return [v[i % len(v)] == "L" for i in range(n_layers)]
    p = r.int("sliding_window_pattern", hi=MAX_LAYERS)
    return [(i + 1) % p != 0 for i in range(n_layers)]


def _gqa(r: _Reader, hidden: int, windows: list[int | None]) -> list[AttentionSpec]:
    n_heads = r.int("num_attention_heads", hi=MAX_HEADS)
    mt = r.cfg["model_type"]
    if mt == "gpt_bigcode":  # HF GPTBigCodeConfig: multi_query (one key/value head) unless it says false
        n_kv = 1 if r.bool("multi_query", True) else n_heads
    elif mt == "falcon":  # HF FalconConfig: num_kv_heads with the new decoder, else one head with multi_query
        if r.bool("new_decoder_architecture", False):
            n_kv = _kv_heads(r, "num_kv_heads", n_heads)
            r.ignore("multi_query")
        else:
            n_kv = 1 if r.bool("multi_query", True) else n_heads
            r.ignore("num_kv_heads")
        # ALiBi vs RoPE and the residual wiring change values and norms, not the cache
        r.ignore("alibi", "parallel_attn", "apply_residual_connection_post_layernorm")
    else:
        n_kv = _kv_heads(r, "num_key_value_heads", n_heads)
    head_dim = _head_dim(r, hidden, n_heads, "head_dim")
    qkv_bias, o_bias = _attention_biases(r, mt)
    return [GQASpec(n_heads, n_kv, head_dim, w, qkv_bias, o_bias) for w in windows]


# Families whose MLP is two matrices with an activation between (not gated): model_type -> the field
# that gives its width (None: 4 x hidden_size when absent, as GPT-2 and Falcon default)
PLAIN_MLP = {"gpt2": "intermediate_size", "gpt_bigcode": "intermediate_size", "phi": "intermediate_size"}
PLAIN_MLP |= {"falcon": "ffn_hidden_size", "starcoder2": "intermediate_size"}


def _family_bias(r: _Reader, mt: str) -> bool | None:
    """The one bias switch of families that have one for every projection (Falcon `bias`, StarCoder2
    `use_bias`); GPT-2, GPTBigCode and Phi always have biases; None for the others."""
    if mt in ("gpt2", "gpt_bigcode", "phi"):
        r.ignore("attention_bias")  # HF's Phi attention has biases whatever a file says here
        return True
    if mt == "falcon":
        return r.bool("bias", False)
    if mt == "starcoder2":
        return r.bool("use_bias", True)
    return None


def _attention_biases(r: _Reader, mt: str) -> tuple[bool, bool]:
    """(q/k/v bias, output bias): Qwen2 has biases on q, k and v only; attention_bias (and Qwen3-Coder's
    qkv_bias) switch them on elsewhere."""
    family = _family_bias(r, mt)
    if family is not None:
        return family, family
    attention = r.bool("attention_bias", False)
    return mt in ("qwen2", "qwen2_moe") or attention or r.bool("qkv_bias", False), attention


def _mla_fields(r: _Reader) -> dict[str, Any]:
    if r.bool("attention_bias", False):
        raise ValueError("attention_bias true is not supported for MLA (DeepSeek's MLA has no projection biases).")
    # transformers writes head_dim = qk_rope_head_dim into saved DeepSeek-V2/V3 configs; MLA's shapes are
    # the qk_*/v_head_dim fields
    r.ignore("head_dim")
    return dict(
        n_heads=r.int("num_attention_heads", hi=MAX_HEADS),
        kv_lora_rank=r.int("kv_lora_rank"),
        qk_nope_head_dim=r.int("qk_nope_head_dim", lo=0),
        qk_rope_head_dim=r.int("qk_rope_head_dim", lo=0),
        v_head_dim=r.int("v_head_dim"),
        q_lora_rank=r.int("q_lora_rank", None),
    )


def _indexer_layers(r: _Reader, n_layers: int) -> list[bool]:
    """Which layers run their own indexer, as vLLM's compute_skip_topk_layers and HF GlmMoeDsaConfig decide:
    `indexer_types` ("full" / "shared") when given; else `index_topk_pattern` (F / S); else layer i skips iff
    max(i - index_skip_topk_offset + 1, 0) % index_topk_freq != 0 (freq 1, offset 2 by default: every layer
    has one). Fields that are given must agree."""
    freq = r.int("index_topk_freq", 1, hi=MAX_LAYERS)
    offset = r.int("index_skip_topk_offset", 2, 0, MAX_LAYERS)
    by_freq = [max(i - offset + 1, 0) % freq == 0 for i in range(n_layers)]
    lists = {}
    if r.has("indexer_types"):
        lists["indexer_types"] = [
            k == "F" for k in _per_layer_kinds(r, n_layers, "indexer_types", {"full": "F", "shared": "S"})
        ]
    if r.has("index_topk_pattern"):
        pattern = r.str("index_topk_pattern", max_len=MAX_LAYERS)
        if len(pattern) != n_layers or set(pattern) - set("FS"):
            raise ValueError(
                f"index_topk_pattern must be {n_layers} letters F (full) or S (shared), got {show(pattern)}."
            )
        lists["index_topk_pattern"] = [c == "F" for c in pattern]
    if r.has("index_topk_freq") or r.has("index_skip_topk_offset"):
        lists["index_topk_freq and index_skip_topk_offset"] = by_freq
    if len({tuple(v) for v in lists.values()}) > 1:
        raise ValueError(f"{' and '.join(lists)} disagree on which layers run their own indexer.")
    return next(iter(lists.values()), by_freq)


def _mla(r: _Reader, n_layers: int, notes: list[str]) -> list[AttentionSpec]:
    fields = _mla_fields(r)
    if r.has("qk_head_dim") and r.int("qk_head_dim") != fields["qk_nope_head_dim"] + fields["qk_rope_head_dim"]:
        raise ValueError("qk_head_dim must equal qk_nope_head_dim + qk_rope_head_dim.")
    if r.has("layer_types"):  # GLM-5: every layer the same indexed MLA
        _per_layer_kinds(r, n_layers, "layer_types", {t: t for t in ("deepseek_sparse_attention", "indexed_attention")})
    if r.has("index_topk") or r.cfg["model_type"] == "deepseek_v32":
        dsa = dict(
            **fields,
            index_n_heads=r.int("index_n_heads", hi=MAX_HEADS),
            index_head_dim=r.int("index_head_dim"),
            index_topk=r.int("index_topk", hi=1 << 30),
        )
        own = _indexer_layers(r, n_layers)
        if not all(own):
            notes.append(
                f"{sum(own)} of {n_layers} layers run their own indexer and cache an indexer key; the other "
                f"{n_layers - sum(own)} attend to the tokens an earlier layer's indexer chose (indexer_types)."
            )
        r.ignore("index_share_for_mtp_iteration")  # how the MTP draft reuses the index: not a decoder layer
        layers: list[AttentionSpec] = [DSASpec(**dsa, own_indexer=o) for o in own]
    else:
        layers = [MLASpec(**fields)] * n_layers
    if r.has("num_key_value_heads"):
        n_kv = r.int("num_key_value_heads", hi=MAX_HEADS)
        notes.append(
            f"num_key_value_heads ({n_kv}) is ignored: MLA caches one shared latent per token, "
            "not per-head keys and values."
        )
    return layers


def _v4(r: _Reader, n_layers: int, notes: list[str]) -> list[AttentionSpec]:
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
    if r.int("num_key_value_heads", 1, hi=MAX_HEADS) != 1:
        raise ValueError("num_key_value_heads must be 1 for DeepSeek V4 (one shared K=V head per layer).")
    r.ignore("attention_bias")  # V4's attention has no projection biases; the reference code has no switch
    notes.append(
        "DeepSeek V4: each layer compresses the cache by its compress_ratios entry "
        "(4: CSA with an indexer, 128: HCA, 0: sliding window only)."
    )
    return [CompressedSpec(compress_ratio=m, **common) for m in ratios[:n_layers]]


def _qwen_next(r: _Reader, hidden: int, n_layers: int, notes: list[str], unknown: list[str]) -> list[AttentionSpec]:
    """Qwen3-Next and Qwen3.5: Gated DeltaNet layers, and gated full attention every
    `full_attention_interval`-th layer (HF Qwen3NextConfig: layer i is full iff (i+1) % interval == 0;
    an explicit layer_types wins). State dtypes as vLLM keeps them: the conv state in the model dtype,
    the recurrent state in `mamba_ssm_dtype` when the config names one (Qwen3.5: float32)."""
    types = _layer_types(r, n_layers, {"linear_attention", "full_attention"})
    if types is None:
        interval = r.int("full_attention_interval", hi=MAX_LAYERS)
        types = ["full_attention" if (i + 1) % interval == 0 else "linear_attention" for i in range(n_layers)]
    else:
        r.ignore("full_attention_interval")
    if r.bool("use_sliding_window", False):
        raise ValueError(f"use_sliding_window is not supported for {r.cfg['model_type']}: its attention is full.")
    r.ignore("sliding_window", "max_window_layers")  # off: HF Qwen3NextConfig keeps them for Qwen2 compatibility
    n_heads = r.int("num_attention_heads", hi=MAX_HEADS)
    bias = r.bool("attention_bias", False)
    full = GQASpec(
        n_heads,
        _kv_heads(r, "num_key_value_heads", n_heads),
        _head_dim(r, hidden, n_heads, "head_dim"),
        qkv_bias=bias,
        o_bias=bias,
        output_gate=r.bool("attn_output_gate", True),
    )
    model = _model_dtype(r)
    linear = LinearAttentionSpec(
        n_key_heads=r.int("linear_num_key_heads", hi=MAX_HEADS),
        n_value_heads=r.int("linear_num_value_heads", hi=MAX_HEADS),
        key_head_dim=r.int("linear_key_head_dim"),
        value_head_dim=r.int("linear_value_head_dim"),
        conv_kernel=r.int("linear_conv_kernel_dim", hi=1024),
        variant="GDN",
        ssm_dtype=_state_dtype(r, "mamba_ssm_dtype", model),
        conv_dtype=model,
    )
    notes.append(
        f"Gated DeltaNet: {types.count('linear_attention')} linear-attention layers keep a fixed state per "
        f"sequence (recurrent {linear.ssm_dtype}, convolution {linear.conv_dtype}) instead of a KV cache."
    )
    return [full if t == "full_attention" else linear for t in types]


def _nemotron_h(r: _Reader, hidden: int, n_layers: int, notes: list[str], unknown: list[str]) -> tuple[list, list]:
    """Nemotron-H: one block per layer, from `hybrid_override_pattern` (M Mamba-2, * attention, - MLP with
    squared ReLU, E MoE; HF NemotronHConfig). SSM state in `mamba_ssm_cache_dtype` (float32 when absent,
    as vLLM's NemotronH config does), conv state in the model dtype. Newer files (Nemotron 3 Super and
    Ultra) give the blocks as `layers_block_type` ("mamba", "attention", "mlp", "moe"), whose length is the
    depth. The multi-token-prediction blocks (`mtp_*`) are not run by default serving (a note says so)."""
    if r.has("layers_block_type"):
        letters = {"mamba": "M", "attention": "*", "mlp": "-", "moe": "E"}
        pattern = "".join(_per_layer_kinds(r, n_layers, "layers_block_type", letters))
        if r.has("hybrid_override_pattern") and r.str("hybrid_override_pattern", max_len=MAX_LAYERS) != pattern:
            raise ValueError("layers_block_type and hybrid_override_pattern disagree.")
    else:
        pattern = r.str("hybrid_override_pattern", max_len=MAX_LAYERS)
    r.ignore("mtp_hybrid_override_pattern", "mtp_layers_block_type", "moe_shared_expert_overlap")
    if len(pattern) != n_layers:
        raise ValueError(f"hybrid_override_pattern has {len(pattern)} characters; num_hidden_layers is {n_layers}.")
    for i, ch in enumerate(pattern):
        if ch not in "M*-E":
            raise ValueError(
                f"hybrid_override_pattern[{i}] is {show(ch)}; this engine knows M (Mamba-2), * (attention), "
                "- (MLP) and E (MoE), and refuses to guess the rest."
            )
    model = _model_dtype(r)
    attn = mamba = None
    if "*" in pattern:
        n_heads = r.int("num_attention_heads", hi=MAX_HEADS)
        bias = r.bool("attention_bias", False)
        attn = GQASpec(
            n_heads,
            _kv_heads(r, "num_key_value_heads", n_heads),
            _head_dim(r, hidden, n_heads, "head_dim", "attention_head_dim"),
            qkv_bias=bias,
            o_bias=bias,
        )
    if "M" in pattern:
        mamba = Mamba2Spec(
            n_heads=r.int("mamba_num_heads", hi=MAX_HEADS),
            head_dim=r.int("mamba_head_dim"),
            state_size=r.int("ssm_state_size"),
            n_groups=r.int("n_groups", hi=MAX_HEADS),
            conv_kernel=r.int("conv_kernel", hi=1024),
            ssm_dtype=_state_dtype(r, "mamba_ssm_cache_dtype", "fp32"),
            conv_dtype=model,
            conv_bias=r.bool("use_conv_bias", True),
            proj_bias=r.bool("use_bias", False),
            ssm_dtype_stated=r.get("mamba_ssm_cache_dtype") is not None,
            chunk_size=_chunk_size(r),
        )
        # the mixer's width is mamba_num_heads x mamba_head_dim (HF NemotronHMamba2Mixer), not expand x hidden
        r.ignore("mamba_hidden_act", "mamba_proj_bias", "expand")
    mlp: MLPSpec | None = None
    moe: MLPSpec | None = None
    try:
        if "E" in pattern and r.bool("mlp_bias", False):
            raise ValueError("mlp_bias true on Nemotron-H's experts is not supported: expert biases are not counted.")
        r.ignore("intermediate_size", "mlp_bias")  # read next when some layers are dense MLPs
        if "-" in pattern:
            mlp = DenseMLP(r.int("intermediate_size"), gated=False, bias=r.bool("mlp_bias", False))
        if "E" in pattern:
            moe = MoEMLP(
                n_routed=r.int("n_routed_experts", hi=MAX_EXPERTS),
                top_k=r.int("num_experts_per_tok", hi=MAX_EXPERTS),
                expert_intermediate_size=r.int("moe_intermediate_size"),
                n_shared=r.int("n_shared_experts", 0, 0, MAX_EXPERTS),
                shared_intermediate_size=r.int("moe_shared_expert_intermediate_size", 0, 0),
                gated=False,
                latent_size=r.int("moe_latent_size", None),
            )
    except MissingField as e:
        unknown.append(e.key)
    blocks = {"M": (mamba, None), "*": (attn, None), "-": (NoMixer(), mlp), "E": (NoMixer(), moe)}
    notes.append(
        f"Nemotron-H: {pattern.count('*')} attention, {pattern.count('M')} Mamba-2 and "
        f"{pattern.count('-') + pattern.count('E')} MLP layers; Mamba-2 layers keep a "
        f"fixed state per sequence (SSM {mamba.ssm_dtype if mamba else '-'}, convolution {model})."
    )
    return [blocks[c][0] for c in pattern], [blocks[c][1] for c in pattern]


def _llama4(r: _Reader, hidden: int, n_layers: int, notes: list[str], unknown: list[str]) -> tuple[list, list]:
    """Llama-4: chunked local attention on the RoPE layers (`no_rope_layers[i]` 1; default every layer
    but each 4th, HF Llama4TextConfig), global attention on the others; MoE every
    `interleave_moe_layer_step`-th layer with one routed expert and a shared expert."""
    n_heads = r.int("num_attention_heads", hi=MAX_HEADS)
    n_kv = _kv_heads(r, "num_key_value_heads", n_heads)
    head_dim = _head_dim(r, hidden, n_heads, "head_dim")
    bias = r.bool("attention_bias", False)
    chunk = r.int("attention_chunk_size", None, hi=1 << 30)
    rope_layers = r.get("no_rope_layers")
    if rope_layers:
        uses_rope = r.int_list("no_rope_layers", 0, 1)
        if len(uses_rope) < n_layers:
            raise ValueError(f"no_rope_layers has {len(uses_rope)} entries; it needs one per layer ({n_layers}).")
    else:
        interval = r.int("no_rope_layer_interval", 4, hi=MAX_LAYERS)
        uses_rope = [int((i + 1) % interval != 0) for i in range(n_layers)]
    attention = [
        GQASpec(n_heads, n_kv, head_dim, None, bias, bias, chunk_size=chunk if uses_rope[i] and chunk else None)
        for i in range(n_layers)
    ]
    try:
        step = r.int("interleave_moe_layer_step", 1, hi=MAX_LAYERS)
        moe_layers = set(r.int_list("moe_layers", 0, MAX_LAYERS)) if r.has("moe_layers") else None
        if moe_layers is None:
            moe_layers = set(range(step - 1, n_layers, step))
        size = r.int("intermediate_size")
        moe = MoEMLP(
            n_routed=r.int("num_local_experts", hi=MAX_EXPERTS),
            top_k=r.int("num_experts_per_tok", hi=MAX_EXPERTS),
            expert_intermediate_size=size,
            n_shared=1,
            shared_intermediate_size=size,
            router_bias=False,
        )
        dense = DenseMLP(r.int("intermediate_size_mlp")) if len(moe_layers) < n_layers else None
        r.ignore("intermediate_size_mlp")  # read just above when some layers are dense
        mlps = [moe if i in moe_layers else dense for i in range(n_layers)]
    except MissingField as e:
        unknown.append(e.key)
        mlps = [None] * n_layers
    if chunk:
        n_chunked = sum(1 for a in attention if a.chunk_size)
        notes.append(
            f"Llama-4: {n_chunked} of {n_layers} layers attend within chunks of {chunk:,} tokens "
            "(attention_chunk_size), so they keep at most that many; the NoPE layers attend to everything."
        )
    return attention, mlps


def _gemma4(r: _Reader, hidden: int, n_layers: int, notes: list[str], unknown: list[str]) -> list[AttentionSpec]:
    """Gemma-4: sliding layers with `head_dim` x `num_key_value_heads`, full layers with `global_head_dim`
    and, when `attention_k_eq_v`, `num_global_key_value_heads` (HF Gemma4TextConfig). k_eq_v full layers
    have no v_proj: the value is the key projection's output (v_norm, no RoPE), but K and V are both
    cached (HF Gemma4TextAttention, vLLM loads k_proj into both shards)."""
    if r.int("num_kv_shared_layers", 0, 0, MAX_LAYERS):
        raise ValueError("num_kv_shared_layers is not supported: layers that share another layer's cache.")
    if r.int("hidden_size_per_layer_input", 0, 0):
        raise ValueError("hidden_size_per_layer_input is not supported (per-layer input embeddings).")
    r.ignore("vocab_size_per_layer_input")
    if r.get("use_bidirectional_attention") not in (None, False, "vision"):
        raise ValueError(
            f"use_bidirectional_attention {show(r.get('use_bidirectional_attention'))} is not supported: only "
            'image tokens attending to each other ("vision") keeps the text causal.'
        )
    types = _layer_types(r, n_layers, FULL_TYPES | SLIDING_TYPES)
    if types is None:
        raise MissingField("layer_types")
    n_heads = r.int("num_attention_heads", hi=MAX_HEADS)
    bias = r.bool("attention_bias", False)
    sliding = GQASpec(
        n_heads,
        _kv_heads(r, "num_key_value_heads", n_heads),
        _head_dim(r, hidden, n_heads, "head_dim"),
        r.int("sliding_window", hi=1 << 30),
        bias,
        bias,
    )
    k_eq_v = r.bool("attention_k_eq_v", False)
    global_kv = _kv_heads(r, "num_global_key_value_heads", n_heads) if k_eq_v else sliding.n_kv_heads
    global_dim = r.int("global_head_dim")  # no default guessed: it sets the full layers' cache
    full = GQASpec(n_heads, global_kv, global_dim, None, bias, bias, k_eq_v=k_eq_v)
    return [sliding if t in SLIDING_TYPES else full for t in types]


def _mimo_v2(r: _Reader, hidden: int, n_layers: int, notes: list[str], unknown: list[str]) -> list[AttentionSpec]:
    """MiMo-V2-Flash: `hybrid_layer_pattern` 0 = full, 1 = sliding window (vLLM mimo_v2.py); full layers
    use head_dim / v_head_dim and num_key_value_heads, sliding layers the swa_* shapes; keys and values
    differ in width. The window is `sliding_window_size` tokens, as vLLM keeps it."""
    pattern = r.int_list("hybrid_layer_pattern", 0, 1)
    if len(pattern) != n_layers:
        raise ValueError(f"hybrid_layer_pattern has {len(pattern)} entries; num_hidden_layers is {n_layers}.")
    n_heads = r.int("num_attention_heads", hi=MAX_HEADS)
    bias = r.bool("attention_bias", False)
    full = GQASpec(
        n_heads,
        _kv_heads(r, "num_key_value_heads", n_heads),
        r.int("head_dim"),
        None,
        bias,
        bias,
        v_head_dim=r.int("v_head_dim"),
    )
    swa_heads = r.int("swa_num_attention_heads", hi=MAX_HEADS)
    window = r.int("sliding_window_size", None, hi=1 << 30) or r.int("sliding_window", hi=1 << 30)
    swa = GQASpec(
        swa_heads,
        _kv_heads(r, "swa_num_key_value_heads", swa_heads),
        r.int("swa_head_dim"),
        window,
        bias,
        bias,
        v_head_dim=r.int("swa_v_head_dim"),
    )
    r.ignore("sliding_window", "swa_rope_theta", "add_swa_attention_sink_bias", "add_full_attention_sink_bias")
    if r.has("attention_chunk_size"):
        notes.append(
            f"attention_chunk_size ({r.int('attention_chunk_size', hi=1 << 30)}) is not used by MiMo-V2's "
            "attention (vLLM's mimo_v2 reads the pattern and the window only)."
        )
    return [swa if p else full for p in pattern]


def _ffn_mult_to_intermediate_size(ffn_mult: float, hidden: int) -> int:
    """DeciLM: int(2 ffn_mult hidden / 3) rounded up to a multiple of 256 (vLLM nemotron_nas.py)."""
    size = int(2 * ffn_mult * hidden / 3)
    return -(-size // 256) * 256


def _decilm(r: _Reader, hidden: int, n_layers: int, notes: list[str], unknown: list[str]) -> tuple[list, list]:
    """DeciLM / Nemotron-NAS: one `block_configs` entry per layer. Attention: no_op (none),
    replace_with_linear (one hidden x hidden matrix) or GQA with heads / n_heads_in_group kv heads;
    FFN: no_op or a gated MLP of _ffn_mult_to_intermediate_size(ffn_mult). Windows, sinks and
    sparsification change the cache and are refused."""
    blocks = r.get("block_configs")
    if not isinstance(blocks, list) or len(blocks) != n_layers:
        raise ValueError(f"block_configs must be a list of {n_layers} objects, one per layer.")
    n_heads = r.int("num_attention_heads", hi=MAX_HEADS)
    head_dim = _head_dim(r, hidden, n_heads, "head_dim")
    r.ignore("num_key_value_heads", "intermediate_size")  # null in these files: per layer instead
    bias, mlp_bias = r.bool("attention_bias", False), r.bool("mlp_bias", False)
    attention: list[AttentionSpec] = []
    mlps: list[MLPSpec | None] = []
    for i, block in enumerate(blocks):
        if not isinstance(block, dict):
            raise ValueError(f"block_configs[{i}] must be a JSON object.")
        b = r.child(block, f"block_configs[{i}]")
        a, f = b.sub("attention"), b.sub("ffn")
        for sub, keys in ((a, ("window_length", "num_sink_tokens", "sparsify")), (f, ("sparsify",))):
            for k in keys:
                if sub.get(k) not in (None, False):
                    raise ValueError(f"{sub.prefix}{k} is not supported: it changes what the layer caches or computes.")
        a.ignore("unshifted_sink", "use_prefill_window_in_sink_attention")
        no_op, linear = a.bool("no_op", False), a.bool("replace_with_linear", False)
        if no_op:
            attention.append(NoMixer())
        elif linear:
            attention.append(NoMixer(linear=True))
        else:
            group = a.int("n_heads_in_group", hi=MAX_HEADS)
            if n_heads % group:
                raise ValueError(f"{a.prefix}n_heads_in_group ({group}) must divide num_attention_heads ({n_heads}).")
            attention.append(GQASpec(n_heads, n_heads // group, head_dim, None, bias, bias))
        ffn_no_op, ffn_linear = f.bool("no_op", False), f.bool("replace_with_linear", False)
        if ffn_no_op:
            mlps.append(None)
        elif ffn_linear:
            raise ValueError(f"{f.prefix}replace_with_linear is not supported.")
        else:
            mult = f.get("ffn_mult")
            if isinstance(mult, bool) or not isinstance(mult, int | float) or not 0 < mult <= 1000:
                raise ValueError(f"{f.prefix}ffn_mult must be a positive number, got {show(mult)}.")
            mlps.append(DenseMLP(_ffn_mult_to_intermediate_size(mult, hidden), bias=mlp_bias))
    kinds = {"none": 0, "linear": 0}
    for a_ in attention:
        if isinstance(a_, NoMixer):
            kinds["linear" if a_.linear else "none"] += 1
    notes.append(
        f"block_configs: {n_layers - kinds['none'] - kinds['linear']} attention layers with their own kv heads; "
        f"{kinds['none']} have no attention and cache nothing"
        + (f", {kinds['linear']} replace it with a linear map" if kinds["linear"] else "")
        + "."
    )
    return attention, mlps


def _kimi_linear(r: _Reader, hidden: int, n_layers: int, notes: list[str], unknown: list[str]) -> list[AttentionSpec]:
    """Kimi-Linear: `linear_attn_config` lists KDA layers and MLA layers, 1-based (vLLM
    kimi_linear.py is_kda_layer). KDA keeps a fixed state: recurrent in float32 (vLLM kda_state_dtype
    under "auto"), the q, k and v short convolutions in the model dtype."""
    lac = r.sub("linear_attn_config")
    kda = set(lac.int_list("kda_layers", 1, MAX_LAYERS))
    full = set(lac.int_list("full_attn_layers", 1, MAX_LAYERS))
    every = set(range(1, n_layers + 1))
    if kda & full or (kda | full) != every:
        raise ValueError(
            f"linear_attn_config.kda_layers and full_attn_layers must split layers 1..{n_layers} between them."
        )
    heads, dim = lac.int("num_heads", hi=MAX_HEADS), lac.int("head_dim")
    kda_spec = LinearAttentionSpec(
        heads,
        heads,
        dim,
        dim,
        conv_kernel=lac.int("short_conv_kernel_size", hi=1024),
        variant="KDA",
        ssm_dtype="fp32",
        conv_dtype=_model_dtype(r),
    )
    mla = MLASpec(**_mla_fields(r))
    r.ignore("num_key_value_heads", "mla_use_nope", "head_dim")
    notes.append(
        f"Kimi-Linear: {len(full)} MLA layers cache a latent; {len(kda)} KDA layers keep a fixed state per "
        f"sequence (recurrent fp32, convolution {kda_spec.conv_dtype})."
    )
    return [kda_spec if i + 1 in kda else mla for i in range(n_layers)]


def _one_of(r: _Reader, *keys: str, hi: int = MAX_EXPERTS) -> int:
    """One number that families spell differently (num_experts_per_tok / experts_per_token): every
    spelling present must agree; MissingField naming the first when none is."""
    present = {k: v for k in keys if (v := r.int(k, None, hi=hi)) is not None}
    if not present:
        raise MissingField(keys[0])
    if len(set(present.values())) > 1:
        raise ValueError(" and ".join(f"{k} ({v})" for k, v in present.items()) + " disagree.")
    return next(iter(present.values()))


def _mlps(r: _Reader, n_layers: int) -> list[MLPSpec | None]:
    cfg = r.cfg
    mt = cfg["model_type"]
    bias = mt == "gpt2" or r.bool("mlp_bias", False)
    hidden = r.int("hidden_size")
    experts = any(r.get(k) for k in ("n_routed_experts", "num_experts", "num_local_experts"))
    if bias and experts and mt != "gpt_oss":
        raise ValueError("mlp_bias true on a mixture of experts is not supported: expert biases are not counted.")
    if mt == "gemma4_text":  # a dense MLP on every layer, and with enable_moe_block routed experts beside it
        size = r.int("intermediate_size")
        r.ignore("use_double_wide_mlp", "num_experts", "top_k_experts", "moe_intermediate_size")
        if not r.bool("enable_moe_block", False):
            return [DenseMLP(size)] * n_layers
        moe = MoEMLP(
            n_routed=r.int("num_experts", hi=MAX_EXPERTS),
            top_k=r.int("top_k_experts", hi=MAX_EXPERTS),
            expert_intermediate_size=r.int("moe_intermediate_size"),
            n_shared=1,
            shared_intermediate_size=size,
        )
        return [moe] * n_layers
    if r.has("n_routed_experts") or mt == "kimi_linear":  # DeepSeek family (and MiMo, Kimi-Linear)
        routed = _one_of(r, "n_routed_experts", "num_experts")
        top_k = _one_of(r, "num_experts_per_tok", "num_experts_per_token")
        shared = r.int("n_shared_experts", None, 0, MAX_EXPERTS)
        moe = MoEMLP(
            n_routed=routed,
            top_k=top_k,
            expert_intermediate_size=r.int("moe_intermediate_size"),
            n_shared=shared if shared is not None else r.int("num_shared_experts", 0, 0, MAX_EXPERTS),
            shared_intermediate_size=r.int("moe_intermediate_size"),
        )
        first_dense = r.int("first_k_dense_replace", 0, 0, MAX_LAYERS)
        if r.has("mlp_layer_types"):  # GLM-5.2: "dense" / "sparse" per layer, which must agree with the rest
            kinds = _per_layer_kinds(r, n_layers, "mlp_layer_types", {"dense": False, "sparse": True})
            freq = r.int("moe_layer_freq", 1, 1, MAX_LAYERS) if not isinstance(r.get("moe_layer_freq"), list) else 1
            if kinds != [i >= first_dense and i % freq == 0 for i in range(n_layers)]:
                raise ValueError("mlp_layer_types disagrees with first_k_dense_replace and moe_layer_freq.")
        if isinstance(r.get("moe_layer_freq"), list):  # MiMo: one 0/1 flag per layer
            flags = r.int_list("moe_layer_freq", 0, 1)
            if len(flags) < n_layers:
                raise ValueError(f"moe_layer_freq has {len(flags)} entries; it needs one per layer ({n_layers}).")
            dense = DenseMLP(r.int("intermediate_size"), bias=bias) if not all(flags[:n_layers]) else None
            return [moe if flags[i] and i >= first_dense else dense for i in range(n_layers)]
        freq = r.int("moe_layer_freq", 1, 1, MAX_LAYERS)
        dense = DenseMLP(r.int("intermediate_size"), bias=bias) if first_dense or freq > 1 else None
        return [moe if i >= first_dense and i % freq == 0 else dense for i in range(n_layers)]
    n_experts = r.int("num_experts", 0, 0, MAX_EXPERTS) or r.int("num_local_experts", 0, 0, MAX_EXPERTS)
    if n_experts:
        top_k = _one_of(r, "num_experts_per_tok", "experts_per_token")
        size = r.int("moe_intermediate_size", None) or r.int("intermediate_size")
        r.ignore("intermediate_size")  # read below when some layers are dense
        shared = r.int("shared_expert_intermediate_size", 0, 0)
        moe = MoEMLP(n_experts, top_k, size, 1 if shared else 0, shared, bias=mt == "gpt_oss")
        step = r.int("decoder_sparse_step", 1, 1, MAX_LAYERS)
        only_dense = set(r.int_list("mlp_only_layers", 0, MAX_LAYERS)) if r.has("mlp_only_layers") else set()
        if only_dense or step > 1:
            dense = DenseMLP(r.int("intermediate_size"))
            return [moe if i not in only_dense and (i + 1) % step == 0 else dense for i in range(n_layers)]
        return [moe] * n_layers
    # a dense model: MoE schedule fields, when present, are empty or apply to no expert
    r.ignore("mlp_only_layers", "decoder_sparse_step", "moe_intermediate_size")
    if mt in PLAIN_MLP:
        if mt == "starcoder2" and r.str("mlp_type", "default") != "default":
            raise ValueError(f"mlp_type {show(r.get('mlp_type'))} is not supported for StarCoder2 (only 'default').")
        default = 4 * hidden if mt in ("gpt2", "gpt_bigcode", "falcon") else ...
        width = r.int(PLAIN_MLP[mt], default)
        return [DenseMLP(width, gated=False, bias=bool(_family_bias(r, mt)))] * n_layers
    return [DenseMLP(r.int("intermediate_size"), bias=bias)] * n_layers


def _native_weights(r: _Reader, notes: list[str]) -> tuple[str, str, str]:
    """Formats of (embeddings + lm_head, routed experts, the rest) as released, from torch_dtype,
    quantization_config (fp8 block-scaled: DeepSeek; mxfp4 on experts only: gpt-oss) and V4's
    expert_dtype ("fp4": packed e2m1 with an 8-bit scale per 32 values, the MXFP4 layout). The
    quantization config describes weights only: the cache format is the one the user picks, so a
    checkpoint's own KV-cache scheme is named in a note, not applied."""
    dtype = {"float32": "fp32", "float16": "fp16"}.get(str(r.get("torch_dtype") or r.get("dtype")), "bf16")
    experts = rest = dtype
    if r.has("quantization_config"):
        q = r.get("quantization_config")
        method = q.get("quant_method") if isinstance(q, dict) else None
        if method == "fp8":
            experts = rest = "fp8"
        elif method == "mxfp4":
            experts = "mxfp4"
        kv = [k for k in ("kv_cache_scheme", "kv_cache_quant_algo") if isinstance(q, dict) and q.get(k)]
        if kv:
            notes.append(
                f"quantization_config.{kv[0]} is {show(q[kv[0]], 50)}: the checkpoint ships KV-cache scales; "
                "the figures use the cache format you choose."
            )
    if r.get("expert_dtype") == "fp4" or r.cfg.get("model_type") == "deepseek_v4":
        # V4 checkpoints store routed experts as packed fp4 + an e8m0 scale per 32 values, whether or
        # not the config says expert_dtype (the V4-Pro file does not; its tensor list shows it)
        experts = "mxfp4"
    return dtype, experts, rest


def hyper_connection_params(d: int, n_layers: int, hc_mult: int) -> int:
    """DeepSeek V4 mHC mixers (inference/model.py Block): per block (attention and FFN)
    fn [(2+hc)*hc, hc*d], base [(2+hc)*hc], scale [3]; the head adds fn [hc, hc*d], base [hc], scale [1].
    """
    mix = (2 + hc_mult) * hc_mult
    per_block = mix * hc_mult * d + mix + 3
    return 2 * per_block * n_layers + hc_mult * hc_mult * d + hc_mult + 1


def _per_layer_kinds(r: _Reader, n_layers: int, key: str, names: dict[Any, str]) -> list[str]:
    """A per-layer list (`key`) whose values `names` maps to layer kinds; any other value refuses."""
    v = r.get(key)
    if not isinstance(v, list) or len(v) != n_layers:
        raise ValueError(f"{r.prefix}{key} must be a list of {n_layers} entries, one per layer, got {show(v)}.")
    out = []
    for i, x in enumerate(v):
        if isinstance(x, bool) or not isinstance(x, str | int) or x not in names:
            raise ValueError(
                f"{r.prefix}{key}[{i}] is {show(x)}; this engine knows {', '.join(map(repr, names))} there "
                "and refuses to guess the rest: the layer is not supported."
            )
        out.append(names[x])
    return out


def _minimax(r: _Reader, hidden: int, n_layers: int, notes: list[str], unknown: list[str]) -> tuple[list, list]:
    """MiniMax-Text-01 / MiniMax-M1: `attn_type_list` 0 = lightning (linear) attention, 1 = softmax attention
    (vLLM minimax_text_01.py; HF MiniMaxConfig spells it `layer_types`). Lightning layers keep one
    head_dim x head_dim state per head in the model dtype (vLLM linear_attention_state_shape / _dtype); softmax layers
    are GQA. Every layer's MLP is a mixture of `num_local_experts` of `intermediate_size`, plus a shared
    expert of `shared_intermediate_size` when it is not 0."""
    if r.has("layer_types"):
        kinds = _per_layer_kinds(r, n_layers, "layer_types", {"linear_attention": "L", "full_attention": "F"})
        r.ignore("attn_type_list")
    else:
        kinds = _per_layer_kinds(r, n_layers, "attn_type_list", {0: "L", 1: "F"})
    n_heads = r.int("num_attention_heads", hi=MAX_HEADS)
    head_dim = _head_dim(r, hidden, n_heads, "head_dim")
    full = GQASpec(n_heads, _kv_heads(r, "num_key_value_heads", n_heads), head_dim)
    lightning = LightningSpec(n_heads, head_dim, _model_dtype(r))
    if r.int("sliding_window", None, hi=1 << 30):
        raise ValueError(f"sliding_window is not supported for {r.cfg['model_type']}: its softmax layers are full.")
    # norm scalings and RoPE's rotary width change values only; the router mode and jitter route tokens
    r.ignore(
        *(f"layernorm_{w}_{ab}" for w in ("full_attention", "linear_attention", "mlp") for ab in ("alpha", "beta"))
    )
    r.ignore("postnorm", "rotary_dim", "shared_moe_mode", "router_jitter_noise", "block_size")
    try:
        shared = r.int("shared_intermediate_size", 0, 0)
        moe = MoEMLP(
            n_routed=r.int("num_local_experts", hi=MAX_EXPERTS),
            top_k=r.int("num_experts_per_tok", hi=MAX_EXPERTS),
            expert_intermediate_size=r.int("intermediate_size"),
            n_shared=1 if shared else 0,
            shared_intermediate_size=shared,
            router_bias=r.bool("use_routing_bias", False),  # MiniMax-M2: a correction bias per expert
        )
        mlps: list = [moe] * n_layers
    except MissingField as e:
        unknown.append(e.key)
        mlps = [None] * n_layers
    if "L" in kinds:
        notes.append(
            f"MiniMax: {kinds.count('F')} softmax-attention layers cache keys and values; {kinds.count('L')} lightning "
            f"(linear) attention layers keep a fixed {lightning.state_dtype} state per sequence (attn_type_list; vLLM "
            "keeps it in the model dtype, MiniMax's first implementation in float32, twice as large)."
        )
    return [full if k == "F" else lightning for k in kinds], mlps


def _lfm2(r: _Reader, hidden: int, n_layers: int, notes: list[str], unknown: list[str]) -> tuple[list, list]:
    """LFM2: `layer_types` ("conv" / "full_attention"), else `full_attn_idxs` (0-based; every layer when
    absent), as HF Lfm2Config derives them. Conv layers keep the last conv_L_cache - 1 inputs of a
    hidden_size-channel convolution in the model dtype (vLLM short_conv_state_shape); attention layers are
    GQA with head_dim = hidden_size / num_attention_heads. The MLP's width is block_ff_dim, adjusted as
    HF Lfm2MLP does when block_auto_adjust_ff_dim."""
    if r.has("layer_types"):
        kinds = _per_layer_kinds(r, n_layers, "layer_types", {"conv": "C", "full_attention": "F"})
        if r.has("full_attn_idxs") and sorted(set(r.int_list("full_attn_idxs", 0, n_layers - 1))) != [
            i for i, k in enumerate(kinds) if k == "F"
        ]:
            raise ValueError("layer_types and full_attn_idxs disagree on which layers are attention.")
    elif r.has("full_attn_idxs"):
        idx = set(r.int_list("full_attn_idxs", 0, n_layers - 1))
        kinds = ["F" if i in idx else "C" for i in range(n_layers)]
    else:
        kinds = ["F"] * n_layers
    n_heads = r.int("num_attention_heads", hi=MAX_HEADS)
    if r.int("num_heads", n_heads, hi=MAX_HEADS) != n_heads:
        raise ValueError("num_heads and num_attention_heads disagree.")
    for k in ("block_dim", "conv_dim", "conv_dim_out"):
        if r.int(k, hidden) != hidden:
            raise ValueError(f"{k} ({r.int(k)}) must equal hidden_size ({hidden}): the conv blocks are that wide.")
    n_kv = _kv_heads(r, "num_key_value_heads", n_heads)
    if hidden % n_heads or r.int("head_dim", hidden // n_heads) != hidden // n_heads:
        raise ValueError("LFM2's head_dim must be hidden_size / num_attention_heads (vLLM's Lfm2Attention uses that).")
    attention = GQASpec(n_heads, n_kv, hidden // n_heads)
    conv = ShortConvSpec(hidden, r.int("conv_L_cache", hi=1024), _model_dtype(r), r.bool("conv_bias", False))
    if not r.bool("block_use_swiglu", True):
        raise ValueError("block_use_swiglu false is not supported: LFM2's MLP is a SwiGLU.")
    # initialisation scales, norms' epsilons and RoPE on or off change values only
    r.ignore("block_mlp_init_scale", "block_out_init_scale", "block_use_xavier_init", "conv_use_xavier_init")
    r.ignore("block_norm_eps", "use_pos_enc")
    try:
        size = r.int("block_ff_dim", None) or r.int("intermediate_size")
        r.ignore("intermediate_size", "block_ff_dim")
        if r.bool("block_auto_adjust_ff_dim", False):
            size = int(2 * size / 3)
            mult = r.get("block_ffn_dim_multiplier")
            if mult is not None:
                if isinstance(mult, bool) or not isinstance(mult, int | float) or not 0 < mult <= 1000:
                    raise ValueError(f"block_ffn_dim_multiplier must be a positive number, got {show(mult)}.")
                size = int(mult * size)
            step = r.int("block_multiple_of", 256)
            size = step * -(-size // step)
        else:
            r.ignore("block_ffn_dim_multiplier", "block_multiple_of")
        mlps: list = [DenseMLP(size)] * n_layers
    except MissingField as e:
        unknown.append(e.key)
        mlps = [None] * n_layers
    notes.append(
        f"LFM2: {kinds.count('F')} attention layers cache keys and values; {kinds.count('C')} short-convolution "
        f"layers keep the last {conv.conv_kernel - 1} inputs of a {hidden:,}-channel convolution per sequence."
    )
    return [attention if k == "F" else conv for k in kinds], mlps


def _plain_head_dim(r: _Reader, hidden: int, n_heads: int) -> int:
    """hidden_size / num_attention_heads, as vLLM's Jamba, Granite-4 and LFM2 attention take it; a head_dim
    field that says otherwise is refused (HF would follow it, vLLM would not)."""
    if hidden % n_heads or r.int("head_dim", hidden // n_heads) != hidden // n_heads:
        raise ValueError(
            f"head_dim must be hidden_size / num_attention_heads for {r.cfg['model_type']} (vLLM derives it so)."
        )
    return hidden // n_heads


def _mamba2(r: _Reader, d_inner: int, heads: str, head_dim: str, **keys: str) -> Mamba2Spec:
    """A Mamba-2 mixer of `d_inner` channels from a family's field names; the head width may be "auto"
    (d_inner / heads, HF's FalconH1 and GraniteMoeHybrid configs). State in the model dtype, as vLLM's
    mamba2_state_dtype keeps it when no --mamba-ssm-cache-dtype is given."""
    n_heads = r.int(heads, hi=MAX_HEADS)
    width = r.get(head_dim)
    width = d_inner // n_heads if width in (None, "auto") else r.int(head_dim)
    if n_heads * width != d_inner:
        raise ValueError(f"{heads} x {head_dim} ({n_heads} x {width}) must equal the Mamba width ({d_inner:,}).")
    model = _model_dtype(r)
    return Mamba2Spec(
        n_heads=n_heads,
        head_dim=width,
        state_size=r.int(keys["state"]),
        n_groups=r.int(keys["groups"], hi=MAX_HEADS),
        conv_kernel=r.int(keys["conv"], hi=1024),
        ssm_dtype=model,
        conv_dtype=model,
        conv_bias=r.bool(keys["conv_bias"], True),
        proj_bias=r.bool(keys["proj_bias"], False),
        gated_norm=r.bool(keys["norm"], True) if "norm" in keys else True,
        chunk_size=_chunk_size(r),
    )


# Falcon-H1's and Granite-4.0-H's names for the Mamba-2 fields (Zamba2 spells them otherwise)
MAMBA_D_KEYS = dict(
    state="mamba_d_state",
    groups="mamba_n_groups",
    conv="mamba_d_conv",
    conv_bias="mamba_conv_bias",
    proj_bias="mamba_proj_bias",
)


def _expand_width(r: _Reader, hidden: int, key: str = "mamba_expand") -> int:
    expand = r.get(key)
    if isinstance(expand, bool) or not isinstance(expand, int | float) or not 0 < expand <= 64:
        raise ValueError(f"{key} must be a positive number, got {show(expand)}.")
    if not float(expand * hidden).is_integer():
        raise ValueError(f"{key} x hidden_size must be a whole number of channels.")
    return int(expand * hidden)


def _jamba(r: _Reader, hidden: int, n_layers: int, notes: list[str], unknown: list[str]) -> tuple[list, list]:
    """Jamba: attention where i % attn_layer_period == attn_layer_offset, Mamba-1 elsewhere; experts where
    i % expert_layer_period == expert_layer_offset (HF JambaConfig.layers_block_type / layers_num_experts).
    Mamba-1 of mamba_expand x hidden channels (vLLM mamba1_state_shape), states in the model dtype."""
    period, offset = r.int("attn_layer_period", hi=MAX_LAYERS), r.int("attn_layer_offset", lo=0, hi=MAX_LAYERS)
    e_period = r.int("expert_layer_period", hi=MAX_LAYERS)
    e_offset = r.int("expert_layer_offset", lo=0, hi=MAX_LAYERS)
    if offset >= period or e_offset >= e_period:
        raise ValueError("attn_layer_offset and expert_layer_offset must be below their periods.")
    if r.int("sliding_window", None, hi=1 << 30):
        raise ValueError("sliding_window is not supported for Jamba: vLLM's Jamba attention is full.")
    n_heads = r.int("num_attention_heads", hi=MAX_HEADS)
    attn = GQASpec(n_heads, _kv_heads(r, "num_key_value_heads", n_heads), _plain_head_dim(r, hidden, n_heads))
    rank = r.get("mamba_dt_rank")
    model = _model_dtype(r)
    mamba = Mamba1Spec(
        d_inner=_expand_width(r, hidden),
        state_size=r.int("mamba_d_state"),
        conv_kernel=r.int("mamba_d_conv", hi=1024),
        dt_rank=-(-hidden // 16) if rank in (None, "auto") else r.int("mamba_dt_rank"),
        ssm_dtype=model,
        conv_dtype=model,
        conv_bias=r.bool("mamba_conv_bias", True),
        proj_bias=r.bool("mamba_proj_bias", False),
        dt_norms=True,
    )
    r.ignore("use_mamba_kernels", "use_mambapy", "use_associative_scan")  # kernels, not shapes
    try:
        size = r.int("intermediate_size")
        moe = MoEMLP(
            _one_of(r, "num_experts", "num_local_experts"),
            r.int("num_experts_per_tok", hi=MAX_EXPERTS),
            size,
            router_bias=False,
        )
        mlps: list = [moe if i % e_period == e_offset else DenseMLP(size) for i in range(n_layers)]
    except MissingField as e:
        unknown.append(e.key)
        mlps = [None] * n_layers
    attention = [attn if i % period == offset else mamba for i in range(n_layers)]
    notes.append(
        f"Jamba: {sum(1 for a in attention if a is attn)} attention layers cache keys and values; the other "
        f"{sum(1 for a in attention if a is mamba)} are Mamba-1 layers with a fixed state per sequence ({model})."
    )
    return attention, mlps


def _falcon_h1(r: _Reader, hidden: int, n_layers: int, notes: list[str], unknown: list[str]) -> tuple[list, list]:
    """Falcon-H1: attention and Mamba-2 side by side in every layer (HF FalconH1DecoderLayer), each with its
    own cache. Mamba width mamba_d_ssm, else mamba_expand x hidden (vLLM FalconH1ForCausalLM)."""
    n_heads = r.int("num_attention_heads", hi=MAX_HEADS)
    bias = r.bool("attention_bias", False)
    attn = GQASpec(
        n_heads,
        _kv_heads(r, "num_key_value_heads", n_heads),
        _head_dim(r, hidden, n_heads, "head_dim"),
        None,
        bias,
        bias,
    )
    d_inner = r.int("mamba_d_ssm", None) or _expand_width(r, hidden)
    r.ignore("mamba_expand")
    if r.bool("mamba_proj_bias", False) != r.bool("projectors_bias", False):
        raise ValueError("mamba_proj_bias and projectors_bias must agree: one bias switch is modelled for both.")
    mamba = _mamba2(r, d_inner, "mamba_n_heads", "mamba_d_head", **MAMBA_D_KEYS, norm="mamba_rms_norm")
    # multipliers scale values; the norm's place and the scan's chunking change no shape
    r.ignore("lm_head_multiplier", "embedding_multiplier", "mlp_multipliers", "key_multiplier")
    r.ignore("attention_in_multiplier", "attention_out_multiplier", "ssm_multipliers", "ssm_in_multiplier")
    r.ignore("ssm_out_multiplier", "mamba_norm_before_gate", "mamba_chunk_size", "use_mamba_kernels")
    layer = ParallelSpec((attn, mamba))
    try:
        mlps: list = [DenseMLP(r.int("intermediate_size"), bias=r.bool("mlp_bias", False))] * n_layers
    except MissingField as e:
        unknown.append(e.key)
        mlps = [None] * n_layers
    notes.append(
        f"Falcon-H1: every layer runs attention and Mamba-2 side by side, so each of the {n_layers} layers caches "
        f"keys and values and keeps a fixed Mamba-2 state ({mamba.ssm_dtype})."
    )
    return [layer] * n_layers, mlps


def _granite_hybrid(r: _Reader, hidden: int, n_layers: int, notes: list[str], unknown: list[str]) -> tuple[list, list]:
    """Granite-4.0-H (granitemoehybrid): `layer_types` (or `layers_block_type`), "mamba" / "linear_attention"
    for Mamba-2 and "attention" / "full_attention" for GQA (HF remaps the first spellings); every layer
    Mamba-2 when absent (HF GraniteMoeHybridConfig). Mamba width mamba_expand x hidden; experts when
    num_local_experts > 0, beside a shared MLP of shared_intermediate_size."""
    key = "layer_types" if r.has("layer_types") else "layers_block_type"
    names = {"mamba": "M", "linear_attention": "M", "attention": "A", "full_attention": "A"}
    kinds = _per_layer_kinds(r, n_layers, key, names) if r.has(key) else ["M"] * n_layers
    n_heads = r.int("num_attention_heads", hi=MAX_HEADS)
    bias = r.bool("attention_bias", False)
    attn = GQASpec(
        n_heads, _kv_heads(r, "num_key_value_heads", n_heads), _plain_head_dim(r, hidden, n_heads), None, bias, bias
    )
    mamba = _mamba2(r, _expand_width(r, hidden), "mamba_n_heads", "mamba_d_head", **MAMBA_D_KEYS)
    # multipliers scale values, NoPE vs RoPE changes no shape, the scan's chunking is compute
    r.ignore("embedding_multiplier", "logits_scaling", "residual_multiplier", "attention_multiplier")
    r.ignore("position_embedding_type", "mamba_chunk_size")
    try:
        shared = r.int("shared_intermediate_size")
        experts = r.int("num_local_experts", 0, 0, MAX_EXPERTS)
        if experts:
            mlp: Any = MoEMLP(
                experts,
                r.int("num_experts_per_tok", hi=MAX_EXPERTS),
                r.int("intermediate_size"),
                n_shared=1,
                shared_intermediate_size=shared,
                router_bias=False,
            )
        else:
            r.ignore("num_experts_per_tok", "intermediate_size")
            mlp = DenseMLP(shared)
        mlps: list = [mlp] * n_layers
    except MissingField as e:
        unknown.append(e.key)
        mlps = [None] * n_layers
    notes.append(
        f"Granite-4.0-H: {kinds.count('A')} attention layers cache keys and values; {kinds.count('M')} Mamba-2 "
        f"layers keep a fixed state per sequence ({mamba.ssm_dtype})."
    )
    return [attn if k == "A" else mamba for k in kinds], mlps


def _zamba2(r: _Reader, hidden: int, n_layers: int, notes: list[str], unknown: list[str]) -> list[AttentionSpec]:
    """Zamba2: every layer has a Mamba-2 mixer; "hybrid" layers of `layers_block_type` first apply a shared
    transformer block, and each depth at which it is applied keeps its own keys and values (vLLM zamba2.py:
    "KV cache is unique for every attention layer"). That attention reads concat(hidden, embeddings), so
    its head width is 2 hidden / heads; vLLM gives it as many key/value heads as query heads."""
    names = {"mamba": "M", "linear_attention": "M", "hybrid": "H"}
    kinds = _per_layer_kinds(r, n_layers, "layers_block_type", names)
    if r.has("hybrid_layer_ids") and r.int_list("hybrid_layer_ids", 0, MAX_LAYERS) != [
        i for i, k in enumerate(kinds) if k == "H"
    ]:
        raise ValueError("hybrid_layer_ids and layers_block_type disagree.")
    n_heads = r.int("num_attention_heads", hi=MAX_HEADS)
    if r.int("num_key_value_heads", n_heads, hi=MAX_HEADS) != n_heads:
        raise ValueError(
            "num_key_value_heads below num_attention_heads is not supported for Zamba2: HF uses it, vLLM gives "
            "every query head its own key and value, so the two engines cache different amounts."
        )
    width = 2 * hidden
    if width % n_heads or r.int("attention_head_dim", width // n_heads) != width // n_heads:
        raise ValueError("attention_head_dim must be 2 x hidden_size / num_attention_heads for Zamba2.")
    if r.int("attention_hidden_size", width) != width:
        raise ValueError("attention_hidden_size must be 2 x hidden_size for Zamba2.")
    attn = GQASpec(n_heads, n_heads, width // n_heads)
    d_inner = _expand_width(r, hidden)
    mamba = _mamba2(
        r,
        d_inner,
        "n_mamba_heads",
        "mamba_headdim",
        state="mamba_d_state",
        groups="mamba_ngroups",
        conv="mamba_d_conv",
        conv_bias="use_conv_bias",
        proj_bias="add_bias_linear",
    )
    # the shared blocks' weights (tied across depths, with per-depth adapters) are not counted
    r.ignore("num_mem_blocks", "use_shared_attention_adapter", "adapter_rank", "intermediate_size", "kv_channels")
    r.ignore("num_query_groups", "use_mem_rope", "use_long_context", "use_mem_eff_path", "chunk_size")
    r.ignore("use_mamba_kernels")
    unknown.append("the shared transformer blocks of Zamba2 (tied weights applied at several depths)")
    hybrid = ParallelSpec((attn, mamba), sequential=True)
    notes.append(
        f"Zamba2: all {n_layers} layers keep a Mamba-2 state; the {kinds.count('H')} hybrid layers also apply the "
        f"shared attention block, and each application caches its own keys and values ({n_heads} heads of "
        f"{attn.head_dim})."
    )
    return [hybrid if k == "H" else mamba for k in kinds]


def _minimax_m3(r: _Reader, hidden: int, n_layers: int, notes: list[str], unknown: list[str]) -> tuple[list, list]:
    """MiniMax-M3: GQA on every layer; where `sparse_attention_config.sparse_attention_freq` is 1 (HF's
    converted files: `layer_types` "minimax_m3_sparse" and index_* fields) the layer is block-sparse: it also
    caches an indexer key per token and attends to the best `sparse_topk_blocks` blocks (vLLM
    models/minimax_m3, HF MiniMaxM3VLTextConfig). `moe_layer_freq` 0 = a dense MLP of dense_intermediate_size,
    1 = experts of intermediate_size beside shared experts of shared_intermediate_size."""
    n_heads = r.int("num_attention_heads", hi=MAX_HEADS)
    gqa = GQASpec(n_heads, _kv_heads(r, "num_key_value_heads", n_heads), _head_dim(r, hidden, n_heads, "head_dim"))
    if r.bool("attention_output_gate", False):
        raise ValueError("attention_output_gate true is not supported for MiniMax-M3: no reference code implements it.")
    if r.has("sparse_attention_config"):
        sc = r.sub("sparse_attention_config")
        if not sc.bool("use_sparse_attention", True):
            raise ValueError("sparse_attention_config.use_sparse_attention false is not supported.")
        sparse = [k == "S" for k in _per_layer_kinds(sc, n_layers, "sparse_attention_freq", {0: "D", 1: "S"})]
        if sc.has("sparse_disable_index_value"):
            off = _per_layer_kinds(sc, n_layers, "sparse_disable_index_value", {0: False, 1: True})
            if any(s_ and not o for s_, o in zip(sparse, off, strict=True)):
                raise ValueError(
                    "sparse_attention_config.sparse_disable_index_value 0 on a sparse layer is not supported: "
                    "an indexer value cache that no reference code implements."
                )
        if sc.int("sparse_init_block", 0, 0, 1 << 20):
            raise ValueError(
                "sparse_attention_config.sparse_init_block is not supported: no reference code keeps them."
            )
        if sc.str("sparse_score_type", "max") != "max":
            raise ValueError("sparse_attention_config.sparse_score_type other than 'max' is not supported.")
        fields = dict(
            index_n_heads=sc.int("sparse_num_index_heads", hi=MAX_HEADS),
            index_head_dim=sc.int("sparse_index_dim"),
            block_size=sc.int("sparse_block_size", hi=1 << 20),
            topk_blocks=sc.int("sparse_topk_blocks", hi=1 << 20),
            local_blocks=sc.int("sparse_local_block", 1, hi=1 << 20),
        )
    else:
        kinds = _per_layer_kinds(r, n_layers, "layer_types", {"full_attention": "D", "minimax_m3_sparse": "S"})
        sparse = [k == "S" for k in kinds]
        fields = dict(
            index_n_heads=r.int("index_n_heads", hi=MAX_HEADS),
            index_head_dim=r.int("index_head_dim"),
            block_size=r.int("index_block_size", hi=1 << 20),
            topk_blocks=r.int("index_topk_blocks", hi=1 << 20),
            local_blocks=r.int("index_local_blocks", 1, hi=1 << 20),
        )
    block = BlockSparseSpec(gqa, **fields)  # the index key in bf16 whatever the cache: resolve_indexer_kv_dtype
    # norms (per-head q/k norms, Gemma-style scaling), RoPE's width, the SwiGLU's clamp and slope, routing
    # values and the router's correction bias (always built) change values, not shapes
    r.ignore("qk_norm_type", "use_qk_norm", "use_gemma_norm", "rotary_dim", "swiglu_alpha", "use_routing_bias")
    try:
        flags = _per_layer_kinds(r, n_layers, "moe_layer_freq", {0: False, 1: True})
        first_dense = r.int("first_k_dense_replace", None, 0, MAX_LAYERS)  # read by neither HF nor vLLM
        if first_dense is not None and flags != [i >= first_dense for i in range(n_layers)]:
            raise ValueError("first_k_dense_replace and moe_layer_freq disagree.")
        shared = r.int("shared_intermediate_size", 0, 0)
        moe = MoEMLP(
            n_routed=r.int("num_local_experts", hi=MAX_EXPERTS),
            top_k=r.int("num_experts_per_tok", hi=MAX_EXPERTS),
            expert_intermediate_size=r.int("intermediate_size"),
            n_shared=r.int("n_shared_experts", 1 if shared else 0, 0, MAX_EXPERTS) if shared else 0,
            shared_intermediate_size=shared,
        )
        if r.int("moe_intermediate_size", moe.expert_intermediate_size) != moe.expert_intermediate_size:
            raise ValueError(
                "moe_intermediate_size must equal intermediate_size: HF and vLLM size M3's experts by the latter."
            )
        dense = DenseMLP(r.int("dense_intermediate_size")) if not all(flags) else None
        r.ignore("n_shared_experts", "dense_intermediate_size")
        mlps: list = [moe if f else dense for f in flags]
    except MissingField as e:
        unknown.append(e.key)
        mlps = [None] * n_layers
    notes.append(
        f"MiniMax-M3: {sum(sparse)} of {n_layers} layers are block-sparse: they cache an indexer key per token "
        f"({block.index_head_dim} wide, {block.index_dtype}) beside keys and values, and each query attends to "
        f"{block.topk_blocks} blocks of {block.block_size} tokens."
    )
    return [block if s_ else gqa for s_ in sparse], mlps


# Families whose attention layout has its own parser: model_type -> parser(reader, hidden, n_layers, notes,
# unknown) (notes: what the parser decided; unknown: parameter fields the config lacks),
# returning the attention specs, or (attention specs, MLP specs) when the family lays out its MLPs itself.
FAMILIES = {
    "qwen3_next": _qwen_next,
    "qwen3_5": _qwen_next,
    "nemotron_h": _nemotron_h,
    "llama4_text": _llama4,
    "gemma4_text": _gemma4,
    "mimo_v2_flash": _mimo_v2,
    "nemotron-nas": _decilm,
    "kimi_linear": _kimi_linear,
    "minimax_m1": _minimax,
    "minimax_text_01": _minimax,
    "minimax": _minimax,
    "minimax_m2": _minimax,
    "minimax_m3": _minimax_m3,
    "minimax_m3_vl_text": _minimax_m3,
    "lfm2": _lfm2,
    "jamba": _jamba,
    "falcon_h1": _falcon_h1,
    "granitemoehybrid": _granite_hybrid,
    "zamba2": _zamba2,
}


def from_hf_config(cfg: dict[str, Any], name: str | None = None) -> ModelSpec:
    """Build a ModelSpec from the dict of a Hugging Face config.json (see module docstring). Every key of
    the file is accounted for: read by the family's parser, or listed in `core.model.config_keys.HARMLESS`
    with the reason it changes nothing cached; any other key refuses the config, naming it."""
    if not isinstance(cfg, dict):
        raise ValueError("the config must be a JSON object.")
    r = _Reader(_flatten(cfg))
    mt = r.get("model_type")
    try:
        spec = _parse(r, cfg, name)
    except MissingField as e:
        left = _unaccounted(r)
        hint = f"; it also has {_names(left)}, which this engine does not read" if left else ""
        raise ValueError(
            f"this config ({show(mt, 40)}) is not supported: it has no {e.key!r}, which this engine needs to "
            f"lay out the cache{hint}."
        ) from None
    left = _unaccounted(r)
    if left:
        raise ValueError(
            f"this architecture ({show(mt, 40)}) is not supported: its config has {_names(left)}, which this "
            "engine neither reads nor knows to leave the cache unchanged; refusing to guess the cache layout."
        )
    return spec


def _unaccounted(r: _Reader) -> list[str]:
    for old, new in ALIASES.items():  # a GPT-2 name counts as read when its standard name was
        if new in r.used:
            r.used.add(old)
    return r.unaccounted()


def _names(keys: list[str]) -> str:
    shown = ", ".join(show(k, 40).strip("'") for k in keys[:4])
    return shown + (f" and {len(keys) - 4} more" if len(keys) > 4 else "")


def _parse(r: _Reader, cfg: dict[str, Any], name: str | None) -> ModelSpec:
    mt = r.get("model_type")
    hidden = r.int("hidden_size")
    if mt == "nemotron_h" and not r.has("num_hidden_layers") and isinstance(r.get("layers_block_type"), list):
        n_layers = len(r.get("layers_block_type"))  # the newer NemotronHConfig: the block list is the depth
        if not 1 <= n_layers <= MAX_LAYERS:
            raise ValueError(f"layers_block_type must list between 1 and {MAX_LAYERS:,} blocks.")
    else:
        n_layers = r.int("num_hidden_layers", hi=MAX_LAYERS)
    notes: list[str] = []
    extra: list[tuple[str, int]] = []
    unknown: list[str] = []
    mlps: list[MLPSpec | None] | None = None

    if mt in FAMILIES:
        out = FAMILIES[mt](r, hidden, n_layers, notes, unknown)
        attention, mlps = out if isinstance(out, tuple) else (out, None)
    elif r.has("compress_ratios") or mt == "deepseek_v4":
        attention = _v4(r, n_layers, notes)
    elif r.has("kv_lora_rank"):
        attention = _mla(r, n_layers, notes)
    else:
        attention = _gqa(r, hidden, _windows(r, n_layers))

    try:
        vocab = r.int("vocab_size", hi=MAX_VOCAB)
    except MissingField:
        vocab = 0
        unknown.append("vocab_size")
    if mlps is None:
        try:
            mlps = _mlps(r, n_layers)
        except MissingField as e:
            unknown.append(e.key)
            mlps = [None] * n_layers
    tied = r.bool("tie_word_embeddings", TIED_BY_DEFAULT.get(mt, False))
    if r.get("tie_word_embeddings") is None and mt not in TIED_BY_DEFAULT:
        unknown.append(
            f"the output head (the file does not say whether it shares the embedding table; {mt} has no known default)"
        )
    if unknown:
        notes.append(
            f"parameters unknown: {unknown_parameters(unknown)}; the cache figures need only the "
            "attention fields and are exact."
        )

    if mt in ("gpt2", "gpt_bigcode"):
        extra.append(("position embeddings", r.int("n_positions", 1024) * hidden))
    if r.has("hc_mult"):
        extra.append(("hyper-connections", hyper_connection_params(hidden, n_layers, r.int("hc_mult", hi=64))))
    n_mtp = max(r.int(k, 0, 0, MAX_LAYERS) for k in MTP_COUNTS)
    if n_mtp:
        notes.append(
            f"{n_mtp} multi-token-prediction layer(s) beyond the {n_layers} decoder layers are not counted: "
            "default serving does not run them, and a speculative-decoding draft that does adds their cache."
        )
    native = _native_weights(r, notes)
    if len(set(native)) > 1:
        notes.append(
            f"released weights: embeddings {native[0]}, routed experts {native[1]}, the rest {native[2]} "
            "(from quantization_config / expert_dtype)."
        )
    elif native[0] != "bf16":
        notes.append(f"released weights: {native[0]} (torch_dtype).")
    limits = _context_limits(r)
    return ModelSpec(
        name=name or show(str(cfg.get("_name_or_path") or mt), 80).strip("'"),
        model_type=mt,
        hidden_size=hidden,
        vocab_size=vocab,
        attention=tuple(attention),
        mlp=tuple(mlps),
        tie_word_embeddings=tied,
        params_unknown=tuple(unknown),
        n_mtp_layers=n_mtp,
        native_weights=native,
        extra_params=tuple(extra),
        notes=tuple(notes),
        context_limits=limits,
    )


# The keys vLLM reads for a model's longest context, in its order (vllm/config/model.py, the model-arch
# convertor's derive_max_model_len_and_key in 0.19-0.34; the same list since 0.10).
LENGTH_KEYS = (
    "max_position_embeddings",
    "n_positions",
    "max_seq_len",
    "seq_length",
    "model_max_length",
    "max_target_positions",
    "max_sequence_length",
    "max_seq_length",
    "seq_len",
)
MAX_POSITIONS = 1 << 40
ROPE_TYPES = {"su": "longrope", "mrope": "default"}  # vLLM's patch_rope_parameters


def _context_limits(r: _Reader) -> ContextLimits:
    """The config's context limits (see ContextLimits). A value that is not what it should be is a problem
    named in the result, never a refusal of the config: the cache figures do not depend on it."""
    lengths, problems = [], []
    for key in LENGTH_KEYS:
        v = r.get(key)
        if v is None:
            continue
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= MAX_POSITIONS:
            problems.append(f"{key} is {show(v, 30)}, not a whole number of tokens")
            continue
        lengths.append((key, v))
    original = r.get("original_max_position_embeddings")
    if original is not None and (isinstance(original, bool) or not isinstance(original, int) or original < 1):
        problems.append(f"original_max_position_embeddings is {show(original, 30)}, not a whole number of tokens")
        original = None
    rope: list[RopeScaling] = []
    raw = r.get("rope_parameters")
    raw = raw if raw is not None else r.get("rope_scaling")
    if raw is not None:
        entries = (
            list(raw.values())
            if isinstance(raw, dict) and raw and all(isinstance(v, dict) or v is None for v in raw.values())
            else [raw]
        )
        for e in entries:
            if e is None:  # a layer type without RoPE does not scale the context
                continue
            try:
                rope.append(_rope_entry(e))
            except ValueError as err:
                problems.append(str(err))
    return ContextLimits(tuple(lengths), original, tuple(rope), tuple(problems))


def _rope_entry(e: Any) -> RopeScaling:
    if not isinstance(e, dict):
        raise ValueError(f"rope_scaling is {show(e, 40)}, not a JSON object")
    kind = e.get("rope_type", e.get("type"))
    factor, original = e.get("factor"), e.get("original_max_position_embeddings")
    if kind is None:
        if factor is not None:
            raise ValueError("rope_scaling has a factor but no rope_type")
        kind = "default"
    if not isinstance(kind, str) or not 0 < len(kind) <= 40:
        raise ValueError(f"rope_type is {show(kind, 40)}, not a short name")
    if factor is not None and (
        isinstance(factor, bool) or not isinstance(factor, int | float) or not 0 < factor <= 1e6
    ):
        raise ValueError(f"rope_scaling factor is {show(factor, 30)}, not a positive number")
    if original is not None and (isinstance(original, bool) or not isinstance(original, int) or original < 1):
        raise ValueError(f"rope_scaling original_max_position_embeddings is {show(original, 30)}, not a whole number")
    return RopeScaling(ROPE_TYPES.get(kind, kind), None if factor is None else float(factor), original)
