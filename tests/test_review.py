"""The review sheet's content (core/view/review.py).

Proves:
- every number a column says comes from the planner's own Plan of that candidate (PlanSettings -> plan_inputs
  -> PlanInputs.plan): at the defaults DeepSeek-V3 on 8 x H200 as TP8 holds 4.55x requests of 131,072 tokens
  with the latent cache (1,152 B per token per layer) and 7.98x with vLLM's fp8_ds_mla (656 B);
- one GPU's memory parts add up to the GPU's memory, and a model whose weights do not fit shows the overflow;
- a candidate that cannot be planned is said in a sentence, and the others are kept;
- candidates sharing a model are named by what tells them apart; a label wins; a name typed with characters a
  link cannot carry plainly is cleaned and cut to 60 characters;
- the planner's LaTeX formulas become plain text with no LaTeX left, for every preset and cache layout.
"""

import pytest

from core.accounting.plan_inputs import plan_inputs
from core.model.presets import load_preset, preset_names
from core.view.review import (
    DEFAULT_CANDIDATES,
    GIB,
    MAX_LABEL,
    Candidate,
    clean_label,
    column,
    latex_text,
    names,
    review,
)


def sheet(candidates, context=131_072, util=90):
    specs = {c.model: load_preset(c.model) for c in candidates}
    return review(tuple(candidates), specs, context, util, "2025-06-01", "9.9.9")


def test_the_defaults_make_the_point_with_the_plans_numbers():
    s = sheet(DEFAULT_CANDIDATES)
    latent, ds = s.columns
    for c, col in zip(DEFAULT_CANDIDATES, s.columns, strict=True):
        p = plan_inputs(c.settings(131_072, 90)).plan(load_preset(c.model))
        assert col.plan == p
        assert f"Concurrency: {p.max_concurrency:,.2f}x at 131,072 tokens" in col.numbers
        assert any(f"{p.num_blocks:,} blocks of 16 tokens" in n for n in col.numbers)
    assert "Concurrency: 4.55x at 131,072 tokens" in latent.numbers
    assert "Concurrency: 7.98x at 131,072 tokens" in ds.numbers
    assert any("70,272 B per token, 1,152 B per token per layer (61 layers)" in n for n in latent.numbers)
    assert any("40,016 B per token, 656 B per token per layer (61 layers)" in n for n in ds.numbers)
    assert (latent.name, ds.name) == ("deepseek-v3, latent layout", "deepseek-v3, fp8_ds_mla layout")
    assert "vLLM 0.33" in s.shared[0] and "9.9.9, 2025-06-01" in s.footer[0]
    assert any("max_num_batched_tokens 8,192 (as planned)" in a for a in latent.assumptions)
    assert s.scale_gib == pytest.approx(141e9 / GIB)


def test_memory_parts_add_up_to_the_gpu_and_overflow_is_shown():
    for col in sheet(DEFAULT_CANDIDATES).columns:
        parts = dict(col.memory)
        assert list(parts) == ["weights", "KV cache pool", "reserved", "free"]
        assert sum(parts.values()) == pytest.approx(col.plan.memory_bytes / GIB)
        assert parts["KV cache pool"] * GIB == col.plan.num_blocks * col.plan.stages[0].block_bytes
    (over,) = sheet([Candidate("deepseek-v3", "L4", 1, 1)]).columns
    parts = dict(over.memory)
    assert "over capacity" in parts and parts["KV cache pool"] == 0
    assert parts["weights"] - parts["over capacity"] == pytest.approx(over.plan.memory_bytes / GIB)


def test_a_candidate_that_cannot_be_planned_is_said_and_the_others_kept():
    s = sheet([Candidate("llama-3.1-70b", "H200", 8, 3), DEFAULT_CANDIDATES[0]])
    assert len(s.columns) == 1
    (error,) = s.errors
    assert error.startswith("Candidate 1 (llama-3.1-70b) cannot be planned:")


def test_names_tell_candidates_apart():
    a, b = DEFAULT_CANDIDATES
    assert names((a, b)) == ["deepseek-v3, latent layout", "deepseek-v3, fp8_ds_mla layout"]
    assert names((a, a)) == ["deepseek-v3", "deepseek-v3 (2)"]
    other = Candidate("llama-3.1-70b", "H100 SXM", 4, 0, kv_dtype="fp8")
    assert names((a, other)) == ["deepseek-v3", "llama-3.1-70b"]
    assert names((a, Candidate(gpu="B200", n_gpus=4, tp=4, label="Plan B"))) == ["deepseek-v3", "Plan B"]
    assert clean_label("  <b>Plan</b>  [x]  ") == "bPlan/b x"
    assert len(clean_label("W" * 100)) == MAX_LABEL


@pytest.mark.parametrize("layout", ["latent", "materialised", "fp8_ds_mla"])
def test_every_formula_becomes_plain_text(layout):
    for name in preset_names():
        try:
            col = column(Candidate(name, "B200", 8, 0, layout), load_preset(name), 131_072, 90)
        except ValueError:
            continue  # TP cannot split it: said on the sheet, tested above
        for line in col.formulas:
            assert not any(ch in line for ch in "\\{}&"), (name, line)
        assert col.formulas[0].startswith(("bytes/token = ", "bytes of one request of N tokens = "))


def test_latex_text_reads_the_concurrency_formula():
    lines = latex_text(
        r"\begin{aligned}a &= \frac{\lfloor 1{,}024 / 8 \rfloor}{\text{blocks}} \\ &= 2\times\end{aligned}"
    )
    assert lines == ["a = floor(1,024 / 8) / blocks", "= 2×"]
