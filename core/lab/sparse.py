"""Sparse and compressed attention, run small and real: what DeepSeek V3.2's indexer selects, what each
DeepSeek V4 layer type lets a query see, and where the FLOPs of a decoded token go.

Plain data (DataFrames) for the "Sparse & compressed attention" page; the layers are core.layers'
DSAttention and core.v4_layers' CompressedAttention, the costs core.accounting's.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch

from core.accounting import totals as acc
from core.lab.inside import text_input
from core.layers.attention import DSAttention
from core.layers.compressed import CompressedAttention
from core.model.specs import CompressedSpec, DSASpec, ModelSpec

D_MODEL = 64


@dataclass(frozen=True)
class SmallSparse:
    """Sizes of the small layers the page runs (real math, toy width)."""

    tokens: int = 64  # T
    index_topk: int = 8  # DSA and CSA top-k
    ratio: int = 4  # CSA compress ratio (HCA uses `hca_ratio`)
    hca_ratio: int = 16
    window: int = 8  # V4 sliding window
    seed: int = 0

    def __post_init__(self) -> None:
        if not 2 <= self.tokens <= 512:
            raise ValueError("tokens must be between 2 and 512 for the small layers.")
        if self.index_topk < 1 or self.window < 1 or self.ratio < 2 or self.hca_ratio < 2:
            raise ValueError("top-k and window must be at least 1, compress ratios at least 2.")
        if self.hca_ratio == 4:
            raise ValueError("an HCA ratio of 4 would make a CSA layer: DeepSeek V4 indexes the ratio-4 layers.")


def _input(cfg: SmallSparse, source: str) -> torch.Tensor:
    if source == "text":
        return text_input(cfg.tokens, D_MODEL, cfg.seed)
    g = torch.Generator().manual_seed(cfg.seed + 99)
    return torch.randn(1, cfg.tokens, D_MODEL, generator=g, dtype=torch.float64)


def dsa_spec(cfg: SmallSparse) -> DSASpec:
    return DSASpec(4, 32, 16, 8, 16, q_lora_rank=32, index_n_heads=4, index_head_dim=16, index_topk=cfg.index_topk)


def dsa_selection(cfg: SmallSparse, source: str = "random") -> pd.DataFrame:
    """Long table (query, key, score, selected) of a real DSA layer's lightning indexer on T tokens:
    I(t,s) = sum_j w_tj ReLU(q_tj . k_s), causal; each query keeps its top-k keys."""
    layer = DSAttention(dsa_spec(cfg), D_MODEL, seed=cfg.seed, device="cpu", dtype=torch.float64)
    x = _input(cfg, source)
    with torch.no_grad():
        pos = torch.arange(cfg.tokens)
        _, cache = layer(x)
        _, q_in = layer.query(x)
        scores = layer.index_scores(x, q_in if q_in is not None else x, cache.k_index, pos)[0]  # (T, S)
        sel = layer.selected(x)[0]  # (T, K)
    chosen = torch.zeros_like(scores, dtype=torch.bool)
    chosen.scatter_(1, sel, True)
    chosen &= torch.isfinite(scores)
    rows = []
    for t in range(cfg.tokens):
        for s in range(t + 1):
            rows.append({"query": t, "key": s, "score": float(scores[t, s]), "selected": bool(chosen[t, s])})
    return pd.DataFrame(rows)


def v4_spec(cfg: SmallSparse, kind: str) -> CompressedSpec:
    if kind not in ("CSA", "HCA", "SWA"):
        raise ValueError(f"the V4 layer type must be CSA, HCA or SWA, got {kind!r}.")
    ratio = {"CSA": cfg.ratio, "HCA": cfg.hca_ratio, "SWA": 0}[kind]
    index = dict(index_n_heads=2, index_head_dim=8, index_topk=cfg.index_topk) if kind == "CSA" else {}
    if kind == "CSA" and ratio != 4:
        raise ValueError("CSA layers compress by 4 (DeepSeek V4); other ratios are HCA.")
    return CompressedSpec(4, 16, 4, ratio, cfg.window, q_lora_rank=16, o_groups=2, o_lora_rank=8, **index)


def v4_visibility(cfg: SmallSparse, kind: str, source: str = "random") -> pd.DataFrame:
    """Long table (query, token, how) of what a query of a real V4 layer can still see of each original
    token: "raw (window)", "in a selected entry" (CSA top-k, or every complete HCA entry), "in an entry
    not selected" (CSA), or nothing (left out). Entry j is drawn over tokens [m j, m j + m - 1]; CSA
    entries also pool the previous 4 tokens through their overlapping half."""
    spec = v4_spec(cfg, kind)
    layer = CompressedAttention(spec, D_MODEL, seed=cfg.seed, device="cpu", dtype=torch.float64)
    with torch.no_grad():
        tr = layer.trace(_input(cfg, source))
    m, w = spec.compress_ratio, spec.sliding_window
    rows = []
    for q in range(cfg.tokens):
        used = {int(e) for e in tr.entry_idx[0, q].tolist() if e >= 0}
        complete = (q + 1) // m if m else 0
        for t in range(q + 1):
            if q - t < w:
                how = "raw (window)"
            elif m and t // m < complete and t // m in used:
                how = "in a selected entry"
            elif m and t // m < complete:
                how = "in an entry not selected"
            else:
                continue
            rows.append({"query": q, "token": t, "how": how})
    return pd.DataFrame(rows)


def flops_vs_context(specs: dict[str, ModelSpec], contexts: list[int]) -> pd.DataFrame:
    """Per decoded token, all layers: indexer scoring, attention core (scores + mixing) and the rest of
    the model (2 x active matmul weights), vs context: where the O(N) indexer term takes over."""
    rows = []
    for label, spec in specs.items():
        rest = 2 * acc.param_count(spec).matmul_active
        for n in contexts:
            ix = sum(acc.indexed_rows(a, n) * acc.index_flops_per_row(a) for a in spec.attention)
            core = sum(acc.decode_core_flops(a, n) for a in spec.attention) - ix
            for part, v in (("indexer", ix), ("attention core", core), ("weights (2 x active params)", rest)):
                rows.append({"model": label, "context": n, "part": part, "flops": v})
    return pd.DataFrame(rows)


def claim_steps(v32: ModelSpec, v4: ModelSpec, context: int = 1_048_576) -> pd.DataFrame:
    """The V4 vs V3.2 numbers traced to their causes, per decoded token at `context`: KV cache in bf16 and
    in production formats by layer type, and FLOPs by part."""
    rows = []
    for precision, (dtype, layout) in {"bf16": ("bf16", "latent"), "production": ("bf16", "fp8_ds_mla")}.items():
        for label, spec in (("V3.2", v32), ("V4-Pro", v4)):
            for kind, b in acc.kv_cache(spec, context, 1, dtype, layout).by_tensor().items():
                rows.append(
                    {"what": "KV cache bytes", "precision": precision, "model": label, "part": kind, "value": b}
                )
    for label, spec in (("V3.2", v32), ("V4-Pro", v4)):
        parts = flops_vs_context({label: spec}, [context])
        for _, r in parts.iterrows():
            rows.append({"what": "FLOPs per token", "precision": "-", "model": label, "part": r.part, "value": r.flops})
        proj = sum(2 * acc.attention_params(a, spec.hidden_size).matmul for a in spec.attention)
        rows.append(
            {"what": "FLOPs per token", "precision": "-", "model": label, "part": "of which attention projections",
             "value": proj}
        )  # fmt: skip
    return pd.DataFrame(rows)
