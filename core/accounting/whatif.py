"""What-if baselines: the same model without the design choice that saves memory, priced by the same
accounting, so a page can say what the choice saves (the conventions of docs/facts.md section 1).

- `all_global`: every sliding-window or chunked layer made a full-attention layer with its own heads, so
  it caches every token instead of its window or chunk (Llama-4-Scout at 1,048,576 tokens in bf16:
  48 x 2 x 8 x 128 x 2 B x N = 192 GiB against 49.125 GiB, 3.91x).
- `state_per_layer`: the fixed state one recurrent layer keeps per sequence (Qwen3-Next's Gated DeltaNet:
  32 x 128 x 128 x 2 B recurrent + 3 x 8,192 x 2 B convolution = 1,097,728 B).
- `mla_layouts`: one MLA layer's cache per token in each layout, beside the MHA of equal heads that the
  materialised layout stores (DeepSeek-V3: 128 x (192 + 128) x 2 B = 81,920 B against the latent's
  (512 + 64) x 2 B = 1,152 B, 71.1x).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from core.accounting.base import design_of
from core.accounting.totals import bytes_by_layer, layer_cache_rows
from core.model.dtypes import cache_dtype
from core.model.specs import AttentionSpec, GQASpec, MLASpec, ModelSpec, ParallelSpec


def _global(attn: AttentionSpec) -> AttentionSpec:
    if isinstance(attn, GQASpec) and (attn.sliding_window or attn.chunk_size):
        return replace(attn, sliding_window=None, chunk_size=None)
    if isinstance(attn, ParallelSpec):
        return replace(attn, parts=tuple(_global(p) for p in attn.parts))
    return attn


def all_global(spec: ModelSpec) -> ModelSpec | None:
    """`spec` with every sliding-window or chunked attention layer made global (full attention): each such
    layer keeps its own heads and head dims and caches every token. None when no layer is windowed or
    chunked (there is nothing to compare with)."""
    layers = tuple(_global(a) for a in spec.attention)
    if layers == spec.attention:
        return None
    return replace(spec, name=f"{spec.name}, every layer global", attention=layers)


@dataclass(frozen=True)
class LayerState:
    """The fixed state of one recurrent layer of one kind, per sequence: its tensors and their bytes."""

    kind: str  # the layer type, as breakdowns name it ("GDN", "Mamba-2", ...)
    n_layers: int  # layers of this kind holding this state
    tensors: tuple[tuple[str, int, int], ...]  # (tensor, rows, bytes per row)

    @property
    def bytes(self) -> int:
        return sum(rows * per_row for _, rows, per_row in self.tensors)


def state_per_layer(spec: ModelSpec) -> tuple[LayerState, ...]:
    """One `LayerState` per distinct (kind, state) among `spec`'s layers, in layer order; () for a model
    without fixed state. Its bytes are `bytes_by_layer(..., cache=False, state=True)` of one such layer."""
    found: dict[tuple, int] = {}
    for attn in spec.attention:
        rows = tuple((r.tensor, r.rows, r.bytes_per_row) for r in design_of(attn).state_rows(attn))
        if rows:
            found[(attn.kind, rows)] = found.get((attn.kind, rows), 0) + 1
    return tuple(LayerState(kind, n, rows) for (kind, rows), n in found.items())


def attention_bytes_per_token_per_layer(spec: ModelSpec, kv_dtype: str = "bf16") -> int | None:
    """What one full-attention layer of `spec` caches per token (the first such layer), to set a recurrent
    layer's state against; None when no layer caches tokens."""
    for attn, per_token in zip(spec.attention, bytes_by_layer(spec.attention, 1, kv_dtype), strict=True):
        if per_token and not isinstance(attn, ParallelSpec):
            return per_token
    return None


@dataclass(frozen=True)
class LayoutCost:
    """One MLA layer's cache per token in one layout and cache dtype."""

    layout: str
    kv_dtype: str
    tensors: tuple[tuple[str, int, int], ...]  # (tensor, rows per token, bytes per row)

    @property
    def bytes(self) -> int:
        return sum(rows * per_row for _, rows, per_row in self.tensors)


MLA_LAYOUT_DTYPES = (("materialised", "bf16"), ("latent", "bf16"), ("latent", "fp8"), ("fp8_ds_mla", "bf16"))


def mla_layouts(attn: MLASpec) -> tuple[LayoutCost, ...]:
    """One MLA layer's cache per token per layer in every layout of `MLA_LAYOUT_DTYPES`, from the layer's own
    cache rows at context 1: materialised (the MHA of equal heads: n_h keys of d_nope + d_r and n_h values of
    d_v), the latent in bf16 and in fp8, and vLLM's fp8_ds_mla (which fixes its own formats)."""
    if not isinstance(attn, MLASpec):
        raise TypeError(f"cache layouts are MLA's; got a {type(attn).__name__} layer.")
    out = []
    for layout, dtype in MLA_LAYOUT_DTYPES:
        rows = layer_cache_rows(attn, 1, cache_dtype(dtype), layout)
        out.append(LayoutCost(layout, dtype, tuple((r.tensor, r.rows, r.bytes_per_row) for r in rows)))
    return tuple(out)
