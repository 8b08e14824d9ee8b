"""Linear attention with a delta-rule state: Gated DeltaNet (Qwen3-Next, Qwen3.5; HF
`modeling_qwen3_next.py` Qwen3NextGatedDeltaNet) and Kimi Delta Attention (Kimi-Linear).

Per layer and sequence, whatever the context (vLLM `MambaStateShapeCalculator.gated_delta_net_state_shape`):
    recurrent state  H_v x d_k x d_v          (one d_k x d_v matrix per value head)
    conv state       (K - 1) x (2 H_k d_k + H_v d_v)   (the last K-1 inputs of the short convolution)
Decode reads and rewrites both. Core FLOPs per token (the state products, as einsums in
`core.layers.gated_deltanet`): S^T k, the rank-one update k (beta (v - S^T k))^T and the readout S^T q,
each H_v d_k d_v multiply-adds: 6 H_v d_k d_v. The decay and gates are elementwise and not counted.
"""

from __future__ import annotations

from dataclasses import replace

from core.accounting.base import CacheRows, LatexTerm, Params, RecurrentDesign, register, tp_split
from core.model.dtypes import StorageFormat, cache_dtype
from core.model.specs import LinearAttentionSpec


@register(LinearAttentionSpec)
class LinearAttentionDesign(RecurrentDesign):
    def state_rows(self, attn: LinearAttentionSpec) -> list[CacheRows]:
        ssm, conv = cache_dtype(attn.ssm_dtype), cache_dtype(attn.conv_dtype)
        dk, dv = attn.key_head_dim, attn.value_head_dim
        return [
            CacheRows("recurrent state", attn.n_value_heads * dk, dv, ssm.vector_bytes(dv)),
            CacheRows("conv state", attn.conv_kernel - 1, attn.conv_dim, conv.vector_bytes(attn.conv_dim)),
        ]

    def state_flops_per_token(self, attn: LinearAttentionSpec) -> int:
        return 6 * attn.n_value_heads * attn.key_head_dim * attn.value_head_dim

    def params(self, attn: LinearAttentionSpec, hidden: int) -> Params:
        """Gated DeltaNet: in_proj_qkvz [2 H_k d_k + 2 H_v d_v, E], in_proj_ba [2 H_v, E], depthwise conv1d
        [conv_dim, 1, K] (no bias; its taps are multiply-adds, counted with the matmuls), dt_bias and A_log
        [H_v], gated RMSNorm [d_v], out_proj [E, H_v d_v].
        KDA (Kimi-Linear checkpoint): q, k, v projections [H d, E], three depthwise convs [H d, 1, K], low-rank
        decay and output gates f_a, g_a [d, E] and f_b, g_b [H d, d], b_proj [H, E], A_log [H], dt_bias
        [H d], o_norm [d], o_proj [E, H d]."""
        e, a = hidden, attn
        kd, vd = a.key_dim, a.value_dim
        conv = a.conv_dim * a.conv_kernel
        if a.variant == "KDA":
            gates = 2 * (e * a.key_head_dim + a.key_head_dim * kd)
            matmul = e * (2 * kd + vd) + conv + gates + e * a.n_value_heads + vd * e
            return Params(matmul, a.n_value_heads + kd + a.value_head_dim)
        matmul = e * (2 * kd + 2 * vd) + e * 2 * a.n_value_heads + conv + vd * e
        return Params(matmul, 2 * a.n_value_heads + a.value_head_dim)

    def latex_terms(self, attn: LinearAttentionSpec, fmt: StorageFormat, layout: str) -> list[LatexTerm]:
        return []  # nothing grows with the context: the state is state_rows'

    def vllm_kind(self, attn: LinearAttentionSpec) -> None:
        """vLLM pages the state with a MambaSpec, sized to the attention page (not planned block by block)."""
        return None

    def tp_shard(self, attn: LinearAttentionSpec, tp: int) -> LinearAttentionSpec:
        """Key and value heads split over the ranks, and the state with them (vLLM divides the recurrent
        state's heads and the conv channels by the TP size)."""
        return replace(
            attn,
            n_key_heads=tp_split("linear_num_key_heads", attn.n_key_heads, tp),
            n_value_heads=tp_split("linear_num_value_heads", attn.n_value_heads, tp),
        )

    def describe(self, attn: LinearAttentionSpec, layers: str, multi: bool) -> str:
        a = attn
        rec = a.n_value_heads * a.key_head_dim * a.value_head_dim
        return (
            f"{a.design} ({layers}): no keys or values are cached; each sequence keeps a fixed state of "
            f"{a.n_value_heads} x {a.key_head_dim} x {a.value_head_dim} = {rec:,} numbers ({a.ssm_dtype}) plus "
            f"the last {a.conv_kernel - 1} inputs of a {a.conv_dim:,}-channel convolution ({a.conv_dtype}), "
            "whatever the context."
        )
