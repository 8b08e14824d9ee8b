"""Bytes-per-token formulas as LaTeX, with the live numbers filled in (for st.latex)."""

from __future__ import annotations

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
    kinds = spec.layer_kinds
    a = spec.attention[0]
    l = spec.n_layers
    scales = r"\ (+\text{scales})" if fmt.group_size or fmt.vector_extra_bytes else ""
    if len(kinds) == 1 and isinstance(a, GQASpec) and not a.sliding_window:
        return (
            rf"2\,l\,n_{{kv}}\,d_h\,b = 2 \times {l} \times {a.n_kv_heads} \times {a.head_dim} \times {bstr}"
            rf"{scales} = {_n(total)}\ \text{{B/token}}"
        )
    if len(kinds) == 1 and isinstance(a, MLASpec):
        idx = r" + d^I" if isinstance(a, DSASpec) else ""
        idx_n = rf" + {a.index_head_dim}" if isinstance(a, DSASpec) else ""
        return (
            rf"l\,(d_c + d_h^R{idx})\,b = {l} \times ({a.kv_lora_rank} + {a.qk_rope_head_dim}{idx_n}) \times {bstr}"
            rf"{scales} = {_n(total)}\ \text{{B/token}}"
        )
    if isinstance(a, CompressedSpec):
        return (
            r"\sum_{\text{CSA}} \tfrac{N}{4}(d + d^I)\,b + \sum_{\text{HCA}} \tfrac{N}{128}\,d\,b"
            r" + \sum_{\text{all}} \min(N, w)\,d\,b"
            rf",\quad d = {a.head_dim},\ d^I = {a.index_head_dim or 128},\ w = {a.sliding_window},\ b = {bstr}"
        )
    parts = []
    for kind, n in kinds.items():
        g = next(x for x in spec.attention if x.kind == kind)
        tok = rf"\min(N, {g.sliding_window})" if getattr(g, "sliding_window", None) else "N"
        parts.append(rf"{n} \times 2 \times {g.n_kv_heads} \times {g.head_dim} \times {bstr} \times {tok}")
    return r"\text{bytes}(N) = " + " + ".join(parts)


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
