"""Bytes-per-token formulas as LaTeX, with the live numbers filled in (for st.latex)."""

from __future__ import annotations

from core.accounting.base import design_of
from core.accounting.totals import kv_bytes_per_token
from core.model.dtypes import cache_dtype
from core.model.specs import CompressedSpec, DSASpec, GQASpec, MLASpec, ModelSpec


def bytes_per_token_latex(spec: ModelSpec, kv_dtype: str = "bf16") -> str:
    """The formula for a model's cache bytes per token, symbols then numbers then the result.
    Uniform GQA/MLA/DSA models get the closed form; hybrids and V4 get a per-layer-type sum."""
    fmt = cache_dtype(kv_dtype)
    b = fmt.bits / 8
    bstr = f"{b:g}"
    total = kv_bytes_per_token(spec, kv_dtype)
    a = spec.attention[0]
    l = spec.n_layers
    scales = r"\ (+\text{scales})" if fmt.group_size or fmt.vector_extra_bytes else ""
    uniform = len(set(spec.attention)) == 1
    if uniform and isinstance(a, GQASpec) and not (a.sliding_window or a.chunk_size) and a.v_dim == a.head_dim:
        return (
            rf"2\,l\,n_{{kv}}\,d_h\,b = 2 \times {l} \times {a.n_kv_heads} \times {a.head_dim} \times {bstr}"
            rf"{scales} = {_n(total)}\ \text{{B/token}}"
        )
    if uniform and isinstance(a, MLASpec):
        idx = r" + d^I" if isinstance(a, DSASpec) else ""
        idx_n = rf" + {a.index_head_dim}" if isinstance(a, DSASpec) else ""
        return (
            rf"l\,(d_c + d_h^R{idx})\,b = {l} \times ({a.kv_lora_rank} + {a.qk_rope_head_dim}{idx_n}) \times {bstr}"
            rf"{scales} = {_n(total)}\ \text{{B/token}}"
        )
    if all(isinstance(x, CompressedSpec) for x in spec.attention):
        return (
            r"\sum_{\text{CSA}} \tfrac{N}{4}(d + d^I)\,b + \sum_{\text{HCA}} \tfrac{N}{128}\,d\,b"
            r" + \sum_{\text{all}} \min(N, w)\,d\,b"
            rf",\quad d = {a.head_dim},\ d^I = {a.index_head_dim or 128},\ w = {a.sliding_window},\ b = {bstr}"
        )
    return r"\text{bytes}(N) = " + _per_group_sum(spec, fmt)


def _tokens(a) -> str:
    """Tokens a layer keeps at context N, as LaTeX."""
    if isinstance(a, GQASpec) and a.sliding_window:
        return rf"\min(N, {_n(a.sliding_window)})"
    if isinstance(a, GQASpec) and a.chunk_size:
        return rf"((N - 1) \bmod {_n(a.chunk_size)} + 1)"
    return "N"


def _per_group_sum(spec: ModelSpec, fmt) -> str:
    """One term per distinct layer shape: layers x bytes per token per layer x tokens kept, then the
    fixed-size state (linear attention, Mamba) per sequence, which does not depend on N."""
    groups: dict[object, int] = {}
    for a in spec.attention:
        groups[a] = groups.get(a, 0) + 1
    cache, state = [], []
    for a, n in groups.items():
        d = design_of(a)
        per_token = sum(r.bytes_per_row * r.rows for r in d.cache_rows(a, 1, fmt, "latent"))
        if per_token:
            cache.append(rf"{n} \times {_n(per_token)} \times {_tokens(a)}")
        fixed = sum(r.bytes_per_row * r.rows for r in d.state_rows(a))
        if fixed:
            state.append(rf"{n} \times {_n(fixed)}")
    out = " + ".join(cache) or "0"
    if state:
        out += r" + \underbrace{" + " + ".join(state) + r"}_{\text{fixed state}}"
    return out + r"\ \text{B}"


def _n(x: int) -> str:
    """Thousands separators that LaTeX does not space out: 327{,}680."""
    return f"{x:,}".replace(",", "{,}")


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
        rf" = \frac{{\lfloor {_n(max(stage.kv_budget_bytes, 0))} / {_n(stage.block_bytes)} \rfloor}}"
        rf"{{{_n(plan.blocks_per_request)}}}{dp} \\ &= \frac{{{_n(plan.num_blocks)}\ \text{{blocks}}}}"
        rf"{{{_n(plan.blocks_per_request)}\ \text{{blocks per request}}}}{dp} = {plan.max_concurrency:.2f}\times"
        r"\end{aligned}"
    )
