"""DeepSeek V4's headline claims recomputed from the two real config files.

Published (V4 model card and paper, Fig. 1): at 1M tokens V4-Pro needs 27% of V3.2's single-token
FLOPs and 10% of its KV cache (3.7x fewer FLOPs, 9.5x smaller cache). vLLM's bf16 arithmetic gives
8.7x; production stores fp8 attention entries and an fp4 indexer cache, which is where 9.5x comes from.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from core.accounting import totals as acc
from core.model.presets import load_preset

PUBLISHED_KV_FRACTION = 0.10
PUBLISHED_FLOPS_FRACTION = 0.27
PRECISIONS = {
    "bf16": ("bf16", "latent", "bf16 everywhere (vLLM's blog arithmetic)"),
    "production": (
        "bf16",
        "fp8_ds_mla",
        "V3.2: fp8_ds_mla 656 B latent + 132 B fp8 indexer key; V4: 584 B fp8/bf16 entries + 68 B fp4 indexer keys",
    ),
}


@dataclass(frozen=True)
class V4Claim:
    context: int
    precision: str
    description: str
    v32_kv_bytes: int
    v4_kv_bytes: int
    v32_flops: int  # whole model, one decoded token
    v4_flops: int
    v32_attention_flops: int  # attention blocks only (projections + core + indexer)
    v4_attention_flops: int

    @property
    def kv_fraction(self) -> float:
        return self.v4_kv_bytes / self.v32_kv_bytes

    @property
    def flops_fraction(self) -> float:
        return self.v4_flops / self.v32_flops


@lru_cache(maxsize=32)  # pure: presets and accounting only; the Overview asks on every rerun
def v4_claims(
    context: int = 1_048_576, precision: str = "bf16", v4: str = "deepseek-v4-pro", v32: str = "deepseek-v3.2"
) -> V4Claim:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}.")
    dtype, layout, desc = PRECISIONS[precision]
    a, b = load_preset(v32), load_preset(v4)
    ca, cb = acc.decode_cost(a, context, dtype, layout), acc.decode_cost(b, context, dtype, layout)
    return V4Claim(
        context,
        precision,
        desc,
        acc.kv_cache_bytes(a, context, 1, dtype, layout),
        acc.kv_cache_bytes(b, context, 1, dtype, layout),
        ca.model_flops,
        cb.model_flops,
        ca.attention_block_flops,
        cb.attention_block_flops,
    )
