"""The Memory planner's sentences that explain its pool with the plan's own numbers.

vLLM logs its "GPU KV cache size" as concurrency x context, not blocks x block size: a model whose layers form
several KV-cache groups (full attention beside sliding-window or chunked local layers, Llama 4, Gemma 3) spends
blocks in every group, and its windowed groups stop growing at their window, so a request can be longer than
that token count (vllm/v1/core/kv_cache_utils.py; docs/facts.md section 10). `pool_arithmetic` says so where the
page shows those numbers; every number in it comes from the plan, and a step it cannot reproduce is left out.
"""

from __future__ import annotations

from core.accounting import planner as pl


def _kind(kind: tuple) -> str:
    return {"full": "full-attention", "sliding": "sliding-window", "chunked": "chunked-attention"}[kind[0]]


def _bound(kind: tuple, in_flight: int) -> str:
    """What caps a windowed group's blocks, in words."""
    if kind[0] == "sliding":
        return f"its {kind[1]:,}-token window plus {in_flight:,} tokens in flight, at most, and one block more"
    return f"its {kind[1]:,}-token chunk plus {in_flight:,} tokens in flight, at most"


def pool_arithmetic(p: pl.Plan) -> list[str]:
    """Why the pool's tokens are not blocks x block size, and why the longest request can exceed them, with the
    plan's numbers; [] when the plan is an estimate or the tokens are simply blocks x block size."""
    g = p.groups
    if not p.exact or g is None or p.num_blocks is None or not p.blocks_per_request:
        return []
    block, nb, n, need = p.allocator.block_size, p.num_blocks, p.context, p.blocks_per_request
    in_flight = p.allocator.in_flight_tokens(p.parallel.pp)
    kinds: dict[tuple, int] = {}  # kind -> groups of it, full attention first
    for kind, _ in sorted(g.members, key=lambda m: m[0][0] != "full"):
        kinds[kind] = kinds.get(kind, 0) + 1
    out = []
    if p.kv_cache_tokens != nb * block:
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
