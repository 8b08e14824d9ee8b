"""Mamba-1 mixers (Jamba; HF `modeling_jamba.py` JambaMambaMixer, vLLM `mamba_mixer.py` MambaMixer).

Per layer and sequence, whatever the context (vLLM `MambaStateShapeCalculator.mamba1_state_shape`):
    conv state  (K - 1) x D             (the last K-1 inputs of the depthwise convolution over D = d_inner)
    SSM state   D x N                   (one state of size N per channel)
Core FLOPs per token (the state products, as in the selective scan): the update dt B x and the readout
C . h, each D N multiply-adds: 4 D N. The decay exp(dt A) is elementwise and not counted.
"""

from __future__ import annotations

from dataclasses import replace

from core.accounting.base import CacheRows, LatexTerm, Params, RecurrentDesign, register, tp_split
from core.model.dtypes import StorageFormat, cache_dtype
from core.model.specs import Mamba1Spec


@register(Mamba1Spec)
class Mamba1Design(RecurrentDesign):
    def state_rows(self, attn: Mamba1Spec) -> list[CacheRows]:
        ssm, conv = cache_dtype(attn.ssm_dtype), cache_dtype(attn.conv_dtype)
        return [
            CacheRows("SSM state", attn.d_inner, attn.state_size, ssm.vector_bytes(attn.state_size)),
            CacheRows("conv state", attn.conv_kernel - 1, attn.d_inner, conv.vector_bytes(attn.d_inner)),
        ]

    def state_flops_per_token(self, attn: Mamba1Spec) -> int:
        return 4 * attn.d_inner * attn.state_size

    def params(self, attn: Mamba1Spec, hidden: int) -> Params:
        """in_proj [2 D, E] (+ bias), depthwise conv1d [D, 1, K] (+ bias), x_proj [R + 2 N, D], dt_proj [D, R]
        + bias [D], A_log [D, N], D [D], out_proj [E, D] (+ bias); Jamba adds RMS norms of R, N and N on dt,
        B and C."""
        e, d, n, r, a = hidden, attn.d_inner, attn.state_size, attn.dt_rank, attn
        matmul = e * 2 * d + d * a.conv_kernel + d * (r + 2 * n) + r * d + d * e
        other = d + d * n + d + (d if a.conv_bias else 0) + ((2 * d + e) if a.proj_bias else 0)
        return Params(matmul, other + ((r + 2 * n) if a.dt_norms else 0))

    def latex_terms(self, attn: Mamba1Spec, fmt: StorageFormat, layout: str) -> list[LatexTerm]:
        return []  # nothing grows with the context: the state is state_rows'

    def vllm_kind(self, attn: Mamba1Spec) -> None:
        """vLLM pages the state with a MambaSpec, sized to the attention page (not planned block by block)."""
        return None

    def tp_shard(self, attn: Mamba1Spec, tp: int) -> Mamba1Spec:
        """The D channels split over the ranks, the state with them (vLLM divides intermediate_size by tp)."""
        return replace(attn, d_inner=tp_split("the Mamba channels (mamba_expand x hidden_size)", attn.d_inner, tp))

    def describe(self, attn: Mamba1Spec, layers: str, multi: bool) -> str:
        a = attn
        return (
            f"Mamba-1 ({layers}): no keys or values are cached; each sequence keeps an SSM state of "
            f"{a.d_inner:,} x {a.state_size} = {a.d_inner * a.state_size:,} numbers ({a.ssm_dtype}) plus the last "
            f"{a.conv_kernel - 1} inputs of a {a.d_inner:,}-channel convolution ({a.conv_dtype}), whatever the context."
        )
