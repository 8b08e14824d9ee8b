"""Compute vs memory for one decode step: FLOPs, bytes, arithmetic intensity and the roofline.

For a decode step of `batch` sequences at `context` tokens (all layers, the conventions of docs/facts.md section 1):
  FLOPs  = batch x (2 x active matmul weights + attention cores)
  bytes  = weights the step touches, once for the batch (core.planner.decode_step_bytes) + batch x cache read
  intensity = FLOPs / bytes;  time >= max(FLOPs / peak, bytes / bandwidth)   (the roofline)
The attention core alone has intensity core FLOPs / cache bytes read, independent of the batch (every
sequence reads its own cache): about n_h / n_kv for GQA and about 2 n_h for absorbed MLA.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import pandas as pd

from core.accounting import totals as acc
from core.accounting.planner import decode_step_bytes
from core.model.gpus import GPU
from core.model.specs import GQASpec, ModelSpec


@dataclass(frozen=True)
class RooflineDesign:
    """A whole model placed on the roofline: its spec and, for MLA, the path and cache layout decode uses."""

    label: str
    spec: ModelSpec
    mode: str = "absorbed"  # MLA path
    layout: str = "latent"  # MLA cache layout


def gqa_variant(spec: ModelSpec, n_kv_heads: int, label: str) -> ModelSpec:
    """The same model with every GQA layer's kv heads set to n_kv_heads (MHA: n_heads, MQA: 1)."""
    attn = tuple(replace(a, n_kv_heads=n_kv_heads) if isinstance(a, GQASpec) else a for a in spec.attention)
    return replace(spec, name=label, attention=attn)


def designs(presets) -> list[RooflineDesign]:
    """MHA / GQA / MQA from Llama-3.1-70B's shapes, MLA materialised and absorbed from DeepSeek-V3, DSA
    (DeepSeek-V3.2), V4 (DeepSeek-V4-Pro). `presets` maps names to specs (core.presets.load_preset)."""
    llama = presets("llama-3.1-70b")
    v3 = presets("deepseek-v3")
    return [
        RooflineDesign("MHA (Llama-70B shapes, 64 kv heads)", gqa_variant(llama, 64, "MHA")),
        RooflineDesign("GQA (Llama-3.1-70B)", llama),
        RooflineDesign("MQA (Llama-70B shapes, 1 kv head)", gqa_variant(llama, 1, "MQA")),
        RooflineDesign("MLA materialised (DeepSeek-V3)", v3, "materialised", "materialised"),
        RooflineDesign("MLA absorbed (DeepSeek-V3)", v3, "absorbed", "latent"),
        RooflineDesign("DSA (DeepSeek-V3.2)", presets("deepseek-v3.2")),
        RooflineDesign("V4 (DeepSeek-V4-Pro)", presets("deepseek-v4-pro")),
    ]


@dataclass(frozen=True)
class DecodeStep:
    """One decode step of a batch: FLOPs and bytes of the whole step and of the attention cores alone."""

    flops: int
    bytes: int
    core_flops: int  # attention cores, all sequences
    cache_bytes: int  # cache read, all sequences

    @property
    def intensity(self) -> float:
        return self.flops / self.bytes

    @property
    def core_intensity(self) -> float:
        return self.core_flops / self.cache_bytes if self.cache_bytes else 0.0

    def seconds(self, gpu: GPU, n_gpus: int = 1) -> float:
        """Roofline lower bound: max(FLOPs / peak, bytes / bandwidth), datasheet figures."""
        return max(self.flops / (n_gpus * gpu.bf16_tflops * 1e12), self.bytes / (n_gpus * gpu.bandwidth_tb_s * 1e12))


def decode_step(
    d: RooflineDesign, context: int, batch: int = 1, kv_dtype: str = "bf16", weight_dtype: str = "bf16"
) -> DecodeStep:
    cost = acc.decode_cost(d.spec, context, kv_dtype, d.layout, d.mode)
    total = decode_step_bytes(d.spec, context, batch, kv_dtype, weight_dtype, d.layout)
    return DecodeStep(batch * cost.model_flops, total, batch * cost.attention_core_flops, batch * cost.cache_bytes_read)


def per_token_table(ds: list[RooflineDesign], contexts: list[int], kv_dtype: str = "bf16") -> pd.DataFrame:
    """Per decoded token (one sequence) vs context: attention FLOPs, cache bytes read; and the prefill
    of `context` tokens averaged per token (causal)."""
    rows = []
    for d in ds:
        for n in contexts:
            c = acc.decode_cost(d.spec, n, kv_dtype, d.layout, d.mode)
            pre = sum(acc.prefill_core_flops(a, n, d.mode) for a in d.spec.attention) / n
            rows += [
                {
                    "design": d.label,
                    "context": n,
                    "quantity": "decode: attention FLOPs",
                    "value": c.attention_core_flops,
                },
                {"design": d.label, "context": n, "quantity": "decode: cache bytes read", "value": c.cache_bytes_read},
                {"design": d.label, "context": n, "quantity": "prefill: attention FLOPs per token", "value": pre},
            ]
    return pd.DataFrame(rows)


def roofline_points(
    ds: list[RooflineDesign], gpu: GPU, context: int, batch: int, kv_dtype: str = "bf16", weight_dtype: str = "bf16"
) -> pd.DataFrame:
    """Where each design's decode sits on `gpu`'s roofline: whole step and attention core alone."""
    rows = []
    ridge = gpu.bf16_tflops / gpu.bandwidth_tb_s  # FLOP per byte where the roof bends
    for d in ds:
        s = decode_step(d, context, batch, kv_dtype, weight_dtype)
        t = s.seconds(gpu)
        for what, inten in (("whole decode step", s.intensity), ("attention core", s.core_intensity)):
            attainable = min(gpu.bf16_tflops, inten * gpu.bandwidth_tb_s)  # TFLOP/s
            rows.append(
                {
                    "design": d.label,
                    "what": what,
                    "intensity": inten,
                    "attainable_tflops": attainable,
                    "bound": "compute" if inten >= ridge else "memory",
                    "step_ms": t * 1e3,
                    "tokens_per_s": batch / t,
                    "flops": s.flops,
                    "bytes": s.bytes,
                }
            )
    return pd.DataFrame(rows)


def roof(gpu: GPU, lo: float = 0.1, hi: float = 10_000.0) -> pd.DataFrame:
    """The roof: attainable TFLOP/s = min(peak, intensity x bandwidth) on a log grid."""
    xs = [lo * (hi / lo) ** (i / 200) for i in range(201)]
    return pd.DataFrame(
        {"intensity": xs, "attainable_tflops": [min(gpu.bf16_tflops, x * gpu.bandwidth_tb_s) for x in xs]}
    )
