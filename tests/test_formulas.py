"""The formulas shown with live numbers carry the same numbers the accounting computes, in the cache layout and
format chosen (scales written out), and say on their left what they compute (bytes per token, or of one request).

Also proves that every registered design writes its own cache terms (LaTeX counts that evaluate to its
cache_rows at any context, in every layout and format) and says how vLLM pages it, that every preset's
formula renders in every cache format and its numbers are the accounting's, that V4's ratios and widths
come from the config, and that a layer spec no design registered raises TypeError.
"""

import re
from dataclasses import dataclass, replace

import pytest

from core.accounting import planner as pl
from core.accounting import totals as acc
from core.accounting.base import Design, LatexTerm, registered
from core.accounting.formulas import (
    PER_REQUEST,
    PER_TOKEN,
    budget_latex,
    bytes_per_token_latex,
    concurrency_latex,
    symbols_legend,
)
from core.model.dtypes import CACHE_DTYPES, cache_dtype
from core.model.gpus import GPUS
from core.model.presets import load_preset, preset_names
from core.model.specs import CompressedSpec, DenseMLP, GQASpec, Mamba1Spec, Mamba2Spec, MLASpec, ModelSpec, ParallelSpec


def test_bytes_per_token_formula_ends_in_the_accounted_total():
    for name, dtype in (("llama-3.1-70b", "bf16"), ("deepseek-v3", "bf16"), ("deepseek-v3.2", "fp8"), ("gpt2", "int8")):
        spec = load_preset(name)
        total = acc.kv_bytes_per_token(spec, dtype)
        assert bytes_per_token_latex(spec, dtype).endswith(f"{total:,}".replace(",", "{,}") + r"\ \text{B/token}")


def test_formula_shows_the_config_numbers():
    assert r"2 \times 80 \times 8 \times 128 \times 2" in bytes_per_token_latex(load_preset("llama-3.1-70b"))
    assert r"61 \times (512 + 64 + 128)" in bytes_per_token_latex(load_preset("deepseek-v3.2"))
    assert r"\min(N, 1{,}024)" in bytes_per_token_latex(load_preset("gemma-3-27b")) or r"\min(N, 1024)" in (
        bytes_per_token_latex(load_preset("gemma-3-27b"))
    )


def test_budget_and_concurrency_formulas_carry_the_plan():
    hw = pl.Hardware("H200", GPUS["H200"].memory_bytes, 4.8e12, 8, 0.9, 0)
    p = pl.plan(load_preset("llama-3.1-70b"), hw, 131_072)
    b = budget_latex(p, hw)
    assert r"131.32 \times 0.9" in b and f"{p.kv_budget_bytes_per_gpu / 2**30:,.2f}".replace(",", "{,}") in b
    c = concurrency_latex(p)
    assert f"{p.num_blocks:,}".replace(",", "{,}") in c and "8{,}192" in c and f"{p.max_concurrency:.2f}" in c


# ----------------------------------------------------------------------------- every design writes its own terms

CONTEXTS = (1, 2, 3, 127, 128, 129, 1000, 4096, 8193, 131_072, 1_048_576)
SAMPLE_DTYPES = ("bf16", "fp8", "int4", "tq3.5")


@dataclass(frozen=True)
class Unknown:
    """A layer spec no design registered."""

    kind = "unknown"
    design = "unknown"


def samples() -> dict[type, list]:
    """Every distinct layer spec of every preset, plus shapes no preset has (values wider than keys with a
    chunk, MLA without a rope key, a V4 ratio other than 4 and 128, several V4 head dims), by spec type."""
    extra = [
        GQASpec(8, 2, 64, v_head_dim=96, chunk_size=100),
        MLASpec(4, 32, 16, 0, 16),
        CompressedSpec(8, 64, 16, 64, 32),
        CompressedSpec(8, 128, 16, 4, 48, index_n_heads=4, index_head_dim=32, index_topk=8),
        Mamba1Spec(64, 16, 4, 8),  # Jamba, Falcon-H1 and Zamba2 have no preset (no verbatim config)
        ParallelSpec((GQASpec(8, 2, 64, sliding_window=100), Mamba2Spec(4, 16, 8))),
        ParallelSpec((GQASpec(8, 8, 32), Mamba2Spec(4, 16, 8)), sequential=True),
    ]
    out: dict[type, list] = {}
    for a in [a for name in preset_names() for a in load_preset(name).attention] + extra:
        if a not in out.setdefault(type(a), []):
            out[type(a)].append(a)
    return out


def evaluate(latex: str, n: int) -> int:
    """A count or sum the formulas write (N, min, floor, mod, x, +), as Python, at context `n`."""
    expr = latex.replace("{,}", "").replace(r"\times", "*").replace(r"\min", "min").replace(r"\bmod", "%")
    expr = re.sub(r"\\lfloor (.*?) \\rfloor", r"(\1)", expr).replace("/", "//")
    expr = re.sub(r"\\underbrace\{(.*)\}_\{\\text\{fixed state\}\}", r"(\1)", expr)
    assert re.fullmatch(r"[N0-9 ()+\-*/%,.min]*", expr), f"the test cannot read {latex!r}"
    return eval(expr, {"__builtins__": {}, "min": min, "N": n})


def test_every_registered_design_says_how_to_write_and_page_its_cache():
    """A design that forgets latex_terms or vllm_kind would fall back to Design's NotImplementedError."""
    found = samples()
    for spec_type, design in registered().items():
        name = spec_type.__name__
        assert type(design).latex_terms is not Design.latex_terms, f"{name}: latex_terms"
        assert type(design).vllm_kind is not Design.vllm_kind, f"{name}: vllm_kind"
        for a in found.get(spec_type, []):  # a design no preset uses yet: add a sample to samples()
            kind = design.vllm_kind(a)
            assert kind is None or (isinstance(kind, tuple) and kind[0] in ("full", "sliding", "chunked")), name
            for layout in design.layouts:
                terms = design.latex_terms(a, cache_dtype("bf16"), layout)
                assert all(isinstance(t, LatexTerm) and t.symbols and t.count for t in terms), name


def test_design_terms_sum_to_the_cached_bytes_at_every_context():
    """sum of bytes x count(N) over a layer's LaTeX terms = what its cache_rows hold at N, for every
    design, layout and cache format (a formula that said N where the layer keeps min(N, w) fails here)."""
    for spec_type, specs in samples().items():
        design = registered()[spec_type]
        for a in specs:
            for layout in design.layouts:
                for dtype in SAMPLE_DTYPES:
                    fmt = cache_dtype(dtype)
                    terms = design.latex_terms(a, fmt, layout)
                    for n in CONTEXTS:
                        cached = sum(r.rows * r.bytes_per_row for r in design.cache_rows(a, n, fmt, layout))
                        assert sum(t.bytes * evaluate(t.count, n) for t in terms) == cached, (a, layout, dtype, n)


def test_every_preset_renders_and_its_numbers_are_the_accounting():
    """Every shipped config in every cache format and layout: a formula ending in B/token says bytes/token on
    its left, ends in kv_bytes_per_token, and its product of config numbers (scales written out) is that
    number too; every other one says it is the bytes of one request of N tokens and ends in a sum of config
    numbers that equals the cache plus the fixed state at any context."""
    for name in preset_names():
        spec = load_preset(name)
        for dtype in CACHE_DTYPES:
            for layout in acc.LAYOUTS:
                f = bytes_per_token_latex(spec, dtype, layout)
                assert "scales" not in f, (name, dtype, layout)
                if f.endswith(r"\ \text{B/token}"):
                    total = acc.kv_bytes_per_token(spec, dtype, layout)
                    parts = f.removesuffix(r"\ \text{B/token}").split(" = ")
                    assert parts[0] == PER_TOKEN and "N" not in parts[-2], (name, dtype, layout, f)
                    assert evaluate(parts[-1], 0) == total, (name, dtype, layout)
                    assert evaluate(parts[-2], 0) == total, (name, dtype, layout)
                    continue
                assert f.startswith((PER_REQUEST, r"\begin{aligned}" + PER_REQUEST)), (name, dtype, layout, f)
                assert f.endswith((r"\ \text{B}", r"\ \text{B}\end{aligned}")), (name, dtype, layout, f)
                numbers = f.removesuffix(r"\end{aligned}").removesuffix(r"\ \text{B}").split("= ")[-1]
                for n in CONTEXTS[::3]:
                    want = acc.kv_cache_bytes(spec, n, 1, dtype, layout) + acc.state_bytes(spec)
                    assert evaluate(numbers, n) == want, (name, dtype, layout, n)


def test_the_formula_follows_the_layout_and_writes_out_scales():
    """DeepSeek-V3 in vLLM's fp8_ds_mla stores 656 B per token per layer (512 fp8 latent + 4 fp32 scales + 64
    bf16 rope values), whatever the cache dtype: the formula shows that, not the bf16 latent's 576 x 2, and the
    concurrency formula's block is 16 tokens of it. int8 and q4_0 write their block scales as numbers."""
    v3 = load_preset("deepseek-v3")
    for dtype in ("bf16", "int8"):
        f = bytes_per_token_latex(v3, dtype, "fp8_ds_mla")
        assert r"61 \times (512 + 4 \times 4 + 2 \times 64) = 40{,}016\ \text{B/token}" in f, f
    hw = pl.Hardware("H200", GPUS["H200"].memory_bytes, 4.8e12, 8, 0.9, 0)
    p = pl.plan(v3, hw, 131_072, kv_dtype="auto", weight_dtype="native", layout="fp8_ds_mla")
    assert r"16 \times 40{,}016 = 640{,}256" in concurrency_latex(p)
    assert r"(512 + 64) \times 2 \times 128 \times 61" not in bytes_per_token_latex(v3, "bf16", "materialised")
    assert r"61 \times 128 \times (128 + 64 + 128) \times 2" in bytes_per_token_latex(v3, "bf16", "materialised")
    assert r"61 \times ((512 + 64) \times 1 + 2 \times (8 + 1)) = 36{,}234" in bytes_per_token_latex(v3, "int8")
    assert r"61 \times ((512 + 64) \times 0.5 + 2 \times (16 + 2)) = 19{,}764" in bytes_per_token_latex(v3, "q4_0")
    assert symbols_legend(v3, "int8", "fp8_ds_mla").startswith("b = 1 bytes per value in int8; s = 2 bytes")
    assert "fp8_ds_mla stores" in symbols_legend(v3, "int8", "fp8_ds_mla")
    assert "fp8_ds_mla" not in symbols_legend(load_preset("llama-3.1-70b"), "bf16", "fp8_ds_mla")
    llama = bytes_per_token_latex(load_preset("llama-3.1-70b"), "q8_0")
    assert r"2 \times 80 \times 8 \times (128 \times 1 + 2 \times 4) = 174{,}080" in llama, llama


def test_a_per_request_formula_does_not_call_itself_per_token():
    """Qwen3-Next keeps a recurrent state per request and Gemma 3 a window: their formulas are the bytes of one
    request of N tokens, never bytes/token."""
    for name in ("qwen3-next-80b-a3b", "gemma-3-27b"):
        f = bytes_per_token_latex(load_preset(name))
        assert f.startswith(PER_REQUEST + " = ") and PER_TOKEN not in f, f


def test_v4_formula_takes_its_ratios_and_dims_from_the_config():
    """No 4, 128 or d^I = 128 of its own: a V4 model with ratio-64 layers, a 32-wide indexer key and a
    48-token window shows those, with floor(N/m) entries as the accounting counts them."""
    csa = CompressedSpec(8, 128, 16, 4, 48, index_n_heads=4, index_head_dim=32, index_topk=8)
    hca = CompressedSpec(8, 128, 16, 64, 48)
    spec = ModelSpec("v4-toy", "test", 256, 1000, (csa, hca, hca), (DenseMLP(512),) * 3)
    f = bytes_per_token_latex(spec)
    assert r"\sum_{\text{CSA}} \lfloor N/4 \rfloor\,(d + d^I)\,b" in f and r"\lfloor N/64 \rfloor" in f
    assert r"\sum_{\text{all}} \min(N, 48)\,d\,b" in f and "d^I = 32" in f and "128" not in f.replace("d = 128", "")
    assert r"1 \times 320 \times \lfloor N/4 \rfloor" in f and r"3 \times 256 \times \min(N, 48)" in f
    pro = bytes_per_token_latex(load_preset("deepseek-v4-pro"))
    assert r"\lfloor N/4 \rfloor" in pro and r"\lfloor N/128 \rfloor" in pro and "d^I = 128" in pro


def test_an_unknown_layer_spec_raises_type_error():
    spec = ModelSpec("odd", "test", 256, 1000, (GQASpec(4, 4, 64), Unknown()), (DenseMLP(512),) * 2)
    with pytest.raises(TypeError, match="Unknown"):
        bytes_per_token_latex(spec)
    with pytest.raises(TypeError, match="Unknown"):
        bytes_per_token_latex(replace(spec, attention=(Unknown(), Unknown())))


def test_the_base_design_makes_a_new_design_say():
    """No silent N: a Design that does not implement the formula or the vLLM kind raises."""
    with pytest.raises(NotImplementedError):
        Design().latex_terms(GQASpec(4, 4, 64), cache_dtype("bf16"), "latent")
    with pytest.raises(NotImplementedError):
        Design().vllm_kind(GQASpec(4, 4, 64))
    assert Design().latex_model((GQASpec(4, 4, 64),), cache_dtype("bf16"), "latent") is None


def test_concurrency_formula_uses_the_hybrid_block_size():
    """A hybrid's block is vLLM's raised one (Qwen3-Next at TP4 under 0.11.0: 272 tokens of 12 layers of
    1,024 B), not the 16 asked for."""
    from core.accounting import planner as pl
    from core.accounting.formulas import concurrency_latex
    from core.accounting.vllm_hybrid import HybridSettings
    from core.model.presets import load_preset

    alloc = pl.Allocator(kv_budget_bytes=20 * 2**30, hybrid=HybridSettings("0.11.0"))
    p = pl.plan(load_preset("qwen3-next-80b-a3b"), pl.Hardware("H100 SXM", 1, 0.0, 4), 32_768, allocator=alloc)
    shown = concurrency_latex(p)
    assert r"272 \times 12{,}288 = 3{,}342{,}336" in shown and f"{p.max_concurrency:.2f}" in shown
