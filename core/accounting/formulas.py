"""Cache formulas as LaTeX, with the live numbers filled in (for st.latex). Each design writes its own terms
(`Design.latex_terms`) and, where it has one, its closed form (`Design.latex_model`), in the cache layout and
format asked for."""

from __future__ import annotations

from core.accounting.base import design_of, latex_int
from core.accounting.totals import bytes_by_layer, kv_bytes_per_token
from core.model.dtypes import cache_dtype
from core.model.specs import CompressedSpec, ModelSpec

PER_TOKEN = r"\text{bytes/token}"
PER_REQUEST = r"\text{bytes of one request of } N \text{ tokens}"


def bytes_per_token_latex(spec: ModelSpec, kv_dtype: str = "bf16", layout: str = "latent") -> str:
    """The formula for a model's cache bytes in `kv_dtype` and `layout` (a layer whose design cannot be stored
    in `layout` in the default one, as the accounting does), left side, symbols, numbers, result.
    A model whose layers are all of one design gets that design's closed form when it has one (GQA
    2 l n_kv d_h b, MLA l (d_c + d_h^R) b, V4's sum over its layer kinds), scale groups written out; every
    model gets the sum of layers x bytes per kept vector x vectors kept at context N over its designs' terms,
    plus the fixed state. When the cache grows by the same bytes every token and no state is kept, the left
    side is bytes/token, the layers' terms lose their N and the formula ends in that number (B/token);
    otherwise it is the bytes of one request of N tokens (a window or a state is per request, not per token).
    TypeError for a layer spec no design is registered for."""
    fmt = cache_dtype(kv_dtype)
    layers = tuple(spec.attention)
    designs = [design_of(a) for a in layers]
    groups: dict[tuple[int, str], int] = {}  # (bytes per kept vector, count at N) -> layers keeping them
    state: dict[int, int] = {}  # fixed state bytes of one layer -> layers
    fixed_bytes = bytes_by_layer(layers, cache=False, state=True)
    for a, d, fixed in zip(layers, designs, fixed_bytes, strict=True):
        for t in d.latex_terms(a, fmt, layout if layout in d.layouts else "latent"):
            if t.bytes:
                groups[t.bytes, t.count] = groups.get((t.bytes, t.count), 0) + 1
        if fixed:
            state[fixed] = state.get(fixed, 0) + 1
    one = designs[0] if all(type(d) is type(designs[0]) for d in designs) else None
    model = one.latex_model(layers, fmt, layout if layout in one.layouts else "latent") if one else None
    if not state and groups and all(count == "N" for _, count in groups):
        total = kv_bytes_per_token(spec, kv_dtype, layout)
        per_layer = " + ".join(rf"{n} \times {latex_int(b)}" for (b, _), n in groups.items())
        return rf"{PER_TOKEN} = {model or per_layer} = {latex_int(total)}\ \text{{B/token}}"
    terms = " + ".join(rf"{n} \times {latex_int(b)} \times {count}" for (b, count), n in groups.items()) or "0"
    if state:
        fixed = " + ".join(rf"{n} \times {latex_int(b)}" for b, n in state.items())
        terms += r" + \underbrace{" + fixed + r"}_{\text{fixed state}}"
    if model:
        return rf"\begin{{aligned}}{PER_REQUEST} &= {model} \\ &= {terms}\ \text{{B}}\end{{aligned}}"
    return rf"{PER_REQUEST} = {terms}\ \text{{B}}"


def symbols_legend(spec: ModelSpec, kv_dtype: str = "bf16", layout: str = "latent") -> str:
    """What the cache formula's format symbols stand for, with their values, as one plain sentence: b, and where
    the format stores them s and g (a scale per group) or e (bytes per vector); and what fp8_ds_mla stores
    when it applies to one of the model's layers."""
    fmt = cache_dtype(kv_dtype)
    parts = [f"b = {fmt.bits / 8:g} bytes per value in {fmt.name}"]
    if fmt.group_size:
        parts.append(
            f"s = {fmt.scale_bytes} bytes of scale data (a scale, and a zero point or minimum where the format "
            f"keeps one) for each group of g = {fmt.group_size:,} values"
        )
    if fmt.vector_extra_bytes:
        parts.append(f"e = {fmt.vector_extra_bytes} bytes stored once per vector")
    if layout != "latent" and any(layout in design_of(a).layouts for a in spec.attention):
        if layout == "fp8_ds_mla":
            parts.append(
                "fp8_ds_mla stores MLA and DSA layers in its own format whatever the cache dtype: fp8 values with "
                "a 4-byte float32 scale per 128 and the rope key in bf16"
                + (
                    "; DeepSeek V4's fp8 entries and fp4 indexer keys"
                    if any(isinstance(a, CompressedSpec) for a in spec.attention)
                    else ""
                )
            )
        else:
            parts.append(f"{layout}: per-head keys and values, each in b bytes per value")
    return "; ".join(parts) + "."


def budget_latex(plan, hw) -> str:
    """KV budget per GPU = M x u - W_GPU - R (the deciding stage's weights), with the numbers (GiB); or the
    budget as given."""

    def gib(b: float) -> str:
        return f"{b / 2**30:,.2f}".replace(",", "{,}")

    if plan.allocator.kv_budget_bytes is not None:
        return rf"\text{{KV budget per GPU}} = {gib(plan.kv_budget_bytes_per_gpu)}\ \text{{GiB (given)}}"
    stage = plan.stages[plan.deciding_stage]
    return (
        rf"\text{{KV budget per GPU}} = M\,u - W_{{\text{{GPU}}}} - R = {gib(hw.memory_bytes)} \times "
        rf"{hw.utilization:g} - {gib(stage.weights.total)} - {gib(plan.reserved_bytes)} = "
        rf"{gib(stage.kv_budget_bytes)}\ \text{{GiB}}"
    )


def concurrency_latex(plan) -> str:
    """vLLM's maximum concurrency: floor(budget / bytes per block) / blocks per request, times the DP
    groups, with the numbers (exact plans only). A block holds `block_size` tokens of every layer of one
    KV-cache group (on the deciding stage's GPU), so its bytes are the block size times one token of them."""
    stage = plan.stages[plan.deciding_stage]
    block = plan.block_size  # a hybrid model's is raised until an attention page holds a state page
    dp = rf" \times {plan.parallel.dp}" if plan.parallel.dp > 1 else ""
    dp_symbol = r" \times \text{DP}" if dp else ""
    return (
        r"\begin{aligned}\text{bytes per block} &= \text{block size} \times \text{one token of a group's layers on "
        rf"one GPU}} = {block} \times {latex_int(stage.block_bytes // block)} = {latex_int(stage.block_bytes)} \\"
        r"\text{concurrency} &= \frac{\lfloor \text{budget} / \text{bytes per block} \rfloor}"
        rf"{{\text{{blocks per request}}}}{dp_symbol}"
        rf" = \frac{{\lfloor {latex_int(max(stage.kv_budget_bytes, 0))} / {latex_int(stage.block_bytes)} \rfloor}}"
        rf"{{{latex_int(plan.blocks_per_request)}}}{dp} \\ &= \frac{{{latex_int(plan.num_blocks)}\ \text{{blocks}}}}"
        rf"{{{latex_int(plan.blocks_per_request)}\ \text{{blocks per request}}}}{dp} = {plan.max_concurrency:.2f}\times"
        r"\end{aligned}"
    )
