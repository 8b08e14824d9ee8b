"""The reference torch layer for any layer spec, found through one table.

Each layer module names the spec types it implements in a `LAYERS` dict; this module imports every
layer module in the folder, so a new design's layer is one new file.

Each layer class lists in `RUNS` the spec fields it runs. `build_layer` refuses a spec that sets any
other field (a value other than the field's default, or any value of a field without one), so a layer
never silently runs a different design from the one its spec describes, and a field added to a spec
later is refused until a layer says it runs it.

A layer made of other layers (`parallel.py`) sets `BUILDS_PARTS`; `build_layer` then hands it itself as
`build_part`, so that module need not import this one (which imports it: a cycle).
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil

import torch
from torch import nn

import core.layers

_LAYERS: dict[type, type[nn.Module]] = {}
for _m in pkgutil.iter_modules(core.layers.__path__):
    if _m.name != "build":
        _LAYERS.update(getattr(importlib.import_module(f"core.layers.{_m.name}"), "LAYERS", {}))


def _default(f: dataclasses.Field) -> object:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def unrun_fields(layer_cls: type, spec) -> list[str]:
    """Fields `spec` sets that `layer_cls` does not list in its `RUNS`, in declaration order."""
    runs = getattr(layer_cls, "RUNS", frozenset())
    return [
        f.name
        for f in dataclasses.fields(spec)
        if f.name not in runs and (_default(f) is dataclasses.MISSING or getattr(spec, f.name) != _default(f))
    ]


def build_layer(spec, d_model: int, *, seed: int = 0, device=None, dtype=torch.float32) -> nn.Module:
    """The reference layer for a spec (GQA, MLA, DSA, DeepSeek V4 compressed, ...); TypeError for a spec
    type no layer module implements, NotImplementedError naming a field the layer does not run."""
    try:
        cls = _LAYERS[type(spec)]
    except KeyError:
        raise TypeError(f"no reference layer for {type(spec).__name__}") from None
    unrun = unrun_fields(cls, spec)
    if unrun:
        shown = ", ".join(f"{name}={getattr(spec, name)!r}" for name in unrun)
        raise NotImplementedError(f"the reference {cls.__name__} layer does not run {shown} of {type(spec).__name__}.")
    if getattr(cls, "BUILDS_PARTS", False):
        return cls(spec, d_model, seed=seed, device=device, dtype=dtype, build_part=build_layer)
    return cls(spec, d_model, seed=seed, device=device, dtype=dtype)
