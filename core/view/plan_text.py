"""The Memory planner's headline numbers, and the sentences that explain its pool with the plan's own numbers.

vLLM logs its "GPU KV cache size" as concurrency x context, not blocks x block size: a model whose layers form
several KV-cache groups (full attention beside sliding-window or chunked local layers, Llama 4, Gemma 3) spends
blocks in every group, and its windowed groups stop growing at their window, so a request can be longer than
that token count (vllm/v1/core/kv_cache_utils.py; docs/facts.md section 10). `pool_arithmetic` says so where the
page shows those numbers; every number in it comes from the plan, and a step it cannot reproduce is left out.
"""

from __future__ import annotations

from typing import NamedTuple

from core.accounting import planner as pl
from core.view.theme import token_label


class Headline(NamedTuple):
    label: str
    value: str
    help: str


def headlines(p: pl.Plan) -> list[Headline]:
    """Three numbers to lead with: requests of the context that fit at once, the longest request, and the
    memory-bound decode step (all from the plan already made), short enough for a metric: units in the label."""
    n = p.context
    if p.exact:
        how = (
            f"vLLM's 'Maximum concurrency': {p.num_blocks:,} blocks per GPU / {p.blocks_per_request:,} blocks per "
            f"request" + (f", times {p.parallel.dp} DP groups" if p.parallel.dp > 1 else "") + "."
        )
    else:
        how = (
            "An estimate in bytes: the KV memory per GPU / the bytes of one request (vLLM pages this model otherwise)."
        )
    if p.startup_error:
        how += " vLLM does not start with these settings (see below)."
    if p.max_context is None:
        longest, why = "unbounded", "Every layer keeps a bounded cache: any length fits."
    elif p.startup_error:
        longest, why = "none", "vLLM does not start with these settings."
    else:
        longest = f"{p.max_context:,}"
        each = f" for each of {p.batch:,} concurrent requests" if p.batch > 1 else ""
        if p.max_model_len is not None and p.max_context == p.max_model_len != p.pool_max_context:
            pool = "any length" if p.pool_max_context is None else f"{p.pool_max_context:,} tokens"
            why = f"vLLM's max_model_len; the cache alone could hold {pool}{each}."
        else:
            why = f"The longest request the cache holds{each}, vLLM's null block kept out."
    if p.step_seconds:
        step = f"{p.step_seconds * 1e3:,.2f} ms"
        step_why = (
            f"Memory-bound: each GPU reads its weights and its share of the cache at the datasheet bandwidth, so "
            f"{p.batch:,} request{'s' if p.batch > 1 else ''} decode at most {p.tokens_per_second:,.0f} tokens/s."
        )
    else:
        step, step_why = "unknown", "No bandwidth is known for this GPU."
    return [
        Headline(f"Concurrency at {token_label(n)} tokens", f"{p.max_concurrency:,.2f}x", how),
        Headline("Max context per request (tokens)", longest, why),
        Headline("Decode step ≥", step, step_why),
    ]


def _kind(kind: tuple) -> str:
    return {
        "full": "full-attention",
        "sliding": "sliding-window",
        "chunked": "chunked-attention",
        "mamba": "recurrent-state",
    }[kind[0]]


def _bound(kind: tuple, in_flight: int) -> str:
    """What caps a windowed group's blocks, in words."""
    if kind[0] == "mamba":
        return f"a request's state takes {kind[1]} page{'s' if kind[1] > 1 else ''} whatever its length"
    if kind[0] == "sliding":
        return f"its {kind[1]:,}-token window plus {in_flight:,} tokens in flight, at most, and one block more"
    return f"its {kind[1]:,}-token chunk plus {in_flight:,} tokens in flight, at most"


def pool_arithmetic(p: pl.Plan) -> list[str]:
    """Why the pool's tokens are not blocks x block size, and why the longest request can exceed them, with the
    plan's numbers; [] when the plan is an estimate or the tokens are simply blocks x block size."""
    g = p.groups
    if not p.exact or g is None or p.num_blocks is None or not p.blocks_per_request:
        return []
    block, nb, n, need = p.block_size, p.num_blocks, p.context, p.blocks_per_request
    in_flight = p.allocator.in_flight_tokens(p.parallel.pp)
    kinds: dict[tuple, int] = {}  # kind -> groups of it, full attention first
    for kind, _ in sorted(g.members, key=lambda m: m[0][0] != "full"):
        kinds[kind] = kinds.get(kind, 0) + 1
    out = []
    if p.kv_cache_tokens != nb * block and not p.allocator.release.tokens_from_concurrency:
        out.append(
            f"Why {p.kv_cache_tokens:,} tokens and not {nb:,} blocks x {block} = {nb * block:,}: vLLM "
            f"{p.allocator.hybrid.version}'s 'GPU KV cache size' counts whole blocks per KV-cache group, "
            f"{nb:,} // {g.n_groups} groups x {block} (from 0.20.1 it is concurrency x max_model_len)."
        )
    elif p.kv_cache_tokens != nb * block:
        s = (
            f"Why {p.kv_cache_tokens:,} tokens and not {nb:,} blocks x {block} = {nb * block:,}: vLLM's 'GPU KV cache "
            f"size' is concurrency x context, {nb:,} / {need:,} blocks per request x {n:,}"
        )
        if kinds == {("full",): 1}:
            s += f", and a request of {n:,} tokens takes ceil({n:,} / {block}) = {need:,} blocks"
            s += f" ({need * block:,} positions)."
        else:
            parts = []
            for kind, k in kinds.items():
                blocks = pl.group_blocks(kind, n, block, in_flight)
                where = f"the {_kind(kind)} group" if k == 1 else f"each of the {k} {_kind(kind)} groups"
                capped = kind[0] != "full" and blocks == pl.group_blocks(kind, pl.MAX_TOKENS, block, in_flight)
                parts.append(f"{blocks:,} blocks in {where}" + (f" ({_bound(kind, in_flight)})" if capped else ""))
            if g.n_groups > 1:
                sizes = sorted({len(layers) for _, layers in g.members})
                size = f"{sizes[0]}" if len(sizes) == 1 else f"{sizes[0]} to {sizes[-1]}"
                made = ", ".join(f"{k} {_kind(kind)}" for kind, k in kinds.items())
                s += (
                    f". The layers form {g.n_groups} KV-cache groups of {size} layers ({made}), a block holds {block} "
                    f"tokens of one group's layers, and a request of {n:,} tokens takes "
                )
            else:
                s += f". A block holds {block} tokens of every layer, and a request of {n:,} tokens takes "
            s += f"{' and '.join(parts)}: {need:,} blocks."
        out.append(s)
    full = kinds.get(("full",), 0)
    windowed = {kind: k for kind, k in kinds.items() if kind[0] != "full"}
    if full and windowed and p.pool_max_context:
        r, usable = p.requests_per_group, nb - 1
        most = {kind: pl.group_blocks(kind, pl.MAX_TOKENS, block, in_flight) for kind in windowed}
        cap = sum(k * most[kind] for kind, k in windowed.items())
        longest = ((usable // r - cap) // full) * block
        saturated = all(pl.group_blocks(kind, longest, block, in_flight) == most[kind] for kind in windowed)
        if longest == p.pool_max_context and saturated:  # the plan's own search found the same length
            free = f"{usable:,}" if r == 1 else f"floor({usable:,} / {r:,})"
            expr = f"({free} - {cap:,})" + (f" / {full}" if full > 1 else "") + f" x {block} = {longest:,} tokens"
            held = "one request of" if r == 1 else f"each of {r:,} requests up to"
            out.append(
                f"The longest request: its {'/'.join(_kind(kd) for kd in windowed)} groups never take more than "
                f"{cap:,} blocks, so the {usable:,} blocks vLLM hands out (block 0 is its null block) hold {held} "
                f"{expr}"
                + (f", more than the {p.kv_cache_tokens:,} above." if longest > (p.kv_cache_tokens or 0) else ".")
            )
    return out
