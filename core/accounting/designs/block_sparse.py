"""Block-sparse GQA with an indexer (MiniMax-M3's sparse layers; vLLM `models/minimax_m3` MiniMaxM3Indexer and
MiniMaxM3IndexerCache, HF `modeling_minimax_m3_vl.py` MiniMaxM3VLIndexer and build_block_mask).

Per layer and token: the keys and values of the GQA layer (every token is cached) plus one indexer key of
d^I, stored in the indexer's own dtype (bf16 by default, whatever the KV cache dtype). A decoded query at
context N scores all N indexer keys (H^I heads of d^I: 2 H^I d^I FLOPs each), keeps the best k blocks of B
tokens per key/value head, its own last (partial) block among them, and attends to their tokens:

    attended(N) = N                          when N <= k B
                = (k - 1) B + ((N - 1) mod B + 1)   otherwise
"""

from __future__ import annotations

from dataclasses import replace

from core.accounting.base import CacheRows, Design, LatexTerm, Params, design_of, register
from core.model.dtypes import StorageFormat, cache_dtype
from core.model.specs import BlockSparseSpec


def attended(spec: BlockSparseSpec, context: int) -> int:
    k, b = spec.topk_blocks, spec.block_size
    if context <= k * b:
        return context
    return (k - 1) * b + (context - 1) % b + 1


def _attended_sum(spec: BlockSparseSpec, t: int) -> int:
    """sum of attended(p) for p = 1..t, in closed form (t may be a million)."""
    k, b = spec.topk_blocks, spec.block_size
    full = min(t, k * b)
    s = full * (full + 1) // 2
    if t > k * b:
        q, r = divmod(t - k * b, b)  # k B is a whole number of blocks, so (p - 1) mod B + 1 cycles 1..B
        s += (t - k * b) * (k - 1) * b + q * b * (b + 1) // 2 + r * (r + 1) // 2
    return s


@register(BlockSparseSpec)
class BlockSparseDesign(Design):
    def _index_bytes(self, attn: BlockSparseSpec) -> int:
        return cache_dtype(attn.index_dtype).vector_bytes(attn.index_head_dim)

    def cache_rows(self, attn: BlockSparseSpec, context: int, fmt: StorageFormat, layout: str) -> list[CacheRows]:
        kv = design_of(attn.attention).cache_rows(attn.attention, context, fmt, "latent")
        return kv + [CacheRows("indexer keys", context, attn.index_head_dim, self._index_bytes(attn))]

    def read_rows(self, attn: BlockSparseSpec, context: int, rows: CacheRows) -> int:
        """The indexer reads every key; attention only the tokens of the chosen blocks."""
        if rows.tensor == "indexer keys":
            return rows.rows
        return rows.rows * attended(attn, context) // max(context, 1)

    def attended(self, attn: BlockSparseSpec, context: int) -> int:
        return attended(attn, context)

    def indexed_rows(self, attn: BlockSparseSpec, context: int) -> int:
        return context

    def index_flops_per_row(self, attn: BlockSparseSpec) -> int:
        """2 H^I d^I: each indexer head's dot product with the key (the block max is not a matmul)."""
        return 2 * attn.index_n_heads * attn.index_head_dim

    def pair_flops(self, attn: BlockSparseSpec, mode: str) -> int:
        return design_of(attn.attention).pair_flops(attn.attention, mode)

    def prefill_core_flops(self, attn: BlockSparseSpec, n_tokens: int, mode: str, causal: bool) -> int:
        t, pf, ix = n_tokens, self.pair_flops(attn, mode), self.index_flops_per_row(attn)
        if not causal:
            return t * attended(attn, t) * pf + t * t * ix
        return _attended_sum(attn, t) * pf + t * (t + 1) // 2 * ix

    def params(self, attn: BlockSparseSpec, hidden: int) -> Params:
        """The GQA block, plus the indexer: index_q [H^I d^I, E], index_k [d^I, E] (one key head shared by
        the index heads) and RMS norms of d^I on both."""
        index = Params(
            hidden * attn.index_n_heads * attn.index_head_dim + hidden * attn.index_head_dim, 2 * attn.index_head_dim
        )
        return design_of(attn.attention).params(attn.attention, hidden) + index

    def latex_terms(self, attn: BlockSparseSpec, fmt: StorageFormat, layout: str) -> list[LatexTerm]:
        kv = design_of(attn.attention).latex_terms(attn.attention, fmt, "latent")
        return kv + [LatexTerm(r"d^I\,b_I", self._index_bytes(attn), "N")]

    def vllm_kind(self, attn: BlockSparseSpec) -> tuple:
        """vLLM's FullAttentionSpec for the keys and values (every token is kept), beside the indexer cache."""
        return ("full",)

    def tp_shard(self, attn: BlockSparseSpec, tp: int) -> BlockSparseSpec:
        """The attention heads split as GQA's; the indexer (its one key head and its query heads) is
        replicated on every rank, as vLLM keeps the index key."""
        return replace(attn, attention=design_of(attn.attention).tp_shard(attn.attention, tp))

    def describe(self, attn: BlockSparseSpec, layers: str, multi: bool) -> str:
        a = attn
        budget = a.topk_blocks * a.block_size
        return (
            f"{design_of(a.attention).describe(a.attention, layers, False).rstrip('.')} ({layers}); block-sparse: "
            "every token "
            f"also caches a {a.index_head_dim}-wide indexer key ({a.index_dtype}), and each query attends only to "
            f"the {a.topk_blocks} best blocks of {a.block_size} tokens ({budget:,} "
            f"tokens, its own block included) that a {a.index_n_heads}-head indexer picks from all of them."
        )
