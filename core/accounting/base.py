r"""What every design's accounting module provides, and the one dispatch that finds it.

A design module under `core/accounting/designs/` subclasses `Design` for its spec type(s) and registers
an instance with `@register(SpecType)`. Model-level totals (`core.accounting.totals`) only ever ask
`design_of(layer_spec)`; a spec type nobody registered raises TypeError naming it, so no layer is ever
counted as some other design by default.

Conventions (docs/facts.md section 1): per layer, per sequence; elements and bytes are ints; FLOPs are 2 per
multiply-add and cover the matmuls of the block (projections) and of the core (scores and value mixing
over the attended tokens, indexer scoring, recurrent-state products).

Besides the numbers, a design says how to show them and how vLLM plans them; a new design implements:
- `latex_terms(attn, fmt, layout)`: its cache at context N as `LatexTerm`s, each the bytes per kept
  vector (in symbols and as a number) times how many vectors it keeps, as LaTeX with the config's numbers:
  `N`, `\min(N, 4{,}096)`, `((N - 1) \bmod 8{,}192 + 1)`, `\lfloor N/4 \rfloor`. Summed over the terms,
  bytes x count must equal `cache_rows` at every N ([] when nothing grows with N): tests/test_formulas.py
  evaluates them on every preset's layers and on its `samples()` (add one for a design no preset uses).
- `vllm_kind(attn)`: the kind of vLLM KV-cache spec its pages get, as `core.accounting.planner` groups
  layers: `("full",)`, `("sliding", w)`, `("chunked", c)`; None when vLLM does not plan it block by block
  (recurrent state, compressed entries, no cache).
- optionally `latex_model(layers, fmt, layout)`: the closed form of a model whose every layer is this design (GQA's
  2 l n_kv d_h b), in symbols = numbers; None (the default) shows the sum of the terms instead.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from core.model.dtypes import StorageFormat

LAYOUTS = ("latent", "materialised", "fp8_ds_mla")
MODES = ("absorbed", "materialised")


class CacheRows(NamedTuple):
    """One tensor one layer keeps for one sequence: `rows` vectors of `width` elements."""

    tensor: str
    rows: int  # vectors per sequence
    width: int  # elements per vector
    bytes_per_row: int


class LatexTerm(NamedTuple):
    """One term of a layer's cache at context N, for the formulas shown with live numbers: `count` vectors
    of `bytes` each (`symbols` is that size in symbols)."""

    symbols: str  # bytes per kept vector in symbols: r"2\,n_{kv}\,d_h\,b", r"(d + d^I)\,b"
    bytes: int  # the same in bytes, for this layer and cache format
    count: str  # vectors kept at context N, LaTeX with numbers: "N", r"\min(N, 4{,}096)", r"\lfloor N/4 \rfloor"


def latex_int(x: int) -> str:
    """Thousands separators that LaTeX does not space out: 327{,}680."""
    return f"{x:,}".replace(",", "{,}")


def latex_b(fmt: StorageFormat) -> str:
    """b, bytes per element of `fmt` (scales not included): 2, 1, 0.5."""
    return f"{fmt.bits / 8:g}"


def latex_scales(fmt: StorageFormat) -> str:
    """What follows b when `fmt` also stores scales (b counts the elements only), with its numbers: s bytes per
    group of g values, e bytes per vector."""
    extra = []
    if fmt.group_size:
        extra.append(rf"s = {fmt.scale_bytes}\ \text{{B per }} g = {latex_int(fmt.group_size)} \text{{ values}}")
    if fmt.vector_extra_bytes:
        extra.append(rf"e = {fmt.vector_extra_bytes}\ \text{{B per vector}}")
    return rf"\ (+\,{', '.join(extra)})" if extra else ""


def latex_vectors(vectors: Sequence[tuple[Sequence[str], Sequence[int]]], fmt: StorageFormat) -> tuple[str, str] | None:
    r"""Bytes of one stored vector of each of `vectors` in `fmt`, as (symbols, numbers) LaTeX that can be
    multiplied by a count as it is. A vector is (the symbols of its parts, their widths): MLA's latent
    layout is [(["d_c"], [512]), (["d_h^R"], [64])], a materialised key [(["d_h", "d_h^R"], [128, 64])].
    The elements take b bytes each; a format with scale groups adds s bytes per group of g elements of a vector
    (s \lceil w/g \rceil), one that stores bytes per vector adds e each, so int8 on MLA's latent reads
    ((d_c + d_h^R) b + s (\lceil d_c/g \rceil + \lceil d_h^R/g \rceil)) = ((512 + 64) x 1 + 2 x (8 + 1)).
    The numbers equal `fmt.vector_bytes` summed over the vectors. None when a vector's elements do not fill
    whole bytes (ceil(w b) would not be w b); the caller then shows the bytes per layer instead."""
    widths = [sum(w) for _, w in vectors]
    if any(w * fmt.bits % 8 for w in widths):
        return None
    syms = [s for parts, _ in vectors for s in parts]
    nums = [latex_int(w) for _, ws in vectors for w in ws]
    sym = (f"({' + '.join(syms)})" if len(syms) > 1 else syms[0]) + r"\,b"
    num = (f"({' + '.join(nums)})" if len(nums) > 1 else nums[0]) + rf" \times {latex_b(fmt)}"
    if not (fmt.group_size or fmt.vector_extra_bytes):
        return sym, num
    if fmt.group_size:
        names = [(f"({' + '.join(parts)})" if len(parts) > 1 else parts[0]) for parts, _ in vectors]
        groups = [str(-(-w // fmt.group_size)) for w in widths]
        ceils = " + ".join(rf"\lceil {n}/g \rceil" for n in names)
        sym += rf" + s\,({ceils})" if len(names) > 1 else rf" + s\,{ceils}"
        num += rf" + {fmt.scale_bytes} \times " + (f"({' + '.join(groups)})" if len(groups) > 1 else groups[0])
    if fmt.vector_extra_bytes:
        sym += rf" + {len(vectors)}\,e" if len(vectors) > 1 else " + e"
        num += (
            rf" + {len(vectors)} \times {fmt.vector_extra_bytes}"
            if len(vectors) > 1
            else f" + {fmt.vector_extra_bytes}"
        )
    return f"({sym})", f"({num})"


@dataclass(frozen=True)
class Params:
    matmul: int  # weights of matrix multiplies (what costs 2 FLOPs each per token)
    other: int = 0  # norms, biases, embeddings, scalars, convolution taps

    @property
    def total(self) -> int:
        return self.matmul + self.other

    def __add__(self, o: Params) -> Params:
        return Params(self.matmul + o.matmul, self.other + o.other)

    def scale(self, k: int) -> Params:
        return Params(self.matmul * k, self.other * k)


def sum_min(a: int, b: int, c: int) -> int:
    """sum_{p=a}^{b} min(p, c)."""
    if b < a:
        return 0
    lo_end = min(b, c)
    s = (lo_end - a + 1) * (a + lo_end) // 2 if lo_end >= a else 0
    if b > c:
        s += (b - max(a, c + 1) + 1) * c
    return s


def tp_split(field: str, n: int, tp: int) -> int:
    """n / tp when tensor parallelism can split `field` evenly; ValueError naming it otherwise."""
    if n % tp:
        raise ValueError(f"tensor parallel size {tp} does not divide {field} ({n}).")
    return n // tp


def check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"unknown MLA mode {mode!r}; choose absorbed or materialised.")


class Design:
    """The accounting of one attention (or recurrent) design. Every method is per layer, one sequence.

    Subclasses implement all abstract methods; the few defaults here are the truth for every design
    that does not override them (no fixed-size state, no indexer, every layout is the default one).
    """

    layouts: tuple[str, ...] = ("latent",)  # cache layouts this design can be stored in

    def cache_rows(self, attn, context: int, fmt: StorageFormat, layout: str) -> list[CacheRows]:
        """Tensors that grow with the context (keys, values, latents, entries, windows)."""
        raise NotImplementedError

    def state_rows(self, attn) -> list[CacheRows]:
        """Fixed-size per-sequence state (recurrent and convolution state), in the layer's own formats:
        the same at any context."""
        return []

    def read_rows(self, attn, context: int, rows: CacheRows) -> int:
        """How many of `rows`' vectors one decoded token reads (sparse designs read fewer)."""
        return rows.rows

    def attended(self, attn, context: int) -> int:
        """Tokens (or compressed entries) one query at position `context` attends to, itself included."""
        raise NotImplementedError

    def indexed_rows(self, attn, context: int) -> int:
        """Keys an indexer scores for one query; 0 without an indexer."""
        return 0

    def index_flops_per_row(self, attn) -> int:
        return 0

    def pair_flops(self, attn, mode: str) -> int:
        """Core FLOPs per (query token, attended key) pair, all heads."""
        raise NotImplementedError

    def decode_core_flops(self, attn, context: int, mode: str) -> int:
        """Core FLOPs of one new token at `context`: attended x pair FLOPs + indexed rows x indexer FLOPs."""
        return self.attended(attn, context) * self.pair_flops(attn, mode) + self.indexed_rows(
            attn, context
        ) * self.index_flops_per_row(attn)

    def prefill_core_flops(self, attn, n_tokens: int, mode: str, causal: bool) -> int:
        raise NotImplementedError

    def params(self, attn, hidden: int) -> Params:
        """Weights of one block (projections, norms inside the block, biases)."""
        raise NotImplementedError

    def describe(self, attn, layers: str, multi: bool) -> str:
        """One sentence a person can check against the config. `layers` is "12 of 48 layers" or
        "all 61 layers"; `multi` says the model mixes layer kinds."""
        raise NotImplementedError

    def tp_shard(self, attn, tp: int):
        """What one of `tp` tensor-parallel ranks holds of this layer, as a spec of the same type: its
        cache, state and weights are that rank's (vLLM's sharding). ValueError naming the field when `tp`
        cannot split the layer."""
        raise NotImplementedError

    def tp_params(self, attn, hidden: int, tp: int) -> Params:
        """Weights one of `tp` ranks holds of this block: those of its shard (replicated parts whole)."""
        return self.params(self.tp_shard(attn, tp), hidden)

    def latex_terms(self, attn, fmt: StorageFormat, layout: str) -> list[LatexTerm]:
        """`cache_rows` at context N as LaTeX terms: sum of bytes x count over the terms is the bytes this
        layer caches at any N. [] when nothing grows with the context (state is `state_rows`'s)."""
        raise NotImplementedError(f"{type(self).__name__} does not say how to write its cache as a formula")

    def latex_model(self, layers: tuple, fmt: StorageFormat, layout: str) -> str | None:
        """The cache of a model whose every layer (`layers`, one spec per layer) is of this design, in symbols
        = numbers, e.g. "2 l n_kv d_h b = 2 x 80 x 8 x 128 x 2" as LaTeX. The caller adds the bytes per token
        when every term counts N, else the sum of `latex_terms`. None (the default): no closed form, the
        caller shows only the sum of `latex_terms`."""
        return None

    def vllm_kind(self, attn) -> tuple | None:
        """The vLLM KV-cache spec kind of this layer's pages (`("full",)`, `("sliding", w)`, `("chunked",
        c)`), by which the planner groups layers; None when vLLM does not plan it block by block."""
        raise NotImplementedError(f"{type(self).__name__} does not say how vLLM allocates its cache")


class RecurrentDesign(Design):
    """A layer that keeps no keys or values but a fixed-size state (linear attention, Mamba): nothing grows
    with the context, nothing is attended to; each token costs the state products."""

    def state_flops_per_token(self, attn) -> int:
        raise NotImplementedError

    def cache_rows(self, attn, context: int, fmt: StorageFormat, layout: str) -> list[CacheRows]:
        return []

    def attended(self, attn, context: int) -> int:
        return 0  # the past lives in the state

    def pair_flops(self, attn, mode: str) -> int:
        check_mode(mode)
        return 0

    def decode_core_flops(self, attn, context: int, mode: str) -> int:
        check_mode(mode)
        return self.state_flops_per_token(attn) if context else 0

    def prefill_core_flops(self, attn, n_tokens: int, mode: str, causal: bool) -> int:
        """The recurrent form: one state step per token (chunked kernels do more work, not less)."""
        return n_tokens * self.state_flops_per_token(attn)


_DESIGNS: dict[type, Design] = {}


def register(*spec_types: type) -> Callable[[type[Design]], type[Design]]:
    """Class decorator: the decorated Design handles exactly these spec types (not their subclasses)."""

    def deco(cls: type[Design]) -> type[Design]:
        for t in spec_types:
            if t in _DESIGNS:
                raise RuntimeError(f"{t.__name__} already has an accounting module.")
            _DESIGNS[t] = cls()
        return cls

    return deco


def design_of(attn: object) -> Design:
    """The accounting of `attn`'s design; TypeError naming the type when there is none."""
    try:
        return _DESIGNS[type(attn)]
    except KeyError:
        raise TypeError(f"no accounting for layer spec {type(attn).__name__}") from None


def registered() -> dict[type, Design]:
    """Every spec type with an accounting module, and its design (a copy: `register` is the only way in)."""
    return dict(_DESIGNS)
