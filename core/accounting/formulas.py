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
    """KV budget = n x M x u - W - R, with the numbers (GiB)."""

    def gib(b: float) -> str:
        return f"{b / 2**30:,.1f}".replace(",", "{,}")

    return (
        rf"\text{{KV budget}} = n\,M\,u - W - R = {hw.n_gpus} \times {gib(hw.memory_bytes)} \times "
        rf"{hw.utilization:g} - {gib(plan.weights_bytes)} - {gib(plan.reserved_bytes)} = "
        rf"{gib(plan.kv_budget_bytes)}\ \text{{GiB}}"
    )


def concurrency_latex(plan) -> str:
    """vLLM's maximum concurrency: floor(budget / block) / ceil(N / 16), with the numbers."""
    blocks_per_req = -(-plan.context // 16)
    return (
        r"\begin{aligned}\text{concurrency} &= \frac{\lfloor \text{budget} / (16 \times \text{bytes/token}) \rfloor}"
        r"{\lceil N / 16 \rceil}"
        rf" = \frac{{\lfloor {_n(plan.kv_budget_bytes)} / {_n(plan.block_bytes)} \rfloor}}"
        rf"{{\lceil {_n(plan.context)} / 16 \rceil}} \\ &= \frac{{{_n(plan.num_blocks)}\ \text{{blocks}}}}"
        rf"{{{_n(blocks_per_req)}\ \text{{blocks per request}}}} = {plan.max_concurrency:.2f}\times\end{{aligned}}"
    )
