"""The runs behind the Hybrid models lesson: a small attention layer, a Gated DeltaNet layer and a Mamba-2
mixer read the same tokens, and what each keeps per sequence is measured as the context grows.

Each layer processes the sequence piece by piece with its cache or state passed in and returned, and at
every checkpoint context the `nbytes` of what it holds is measured and set beside the accounting
(`core.accounting`), as are the FLOPs of one decode step counted by FlopCounterMode. The attention
cache grows with every token; the two recurrent states stay the same size whatever the context.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from torch.utils.flop_counter import FlopCounterMode

from core.accounting import totals as acc
from core.lab.inside import text_input
from core.layers.attention import cache_nbytes
from core.layers.build import build_layer
from core.model.specs import GQASpec, LinearAttentionSpec, Mamba2Spec

D_MODEL = 64
MAX_TOKENS = 4096  # the token loop of the recurrent layers stays under a second at this size
DTYPE = torch.float32


@dataclass(frozen=True)
class SmallHybrid:
    """Three small layers of the same width, one of each design. Scaled down from Qwen3-Next's shapes
    (16 key heads x 128, 32 value heads x 128 for Gated DeltaNet) and Nemotron-H's (256 heads x 64,
    state 256), so the lesson runs in a second on a laptop."""

    tokens: int = 1024
    seed: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.tokens <= MAX_TOKENS:
            raise ValueError(f"tokens must be between 1 and {MAX_TOKENS:,}, got {self.tokens:,}.")

    @property
    def specs(self) -> dict[str, object]:
        return {
            "attention (GQA)": GQASpec(n_heads=4, n_kv_heads=2, head_dim=16),
            "Gated DeltaNet": LinearAttentionSpec(2, 4, 32, 16, conv_kernel=4, ssm_dtype="fp32", conv_dtype="fp32"),
            "Mamba-2": Mamba2Spec(
                n_heads=4, head_dim=16, state_size=16, n_groups=1, ssm_dtype="fp32", conv_dtype="fp32"
            ),
        }


def checkpoints(tokens: int) -> list[int]:
    """Powers of two up to `tokens`, and `tokens` itself."""
    if tokens < 1:
        raise ValueError(f"tokens must be at least 1, got {tokens:,}.")
    out = [1 << k for k in range(tokens.bit_length()) if 1 << k <= tokens]
    return out + ([tokens] if out[-1] != tokens else [])


def accounted_bytes(spec: object, context: int) -> int:
    """What the accounting says one sequence of this layer holds at `context`, in fp32."""
    return acc.bytes_by_layer([spec], context, "fp32", state=True)[0]


def accounted_step_flops(spec: object, context: int) -> int:
    """One decode step at `context` as the accounting counts it: core + 2 x matmul weights."""
    return acc.decode_core_flops(spec, context) + 2 * acc.attention_params(spec, D_MODEL).matmul


SOURCES = ("random", "text")
RUNS_FILE = Path(__file__).resolve().parents[2] / "assets" / "hybrid" / "runs.json"


def shipped_runs() -> dict[str, list[dict]]:
    """The runs scripts/hybrid_runs.py made for every token count the page offers ("tokens|source");
    {} when the file is absent."""
    return json.loads(RUNS_FILE.read_text()) if RUNS_FILE.is_file() else {}


def run(cfg: SmallHybrid, source: str = "random") -> pd.DataFrame:
    """Long table, one row per (layer, context): bytes held (measured nbytes and accounting), whether the
    bytes are a growing cache or a fixed state, and the FLOPs of the next decode step (measured by
    FlopCounterMode and accounted)."""
    if source not in SOURCES:
        raise ValueError(f"unknown input {source!r}; choose random or text.")
    if source == "text":
        x = text_input(cfg.tokens + 1, D_MODEL, cfg.seed).to(DTYPE)
    else:
        g = torch.Generator().manual_seed(cfg.seed + 7)
        x = torch.randn(1, cfg.tokens + 1, D_MODEL, generator=g, dtype=DTYPE)
    rows = []
    with torch.no_grad():
        for name, spec in cfg.specs.items():
            layer = build_layer(spec, D_MODEL, seed=cfg.seed, device="cpu", dtype=DTYPE)
            state, done = None, 0
            for n in checkpoints(cfg.tokens):
                _, state = layer(x[:, done:n], state)
                done = n
                with FlopCounterMode(display=False) as counter:
                    layer(x[:, n : n + 1], state)  # the next token, its result thrown away
                rows.append(
                    {
                        "layer": name,
                        "holds": "KV cache" if isinstance(spec, GQASpec) else "fixed state",
                        "context": n,
                        "measured_bytes": cache_nbytes(state),
                        "accounted_bytes": accounted_bytes(spec, n),
                        "measured_kib": cache_nbytes(state) / 1024,
                        "accounted_kib": accounted_bytes(spec, n) / 1024,
                        "step_flops_measured": counter.get_total_flops(),
                        "step_flops_accounted": accounted_step_flops(spec, n + 1),
                    }
                )
    return pd.DataFrame(rows)
