"""MHA / GQA / MQA, optionally with a sliding window or chunked local attention (Llama-4).

Per layer and token: keys and values of n_kv heads of d_h (DeepSeek-V2 paper Table 1: 2 n_kv d_h).
A sliding-window layer keeps min(N, w) tokens. A chunked layer (Llama-4 `attention_chunk_size`) sees
only the tokens of its own chunk of c tokens, so it keeps at most c: the (N-1) mod c + 1 tokens of the
current chunk (vLLM's ChunkedLocalAttention frees the blocks of earlier chunks).
"""

from __future__ import annotations

from dataclasses import replace

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
from core.model.specs import GQASpec


def kept_tokens(attn: GQASpec, context: int) -> int:
    """Tokens a layer keeps (and the newest query attends to) at `context`."""
    if attn.sliding_window:
        return min(context, attn.sliding_window)
    if attn.chunk_size and context:
        return (context - 1) % attn.chunk_size + 1
    return context


def _chunked_pairs(t: int, c: int) -> int:
    """sum_{p=1}^{t} ((p-1) mod c + 1): full chunks contribute c(c+1)/2 each, then the partial one."""
    q, r = divmod(t, c)
    return q * c * (c + 1) // 2 + r * (r + 1) // 2


@register(GQASpec)
class GQADesign(Design):
    def cache_rows(self, attn: GQASpec, context: int, fmt: StorageFormat, layout: str) -> list[CacheRows]:
        rows = kept_tokens(attn, context) * attn.n_kv_heads
        k_b, v_b = fmt.vector_bytes(attn.head_dim), fmt.vector_bytes(attn.v_dim)
        return [CacheRows("keys", rows, attn.head_dim, k_b), CacheRows("values", rows, attn.v_dim, v_b)]

    def attended(self, attn: GQASpec, context: int) -> int:
        return kept_tokens(attn, context)

    def pair_flops(self, attn: GQASpec, mode: str) -> int:
        """2 n_h (d_qk + d_v)."""
        check_mode(mode)
        return 2 * attn.n_heads * (attn.head_dim + attn.v_dim)

    def prefill_core_flops(self, attn: GQASpec, n_tokens: int, mode: str, causal: bool) -> int:
        t, pf = n_tokens, self.pair_flops(attn, mode)
        if not causal:
            return t * t * pf
        if attn.sliding_window:
            return sum_min(1, t, attn.sliding_window) * pf
        if attn.chunk_size:
            return _chunked_pairs(t, attn.chunk_size) * pf
        return t * (t + 1) // 2 * pf

    def params(self, attn: GQASpec, hidden: int) -> Params:
        h = hidden
        q = attn.n_heads * attn.head_dim
        k, v = attn.n_kv_heads * attn.head_dim, attn.n_kv_heads * attn.v_dim
        if attn.k_eq_v:
            v = 0
        o = attn.n_heads * attn.v_dim
        q_out = q * (2 if attn.output_gate else 1)  # a gated output doubles the query projection
        bias = (q_out + k + v if attn.qkv_bias else 0) + (h if attn.o_bias else 0)
        return Params(h * q_out + h * k + h * v + o * h, bias)

    def latex_terms(self, attn: GQASpec, fmt: StorageFormat, layout: str) -> list[LatexTerm]:
        if attn.sliding_window:
            count = rf"\min(N, {latex_int(attn.sliding_window)})"
        elif attn.chunk_size:
            count = rf"((N - 1) \bmod {latex_int(attn.chunk_size)} + 1)"
        else:
            count = "N"
        symbols = r"2\,n_{kv}\,d_h\,b" if attn.v_dim == attn.head_dim else r"n_{kv}\,(d_h + d_v)\,b"
        per_token = attn.n_kv_heads * (fmt.vector_bytes(attn.head_dim) + fmt.vector_bytes(attn.v_dim))
        return [LatexTerm(symbols, per_token, count)]

    def latex_model(self, layers: tuple[GQASpec, ...], fmt: StorageFormat, layout: str) -> str | None:
        """2 l n_kv d_h b (DeepSeek-V2 paper Table 1), when every layer is the same full-attention layer
        with values as wide as keys; a format with scales adds them to each key and value (`latex_vectors`)."""
        a = layers[0]
        if len(set(layers)) > 1 or a.sliding_window or a.chunk_size or a.v_dim != a.head_dim:
            return None
        got = latex_vectors([(["d_h"], [a.head_dim])], fmt)
        if got is None:
            return None
        sym, num = got
        return rf"2\,l\,n_{{kv}}\,{sym} = 2 \times {len(layers)} \times {a.n_kv_heads} \times {num}"

    def vllm_kind(self, attn: GQASpec) -> tuple:
        """vLLM's SlidingWindowSpec, ChunkedLocalAttentionSpec or FullAttentionSpec."""
        if attn.sliding_window:
            return ("sliding", attn.sliding_window)
        return ("chunked", attn.chunk_size) if attn.chunk_size else ("full",)

    def tp_shard(self, attn: GQASpec, tp: int) -> GQASpec:
        """Query heads split over the ranks; key/value heads too while there are at least `tp` of them,
        else every rank keeps one, replicated (vLLM's QKVParallelLinear: tp must divide n_kv, or n_kv tp)."""
        heads = tp_split("the query heads", attn.n_heads, tp)
        if attn.n_kv_heads >= tp:
            kv = tp_split("the key/value heads", attn.n_kv_heads, tp)
        elif tp % attn.n_kv_heads:
            raise ValueError(
                f"tensor parallel size {tp} is not a multiple of the {attn.n_kv_heads} key/value heads, so they "
                "cannot be replicated evenly."
            )
        else:
            kv = 1
        return replace(attn, n_heads=heads, n_kv_heads=kv)

    def describe(self, attn: GQASpec, layers: str, multi: bool) -> str:
        a = attn
        if a.design == "MHA":
            what = f"MHA: every one of the {a.n_heads} heads caches its own key and value of {a.head_dim}"
        elif a.design == "MQA":
            what = f"MQA: all {a.n_heads} query heads share one key and one value head of {a.head_dim}"
        else:
            what = (
                f"GQA: {a.n_heads} query heads share {a.n_kv_heads} key/value heads of {a.head_dim} "
                f"({a.group_size} query heads per group)"
            )
        if a.v_dim != a.head_dim:
            what += f", values {a.v_dim} wide"
        per = a.n_kv_heads * (a.head_dim + a.v_dim)
        if a.k_eq_v:
            what += " (one projection serves as key and value; both are cached, as HF and vLLM keep them)"
        s = f"{what}; caches {a.n_kv_heads} x ({a.head_dim} + {a.v_dim}) = {per:,} numbers per token per layer"
        if a.sliding_window:
            s += f"; {layers} keep only the last {a.sliding_window:,} tokens (sliding window)"
        elif a.chunk_size:
            s += (
                f"; {layers} attend only within chunks of {a.chunk_size:,} tokens, so they keep at most "
                f"{a.chunk_size:,} (chunked local attention)"
            )
        elif multi:
            s += f"; {layers} attend to every token"
        return s + "."
