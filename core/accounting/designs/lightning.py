"""Lightning attention (MiniMax-Text-01 / MiniMax-M1; vLLM `minimax_text_01.py` MiniMaxText01LinearAttention).

Per layer and sequence, whatever the context (vLLM `MambaStateShapeCalculator.linear_attention_state_shape`):
    KV state  H x d x d   (one d x d matrix per head, in state_dtype: vLLM's `linear_attention_state_dtype`
                           is the model dtype unless mamba_cache_dtype says otherwise)
No keys or values are cached and there is no convolution. Core FLOPs per token: the update
S <- decay S + k^T v and the readout q S, each H d d multiply-adds: 4 H d^2 (the reference layer in
`core.layers.lightning` runs both as matmuls; the decay and the output gate are elementwise, not counted).
"""

from __future__ import annotations

from dataclasses import replace

from core.accounting.base import CacheRows, LatexTerm, Params, RecurrentDesign, register, tp_split
from core.model.dtypes import StorageFormat, cache_dtype
from core.model.specs import LightningSpec


@register(LightningSpec)
class LightningDesign(RecurrentDesign):
    def state_rows(self, attn: LightningSpec) -> list[CacheRows]:
        fmt = cache_dtype(attn.state_dtype)
        return [CacheRows("KV state", attn.n_heads * attn.head_dim, attn.head_dim, fmt.vector_bytes(attn.head_dim))]

    def state_flops_per_token(self, attn: LightningSpec) -> int:
        return 4 * attn.n_heads * attn.head_dim * attn.head_dim

    def params(self, attn: LightningSpec, hidden: int) -> Params:
        """qkv_proj [3 H d, E], output_gate [H d, E], out_proj [E, H d], no biases; an RMS norm of H d."""
        e, hd = hidden, attn.n_heads * attn.head_dim
        return Params(e * 3 * hd + e * hd + hd * e, hd)

    def latex_terms(self, attn: LightningSpec, fmt: StorageFormat, layout: str) -> list[LatexTerm]:
        return []  # nothing grows with the context: the state is state_rows'

    def vllm_kind(self, attn: LightningSpec) -> None:
        """vLLM keeps the state in a MambaSpec-style pool, not in KV pages."""
        return None

    def tp_shard(self, attn: LightningSpec, tp: int) -> LightningSpec:
        return replace(attn, n_heads=tp_split("num_attention_heads", attn.n_heads, tp))

    def describe(self, attn: LightningSpec, layers: str, multi: bool) -> str:
        a = attn
        return (
            f"Lightning attention ({layers}): no keys or values are cached; each sequence keeps one "
            f"{a.head_dim} x {a.head_dim} state per head, {a.n_heads} heads = "
            f"{a.n_heads * a.head_dim * a.head_dim:,} numbers ({a.state_dtype}), whatever the context."
        )
