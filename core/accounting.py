"""Exact accounting: KV cache bytes, bytes read and FLOPs per decoded token, parameters.

Pure functions of (spec, context, batch, dtype) returning ints; no torch. Conventions (DESIGN.md
section 3):
- Context N: tokens the newest token attends to, itself included; the cache at context N holds what N
  tokens leave behind. Sliding-window layers keep min(N, w) tokens; compressed (V4) layers keep
  floor(N/m) entries plus the window.
- FLOPs: 2 per multiply-add. Attention core = scores + value mixing over the attended tokens, plus
  indexer scoring. Attention block = core + every projection matmul. Whole model = 2 x (active
  matmul parameters) + attention cores. Softmax, norms, RoPE and activations are not counted.
- MLA cache layouts: "latent" (DeepSeek's absorbed inference: c_KV + shared rope key, default),
  "materialised" (per-head K and V, as HF's modelling code caches), "fp8_ds_mla" (vLLM's DeepSeek fp8
  layout: 656 B per token per layer for V3 shapes; see `_fp8_ds_mla_bytes`).
Each formula is pinned by tests against real layers (tensor nbytes, FlopCounterMode).
"""

from __future__ import annotations

from dataclasses import dataclass
from math import ceil
from typing import NamedTuple

from core.dtypes import StorageFormat, cache_dtype
from core.specs import (
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

LAYOUTS = ("latent", "materialised", "fp8_ds_mla")
MODES = ("absorbed", "naive")


# ----------------------------------------------------------------------------- cache bytes


@dataclass(frozen=True)
class CacheTerm:
    """One cached tensor of one layer type: `rows` vectors of `width` elements per sequence per layer."""

    layer_kind: str  # "GQA", "MLA", "CSA", ...
    tensor: str  # "keys", "values", "latent c_KV", "rope key", "indexer keys", "entries", "window"
    n_layers: int
    rows: int  # vectors per sequence per layer (tokens x kv heads, or compressed entries)
    width: int  # elements per vector
    bytes_per_row: int
    batch: int

    @property
    def bytes(self) -> int:
        return self.n_layers * self.batch * self.rows * self.bytes_per_row


@dataclass(frozen=True)
class CacheBreakdown:
    terms: tuple[CacheTerm, ...]

    @property
    def total(self) -> int:
        return sum(t.bytes for t in self.terms)

    def by_layer_type(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for t in self.terms:
            out[t.layer_kind] = out.get(t.layer_kind, 0) + t.bytes
        return out

    def by_tensor(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for t in self.terms:
            key = f"{t.layer_kind} {t.tensor}"
            out[key] = out.get(key, 0) + t.bytes
        return out


def _fp8_ds_mla_bytes(kv_lora_rank: int, qk_rope_head_dim: int) -> int:
    """vLLM's fp8_ds_mla: latent in fp8 e4m3 with an fp32 scale per 128 values, rope key in bf16.
    512 + 4*4 + 2*64 = 656 bytes for DeepSeek-V3 shapes (vllm/attention/backends/mla/flashmla_sparse)."""
    return kv_lora_rank + 4 * ceil(kv_lora_rank / 128) + 2 * qk_rope_head_dim


def _fp8_scaled_bytes(width: int) -> int:
    """An fp8 vector with an fp32 scale per 128 values: V3.2's indexer key cache (128 + 4 B)."""
    return width + 4 * ceil(width / 128)


def _v4_entry_bytes(attn: CompressedSpec) -> int:
    """V4 production entry (compressed entry and window token alike): non-rope channels fp8 e4m3
    with one ue8m0 scale byte per 64 values plus 1 pad byte, rope channels bf16:
    448 + 128 + 7 + 1 = 584 B (vLLM deepseek_v4_attention.py, FlashMLA sparse docs)."""
    nope = attn.head_dim - attn.qk_rope_head_dim
    return nope + 2 * attn.qk_rope_head_dim + ceil(nope / 64) + 1


def _v4_index_bytes(attn: CompressedSpec) -> int:
    """V4 production indexer key: MXFP4, e2m1 packed two per byte with one ue8m0 scale per 32 values:
    64 + 4 = 68 B for index_head_dim 128 (vLLM deepseek_compressor.py; vLLM allocates 132 B)."""
    return ceil(attn.index_head_dim / 2) + ceil(attn.index_head_dim / 32)


class CacheRows(NamedTuple):
    tensor: str
    rows: int  # vectors per sequence
    width: int  # elements per vector
    bytes_per_row: int


def layer_cache_rows(attn: AttentionSpec, context: int, fmt: StorageFormat, layout: str = "latent") -> list[CacheRows]:
    """What one layer caches for one sequence at `context` tokens: one CacheRows per cached tensor."""
    n = context
    if isinstance(attn, GQASpec):
        tokens = min(n, attn.sliding_window) if attn.sliding_window else n
        rows = tokens * attn.n_kv_heads
        row_b = fmt.vector_bytes(attn.head_dim)
        return [CacheRows("keys", rows, attn.head_dim, row_b), CacheRows("values", rows, attn.head_dim, row_b)]
    if isinstance(attn, MLASpec):
        out = []
        if layout == "materialised":
            k, v = attn.qk_head_dim, attn.v_head_dim
            out += [CacheRows("keys", n * attn.n_heads, k, fmt.vector_bytes(k))]
            out += [CacheRows("values", n * attn.n_heads, v, fmt.vector_bytes(v))]
        elif layout == "fp8_ds_mla":
            w = attn.kv_lora_rank + attn.qk_rope_head_dim
            row_b = _fp8_ds_mla_bytes(attn.kv_lora_rank, attn.qk_rope_head_dim)
            out += [CacheRows("latent + rope key (fp8_ds_mla)", n, w, row_b)]
        else:
            out += [CacheRows("latent c_KV", n, attn.kv_lora_rank, fmt.vector_bytes(attn.kv_lora_rank))]
            if attn.qk_rope_head_dim:
                out += [CacheRows("rope key", n, attn.qk_rope_head_dim, fmt.vector_bytes(attn.qk_rope_head_dim))]
        if isinstance(attn, DSASpec):
            d = attn.index_head_dim
            row_b = _fp8_scaled_bytes(d) if layout == "fp8_ds_mla" else fmt.vector_bytes(d)
            out += [CacheRows("indexer keys", n, d, row_b)]
        return out
    if isinstance(attn, CompressedSpec):
        prod = layout == "fp8_ds_mla"
        entry_b = _v4_entry_bytes(attn) if prod else fmt.vector_bytes(attn.head_dim)
        out = []
        if attn.compress_ratio:
            entries = n // attn.compress_ratio
            out += [CacheRows("entries", entries, attn.head_dim, entry_b)]
            if attn.indexed:
                d = attn.index_head_dim
                out += [CacheRows("indexer keys", entries, d, _v4_index_bytes(attn) if prod else fmt.vector_bytes(d))]
        out += [CacheRows("window", min(n, attn.sliding_window), attn.head_dim, entry_b)]
        return out
    raise TypeError(f"unknown attention spec {type(attn).__name__}")


def _merge(spec: ModelSpec, per_layer, batch: int) -> CacheBreakdown:
    merged: dict[tuple, int] = {}
    for attn, rows in zip(spec.attention, per_layer, strict=True):
        for tensor, r, w, b in rows:
            key = (attn.kind, tensor, r, w, b)
            merged[key] = merged.get(key, 0) + 1
    return CacheBreakdown(tuple(CacheTerm(k, t, nl, r, w, b, batch) for (k, t, r, w, b), nl in merged.items()))


def _check(context: int, batch: int, layout: str) -> None:
    if isinstance(context, bool) or not isinstance(context, int) or context < 0:
        raise ValueError(f"context must be a whole number of tokens >= 0, got {context!r}.")
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch must be a whole number >= 1, got {batch!r}.")
    if layout not in LAYOUTS:
        raise ValueError(f"unknown cache layout {layout!r}; choose one of {', '.join(LAYOUTS)}.")


def kv_cache(
    spec: ModelSpec, context: int, batch: int = 1, kv_dtype: str = "bf16", layout: str = "latent"
) -> CacheBreakdown:
    """KV cache of all layers after `context` tokens, for `batch` sequences, by layer type and tensor.

    bytes = batch * sum over layers and cached tensors of rows(N) * vector_bytes(width).
    """
    _check(context, batch, layout)
    fmt = cache_dtype(kv_dtype)
    return _merge(spec, [layer_cache_rows(a, context, fmt, layout) for a in spec.attention], batch)


def kv_cache_bytes(
    spec: ModelSpec, context: int, batch: int = 1, kv_dtype: str = "bf16", layout: str = "latent"
) -> int:
    return kv_cache(spec, context, batch, kv_dtype, layout).total


def kv_bytes_per_token(spec: ModelSpec, kv_dtype: str = "bf16", layout: str = "latent") -> int:
    """The cache at context 1: what one token leaves behind in every layer. For full-attention GQA/MLA/DSA
    models every further token adds exactly this much; sliding-window and compressed (V4) layers do not
    grow linearly, so use `kv_cache_bytes` at the context you care about for them."""
    return kv_cache_bytes(spec, 1, 1, kv_dtype, layout)


# ----------------------------------------------------------------------------- what decode reads


def attended(attn: AttentionSpec, context: int) -> int:
    """Tokens (or compressed entries) one query at position `context` attends to, itself included."""
    n = context
    if isinstance(attn, GQASpec):
        return min(n, attn.sliding_window) if attn.sliding_window else n
    if isinstance(attn, DSASpec):
        return min(n, attn.index_topk)
    if isinstance(attn, MLASpec):
        return n
    entries = n // attn.compress_ratio if attn.compress_ratio else 0
    if attn.indexed:
        entries = min(entries, attn.index_topk)
    return entries + min(n, attn.sliding_window)


def indexed_rows(attn: AttentionSpec, context: int) -> int:
    """Keys the indexer scores for one query: every token (DSA) or every entry (V4 CSA); else 0."""
    if isinstance(attn, DSASpec):
        return context
    if isinstance(attn, CompressedSpec) and attn.indexed:
        return context // attn.compress_ratio
    return 0


def cache_bytes_read(spec: ModelSpec, context: int, kv_dtype: str = "bf16", layout: str = "latent") -> int:
    """Cache bytes one decoded token reads (one sequence): sparse layers read all indexer keys but only
    the selected entries; everything else reads what it caches."""
    _check(context, 1, layout)
    fmt = cache_dtype(kv_dtype)
    total = 0
    for attn in spec.attention:
        for tensor, rows, _w, b in layer_cache_rows(attn, context, fmt, layout):
            if isinstance(attn, DSASpec) and tensor != "indexer keys":
                rows = rows * min(context, attn.index_topk) // max(context, 1)
            elif isinstance(attn, CompressedSpec) and attn.indexed and tensor == "entries":
                rows = min(rows, attn.index_topk)
            total += rows * b
    return total


# ----------------------------------------------------------------------------- FLOPs


def pair_flops(attn: AttentionSpec, mode: str = "absorbed") -> int:
    """FLOPs of the attention core for one (query token, attended key) pair, all heads:
    GQA 2 n_h (d_h + d_h); MLA naive 2 n_h (d_nope + d_r + d_v); MLA absorbed 2 n_h (d_c + d_r + d_c);
    V4 (shared K=V head) 2 n_h (head_dim + head_dim)."""
    if mode not in MODES:
        raise ValueError(f"unknown MLA mode {mode!r}; choose absorbed or naive.")
    if isinstance(attn, GQASpec):
        return 2 * attn.n_heads * 2 * attn.head_dim
    if isinstance(attn, MLASpec):
        if mode == "naive":
            return 2 * attn.n_heads * (attn.qk_head_dim + attn.v_head_dim)
        return 2 * attn.n_heads * (2 * attn.kv_lora_rank + attn.qk_rope_head_dim)
    return 2 * attn.n_heads * 2 * attn.head_dim


def index_flops_per_row(attn: AttentionSpec) -> int:
    """Indexer scoring FLOPs per (query, scored key): 2 H^I d^I (the ReLU-weighted head sum is not a
    matmul and is not counted)."""
    if isinstance(attn, DSASpec) or (isinstance(attn, CompressedSpec) and attn.indexed):
        return 2 * attn.index_n_heads * attn.index_head_dim
    return 0


def decode_core_flops(attn: AttentionSpec, context: int, mode: str = "absorbed") -> int:
    """Attention-core FLOPs of one layer for one new token at `context`: attended * pair_flops +
    indexed rows * indexer FLOPs per row."""
    return attended(attn, context) * pair_flops(attn, mode) + indexed_rows(attn, context) * index_flops_per_row(attn)


def _sum_min(a: int, b: int, c: int) -> int:
    """sum_{p=a}^{b} min(p, c)."""
    if b < a:
        return 0
    lo_end = min(b, c)
    s = (lo_end - a + 1) * (a + lo_end) // 2 if lo_end >= a else 0
    if b > c:
        s += (b - max(a, c + 1) + 1) * c
    return s


def _sum_min_floor(n: int, m: int, k: int | None) -> int:
    """sum_{p=1}^{n} min(floor(p/m), k) (k None: no cap)."""
    if n <= 0 or m <= 0:
        return 0

    def upto(n: int) -> int:  # sum_{p=0}^{n} min(p // m, k)
        q, r = divmod(n + 1, m)  # q full blocks with values 0..q-1, then r values equal to q
        if k is None or q - 1 <= k:
            s = m * (q - 1) * q // 2
        else:
            s = m * (k * (k + 1) // 2 + (q - 1 - k) * k)
        return s + r * (q if k is None else min(q, k))

    return upto(n)


def prefill_core_flops(attn: AttentionSpec, n_tokens: int, mode: str = "absorbed", causal: bool = True) -> int:
    """Attention-core FLOPs of one layer for a prefill of `n_tokens` from an empty cache.

    causal=True counts what each query attends to (query p attends as a decode step at context p):
    sum_{p=1}^{T} decode_core_flops(p). causal=False counts the dense products a masked kernel executes
    (what our reference layers and FlopCounterMode see): T x T pairs for GQA/MLA, T x min(T, k) for DSA
    plus T x T indexer rows; for V4 layers T x T window pairs plus T x E entries (CSA: T x min(E, k),
    and T x E indexer rows), E = floor(T / m).
    """
    t = n_tokens
    pf = pair_flops(attn, mode)
    ix = index_flops_per_row(attn)
    if not causal:
        if isinstance(attn, DSASpec):
            return t * min(t, attn.index_topk) * pf + t * t * ix
        if isinstance(attn, CompressedSpec):
            e = t // attn.compress_ratio if attn.compress_ratio else 0
            if attn.indexed:
                return t * (t + min(e, attn.index_topk)) * pf + t * e * ix
            return t * (t + e) * pf
        return t * t * pf
    if isinstance(attn, GQASpec):
        pairs = _sum_min(1, t, attn.sliding_window) if attn.sliding_window else t * (t + 1) // 2
        return pairs * pf
    if isinstance(attn, DSASpec):
        return _sum_min(1, t, attn.index_topk) * pf + t * (t + 1) // 2 * ix
    if isinstance(attn, MLASpec):
        return t * (t + 1) // 2 * pf
    w = _sum_min(1, t, attn.sliding_window)
    if not attn.compress_ratio:
        return w * pf
    cap = attn.index_topk if attn.indexed else None
    entries = _sum_min_floor(t, attn.compress_ratio, cap)
    scored = _sum_min_floor(t, attn.compress_ratio, None) if attn.indexed else 0
    return (w + entries) * pf + scored * ix


# ----------------------------------------------------------------------------- parameters


@dataclass(frozen=True)
class Params:
    matmul: int  # weights of matrix multiplies (what costs 2 FLOPs each per token)
    other: int = 0  # norms, biases, embeddings, scalars

    @property
    def total(self) -> int:
        return self.matmul + self.other

    def __add__(self, o: Params) -> Params:
        return Params(self.matmul + o.matmul, self.other + o.other)

    def scale(self, k: int) -> Params:
        return Params(self.matmul * k, self.other * k)


def attention_params(attn: AttentionSpec, hidden: int) -> Params:
    """Weights of one attention block (projections, norms inside the block, biases)."""
    h = hidden
    if isinstance(attn, GQASpec):
        q, kv = attn.n_heads * attn.head_dim, attn.n_kv_heads * attn.head_dim
        bias = (q + 2 * kv if attn.qkv_bias else 0) + (h if attn.o_bias else 0)
        return Params(h * q + 2 * h * kv + q * h, bias)
    if isinstance(attn, MLASpec):
        qk = attn.n_heads * attn.qk_head_dim
        if attn.q_lora_rank:
            p = Params(h * attn.q_lora_rank + attn.q_lora_rank * qk, attn.q_lora_rank)
        else:
            p = Params(h * qk)
        p += Params(h * (attn.kv_lora_rank + attn.qk_rope_head_dim), attn.kv_lora_rank)  # W^DKV, W^KR, norm
        p += Params(attn.kv_lora_rank * attn.n_heads * (attn.qk_nope_head_dim + attn.v_head_dim))  # W^UK, W^UV
        p += Params(attn.n_heads * attn.v_head_dim * h)  # W^O
        if isinstance(attn, DSASpec):
            q_in = attn.q_lora_rank or h
            p += Params(
                q_in * attn.index_n_heads * attn.index_head_dim + h * attn.index_head_dim + h * attn.index_n_heads,
                2 * attn.index_head_dim,
            )
        return p
    from core.v4 import v4_attention_params  # V4's block has its own module

    return v4_attention_params(attn, hidden)


def _expert_params(mlp: MoEMLP, hidden: int) -> Params:
    """One gated expert: gate, up and down projections (+ biases, gpt-oss)."""
    i = mlp.expert_intermediate_size
    return Params(3 * hidden * i, (2 * i + hidden) if mlp.bias else 0)


def mlp_params(mlp: MLPSpec | None, hidden: int, active: bool = False) -> Params:
    """Weights of one MLP block; `active` counts only the experts one token runs."""
    h = hidden
    if mlp is None:
        return Params(0)
    if isinstance(mlp, DenseMLP):
        i = mlp.intermediate_size
        n_mat = 3 if mlp.gated else 2
        return Params(n_mat * h * i, (i + h) if mlp.bias else 0)
    e = mlp.top_k if active else mlp.n_routed
    p = _expert_params(mlp, h).scale(e) + Params(h * mlp.n_routed, mlp.n_routed)  # router (+ bias / correction bias)
    p += Params(3 * h * mlp.shared_intermediate_size * mlp.n_shared)
    return p


@dataclass(frozen=True)
class ParamCount:
    total: int
    active: int  # per token: MoE counts only the experts that run; the embedding lookup is left out
    matmul_active: int  # active weights that are matmul operands (lm_head included, embeddings not)
    embedding: int  # input embedding table
    attention: int
    mlp: int
    routed_experts: int = 0  # MoE routed expert weights (what releases often store in 4 bits)
    head: int = 0  # untied output projection (lm_head)


def param_count(spec: ModelSpec) -> ParamCount:
    """Parameters from the config, excluding next-token-prediction (MTP) modules."""
    h = spec.hidden_size
    embed = spec.vocab_size * h
    head = 0 if spec.tie_word_embeddings else embed
    attn = [attention_params(a, h) for a in spec.attention]
    mlp = [mlp_params(m, h) for m in spec.mlp]
    mlp_act = [mlp_params(m, h, active=True) for m in spec.mlp]
    norms = 2 * h * spec.n_layers + h
    extra = sum(n for _, n in spec.extra_params)
    attn_total = sum(p.total for p in attn)
    common = embed + head + attn_total + norms + extra
    total = common + sum(p.total for p in mlp)
    # Active per token leaves out the embedding table (a lookup, not computed), as the V4 and V3
    # model cards do: V4-Pro 49B, V3 37B.
    active = common - embed + sum(p.total for p in mlp_act)
    matmul_active = spec.vocab_size * h + sum(p.matmul for p in attn) + sum(p.matmul for p in mlp_act)
    routed = sum(m.n_routed * _expert_params(m, h).total for m in spec.mlp if isinstance(m, MoEMLP))
    return ParamCount(total, active, matmul_active, embed, attn_total, sum(p.total for p in mlp), routed, head)


def weights_bytes_parts(spec: ModelSpec, weight_dtype: str = "bf16") -> tuple[int, int, int, int]:
    """Bytes of (input embedding, lm_head, routed experts, everything else) in `weight_dtype` ("native":
    the formats of the release). A tied lm_head is the embedding table and takes 0 extra bytes."""
    from core.dtypes import weight_dtype as wd

    pc = param_count(spec)
    names = spec.native_weights if weight_dtype == "native" else (weight_dtype,) * 3
    embed_fmt, expert_fmt, rest_fmt = (wd(n) for n in names)
    rest = pc.total - pc.embedding - pc.head - pc.routed_experts
    return (
        ceil(pc.embedding * embed_fmt.bits_per_element / 8),
        ceil(pc.head * embed_fmt.bits_per_element / 8),
        ceil(pc.routed_experts * expert_fmt.bits_per_element / 8),
        ceil(rest * rest_fmt.bits_per_element / 8),
    )


def weights_bytes(spec: ModelSpec, weight_dtype: str = "bf16") -> int:
    """Bytes of all weights (MTP modules excluded) in `weight_dtype`, scales included. "native" uses the
    formats the release ships, read from its config (`spec.native_weights`): embeddings and lm_head,
    routed experts, and everything else each in their own format (DeepSeek-V3: bf16 / fp8 / fp8;
    gpt-oss: bf16 / mxfp4 / bf16; V4: bf16 / mxfp4 / fp8)."""
    from core.dtypes import weight_dtype as wd

    pc = param_count(spec)
    if weight_dtype != "native":
        return ceil(pc.total * wd(weight_dtype).bits_per_element / 8)
    embed_fmt, expert_fmt, rest_fmt = (wd(n) for n in spec.native_weights)
    rest = pc.total - pc.embedding - pc.head - pc.routed_experts
    bits = (
        (pc.embedding + pc.head) * embed_fmt.bits_per_element
        + pc.routed_experts * expert_fmt.bits_per_element
        + rest * rest_fmt.bits_per_element
    )
    return ceil(bits / 8)


# ----------------------------------------------------------------------------- per-token totals


@dataclass(frozen=True)
class DecodeCost:
    """One decoded token of one sequence at `context`."""

    context: int
    attention_core_flops: int  # scores + mixing + indexer, all layers
    attention_block_flops: int  # core + every attention projection, all layers
    model_flops: int  # core + 2 x active matmul weights
    cache_bytes_read: int

    @property
    def arithmetic_intensity(self) -> float:
        """Attention-core FLOPs per cache byte read."""
        return self.attention_core_flops / self.cache_bytes_read if self.cache_bytes_read else 0.0


def decode_cost(
    spec: ModelSpec, context: int, kv_dtype: str = "bf16", layout: str = "latent", mode: str = "absorbed"
) -> DecodeCost:
    _check(context, 1, layout)
    core = sum(decode_core_flops(a, context, mode) for a in spec.attention)
    proj = sum(2 * attention_params(a, spec.hidden_size).matmul for a in spec.attention)
    pc = param_count(spec)
    model = 2 * pc.matmul_active + core
    return DecodeCost(context, core, core + proj, model, cache_bytes_read(spec, context, kv_dtype, layout))


def prefill_flops(spec: ModelSpec, n_tokens: int, mode: str = "absorbed") -> int:
    """Whole-model FLOPs of a causal prefill of `n_tokens`: 2 x active matmul weights x tokens + cores."""
    pc = param_count(spec)
    return 2 * pc.matmul_active * n_tokens + sum(prefill_core_flops(a, n_tokens, mode) for a in spec.attention)
