"""The sequence-mixer slot of a layer that has none (`NoMixer`): Nemotron-H's MLP-only layers and DeciLM's
no-op attention add nothing to the residual stream; DeciLM's `replace_with_linear` layers apply one
hidden x hidden matrix, no bias (HF DeciLM / vLLM nemotron_nas.py), to each token on its own.

# B batch, T new tokens, E model width

Neither looks at other tokens, so nothing is cached: the cache is an empty `NoCache` that only counts
tokens, and its `nbytes` is the accounting's 0 at every context.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from core.layers.attention import _init
from core.model.specs import NoMixer


@dataclass(frozen=True)
class NoCache:
    seen: int  # tokens processed so far

    def tensors(self) -> tuple[Tensor, ...]:
        return ()


class NoMixerLayer(nn.Module):
    """forward(x, cache) -> (zeros, or x times the one matrix of a `linear` layer; a NoCache)."""

    RUNS = frozenset({"linear"})  # spec fields this layer runs (build_layer refuses others)

    def __init__(self, spec: NoMixer, d_model: int, *, seed: int = 0, device=None, dtype=torch.float32):
        super().__init__()
        self.spec, self.d_model = spec, d_model
        self.linear = nn.Linear(d_model, d_model, bias=False) if spec.linear else None
        _init(self, seed, device, dtype)

    def forward(self, x: Tensor, cache: NoCache | None = None) -> tuple[Tensor, NoCache]:
        out = torch.zeros_like(x) if self.linear is None else self.linear(x)  # (B, T, E)
        return out, NoCache((cache.seen if cache else 0) + x.shape[1])


LAYERS = {NoMixer: NoMixerLayer}
