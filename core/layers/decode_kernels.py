"""Decode attention that reads the KV cache once: flash-decoding over chunks of a preallocated cache.

# B batch, T new tokens (queries), S cached tokens the queries attend to (context N, new ones included),
# L tokens in one chunk, P chunks side by side in one block, H query heads, G kv heads,
# Q query heads per kv head (H / G), D key width, V value width, C latent rank d_c, R rope dim d_h^R,
# Dn no-rope key width, E model width

The reference layers (core/layers.py) teach the math; they are not built to be timed. Each of their
steps appends with `torch.cat`, which copies the whole cache, and absorbed MLA multiplies by the latent
twice (scores, then value mixing), so a long cache crosses the memory bus more than once. Here:
- the cache is a preallocated buffer (`KVBuffer`, `LatentBuffer`): a step writes its new tokens in
  place and attends over a view of the first N tokens; nothing is copied;
- attention runs over chunks of L tokens, flash-decoding style (Dao et al. 2023, "Flash-Decoding for
  long-context inference"; split-KV in FlashAttention-2). Chunk p gives its partial softmax: the max
  m_p, the sum l_p = sum_s exp(s - m_p) and the unnormalised output o_p = sum_s exp(s - m_p) v_s, and the
  chunks combine exactly: o = sum_p exp(m_p - M) o_p / sum_p exp(m_p - M) l_p with M = max_p m_p.
  P chunks side by side form a block, computed by one batched matmul (the split-KV parallelism that
  spreads a long cache over all cores). The latent is MLA's keys and its values, used by two products:
  a block small enough to stay in the processor's cache (CPU L2/L3, GPU L2) between them is read from
  memory once (`PLANS`).
- the latent cache is one (B, S, C + R) tensor, latent and rope key side by side, as FlashMLA stores it
  (deepseek-ai/FlashMLA: one 576-wide row per token, the first 512 columns are also the value), so the
  scores are a single matmul per block.
The products are the reference layers' (explicit matmuls, the same FLOPs), and tests prove the outputs
equal in float64. Queries are the last T of the S tokens and are causal among themselves; T = 1 is a
decode step, T > 1 a chunk of prefill or speculative tokens.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from core.layers.attention import DSAttention, GQAttention, KVCache, LatentCache, MLAttention, rope
from core.model.specs import GQASpec, MLASpec

MIB = 1 << 20


@dataclass(frozen=True)
class KernelPlan:
    """How the chunked kernels cut a cache: bytes per chunk and chunks per block (`PLANS`, `default_plan`)."""

    chunk_bytes: int  # cache bytes of one chunk (all batch rows and heads)
    parallel: int  # chunks side by side in one block (one batched matmul); 0: 2 x torch threads


# How the kernels cut the cache, by device and by whether a chunk is used twice. "reuse" (the latent:
# keys for the scores, then values): a block must stay in the processor's cache between the two
# products: on this CPU, 1 MiB chunks (one core's L2) side by side, 2 per thread, in 4 MiB blocks (L3
# is 32 MiB); on a GPU, 16 MiB blocks (an H100's L2 is 50 MB). Chunks side by side are flash-decoding's
# split-KV: one batched matmul spreads them over the cores (absorbed MLA at 64K tokens, 2 threads, idle
# machine: 512-token chunks 4 at a time 21 ms, one 2048-token chunk at a time 23 ms, 256 x 16 26 ms).
# "stream" (separate keys and values, each used by one product): nothing needs to stay, so chunks are
# large, which cuts per-block overhead (Python, kernel launches); they only bound the score buffer
# (MHA at 64K on this machine: 256-token chunks 53 ms, 2048-token chunks 46 ms).
PLANS = {
    "cpu": {"reuse": KernelPlan(1 * MIB, 0), "stream": KernelPlan(32 * MIB, 1)},
    "cuda": {"reuse": KernelPlan(4 * MIB, 4), "stream": KernelPlan(64 * MIB, 1)},
}
MODES = ("absorbed", "materialised", "expanded")


# ----------------------------------------------------------------------------- preallocated caches


@dataclass(frozen=True)
class KVBuffer:
    """Preallocated per-head keys and values, k (B, G, capacity, D) and v (B, G, capacity, V), of which
    the first `length` tokens are filled: MHA/GQA/MQA, or MLA materialised (G = H, D = Dn + R)."""

    k: Tensor
    v: Tensor
    length: int

    @property
    def capacity(self) -> int:
        return self.k.shape[2]

    @property
    def keys(self) -> Tensor:
        return self.k[:, :, : self.length]  # (B, G, S, D): a view, no copy

    @property
    def values(self) -> Tensor:
        return self.v[:, :, : self.length]  # (B, G, S, V)

    def tensors(self) -> tuple[Tensor, ...]:
        """What a step at context `length` reads: the filled views of the cache."""
        return (self.keys, self.values)

    def append(self, k_new: Tensor, v_new: Tensor) -> KVBuffer:
        """Write T new tokens, k_new (B, G, T, D) and v_new (B, G, T, V), in place after the filled part;
        returns the buffer one step longer (same storage)."""
        end = self.length + k_new.shape[2]
        _check_room(end, self.capacity)
        self.k[:, :, self.length : end] = k_new
        self.v[:, :, self.length : end] = v_new
        return KVBuffer(self.k, self.v, end)

    def as_cache(self) -> KVCache:
        return KVCache(self.keys, self.values, self.length)

    @staticmethod
    def from_cache(cache: KVCache, capacity: int) -> KVBuffer:
        """Copy a reference layer's cache into a buffer with room for `capacity` tokens."""
        B, G, S, D = cache.k.shape
        buf = KVBuffer(cache.k.new_empty(B, G, capacity, D), cache.v.new_empty(B, G, capacity, cache.v.shape[-1]), 0)
        return buf.append(cache.k, cache.v)


@dataclass(frozen=True)
class LatentBuffer:
    """Preallocated MLA latent cache kv (B, capacity, C + R): the normalised latent c_KV and the shared
    rope key side by side (FlashMLA's layout); the first `length` tokens are filled."""

    kv: Tensor
    kv_lora_rank: int  # C
    length: int

    @property
    def capacity(self) -> int:
        return self.kv.shape[1]

    @property
    def filled(self) -> Tensor:
        return self.kv[:, : self.length]  # (B, S, C + R)

    @property
    def c_kv(self) -> Tensor:
        return self.kv[:, : self.length, : self.kv_lora_rank]  # (B, S, C)

    @property
    def k_pe(self) -> Tensor:
        return self.kv[:, : self.length, self.kv_lora_rank :]  # (B, S, R)

    def tensors(self) -> tuple[Tensor, ...]:
        """What a step at context `length` reads: the filled latent and rope key."""
        return (self.c_kv, self.k_pe) if self.kv.shape[-1] > self.kv_lora_rank else (self.c_kv,)

    def append(self, c_kv: Tensor, k_pe: Tensor) -> LatentBuffer:
        """Write T new tokens, c_kv (B, T, C) and k_pe (B, T, R), in place after the filled part."""
        end = self.length + c_kv.shape[1]
        _check_room(end, self.capacity)
        self.kv[:, self.length : end, : self.kv_lora_rank] = c_kv
        self.kv[:, self.length : end, self.kv_lora_rank :] = k_pe
        return LatentBuffer(self.kv, self.kv_lora_rank, end)

    def as_cache(self) -> LatentCache:
        return LatentCache(self.c_kv, self.k_pe, self.length)

    @staticmethod
    def from_cache(cache: LatentCache, capacity: int) -> LatentBuffer:
        B, S, C = cache.c_kv.shape
        buf = LatentBuffer(cache.c_kv.new_empty(B, capacity, C + cache.k_pe.shape[-1]), C, 0)
        return buf.append(cache.c_kv, cache.k_pe)


def _check_room(end: int, capacity: int) -> None:
    if end > capacity:
        raise ValueError(f"the cache buffer holds {capacity:,} tokens; this step would need {end:,}.")


def empty_buffer(
    spec: GQASpec | MLASpec, batch: int, capacity: int, mode: str = "absorbed", device=None, dtype=torch.float32
) -> KVBuffer | LatentBuffer:
    """An unfilled buffer in the layout a design reads: per-head K/V (GQA, MLA materialised) or the latent."""
    kw = dict(device=device, dtype=dtype)
    if isinstance(spec, GQASpec):
        _check_plain(spec)
        shape = (batch, spec.n_kv_heads, capacity, spec.head_dim)
        return KVBuffer(torch.empty(shape, **kw), torch.empty(shape, **kw), 0)
    if not isinstance(spec, MLASpec) or getattr(spec, "index_topk", None):
        raise ValueError(f"no chunked decode kernel for {type(spec).__name__}; use GQASpec or MLASpec.")
    _check_mode(mode)
    if mode == "materialised":
        H = spec.n_heads
        k = torch.empty(batch, H, capacity, spec.qk_head_dim, **kw)
        return KVBuffer(k, torch.empty(batch, H, capacity, spec.v_head_dim, **kw), 0)
    kv = torch.empty(batch, capacity, spec.kv_lora_rank + spec.qk_rope_head_dim, **kw)
    return LatentBuffer(kv, spec.kv_lora_rank, 0)


def _check_plain(spec: GQASpec) -> None:
    """The kernels run full attention over keys and values of head_dim: ValueError naming any other option."""
    if spec.sliding_window:
        raise ValueError("the chunked kernels cover full attention; sliding-window layers are not supported.")
    for name in ("chunk_size", "v_head_dim", "k_eq_v", "output_gate"):
        if getattr(spec, name):
            raise ValueError(f"the chunked kernels cover plain GQA layers; {name} is not supported.")


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"unknown MLA mode {mode!r}; choose one of {', '.join(MODES)}.")


# ----------------------------------------------------------------------------- chunked attention


def default_plan(row_bytes: int, device: torch.device | str | None, reuse: bool) -> tuple[int, int]:
    """(tokens per chunk, chunks per block) for a cache of `row_bytes` per token (whole batch);
    `reuse`: whether the kernel uses each chunk twice (see PLANS)."""
    kind = torch.device(device).type if device is not None else "cpu"
    plan = PLANS.get(kind, PLANS["cuda"])["reuse" if reuse else "stream"]
    chunk = max(16, plan.chunk_bytes // max(row_bytes, 1))
    return chunk, plan.parallel if plan.parallel else max(1, 2 * torch.get_num_threads())


def chunk_bounds(n_tokens: int, chunk: int) -> list[tuple[int, int]]:
    """[start, end) of each chunk; together they tile [0, n_tokens) once, the last one may be short."""
    if chunk < 1:
        raise ValueError(f"chunk must be at least 1 token, got {chunk}.")
    return [(s0, min(s0 + chunk, n_tokens)) for s0 in range(0, n_tokens, chunk)]


def blocks(n_tokens: int, chunk: int, parallel: int = 1) -> list[tuple[int, int, int]]:
    """(start, chunks P, chunk length L) of each block: up to `parallel` whole chunks side by side, then
    the remainder as one short chunk. In order, the blocks tile `chunk_bounds(n_tokens, chunk)` once."""
    if chunk < 1 or parallel < 1:
        raise ValueError(f"chunk and parallel must be at least 1, got {chunk} and {parallel}.")
    full, rest = divmod(n_tokens, chunk)
    out = [(i * chunk, min(parallel, full - i), chunk) for i in range(0, full, parallel)]
    return out + [(full * chunk, 1, rest)] if rest else out


class _Partials:
    """Per-chunk softmax partials (m_p, l_p, o_p), combined exactly at the end (flash-decoding)."""

    def __init__(self):
        self.m, self.l, self.o = [], [], []

    def add(self, scores: Tensor, values: Tensor) -> None:
        """scores (..., P, rows, L) of a block's P chunks against their values (..., P, L, V); the
        scores tensor is overwritten."""
        m = scores.amax(-1, keepdim=True)  # (..., P, rows, 1)
        # A row whose keys in a chunk are all in its future has max -inf; a finite floor keeps
        # exp(s - m) at 0 there (not NaN), and exp(m_p - M) = 0 drops that chunk when combining.
        m.clamp_min_(torch.finfo(scores.dtype).min)
        p = scores.sub_(m).exp_()  # (..., P, rows, L): unnormalised probabilities, in place
        self.m.append(m)
        self.l.append(p.sum(-1, keepdim=True))  # (..., P, rows, 1)
        self.o.append(torch.matmul(p, values))  # (..., P, rows, V)

    def combine(self) -> Tensor:
        m, l, o = (torch.cat(x, dim=-3) for x in (self.m, self.l, self.o))  # (..., chunks, rows, .)
        w = (m - m.amax(-3, keepdim=True)).exp()  # exp(m_p - M)
        return (w * o).sum(-3) / (w * l).sum(-3)  # (..., rows, V)


def _causal(scores: Tensor, s0: int, P: int, L: int, S: int, T: int, query_of_row: Tensor) -> None:
    """Mask the keys of a block (P chunks of L from s0) that lie in the future of their row's query
    (query t sits at S - T + t); scores (..., P, rows, L)."""
    if T > 1 and s0 + P * L - 1 > S - T:
        k_pos = s0 + torch.arange(P * L, device=scores.device).view(P, 1, L)  # (P, 1, L)
        scores.masked_fill_(k_pos > (S - T + query_of_row)[:, None], float("-inf"))  # (P, rows, L)


@torch.no_grad()
def attend_kv(
    q: Tensor, k: Tensor, v: Tensor, scale: float, chunk: int | None = None, parallel: int | None = None
) -> Tensor:
    """Attention over per-head cached keys and values, block by block (MHA, GQA, MQA, MLA materialised).

    q (B, H, T, D), k (B, G, S, D), v (B, G, S, V) -> (B, H, T, V). The Q = H / G query heads of a kv head
    share one matmul against its keys, so each key and value is read once per step, as GQA intends.
    FLOPs: 2 B H T S (D + V), the same products as GQAttention's einsums.
    """
    B, H, T, D = q.shape
    G, S, V = k.shape[1], k.shape[2], v.shape[-1]
    plan = default_plan(B * G * (D + V) * k.element_size(), k.device, reuse=False)
    chunk, parallel = chunk or plan[0], parallel or plan[1]
    QT = H // G * T
    qg = q.reshape(B, G, 1, QT, D) * scale  # (B, G, 1, Q T, D): rows ordered (query head, token)
    query_of_row = torch.arange(QT, device=q.device) % T  # (Q T,)
    parts = _Partials()
    for s0, P, L in blocks(S, chunk, parallel):
        kb = k[:, :, s0 : s0 + P * L].unflatten(2, (P, L))  # (B, G, P, L, D): a view
        if QT <= 16:  # few query rows per kv head (decode): skinny products, which CPU BLAS (MKL on
            # this machine) runs 2-4x faster as K q^T than as q K^T; same products, same FLOPs
            scores = torch.matmul(kb, qg.transpose(-1, -2)).transpose(-1, -2)  # (B, G, P, Q T, L)
        else:
            scores = torch.matmul(qg, kb.transpose(-1, -2))  # (B, G, P, Q T, L)
        _causal(scores, s0, P, L, S, T, query_of_row)
        parts.add(scores, v[:, :, s0 : s0 + P * L].unflatten(2, (P, L)))  # values (B, G, P, L, V)
    return parts.combine().view(B, H, T, V)  # (B, G, Q T, V) -> (B, H, T, V)


@torch.no_grad()
def attend_latent(
    q_lat: Tensor, q_pe: Tensor, kv: Tensor, scale: float, chunk: int | None = None, parallel: int | None = None
) -> Tensor:
    """Absorbed MLA over the latent cache, block by block: every head scores against the same latent
    rows, which then serve as the values (DeepSeek-V3 inference/model.py, attn_impl "absorb").

    q_lat (B, T, H, C) (W^UK absorbed into the query), q_pe (B, T, H, R), kv (B, S, C + R)
    -> o_lat (B, T, H, C), still to be multiplied by W^UV. FLOPs: 2 B T S H (C + R + C).
    """
    B, T, H, C = q_lat.shape
    S, W = kv.shape[1], kv.shape[2]
    plan = default_plan(B * W * kv.element_size(), kv.device, reuse=True)
    chunk, parallel = chunk or plan[0], parallel or plan[1]
    q = torch.cat([q_lat, q_pe], dim=-1).reshape(B, 1, T * H, W) * scale  # (B, 1, T H, C + R)
    query_of_row = torch.arange(T * H, device=q.device) // H  # (T H,): rows ordered (token, head)
    parts = _Partials()
    for s0, P, L in blocks(S, chunk, parallel):
        rows = kv[:, s0 : s0 + P * L].unflatten(1, (P, L))  # (B, P, L, C + R): read from memory here ...
        scores = torch.matmul(q, rows.transpose(-1, -2))  # (B, P, T H, L): latent and rope scores at once
        _causal(scores, s0, P, L, S, T, query_of_row)
        parts.add(scores, rows[..., :C])  # ... and reused from the processor's cache as the values
    return parts.combine().view(B, T, H, C)


@torch.no_grad()
def attend_expanded(
    q_nope: Tensor,
    q_pe: Tensor,
    kv: Tensor,
    wkv_b: Tensor,
    scale: float,
    chunk: int | None = None,
    parallel: int | None = None,
) -> Tensor:
    """Expanded MLA over the latent cache: expand each chunk's per-head keys and values with W^UK and W^UV,
    then attend as MHA (what prefill kernels do: vLLM's MLA prefill; DeepSeek's attn_impl "naive" without
    caching what it expands). The expanded chunk lives only in the processor's cache.

    q_nope (B, T, H, Dn), q_pe (B, T, H, R), kv (B, S, C + R), wkv_b (H (Dn + V), C) -> o (B, T, H, V).
    FLOPs: 2 B S C H (Dn + V) to expand, plus 2 B T S H (Dn + R + V) to attend.
    """
    B, T, H, Dn = q_nope.shape
    S, C = kv.shape[1], wkv_b.shape[1]
    V = wkv_b.shape[0] // H - Dn
    plan = default_plan(B * (kv.shape[-1] + H * (Dn + V)) * kv.element_size(), kv.device, reuse=True)
    chunk, parallel = chunk or plan[0], parallel or plan[1]
    qn = q_nope.transpose(1, 2)[:, :, None] * scale  # (B, H, 1, T, Dn)
    qp = q_pe.reshape(B, 1, T * H, -1) * scale  # (B, 1, T H, R)
    query_of_row = torch.arange(T, device=kv.device)  # (T,)
    parts = _Partials()
    for s0, P, L in blocks(S, chunk, parallel):
        rows = kv[:, s0 : s0 + P * L].unflatten(1, (P, L))  # (B, P, L, C + R)
        kvh = torch.matmul(rows[..., :C], wkv_b.t()).view(B, P, L, H, Dn + V)  # (B, P, L, H, Dn + V)
        k_nope, v = kvh.permute(0, 3, 1, 2, 4).split([Dn, V], dim=-1)  # (B, H, P, L, Dn), (B, H, P, L, V)
        scores = torch.matmul(qn, k_nope.transpose(-1, -2))  # (B, H, P, T, L)
        pe = torch.matmul(qp, rows[..., C:].transpose(-1, -2))  # (B, P, T H, L): one rope key for all heads
        scores += pe.view(B, P, T, H, L).permute(0, 3, 1, 2, 4)
        _causal(scores, s0, P, L, S, T, query_of_row)
        parts.add(scores, v)
    return parts.combine().transpose(1, 2)  # (B, H, T, V) -> (B, T, H, V)


# ----------------------------------------------------------------------------- whole decode steps


@torch.no_grad()
def gqa_step(
    layer: GQAttention, x: Tensor, buf: KVBuffer, chunk: int | None = None, parallel: int | None = None
) -> tuple[Tensor, KVBuffer]:
    """GQAttention's forward with a preallocated cache: the same weights and RoPE, the new tokens written
    in place, attention by `attend_kv`. x (B, T, E) -> (B, T, E) and the buffer T tokens longer."""
    s = layer.spec
    _check_plain(s)
    B, T, _ = x.shape
    H, G, D = s.n_heads, s.n_kv_heads, s.head_dim
    pos = torch.arange(buf.length, buf.length + T, device=x.device)
    q = rope(layer.wq(x).view(B, T, H, D).transpose(1, 2), pos)  # (B, H, T, D)
    k = rope(layer.wk(x).view(B, T, G, D).transpose(1, 2), pos)  # (B, G, T, D)
    v = layer.wv(x).view(B, T, G, D).transpose(1, 2)  # (B, G, T, D)
    buf = buf.append(k, v)
    o = attend_kv(q, buf.keys, buf.values, 1 / math.sqrt(D), chunk, parallel)  # (B, H, T, D)
    return layer.wo(o.transpose(1, 2).reshape(B, T, H * D)), buf  # (B, T, E)


@torch.no_grad()
def mla_attention(
    spec: MLASpec,
    wkv_b: Tensor,
    q_nope: Tensor,
    q_pe: Tensor,
    c_kv: Tensor,
    k_pe: Tensor,
    buf: KVBuffer | LatentBuffer,
    mode: str = "absorbed",
    chunk: int | None = None,
    parallel: int | None = None,
) -> tuple[Tensor, KVBuffer | LatentBuffer]:
    """MLA from the new tokens' queries and latents to per-head outputs, by one of three paths:

    - "absorbed": cache the latent; fold W^UK into the query and W^UV into the output (decode in
      DeepSeek-V3's inference code);
    - "materialised": expand the new tokens' keys and values and cache them per head (DeepSeek's attn_impl
      "naive", Hugging Face's cache), then attend as MHA;
    - "expanded": cache the latent, expand every cached token's keys and values chunk by chunk (prefill).

    q_nope (B, T, H, Dn), q_pe (B, T, H, R) with RoPE applied, c_kv (B, T, C), k_pe (B, T, R) of the new
    tokens; wkv_b (H (Dn + V), C) is W^UK and W^UV stacked. Returns o (B, T, H, V) and the buffer.
    """
    _check_mode(mode)
    B, T, H, Dn = q_nope.shape
    R, V, C = spec.qk_rope_head_dim, spec.v_head_dim, spec.kv_lora_rank
    scale = 1 / math.sqrt(spec.qk_head_dim)
    w = wkv_b.view(H, Dn + V, C)
    if mode == "materialised":
        kvh = torch.matmul(c_kv, wkv_b.t()).view(B, T, H, Dn + V)  # (B, T, H, Dn + V): expand once, then cache
        k_nope, v = kvh.split([Dn, V], dim=-1)
        k = torch.cat([k_nope, k_pe[:, :, None, :].expand(B, T, H, R)], dim=-1)  # (B, T, H, Dn + R)
        buf = buf.append(k.transpose(1, 2), v.transpose(1, 2))
        qh = torch.cat([q_nope, q_pe], dim=-1).transpose(1, 2)  # (B, H, T, Dn + R)
        return attend_kv(qh, buf.keys, buf.values, scale, chunk, parallel).transpose(1, 2), buf  # (B, T, H, V)
    buf = buf.append(c_kv, k_pe)
    if mode == "expanded":
        return attend_expanded(q_nope, q_pe, buf.filled, wkv_b, scale, chunk, parallel), buf
    q_lat = torch.einsum("bthd,hdc->bthc", q_nope, w[:, :Dn])  # (B, T, H, C): W^UK absorbed
    o_lat = attend_latent(q_lat, q_pe, buf.filled, scale, chunk, parallel)  # (B, T, H, C)
    return torch.einsum("bthc,hvc->bthv", o_lat, w[:, Dn:]), buf  # (B, T, H, V): W^UV absorbed


@torch.no_grad()
def mla_step(
    layer: MLAttention,
    x: Tensor,
    buf: KVBuffer | LatentBuffer,
    mode: str = "absorbed",
    chunk: int | None = None,
    parallel: int | None = None,
) -> tuple[Tensor, KVBuffer | LatentBuffer]:
    """MLAttention's forward with a preallocated cache (a KVBuffer for "materialised", a LatentBuffer
    for "absorbed" and "expanded"): the layer's own query, latent and RoPE, then `mla_attention`."""
    if isinstance(layer, DSAttention):
        raise ValueError("DSA selects top-k tokens per query; the dense chunked kernels do not cover it.")
    s = layer.spec
    B, T, _ = x.shape
    pos = torch.arange(buf.length, buf.length + T, device=x.device)
    q, _ = layer.query(x)  # (B, T, H, Dn + R)
    q_nope, q_pe = q.split([s.qk_nope_head_dim, s.qk_rope_head_dim], dim=-1)
    q_pe = rope(q_pe.transpose(1, 2), pos).transpose(1, 2)  # (B, T, H, R)
    c_kv, k_pe = layer.latent(x, pos)  # (B, T, C), (B, T, R)
    o, buf = mla_attention(s, layer.wkv_b.weight, q_nope, q_pe, c_kv, k_pe, buf, mode, chunk, parallel)
    return layer.wo(o.reshape(B, T, s.n_heads * s.v_head_dim)), buf  # (B, T, E)
