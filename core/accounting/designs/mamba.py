"""Mamba-2 mixers (Nemotron-H, Granite-4, Falcon-H1; HF `modeling_nemotron_h.py` NemotronHMamba2Mixer).

Per layer and sequence, whatever the context (vLLM `MambaStateShapeCalculator.mamba2_state_shape`):
    SSM state   H x P x N                       (heads x head dim x state size)
    conv state  (K - 1) x (H P + 2 G N)         (the last K-1 inputs of the convolution over x, B, C)
Core FLOPs per token (the state products, as einsums in `core.layers.mamba2`): the update
dt B x^T and the readout C . h, each H P N multiply-adds: 4 H P N.
"""

from __future__ import annotations

from dataclasses import replace

from core.accounting.base import CacheRows, LatexTerm, Params, RecurrentDesign, register, tp_split
from core.model.dtypes import StorageFormat, cache_dtype
from core.model.specs import Mamba2Spec


@register(Mamba2Spec)
class Mamba2Design(RecurrentDesign):
    def state_rows(self, attn: Mamba2Spec) -> list[CacheRows]:
        ssm, conv = cache_dtype(attn.ssm_dtype), cache_dtype(attn.conv_dtype)
        return [
            CacheRows("SSM state", attn.n_heads * attn.head_dim, attn.state_size, ssm.vector_bytes(attn.state_size)),
            CacheRows("conv state", attn.conv_kernel - 1, attn.conv_dim, conv.vector_bytes(attn.conv_dim)),
        ]

    def state_flops_per_token(self, attn: Mamba2Spec) -> int:
        return 4 * attn.n_heads * attn.head_dim * attn.state_size

    def params(self, attn: Mamba2Spec, hidden: int) -> Params:
        """in_proj [2 H P + 2 G N + H, E], depthwise conv1d [conv_dim, 1, K] (+ bias), dt_bias, A_log and D
        [H], gated RMSNorm [H P] (unless gated_norm is off), out_proj [E, H P] (+ biases when the config says
        use_bias)."""
        e, d_in, a = hidden, attn.d_inner, attn
        proj = 2 * d_in + 2 * a.n_groups * a.state_size + a.n_heads
        matmul = e * proj + a.conv_dim * a.conv_kernel + d_in * e
        norm = d_in if a.gated_norm else 0
        other = 3 * a.n_heads + norm + (a.conv_dim if a.conv_bias else 0) + ((proj + e) if a.proj_bias else 0)
        return Params(matmul, other)

    def latex_terms(self, attn: Mamba2Spec, fmt: StorageFormat, layout: str) -> list[LatexTerm]:
        return []  # nothing grows with the context: the state is state_rows'

    def vllm_kind(self, attn: Mamba2Spec) -> None:
        """vLLM pages the state with a MambaSpec, sized to the attention page (not planned block by block)."""
        return None

    def tp_shard(self, attn: Mamba2Spec, tp: int) -> Mamba2Spec:
        """Heads split over the ranks; B and C groups too, after vLLM extends n_groups to `tp` when `tp` does
        not divide it (`extra_groups_for_head_shards`: each rank then holds a copy of its group)."""
        groups = attn.n_groups + (tp - attn.n_groups if attn.n_groups % tp else 0)
        return replace(
            attn,
            n_heads=tp_split("mamba_num_heads", attn.n_heads, tp),
            n_groups=tp_split("n_groups (extended to the TP size)", groups, tp),
        )

    def describe(self, attn: Mamba2Spec, layers: str, multi: bool) -> str:
        a = attn
        ssm = a.n_heads * a.head_dim * a.state_size
        return (
            f"Mamba-2 ({layers}): no keys or values are cached; each sequence keeps an SSM state of "
            f"{a.n_heads} x {a.head_dim} x {a.state_size} = {ssm:,} numbers ({a.ssm_dtype}) plus the last "
            f"{a.conv_kernel - 1} inputs of a {a.conv_dim:,}-channel convolution ({a.conv_dtype}), "
            "whatever the context."
        )
