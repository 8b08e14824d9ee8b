"""The real-model sweep's methods: every cache compression core.lab.realquality measures on SmolLM2, by family,
name and setting, and the labels the page and links use. No torch, so the URL state can check a link's method
without loading a model."""

from __future__ import annotations

from dataclasses import dataclass

FAMILIES = ("none", "quantization", "eviction", "low rank")
QUANT = (
    "fp16", "fp8-e4m3", "fp8-e5m2", "q8_0", "int8-token", "int8-channel", "kivi-4bit", "q4_0", "int4-token",
    "int4-channel", "tq-4bit", "tq-3bit", "kivi-2bit", "int2-token", "int2-channel", "tq-2bit", "tq-2bit+qjl",
)  # fmt: skip
EVICTION = ("sliding window", "StreamingLLM", "H2O", "SnapKV")
BUDGETS = (64, 128, 256, 512)  # K tokens kept of the context (core.lab.realquality.CONTEXT)
# (RoPE pairs kept per kv head, latent ranks d_c): MHA2MLA's d_kv = 8, 16, 32 per kv head at 4 pairs are
# d_c = 24, 48, 96; the largest rank of each is no low-rank loss at all (partial RoPE alone); 32 pairs is full RoPE
# (the keys are cached whole, only the values go through the latent)
MLA_GRID = ((4, (24, 48, 96, 192, 360)), (16, (48, 96, 192, 288)), (32, (48, 96, 144, 192)))
LOW_RANK = ("SVD", "whitened SVD")


@dataclass(frozen=True)
class Method:
    """One compression of the real-model sweep: its family, its name there, and its setting."""

    family: str
    name: str
    setting: int | None = None  # tokens kept (eviction), latent rank d_c (low rank)
    pairs: int | None = None  # RoPE pairs kept per kv head (low rank)

    @property
    def series(self) -> str:
        """The line a method lies on in the Pareto picture: its family's variant, settings aside."""
        if self.family == "low rank":
            return f"MLA, {self.name}, {self.pairs} RoPE pairs"
        return self.name if self.family == "eviction" else self.family

    @property
    def label(self) -> str:
        if self.family == "eviction":
            return f"{self.name} {self.setting}"
        if self.family == "low rank":
            return f"MLA {self.name}, {self.pairs} RoPE pairs, d_c={self.setting}"
        return self.name


REFERENCE = Method("none", "fp32")


def methods() -> tuple[Method, ...]:
    """Every method the sweep measures, in the order the table lists them."""
    return (
        REFERENCE,
        Method("none", "bf16"),
        *(Method("quantization", q) for q in QUANT),
        *(Method("eviction", e, k) for e in EVICTION for k in BUDGETS),
        *(Method("low rank", n, r, p) for n in LOW_RANK for p, ranks in MLA_GRID for r in ranks),
    )


def method_of(label: str) -> Method:
    for m in methods():
        if m.label == label:
            return m
    raise ValueError(f"unknown method {label!r}.")
