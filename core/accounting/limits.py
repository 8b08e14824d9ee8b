"""The limits vLLM enforces before the cache does: the longest request it serves (`max_model_len`, derived
from the config unless set), and how many requests its scheduler runs at once (`max_num_seqs`).

vLLM's rules, as in 0.30-0.34 (docs/facts.md section 10):
- The derived length is the smallest of the config's length keys (`LENGTH_KEYS` in core.model.hf_config),
  except that `model_max_length` overrides them; with no key at all vLLM assumes 2048. RoPE scaling then
  multiplies it by the entry's factor for every type except su/longrope/llama3 and, since vLLM 0.30
  (PR 56446), YaRN and its DeepSeek variants, whose `max_position_embeddings` already holds the scaled
  length; Gemma 3 is skipped (its length is already scaled). (`vllm/config/model.py`,
  `_get_and_verify_max_len`.)
- Without `--max-model-len` the serving length is the derived one (LongRoPE models: the top-level
  `original_max_position_embeddings`). A longer `--max-model-len` stops vLLM at start-up with a ValueError
  unless `VLLM_ALLOW_LONG_MAX_MODEL_LEN=1`; a `model_max_length` at least as long allows it.
- At start-up the KV memory must hold one request of `max_model_len`, else vLLM stops and names the longest
  length that would fit (`vllm/v1/core/kv_cache_utils.py`, `_check_enough_kv_cache_memory` and
  `estimate_max_model_len`): core.accounting.planner checks that.
- `max_num_seqs` for `vllm serve` (`EngineArgs`' defaults table in `vllm/engine/arg_utils.py`,
  `get_batch_defaults`): 1024 on a GPU of at least 70 GiB that is not an A100 (and on one of 160 GiB or
  more), else 256; never more than `max_num_batched_tokens`, whose default in the same table is 8192 on those
  large GPUs and 2048 on the others (the A100 among them: vLLM PR 17885 measured lower throughput there).
"""

from __future__ import annotations

from dataclasses import dataclass

from core.model.specs import ModelSpec

GIB = 1 << 30
NO_LENGTH_DEFAULT = 2048  # what vLLM assumes when a config has none of the length keys
UNSCALED_ROPE = ("su", "longrope", "llama3", "yarn", "deepseek_yarn", "deepseek_llama_scaling")
LONG_ENV = "VLLM_ALLOW_LONG_MAX_MODEL_LEN=1"


@dataclass(frozen=True)
class Derived:
    """vLLM's derived maximum length of a model: `value` (None when it cannot be derived, `why` says why)
    and where it comes from in words (`source`, e.g. "max_position_embeddings=40960")."""

    value: int | None
    source: str
    why: str | None = None  # set when value is None
    default_len: int | None = None  # the serving length without --max-model-len (LongRoPE differs)
    model_max_length: int | None = None


def derived_max_model_len(spec: ModelSpec) -> Derived:
    """vLLM's derived max_model_len of `spec` (see the module docstring), or None with the reason."""
    lim = spec.context_limits
    if lim is None:
        return Derived(None, "", "this model was not read from a config.json, so its context limit is unknown")
    if lim.problems:
        return Derived(None, "", f"its config cannot say its context limit: {'; '.join(lim.problems)}")
    lengths = dict(lim.lengths)
    if lengths:
        key = min(lengths, key=lambda k: (lengths[k], list(lengths).index(k)))
        value = lengths[key]
        if "model_max_length" in lengths:
            key, value = "model_max_length", lengths["model_max_length"]
        source = f"{key}={value:,}"
    else:
        key, value, source = "", NO_LENGTH_DEFAULT, f"none of the length keys, so vLLM assumes {NO_LENGTH_DEFAULT:,}"
    factor = 1.0
    if "gemma3" not in spec.model_type:
        for rp in lim.rope:
            if rp.rope_type not in UNSCALED_ROPE and rp.factor is not None:
                factor = rp.factor
    scaled = int(value * factor)
    if factor != 1.0:
        kind = next(rp.rope_type for rp in reversed(lim.rope) if rp.factor == factor)
        source += f" x {factor:g} ({kind} RoPE scaling)"
    default = scaled
    if any(rp.rope_type == "longrope" for rp in lim.rope) and lim.original_max_position_embeddings:
        default = lim.original_max_position_embeddings
    return Derived(scaled, source, default_len=default, model_max_length=lengths.get("model_max_length"))


@dataclass(frozen=True)
class ModelLen:
    """The max_model_len vLLM serves with: `value` (None when the derived one is unknown and none was set),
    `derived` (vLLM's), and `refusal`: vLLM's start-up error when the setting is above the derived length."""

    value: int | None
    derived: Derived
    requested: int | None
    refusal: str | None = None
    notes: tuple[str, ...] = ()


def max_model_len(spec: ModelSpec, requested: int | None = None, allow_long: bool = False) -> ModelLen:
    """The serving length for `--max-model-len requested` (None: not given), as vLLM decides it;
    `allow_long`: VLLM_ALLOW_LONG_MAX_MODEL_LEN=1 is set."""
    d = derived_max_model_len(spec)
    if requested is None:
        if d.value is None:
            return ModelLen(None, d, None, notes=(f"No max_model_len: {d.why}; requests are not capped here.",))
        return ModelLen(d.default_len, d, None)
    if d.value is None:
        note = f"max_model_len {requested:,} as set; vLLM would check it against the config, but {d.why}."
        return ModelLen(requested, d, requested, notes=(note,))
    allowed_by_mml = d.model_max_length is not None and d.model_max_length >= requested
    if requested > d.value and not allowed_by_mml:
        msg = (
            f"User-specified max_model_len ({requested:,}) is greater than the derived max_model_len "
            f"({d.source} in the model's config.json)."
        )
        if not allow_long:
            return ModelLen(
                None,
                d,
                requested,
                refusal=f"vLLM refuses to start: {msg} It starts with {LONG_ENV} (positions past the trained "
                "length give wrong outputs unless RoPE scaling covers them: with vLLM 0.30 and later, raise "
                "max_position_embeddings through --hf-overrides together with the rope_parameters).",
            )
        return ModelLen(requested, d, requested, notes=(f"{msg} Allowed by {LONG_ENV}, with vLLM's warning.",))
    return ModelLen(requested, d, requested)


def _large_gpu(memory_bytes: int, gpu_name: str) -> bool:
    """vLLM's larger defaults: a GPU of 70 GiB or more that is not an A100 (or of 160 GiB or more)."""
    return memory_bytes >= 160 * GIB or (memory_bytes >= 70 * GIB and "a100" not in gpu_name.lower())


def default_max_num_seqs(memory_bytes: int, gpu_name: str, max_num_batched_tokens: int) -> int:
    """`vllm serve`'s max_num_seqs when it is not set: 1024 on a GPU of 70 GiB or more that is not an A100
    (or of 160 GiB or more), else 256; at most max_num_batched_tokens."""
    return min(1024 if _large_gpu(memory_bytes, gpu_name) else 256, max_num_batched_tokens)


def default_max_num_batched_tokens(memory_bytes: int, gpu_name: str) -> int:
    """`vllm serve`'s max_num_batched_tokens when it is not set: 8192 on the GPUs of `default_max_num_seqs`'
    larger defaults, else 2048."""
    return 8192 if _large_gpu(memory_bytes, gpu_name) else 2048
