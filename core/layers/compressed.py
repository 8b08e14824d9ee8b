"""A small, real DeepSeek V4 attention layer: CSA (ratio 4 + indexer), HCA (ratio m) and sliding-only.

# B batch, T new tokens, S window keys scored, H query heads, D head_dim (the one shared K=V head),
# R rope channels (the last qk_rope_head_dim of D), M compress ratio m, E compressed entries,
# K entries a query attends to, I indexer heads, J indexer head dim, Q query latent (q_lora_rank),
# G output groups, L o_lora_rank, W model width (d_model), C compressor width (coff x D or coff x J)

Follows DeepSeek's V4 `inference/model.py` (Attention, Compressor, Indexer; notes/v4_research.md):
- One K=V head per token: kv = RoPE(kv_norm(wkv(x))), RoPE on the last R channels. Scores and value
  mixing both use all D channels; softmax scale D**-0.5; a per-head learned sink logit joins the softmax
  denominator only (it has no value). Queries get a weightless per-head RMSNorm before RoPE, and the
  output's rope channels are rotated back by the query position (inverse RoPE), so what reaches wo_a
  depends on relative positions only.
- Every layer attends to the last min(pos + 1, sliding_window) raw tokens. Compressed layers add
  entries: entry j pools tokens [m j, m j + m - 1] with a per-channel softmax over the tokens of the
  gate scores wgate(x) + ape[pos % m]; CSA (m = 4) uses overlapping windows: its projections are
  2 x D wide, the first half of tokens [4j - 4, 4j - 1] and the second half of tokens [4j, 4j + 3]
  pool together (8 tokens; block -1 is padding with score -inf). Then RMSNorm and RoPE at position m j.
  Query p sees entry j once it is complete: p >= m j + m - 1.
- HCA attends to every complete entry; CSA lets a lightning indexer pick min(index_topk, complete
  entries): I(t, e) = sum_h w_th ReLU(q_th . k_e), keys from the indexer's own 4:1 compressor of width J,
  w = weights_proj(x) * J**-0.5 * I**-0.5. Ties go to the earliest entry (stable sort).
Left out, because they change numbers, not shapes or costs: FP8/FP4 simulation of cached values, the
indexer's Hadamard rotation (orthogonal on both q and k, so it leaves q . k unchanged without
quantization) and YaRN scaling of the compressed layers' RoPE.

RoPE convention: rotate-half (core.layers.rope), theta 160000 in compressed layers
(`compress_rope_theta`) and 10000 in sliding-only layers (`rope_theta`), as V4's configs set them.

Layers are stateless; `CompressedCache` is passed in and returned. Its `tensors()` (window, entries,
indexer keys) are what core.accounting counts as KV cache. The compressor state (raw projections of
the tokens of the block being filled, and for CSA of the block before it) rides along separately and is
not KV cache: vLLM keeps it in a separate state cache (deepseek_compressor.py CompressorStateCache).
Scores and indexer dots are einsums and the value mixing is a matmul, so FlopCounterMode sees every
product (torch.einsum lowers a contraction of size 1, one attended key, to an uncounted multiply).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor, nn

from core.layers.attention import RMSNorm, _init, causal_mask, rope
from core.model.specs import CompressedSpec

ROPE_THETA = 10_000.0  # V4 config rope_theta: sliding-only layers
COMPRESS_ROPE_THETA = 160_000.0  # V4 config compress_rope_theta: every RoPE in a compressed layer
NORM_EPS = 1e-6


def rope_tail(x: Tensor, pos: Tensor, r: int, theta: float) -> Tensor:
    """RoPE on the last `r` channels of x (..., T, D) at positions pos (T,); the rest pass through."""
    if r == 0:
        return x
    return torch.cat([x[..., :-r], rope(x[..., -r:], pos, theta)], dim=-1)


def rope_heads(x: Tensor, pos: Tensor, r: int, theta: float) -> Tensor:
    """rope_tail for per-head tensors (B, T, H, D)."""
    return rope_tail(x.transpose(1, 2), pos, r, theta).transpose(1, 2)


def top_k(score: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """Top-k by a stable sort: ties go to the earliest entry, so a decode step picks exactly what the same
    query picked inside a longer prefill (torch.topk breaks ties arbitrarily)."""
    vals, idx = torch.sort(score, dim=-1, descending=True, stable=True)
    return idx[..., :k], vals[..., :k]


@dataclass(frozen=True)
class CompressorState:
    """Raw projections of the tokens a compressor still needs: kv and gate scores (ape added), each
    (B, tokens, C), for positions [start, seen) with start = m floor(seen/m), or one block earlier for
    CSA's overlapping windows. Fewer than 2m tokens; not KV cache (see the module docstring)."""

    kv: Tensor
    score: Tensor

    def tensors(self) -> tuple[Tensor, ...]:
        return (self.kv, self.score)


@dataclass(frozen=True)
class CompressedCache:
    """V4 layer cache after N = `seen` tokens.

    KV cache proper (`tensors()`, what core.accounting counts): window (B, min(N, w), D) raw K=V tokens,
    entries (B, floor(N/m), D) and, for CSA, index_keys (B, floor(N/4), J).
    Compressor state (`state_tensors()`): the raw projections of the < m tokens of the incomplete block
    (for CSA also the complete block before it, whose first halves pool into the next entry), for the main
    compressor and the indexer's. Not counted as KV cache, as vLLM keeps it in a separate state cache.
    """

    window: Tensor
    seen: int  # tokens processed so far (positions)
    entries: Tensor | None = None
    index_keys: Tensor | None = None
    compressor_state: CompressorState | None = None
    index_state: CompressorState | None = None

    def tensors(self) -> tuple[Tensor, ...]:
        """The KV cache proper, as core.accounting counts it (docs/facts.md section 1)."""
        return tuple(t for t in (self.window, self.entries, self.index_keys) if t is not None)

    def state_tensors(self) -> tuple[Tensor, ...]:
        """The compressor state, kept apart from the KV cache."""
        return tuple(t for s in (self.compressor_state, self.index_state) if s is not None for t in s.tensors())


class Compressor(nn.Module):
    """Gated pooling of m tokens (CSA: 2m overlapping) into one entry of `width` (V4 Compressor):
    wkv, wgate [coff width, W], ape [m, coff width], norm [width]; coff = 2 for m = 4, else 1."""

    def __init__(self, d_model: int, width: int, ratio: int, rope_dim: int, theta: float):
        super().__init__()
        self.width, self.ratio, self.rope_dim, self.theta = width, ratio, min(rope_dim, width), theta
        self.overlap = ratio == 4
        coff = 2 if self.overlap else 1
        self.wkv = nn.Linear(d_model, coff * width, bias=False)
        self.wgate = nn.Linear(d_model, coff * width, bias=False)
        self.ape = nn.Parameter(torch.empty(ratio, coff * width))  # learned bias on the gate scores by pos % m
        self.norm = RMSNorm(width, NORM_EPS)

    def state_start(self, seen: int) -> int:
        """First position the state must keep after `seen` tokens: the incomplete block, and for CSA the
        complete block before it (its first-half projections pool into the next entry)."""
        m = self.ratio
        first = m * (seen // m)
        return max(0, first - m) if self.overlap else first

    def forward(self, x: Tensor, seen: int, state: CompressorState | None) -> tuple[Tensor, CompressorState]:
        """Entries completed by the new tokens x (B, T, W) at positions [seen, seen + T), and the new state."""
        B, T, _ = x.shape
        m, D = self.ratio, self.width
        pos = torch.arange(seen, seen + T, device=x.device)
        kv = self.wkv(x)  # (B, T, C)
        score = self.wgate(x) + self.ape[pos % m]  # (B, T, C)
        if state is not None:
            kv, score = torch.cat([state.kv, kv], 1), torch.cat([state.score, score], 1)  # (B, seen + T - start, C)
        start = self.state_start(seen)
        j0, j1 = seen // m, (seen + T) // m  # new entries j0 .. j1 - 1
        n = j1 - j0
        k, g = kv, score
        if self.overlap:
            if j0 == 0:  # block -1 is padding: zero kv, -inf score
                k = torch.cat([kv.new_zeros(B, m, 2 * D), kv], 1)  # (B, m + seen + T, 2D)
                g = torch.cat([score.new_full((B, m, 2 * D), float("-inf")), score], 1)
            # block j0 - 1 starts at offset 0: its first halves pool with the second halves of block j0
            k = torch.cat([k[:, : n * m, :D].view(B, n, m, D), k[:, m : m + n * m, D:].view(B, n, m, D)], 2)
            g = torch.cat([g[:, : n * m, :D].view(B, n, m, D), g[:, m : m + n * m, D:].view(B, n, m, D)], 2)
        else:  # block j0 starts at offset 0
            k, g = k[:, : n * m].view(B, n, m, D), g[:, : n * m].view(B, n, m, D)
        pooled = (k * g.softmax(dim=2)).sum(dim=2)  # (B, n, 2M or M, D) -> (B, n, D): per-channel softmax
        entry_pos = m * torch.arange(j0, j1, device=x.device)  # entry j carries RoPE at position m j
        entries = rope_tail(self.norm(pooled), entry_pos, self.rope_dim, self.theta)  # (B, n, D)
        keep = self.state_start(seen + T) - start
        return entries, CompressorState(kv[:, keep:], score[:, keep:])


class Indexer(nn.Module):
    """CSA's lightning indexer (V4 Indexer): wq_b [I J, Q] (from the query latent, or x without one),
    weights_proj [I, W], and its own 4:1 overlapping compressor of width J that makes the indexer keys."""

    def __init__(self, spec: CompressedSpec, d_model: int, theta: float):
        super().__init__()
        self.spec, self.theta = spec, theta
        q_in = spec.q_lora_rank or d_model
        self.wq_b = nn.Linear(q_in, spec.index_n_heads * spec.index_head_dim, bias=False)
        self.weights_proj = nn.Linear(d_model, spec.index_n_heads, bias=False)
        self.compressor = Compressor(d_model, spec.index_head_dim, spec.compress_ratio, spec.qk_rope_head_dim, theta)

    def forward(self, x: Tensor, q_in: Tensor, keys: Tensor, pos: Tensor) -> Tensor:
        """Scores (B, T, E) of the new queries against the indexer keys (B, E, J); -inf for entries not yet
        complete at the query's position."""
        s = self.spec
        B, T, _ = x.shape
        I, J, m = s.index_n_heads, s.index_head_dim, s.compress_ratio
        q = rope_heads(self.wq_b(q_in).view(B, T, I, J), pos, min(s.qk_rope_head_dim, J), self.theta)  # (B, T, I, J)
        dots = torch.einsum("btij,bej->btie", q, keys)  # (B, T, I, E)
        w = self.weights_proj(x) * (J**-0.5 * I**-0.5)  # (B, T, I)
        score = (dots.relu() * w[..., None]).sum(2)  # (B, T, E): weighted head sum, elementwise, not a matmul
        return score.masked_fill(~visible(pos, keys.shape[1], m), float("-inf"))


def visible(pos: Tensor, n_entries: int, ratio: int) -> Tensor:
    """(T, E) bool: query at pos may use entry j once it is complete, pos >= m j + m - 1."""
    last = ratio * torch.arange(n_entries, device=pos.device) + ratio - 1  # (E,) last token of each entry
    return last[None, :] <= pos[:, None]


class CompressedTrace(NamedTuple):
    """One forward, with what a page shows: which entries each query used and how much attention went where."""

    out: Tensor  # (B, T, W)
    cache: CompressedCache
    window_pos: Tensor  # (S,) positions of the window keys scored (each query masks those outside its window)
    entry_idx: Tensor  # (B, T, K) entries each query attends to, -1 where none (CSA top-k, HCA all complete)
    index_scores: Tensor | None  # (B, T, E) CSA indexer scores, -inf for entries not complete yet
    probs: Tensor  # (B, T, H, S + K) attention over window keys then entries (the sink takes the rest)


class CompressedAttention(nn.Module):
    """One DeepSeek V4 attention layer (CSA, HCA or sliding-only), with V4's weights exactly:
    wq_a [Q, W], q_norm [Q], wq_b [H D, Q] (or wq [H D, W]); wkv [D, W], kv_norm [D];
    wo_a [G L, H D / G], wo_b [W, G L] (or wo [W, H D]); attn_sink [H]; compressor and indexer as above.
    Parameter count = core.accounting.designs.v4 (via attention_params)(spec, d_model).total."""

    # spec fields this layer runs (build_layer refuses others); o_groups shapes the low-rank output only, and
    # the index_* fields the indexer only (CSA), as in V4 and the accounting
    RUNS = frozenset(
        {
            "n_heads",
            "head_dim",
            "qk_rope_head_dim",
            "compress_ratio",
            "sliding_window",
            "q_lora_rank",
            "o_groups",
            "o_lora_rank",
            "index_n_heads",
            "index_head_dim",
            "index_topk",
        }
    )

    def __init__(self, spec: CompressedSpec, d_model: int, *, seed: int = 0, device=None, dtype=torch.float32):
        super().__init__()
        self.spec, self.d_model = spec, d_model
        H, D = spec.n_heads, spec.head_dim
        self.theta = COMPRESS_ROPE_THETA if spec.compress_ratio else ROPE_THETA
        if spec.q_lora_rank:
            self.wq_a = nn.Linear(d_model, spec.q_lora_rank, bias=False)
            self.q_norm = RMSNorm(spec.q_lora_rank, NORM_EPS)
            self.wq_b = nn.Linear(spec.q_lora_rank, H * D, bias=False)
        else:
            self.wq = nn.Linear(d_model, H * D, bias=False)
        self.wkv = nn.Linear(d_model, D, bias=False)  # the single shared K=V head
        self.kv_norm = RMSNorm(D, NORM_EPS)
        if spec.o_lora_rank:  # grouped low-rank output: each group of H/G heads -> L, then all G L -> W
            self.wo_a = nn.Linear(H * D // spec.o_groups, spec.o_groups * spec.o_lora_rank, bias=False)
            self.wo_b = nn.Linear(spec.o_groups * spec.o_lora_rank, d_model, bias=False)
        else:
            self.wo = nn.Linear(H * D, d_model, bias=False)
        self.attn_sink = nn.Parameter(torch.empty(H))  # one logit per head, denominator only
        self.compressor = (
            Compressor(d_model, D, spec.compress_ratio, spec.qk_rope_head_dim, self.theta)
            if spec.compress_ratio
            else None
        )
        self.indexer = Indexer(spec, d_model, self.theta) if spec.indexed else None
        _init(self, seed, device, dtype)

    def query(self, x: Tensor, pos: Tensor) -> tuple[Tensor, Tensor]:
        """Per-head queries (B, T, H, D) and the indexer's input: the query latent (B, T, Q), or x."""
        s = self.spec
        B, T, _ = x.shape
        if s.q_lora_rank:
            q_in = self.q_norm(self.wq_a(x))  # (B, T, Q)
            q = self.wq_b(q_in)  # (B, T, H D)
        else:
            q_in, q = x, self.wq(x)  # (B, T, H D)
        q = q.view(B, T, s.n_heads, s.head_dim)  # (B, T, H, D)
        q = q * torch.rsqrt(q.pow(2).mean(-1, keepdim=True) + NORM_EPS)  # weightless per-head RMSNorm (V4)
        return rope_heads(q, pos, s.qk_rope_head_dim, self.theta), q_in

    def forward(self, x: Tensor, cache: CompressedCache | None = None) -> tuple[Tensor, CompressedCache]:
        trace = self.trace(x, cache)
        return trace.out, trace.cache

    def trace(self, x: Tensor, cache: CompressedCache | None = None) -> CompressedTrace:
        """Forward x (B, T, W) after `cache`, returning what each query attended to as well."""
        s = self.spec
        B, T, _ = x.shape
        H, D, R, w, m = s.n_heads, s.head_dim, s.qk_rope_head_dim, s.sliding_window, s.compress_ratio
        p0 = cache.seen if cache else 0
        pos = torch.arange(p0, p0 + T, device=x.device)
        q, q_in = self.query(x, pos)  # (B, T, H, D)
        kv = rope_tail(self.kv_norm(self.wkv(x)), pos, R, self.theta)  # (B, T, D)
        win = kv if cache is None else torch.cat([cache.window, kv], 1)  # (B, min(p0, w) + T, D)
        win = win[:, -(w + T - 1) :]  # (B, S, D): keys no new query can see are dropped
        S = win.shape[1]
        win_pos = torch.arange(p0 + T - S, p0 + T, device=x.device)  # (S,)
        scale = D**-0.5
        scores = torch.einsum("bthd,bsd->bths", q, win) * scale  # (B, T, H, S)
        scores = scores.masked_fill(~causal_mask(pos, win_pos, w)[None, :, None, :], float("-inf"))
        entries = index_keys = c_state = i_state = ent = index_scores = None
        entry_idx = torch.full((B, T, 0), -1, dtype=torch.long, device=x.device)
        parts = [scores]
        if m:
            new, c_state = self.compressor(x, p0, cache.compressor_state if cache else None)  # (B, n, D)
            entries = new if cache is None else torch.cat([cache.entries, new], 1)  # (B, E, D)
            E = entries.shape[1]
            ok = visible(pos, E, m)  # (T, E)
            if self.indexer is not None:
                new_i, i_state = self.indexer.compressor(x, p0, cache.index_state if cache else None)  # (B, n, J)
                index_keys = new_i if cache is None else torch.cat([cache.index_keys, new_i], 1)  # (B, E, J)
                index_scores = self.indexer(x, q_in, index_keys, pos)  # (B, T, E)
                sel, vals = top_k(index_scores, min(E, s.index_topk))  # (B, T, K)
                ok_sel = ~vals.isinf()  # (B, T, K): slots beyond a query's complete entries
                ent = entries[torch.arange(B, device=x.device)[:, None, None], sel]  # (B, T, K, D)
                e_scores = torch.einsum("bthd,btkd->bthk", q, ent) * scale  # (B, T, H, K)
                e_scores = e_scores.masked_fill(~ok_sel[:, :, None, :], float("-inf"))
                entry_idx = sel.masked_fill(~ok_sel, -1)
            else:
                ent = entries
                e_scores = torch.einsum("bthd,bed->bthe", q, entries) * scale  # (B, T, H, E)
                e_scores = e_scores.masked_fill(~ok[None, :, None, :], float("-inf"))
                idx = torch.arange(E, device=x.device).expand(B, T, E)
                entry_idx = idx.masked_fill(~ok[None], -1)  # (B, T, E)
            parts.append(e_scores)
        sink = self.attn_sink.view(1, 1, H, 1).expand(B, T, H, 1)  # (B, T, H, 1)
        probs = torch.cat([*parts, sink], -1).softmax(-1)[..., :-1]  # (B, T, H, S + K): sink in the denominator
        # Value mixing as matmul: einsum would turn one attended key into an elementwise multiply that
        # FlopCounterMode does not count.
        o = torch.matmul(probs[..., :S], win[:, None])  # (B, T, H, D)
        if ent is not None:
            o = o + torch.matmul(probs[..., S:], ent if ent.ndim == 4 else ent[:, None])  # (B, T, H, D)
        o = rope_heads(o, -pos, R, self.theta)  # inverse RoPE on the rope channels: relative positions only
        if s.o_lora_rank:
            G, L = s.o_groups, s.o_lora_rank
            o = o.reshape(B, T, G, H * D // G)  # (B, T, G, H D / G)
            o = torch.einsum("btgi,gli->btgl", o, self.wo_a.weight.view(G, L, H * D // G))  # (B, T, G, L)
            out = self.wo_b(o.reshape(B, T, G * L))  # (B, T, W)
        else:
            out = self.wo(o.reshape(B, T, H * D))  # (B, T, W)
        new_cache = CompressedCache(
            window=win[:, -w:].contiguous(),  # keep min(N, w) tokens (docs/facts.md section 1)
            seen=p0 + T,
            entries=entries,
            index_keys=index_keys,
            compressor_state=c_state,
            index_state=i_state,
        )
        return CompressedTrace(out, new_cache, win_pos, entry_idx, index_scores, probs)


LAYERS = {CompressedSpec: CompressedAttention}
