"""What compressing the KV cache costs a real language model: SmolLM2-135M on held-out text.

# B batch (1), L layers, G kv heads, H query heads, S cached tokens, D head dim, P context tokens,
# M scored tokens, K tokens an eviction keeps

Protocol, the same for every method ("prefill, compress, then read"): a window of held-out text holds P
context tokens, M scored tokens and the token after them. The uncompressed model prefills the P context
tokens; the method compresses every layer's cache of them once; then the M scored tokens run teacher-forced,
attending to the compressed context and to their own keys and values (uncompressed; they are the recent
tokens every method keeps), and each predicts its next token. Nothing else differs between methods, so any
change in those M predictions is what the compressed cache lost. Against the uncompressed (fp32) cache:
    perplexity    exp(mean NLL of the true next token)         and its increase over the reference
    KL            mean over tokens of KL(p_ref || p_method), in nats
    top-1         share of tokens where the method's most likely next token is the reference's
Bytes per token: the compressed cache of the P context tokens, all layers, from the engine's accounting of
the method's spec (`core.accounting.totals.kv_cache_bytes` of a windowed or MLA ModelSpec; a quantizer's
`packed_bytes`, which tests pin to its tensors' nbytes), divided by P.

Families (methods named as in their papers; all applied to the keys after RoPE, as they sit in the cache):
- quantization: `core.layers.quant` presets on every (token, kv head) vector; KIVI keeps its fp16 window of
  recent tokens; llama.cpp q8_0 / q4_0 through the gguf package.
- eviction, K of the P context tokens kept per kv head (bf16): sliding window (the last K); StreamingLLM
  (4 sinks + the last K - 4, arXiv 2309.17453); H2O (K/2 heavy hitters by attention received during the
  prefill, summed over the group's query heads, + the K/2 most recent, arXiv 2306.14048); SnapKV (the last
  32 context tokens + the K - 32 that those 32 queries attend to most, scores max-pooled over 7 tokens,
  arXiv 2404.14469). Every eviction is done once, after the prefill, as SnapKV does; H2O's paper evicts one
  token per generated token with the same accumulated score, which over M tokens keeps nearly the same set.
- low rank: the model's GQA converted to MLA with no training (core.layers.mha2mla): 4 RoPE pairs per kv head
  (MHA2MLA's default r = d_h / 16), 16, or all 32 (full RoPE: keys cached whole, values through the latent),
  chosen by S_2-norm on calibration text; the context's latent is W_down x of the attention inputs the
  prefill saw; latents and rope keys stored in bf16. Measured here: without fine-tuning, dropping RoPE from
  most pairs costs more than the low rank does (MHA2MLA fine-tunes on 2.25B tokens after converting).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import pandas as pd
import torch
from torch import Tensor

from core.accounting.totals import kv_cache_bytes
from core.lab import smollm
from core.lab.real_methods import (
    EVICTION,
    LOW_RANK,
    REFERENCE,
    Method,
)
from core.layers import quant
from core.layers.attention import KVCache, LatentCache
from core.layers.llama import OBSERVED, LayerRecord
from core.layers.mha2mla import Calibration, ConvertedMLA, calibrate
from core.model.hf_config import from_hf_config
from core.model.specs import MLASpec, ModelSpec

SWEEP = Path(__file__).resolve().parents[2] / "assets" / "realmodel" / "sweep.json"  # scripts/real_sweep.py
CONTEXT = 1024  # P
SCORED = 128  # M
WINDOWS = 8  # windows of held-out text (P + M + 1 tokens each, consecutive)
SINKS = 4
POOL = 7  # SnapKV's pooling kernel
CALIBRATION_TOKENS = 2048

# ----------------------------------------------------------------------------- bytes (the engine's accounting)


def _uniform(spec: ModelSpec, attn) -> ModelSpec:
    return replace(spec, attention=(attn,) * spec.n_layers)


def mla_spec(spec: ModelSpec, rank: int, pairs: int) -> ModelSpec:
    """The converted model for the accounting: MLA with a latent of `rank` and G x 2 pairs rope channels."""
    a = spec.attention[0]
    return _uniform(spec, MLASpec(a.n_heads, rank, a.head_dim - 2 * pairs, a.n_kv_heads * 2 * pairs, a.head_dim))


def cache_bytes(spec: ModelSpec, method: Method, context: int = CONTEXT) -> int:
    """Bytes the compressed cache of `context` tokens takes, all layers (batch 1)."""
    a = spec.attention[0]
    if method.family == "none":
        return kv_cache_bytes(spec, context, kv_dtype=method.name)
    if method.family == "eviction":
        return kv_cache_bytes(_uniform(spec, replace(a, sliding_window=method.setting)), context)
    if method.family == "low rank":
        return kv_cache_bytes(mla_spec(spec, method.setting, method.pairs), context)
    shape = (1, a.n_kv_heads, context, a.head_dim)
    return spec.n_layers * quant.preset(method.name).packed_bytes(shape)


# ----------------------------------------------------------------------------- compression


def _bf16(t: Tensor) -> Tensor:
    return t.to(torch.bfloat16).to(t.dtype)


def _gather(t: Tensor, idx: Tensor) -> Tensor:
    """t (B, G, S, D), idx (B, G, K) ascending -> (B, G, K, D)."""
    return t.gather(2, idx[..., None].expand(*idx.shape, t.shape[-1]))


def keep(cache: KVCache, idx: Tensor) -> KVCache:
    """Keep tokens idx (B, G, K) per kv head, stored in bf16; `seen` stays, so new tokens' positions go on."""
    return KVCache(_bf16(_gather(cache.k, idx)), _bf16(_gather(cache.v, idx)), cache.seen)


def _top(scores: Tensor, k: int, among: int) -> Tensor:
    """Indices (B, G, k) of the k best scores among the first `among` tokens."""
    return scores[..., :among].topk(k, dim=-1).indices


def eviction_indices(name: str, budget: int, record: LayerRecord, n_kv_heads: int) -> Tensor:
    """(B, G, K) ascending: the tokens a method keeps of S cached ones."""
    B, H, S = record.received.shape
    if budget >= S:
        return torch.arange(S).expand(B, n_kv_heads, S)
    recent = torch.arange(S - budget, S)
    if name == "sliding window":
        idx = recent.expand(B, n_kv_heads, budget)
    elif name == "StreamingLLM":
        idx = torch.cat([torch.arange(SINKS), torch.arange(S - budget + SINKS, S)]).expand(B, n_kv_heads, budget)
    elif name == "H2O":
        n_recent = budget // 2
        heavy = record.received.view(B, n_kv_heads, H // n_kv_heads, S).sum(2)  # (B, G, S)
        idx = torch.cat(
            [
                _top(heavy, budget - n_recent, S - n_recent),
                torch.arange(S - n_recent, S).expand(B, n_kv_heads, n_recent),
            ],
            -1,
        )
    elif name == "SnapKV":
        n_obs = min(OBSERVED, budget)
        votes = record.observed.view(B, n_kv_heads, H // n_kv_heads, S).sum(2)  # (B, G, S)
        votes = torch.nn.functional.max_pool1d(votes, POOL, stride=1, padding=POOL // 2)  # (B, G, S)
        idx = torch.cat(
            [_top(votes, budget - n_obs, S - n_obs), torch.arange(S - n_obs, S).expand(B, n_kv_heads, n_obs)], -1
        )
    else:
        raise ValueError(f"unknown eviction method {name!r}; choose one of {', '.join(EVICTION)}.")
    return idx.sort(-1).values


def quantize_cache(cache: KVCache, scheme: str) -> tuple[KVCache, int]:
    """The cache as its quantizer stores it (dequantized to compute with) and the bytes stored (nbytes)."""
    p = quant.preset(scheme)
    qk, qv = p.quantize(cache.k, "key"), p.quantize(cache.v, "value")
    return KVCache(qk.dequantize(), qv.dequantize(), cache.seen), qk.nbytes + qv.nbytes


@dataclass(frozen=True)
class Prefill:
    caches: list  # KVCache per layer, fp32
    records: list  # LayerRecord per layer


def prefill(lm: smollm.SmolLM, ids: Tensor) -> Prefill:
    out = lm.model(ids, record=True, last=1)
    return Prefill(out.caches, out.records)


@lru_cache(maxsize=1)
def calibration(tokens: int = CALIBRATION_TOKENS) -> tuple[Calibration, ...]:
    """Per-layer calibration (input covariance, S_2-norm pair scores) from the calibration text (Macbeth)."""
    lm = smollm.load()
    ids = smollm.text_ids(lm, smollm.CALIBRATION)[:, :tokens]
    records = lm.model(ids, record=True, last=1).records
    out = tuple(calibrate(b.attn, r.x) for b, r in zip(lm.model.blocks, records, strict=True))
    del records
    smollm.trim_heap()
    return out


@lru_cache(maxsize=2)
def converted(name: str, rank: int, pairs: int) -> tuple[ConvertedMLA, ...]:
    """Every layer of the model converted to MLA of latent rank `rank` keeping `pairs` RoPE pairs per kv head
    (chosen by S_2-norm on the calibration text), by SVD or whitened SVD."""
    if name not in LOW_RANK:
        raise ValueError(f"unknown low-rank method {name!r}; choose one of {', '.join(LOW_RANK)}.")
    lm, cal = smollm.load(), calibration()
    return tuple(
        ConvertedMLA(b.attn, rank, pairs, c, whiten=name == "whitened SVD")
        for b, c in zip(lm.model.blocks, cal, strict=True)
    )


def compress(lm: smollm.SmolLM, pre: Prefill, method: Method) -> tuple[list, tuple | None, int]:
    """(caches, attention layers to read them with or None for the model's own, bytes stored)."""
    G = lm.cfg.n_kv_heads
    if method.family == "none":
        if method.name == "fp32":
            return pre.caches, None, sum(c.k.nbytes + c.v.nbytes for c in pre.caches)
        caches = [KVCache(_bf16(c.k), _bf16(c.v), c.seen) for c in pre.caches]
        return caches, None, sum(c.k.nbytes + c.v.nbytes for c in pre.caches) // 2
    if method.family == "quantization":
        pairs = [quantize_cache(c, method.name) for c in pre.caches]
        return [c for c, _ in pairs], None, sum(b for _, b in pairs)
    if method.family == "eviction":
        caches = [
            keep(c, eviction_indices(method.name, method.setting, r, G))
            for c, r in zip(pre.caches, pre.records, strict=True)
        ]
        return caches, None, sum(c.k.nbytes + c.v.nbytes for c in caches) // 2  # held in bf16
    layers = converted(method.name, method.setting, method.pairs)
    caches = []
    for layer, r in zip(layers, pre.records, strict=True):
        lat = layer.prefill_cache(r.x)
        caches.append(LatentCache(_bf16(lat.c_kv), _bf16(lat.k_pe), lat.seen))
    return caches, layers, sum(c.c_kv.nbytes + c.k_pe.nbytes for c in caches) // 2


# ----------------------------------------------------------------------------- scoring


@dataclass(frozen=True)
class Scores:
    """Sums over scored tokens (so windows add up), and the count."""

    nll: float
    kl: float
    agree: int
    tokens: int

    def __add__(self, o: Scores) -> Scores:
        return Scores(self.nll + o.nll, self.kl + o.kl, self.agree + o.agree, self.tokens + o.tokens)

    @property
    def perplexity(self) -> float:
        return math.exp(self.nll / self.tokens)


def score(logits: Tensor, ref_logits: Tensor, targets: Tensor) -> Scores:
    """logits, ref_logits (1, M, V) predicting targets (1, M)."""
    logp, ref = logits[0].double().log_softmax(-1), ref_logits[0].double().log_softmax(-1)
    nll = -logp.gather(-1, targets[0, :, None]).sum()
    kl = (ref.exp() * (ref - logp)).sum()
    agree = (logp.argmax(-1) == ref.argmax(-1)).sum()
    return Scores(float(nll), float(kl), int(agree), targets.shape[1])


def windows(lm: smollm.SmolLM, n: int = WINDOWS, context: int = CONTEXT, scored: int = SCORED) -> list[Tensor]:
    """n consecutive windows (1, P + M + 1) of the held-out text."""
    ids = smollm.text_ids(lm)
    size = context + scored + 1
    if ids.shape[1] < n * size:
        raise ValueError(f"the held-out text has {ids.shape[1]:,} tokens, fewer than {n} windows of {size:,}.")
    return [ids[:, i * size : (i + 1) * size] for i in range(n)]


def prefill_window(lm: smollm.SmolLM, window: Tensor, context: int = CONTEXT) -> tuple[Prefill, Tensor]:
    """A window's context prefilled, and the reference logits (uncompressed cache) of its scored tokens."""
    pre = prefill(lm, window[:, :context])
    return pre, lm.model(window[:, context:-1], pre.caches).logits


def measure(
    lm: smollm.SmolLM, window: Tensor, pre: Prefill, ref: Tensor, method: Method, context: int = CONTEXT
) -> tuple[Scores, int]:
    """One method on one prefilled window: its scores against the reference, and the bytes it stored."""
    caches, attn, nbytes = compress(lm, pre, method)
    logits = ref if method == REFERENCE else lm.model(window[:, context:-1], caches, attn=attn).logits
    return score(logits, ref, window[:, context + 1 :]), nbytes


def run_window(lm: smollm.SmolLM, window: Tensor, meths, context: int = CONTEXT) -> dict[str, tuple[Scores, int]]:
    """Scores and stored bytes of each method on one window (its first `context` tokens are the context)."""
    pre, ref = prefill_window(lm, window, context)
    return {m.label: measure(lm, window, pre, ref, m, context) for m in meths}


@lru_cache(maxsize=1)
def shipped() -> dict:
    """The sweep shipped with the app (read once per process; callers must not modify it)."""
    return json.loads(SWEEP.read_text())


def frame(sweep: dict) -> pd.DataFrame:
    """One row per method of a sweep (scripts/real_sweep.py's JSON, or a live run in the same shape): bytes per
    token from the engine's accounting of the method's spec (at the quality context and at each passkey
    context), perplexity and its increase over the uncompressed cache, KL, top-1 agreement, passkey success."""
    spec = from_hf_config(sweep["config"], name="SmolLM2-135M-Instruct")
    context = sweep["protocol"]["context"]
    quality = {
        label: sum((Scores(*w[:4]) for w in rows[1:]), Scores(*rows[0][:4])) for label, rows in sweep["quality"].items()
    }
    base = quality[REFERENCE.label].perplexity
    bf16 = cache_bytes(spec, Method("none", "bf16"), context)
    rows = []
    for m in (Method(d["family"], d["name"], d["setting"], d["pairs"]) for d in sweep["methods"]):
        if m.label not in quality:
            continue
        s, nbytes = quality[m.label], cache_bytes(spec, m, context)
        row = {
            "family": m.family,
            "series": m.series,
            "method": m.label,
            "bytes_per_token": nbytes / context,
            "vs_bf16": nbytes / bf16,
            "perplexity": s.perplexity,
            "ppl_increase": s.perplexity - base,
            "kl": s.kl / s.tokens,
            "top1": s.agree / s.tokens,
            "tokens": s.tokens,
        }
        for n, trials in sweep.get("passkey", {}).get(m.label, {}).items():
            row[f"passkey_{n}"] = sum(bool(t[0]) for t in trials) / len(trials)
            row[f"bytes_per_token_{n}"] = cache_bytes(spec, m, int(n)) / int(n)
        rows.append(row)
    return pd.DataFrame(rows)


def bytes_formula(spec: ModelSpec, method: Method, context: int = CONTEXT) -> str:
    """The method's cache bytes per token as LaTeX, with this model's numbers in it (the engine's accounting)."""
    a, n_layers = spec.attention[0], spec.n_layers
    G, D = a.n_kv_heads, a.head_dim
    per_token = cache_bytes(spec, method, context) / context
    head = rf"\text{{bytes/token}} = {n_layers}\ \text{{layers}} \times "
    if method.family == "none":
        b = 4 if method.name == "fp32" else 2
        return head + rf"2 \times {G}\ \text{{heads}} \times {D} \times {b}\,\text{{B}} = {per_token:,.0f}\,\text{{B}}"
    if method.family == "eviction":
        k = method.setting
        return head + (
            rf"2 \times {G} \times {D} \times 2\,\text{{B}} \times "
            rf"\frac{{{k}\ \text{{kept}}}}{{{context:,}\ \text{{tokens}}}}"
            rf" = {per_token:,.0f}\,\text{{B}}"
        )
    if method.family == "low rank":
        return head + (
            rf"(d_c + G \cdot 2p) \times 2\,\text{{B}} = "
            rf"{n_layers} \times ({method.setting} + {G} \cdot {2 * method.pairs})"
            rf" \times 2\,\text{{B}} = {per_token:,.0f}\,\text{{B}}"
        )
    p = quant.preset(method.name)
    shape = (1, G, context, D)
    return head + (
        rf"\frac{{\text{{packed}}_K + \text{{packed}}_V\ ({G} \times {context:,} \times {D})}}{{{context:,}}}"
        rf" = {n_layers} \times \frac{{{p.packed_bytes(shape):,}\,\text{{B}}}}{{{context:,}}}"
        rf" = {per_token:,.0f}\,\text{{B}}"
    )


def live(lm: smollm.SmolLM, method: Method, window: int = 0) -> tuple[Scores, int]:
    """The method measured now on one window of the held-out text (what the shipped sweep holds for it)."""
    got = run_window(lm, windows(lm, window + 1)[window], [REFERENCE, method])
    smollm.trim_heap()
    return got[method.label]
