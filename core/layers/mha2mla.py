"""GQA attention converted to MLA without training: partial RoPE plus a joint low-rank latent.

# B batch, T new tokens, S cached tokens, H query heads, G kv heads, D head dim, E model width,
# C latent rank d_c, P kept RoPE pairs per kv head (r in MHA2MLA), N = D - 2P NoPE channels per head

The recipe of MHA2MLA (Ji et al. 2025, arXiv 2502.14837), as TransMLA (arXiv 2502.07864) does it too:
1. Partial RoPE. RoPE rotates D/2 channel pairs, pair i at frequency theta^(-2i/D) (rotate-half: channels i
   and i + D/2). Each kv head keeps RoPE on P pairs only; the other channels of its keys (and of its query
   heads) go without position. Which pairs: MHA2MLA's S_2-norm, the P pairs with the largest
   mean ||q^(i)|| ||k^(i)|| on calibration text (averaged over the query heads of the group), or S_high (the
   P highest-frequency pairs, i < P) when no calibration is given.
2. Joint low rank. The NoPE key rows of W_K (G N x E) and all of W_V (G D x E) are stacked and factored by a
   truncated SVD: W_joint ~ W_up W_down with W_down (C x E), so each token caches one latent c = W_down x of
   width C shared by all heads, instead of G (N + D) numbers. With the covariance X = E[x x^T] of the
   attention's inputs on calibration text, the SVD is taken of W_joint L (X = L L^T, "activation-aware"),
   which minimises the error of W_joint x on such inputs rather than of the matrix itself.
3. What is cached per token: the latent c (C) and the RoPE part of every kv head's key (G x 2P):
   a `LatentCache(c_kv, k_pe)`, the same object absorbed MLA fills. For the engine's accounting it is an
   `MLASpec(kv_lora_rank=C, qk_rope_head_dim=G 2P)`: the cached width is right; each query head reads only
   its own group's 2P rope channels of that key.

Attention runs absorbed (W^UK folded into the query, W^UV applied after mixing latents, as DeepSeek's
inference code does) or expanded (keys and values rebuilt from the latent at every step); a test proves they agree. No
fine-tuning follows the conversion here (MHA2MLA fine-tunes on 2.25B tokens afterwards).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from core.layers.attention import AttentionTrace, GQAttention, LatentCache, causal_mask, rope
from core.model.specs import MLASpec


@dataclass(frozen=True)
class Calibration:
    """What a conversion may learn from calibration text for one layer (never from evaluation text)."""

    covariance: Tensor  # (E, E): mean x x^T of the attention's inputs
    pair_scores: Tensor  # (G, D/2): mean ||q^(i)|| ||k^(i)|| per kv head and RoPE pair (S_2-norm)


def calibrate(attn: GQAttention, x: Tensor) -> Calibration:
    """Covariance and S_2-norm pair scores from the inputs x (B, T, E) that the layer saw on calibration text."""
    s = attn.spec
    H, G, D = s.n_heads, s.n_kv_heads, s.head_dim
    flat = x.reshape(-1, x.shape[-1]).double()  # (BT, E)
    q = attn.wq(x).reshape(-1, H, 2, D // 2)  # (BT, H, 2, D/2): channel i and i + D/2 form pair i
    k = attn.wk(x).reshape(-1, G, 2, D // 2)  # (BT, G, 2, D/2)
    q_norm = q.norm(dim=2).mean(0).view(G, H // G, D // 2).mean(1)  # (G, D/2)
    k_norm = k.norm(dim=2).mean(0)  # (G, D/2)
    return Calibration((flat.T @ flat / flat.shape[0]).float(), (q_norm * k_norm).float())


def rope_pairs(pairs: int, head_dim: int, n_kv_heads: int, calibration: Calibration | None) -> Tensor:
    """(G, P) indices of the RoPE pairs each kv head keeps, ascending."""
    if not 0 <= pairs <= head_dim // 2:
        raise ValueError(f"rope pairs ({pairs}) must be between 0 and head_dim / 2 ({head_dim // 2}).")
    if calibration is None:
        return torch.arange(pairs).expand(n_kv_heads, pairs).clone()  # S_high
    return calibration.pair_scores.topk(pairs, dim=-1).indices.sort(-1).values


class ConvertedMLA(nn.Module):
    """One GQA layer converted to MLA (see the module docstring). Holds no cache."""

    def __init__(
        self, attn: GQAttention, rank: int, pairs: int, calibration: Calibration | None = None, whiten: bool = False
    ):
        super().__init__()
        s = attn.spec
        H, G, D = s.n_heads, s.n_kv_heads, s.head_dim
        if s.sliding_window or s.chunk_size or s.qkv_bias or s.v_head_dim or s.k_eq_v or s.output_gate:
            raise ValueError("only plain GQA layers (no window, chunk, bias, gate or other value width) convert here.")
        if whiten and calibration is None:
            raise ValueError("activation-aware whitening needs calibration inputs.")
        keep = rope_pairs(pairs, D, G, calibration)  # (G, P)
        rope_ch = torch.cat([keep, keep + D // 2], -1).sort(-1).values  # (G, 2P) channels that keep RoPE
        mask = torch.ones(G, D, dtype=torch.bool)
        mask.scatter_(1, rope_ch, False)
        nope_ch = mask.nonzero()[:, 1].view(G, D - 2 * pairs)  # (G, N)
        full = min(G * (D - 2 * pairs) + G * D, attn.d_model)
        if not 1 <= rank <= full:
            raise ValueError(
                f"the latent rank ({rank}) must be between 1 and {full} (the NoPE key and value widths of all heads, "
                "or the model width if smaller)."
            )
        self.spec = MLASpec(H, rank, D - 2 * pairs, G * 2 * pairs, D)
        self.n_heads, self.n_kv_heads, self.head_dim, self.pairs = H, G, D, pairs
        self.rope_theta, self.wq, self.wk, self.wo = attn.rope_theta, attn.wq, attn.wk, attn.wo
        self.register_buffer("rope_ch", rope_ch)
        self.register_buffer("nope_ch", nope_ch)
        wk = attn.wk.weight.detach().double().view(G, D, -1)  # (G, D, E)
        w_nope = torch.gather(wk, 1, nope_ch[..., None].expand(G, D - 2 * pairs, wk.shape[-1]))  # (G, N, E)
        w_joint = torch.cat([w_nope.reshape(-1, wk.shape[-1]), attn.wv.weight.detach().double()])  # (G N + G D, E)
        if whiten:
            cov = calibration.covariance.double()
            lower = torch.linalg.cholesky(cov + 1e-6 * cov.diagonal().mean() * torch.eye(cov.shape[0], dtype=cov.dtype))
            u, sv, vh = torch.linalg.svd(w_joint @ lower, full_matrices=False)
            # W_joint L = U S Vh, so W_joint ~ U_r (S_r Vh_r L^-1): the latent map undoes the whitening
            down = sv[:rank, None] * torch.linalg.solve_triangular(lower, vh[:rank], upper=False, left=False)  # (C, E)
        else:
            u, sv, vh = torch.linalg.svd(w_joint, full_matrices=False)
            down = sv[:rank, None] * vh[:rank]  # (C, E)
        up = u[:, :rank]  # (G N + G D, C)
        dtype = attn.wq.weight.dtype
        self.register_buffer("w_down", down.to(dtype))  # (C, E): W^DKV
        self.register_buffer("w_uk", up[: G * (D - 2 * pairs)].reshape(G, D - 2 * pairs, rank).to(dtype))  # (G, N, C)
        self.register_buffer("w_uv", up[G * (D - 2 * pairs) :].reshape(G, D, rank).to(dtype))  # (G, D, C)
        self.register_buffer("singular_values", sv.float())

    def latent(self, x: Tensor, pos: Tensor) -> tuple[Tensor, Tensor]:
        """What tokens x (B, T, E) at positions pos (T,) leave in the cache: c_kv (B, T, C), k_pe (B, T, G 2P)."""
        B, T, _ = x.shape
        G, D, n_rope = self.n_kv_heads, self.head_dim, self.rope_ch.shape[1]
        k_rot = rope(self.wk(x).view(B, T, G, D).transpose(1, 2), pos, self.rope_theta).transpose(1, 2)  # (B, T, G, D)
        k_pe = torch.gather(k_rot, 3, self.rope_ch[None, None].expand(B, T, G, n_rope)).reshape(B, T, G * n_rope)
        return x @ self.w_down.T, k_pe

    def prefill_cache(self, x: Tensor) -> LatentCache:
        """The cache of tokens x (B, T, E) at positions 0..T-1, without attending (what a prefill stores)."""
        c_kv, k_pe = self.latent(x, torch.arange(x.shape[1], device=x.device))
        return LatentCache(c_kv, k_pe, x.shape[1])

    def trace(self, x: Tensor, cache: LatentCache | None = None, mode: str = "absorbed") -> AttentionTrace:
        H, G, D = self.n_heads, self.n_kv_heads, self.head_dim
        B, T, _ = x.shape
        p0 = cache.seen if cache else 0
        pos = torch.arange(p0, p0 + T, device=x.device)
        q = self.wq(x).view(B, T, G, H // G, D)  # (B, T, G, H/G, D)
        q_rot = rope(q.permute(0, 2, 3, 1, 4), pos, self.rope_theta).permute(0, 3, 1, 2, 4)  # (B, T, G, H/G, D)
        n_rope = self.rope_ch.shape[1]
        q_pe = torch.gather(q_rot, 4, self.rope_ch[None, None, :, None].expand(B, T, G, H // G, n_rope))
        q_nope = torch.gather(q, 4, self.nope_ch[None, None, :, None].expand(B, T, G, H // G, D - n_rope))
        c_kv, k_pe = self.latent(x, pos)  # (B, T, C), (B, T, G 2P)
        c_all = c_kv if cache is None else torch.cat([cache.c_kv, c_kv], 1)  # (B, S, C)
        pe_all = k_pe if cache is None else torch.cat([cache.k_pe, k_pe], 1)  # (B, S, G 2P)
        S = c_all.shape[1]
        pe_g = pe_all.view(B, S, G, n_rope)  # (B, S, G, 2P)
        scale = 1 / math.sqrt(D)
        rope_scores = torch.einsum("btgrp,bsgp->bgrts", q_pe, pe_g)  # (B, G, H/G, T, S)
        if mode == "absorbed":
            q_lat = torch.einsum("btgrn,gnc->btgrc", q_nope, self.w_uk)  # (B, T, G, H/G, C): W^UK absorbed
            scores = torch.einsum("btgrc,bsc->bgrts", q_lat, c_all) + rope_scores
        elif mode == "expanded":
            k_nope = torch.einsum("bsc,gnc->bsgn", c_all, self.w_uk)  # (B, S, G, N)
            scores = torch.einsum("btgrn,bsgn->bgrts", q_nope, k_nope) + rope_scores
        else:
            raise ValueError(f"unknown MLA mode {mode!r}; choose absorbed or expanded.")
        k_pos = torch.arange(p0 + T - S, p0 + T, device=x.device)
        probs = (scores * scale).masked_fill(~causal_mask(pos, k_pos), float("-inf")).softmax(-1)
        if mode == "absorbed":
            o_lat = probs @ c_all[:, None, None]  # (B, G, H/G, T, C)
            o = torch.einsum("bgrtc,gdc->btgrd", o_lat, self.w_uv)  # (B, T, G, H/G, D): W^UV absorbed
        else:
            v = torch.einsum("bsc,gdc->bgsd", c_all, self.w_uv)  # (B, G, S, D)
            o = (probs @ v[:, :, None]).permute(0, 3, 1, 2, 4)  # (B, T, G, H/G, D)
        out = self.wo(o.reshape(B, T, H * D))  # (B, T, E)
        return AttentionTrace(out, LatentCache(c_all, pe_all, p0 + T), probs.reshape(B, H, T, S))

    def forward(self, x: Tensor, cache: LatentCache | None = None, mode: str = "absorbed"):
        out, cache, _ = self.trace(x, cache, mode)
        return out, cache
