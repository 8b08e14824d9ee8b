"""Exact accounting: KV cache bytes, bytes read and FLOPs per decoded token, parameters.

Pure functions of (spec, context, batch, dtype) returning ints; no torch. Conventions (docs/facts.md
section 1):
- Context N: tokens the newest token attends to, itself included; the cache at context N holds what N
  tokens leave behind. Sliding-window layers keep min(N, w) tokens; compressed (V4) layers keep
  floor(N/m) entries plus the window.
- FLOPs: 2 per multiply-add. Attention core = scores + value mixing over the attended tokens, plus
  indexer scoring. Attention block = core + every projection matmul. Whole model = 2 x (active
  matmul parameters) + attention cores. Softmax, norms, RoPE and activations are not counted.
- MLA cache layouts: "latent" (DeepSeek's absorbed inference: c_KV + shared rope key, default),
  "materialised" (per-head K and V, as HF's modelling code caches), "fp8_ds_mla" (vLLM's DeepSeek fp8
  layout: 656 B per token per layer for V3 shapes; see `designs.mla.fp8_ds_mla_bytes`).
Each formula is pinned by tests against real layers (tensor nbytes, FlopCounterMode).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from math import ceil

from core.accounting import designs  # noqa: F401  (registers every design's accounting)
from core.accounting.base import LAYOUTS, MODES, CacheRows, Params, check_mode, design_of
from core.model.dtypes import StorageFormat, cache_dtype
from core.model.dtypes import weight_dtype as weight_format
from core.model.specs import AttentionSpec, DenseMLP, MLPSpec, ModelSpec, MoEMLP, unknown_parameters

__all__ = ["LAYOUTS", "MODES", "CacheRows", "Params"]


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


def layer_cache_rows(attn: AttentionSpec, context: int, fmt: StorageFormat, layout: str = "latent") -> list[CacheRows]:
    """What one layer caches for one sequence at `context` tokens: one CacheRows per cached tensor.
    A layout the layer's design cannot be stored in is stored in the default one ("latent")."""
    d = design_of(attn)
    return d.cache_rows(attn, context, fmt, layout if layout in d.layouts else "latent")


def bytes_by_layer(
    layers: Iterable[AttentionSpec],
    context: int = 1,
    kv_dtype: str = "bf16",
    layout: str = "latent",
    *,
    cache: bool = True,
    state: bool = False,
) -> list[int]:
    """Bytes each layer holds for one sequence at `context`, in order: its cached tensors (`cache`, in
    `kv_dtype` and `layout`) and its fixed-size state (`state`, in the formats the layer keeps it in). The one
    per-layer byte sum: the model's cache and state, what decode reads of the state, vLLM's page per layer and
    the formulas' fixed-state terms all add up its numbers."""
    fmt = cache_dtype(kv_dtype)
    out = []
    for attn in layers:
        held = sum(r.rows * r.bytes_per_row for r in layer_cache_rows(attn, context, fmt, layout)) if cache else 0
        if state:
            held += sum(r.rows * r.bytes_per_row for r in design_of(attn).state_rows(attn))
        out.append(held)
    return out


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


def check_layout(spec: ModelSpec, layout: str) -> None:
    """A layout other than the default must apply to at least one layer of the model; else ValueError."""
    if layout != "latent" and not any(layout in design_of(a).layouts for a in spec.attention):
        kinds = ", ".join(spec.layer_kinds)
        raise ValueError(
            f"cache layout {layout!r} applies to MLA, DSA and DeepSeek V4 layers; {spec.name} has {kinds} layers only."
        )


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
    """`kv_cache(...).total`, summed layer by layer (no breakdown built)."""
    _check(context, batch, layout)
    return batch * sum(bytes_by_layer(spec.attention, context, kv_dtype, layout))


def kv_bytes_per_token(spec: ModelSpec, kv_dtype: str = "bf16", layout: str = "latent") -> int:
    """The cache at context 1: what one token leaves behind in every layer. For full-attention GQA/MLA/DSA
    models every further token adds exactly this much; sliding-window and compressed (V4) layers do not
    grow linearly, so use `kv_cache_bytes` at the context you care about for them."""
    return kv_cache_bytes(spec, 1, 1, kv_dtype, layout)


def state(spec: ModelSpec, batch: int = 1) -> CacheBreakdown:
    """Fixed-size per-sequence state of all layers (linear attention, Mamba): recurrent and convolution
    state, in the formats the layers keep them in (not the KV-cache dtype). It does not grow with the
    context, but every request holds its own."""
    _check(0, batch, "latent")
    per_layer = [design_of(a).state_rows(a) for a in spec.attention]
    return _merge(spec, per_layer, batch)


def state_bytes(spec: ModelSpec, batch: int = 1) -> int:
    """`state(...).total`, summed layer by layer (no breakdown built)."""
    _check(0, batch, "latent")
    return batch * sum(bytes_by_layer(spec.attention, cache=False, state=True))


# ----------------------------------------------------------------------------- what decode reads


def attended(attn: AttentionSpec, context: int) -> int:
    """Tokens (or compressed entries) one query at position `context` attends to, itself included."""
    return design_of(attn).attended(attn, context)


def indexed_rows(attn: AttentionSpec, context: int) -> int:
    """Keys the indexer scores for one query: every token (DSA) or every entry (V4 CSA); else 0."""
    return design_of(attn).indexed_rows(attn, context)


def cache_bytes_read(spec: ModelSpec, context: int, kv_dtype: str = "bf16", layout: str = "latent") -> int:
    """Cache bytes one decoded token reads (one sequence): sparse layers read all indexer keys but only
    the selected entries; everything else reads what it caches. Fixed-size state (linear attention, Mamba)
    is read whole at every step."""
    _check(context, 1, layout)
    fmt = cache_dtype(kv_dtype)
    total = sum(bytes_by_layer(spec.attention, cache=False, state=True))  # every state, read whole
    for attn in spec.attention:
        d = design_of(attn)
        for rows in layer_cache_rows(attn, context, fmt, layout):
            total += d.read_rows(attn, context, rows) * rows.bytes_per_row
    return total


# ----------------------------------------------------------------------------- FLOPs


def pair_flops(attn: AttentionSpec, mode: str = "absorbed") -> int:
    """FLOPs of the attention core for one (query token, attended key) pair, all heads:
    GQA 2 n_h (d_h + d_v); MLA materialised 2 n_h (d_nope + d_r + d_v); MLA absorbed 2 n_h (d_c + d_r + d_c);
    V4 (shared K=V head) 2 n_h (head_dim + head_dim)."""
    check_mode(mode)
    return design_of(attn).pair_flops(attn, mode)


def index_flops_per_row(attn: AttentionSpec) -> int:
    """Indexer scoring FLOPs per (query, scored key): 2 H^I d^I (the ReLU-weighted head sum is not a
    matmul and is not counted)."""
    return design_of(attn).index_flops_per_row(attn)


def decode_core_flops(attn: AttentionSpec, context: int, mode: str = "absorbed") -> int:
    """Attention-core FLOPs of one layer for one new token at `context`: attended * pair_flops +
    indexed rows * indexer FLOPs per row (recurrent designs: the state products)."""
    check_mode(mode)
    return design_of(attn).decode_core_flops(attn, context, mode)


def prefill_core_flops(attn: AttentionSpec, n_tokens: int, mode: str = "absorbed", causal: bool = True) -> int:
    """Attention-core FLOPs of one layer for a prefill of `n_tokens` from an empty cache.

    causal=True counts what each query attends to (query p attends as a decode step at context p):
    sum_{p=1}^{T} decode_core_flops(p). causal=False counts the dense products a masked kernel executes
    (what our reference layers and FlopCounterMode see): T x T pairs for GQA/MLA, T x min(T, k) for DSA
    plus T x T indexer rows; for V4 layers T x T window pairs plus T x E entries (CSA: T x min(E, k),
    and T x E indexer rows), E = floor(T / m).
    """
    check_mode(mode)
    return design_of(attn).prefill_core_flops(attn, n_tokens, mode, causal)


# ----------------------------------------------------------------------------- parameters


def attention_params(attn: AttentionSpec, hidden: int) -> Params:
    """Weights of one attention block (projections, norms inside the block, biases)."""
    return design_of(attn).params(attn, hidden)


def expert_params(mlp: MoEMLP, hidden: int) -> Params:
    """One expert: gate, up and down projections (up and down when not gated) (+ biases, gpt-oss), from and
    to the hidden size, or to the latent of a latent MoE."""
    i, width = mlp.expert_intermediate_size, mlp.latent_size or hidden
    return Params((3 if mlp.gated else 2) * width * i, (2 * i + width) if mlp.bias else 0)


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
    router = Params(h * mlp.n_routed, mlp.n_routed if mlp.router_bias else 0)  # (+ bias / correction bias)
    p = expert_params(mlp, h).scale(e) + router
    p += Params((3 if mlp.gated else 2) * h * mlp.shared_intermediate_size * mlp.n_shared)
    if mlp.latent_size:  # the projections into and out of the experts' latent
        p += Params(2 * h * mlp.latent_size)
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


class ParamsUnknown(ValueError):
    """The config gives what the cache needs but not what parameter counting needs."""


@lru_cache(maxsize=256)  # pure and asked for again and again on every page rerun; specs are frozen
def param_count(spec: ModelSpec) -> ParamCount:
    """Parameters from the config, excluding next-token-prediction (MTP) modules. ParamsUnknown when the
    config lacks fields the count needs (a KV-only config)."""
    if spec.params_unknown:
        raise ParamsUnknown(f"parameters of {spec.name} are unknown: {unknown_parameters(spec.params_unknown)}.")
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
    routed = sum(m.n_routed * expert_params(m, h).total for m in spec.mlp if isinstance(m, MoEMLP))
    return ParamCount(total, active, matmul_active, embed, attn_total, sum(p.total for p in mlp), routed, head)


def weights_bytes_parts(spec: ModelSpec, weight_dtype: str = "bf16") -> tuple[int, int, int, int]:
    """Bytes of (input embedding, lm_head, routed experts, everything else) in `weight_dtype` ("native":
    the formats of the release). A tied lm_head is the embedding table and takes 0 extra bytes."""
    pc = param_count(spec)
    names = spec.native_weights if weight_dtype == "native" else (weight_dtype,) * 3
    embed_fmt, expert_fmt, rest_fmt = (weight_format(n) for n in names)
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
    pc = param_count(spec)
    if weight_dtype != "native":
        return ceil(pc.total * weight_format(weight_dtype).bits_per_element / 8)
    embed_fmt, expert_fmt, rest_fmt = (weight_format(n) for n in spec.native_weights)
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
    model_flops: int | None  # core + 2 x active matmul weights; None when the parameters are unknown
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
    model = None if spec.params_unknown else 2 * param_count(spec).matmul_active + core
    return DecodeCost(context, core, core + proj, model, cache_bytes_read(spec, context, kv_dtype, layout))


def prefill_flops(spec: ModelSpec, n_tokens: int, mode: str = "absorbed") -> int:
    """Whole-model FLOPs of a causal prefill of `n_tokens`: 2 x active matmul weights x tokens + cores."""
    pc = param_count(spec)
    return 2 * pc.matmul_active * n_tokens + sum(prefill_core_flops(a, n_tokens, mode) for a in spec.attention)
