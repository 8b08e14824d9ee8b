"""View state <-> URL query string, as pure functions, so a copied link reproduces the view.

Parsing never raises: unknown keys and bad values are dropped, each with a notice for the page.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from core.dtypes import CACHE_DTYPES
from core.gpus import GPUS
from core.presets import preset_names

MAX_CONTEXT = 1 << 20
DEFAULT_MODELS = ("llama-3.1-70b", "deepseek-v3", "deepseek-v3.2", "deepseek-v4-pro")


@dataclass(frozen=True)
class OverviewState:
    models: tuple[str, ...] = DEFAULT_MODELS
    context: int = 131_072
    gpu: str = "H200"
    kv_dtype: str = "bf16"
    batch: int = 1
    notices: tuple[str, ...] = field(default=(), compare=False)


def _first(v: str | list[str]) -> str:
    """The last value of a repeated key (what the browser shows), '' for an empty list."""
    if isinstance(v, list):
        return str(v[-1]) if v else ""
    return str(v)


def _int(raw: str, lo: int, hi: int) -> int | None:
    raw = raw.strip().replace("_", "").replace(",", "")
    if not raw.isdigit() or len(raw) > 12:
        return None
    v = int(raw)
    return v if lo <= v <= hi else None


def parse_overview(params: Mapping[str, str | list[str]]) -> OverviewState:
    d = OverviewState()
    notes: list[str] = []
    known = {"models", "context", "gpu", "kv", "batch"}
    for k in params:
        if k not in known:
            notes.append(f"ignored unknown link parameter {k!r}")
    models, context, gpu, kv, batch = d.models, d.context, d.gpu, d.kv_dtype, d.batch
    if "models" in params:
        names = [m for m in _first(params["models"]).split(",") if m][:8]
        good = tuple(dict.fromkeys(m for m in names if m in preset_names()))
        if len(good) < len(names):
            notes.append("ignored unknown models in the link")
        models = good or d.models
    if "context" in params:
        v = _int(_first(params["context"]), 1, MAX_CONTEXT)
        notes += [] if v else [f"context in the link must be 1..{MAX_CONTEXT:,} tokens"]
        context = v or context
    if "gpu" in params:
        g = _first(params["gpu"])
        notes += [] if g in GPUS else ["unknown GPU in the link"]
        gpu = g if g in GPUS else gpu
    if "kv" in params:
        k = _first(params["kv"])
        notes += [] if k in CACHE_DTYPES else ["unknown cache dtype in the link"]
        kv = k if k in CACHE_DTYPES else kv
    if "batch" in params:
        v = _int(_first(params["batch"]), 1, 4096)
        notes += [] if v else ["batch in the link must be 1..4096"]
        batch = v or batch
    return OverviewState(models, context, gpu, kv, batch, tuple(notes))


def serialise_overview(s: OverviewState) -> dict[str, str]:
    """Only what differs from the defaults, so links stay short."""
    d = OverviewState()
    out = {
        "models": ",".join(s.models) if s.models != d.models else None,
        "context": str(s.context) if s.context != d.context else None,
        "gpu": s.gpu if s.gpu != d.gpu else None,
        "kv": s.kv_dtype if s.kv_dtype != d.kv_dtype else None,
        "batch": str(s.batch) if s.batch != d.batch else None,
    }
    return {k: v for k, v in out.items() if v is not None}
