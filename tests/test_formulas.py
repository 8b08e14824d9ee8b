"""The formulas shown with live numbers carry the same numbers the accounting computes."""

from core.accounting import planner as pl
from core.accounting import totals as acc
from core.accounting.formulas import budget_latex, bytes_per_token_latex, concurrency_latex
from core.model.gpus import GPUS
from core.model.presets import load_preset


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
