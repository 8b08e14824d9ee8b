"""Small real attention layers: MHA/GQA/MQA, MLA (materialised and absorbed) and DSA (MLA + indexer).

# B batch, T new tokens, S cached tokens (after this step), H query heads, G kv heads,
# D head dim, C latent rank d_c, R rope dim d_h^R, V value head dim, E model width,
# I indexer heads, J indexer head dim, K selected tokens (top-k)

Layers are stateless: a cache is an explicit object passed in and returned, so its size is literally
the `nbytes` of its tensors, and one built layer can be shared by many users. Every attention product
is an explicit einsum or matmul (no fused SDPA kernel) so `FlopCounterMode` sees each one; the value
mixing is a matmul because torch lowers an einsum that sums over a single key (the first token) to an
elementwise multiply, which FlopCounterMode does not count.

RoPE convention: rotate-half (GPT-NeoX / Hugging Face Llama): the first and second halves of a rotary
vector form the (real, imaginary) pairs. DeepSeek's own code uses the interleaved convention; the
two differ by a fixed permutation of channels and give the same attention scores.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor, nn

from core.model.specs import DSASpec, GQASpec, MLASpec

V_NORM_EPS = 1e-6  # Gemma-4 rms_norm_eps, used by the value norm of k_eq_v layers


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def rope(x: Tensor, pos: Tensor, theta: float = 10000.0) -> Tensor:
    """Rotate-half RoPE on the last dim of x (..., T, R) at integer positions pos (T,). With an odd R
    the last channel carries no position (RoPE rotates pairs)."""
    r = x.shape[-1]
    if r < 2:
        return x
    if r % 2:
        return torch.cat([rope(x[..., :-1], pos, theta), x[..., -1:]], dim=-1)
    inv = theta ** (-torch.arange(0, r, 2, device=x.device, dtype=torch.float64) / r)  # (R/2,)
    ang = pos.to(torch.float64)[:, None] * inv[None, :]  # (T, R/2)
    cos, sin = ang.cos().to(x.dtype), ang.sin().to(x.dtype)
    x1, x2 = x[..., : r // 2], x[..., r // 2 :]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def _init(module: nn.Module, seed: int, device, dtype) -> None:
    """Deterministic construction: the same seed gives the same weights on every device. On the meta device
    (a model whose weights are loaded next, such as a pretrained decoder) nothing is drawn."""
    if device is not None and torch.device(device).type == "meta":
        module.to(device="meta", dtype=dtype)
        return
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            noise = torch.randn(p.shape, generator=g, dtype=torch.float64)
            if p.ndim >= 2:  # matrices: unit-variance outputs for unit-variance inputs
                p.copy_(noise / math.sqrt(p.shape[-1]))
            elif name.endswith("bias"):
                p.copy_(0.02 * noise)
            else:  # norm gains near one
                p.copy_(1 + 0.1 * noise)
    module.to(device=device or default_device(), dtype=dtype)


def causal_mask(q_pos: Tensor, k_pos: Tensor, window: int | None = None, chunk: int | None = None) -> Tensor:
    """(T, S) bool: query at q_pos may see key at k_pos (k <= q, and q - k < window if windowed, and
    q // chunk == k // chunk if chunked)."""
    ok = k_pos[None, :] <= q_pos[:, None]
    if window:
        ok &= q_pos[:, None] - k_pos[None, :] < window
    if chunk:
        ok &= q_pos[:, None] // chunk == k_pos[None, :] // chunk
    return ok


@dataclass(frozen=True)
class KVCache:
    """Per-head keys and values (MHA/GQA/MQA, or MLA materialised): k (B, G, S, Dk), v (B, G, S, V)."""

    k: Tensor
    v: Tensor
    seen: int  # tokens processed so far (positions); a windowed cache holds fewer

    def tensors(self) -> tuple[Tensor, ...]:
        return (self.k, self.v)


@dataclass(frozen=True)
class LatentCache:
    """MLA absorbed cache: normalised latent c_kv (B, S, C) and shared rope key k_pe (B, S, R);
    DSA adds the indexer key k_index (B, S, J)."""

    c_kv: Tensor
    k_pe: Tensor
    seen: int
    k_index: Tensor | None = None

    def tensors(self) -> tuple[Tensor, ...]:
        return tuple(t for t in (self.c_kv, self.k_pe, self.k_index) if t is not None)


class AttentionTrace(NamedTuple):
    out: Tensor  # (B, T, E)
    cache: object  # KVCache or LatentCache
    probs: Tensor  # (B, H, T, S) attention probabilities


def cache_nbytes(cache) -> int:
    return sum(t.nbytes for t in cache.tensors())


def _cat(old: Tensor | None, new: Tensor, dim: int) -> Tensor:
    return new if old is None else torch.cat([old, new], dim=dim)


class GQAttention(nn.Module):
    """MHA (n_kv_heads = n_heads), GQA, or MQA (n_kv_heads = 1), with every option of `GQASpec`:

    - sliding_window w: a query sees the last w tokens, itself included; the cache keeps min(N, w).
    - chunk_size c (Llama-4 chunked local attention, HF `attention_chunk_size`): a query at p sees the keys
      k <= p of its own chunk, p // c == k // c; the cache keeps the (N - 1) mod c + 1 tokens of the
      current chunk (vLLM's ChunkedLocalAttention frees earlier chunks).
    - v_head_dim V: values V wide (MiMo-V2), so wv is [G V, E] and wo [E, H V].
    - k_eq_v (Gemma-4 full layers, HF Gemma4TextAttention): no wv; the value is the key projection's
      output before RoPE, through a weightless RMSNorm (Gemma4's v_norm); only the key gets RoPE. Key and
      value differ, so both are cached.
    - output_gate (Qwen3-Next, HF Qwen3NextAttention): wq yields [query D | gate D] per head, and the
      attention output is multiplied by sigmoid(gate) before wo.
    The models' q/k norms, partial RoPE and attention-scale changes are not spec fields and are left out.
    """

    # spec fields this layer runs; build_layer refuses a spec that sets any other (core/layers/build.py)
    RUNS = frozenset(
        {
            "n_heads",
            "n_kv_heads",
            "head_dim",
            "sliding_window",
            "qkv_bias",
            "o_bias",
            "v_head_dim",
            "chunk_size",
            "k_eq_v",
            "output_gate",
        }
    )

    def __init__(
        self,
        spec: GQASpec,
        d_model: int,
        *,
        seed: int = 0,
        device=None,
        dtype=torch.float32,
        rope_theta: float = 10000.0,
    ):
        super().__init__()
        self.spec, self.d_model, self.rope_theta = spec, d_model, rope_theta
        h, g, d, v = spec.n_heads, spec.n_kv_heads, spec.head_dim, spec.v_dim
        if spec.output_gate and v != d:
            # Qwen3-Next's gate is head_dim wide per head and gates the value output; with other value widths
            # no model says which width the gate has (and the accounting counts 2 x n_heads x head_dim).
            raise NotImplementedError(
                f"output_gate with v_head_dim ({v}) different from head_dim ({d}) is not supported: no model "
                "defines the gate's width for it."
            )
        self.wq = nn.Linear(d_model, h * d * (2 if spec.output_gate else 1), bias=spec.qkv_bias)
        self.wk = nn.Linear(d_model, g * d, bias=spec.qkv_bias)
        self.wv = None if spec.k_eq_v else nn.Linear(d_model, g * v, bias=spec.qkv_bias)
        self.wo = nn.Linear(h * v, d_model, bias=spec.o_bias)
        _init(self, seed, device, dtype)

    def forward(self, x: Tensor, cache: KVCache | None = None) -> tuple[Tensor, KVCache]:
        out, cache, _ = self.trace(x, cache)
        return out, cache

    def visible_keys(self, start: int, T: int) -> int | None:
        """How many of the latest keys the queries at positions [start, start + T) can see; None: all."""
        s = self.spec
        if s.sliding_window:
            return s.sliding_window + T - 1
        if s.chunk_size:
            return start + T - s.chunk_size * (start // s.chunk_size)  # the first query's chunk onwards
        return None

    def kept_keys(self, seen: int) -> int | None:
        """How many of the latest keys the cache keeps after `seen` tokens; None: all (accounting's kept_tokens)."""
        s = self.spec
        if s.sliding_window:
            return s.sliding_window
        if s.chunk_size:
            return (seen - 1) % s.chunk_size + 1
        return None

    def trace(self, x: Tensor, cache: KVCache | None = None) -> AttentionTrace:
        """forward, plus the attention probabilities (B, H, T, S) for heatmaps."""
        s = self.spec
        B, T, _ = x.shape
        H, G, D, V = s.n_heads, s.n_kv_heads, s.head_dim, s.v_dim
        p0 = cache.seen if cache else 0
        pos = torch.arange(p0, p0 + T, device=x.device)
        q = self.wq(x)  # (B, T, H D), or (B, T, H 2D) with an output gate
        if s.output_gate:
            q, gate = q.view(B, T, H, 2 * D).chunk(2, dim=-1)  # (B, T, H, D) each: per head [query | gate]
        q = rope(q.view(B, T, H, D).transpose(1, 2), pos, self.rope_theta)  # (B, H, T, D)
        k = self.wk(x).view(B, T, G, D).transpose(1, 2)  # (B, G, T, D)
        if s.k_eq_v:  # the value is the key before RoPE, RMS-normalised without a gain (Gemma4 v_norm)
            v = k * torch.rsqrt(k.pow(2).mean(-1, keepdim=True) + V_NORM_EPS)  # (B, G, T, D)
        else:
            v = self.wv(x).view(B, T, G, V).transpose(1, 2)  # (B, G, T, V)
        k = rope(k, pos, self.rope_theta)  # (B, G, T, D)
        k = _cat(cache.k if cache else None, k, 2)  # (B, G, S, D)
        v = _cat(cache.v if cache else None, v, 2)  # (B, G, S, V)
        see = self.visible_keys(p0, T)
        if see is not None and k.shape[2] > see:  # keys no new query can see
            k, v = k[:, :, -see:], v[:, :, -see:]
        S = k.shape[2]
        k_pos = torch.arange(p0 + T - S, p0 + T, device=x.device)
        q = q.view(B, G, H // G, T, D)
        # in place where autograd allows it: one (B, H, T, S) tensor instead of three (a page's memory budget)
        scores = torch.einsum("bgrtd,bgsd->bgrts", q, k).div_(math.sqrt(D))  # (B, G, H/G, T, S)
        scores.masked_fill_(~causal_mask(pos, k_pos, s.sliding_window, s.chunk_size), float("-inf"))
        probs = scores.softmax(-1)
        o = probs @ v[:, :, None]  # (B, G, H/G, T, V); a matmul, so a single key still counts (see top)
        o = o.reshape(B, H, T, V).transpose(1, 2)  # (B, T, H, V)
        if s.output_gate:
            o = o * gate.sigmoid()  # (B, T, H, V): elementwise, V = D
        out = self.wo(o.reshape(B, T, H * V))  # (B, T, E)
        keep = self.kept_keys(p0 + T)
        if keep is not None and S > keep:  # keep what the accounting counts (docs/facts.md section 1)
            k, v = k[:, :, -keep:].contiguous(), v[:, :, -keep:].contiguous()
        return AttentionTrace(out, KVCache(k, v, p0 + T), probs.reshape(B, H, T, S))


class MLAttention(nn.Module):
    """DeepSeek MLA with decoupled RoPE and optional low-rank query (DeepSeek-V3 inference/model.py).

    mode="materialised": expand per-head keys and values from the latent and cache them (KVCache).
    mode="absorbed": fold W^UK into the query and W^UV into the output; cache only the latent and the
    shared rope key (LatentCache). Same weights, same function, different cache and compute.
    """

    RUNS = frozenset({"n_heads", "kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim", "q_lora_rank"})

    def __init__(self, spec: MLASpec, d_model: int, *, seed: int = 0, device=None, dtype=torch.float32):
        super().__init__()
        self.spec, self.d_model = spec, d_model
        H, C, R = spec.n_heads, spec.kv_lora_rank, spec.qk_rope_head_dim
        if spec.q_lora_rank:
            self.wq_a = nn.Linear(d_model, spec.q_lora_rank, bias=False)
            self.q_norm = RMSNorm(spec.q_lora_rank)
            self.wq_b = nn.Linear(spec.q_lora_rank, H * spec.qk_head_dim, bias=False)
        else:
            self.wq = nn.Linear(d_model, H * spec.qk_head_dim, bias=False)
        self.wkv_a = nn.Linear(d_model, C + R, bias=False)  # W^DKV and W^KR stacked
        self.kv_norm = RMSNorm(C)
        self.wkv_b = nn.Linear(C, H * (spec.qk_nope_head_dim + spec.v_head_dim), bias=False)  # W^UK, W^UV
        self.wo = nn.Linear(H * spec.v_head_dim, d_model, bias=False)
        _init(self, seed, device, dtype)

    def query(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        """Per-head queries (B, T, H, Dn + R) and the query latent (B, T, q_lora_rank) if low-rank."""
        s = self.spec
        B, T, _ = x.shape
        if s.q_lora_rank:
            q_lat = self.q_norm(self.wq_a(x))  # (B, T, q_lora_rank)
            return self.wq_b(q_lat).view(B, T, s.n_heads, s.qk_head_dim), q_lat
        return self.wq(x).view(B, T, s.n_heads, s.qk_head_dim), None

    def latent(self, x: Tensor, pos: Tensor) -> tuple[Tensor, Tensor]:
        kv = self.wkv_a(x)  # (B, T, C + R)
        c_kv, k_pe = kv.split([self.spec.kv_lora_rank, self.spec.qk_rope_head_dim], dim=-1)
        return self.kv_norm(c_kv), rope(k_pe, pos)  # (B, T, C), (B, T, R)

    def forward(self, x: Tensor, cache=None, mode: str = "absorbed"):
        out, cache, _ = self.trace(x, cache, mode)
        return out, cache

    def trace(self, x: Tensor, cache=None, mode: str = "absorbed") -> AttentionTrace:
        """forward, plus the attention probabilities (B, H, T, S) for heatmaps."""
        s = self.spec
        B, T, _ = x.shape
        H, Dn, R, V, C = s.n_heads, s.qk_nope_head_dim, s.qk_rope_head_dim, s.v_head_dim, s.kv_lora_rank
        p0 = cache.seen if cache else 0
        pos = torch.arange(p0, p0 + T, device=x.device)
        q, _ = self.query(x)
        q_nope, q_pe = q.split([Dn, R], dim=-1)  # (B, T, H, Dn), (B, T, H, R)
        q_pe = rope(q_pe.transpose(1, 2), pos).transpose(1, 2)
        c_kv, k_pe = self.latent(x, pos)
        scale = 1 / math.sqrt(s.qk_head_dim)
        if mode == "materialised":
            kv = self.wkv_b(c_kv).view(B, T, H, Dn + V)  # (B, T, H, Dn + V)
            k_nope, v = kv.split([Dn, V], dim=-1)
            k = torch.cat([k_nope, k_pe[:, :, None, :].expand(B, T, H, R)], dim=-1)  # (B, T, H, Dn + R)
            k = _cat(cache.k if cache else None, k.transpose(1, 2), 2)  # (B, H, S, Dn + R)
            v = _cat(cache.v if cache else None, v.transpose(1, 2), 2)  # (B, H, S, V)
            qh = torch.cat([q_nope, q_pe], dim=-1).transpose(1, 2)  # (B, H, T, Dn + R)
            scores = torch.einsum("bhtd,bhsd->bhts", qh, k).mul_(scale)  # (B, H, T, S)
            S = k.shape[2]
            probs = self._softmax(scores, pos, S, p0 + T)
            o = (probs @ v).transpose(1, 2)  # (B, T, H, V)
            return AttentionTrace(self.wo(o.reshape(B, T, H * V)), KVCache(k, v, p0 + T), probs)
        if mode != "absorbed":
            raise ValueError(f"unknown MLA mode {mode!r}; choose absorbed or materialised.")
        w = self.wkv_b.weight.view(H, Dn + V, C)
        w_uk, w_uv = w[:, :Dn], w[:, Dn:]  # (H, Dn, C), (H, V, C)
        c_all = _cat(cache.c_kv if cache else None, c_kv, 1)  # (B, S, C)
        pe_all = _cat(cache.k_pe if cache else None, k_pe, 1)  # (B, S, R)
        q_lat = torch.einsum("bthd,hdc->bthc", q_nope, w_uk)  # (B, T, H, C): W^UK absorbed
        scores = torch.einsum("bthc,bsc->bhts", q_lat, c_all)  # (B, H, T, S)
        scores.add_(torch.einsum("bthr,bsr->bhts", q_pe, pe_all)).mul_(scale)
        probs = self._softmax(scores, pos, c_all.shape[1], p0 + T)
        o_lat = (probs @ c_all[:, None]).transpose(1, 2)  # (B, T, H, C)
        o = torch.einsum("bthc,hvc->bthv", o_lat, w_uv)  # (B, T, H, V): W^UV absorbed
        return AttentionTrace(self.wo(o.reshape(B, T, H * V)), LatentCache(c_all, pe_all, p0 + T), probs)

    @staticmethod
    def _softmax(scores: Tensor, pos: Tensor, S: int, end: int) -> Tensor:
        k_pos = torch.arange(end - S, end, device=scores.device)
        return scores.masked_fill_(~causal_mask(pos, k_pos), float("-inf")).softmax(-1)


class DSAttention(MLAttention):
    """DeepSeek-V3.2 sparse attention: a lightning indexer scores every cached token,
    I(t,s) = sum_j w_tj ReLU(q_tj . k_s), and absorbed MLA attends to the top-k tokens only
    (DeepSeek-V3.2-Exp inference/model.py). The indexer key is cached beside the latent."""

    RUNS = MLAttention.RUNS | {"index_n_heads", "index_head_dim", "index_topk"}

    def __init__(self, spec: DSASpec, d_model: int, *, seed: int = 0, device=None, dtype=torch.float32):
        super().__init__(spec, d_model, seed=seed, device=device, dtype=dtype)
        q_in = spec.q_lora_rank or d_model
        self.index_wq = nn.Linear(q_in, spec.index_n_heads * spec.index_head_dim, bias=False)
        self.index_wk = nn.Linear(d_model, spec.index_head_dim, bias=False)
        self.index_k_norm = nn.LayerNorm(spec.index_head_dim)
        self.index_weights = nn.Linear(d_model, spec.index_n_heads, bias=False)
        _init(self, seed + 1, device, dtype)

    def index_scores(self, x: Tensor, q_in: Tensor, k_index: Tensor, pos: Tensor) -> Tensor:
        """Indexer scores (B, T, S) of the new queries against all cached indexer keys (-inf: future)."""
        s = self.spec
        B, T, _ = x.shape
        I, J = s.index_n_heads, s.index_head_dim
        rr = min(s.qk_rope_head_dim, J)  # partial RoPE on the first rr channels, as in V3.2's indexer
        q = self.index_wq(q_in).view(B, T, I, J)  # (B, T, I, J)
        q = torch.cat([rope(q[..., :rr].transpose(1, 2), pos).transpose(1, 2), q[..., rr:]], dim=-1)
        dots = torch.einsum("btij,bsj->btis", q, k_index)  # (B, T, I, S)
        w = self.index_weights(x) / math.sqrt(I)  # (B, T, I)
        score = (dots.relu() * w[..., None]).sum(2)  # (B, T, S): elementwise, not a matmul
        S = k_index.shape[1]
        k_pos = torch.arange(pos[-1] + 1 - S, pos[-1] + 1, device=x.device)
        return score.masked_fill(~causal_mask(pos, k_pos), float("-inf"))

    def trace(self, x: Tensor, cache: LatentCache | None = None, mode: str = "absorbed") -> AttentionTrace:
        """forward, plus the attention probabilities scattered to (B, H, T, S): zero where not selected."""
        s = self.spec
        if mode != "absorbed":
            raise ValueError("DSA runs in absorbed mode only (its cache is the latent).")
        B, T, _ = x.shape
        H, Dn, R, V, C = s.n_heads, s.qk_nope_head_dim, s.qk_rope_head_dim, s.v_head_dim, s.kv_lora_rank
        p0 = cache.seen if cache else 0
        pos = torch.arange(p0, p0 + T, device=x.device)
        q, q_lat_in = self.query(x)
        q_nope, q_pe = q.split([Dn, R], dim=-1)
        q_pe = rope(q_pe.transpose(1, 2), pos).transpose(1, 2)  # (B, T, H, R)
        c_kv, k_pe = self.latent(x, pos)
        rr = min(R, s.index_head_dim)
        k_idx = self.index_k_norm(self.index_wk(x))  # (B, T, J)
        k_idx = torch.cat([rope(k_idx[..., :rr], pos), k_idx[..., rr:]], dim=-1)
        c_all = _cat(cache.c_kv if cache else None, c_kv, 1)  # (B, S, C)
        pe_all = _cat(cache.k_pe if cache else None, k_pe, 1)  # (B, S, R)
        idx_all = _cat(cache.k_index if cache else None, k_idx, 1)  # (B, S, J)
        S = c_all.shape[1]
        score = self.index_scores(x, q_lat_in if q_lat_in is not None else x, idx_all, pos)  # (B, T, S)
        K = min(S, s.index_topk)
        sel, top_vals = self._top(score, K)  # (B, T, K)
        c_sel = torch.gather(c_all[:, None].expand(B, T, S, C), 2, sel[..., None].expand(B, T, K, C))  # (B, T, K, C)
        pe_sel = torch.gather(pe_all[:, None].expand(B, T, S, R), 2, sel[..., None].expand(B, T, K, R))  # (B, T, K, R)
        w = self.wkv_b.weight.view(H, Dn + V, C)
        q_lat = torch.einsum("bthd,hdc->bthc", q_nope, w[:, :Dn])  # (B, T, H, C)
        scores = (
            torch.einsum("bthc,btkc->bthk", q_lat, c_sel) + torch.einsum("bthr,btkr->bthk", q_pe, pe_sel)
        ) / math.sqrt(s.qk_head_dim)  # (B, T, H, K)
        scores = scores.masked_fill(top_vals.isinf()[:, :, None, :], float("-inf"))  # future tokens
        probs = scores.softmax(-1)
        o_lat = probs @ c_sel  # (B, T, H, C)
        o = torch.einsum("bthc,hvc->bthv", o_lat, w[:, Dn:])  # (B, T, H, V)
        full = torch.zeros(B, T, H, S, dtype=probs.dtype, device=probs.device)
        full.scatter_(3, sel[:, :, None, :].expand(B, T, H, K), probs)  # (B, T, H, S)
        cache = LatentCache(c_all, pe_all, p0 + T, idx_all)
        return AttentionTrace(self.wo(o.reshape(B, T, H * V)), cache, full.permute(0, 2, 1, 3))

    @staticmethod
    def _top(score: Tensor, k: int) -> tuple[Tensor, Tensor]:
        """Top-k by a stable sort: ties go to the earliest token, so a decode step selects exactly what
        the same query selected inside a longer prefill (torch.topk breaks ties arbitrarily)."""
        vals, idx = torch.sort(score, dim=-1, descending=True, stable=True)
        return idx[..., :k], vals[..., :k]

    def selected(self, x: Tensor, cache: LatentCache | None = None) -> Tensor:
        """Indices (B, T, K) of the tokens each new query selects (for heatmaps and tests)."""
        p0 = cache.seen if cache else 0
        pos = torch.arange(p0, p0 + x.shape[1], device=x.device)
        _, q_lat_in = self.query(x)
        _, new = self.forward(x, cache)
        score = self.index_scores(x, q_lat_in if q_lat_in is not None else x, new.k_index, pos)
        return self._top(score, min(score.shape[-1], self.spec.index_topk))[0]


LAYERS = {GQASpec: GQAttention, MLASpec: MLAttention, DSASpec: DSAttention}
