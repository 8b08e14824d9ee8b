"""The attention design of a model, said in words (for the planner and the CLI)."""

from __future__ import annotations

from core.accounting import designs  # noqa: F401  (registers every design's accounting)
from core.accounting.base import design_of
from core.model.specs import ModelSpec


def describe(spec: ModelSpec) -> list[str]:
    """Sentences a person can check against the config: what is cached per token and why. One sentence
    per distinct layer shape, in order of first appearance, then the parser's notes."""
    out: list[str] = []
    kinds = spec.layer_kinds
    seen: list[object] = []
    for a in spec.attention:
        if a in seen:
            continue
        seen.append(a)
        same = sum(1 for x in spec.attention if x == a)
        n_kind = kinds[a.kind]
        n = same if same != n_kind else n_kind
        layers = f"{n} of {spec.n_layers} layers" if n != spec.n_layers else f"all {n} layers"
        out.append(design_of(a).describe(a, layers, len(kinds) > 1 or n != spec.n_layers))
    out.extend(spec.notes)
    return out
