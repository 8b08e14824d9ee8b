"""Gated short convolutions (LFM2's conv blocks; HF `modeling_lfm2.py` Lfm2ShortConv, vLLM `short_conv.py`).

Per layer and sequence, whatever the context (vLLM `MambaStateShapeCalculator.short_conv_state_shape`):
    conv state  (L - 1) x E   (the last L-1 inputs of a depthwise convolution over the E hidden channels)
Core FLOPs per token: none beyond the projections; the convolution's L taps per channel are counted with
the block's matmul weights, as for the convolutions of Mamba and Gated DeltaNet.
"""

from __future__ import annotations

from dataclasses import replace

from core.accounting.base import CacheRows, LatexTerm, Params, RecurrentDesign, register, tp_split
from core.model.dtypes import StorageFormat, cache_dtype
from core.model.specs import ShortConvSpec


@register(ShortConvSpec)
class ShortConvDesign(RecurrentDesign):
    def state_rows(self, attn: ShortConvSpec) -> list[CacheRows]:
        fmt = cache_dtype(attn.conv_dtype)
        return [CacheRows("conv state", attn.conv_kernel - 1, attn.channels, fmt.vector_bytes(attn.channels))]

    def state_flops_per_token(self, attn: ShortConvSpec) -> int:
        return 0

    def params(self, attn: ShortConvSpec, hidden: int) -> Params:
        """in_proj [3 C, E] (B, C and x), depthwise conv [C, 1, L], out_proj [E, C]; biases on all three with
        conv_bias."""
        e, c = hidden, attn.channels
        bias = 3 * c + c + e if attn.conv_bias else 0
        return Params(e * 3 * c + c * attn.conv_kernel + c * e, bias)

    def latex_terms(self, attn: ShortConvSpec, fmt: StorageFormat, layout: str) -> list[LatexTerm]:
        return []  # nothing grows with the context: the state is state_rows'

    def vllm_kind(self, attn: ShortConvSpec) -> None:
        """vLLM keeps the conv state in a MambaSpec pool, not in KV pages."""
        return None

    def tp_shard(self, attn: ShortConvSpec, tp: int) -> ShortConvSpec:
        return replace(attn, channels=tp_split("the convolution channels (hidden_size)", attn.channels, tp))

    def describe(self, attn: ShortConvSpec, layers: str, multi: bool) -> str:
        a = attn
        return (
            f"Short convolution ({layers}): no keys or values are cached; each sequence keeps the last "
            f"{a.conv_kernel - 1} inputs of a {a.channels:,}-channel convolution ({a.conv_dtype}), whatever the "
            "context."
        )
