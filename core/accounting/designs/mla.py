"""DeepSeek MLA (V2/V3, arXiv 2405.04434) and DSA, MLA plus V3.2's lightning indexer.

Cache layouts: "latent" (DeepSeek's absorbed inference: c_KV + shared rope key, the default),
"materialised" (per-head K and V, as HF's modelling code caches), "fp8_ds_mla" (vLLM's DeepSeek fp8
layout: 656 B per token per layer for V3 shapes, and V3.2's fp8 indexer key at 132 B).
"""

from __future__ import annotations

from dataclasses import replace
from math import ceil

from core.accounting.base import (
    CacheRows,
    Design,
    LatexTerm,
    Params,
    check_mode,
    latex_int,
    latex_vectors,
    register,
    sum_min,
    tp_split,
)
from core.model.dtypes import StorageFormat
from core.model.specs import DSASpec, MLASpec


def fp8_ds_mla_bytes(kv_lora_rank: int, qk_rope_head_dim: int) -> int:
    """vLLM's fp8_ds_mla: latent in fp8 e4m3 with an fp32 scale per 128 values, rope key in bf16.
    512 + 4*4 + 2*64 = 656 bytes for DeepSeek-V3 shapes (vllm/attention/backends/mla/flashmla_sparse)."""
    return kv_lora_rank + 4 * ceil(kv_lora_rank / 128) + 2 * qk_rope_head_dim


def fp8_scaled_bytes(width: int) -> int:
    """An fp8 vector with an fp32 scale per 128 values: V3.2's indexer key cache (128 + 4 B)."""
    return width + 4 * ceil(width / 128)


@register(MLASpec)
class MLADesign(Design):
    layouts = ("latent", "materialised", "fp8_ds_mla")

    def cache_rows(self, attn: MLASpec, context: int, fmt: StorageFormat, layout: str) -> list[CacheRows]:
        n = context
        if layout == "materialised":
            k, v = attn.qk_head_dim, attn.v_head_dim
            return [
                CacheRows("keys", n * attn.n_heads, k, fmt.vector_bytes(k)),
                CacheRows("values", n * attn.n_heads, v, fmt.vector_bytes(v)),
            ]
        if layout == "fp8_ds_mla":
            w = attn.kv_lora_rank + attn.qk_rope_head_dim
            return [
                CacheRows(
                    "latent + rope key (fp8_ds_mla)", n, w, fp8_ds_mla_bytes(attn.kv_lora_rank, attn.qk_rope_head_dim)
                )
            ]
        out = [CacheRows("latent c_KV", n, attn.kv_lora_rank, fmt.vector_bytes(attn.kv_lora_rank))]
        if attn.qk_rope_head_dim:
            out.append(CacheRows("rope key", n, attn.qk_rope_head_dim, fmt.vector_bytes(attn.qk_rope_head_dim)))
        return out

    def attended(self, attn: MLASpec, context: int) -> int:
        return context

    def pair_flops(self, attn: MLASpec, mode: str) -> int:
        """materialised 2 n_h (d_nope + d_r + d_v); absorbed 2 n_h (d_c + d_r + d_c)."""
        check_mode(mode)
        if mode == "materialised":
            return 2 * attn.n_heads * (attn.qk_head_dim + attn.v_head_dim)
        return 2 * attn.n_heads * (2 * attn.kv_lora_rank + attn.qk_rope_head_dim)

    def prefill_core_flops(self, attn: MLASpec, n_tokens: int, mode: str, causal: bool) -> int:
        t = n_tokens
        return (t * (t + 1) // 2 if causal else t * t) * self.pair_flops(attn, mode)

    def params(self, attn: MLASpec, hidden: int) -> Params:
        h = hidden
        qk = attn.n_heads * attn.qk_head_dim
        if attn.q_lora_rank:
            p = Params(h * attn.q_lora_rank + attn.q_lora_rank * qk, attn.q_lora_rank)
        else:
            p = Params(h * qk)
        p += Params(h * (attn.kv_lora_rank + attn.qk_rope_head_dim), attn.kv_lora_rank)  # W^DKV, W^KR, norm
        p += Params(attn.kv_lora_rank * attn.n_heads * (attn.qk_nope_head_dim + attn.v_head_dim))  # W^UK, W^UV
        return p + Params(attn.n_heads * attn.v_head_dim * h)  # W^O

    def _symbols(self, layout: str) -> str:
        """Bytes one token leaves in one layer, in symbols."""
        if layout == "materialised":
            return r"n_h\,(d_h + d_h^R + d_v)\,b"
        if layout == "fp8_ds_mla":
            return r"(d_c + 4 \lceil d_c/128 \rceil + 2\,d_h^R)"
        return r"(d_c + d_h^R)\,b"

    def latex_terms(self, attn: MLASpec, fmt: StorageFormat, layout: str) -> list[LatexTerm]:
        """Every tensor keeps one vector (per head, materialised) per token: one term counting N."""
        per_token = sum(r.rows * r.bytes_per_row for r in self.cache_rows(attn, 1, fmt, layout))
        return [LatexTerm(self._symbols(layout), per_token, "N")]

    def _vectors(self, attn: MLASpec, layout: str) -> list[tuple[list[str], list[int]]] | None:
        """The vectors one token leaves in one layer (per head when materialised), as `latex_vectors` takes
        them; None when the layer's cache is not one closed form (DSA materialised: per-head K and V plus one
        indexer key)."""
        rope = (["d_h^R"], [attn.qk_rope_head_dim]) if attn.qk_rope_head_dim else None
        if layout == "materialised":
            key = (
                (["d_h", "d_h^R"], [attn.qk_nope_head_dim, attn.qk_rope_head_dim])
                if rope
                else (["d_h"], [attn.qk_nope_head_dim])
            )
            return [key, (["d_v"], [attn.v_head_dim])]
        return [(["d_c"], [attn.kv_lora_rank])] + ([rope] if rope else [])

    def _fp8_ds_mla(self, attn: MLASpec) -> tuple[str, str]:
        """vLLM's fp8_ds_mla, whatever the cache dtype: fp8 latent, an fp32 scale per 128 of its values, bf16
        rope key (`fp8_ds_mla_bytes`), in symbols and numbers."""
        c, r = attn.kv_lora_rank, attn.qk_rope_head_dim
        return (
            r"(d_c + 4 \lceil d_c/128 \rceil + 2\,d_h^R)",
            rf"({latex_int(c)} + 4 \times {ceil(c / 128)} + 2 \times {r})",
        )

    def latex_model(self, layers: tuple[MLASpec, ...], fmt: StorageFormat, layout: str) -> str | None:
        """When every layer is the same, in the chosen layout: latent l (d_c + d_h^R) b (DeepSeek-V2 paper
        Table 1; DSA adds d^I), materialised l n_h (d_h + d_h^R + d_v) b, fp8_ds_mla l (d_c + 4 ceil(d_c/128) +
        2 d_h^R) (the cache dtype does not apply); a format with scales adds them (`latex_vectors`)."""
        if len(set(layers)) > 1:
            return None
        a, n = layers[0], len(layers)
        if layout == "fp8_ds_mla":
            sym, num = self._fp8_ds_mla(a)
        else:
            vectors = self._vectors(a, layout)
            got = latex_vectors(vectors, fmt) if vectors else None
            if got is None:
                return None
            sym, num = got
        if layout == "materialised":
            return rf"l\,n_h\,{sym} = {n} \times {a.n_heads} \times {num}"
        return rf"l\,{sym} = {n} \times {num}"

    def vllm_kind(self, attn: MLASpec) -> tuple:
        """vLLM's MLAAttentionSpec, a full-attention spec (DSA: plus its indexer key, one more full page)."""
        return ("full",)

    def tp_shard(self, attn: MLASpec, tp: int) -> MLASpec:
        """Query heads (and W^UK, W^UV, W^O with them) split over the ranks; the latent and rope key are one
        entry shared by all heads, so every rank caches them whole (vLLM's MLA: one KV head per rank), and
        the down-projections W^DQ, W^DKV (and DSA's indexer) are replicated."""
        return replace(attn, n_heads=tp_split("the attention heads", attn.n_heads, tp))

    def describe(self, attn: MLASpec, layers: str, multi: bool) -> str:
        a = attn
        where = f" ({layers})" if multi else ""
        return (
            f"MLA{where}: caches a {a.kv_lora_rank}-wide latent plus a {a.qk_rope_head_dim}-wide rope key per token "
            f"per layer, shared by all {a.n_heads} heads; keys and values ({a.qk_head_dim} and {a.v_head_dim} wide "
            "per head) are rebuilt from the latent, or folded into the query and output projections (absorbed)."
        )


@register(DSASpec)
class DSADesign(MLADesign):
    def cache_rows(self, attn: DSASpec, context: int, fmt: StorageFormat, layout: str) -> list[CacheRows]:
        d = attn.index_head_dim
        row_b = fp8_scaled_bytes(d) if layout == "fp8_ds_mla" else fmt.vector_bytes(d)
        index = [CacheRows("indexer keys", context, d, row_b)] if attn.own_indexer else []
        return super().cache_rows(attn, context, fmt, layout) + index

    def latex_terms(self, attn: DSASpec, fmt: StorageFormat, layout: str) -> list[LatexTerm]:
        if attn.own_indexer:
            return super().latex_terms(attn, fmt, layout)
        per_token = sum(r.rows * r.bytes_per_row for r in self.cache_rows(attn, 1, fmt, layout))
        return [LatexTerm(MLADesign._symbols(self, layout), per_token, "N")]

    def _vectors(self, attn: DSASpec, layout: str) -> list[tuple[list[str], list[int]]] | None:
        if not attn.own_indexer:
            return super()._vectors(attn, layout)
        if layout == "materialised":
            return None
        return super()._vectors(attn, layout) + [(["d^I"], [attn.index_head_dim])]

    def _fp8_ds_mla(self, attn: DSASpec) -> tuple[str, str]:
        """The MLA entry plus, with its own indexer, V3.2's fp8 indexer key with an fp32 scale per 128 values."""
        sym, num = super()._fp8_ds_mla(attn)
        if not attn.own_indexer:
            return sym, num
        d = attn.index_head_dim
        return (
            sym[:-1] + r" + d^I + 4 \lceil d^I/128 \rceil)",
            num[:-1] + rf" + {latex_int(d)} + 4 \times {ceil(d / 128)})",
        )

    def _symbols(self, layout: str) -> str:
        if layout == "materialised":
            return super()._symbols(layout) + r" + d^I\,b"
        if layout == "fp8_ds_mla":
            return r"(d_c + 4 \lceil d_c/128 \rceil + 2\,d_h^R + d^I + 4 \lceil d^I/128 \rceil)"
        return r"(d_c + d_h^R + d^I)\,b"

    def read_rows(self, attn: DSASpec, context: int, rows: CacheRows) -> int:
        """The indexer reads every key; attention reads only the top-k tokens."""
        if rows.tensor == "indexer keys":
            return rows.rows
        return rows.rows * min(context, attn.index_topk) // max(context, 1)

    def attended(self, attn: DSASpec, context: int) -> int:
        return min(context, attn.index_topk)

    def indexed_rows(self, attn: DSASpec, context: int) -> int:
        return context if attn.own_indexer else 0

    def index_flops_per_row(self, attn: DSASpec) -> int:
        """2 H^I d^I (the ReLU-weighted head sum is not a matmul and is not counted); 0 without an indexer."""
        return 2 * attn.index_n_heads * attn.index_head_dim if attn.own_indexer else 0

    def prefill_core_flops(self, attn: DSASpec, n_tokens: int, mode: str, causal: bool) -> int:
        t, pf, ix = n_tokens, self.pair_flops(attn, mode), self.index_flops_per_row(attn)
        if not causal:
            return t * min(t, attn.index_topk) * pf + t * t * ix
        return sum_min(1, t, attn.index_topk) * pf + t * (t + 1) // 2 * ix

    def params(self, attn: DSASpec, hidden: int) -> Params:
        q_in = attn.q_lora_rank or hidden
        if not attn.own_indexer:
            return super().params(attn, hidden)
        return super().params(attn, hidden) + Params(
            q_in * attn.index_n_heads * attn.index_head_dim
            + hidden * attn.index_head_dim
            + hidden * attn.index_n_heads,
            2 * attn.index_head_dim,
        )

    def describe(self, attn: DSASpec, layers: str, multi: bool) -> str:
        a = attn
        if not a.own_indexer:
            return (
                f"DSA with a shared index ({layers}): caches a {a.kv_lora_rank}-wide latent and a "
                f"{a.qk_rope_head_dim}-wide rope key per token per layer, no indexer key; each query attends to "
                f"the {a.index_topk:,} tokens an earlier layer's indexer chose."
            )
        return (
            f"DSA (MLA + lightning indexer): caches a {a.kv_lora_rank}-wide latent, a {a.qk_rope_head_dim}-wide "
            f"rope key and a {a.index_head_dim}-wide indexer key per token per layer; each query attends to at "
            f"most {a.index_topk:,} tokens chosen by a {a.index_n_heads}-head indexer that scores every token."
        )
