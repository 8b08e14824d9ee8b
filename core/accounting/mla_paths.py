"""MLA's three ways to run a layer on new tokens, counted: FLOPs and cache bytes of each path, and where they
cross over. Pure arithmetic on an `MLASpec`; core.lab.measure times the same paths on this device.

- absorbed: caches the latent; W^UK folded into each query, W^UV into each output (DeepSeek's decode);
- materialised: caches per-head keys and values expanded from the latent once (DeepSeek's attn_impl
  "naive", Hugging Face's cache);
- expanded: caches the latent and expands every cached token's keys and values from it at every step (what
  prefill kernels do).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd

from core.accounting import totals as acc
from core.model.specs import DenseMLP, MLASpec, ModelSpec

# DeepSeek-V2-Lite's attention: hidden 2048, 16 heads, d_c 512, d_r 64, no query compression.
V2_LITE_MLA = MLASpec(n_heads=16, kv_lora_rank=512, qk_nope_head_dim=128, qk_rope_head_dim=64, v_head_dim=128)
PATHS = ("absorbed", "materialised", "expanded")


@dataclass(frozen=True)
class PathCost:
    """What one path costs at one point: FLOPs, and the cache bytes it reads."""

    flops: int
    bytes_read: int  # cache bytes


def mla_path_cost(
    spec: MLASpec, context: int, batch: int = 1, query_len: int = 1, path: str = "absorbed", kv_dtype: str = "bf16"
) -> PathCost:
    """FLOPs and cache bytes of one MLA layer taking `query_len` new tokens (T) of each of `batch` (B)
    sequences at `context` (N, new tokens included), from per-head queries to per-head outputs, as
    `decode_kernels.mla_attention` computes them (dense T x N scores; the causal mask does not save work):

    - absorbed (latent cache):  B T [2 H C (Dn + V) + N 2 H (2C + R)]; reads B N (C + R) b.
      2 H C Dn folds W^UK into each query, 2 H C V applies W^UV to each output.
    - materialised (per-head cache, DeepSeek's attn_impl "naive", HF's cache):
                                B T [2 H C (Dn + V) + N 2 H (Dn + R + V)]; reads B N H (Dn + R + V) b.
      2 H C (Dn + V) expands each new token's keys and values once, to cache them.
    - expanded (latent cache, keys and values expanded from it at every step, as prefill kernels do):
                                B [N 2 H C (Dn + V) + T N 2 H (Dn + R + V)]; reads B N (C + R) b.
    Projections shared by all paths (W^Q, W^DKV, W^O) are left out.
    """
    if path not in PATHS:
        raise ValueError(f"unknown MLA path {path!r}; choose one of {', '.join(PATHS)}.")
    if not 1 <= query_len <= context:
        raise ValueError(f"query_len ({query_len}) must be between 1 and the context ({context}).")
    H, C, V = spec.n_heads, spec.kv_lora_rank, spec.v_head_dim
    expand_one = 2 * H * C * (spec.qk_nope_head_dim + V)  # W^UK and W^UV on one token (or query/output)
    materialised_pair = acc.pair_flops(spec, "materialised")
    model = ModelSpec("MLA", "measure", 2048, 1, (spec,), (DenseMLP(1),))
    layout = "materialised" if path == "materialised" else "latent"
    bytes_read = batch * acc.cache_bytes_read(model, context, kv_dtype, layout)
    T, N = query_len, context
    if path == "absorbed":
        flops = batch * T * (expand_one + N * acc.pair_flops(spec, "absorbed"))
    elif path == "materialised":
        flops = batch * T * (expand_one + N * materialised_pair)
    else:
        flops = batch * (N * expand_one + T * N * materialised_pair)
    return PathCost(flops, bytes_read)


def query_len_crossover(spec: MLASpec, context: int) -> float:
    """The query length T* above which expanding from the latent costs fewer FLOPs than absorbing:
    T* = N C (Dn + V) / (C (Dn + V) + N (2C - Dn - V)), tending to C (Dn + V) / (2C - Dn - V) at long
    context (171 for DeepSeek-V2/V3 shapes, whatever the head count). inf if absorbing always wins."""
    a = spec.kv_lora_rank * (spec.qk_nope_head_dim + spec.v_head_dim)
    d = 2 * spec.kv_lora_rank - spec.qk_nope_head_dim - spec.v_head_dim
    den = a + context * d
    return context * a / den if den > 0 else math.inf


def mla_crossover(
    spec: MLASpec,
    contexts: Iterable[int],
    batches: Iterable[int] = (1,),
    query_lens: Iterable[int] = (1,),
    kv_dtype: str = "bf16",
    bandwidth: float | None = None,
    peak_flops: float | None = None,
) -> pd.DataFrame:
    """Analytic FLOPs and cache bytes of the three MLA paths (`mla_path_cost`) per (context, batch,
    query length), and which is cheaper:

    - `fewer_flops` compares the two paths that share the latent cache, absorbed vs expanded: the choice
      an engine makes per batch (DeepSeek and vLLM absorb for decode, expand for prefill). Absorbed
      wins below T* (`query_len_crossover`), expanded above.
    - `fewer_bytes` compares what is cached, absorbed (latent) vs materialised (per-head K/V):
      the latent is read at every point, H (Dn + R + V) / (C + R) times fewer bytes; materialised does fewer
      FLOPs at every point (2C + R vs Dn + R + V per pair and head) and pays for it in memory.
    Batch scales every path alike, so it moves no crossover. With `bandwidth` (bytes/s) and `peak_flops`
    (FLOP/s), each path also gets a roofline time max(bytes / bandwidth, FLOPs / peak) and `fastest`.
    """
    rows = []
    for n in contexts:
        for b in batches:
            for t in query_lens:
                if t > n:
                    continue
                row: dict = {"context": n, "batch": b, "query_len": t}
                for p in PATHS:
                    cost = mla_path_cost(spec, n, b, t, p, kv_dtype)
                    row[f"{p}_flops"], row[f"{p}_bytes"] = cost.flops, cost.bytes_read
                    if bandwidth and peak_flops:
                        row[f"{p}_seconds"] = max(cost.bytes_read / bandwidth, cost.flops / peak_flops)
                row["fewer_flops"] = "absorbed" if row["absorbed_flops"] <= row["expanded_flops"] else "expanded"
                row["fewer_bytes"] = (
                    "absorbed" if row["absorbed_bytes"] <= row["materialised_bytes"] else "materialised"
                )
                if bandwidth and peak_flops:
                    row["fastest"] = min(PATHS, key=lambda p: row[f"{p}_seconds"])
                rows.append(row)
    return pd.DataFrame(rows)
