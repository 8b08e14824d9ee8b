"""Bytes-per-token formulas as LaTeX, with the live numbers filled in (for st.latex). Each design writes its
own terms (`Design.latex_terms`) and, where it has one, its closed form (`Design.latex_model`)."""

from __future__ import annotations

from core.accounting.base import design_of, latex_int, latex_scales
from core.accounting.totals import bytes_by_layer, kv_bytes_per_token
from core.model.dtypes import cache_dtype
from core.model.specs import ModelSpec

LAYOUT = "latent"  # the formulas show the default cache layout of every design (docs/facts.md section 1)


def bytes_per_token_latex(spec: ModelSpec, kv_dtype: str = "bf16") -> str:
    """The formula for a model's cache bytes (latent layout), symbols then numbers then the result.
    A model whose layers are all of one design gets that design's closed form when it has one (GQA
    2 l n_kv d_h b, MLA l (d_c + d_h^R) b, V4's sum over its layer kinds); every model gets the sum of
    layers x bytes per kept vector x vectors kept at context N over its designs' terms, plus the fixed state.
    When the cache grows by the same bytes every token, the formula ends in that number (B/token).
    TypeError for a layer spec no design is registered for."""
    fmt = cache_dtype(kv_dtype)
    layers = tuple(spec.attention)
    designs = [design_of(a) for a in layers]
    groups: dict[tuple[int, str], int] = {}  # (bytes per kept vector, count at N) -> layers keeping them
    state: dict[int, int] = {}  # fixed state bytes of one layer -> layers
    fixed_bytes = bytes_by_layer(layers, cache=False, state=True)
    for a, d, fixed in zip(layers, designs, fixed_bytes, strict=True):
        for t in d.latex_terms(a, fmt, LAYOUT):
            if t.bytes:
                groups[t.bytes, t.count] = groups.get((t.bytes, t.count), 0) + 1
        if fixed:
            state[fixed] = state.get(fixed, 0) + 1
    one = designs[0] if all(type(d) is type(designs[0]) for d in designs) else None
    model = one.latex_model(layers, fmt, LAYOUT) if one else None
    if model and not state and all(count == "N" for _, count in groups):
        total = kv_bytes_per_token(spec, kv_dtype)
        return rf"{model}{latex_scales(fmt)} = {latex_int(total)}\ \text{{B/token}}"
    terms = " + ".join(rf"{n} \times {latex_int(b)} \times {count}" for (b, count), n in groups.items()) or "0"
    if state:
        fixed = " + ".join(rf"{n} \times {latex_int(b)}" for b, n in state.items())
        terms += r" + \underbrace{" + fixed + r"}_{\text{fixed state}}"
    if model:
        return rf"\begin{{aligned}}\text{{bytes}}(N) &= {model} \\ &= {terms}\ \text{{B}}\end{{aligned}}"
    return rf"\text{{bytes}}(N) = {terms}\ \text{{B}}"


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
    groups, with the numbers (exact plans only)."""
    stage = plan.stages[plan.deciding_stage]
    dp = rf" \times {plan.parallel.dp}" if plan.parallel.dp > 1 else ""
    dp_symbol = r" \times \text{DP}" if dp else ""
    return (
        r"\begin{aligned}\text{concurrency} &= \frac{\lfloor \text{budget} / \text{bytes per block} \rfloor}"
        rf"{{\text{{blocks per request}}}}{dp_symbol}"
        rf" = \frac{{\lfloor {latex_int(max(stage.kv_budget_bytes, 0))} / {latex_int(stage.block_bytes)} \rfloor}}"
        rf"{{{latex_int(plan.blocks_per_request)}}}{dp} \\ &= \frac{{{latex_int(plan.num_blocks)}\ \text{{blocks}}}}"
        rf"{{{latex_int(plan.blocks_per_request)}\ \text{{blocks per request}}}}{dp} = {plan.max_concurrency:.2f}\times"
        r"\end{aligned}"
    )
