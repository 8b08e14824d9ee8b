"""What llama.cpp allocates for a model's KV cache and recurrent state, and the lines it logs about it.

Follows ggml-org/llama.cpp as of the `llama_kv_cache:` log prefix (the class was `llama_kv_cache_unified`
until late 2025) and before PR #21277 (2026-04, "kv-cache : do not quantize SWA KV cache"), which keeps
the sliding-window cache in f16 whatever `--cache-type-k/-v` say. The files and commits read, one per rule:

- src/llama-context.cpp (padding since PR #17046): n_ctx = pad256(n_ctx); n_ctx_seq = n_ctx with
  `--kv-unified`, else pad256(n_ctx // n_seq); n_batch = min(n_ctx, n_batch) and
  n_ubatch = min(n_batch, n_ubatch) for causal models; a quantized V cache needs flash attention.
- src/llama-model.cpp `create_memory`: plain cache, iSWA cache when the model has sliding layers,
  hybrid (attention + recurrent) memory for hybrid architectures; kv_size = n_ctx_seq, n_pad = 1,
  v_trans = !flash_attn; recurrent memory gets max(1, n_seq) cells.
- src/llama-kv-cache.cpp @ 3514e9f6e795d3b3cd88d6614f6c07e7ce6f916f: per cached layer K is
  [n_embd_k_gqa, kv_size, n_stream] and V [n_embd_v_gqa, kv_size, n_stream] (V padded to the widest layer
  when v_trans and widths differ), n_stream = 1 if unified else n_seq; the log line
  "%s: size = %7.2f MiB (%6u cells, %3d layers, %2u/%u seqs), K (%s): %7.2f MiB, V (%s): %7.2f MiB"
  with the MiB computed in single precision.
- src/llama-kv-cache-iswa.cpp @ 2aef9767d982beb7ab61b3ae359366f627eb74dd: the SWA cache holds
  pad256(min(kv_size, n_swa x (unified ? n_seq : 1) + n_ubatch)) cells, or kv_size with `--swa-full`.
- src/llama-hparams.cpp @ 01b77b5793989e0a1508a2fe3757d4e743a7bbd1: n_embd_k_gqa = head_dim_k x n_head_kv;
  recurrent rows n_embd_r = (d_conv - 1) x (d_inner + 2 x n_group x d_state), n_embd_s = d_state x d_inner.
- src/llama-memory-recurrent.cpp (before rollback snapshots): R and S are f32 [n_embd, mem_size] per
  recurrent layer; it logs "%s: size = %7.2f MiB (%6u cells, %3d layers, %2u seqs), R (%s): %7.2f MiB,
  S (%s): %7.2f MiB" where layers is the model's n_layer, not the recurrent layers.
- ggml/src/ggml.c type traits: f32 4 bytes, f16 and bf16 2; blocks of 32 values: q8_0 34 bytes, q4_0 18,
  q4_1 20, q5_0 22, q5_1 24, iq4_nl 18.

llama.cpp reads GGUF, not config.json; the fields the converter writes from the config are the ones the
ModelSpec holds (kv heads, head widths, sliding window, Gated DeltaNet and Mamba-2 state sizes). What
these rules do not cover (MLA, whose GGUF layout changed between versions; chunked attention; K = V
layers; Kimi Delta Attention; other mixers) is refused with ValueError, never approximated.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from core.model.specs import GQASpec, LinearAttentionSpec, Mamba2Spec, ModelSpec, NoMixer

# bytes per block and values per block, as ggml's type traits give them (ggml/src/ggml.c)
CACHE_TYPES: dict[str, tuple[int, int]] = {
    "f32": (4, 1),
    "f16": (2, 1),
    "bf16": (2, 1),
    "q8_0": (34, 32),
    "q4_0": (18, 32),
    "q4_1": (20, 32),
    "q5_0": (22, 32),
    "q5_1": (24, 32),
    "iq4_nl": (18, 32),
}
PAD = 256  # GGML_PAD(n_ctx, 256) in llama-context.cpp; the SWA cache is padded the same way
MIB = 1024 * 1024


def _pad(n: int, to: int = PAD) -> int:
    return (n + to - 1) // to * to


def _mib(n_bytes: int) -> float:
    """(float) bytes / (1024.0f * 1024.0f): llama.cpp divides in single precision; dividing by 2^20 is exact."""
    return struct.unpack("f", struct.pack("f", float(n_bytes)))[0] / MIB


def row_bytes(cache_type: str, n_values: int) -> int:
    """ggml_row_size: bytes of one row of `n_values` values stored as `cache_type`."""
    if cache_type not in CACHE_TYPES:
        raise ValueError(f"unknown llama.cpp cache type {cache_type!r}; choose one of {', '.join(CACHE_TYPES)}.")
    size, block = CACHE_TYPES[cache_type]
    if n_values % block:
        raise ValueError(
            f"a {cache_type} cache stores blocks of {block} values, and a row of {n_values} values is not a "
            "whole number of blocks; llama.cpp refuses this cache type for this model."
        )
    return n_values // block * size


@dataclass(frozen=True)
class LlamaCppFlags:
    """llama.cpp's context flags that size the cache, with llama.cpp's defaults."""

    n_ctx: int  # --ctx-size (0, llama.cpp's "the GGUF's context_length", must be given explicitly here)
    n_seq: int = 1  # --parallel (llama-server's auto is 4 with --kv-unified: pass both)
    n_ubatch: int = 512  # --ubatch-size
    n_batch: int = 2048  # --batch-size
    kv_unified: bool = False  # --kv-unified
    cache_type_k: str = "f16"  # --cache-type-k
    cache_type_v: str = "f16"  # --cache-type-v
    swa_full: bool = False  # --swa-full
    flash_attn: bool = True  # --flash-attn (auto turns it on where the backend supports it)

    def __post_init__(self) -> None:
        for name in ("n_ctx", "n_seq", "n_ubatch", "n_batch"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                hint = " (llama.cpp's 0 means the GGUF's context_length: give that number)" if name == "n_ctx" else ""
                raise ValueError(f"{name} must be a whole number of at least 1, not {value!r}{hint}.")
        for name in ("cache_type_k", "cache_type_v"):
            if getattr(self, name) not in CACHE_TYPES:
                raise ValueError(
                    f"unknown llama.cpp cache type {getattr(self, name)!r} for {name}; "
                    f"choose one of {', '.join(CACHE_TYPES)}."
                )
        if CACHE_TYPES[self.cache_type_v][1] > 1 and not self.flash_attn:
            raise ValueError(
                f"a quantized V cache ({self.cache_type_v}) needs flash attention; llama.cpp refuses it without."
            )


@dataclass(frozen=True)
class KVCache:
    """One llama_kv_cache: `cells` per stream, `n_stream` streams, K and V tensors for `n_layers` layers."""

    cells: int
    n_layers: int
    n_seq: int
    n_stream: int
    type_k: str
    type_v: str
    k_bytes: int
    v_bytes: int

    @property
    def total(self) -> int:
        return self.k_bytes + self.v_bytes

    def log_line(self) -> str:
        return (
            f"llama_kv_cache: size = {_mib(self.total):7.2f} MiB ({self.cells:6d} cells, {self.n_layers:3d} layers, "
            f"{self.n_seq:2d}/{self.n_stream} seqs), K ({self.type_k}): {_mib(self.k_bytes):7.2f} MiB, "
            f"V ({self.type_v}): {_mib(self.v_bytes):7.2f} MiB"
        )


@dataclass(frozen=True)
class RecurrentState:
    """llama_memory_recurrent: f32 R (convolution) and S (SSM / delta-rule) rows, one per cell and layer."""

    cells: int
    n_layer: int  # the model's n_layer, as the log prints it
    n_seq: int
    r_bytes: int
    s_bytes: int

    @property
    def total(self) -> int:
        return self.r_bytes + self.s_bytes

    def log_line(self) -> str:
        return (
            f"llama_memory_recurrent: size = {_mib(self.total):7.2f} MiB ({self.cells:6d} cells, "
            f"{self.n_layer:3d} layers, {self.n_seq:2d} seqs), R (f32): {_mib(self.r_bytes):7.2f} MiB, "
            f"S (f32): {_mib(self.s_bytes):7.2f} MiB"
        )


@dataclass(frozen=True)
class LlamaCppMemory:
    """Everything llama.cpp allocates for one context's memory, and the lines it logs, in order."""

    full: KVCache | None  # the cache of the full-attention layers (the non-SWA cache of an iSWA model)
    swa: KVCache | None  # the sliding-window cache, None when the model has no sliding layers
    recurrent: RecurrentState | None
    n_ctx: int  # after padding
    n_ctx_seq: int
    n_ubatch: int

    @property
    def total(self) -> int:
        return sum(part.total for part in (self.full, self.swa, self.recurrent) if part is not None)

    def log_lines(self) -> tuple[str, ...]:
        lines: list[str] = []
        if self.swa is not None:
            cells = self.full.cells if self.full else self.n_ctx_seq
            lines.append(f"llama_kv_cache_iswa: creating non-SWA KV cache, size = {cells} cells")
        if self.full is not None:
            lines.append(self.full.log_line())
        if self.swa is not None:
            lines.append(f"llama_kv_cache_iswa: creating     SWA KV cache, size = {self.swa.cells} cells")
            lines.append(self.swa.log_line())
        if self.recurrent is not None:
            lines.append(self.recurrent.log_line())
        return tuple(lines)


@dataclass(frozen=True)
class _Layer:
    kind: str  # "full", "swa", "recurrent", "none"
    k: int = 0  # n_embd_k_gqa
    v: int = 0  # n_embd_v_gqa
    window: int = 0
    r: int = 0  # n_embd_r (f32 values)
    s: int = 0  # n_embd_s


def _layer(spec: object, index: int) -> _Layer:
    """A layer as llama.cpp's hparams see it, or ValueError naming what these rules do not cover."""
    if isinstance(spec, GQASpec):
        if spec.chunk_size is not None:
            raise ValueError(f"layer {index}: chunked local attention (Llama 4) is not covered by these rules.")
        if spec.k_eq_v:
            raise ValueError(f"layer {index}: layers whose key is their value (K = V) are not covered by these rules.")
        k, v = spec.n_kv_heads * spec.head_dim, spec.n_kv_heads * spec.v_dim
        if spec.sliding_window is not None:
            return _Layer("swa", k, v, window=spec.sliding_window)
        return _Layer("full", k, v)
    if isinstance(spec, LinearAttentionSpec):
        if spec.variant != "GDN":
            raise ValueError(f"layer {index}: {spec.variant} linear attention is not covered by these rules.")
        # qwen3next/qwen35 GGUF: ssm_d_state = linear_key_head_dim, ssm_d_inner = value heads x value dim,
        # ssm_n_group = linear_num_key_heads, ssm_d_conv = linear_conv_kernel_dim
        return _Layer(
            "recurrent",
            r=(spec.conv_kernel - 1) * spec.conv_dim,
            s=spec.key_head_dim * spec.value_dim,
        )
    if isinstance(spec, Mamba2Spec):
        return _Layer("recurrent", r=(spec.conv_kernel - 1) * spec.conv_dim, s=spec.state_size * spec.d_inner)
    if isinstance(spec, NoMixer) and not spec.linear:
        return _Layer("none")
    name = getattr(spec, "design", type(spec).__name__)
    raise ValueError(
        f"layer {index}: {name} layers are not covered by these llama.cpp rules (MLA's GGUF layout changed "
        "between versions; other designs have their own memory classes)."
    )


def _kv_cache(layers: list[_Layer], cells: int, n_streams: int, flags: LlamaCppFlags, v_width: int | None) -> KVCache:
    k_bytes = v_bytes = 0
    for layer in layers:
        k_bytes += row_bytes(flags.cache_type_k, layer.k) * cells * n_streams
        v_bytes += row_bytes(flags.cache_type_v, v_width or layer.v) * cells * n_streams
    return KVCache(
        cells=cells,
        n_layers=len(layers),
        n_seq=flags.n_seq,
        n_stream=n_streams,
        type_k=flags.cache_type_k,
        type_v=flags.cache_type_v,
        k_bytes=k_bytes,
        v_bytes=v_bytes,
    )


def llamacpp_memory(spec: ModelSpec, flags: LlamaCppFlags) -> LlamaCppMemory:
    """The KV caches and recurrent state llama.cpp allocates for `spec` under `flags` (module docstring).

    full cache: cells = n_ctx_seq; bytes = sum over full-attention layers of
        (row(type_k, n_kv x d_k) + row(type_v, n_kv x d_v)) x cells x n_stream
    SWA cache: the same over sliding layers with pad256(min(n_ctx_seq, w x (unified ? n_seq : 1) + n_ubatch))
        cells (n_ctx_seq with --swa-full)
    recurrent: 4 B x (n_embd_r + n_embd_s) x max(1, n_seq) per recurrent layer
    """
    layers = [_layer(a, i) for i, a in enumerate(spec.attention)]
    if all(layer.kind == "none" for layer in layers):
        raise ValueError(f"{spec.name} has no attention or recurrent layer: llama.cpp would allocate no memory.")

    n_batch = min(flags.n_ctx, flags.n_batch)
    n_ubatch = min(n_batch, flags.n_ubatch)
    n_ctx = _pad(flags.n_ctx)
    if flags.kv_unified:
        n_ctx_seq = n_ctx
    else:
        n_ctx_seq = _pad(n_ctx // flags.n_seq)
        n_ctx = n_ctx_seq * flags.n_seq
    n_stream = 1 if flags.kv_unified else flags.n_seq

    full = [layer for layer in layers if layer.kind == "full"]
    swa = [layer for layer in layers if layer.kind == "swa"]
    recurrent = [layer for layer in layers if layer.kind == "recurrent"]

    # [TAG_V_CACHE_VARIABLE]: without flash attention V is stored transposed and padded to the widest layer
    widths = {layer.v for layer in layers}
    v_width = max(widths) if not flags.flash_attn and len(widths) > 1 else None

    swa_cache = None
    if swa:
        windows = {layer.window for layer in swa}
        if len(windows) > 1:
            raise ValueError(f"sliding layers with different windows {sorted(windows)} are not covered by these rules.")
        if flags.swa_full:
            swa_cells = n_ctx_seq
        else:
            n_swa = windows.pop()
            swa_cells = _pad(min(n_ctx_seq, n_swa * (flags.n_seq if flags.kv_unified else 1) + n_ubatch))
        swa_cache = _kv_cache(swa, swa_cells, n_stream, flags, v_width)
    full_cache = _kv_cache(full, n_ctx_seq, n_stream, flags, v_width) if full or swa else None

    state = None
    if recurrent:
        cells = max(1, flags.n_seq)
        state = RecurrentState(
            cells=cells,
            n_layer=spec.n_layers,
            n_seq=flags.n_seq,
            r_bytes=sum(4 * layer.r * cells for layer in recurrent),
            s_bytes=sum(4 * layer.s * cells for layer in recurrent),
        )
    return LlamaCppMemory(
        full=full_cache, swa=swa_cache, recurrent=state, n_ctx=n_ctx, n_ctx_seq=n_ctx_seq, n_ubatch=n_ubatch
    )


def log_lines(spec: ModelSpec, flags: LlamaCppFlags) -> tuple[str, ...]:
    """The memory lines llama.cpp logs at start-up for `spec` under `flags`, formatted as it formats them."""
    return llamacpp_memory(spec, flags).log_lines()
