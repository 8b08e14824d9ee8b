"""The tables charts draw, computed from the accounting and the labs' arrays: the context grid, cache vs
context, memory per GPU, the cache's breakdown, a heatmap's cells and the Pareto frontier."""

from __future__ import annotations

import numpy as np
import pandas as pd

from core.accounting import totals as acc
from core.accounting.whatif import mla_layouts
from core.model.dtypes import LEGEND_WIDTH, cache_dtype_legend
from core.model.specs import MLASpec, ModelSpec

GIB = 2**30
CONTEXTS = [2**k for k in range(21)]  # the context grid of every page: 1, 2, 4, ..., 1M tokens


def cache_vs_context(
    models: dict[str, ModelSpec], contexts: list[int], kv_dtype: str = "bf16", batch: int = 1, layout: str = "latent"
) -> pd.DataFrame:
    """Long table: model, design, context, part ("KV cache", or "fixed state" for models with linear-attention
    or Mamba layers: the same at every context), bytes and GiB (columns kv_bytes, kv_gib)."""
    rows = []
    for label, spec in models.items():
        state = acc.state_bytes(spec, batch)
        for n in contexts:
            b = acc.kv_cache_bytes(spec, n, batch, kv_dtype, layout)
            rows.append(
                {
                    "model": label,
                    "design": spec.design,
                    "context": n,
                    "part": "KV cache",
                    "kv_bytes": b,
                    "kv_gib": b / GIB,
                }
            )
            if state:
                rows.append(
                    {
                        "model": label,
                        "design": spec.design,
                        "context": n,
                        "part": "fixed state",
                        "kv_bytes": state,
                        "kv_gib": state / GIB,
                    }
                )
    return pd.DataFrame(rows)


def dtype_legend(auto: dict[str, str], width: int = LEGEND_WIDTH) -> pd.DataFrame:
    """Every cache dtype the planner offers, one row each, "auto" first: bits per stored value, bits with
    scales included and bytes of one vector of `width` values (core.model.dtypes.cache_dtype_legend, the
    numbers the accounting multiplies by rows), the block one scale serves and what it stores. `auto` maps
    each planned model to the dtype "auto" means for it (core.accounting.planner.auto_kv_dtype)."""
    rows = {r.dtype: r for r in cache_dtype_legend(width)}
    picked = {d: [m for m, a in auto.items() if a == d] for d in dict.fromkeys(auto.values())}
    meant = "; ".join(f"{d} for {', '.join(ms)}" for d, ms in picked.items()) or "no model picked"
    out = []
    for name, r in [("auto", rows[next(iter(picked), "bf16")]), *rows.items()]:
        out.append(
            {
                "cache dtype": name,
                "bits per stored value": r.code_bits,
                "bits per value, scales included": r.bits_per_value,
                f"bytes per {width} values": r.vector_bytes,
                "one scale serves": r.block,
                "scale format": r.scale_format,
                "what it is": f"the model's own dtype, as vLLM's auto: {meant}" if name == "auto" else r.description,
            }
        )
    return pd.DataFrame(out)


LAYOUT_NAMES = {"materialised": "materialised (MHA of equal heads)", "latent": "latent", "fp8_ds_mla": "fp8_ds_mla"}


def mla_layout_table(spec: ModelSpec) -> pd.DataFrame:
    """One row per MLA cache layout of `spec`'s first MLA layer (core.accounting.whatif.mla_layouts): what one
    token stores in one layer, its bytes, the bytes over every MLA layer, and how many times smaller than the
    materialised layout (the MHA of equal heads) it is."""
    layers = [a for a in spec.attention if isinstance(a, MLASpec)]
    if not layers:
        raise ValueError(f"{spec.name} has no MLA layer.")
    costs = mla_layouts(layers[0])
    mha = next(c.bytes for c in costs if c.layout == "materialised")
    return pd.DataFrame(
        [
            {
                "layout": LAYOUT_NAMES[c.layout],
                "cache dtype": "fp8 latent, bf16 rope key" if c.layout == "fp8_ds_mla" else c.kv_dtype,
                "stored per token per layer": " + ".join(f"{t} {r:,} x {b:,} B" for t, r, b in c.tensors),
                "bytes per token per layer": c.bytes,
                f"bytes per token, {len(layers)} layers": len(layers) * c.bytes,
                "times smaller than MHA": mha / c.bytes,
            }
            for c in costs
        ]
    )


def memory_parts(plans: dict) -> pd.DataFrame:
    """Long table, one bar per model and pipeline stage, for ONE GPU of that stage: weights, KV cache
    (this GPU's share of its requests), fixed state (linear attention, Mamba; only where there is some),
    reserved, free or over (GiB). `plans` maps a model label to a core.accounting.planner.Plan."""
    rows = []
    for label, p in plans.items():
        for k, st in enumerate(p.stages):
            a, b = st.layers
            name = label if len(p.stages) == 1 else f"{label}, stage {k + 1} (layers {a}-{b - 1})"
            n = p.requests_per_group
            parts = {"weights": st.weights.total, "KV cache": n * (st.request_bytes - st.state_bytes)}
            if st.state_bytes:
                parts["fixed state"] = n * st.state_bytes
            parts["reserved"] = p.reserved_bytes
            free = st.weights.total + p.reserved_bytes + st.kv_budget_bytes - sum(parts.values())
            parts["free" if free >= 0 else "over capacity"] = abs(free)
            for order, (part, v) in enumerate(parts.items()):
                rows.append({"model": name, "part": part, "order": order, "bytes": v, "gib": v / GIB})
    return pd.DataFrame(rows)


def breakdown_table(specs: dict[str, ModelSpec], context: int, batch: int, kv_dtype: str, layout: str) -> pd.DataFrame:
    """Cache by layer type and tensor, per model (GiB), then the fixed-size state (linear attention, Mamba),
    whose rows do not depend on the context."""
    rows = []
    for label, spec in specs.items():
        terms = acc.kv_cache(spec, context, batch, kv_dtype, layout).terms + acc.state(spec, batch).terms
        for t in terms:
            rows.append(
                {
                    "model": label,
                    "layer type": t.layer_kind,
                    "tensor": t.tensor,
                    "part": f"{t.layer_kind} {t.tensor}",
                    "layers": t.n_layers,
                    "rows per layer": t.rows,
                    "bytes per row": t.bytes_per_row,
                    "bytes": t.bytes,
                    "gib": t.bytes / GIB,
                }
            )
    return pd.DataFrame(rows)


def heatmap_frame(probs, head: int, max_side: int = 128, block: int = 1) -> pd.DataFrame:
    """Long table (query, key, p) of one head's attention probabilities (H, T, S) array. Longer maps
    are averaged over square blocks so at most max_side x max_side cells reach the browser (query
    and key then index blocks: the first position of each block). `block`: the maps were already
    averaged over blocks of that many positions (core.lab.inside.block_average)."""
    p = probs[head]
    t, s = p.shape
    if block > 1:
        q_idx = [i * block for i in range(t) for _ in range(s)]
        k_idx = [j * block for _ in range(t) for j in range(s)]
        return pd.DataFrame({"query": q_idx, "key": k_idx, "p": [float(v) for v in p.reshape(-1)]})
    f = -(-max(t, s) // max_side)
    if f > 1:
        tt, ss = -(-t // f) * f, -(-s // f) * f
        padded = np.zeros((tt, ss), dtype=p.dtype)
        padded[:t, :s] = p
        p = padded.reshape(tt // f, f, ss // f, f).mean(axis=(1, 3))
        t, s = p.shape
        q_idx = [i * f for i in range(t) for _ in range(s)]
        k_idx = [j * f for _ in range(t) for j in range(s)]
        return pd.DataFrame({"query": q_idx, "key": k_idx, "p": [float(v) for v in p.reshape(-1)]})
    q_idx, k_idx = [i for i in range(t) for _ in range(s)], [j for _ in range(t) for j in range(s)]
    return pd.DataFrame({"query": q_idx, "key": k_idx, "p": [float(v) for v in p.reshape(-1)]})


def pareto_frontier(df: pd.DataFrame, x: str, y: str) -> pd.Series:
    """True for the rows no other row beats on both x (smaller) and y (smaller)."""
    a, b = df[x].to_numpy(float)[:, None], df[y].to_numpy(float)[:, None]  # this row (i) against every row (j)
    beaten = ((a.T <= a) & (b.T <= b) & ((a.T < a) | (b.T < b))).any(axis=1)
    return pd.Series(~beaten, index=df.index)
