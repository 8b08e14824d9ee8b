"""Several sequence mixers side by side in one layer (`ParallelSpec`), as in Falcon-H1.

Follows Hugging Face transformers `models/falcon_h1/modeling_falcon_h1.py` (FalconH1DecoderLayer): attention and
Mamba-2 read the same normalised input and their outputs are added. Falcon-H1 also scales each mixer's input
and output by config multipliers (attention_in_multiplier, ssm_out_multiplier, ...); those scale values only,
and this layer leaves them at 1. Zamba2's hybrid layers (`sequential=True`) chain their shared attention block
into the Mamba-2 input instead of adding it: the same caches and weights, another function, which this layer
does not compute, so build_layer refuses that field.

# B batch, T new tokens, E model width

    out_t = sum over parts p of mixer_p(x)_t

Each part is the reference layer of its own spec (`core.layers.build.build_layer`, part i with seed + i, which
also refuses any field a part's layer does not run), holding its own cache or state; the layer's cache is the
tuple of those, so its nbytes is their sum, as the accounting adds them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from core.model.specs import ParallelSpec


@dataclass(frozen=True)
class ParallelCache:
    """One cache or state per part, in the order of `spec.parts`."""

    parts: tuple

    @property
    def seen(self) -> int:
        return self.parts[0].seen

    def tensors(self) -> tuple[Tensor, ...]:
        return tuple(t for c in self.parts for t in c.tensors())


class ParallelMixers(nn.Module):
    """forward(x, cache) -> (sum of the parts' outputs, ParallelCache). MLA parts run absorbed (their default)."""

    RUNS = frozenset({"parts"})  # each part's fields are checked by build_layer when the part is built
    BUILDS_PARTS = True  # build_layer passes itself as build_part (this module cannot import it: build imports us)

    def __init__(
        self,
        spec: ParallelSpec,
        d_model: int,
        *,
        seed: int = 0,
        device=None,
        dtype=torch.float32,
        build_part: Callable[..., nn.Module] | None = None,
    ):
        super().__init__()
        if build_part is None:
            raise TypeError("build a parallel layer with core.layers.build.build_layer, which builds its parts.")
        self.spec, self.d_model = spec, d_model
        self.parts = nn.ModuleList(
            build_part(p, d_model, seed=seed + i, device=device, dtype=dtype) for i, p in enumerate(spec.parts)
        )

    def forward(self, x: Tensor, cache: ParallelCache | None = None) -> tuple[Tensor, ParallelCache]:
        caches = cache.parts if cache is not None else (None,) * len(self.parts)
        outs, new = zip(*(layer(x, c) for layer, c in zip(self.parts, caches, strict=True)), strict=True)
        return sum(outs), ParallelCache(tuple(new))  # (B, T, E)


LAYERS = {ParallelSpec: ParallelMixers}
