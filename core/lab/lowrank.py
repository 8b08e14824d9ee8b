"""MHA -> MLA by SVD: compress a real pretrained layer's keys and values into one cached latent.

# B batch, T tokens, N tokens of all sequences together, E model width (384), H heads (12),
# D head dim (32), C latent rank d_c, W stacked key+value width (2E = 768)

DeepSeek-V2's MLA (arXiv 2405.04434) caches one latent c_KV = W^DKV x per token and rebuilds every
head's key and value from it with up-projections W^UK, W^UV. A trained MHA layer can be converted to
that form by a joint SVD of its key and value projections (MHA2MLA, arXiv 2502.14837, "SVD_joint";
TransMLA, arXiv 2502.07864):

    [W_K; W_V] = U S V^T              (W x E) = (W x E)(E x E)(E x E), singular values descending
    W^DKV = S_r V_r^T                 (C x E): c_KV = x W^DKV^T is what is cached, C = r numbers per token
    [W^UK; W^UV] = U_r                (W x C): split into the key rows (E x C) and the value rows (E x C)
    k = c_KV W^UK^T + b_K,  v = c_KV W^UV^T + b_V

By Eckart-Young, U_r S_r V_r^T is the best rank-r approximation of the stacked weights (Frobenius); it is
not the best for the keys and values of real text, whose inputs x are far from isotropic (see
`activation_spectra` and the `kv_error_floor` column of `rank_sweep`). The joint SVD serves keys and
values together, so whichever of W_K, W_V has the larger singular values gets more of the rank.

Biases are per-token constants, so they stay outside the low-rank path: added after the
up-projection, they make rank E reproduce the layer exactly. (The key bias even cancels in softmax:
it adds q.b_K to every score of a query row.)

MiniLM uses learned absolute position embeddings, added once before layer 0; its keys carry no RoPE,
so the partial-RoPE question that MHA2MLA and TransMLA must answer for RoPE models (which key
channels keep positions in a decoupled rope key outside the latent) does not arise here: the whole
key goes through the latent.

Cache per token per layer: MHA stores k and v, 2 E = 768 numbers; the converted layer stores C.
"""

from __future__ import annotations

import gzip
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import pandas as pd
import torch
from torch import Tensor

from core.lab.minilm import MiniLM, _check_layer, attend, attention_io, hidden_states, split_heads
from core.model.dtypes import CACHE_DTYPES

TokenIds = Tensor | Sequence[Tensor]  # one batch (T,) or (B, T), or several sequences of any lengths


class Spectra(NamedTuple):
    """Singular values, descending, of the keys, the values and the two stacked (the joint)."""

    key: Tensor  # (min(rows, cols),)
    value: Tensor
    joint: Tensor


def _check_head(mini: MiniLM, head: int | None) -> None:
    if head is not None and (not isinstance(head, int) or isinstance(head, bool) or not 0 <= head < mini.n_heads):
        raise ValueError(f"head must be None (all heads) or an integer from 0 to {mini.n_heads - 1}; got {head!r}.")


def _check_rank(mini: MiniLM, rank: int) -> None:
    E = mini.hidden_size
    if not isinstance(rank, int) or isinstance(rank, bool) or not 1 <= rank <= E:
        raise ValueError(f"rank must be an integer from 1 to {E} (the width of the layer's input); got {rank!r}.")


def _rows(mini: MiniLM, head: int | None) -> slice:
    """Output rows of W_Q/W_K/W_V that belong to `head` (all rows for None)."""
    D = mini.head_dim
    return slice(None) if head is None else slice(head * D, (head + 1) * D)


def spectra(mini: MiniLM, layer: int, head: int | None = None) -> Spectra:
    """Singular values of W_K (E x E), W_V (E x E) and the joint [W_K; W_V] (2E x E) of `layer`;
    with `head`, of that head's rows only: W_K,h (D x E), W_V,h (D x E), [W_K,h; W_V,h] (2D x E)."""
    _check_layer(mini, layer)
    _check_head(mini, head)
    p, rows = mini.layers[layer], _rows(mini, head)
    w_k, w_v = p.w_k[rows].double(), p.w_v[rows].double()
    return Spectra(*(torch.linalg.svdvals(w) for w in (w_k, w_v, torch.cat([w_k, w_v]))))


def energy(s: Tensor) -> Tensor:
    """Cumulative energy share: energy(s)[r - 1] = sum_{i<=r} s_i^2 / sum_i s_i^2, the fraction of the
    squared Frobenius norm that the first r singular directions keep (1 - energy is the squared
    relative error of the best rank-r approximation). Non-decreasing, ends at 1."""
    if s.ndim != 1 or s.numel() == 0:
        raise ValueError("energy needs a non-empty 1-D tensor of singular values.")
    e = (s.double() ** 2).cumsum(0)  # (len(s),)
    return e / e[-1]


def rank_for_energy(s: Tensor, share: float) -> int:
    """The smallest rank r whose first r singular directions keep at least `share` of the energy."""
    if not 0 < share <= 1:
        raise ValueError(f"share must be in (0, 1]; got {share}.")
    e = energy(s)
    return int(torch.searchsorted(e, torch.tensor(share - 1e-12, dtype=e.dtype, device=e.device)).item()) + 1


def _sequences(mini: MiniLM, token_ids: TokenIds) -> list[Tensor]:
    if isinstance(token_ids, Tensor):
        return [token_ids]
    seqs = list(token_ids)
    if not seqs:
        raise ValueError("token_ids must hold at least one sequence.")
    return seqs


def layer_inputs(mini: MiniLM, layer: int, token_ids: TokenIds) -> list[Tensor]:
    """The real input (B, T, E) of `layer` for each sequence, from the encoder (`hidden_states`)."""
    _check_layer(mini, layer)
    return [hidden_states(mini, ids, up_to=layer)[layer] for ids in _sequences(mini, token_ids)]


def activation_spectra(
    mini: MiniLM, layer: int, token_ids: TokenIds, head: int | None = None, with_bias: bool = True
) -> Spectra:
    """Singular values of the keys K = X W_K^T + b_K (N x E), the values V = X W_V^T + b_V and the joint
    [K | V] (N x 2E) that `layer` computes on real text (X: its inputs, all tokens stacked); with
    `head`, of that head's D columns only.

    with_bias=False drops the biases: that is what the latent has to carry (the converted layer adds
    the biases back exactly), while the bias adds one constant row direction to the spectrum. There are
    at most min(N, E) non-zero values, so compare shares at ranks well below the number of tokens."""
    _check_head(mini, head)
    p, rows = mini.layers[layer], _rows(mini, head)
    x = torch.cat([xi.reshape(-1, mini.hidden_size) for xi in layer_inputs(mini, layer, token_ids)]).double()  # (N, E)
    k = x @ p.w_k[rows].double().T  # (N, E or D)
    v = x @ p.w_v[rows].double().T  # (N, E or D)
    if with_bias:
        k, v = k + p.b_k[rows].double(), v + p.b_v[rows].double()
    return Spectra(*(torch.linalg.svdvals(m) for m in (k, v, torch.cat([k, v], dim=1))))


class _JointSVD(NamedTuple):
    u: Tensor  # (W, E): left singular vectors of [W_K; W_V]
    s: Tensor  # (E,): descending
    vh: Tensor  # (E, E): right singular vectors as rows


@lru_cache(maxsize=32)
def _joint_svd(mini: MiniLM, layer: int) -> _JointSVD:
    """SVD of [W_K; W_V], computed once per (model, layer) in float64, returned in the model's dtype."""
    p = mini.layers[layer]
    w = torch.cat([p.w_k, p.w_v]).double()  # (W, E)
    u, s, vh = torch.linalg.svd(w, full_matrices=False)  # (W, E), (E,), (E, E)
    return _JointSVD(*(t.to(mini.dtype) for t in (u, s, vh)))


@dataclass(frozen=True, eq=False)
class ConvertedLayer:
    """The key/value path of one MiniLM layer in MLA form; queries, W_O and the rest are unchanged.

    Cached per token: c_KV (C numbers). Keys and values are rebuilt (expanded path) or never built (absorbed
    path, `absorbed_attention`)."""

    layer: int
    rank: int  # C = d_c: width of the cached latent
    w_dkv: Tensor  # (C, E): W^DKV = S_r V_r^T
    w_uk: Tensor  # (E, C): W^UK, key rows of U_r
    w_uv: Tensor  # (E, C): W^UV, value rows of U_r
    b_k: Tensor  # (E,): key bias, added after the up-projection
    b_v: Tensor  # (E,): value bias

    def latent(self, x: Tensor) -> Tensor:
        """c_KV = x W^DKV^T: (B, T, E) -> (B, T, C), the only thing the converted layer caches."""
        return x @ self.w_dkv.T

    def keys_values(self, c_kv: Tensor) -> tuple[Tensor, Tensor]:
        """Keys and values (B, T, E) each, all heads, rebuilt from the latent (B, T, C)."""
        return c_kv @ self.w_uk.T + self.b_k, c_kv @ self.w_uv.T + self.b_v

    def cache_bytes_per_token(self, dtype: str = "bf16") -> int:
        """Bytes this layer caches per token: C elements in `dtype`."""
        return cache_bytes_per_token(self.rank, dtype)


def to_mla(mini: MiniLM, layer: int, rank: int) -> ConvertedLayer:
    """Convert `layer`'s key/value projections to MLA at latent rank C = `rank` (1..E) by the joint SVD
    (module docstring). rank = E reproduces the layer exactly (up to float rounding)."""
    _check_layer(mini, layer)
    _check_rank(mini, rank)
    E, p = mini.hidden_size, mini.layers[layer]
    u, s, vh = _joint_svd(mini, layer)
    u_r = u[:, :rank]  # (W, C)
    return ConvertedLayer(layer, rank, s[:rank, None] * vh[:rank], u_r[:E], u_r[E:], p.b_k, p.b_v)


class AbsorbedIO(NamedTuple):
    c_kv: Tensor  # (B, T, C): the cache
    q_latent: Tensor  # (B, H, T, C): each head's query mapped into latent space by W^UK
    scores: Tensor  # (B, H, T, T)
    probs: Tensor  # (B, H, T, T)
    out: Tensor  # (B, T, E)


def absorbed_attention(mini: MiniLM, conv: ConvertedLayer, x: Tensor) -> AbsorbedIO:
    """The converted layer in absorbed mode (DeepSeek-V3 inference/model.py, attn_impl="absorb"):
    attend in latent space, never materialising per-head keys or values.

    scores_h = (q_h W^UK_h) c_KV^T / sqrt(D) + q_h . b_K,h / sqrt(D)   (the bias term is the same for
    every key, kept so the scores equal the expanded path's); out = sum_h (probs_h c_KV) W^UV_h^T W_O,h^T
    + sum_h b_V,h W_O,h^T + b_O (probs sum to 1 over keys, so the value bias passes through whole)."""
    p = mini.layers[conv.layer]
    B, T, E = x.shape
    H, D, C = mini.n_heads, mini.head_dim, conv.rank
    c_kv = conv.latent(x)  # (B, T, C)
    q = (x @ p.w_q.T + p.b_q).view(B, T, H, D).transpose(1, 2)  # (B, H, T, D)
    q_lat = torch.einsum("bhtd,hdc->bhtc", q, conv.w_uk.view(H, D, C))  # (B, H, T, C): W^UK absorbed
    q_bias = torch.einsum("bhtd,hd->bht", q, conv.b_k.view(H, D))  # (B, H, T)
    scores = (torch.einsum("bhtc,bsc->bhts", q_lat, c_kv) + q_bias[..., None]) / math.sqrt(D)  # (B, H, T, T)
    probs = scores.softmax(-1)
    o_lat = torch.einsum("bhts,bsc->bthc", probs, c_kv)  # (B, T, H, C)
    w_ov = torch.einsum("ehd,hdc->ehc", p.w_o.view(E, H, D), conv.w_uv.view(H, D, C))  # (E, H, C): W^UV in W_O
    out = torch.einsum("bthc,ehc->bte", o_lat, w_ov) + (conv.b_v @ p.w_o.T + p.b_o)  # (B, T, E)
    return AbsorbedIO(c_kv, q_lat, scores, probs, out)


def cache_bytes_per_token(rank: int, dtype: str = "bf16") -> int:
    """Bytes one converted layer caches per token: C x (bytes per element of `dtype`)."""
    if dtype not in CACHE_DTYPES:
        raise ValueError(f"unknown cache dtype {dtype!r}; choose one of {', '.join(CACHE_DTYPES)}.")
    return CACHE_DTYPES[dtype].vector_bytes(rank)


def mha_cache_bytes_per_token(mini: MiniLM, dtype: str = "bf16") -> int:
    """Bytes one original MiniLM layer caches per token: keys and values, 2 E elements (2 x 12 x 32)."""
    return 2 * cache_bytes_per_token(mini.hidden_size, dtype)


SWEEPS_FILE = Path(__file__).resolve().parents[2] / "assets" / "latent_rank" / "sweeps.json.gz"


def shipped_sweeps() -> dict[str, pd.DataFrame]:
    """`rank_sweep` at every rank 1..384 for every layer and text ("layer|passage", -1: all passages), made
    by scripts/rank_sweeps.py; {} when the file is absent."""
    if not SWEEPS_FILE.is_file():
        return {}
    with gzip.open(SWEEPS_FILE, "rt") as f:
        return {k: pd.DataFrame(v) for k, v in json.load(f).items()}


@torch.no_grad()
def rank_sweep(mini: MiniLM, layer: int, token_ids: TokenIds, ranks: Sequence[int]) -> pd.DataFrame:
    """Errors of the SVD-converted `layer` against the real layer on real text, one row per rank.

    The layer's true input X (from `hidden_states`) goes through both the original attention and the
    converted one (same queries, W_O and biases; only keys and values come from the rank-C latent).
    Columns (all relative errors are Frobenius norms over every token, and head, of all sequences):
      rank, k_error ||K_C - K|| / ||K||, v_error (likewise V), kv_error (of [K | V]),
      kv_error_floor: the best any rank-C latent linear in x could do on this text (Eckart-Young on
        X [W_K; W_V]^T, divided by ||[K | V]||), a floor under kv_error,
      scores_error ||S_C - S|| / ||S|| of the pre-softmax scores q k^T / sqrt(D),
      probs_tv: mean over (head, query) rows of the total-variation distance 1/2 sum_s |P_C - P|, in [0, 1],
      out_error ||O_C - O|| / ||O|| of the attention block's output after W_O (with b_O, before the residual),
      cache_bytes_fp32, cache_bytes_bf16: per token for this layer (C x 4, C x 2; MHA: 2E x 4, 2E x 2),
      cache_share: C / 2E, the converted cache as a fraction of MHA's.
    Computed in the model's dtype (use float64 to see errors near zero at full rank)."""
    _check_layer(mini, layer)
    ranks = list(ranks)
    if not ranks:
        raise ValueError("ranks must hold at least one rank.")
    for r in ranks:
        _check_rank(mini, r)
    E, p = mini.hidden_size, mini.layers[layer]
    u, s, vh = _joint_svd(mini, layer)
    bias = torch.cat([p.b_k, p.b_v])  # (W,)
    refs, kv_refs, coords = [], [], []
    for x in layer_inputs(mini, layer, token_ids):
        refs.append(attention_io(mini, layer, x))
        kv_refs.append(torch.cat([x @ p.w_k.T + p.b_k, x @ p.w_v.T + p.b_v], -1))  # (B, T, W)
        coords.append((x @ vh.T) * s)  # (B, T, E): x [W_K; W_V]^T in the basis U, the full-rank latent
    k_sq = sum(float(kv[..., :E].pow(2).sum()) for kv in kv_refs)
    v_sq = sum(float(kv[..., E:].pow(2).sum()) for kv in kv_refs)
    s_sq = sum(float(ref.scores.pow(2).sum()) for ref in refs)
    o_sq = sum(float(ref.out.pow(2).sum()) for ref in refs)
    n_rows = sum(ref.probs[..., 0].numel() for ref in refs)  # (head, query) rows
    # Eckart-Young floor from the singular values of the bias-free activations X [W_K; W_V]^T
    act_s = torch.linalg.svdvals(torch.cat([c.reshape(-1, E) for c in coords]).double())  # (min(N, E),)
    tail = (act_s**2).flip(0).cumsum(0).flip(0)  # tail[i] = sum_{j >= i} s_j^2
    kvs = [bias.expand_as(kv).clone() for kv in kv_refs]  # (B, T, W) each: keys and values at rank `done`
    rows, done = {}, 0
    for r in sorted(set(ranks)):  # ascending, so each rank adds only its new directions to the last
        dk = dv = ds = dp = do = 0.0
        for i, (ref, kv_ref, c) in enumerate(zip(refs, kv_refs, coords, strict=True)):
            kvs[i] = kv = kvs[i] + c[..., done:r] @ u[:, done:r].T  # (B, T, W): the rank-r keys and values
            k, v = split_heads(mini, kv[..., :E]), split_heads(mini, kv[..., E:])  # (B, H, T, D) each
            scores, probs, out = attend(mini, layer, ref.q, k, v)
            diff = (kv - kv_ref).pow(2)  # (B, T, W)
            dk += float(diff[..., :E].sum())
            dv += float(diff[..., E:].sum())
            ds += float((scores - ref.scores).pow(2).sum())
            dp += float(0.5 * (probs - ref.probs).abs().sum())
            do += float((out - ref.out).pow(2).sum())
        done = r
        floor = float(tail[r]) if r < len(tail) else 0.0
        rows[r] = {
            "rank": r,
            "k_error": math.sqrt(dk / k_sq),
            "v_error": math.sqrt(dv / v_sq),
            "kv_error": math.sqrt((dk + dv) / (k_sq + v_sq)),
            "kv_error_floor": math.sqrt(floor / (k_sq + v_sq)),
            "scores_error": math.sqrt(ds / s_sq),
            "probs_tv": dp / n_rows,
            "out_error": math.sqrt(do / o_sq),
            "cache_bytes_fp32": cache_bytes_per_token(r, "fp32"),
            "cache_bytes_bf16": cache_bytes_per_token(r, "bf16"),
            "cache_share": r / (2 * E),
        }
    return pd.DataFrame([rows[r] for r in ranks])


class Crossing(NamedTuple):
    """Where a rank sweep's error first falls below a threshold, read off the measured ranks only."""

    rank: int | None  # the smallest measured rank whose error is below `threshold`; None when none is
    measured: tuple[int, ...]  # every rank the sweep measured, ascending
    threshold: float
    column: str

    def measured_text(self) -> str:
        """The measured ranks in words: "every rank from 1 to 384", or the list of them."""
        m = self.measured
        if len(m) > 2 and list(m) == list(range(m[0], m[-1] + 1)):
            return f"every rank from {m[0]} to {m[-1]}"
        return ", ".join(map(str, m))


def error_crossing(sweep: pd.DataFrame, threshold: float = 0.10, column: str = "out_error") -> Crossing:
    """The smallest rank of `sweep` (a `rank_sweep` table) whose `column` is below `threshold`.

    Nothing is interpolated: the answer is one of the ranks the sweep measured, so it is only as fine
    as they are (say which, with `Crossing.measured_text`). The error need not fall monotonically (the
    output error wiggles in deeper layers), so this is where it first drops below, not where it stays."""
    if not 0 < threshold < 1:
        raise ValueError(f"threshold must be a fraction between 0 and 1; got {threshold!r}.")
    for c in ("rank", column):
        if c not in sweep.columns:
            raise ValueError(f"the sweep has no {c!r} column; it needs 'rank' and the error to read ({column!r}).")
    if sweep.empty:
        raise ValueError("the sweep has no rows: measure at least one rank.")
    by_rank = sweep.sort_values("rank")
    below = by_rank[by_rank[column] < threshold]
    rank = int(below["rank"].iloc[0]) if len(below) else None
    return Crossing(rank, tuple(int(r) for r in by_rank["rank"].unique()), threshold, column)
