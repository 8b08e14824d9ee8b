"""Layers with several sequence mixers (`ParallelSpec`): Falcon-H1 runs attention and Mamba-2 side by side
on every layer (HF `modeling_falcon_h1.py` FalconH1DecoderLayer); Zamba2's hybrid layers apply a shared
attention block before their Mamba-2 mixer (HF `modeling_zamba2.py` Zamba2HybridLayer), and each depth at
which the block is applied keeps its own keys and values (the cache is indexed by layer).

Everything is the sum over the mixers: each keeps its own cache rows and state, costs its own FLOPs and
holds its own weights; tensor parallelism shards each as it would alone.
"""

from __future__ import annotations

from core.accounting.base import CacheRows, Design, LatexTerm, Params, design_of, register
from core.model.dtypes import StorageFormat, cache_dtype
from core.model.specs import ParallelSpec


@register(ParallelSpec)
class ParallelDesign(Design):
    def cache_rows(self, attn: ParallelSpec, context: int, fmt: StorageFormat, layout: str) -> list[CacheRows]:
        return [r for p in attn.parts for r in _rows(p, context, fmt, layout)]

    def state_rows(self, attn: ParallelSpec) -> list[CacheRows]:
        return [r for p in attn.parts for r in design_of(p).state_rows(p)]

    def read_rows(self, attn: ParallelSpec, context: int, rows: CacheRows) -> int:
        for p in attn.parts:  # the mixer that keeps these rows says how many one token reads
            d = design_of(p)
            if any(r.tensor == rows.tensor for r in d.cache_rows(p, 1, cache_dtype("bf16"), "latent")):
                return d.read_rows(p, context, rows)
        return rows.rows

    def attended(self, attn: ParallelSpec, context: int) -> int:
        return sum(design_of(p).attended(p, context) for p in attn.parts)

    def indexed_rows(self, attn: ParallelSpec, context: int) -> int:
        return sum(design_of(p).indexed_rows(p, context) for p in attn.parts)

    def pair_flops(self, attn: ParallelSpec, mode: str) -> int:
        return sum(design_of(p).pair_flops(p, mode) for p in attn.parts)

    def decode_core_flops(self, attn: ParallelSpec, context: int, mode: str) -> int:
        return sum(design_of(p).decode_core_flops(p, context, mode) for p in attn.parts)

    def prefill_core_flops(self, attn: ParallelSpec, n_tokens: int, mode: str, causal: bool) -> int:
        return sum(design_of(p).prefill_core_flops(p, n_tokens, mode, causal) for p in attn.parts)

    def params(self, attn: ParallelSpec, hidden: int) -> Params:
        return sum((design_of(p).params(p, hidden) for p in attn.parts), Params(0))

    def tp_shard(self, attn: ParallelSpec, tp: int) -> ParallelSpec:
        return ParallelSpec(tuple(design_of(p).tp_shard(p, tp) for p in attn.parts), attn.sequential)

    def tp_params(self, attn: ParallelSpec, hidden: int, tp: int) -> Params:
        return sum((design_of(p).tp_params(p, hidden, tp) for p in attn.parts), Params(0))

    def latex_terms(self, attn: ParallelSpec, fmt: StorageFormat, layout: str) -> list[LatexTerm]:
        return [t for p in attn.parts for t in design_of(p).latex_terms(p, fmt, layout)]

    def vllm_kind(self, attn: ParallelSpec) -> None:
        """vLLM gives each mixer its own spec (an attention page and a Mamba state page per layer); the
        planner does not model that block by block."""
        return None

    def describe(self, attn: ParallelSpec, layers: str, multi: bool) -> str:
        parts = " ".join(design_of(p).describe(p, layers, multi) for p in attn.parts)
        return f"{attn.design} ({layers}), each mixer with its own cache or state: {parts}"


def _rows(p, context: int, fmt: StorageFormat, layout: str) -> list[CacheRows]:
    d = design_of(p)
    return d.cache_rows(p, context, fmt, layout if layout in d.layouts else "latent")
