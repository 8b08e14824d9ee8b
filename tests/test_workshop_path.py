"""The guided paths and their questions (core/workshop/path.py, answers.py): the data validates, every step
opens its page with a view the page accepts as is, every revealed answer is the engine's own number (recomputed
here from the accounting and the layers), and guesses are judged as a presenter would say it."""

import json
from dataclasses import fields

import pytest

from core.accounting import totals as acc
from core.accounting.claims import v4_claims
from core.lab import lowrank
from core.model.gpus import GPUS
from core.model.presets import load_preset
from core.view import urlstate as us
from core.view.workshop_charts import guesses_chart
from core.workshop import answers as an
from core.workshop import path as wp

STATES = {
    "overview": us.OverviewState,
    "planner": us.PlannerState,
    "inside_mla": us.InsideState,
    "latent_rank": us.LatentState,
    "compute": us.ComputeState,
    "sparse": us.SparseState,
    "hybrid": us.HybridState,
    "quantized": us.QuantState,
    "needle": us.NeedleState,
    "real_model": us.RealState,
}


def test_two_paths_of_the_asked_lengths():
    """A 10-15 step workshop path and a shorter (20 minute) one for an architecture review."""
    p = wp.paths()
    assert 10 <= len(p["workshop"].steps) <= 15
    assert p["review"].minutes == 20 and len(p["review"].steps) < len(p["workshop"].steps)


def test_every_page_has_a_question():
    """Every lesson's "Ask first" is an answer box: each page has at least one question."""
    assert {q.page for q in wp.questions().values()} == set(wp.PAGES)


@pytest.mark.parametrize("tour", ["workshop", "review"])
def test_every_step_view_is_accepted_by_its_page(tour):
    """A step's view is exactly what the page's URL parser accepts: no notices, every value used."""
    for step in wp.paths()[tour].steps:
        state = us.parse_state(STATES[step.page], step.view)
        assert state.notices == (), (step.title, state.notices)
        keys = {f.metadata["param"].key for f in fields(STATES[step.page]) if "param" in f.metadata}
        assert set(step.view) <= keys, (step.title, set(step.view) - keys)


def test_every_answer_is_in_range_and_quoted_by_its_takeaway():
    for tour in wp.paths().values():
        for step in tour.steps:
            text = wp.takeaway(step)
            assert "{" not in text and wp.answer(step.question).shown in text


def test_answers_are_the_engines_numbers():
    """Recomputed here from the accounting: a typed-in constant in answers.py would fail when the engine
    changes."""
    llama, v3 = load_preset("llama-3.1-70b"), load_preset("deepseek-v3")
    assert wp.answer("llama_fit").value == GPUS["H200"].memory_bytes // acc.kv_cache_bytes(llama, 131_072, 1, "bf16")
    assert wp.answer("v3_ratio").value == pytest.approx(
        acc.kv_bytes_per_token(llama, "bf16") / acc.kv_bytes_per_token(v3, "bf16")
    )
    assert wp.answer("v4_share").value == pytest.approx(100 * v4_claims(precision="bf16").kv_fraction)
    v32 = load_preset("deepseek-v3.2")
    assert wp.answer("v32_share").value == pytest.approx(100 * acc.attended(v32.attention[0], 131_072) / 131_072)
    sweep = lowrank.shipped_sweeps()["0|0"]
    r = wp.answer("rank_10").value
    assert sweep[sweep["rank"] == r]["out_error"].iloc[0] < 0.10
    assert (sweep[sweep["rank"] < r]["out_error"] >= 0.10).all()


def test_planner_answers_match_the_cli():
    """The same numbers as `python -m core.report deepseek-v3 --gpu H200 --gpus 8 --tp 8 --context 131072`."""
    from core.report import main

    def concurrency(*flags):
        import contextlib
        import io

        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            main(["deepseek-v3", "--gpu", "H200", "--gpus", "8", "--context", "131072", "--json", *flags])
        return json.loads(out.getvalue())["plan"]["max_concurrency"]

    assert wp.answer("v3_tp8").value == pytest.approx(concurrency("--tp", "8"), abs=1e-4)  # the CLI rounds
    assert wp.answer("v3_dpa").value == pytest.approx(concurrency("--tp", "1", "--dp-attention"), abs=1e-4)


def test_the_planner_question_names_the_weights_its_answer_uses():
    """The v3_tp8 answer plans DeepSeek-V3's released weights (fp8 with a bf16 embedding and lm_head), not all-fp8
    ones: the prompt says so in the words the planner's Weights box uses."""
    from core.model.dtypes import weights_label

    released = weights_label("native", load_preset("deepseek-v3").native_weights)
    assert f"(weights as {released})" in wp.questions()["v3_tp8"].prompt
    assert "fp8 weights" not in wp.questions()["v3_tp8"].prompt


def test_choice_answers_follow_the_measurements():
    """The MLA answers come from running the layer: absorbed caches less, the materialised path does fewer
    prefill FLOPs at the page's defaults (and the why quotes the measured numbers)."""
    runs, cfg = an._inside_runs()
    a = wp.answer("mla_cache")
    assert a.choice == ("absorbed" if runs["absorbed"].cache_nbytes < runs["materialised"].cache_nbytes else "x")
    p = wp.answer("mla_prefill")
    assert f"{runs['materialised'].prefill_flops:,}" in p.why and f"{runs['absorbed'].prefill_flops:,}" in p.why


def test_verdicts():
    q = wp.questions()["v3_ratio"]
    t = wp.answer("v3_ratio")
    assert wp.verdict(q, t, t.value) == "Exactly right."
    assert wp.verdict(q, t, t.value * 1.04).startswith("Within 4%")
    assert "too high" in wp.verdict(q, t, t.value * 3) and "3.00x" in wp.verdict(q, t, t.value * 3)
    assert "too low" in wp.verdict(q, t, t.value / 2)
    c = wp.questions()["mla_cache"]
    assert wp.verdict(c, wp.answer("mla_cache"), "absorbed") == "Right."
    assert "Not quite" in wp.verdict(c, wp.answer("mla_cache"), "materialised")
    with pytest.raises(ValueError):
        wp.verdict(q, t, float("nan"))


EXTREMES = [0.0, 5e-324, -5e-324, 1e-320, 1e-300, 1e300, -1e300, 1.7976931348623157e308, -1.0, 3.0]


@pytest.mark.parametrize("truth", [0.0, 1e-3, 4.55, 1e6, -2.5])
def test_every_number_question_judges_every_finite_guess_in_a_short_sentence(truth):
    """No guess reaches a traceback: 0, subnormals, 1e-300, 1e300, the largest float and negatives get a
    sentence of a few dozen characters (no 300-digit ratio, no 'infx'); NaN, infinities and text that is
    not a number are a ValueError that says so, which the page shows as text."""
    t = wp.Answer(truth, None, f"{truth:g}", "why")
    for q in (q for q in wp.questions().values() if q.kind == "number"):
        for g in EXTREMES:
            out = wp.verdict(q, t, g)
            assert 5 < len(out) < 80 + len(q.unit) and "inf" not in out and "nan" not in out, (q.id, g, out)
        for bad in (float("nan"), float("inf"), -float("inf"), "x" * 10_000, None):
            with pytest.raises(ValueError, match="a guess must be a"):
                wp.verdict(q, t, bad)
    q = wp.questions()["v3_ratio"]
    assert wp.verdict(q, wp.Answer(4.55, None, "4.55", ""), 5e-324) == "More than 1,000x below the answer: too low."
    assert wp.verdict(q, wp.Answer(4.55, None, "4.55", ""), 1e300) == "More than 1,000x the answer: too high."


def test_bad_data_is_refused_with_the_reason():
    with pytest.raises(ValueError, match="unknown page"):
        wp.Question("x", "nowhere", "v3_vs_llama_bytes", "number", "?", min=0, max=1)
    with pytest.raises(ValueError, match="no answer function"):
        wp.Question("x", "overview", "made_up", "number", "?", min=0, max=1)
    with pytest.raises(ValueError, match="two distinct choices"):
        wp.Question("x", "overview", "v3_vs_llama_bytes", "choice", "?", choices=("a",))
    with pytest.raises(ValueError, match="min < max"):
        wp.Question("x", "overview", "v3_vs_llama_bytes", "number", "?", min=1, max=1)


def test_guesses_chart_shows_the_answer_only_once_revealed():
    import pandas as pd

    df = pd.DataFrame({"guess": [1.0, 2.0, 2.0, 40.0]})
    before = guesses_chart(df, "number", None, "x").to_dict()
    assert "layer" not in before and "answer" not in json.dumps(before)
    after = guesses_chart(df, "number", 4.66, "x").to_dict()
    assert any(layer["mark"]["type"] == "rule" for layer in after["layer"]) and "answer: 4.66 x" in json.dumps(after)
    assert after["layer"][0]["encoding"]["x"]["scale"]["type"] == "log"  # 1 to 40: a factor over 20
    linear = guesses_chart(pd.DataFrame({"guess": [0.0, 4.0]}), "number", 4.66, "x").to_dict()
    assert linear["layer"][0]["encoding"]["x"]["scale"]["type"] == "linear"  # a zero guess: no log axis
    bars = guesses_chart(pd.DataFrame({"guess": ["a", "a", "b"]}), "choice", "b", "", ["a", "b", "c"]).to_dict()
    data = next(iter(bars["datasets"].values()))
    assert [(d["choice"], d["guesses"], d["bar"]) for d in data] == [
        ("a", 2, "a guess"),
        ("b", 1, "the answer"),
        ("c", 0, "a guess"),
    ]
    hidden = guesses_chart(pd.DataFrame({"guess": ["a", "b"]}), "choice", None, "", ["a", "b"]).to_dict()
    assert "the answer" not in [d["bar"] for d in next(iter(hidden["datasets"].values()))]
