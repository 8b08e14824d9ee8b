"""Needle in a haystack under every kind of cache compression, on the tiny models trained here.

The evaluation prefills each prompt up to (not including) the QUERY token, compresses every layer's
cache once, then decodes QUERY and the answer digits from the compressed cache: every answer token is
predicted by attention over what survived. Methods (strength in brackets):
- low rank (r): every cached token's vector (all heads, keys and values, or MLA's latent + rope key) is
  projected onto the top-r principal directions of this layer's cache (an ideal, data-fitted latent of
  width r: what an MLA of rank r could cache at best)
- quantization (scheme): core.quant presets applied to each cached head vector (or latent)
- top-k (k): the QUERY token keeps only the k cached tokens its own attention weights most (summed over
  heads), as a perfect DSA indexer would choose them; the digits after it reuse that selection
- pooling (m): V4-style: every m older tokens are averaged into one entry; the last 16 stay raw
- sliding window (w): the last w tokens
- StreamingLLM (w): 4 attention-sink tokens (the first) plus the last w - 4 (arXiv 2309.17453)
- H2O (b): b/2 heavy hitters (most attention received during prefill) plus the b/2 most recent
  (arXiv 2306.14048)
"""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import torch
from torch import Tensor

from core.lab.needle_methods import DEFAULT_STRENGTH, METHODS, STRENGTHS, Method
from core.lab.tiny import TinyLM, make_batch
from core.layers import quant
from core.layers.attention import KVCache, LatentCache, cache_nbytes

RECENT_RAW = 16  # tokens V4-style pooling keeps uncompressed
SINKS = 4


# ----------------------------------------------------------------------------- cache surgery


def _fields(cache) -> dict[str, Tensor]:
    """The token-indexed tensors of a cache, each with tokens on dim -2: K/V (B, G, S, D) or latent (B, S, C)."""
    if isinstance(cache, KVCache):
        return {"k": cache.k, "v": cache.v}
    return {"c_kv": cache.c_kv, "k_pe": cache.k_pe}


def _rebuild(cache, **tensors):
    return replace(cache, **tensors)


def keep_tokens(cache, idx: Tensor):
    """Keep cached tokens idx (B, K) (per sequence, ascending); `seen` is kept so RoPE positions go on."""
    out = {}
    for name, t in _fields(cache).items():
        if t.dim() == 4:  # (B, G, S, D)
            g = idx[:, None, :, None].expand(t.shape[0], t.shape[1], idx.shape[1], t.shape[3])
            out[name] = t.gather(2, g)
        else:  # (B, S, C)
            out[name] = t.gather(1, idx[:, :, None].expand(t.shape[0], idx.shape[1], t.shape[2]))
    return _rebuild(cache, **out)


def _token_matrix(cache) -> tuple[Tensor, list]:
    """Every cached token as one vector (B, S, F) of all its cached numbers, and how to split it back."""
    parts, shapes = [], []
    for name, t in _fields(cache).items():
        if t.dim() == 4:
            B, G, S, D = t.shape
            parts.append(t.permute(0, 2, 1, 3).reshape(B, S, G * D))
        else:
            parts.append(t)
        shapes.append((name, t.shape))
    return torch.cat(parts, -1), shapes


def _from_token_matrix(cache, m: Tensor, shapes: list):
    out, at = {}, 0
    for name, shape in shapes:
        if len(shape) == 4:
            B, G, S, D = shape
            out[name] = m[..., at : at + G * D].reshape(B, S, G, D).permute(0, 2, 1, 3).contiguous()
            at += G * D
        else:
            out[name] = m[..., at : at + shape[-1]].contiguous()
            at += shape[-1]
    return _rebuild(cache, **out)


def low_rank(cache, r: int):
    """Project each token's cached vector onto the top-r principal directions of the layer's cache (over
    all sequences and tokens, mean kept): the best rank-r latent for this cache."""
    m, shapes = _token_matrix(cache)  # (B, S, F)
    flat = m.reshape(-1, m.shape[-1]).double()
    mean = flat.mean(0)
    _, _, vh = torch.linalg.svd(flat - mean, full_matrices=False)
    basis = vh[: min(r, vh.shape[0])]  # (r, F)
    proj = (flat - mean) @ basis.T @ basis + mean
    return _from_token_matrix(cache, proj.reshape(m.shape).to(m.dtype), shapes)


def quantize(cache, scheme: str):
    """Round-trip every cached tensor through a core.quant preset, per head vector (keys as keys, values
    and latents as values where the scheme treats them differently)."""
    p = quant.preset(scheme)
    out = {}
    for name, t in _fields(cache).items():
        role = "key" if name in ("k", "k_pe") else "value"
        out[name] = p.quantize(t, role).dequantize().to(t.dtype)
    return _rebuild(cache, **out)


def pool(cache, m: int, recent: int = RECENT_RAW):
    """V4-style compression: the tokens before the last `recent` are averaged in blocks of m into entries."""
    out = {}
    for name, t in _fields(cache).items():
        S = t.shape[-2]
        n_old = max(S - recent, 0) // m * m
        old, new = t[..., :n_old, :], t[..., n_old:, :]
        pooled = old.reshape(*old.shape[:-2], n_old // m, m, old.shape[-1]).mean(-2)
        out[name] = torch.cat([pooled, new], -2)
    return _rebuild(cache, **out)


def _recent_idx(B: int, S: int, n: int, device) -> Tensor:
    n = min(n, S)
    return torch.arange(S - n, S, device=device).expand(B, n)


def window(cache, w: int):
    S = next(iter(_fields(cache).values())).shape[-2]
    B = next(iter(_fields(cache).values())).shape[0]
    return keep_tokens(
        cache, _recent_idx(B, S, w, cache.c_kv.device if isinstance(cache, LatentCache) else cache.k.device)
    )


def streaming(cache, w: int, sinks: int = SINKS):
    t = next(iter(_fields(cache).values()))
    B, S = t.shape[0], t.shape[-2]
    if S <= w:
        return cache
    idx = torch.cat([torch.arange(sinks), torch.arange(S - (w - sinks), S)]).to(t.device).expand(B, w)
    return keep_tokens(cache, idx)


def heavy_hitters(cache, budget: int, received: Tensor):
    """H2O: keep the budget/2 tokens that received the most attention (received: (B, S)) plus the
    budget/2 most recent."""
    t = next(iter(_fields(cache).values()))
    B, S = t.shape[0], t.shape[-2]
    if S <= budget:
        return cache
    n_recent = budget // 2
    old = received[:, : S - n_recent]
    heavy = old.topk(budget - n_recent, dim=-1).indices.sort(-1).values  # (B, budget - n_recent)
    idx = torch.cat([heavy, _recent_idx(B, S, n_recent, t.device)], -1)
    return keep_tokens(cache, idx)


# ----------------------------------------------------------------------------- evaluation


class NeedleResult(dict):
    pass


@torch.no_grad()
def evaluate(model: TinyLM, method: Method, length: int, depth: float | None, n: int = 50, seed: int = 0) -> dict:
    """Exact-match accuracy of the needle at `length` tokens and `depth`, with every layer's cache
    compressed by `method` after the prompt (QUERY and the digits are decoded from the compressed cache).
    Also returns the cache bytes per sequence after compression (measured nbytes; quantized and low-rank
    caches: their packed/latent size), and before."""
    task = model.cfg.task
    k = task.n_digits
    b = make_batch(n, length, seed, depth, task)
    prompt, query, answer = (
        b.tokens[:, : length - k - 1],
        b.tokens[:, length - k - 1 : length - k],
        b.tokens[:, length - k :],
    )
    tr = model.trace(prompt)
    caches = tr.caches
    raw_bytes = sum(cache_nbytes(c) for c in caches) // n
    if method.name == "top-k":  # the QUERY token's own attention (summed over heads) picks what it keeps
        q_tr = model.trace(query, caches)
        new = []
        for c, p in zip(caches, q_tr.probs, strict=True):
            w = p[:, :, -1, :-1].sum(1)  # (B, S): attention from QUERY to the cached tokens
            kk = min(int(method.strength), w.shape[1])
            new.append(keep_tokens(c, w.topk(kk, -1).indices.sort(-1).values))
        caches = new
    elif method.name != "none":
        caches = [_compress(c, p, method) for c, p in zip(caches, tr.probs, strict=True)]
    logits, caches = model(query, caches)
    guesses, guess = [], logits[:, -1].argmax(-1)
    for i in range(k):
        guesses.append(guess)
        if i < k - 1:
            step, caches = model(guess[:, None], caches)
            guess = step[:, -1].argmax(-1)
    ok = (torch.stack(guesses, 1) == answer).all(1)
    return {
        "accuracy": float(ok.float().mean()),
        "cache_bytes": compressed_bytes(model, method, length),
        "raw_bytes": raw_bytes,
    }


def _compress(cache, probs: Tensor, method: Method):
    s = method.strength
    if method.name == "low rank":
        return low_rank(cache, int(s))
    if method.name == "quantization":
        return quantize(cache, str(s))
    if method.name == "pooling":
        return pool(cache, int(s))
    if method.name == "sliding window":
        return window(cache, int(s))
    if method.name == "StreamingLLM":
        return streaming(cache, int(s))
    if method.name == "H2O":
        return heavy_hitters(cache, int(s), probs.sum(1).sum(1))  # (B, S): attention received, all heads/queries
    raise ValueError(f"unknown compression method {method.name!r}; choose one of {', '.join(METHODS)}.")


def compressed_bytes(model: TinyLM, method: Method, length: int) -> int:
    """Cache bytes per sequence for a prompt of `length` tokens (all layers) after `method`, in the
    model's fp32 (4 bytes per number) unless the method changes the format (quantization: the packed
    bytes of the scheme; low rank: r numbers per token plus nothing else, the basis being shared)."""
    cfg = model.cfg
    L = cfg.n_layers
    per_tok = cfg.kv_elements_per_token()  # numbers per token per layer
    S = length - cfg.task.n_digits - 1
    s = method.strength
    if method.name == "none":
        return L * S * per_tok * 4
    if method.name == "low rank":
        return L * S * min(int(s), per_tok) * 4
    if method.name == "quantization":
        p = quant.preset(str(s))
        return L * int(round(S * per_tok * p.bits_per_element(per_tok) / 8))
    if method.name == "pooling":
        n_old = max(S - RECENT_RAW, 0) // int(s) * int(s)
        return L * (n_old // int(s) + S - n_old) * per_tok * 4
    if method.name in ("sliding window", "StreamingLLM", "H2O", "top-k"):
        return L * min(S, int(s)) * per_tok * 4
    raise ValueError(f"unknown compression method {method.name!r}.")


def heatmap(model: TinyLM, method: Method, lengths, depths, n: int = 50, seed: int = 0) -> pd.DataFrame:
    rows = []
    for length in lengths:
        for d in depths:
            r = evaluate(model, method, length, d, n, seed)
            rows.append({"length": length, "depth": d, **r})
    return pd.DataFrame(rows)


LENGTHS = (64, 128, 192, 256)
DEPTHS = (0.0, 0.25, 0.5, 0.75, 1.0)
MODELS = ("tiny-mha", "tiny-gqa", "tiny-mla")


def methods_at_default() -> list[Method]:
    return [Method("none")] + [Method(m, DEFAULT_STRENGTH[m]) for m in METHODS[1:]]


def all_methods() -> list[Method]:
    """Every view the page offers: no compression, and every method at every strength."""
    return [Method("none")] + [Method(m, s) for m in METHODS[1:] for s in STRENGTHS[m]]


def summary(model: TinyLM, length: int = 256, n: int = 40, seed: int = 1) -> pd.DataFrame:
    """Accuracy (averaged over the DEPTHS) vs cache bytes for every method at every strength."""
    rows = []
    for name in METHODS:
        for s in [None] if name == "none" else STRENGTHS[name]:
            m = Method(name, s)
            accs, nbytes = [], 0
            for d in DEPTHS:
                r = evaluate(model, m, length, d, n, seed)
                accs.append(r["accuracy"])
                nbytes = r["cache_bytes"]
            rows.append({"method": name, "strength": str(s), "label": m.label, "accuracy": sum(accs) / len(accs),
                         "cache_bytes": nbytes})  # fmt: skip
    return pd.DataFrame(rows)
