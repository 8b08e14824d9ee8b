"""Storage formats of cached numbers and of weights, and the bytes one stored vector takes.

A cached tensor is a set of vectors (one key head of one token, one latent, ...). Each vector of
`width` elements is stored in `bits` per element, rounded up to whole bytes, plus one scale group
of `scale_bytes` for every `group_size` elements where the format has per-group scales, plus
`vector_extra_bytes` per vector where the format stores something per vector (TurboQuant's norm).
"""

from __future__ import annotations

from dataclasses import dataclass
from math import ceil


@dataclass(frozen=True)
class StorageFormat:
    name: str
    bits: float  # bits per stored element (an average for mixed-precision formats)
    group_size: int = 0  # elements sharing one scale group; 0: no per-group scales
    scale_bytes: int = 0  # bytes stored per group: scale, plus a zero point when asymmetric
    description: str = ""
    vector_extra_bytes: int = 0  # bytes stored once per vector (TurboQuant: the vector's fp16 norm)
    whole_blocks: bool = False  # llama.cpp block formats: a row must be a whole number of blocks
    scales: str = ""  # what each group's (or vector's) stored bytes are, e.g. "fp16 scale + fp16 zero point"

    def vector_bytes(self, width: int) -> int:
        """Bytes of one stored vector of `width` elements:
        ceil(width*bits/8) + ceil(width/group_size)*scale_bytes + vector_extra_bytes. A block format
        (`whole_blocks`) refuses a width that is not a whole number of blocks, as llama.cpp does."""
        if self.whole_blocks and width % self.group_size:
            raise ValueError(
                f"{self.name} stores rows in blocks of {self.group_size} values; a row of {width:,} values is not "
                f"a whole number of blocks (llama.cpp refuses it)."
            )
        data = ceil(width * self.bits / 8)
        groups = ceil(width / self.group_size) if self.group_size else 0
        return data + groups * self.scale_bytes + self.vector_extra_bytes

    @property
    def bits_per_element(self) -> float:
        """Average stored bits per element including scales (for a width that fills whole groups)."""
        extra = 8 * self.scale_bytes / self.group_size if self.group_size else 0.0
        return self.bits + extra


# llama.cpp's block formats that `--cache-type-k/-v` accepts (ggml's type table, ggml-common.h): blocks of
# 32 values, each with an fp16 scale `d` (and an fp16 minimum `m` for the _1 types). Bytes per block:
# q8_0 34, q4_0 18, q4_1 20, q5_0 22, q5_1 24, iq4_nl 18 (4-bit indices into a fixed non-linear table).
_GGML_BLOCKS = (
    ("q8_0", 8, 2, "int8 values + an fp16 scale per block of 32 (8.5 bits per value)"),
    ("q4_0", 4, 2, "4-bit values + an fp16 scale per block of 32 (4.5 bits per value)"),
    ("q4_1", 4, 4, "4-bit values + an fp16 scale and an fp16 minimum per block of 32 (5 bits per value)"),
    ("q5_0", 5, 2, "5-bit values + an fp16 scale per block of 32 (5.5 bits per value)"),
    ("q5_1", 5, 4, "5-bit values + an fp16 scale and an fp16 minimum per block of 32 (6 bits per value)"),
    ("iq4_nl", 4, 2, "4-bit indices into a non-linear table + an fp16 scale per block of 32 (4.5 bits per value)"),
)


def _ggml(name: str, bits: int, scale_bytes: int, what: str) -> StorageFormat:
    scales = "fp16 scale" if scale_bytes == 2 else "fp16 scale + fp16 minimum"
    return StorageFormat(name, bits, 32, scale_bytes, f"llama.cpp {name}: {what}", whole_blocks=True, scales=scales)


CACHE_DTYPES: dict[str, StorageFormat] = {
    f.name: f
    for f in (
        StorageFormat("fp32", 32, description="IEEE float32, no scales"),
        StorageFormat("bf16", 16, description="bfloat16, no scales"),
        StorageFormat("fp16", 16, description="float16, no scales"),
        StorageFormat(
            "fp8",
            8,
            description="float8 e4m3 with one scale per tensor (a constant, not stored per token)",
            scales="one scale per tensor, not stored per token",
        ),
        StorageFormat(
            "int8", 8, 64, 2, "int8, symmetric, one fp16 scale per group of 64 values (+0.25 bit)", scales="fp16 scale"
        ),
        StorageFormat(
            "int4",
            4,
            64,
            4,
            "int4 packed two per byte, asymmetric, an fp16 scale and an fp16 zero point per "
            "group of 64 values (+0.5 bit), as in KIVI (arXiv 2402.02750)",
            scales="fp16 scale + fp16 zero point",
        ),
        StorageFormat(
            "tq3.5",
            3.5,
            description="TurboQuant-style (arXiv 2504.19874): random rotation, per-coordinate Lloyd-Max "
            "codebooks, 3.5 bits per channel on average (outlier channels get one bit more), an fp16 norm "
            "per vector; the paper reports quality neutrality at 3.5 bits",
            vector_extra_bytes=2,
            scales="fp16 norm",
        ),
        StorageFormat(
            "tq2.5",
            2.5,
            description="TurboQuant-style at 2.5 bits per channel on average plus an fp16 norm per vector; "
            "the paper reports marginal quality loss at 2.5 bits",
            vector_extra_bytes=2,
            scales="fp16 norm",
        ),
        *(_ggml(*t) for t in _GGML_BLOCKS),
    )
}

LEGEND_WIDTH = 128  # values in the vector the legend prices: one key head of most presets


@dataclass(frozen=True)
class DtypeRow:
    """One cache dtype side by side with the others, priced on a vector of `width` values by `vector_bytes`."""

    dtype: str
    code_bits: float  # bits of each stored value before scales
    bits_per_value: float  # 8 x vector_bytes(width) / width: scales, zero points and norms included
    vector_bytes: int  # bytes of one stored vector of `width` values
    block: str  # the values one stored scale serves
    scale_format: str  # what is stored per block (or per vector)
    description: str


def cache_dtype_legend(width: int = LEGEND_WIDTH) -> tuple[DtypeRow, ...]:
    """Every cache dtype of CACHE_DTYPES priced on one vector of `width` values, from the same `vector_bytes`
    the accounting multiplies by rows: q8_0 34 B per 32 values (8.5 bits), int8 8.25 bits (a 2-byte scale per
    64), tq3.5 3.625 bits at width 128 (its 2-byte norm spread over the vector)."""
    rows = []
    for f in CACHE_DTYPES.values():
        if f.group_size:
            block = f"{f.group_size} values"
        elif f.vector_extra_bytes:
            block = "one vector"
        else:
            block = "none"
        per_block = f.scale_bytes or f.vector_extra_bytes
        stored = f"{f.scales} ({per_block} B)" if per_block else f.scales or "none"
        n = f.vector_bytes(width)
        rows.append(DtypeRow(f.name, f.bits, 8 * n / width, n, block, stored, f.description))
    return tuple(rows)


# Weight formats: the bytes a parameter takes in memory.
WEIGHT_DTYPES: dict[str, StorageFormat] = {
    f.name: f
    for f in (
        StorageFormat("fp32", 32, description="float32"),
        StorageFormat("bf16", 16, description="bfloat16"),
        StorageFormat("fp16", 16, description="float16"),
        StorageFormat("fp8", 8, 128 * 128, 4, "fp8 e4m3 with an fp32 scale per 128x128 block (DeepSeek-V3)"),
        StorageFormat("int8", 8, 128, 2, "int8 with an fp16 scale per 128 values"),
        StorageFormat("mxfp4", 4, 32, 1, "MXFP4: fp4 e2m1 with an 8-bit shared exponent per 32 values"),
        StorageFormat("int4", 4, 128, 4, "int4 with an fp16 scale and zero point per 128 values"),
    )
}


# float64 is what the reference layers use for exact checks; it is not offered as a cache format.
_REFERENCE = {"fp64": StorageFormat("fp64", 64, description="float64, for exact checks of the reference layers")}


def cache_dtype(name: str) -> StorageFormat:
    try:
        return CACHE_DTYPES.get(name) or _REFERENCE[name]
    except KeyError:
        raise ValueError(f"unknown cache dtype {name!r}; choose one of {', '.join(CACHE_DTYPES)}.") from None


def weight_dtype(name: str) -> StorageFormat:
    try:
        return WEIGHT_DTYPES[name]
    except KeyError:
        raise ValueError(f"unknown weight dtype {name!r}; choose one of {', '.join(WEIGHT_DTYPES)}.") from None


def weights_label(weight_dtype: str, native: tuple[str, str, str]) -> str:
    """The weights option in words. "native" is the checkpoint's own formats, `native` = (embedding and lm_head,
    routed experts, the rest) as `ModelSpec.native_weights` holds them: DeepSeek-V3's "released: fp8, bf16
    embedding and lm_head", gpt-oss's "released: bf16, mxfp4 experts", Llama's "released: bf16". Any other option
    is one format for every weight, named as it is."""
    if weight_dtype != "native":
        return weight_dtype
    embed, experts, rest = native
    label = f"released: {rest}"
    if experts != rest:
        label += f", {experts} experts"
    if embed != rest:
        label += f", {embed} embedding and lm_head"
    return label
