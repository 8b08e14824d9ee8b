"""How many tokens SGLang's KV token pool holds, what it allocates, and the lines it logs about it.

Follows sgl-project/sglang's main branch of early 2026 (the v0.5 series, after the KV-cache code moved into
`model_runner_kv_cache_mixin.py` and before `pool_configurator.py` took the sizing over). The files and
commits read, one per rule:

- python/sglang/srt/model_executor/model_runner_kv_cache_mixin.py @ 001ccef0072a4537d4ec6bdd50a73e6feb2c907d:
  `get_cell_size_per_token`: MHA/GQA cell = get_num_kv_heads(attention_tp_size) x (head_dim + v_head_dim)
  x layers x element size; MLA cell = (kv_lora_rank + qk_rope_head_dim) x layers x element size, the
  whole latent on every rank. `profile_max_num_token`: rest_memory = available_gpu_memory -
  total_gpu_memory x (1 - mem_fraction_static), in GiB; max_total_num_tokens = int(rest_memory x 2^30)
  // cell. `init_memory`: min(that, --max-total-tokens), then rounded down to --page-size; "Not enough
  memory" when it is 0.
- python/sglang/srt/model_executor/model_runner.py (`init_torch_distributed`): total_gpu_memory is the
  free memory after the distributed init and before the weights load (the minimum over ranks; logged as
  "Load weight begin. avail mem=X GB"); available_gpu_memory is the free memory after the weights load
  ("Load weight end. ... avail mem=X GB"). `get_available_gpu_memory` returns bytes / 2^30.
- python/sglang/srt/layers/dp_attention.py: with --enable-dp-attention the attention TP size is tp / dp.
- python/sglang/srt/configs/model_config.py `get_num_kv_heads`: max(1, num_key_value_heads // tp).
- python/sglang/srt/mem_cache/memory_pool.py (MHATokenToKVPool, MLATokenToKVPool): per layer K and V
  buffers of (size + page_size, heads, head_dim), the MLA buffer (size + page_size, 1, kv_lora_rank +
  qk_rope_head_dim): page_size padding slots (slot 0 takes padded tokens' dummy writes). GB = 1024^3, and
  the lines "KV Cache is allocated. #tokens: {size}, K size: {k / GB:.2f} GB, V size: {v / GB:.2f} GB"
  and, for MLA, "KV Cache is allocated. #tokens: {size}, KV size: {kv / GB:.2f} GB". Builds from mid-2026
  insert "dtype: torch.bfloat16, " after "allocated. " (`log_line(with_dtype=True)`).
- python/sglang/srt/server_args.py: --kv-cache-dtype auto (the model's dtype), fp8_e5m2, fp8_e4m3, bf16,
  bfloat16, fp4_e2m1; fp8 caches are stored as uint8, one byte per value.

What these rules do not cover is refused with ValueError, never approximated: sliding-window layers (the
hybrid SWA pools split the memory by --swa-full-tokens-ratio), recurrent and linear-attention hybrids
(Mamba / Gated DeltaNet pools take their share first), DeepSeek-V3.2's DSA indexer pool, DeepSeek V4's
compressed pools, chunked attention, K = V layers, values narrower or wider than keys, layers without
attention, models mixing MLA and GQA, the fp4_e2m1 cache (its scale buffers), and pipeline parallelism.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.model.specs import DSASpec, GQASpec, MLASpec, ModelSpec

GB = 1 << 30  # memory_pool.py: GB = 1024 * 1024 * 1024; get_available_gpu_memory divides by 1 << 30 too

# --dtype: the model's dtype, which --kv-cache-dtype auto follows (model_runner.py: kv_cache_dtype = self.dtype)
MODEL_DTYPES: dict[str, int] = {"bfloat16": 2, "float16": 2, "float32": 4}
# --kv-cache-dtype: bytes per stored value (fp8 is stored as uint8)
KV_CACHE_DTYPES: dict[str, int | None] = {"auto": None, "bf16": 2, "bfloat16": 2, "fp8_e4m3": 1, "fp8_e5m2": 1}
TORCH_NAMES = {"bfloat16": "torch.bfloat16", "bf16": "torch.bfloat16", "float16": "torch.float16"}
TORCH_NAMES |= {"float32": "torch.float32", "fp8_e4m3": "torch.float8_e4m3fn", "fp8_e5m2": "torch.float8_e5m2"}


@dataclass(frozen=True)
class SGLangFlags:
    """SGLang's server flags that size the token pool. `mem_fraction_static` has no default here:
    SGLang picks one from the GPU's memory and the parallelism (server_args.py), so give the one it used."""

    mem_fraction_static: float  # --mem-fraction-static
    tp: int = 1  # --tp
    dp: int = 1  # --dp
    enable_dp_attention: bool = False  # --enable-dp-attention
    page_size: int = 1  # --page-size
    kv_cache_dtype: str = "auto"  # --kv-cache-dtype
    dtype: str | None = None  # --dtype as resolved from the config's torch_dtype (what auto caches follow); no
    # default: a guess would size the pool of a float16 or float32 model wrongly with an auto cache
    max_total_tokens: int | None = None  # --max-total-tokens

    def __post_init__(self) -> None:
        fraction = self.mem_fraction_static
        if isinstance(fraction, bool) or not isinstance(fraction, int | float) or not 0 < fraction <= 1:
            raise ValueError(f"mem_fraction_static must be in (0, 1], not {fraction!r}.")
        for name in ("tp", "dp", "page_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a whole number of at least 1, not {value!r}.")
        if self.max_total_tokens is not None and (
            isinstance(self.max_total_tokens, bool) or not isinstance(self.max_total_tokens, int)
        ):
            raise ValueError(f"max_total_tokens must be a whole number, not {self.max_total_tokens!r}.")
        if self.enable_dp_attention and self.tp % self.dp:
            raise ValueError(f"with --enable-dp-attention, tp ({self.tp}) must be a multiple of dp ({self.dp}).")
        if self.dtype is None and self.kv_cache_dtype == "auto":
            raise ValueError("--kv-cache-dtype auto stores the model's dtype: give dtype (the config's torch_dtype).")
        if self.dtype is not None and self.dtype not in MODEL_DTYPES:
            raise ValueError(f"unknown model dtype {self.dtype!r}; choose one of {', '.join(MODEL_DTYPES)}.")
        if self.kv_cache_dtype == "fp4_e2m1":
            raise ValueError("the fp4_e2m1 KV cache (with its scale buffers) is not covered by these rules.")
        if self.kv_cache_dtype not in KV_CACHE_DTYPES:
            raise ValueError(
                f"unknown SGLang kv cache dtype {self.kv_cache_dtype!r}; choose one of {', '.join(KV_CACHE_DTYPES)}."
            )

    @property
    def attention_tp(self) -> int:
        """dp_attention.py: attention runs with tp / dp ranks per replica under --enable-dp-attention."""
        return self.tp // self.dp if self.enable_dp_attention else self.tp

    @property
    def element_size(self) -> int:
        size = KV_CACHE_DTYPES[self.kv_cache_dtype]
        return MODEL_DTYPES[self.dtype] if size is None else size

    @property
    def torch_dtype(self) -> str:
        return TORCH_NAMES[self.dtype if self.kv_cache_dtype == "auto" else self.kv_cache_dtype]


@dataclass(frozen=True)
class _Layout:
    """The pool's geometry on one rank: MHA (heads x head_dim for K and for V) or MLA (one latent row)."""

    mla: bool
    n_layers: int
    width: int  # values per token and layer in one buffer: heads x head_dim (K or V), or rank + rope (MLA)


def _layout(spec: ModelSpec, flags: SGLangFlags) -> _Layout:
    """The layer geometry SGLang's pools use, or ValueError naming what these rules do not cover."""
    kinds = set()
    for index, layer in enumerate(spec.attention):
        if isinstance(layer, DSASpec):
            raise ValueError(f"layer {index}: DSA (DeepSeek-V3.2's indexer pool) is not covered by these rules.")
        if isinstance(layer, MLASpec):
            kinds.add(("MLA", layer.kv_lora_rank + layer.qk_rope_head_dim))
            continue
        if isinstance(layer, GQASpec):
            if layer.sliding_window is not None:
                raise ValueError(
                    f"layer {index}: sliding-window layers use SGLang's hybrid SWA pools, not covered by these rules."
                )
            if layer.chunk_size is not None:
                raise ValueError(f"layer {index}: chunked local attention is not covered by these rules.")
            if layer.k_eq_v or layer.v_dim != layer.head_dim:
                raise ValueError(f"layer {index}: values of another width than keys are not covered by these rules.")
            kinds.add(("MHA", layer.n_kv_heads, layer.head_dim))
            continue
        name = getattr(layer, "design", type(layer).__name__)
        raise ValueError(
            f"layer {index}: {name} layers are not covered by these SGLang rules (hybrid models get Mamba, "
            "linear-attention or compressed pools sized by other rules)."
        )
    if len(kinds) != 1:
        raise ValueError(f"{spec.name} mixes layer geometries {sorted(kinds)}; one pool of one width is covered.")
    kind = kinds.pop()
    if kind[0] == "MLA":
        return _Layout(mla=True, n_layers=len(spec.attention), width=kind[1])
    heads = max(1, kind[1] // flags.attention_tp)  # model_config.get_num_kv_heads
    return _Layout(mla=False, n_layers=len(spec.attention), width=heads * kind[2])


def cell_size(spec: ModelSpec, flags: SGLangFlags) -> int:
    """Bytes one token takes on one rank, as `get_cell_size_per_token` counts them:
    MHA: max(1, n_kv // tp_attn) x (d_h + d_v) x L x s;  MLA: (d_c + d_h^R) x L x s."""
    layout = _layout(spec, flags)
    buffers = 1 if layout.mla else 2
    return buffers * layout.width * layout.n_layers * flags.element_size


@dataclass(frozen=True)
class SGLangPool:
    """The token pool of one rank: `max_total_num_tokens` slots plus `page_size` padding slots per buffer."""

    max_total_num_tokens: int
    page_size: int
    mla: bool
    k_bytes: int  # K buffers, or the MLA latent buffers
    v_bytes: int  # V buffers; 0 for MLA
    torch_dtype: str

    @property
    def total(self) -> int:
        return self.k_bytes + self.v_bytes

    def log_line(self, with_dtype: bool = False) -> str:
        """memory_pool.py's line, sizes in GB = 2^30 bytes with two decimals."""
        dtype = f"dtype: {self.torch_dtype}, " if with_dtype else ""
        head = f"KV Cache is allocated. {dtype}#tokens: {self.max_total_num_tokens}, "
        if self.mla:
            return head + f"KV size: {self.k_bytes / GB:.2f} GB"
        return head + f"K size: {self.k_bytes / GB:.2f} GB, V size: {self.v_bytes / GB:.2f} GB"

    def server_log(self) -> str:
        """The field the scheduler prints in its "max_total_num_tokens=..., chunked_prefill_size=..." line."""
        return f"max_total_num_tokens={self.max_total_num_tokens}"


def kv_pool(spec: ModelSpec, flags: SGLangFlags, max_total_num_tokens: int) -> SGLangPool:
    """The buffers MHATokenToKVPool / MLATokenToKVPool allocate for `max_total_num_tokens` slots:
    per layer (N + page_size) x width x s bytes for K and for V (MHA), or once (MLA)."""
    layout = _layout(spec, flags)
    per_buffer = (max_total_num_tokens + flags.page_size) * layout.width * layout.n_layers * flags.element_size
    return SGLangPool(
        max_total_num_tokens=max_total_num_tokens,
        page_size=flags.page_size,
        mla=layout.mla,
        k_bytes=per_buffer,
        v_bytes=0 if layout.mla else per_buffer,
        torch_dtype=flags.torch_dtype,
    )


def rest_memory_gib(flags: SGLangFlags, total_gpu_memory: float, available_gpu_memory: float) -> float:
    """profile_max_num_token: available - total x (1 - mem_fraction_static), GiB, in double precision."""
    return available_gpu_memory - total_gpu_memory * (1 - flags.mem_fraction_static)


def max_total_num_tokens(
    spec: ModelSpec, flags: SGLangFlags, total_gpu_memory: float, available_gpu_memory: float
) -> int:
    """The pool size SGLang settles on (module docstring): int(rest x 2^30) // cell, capped by
    --max-total-tokens, rounded down to the page size. `total_gpu_memory` is the free memory (GiB) before
    the weights load, `available_gpu_memory` the free memory after; both as SGLang measures them."""
    for name, value in (("total_gpu_memory", total_gpu_memory), ("available_gpu_memory", available_gpu_memory)):
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1 << 20:
            raise ValueError(f"{name} must be a positive number of GiB, not {value!r}.")
    return tokens_for_rest(spec, flags, rest_memory_gib(flags, total_gpu_memory, available_gpu_memory))


def tokens_for_rest(spec: ModelSpec, flags: SGLangFlags, rest: float) -> int:
    """The pool `rest` GiB left for it holds: int(rest x 2^30) // cell, capped by --max-total-tokens, rounded
    down to the page size; ValueError ("Not enough memory") when that is no token."""
    tokens = int(rest * (1 << 30)) // cell_size(spec, flags)
    if flags.max_total_tokens is not None:
        tokens = min(tokens, flags.max_total_tokens)
    tokens = tokens // flags.page_size * flags.page_size
    if tokens <= 0:
        raise ValueError(
            f"Not enough memory: {rest:.2f} GiB left for the pool holds no token; SGLang stops here and asks to "
            f"increase --mem-fraction-static (now {flags.mem_fraction_static})."
        )
    return tokens


def sglang_pool(
    spec: ModelSpec, flags: SGLangFlags, total_gpu_memory: float, available_gpu_memory: float
) -> SGLangPool:
    """The pool one rank allocates after profiling the memory: `max_total_num_tokens`, then `kv_pool`."""
    return kv_pool(spec, flags, max_total_num_tokens(spec, flags, total_gpu_memory, available_gpu_memory))
