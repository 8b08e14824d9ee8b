"""The needle test's compression menu: each method's name and the strengths the page offers. No torch, so the
URL state can check a link's method without loading a model; core.lab.needle applies them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Method:
    """One compression of the needle test: a method of METHODS and its strength (None for "none")."""

    name: str  # none, low rank, quantization, top-k, pooling, sliding window, StreamingLLM, H2O
    strength: int | str | None = None

    @property
    def label(self) -> str:
        return self.name if self.strength is None else f"{self.name} ({self.strength})"


METHODS = ("none", "low rank", "quantization", "top-k", "pooling", "sliding window", "StreamingLLM", "H2O")
STRENGTHS: dict[str, list] = {
    "low rank": [4, 8, 16, 32, 64],
    "quantization": ["int8-token", "int4-token", "tq-3bit", "tq-2bit", "int2-group32", "tq-1bit"],
    "top-k": [4, 8, 16, 32, 64],
    "pooling": [2, 4, 8, 16, 32],
    "sliding window": [8, 16, 32, 64, 128],
    "StreamingLLM": [8, 16, 32, 64, 128],
    "H2O": [8, 16, 32, 64, 128],
}
DEFAULT_STRENGTH = {
    "low rank": 16,
    "quantization": "int4-token",
    "top-k": 16,
    "pooling": 8,
    "sliding window": 64,
    "StreamingLLM": 64,
    "H2O": 64,
}
