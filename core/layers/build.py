"""The reference torch layer for any layer spec, found through one table.

Each layer module names the spec types it implements in a `LAYERS` dict; this module imports every
layer module in the folder, so a new design's layer is one new file.
"""

from __future__ import annotations

import importlib
import pkgutil

import torch
from torch import nn

import core.layers

_LAYERS: dict[type, type[nn.Module]] = {}
for _m in pkgutil.iter_modules(core.layers.__path__):
    if _m.name != "build":
        _LAYERS.update(getattr(importlib.import_module(f"core.layers.{_m.name}"), "LAYERS", {}))


def build_layer(spec, d_model: int, *, seed: int = 0, device=None, dtype=torch.float32) -> nn.Module:
    """The reference layer for a spec (GQA, MLA, DSA, DeepSeek V4 compressed, ...); TypeError for a spec
    type no layer module implements."""
    try:
        cls = _LAYERS[type(spec)]
    except KeyError:
        raise TypeError(f"no reference layer for {type(spec).__name__}") from None
    return cls(spec, d_model, seed=seed, device=device, dtype=dtype)
