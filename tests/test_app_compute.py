"""AppTest for the Compute & roofline page: renders at defaults and at every control's extremes, the
roofline numbers are the core's, measuring on this machine runs real decode steps (small contexts),
links round-trip and hostile links warn; the measured table's design names are shown whole (a wide, pinned
column)."""

import json

import pytest
from apptest import assert_clean, open_page
from streamlit.testing.v1 import AppTest

from core.model.gpus import GPUS

P = "compute."


def run(query: dict | None = None) -> AppTest:
    return open_page("app_pages/compute.py", query)


ok = assert_clean


def test_defaults_render_two_charts_and_the_tables():
    at = run()
    ok(at)
    assert len(at.get("vega_lite_chart")) == 2
    roof = at.dataframe[0].value
    assert set(roof["bound"]) <= {"memory", "compute"} and len(roof) == 7


@pytest.mark.parametrize("gpu", list(GPUS))
def test_every_gpu_and_extreme_context_and_batch(gpu):
    at = run({"gpu": gpu})
    for ctx in (1, 1 << 20):
        at.select_slider(key=P + "context").set_value(ctx).run()
        ok(at)
    for b in (1, 1024):
        at.select_slider(key=P + "batch").set_value(b).run()
        ok(at)


def test_each_quantity():
    at = run()
    for q in ("decode: attention FLOPs", "decode: cache bytes read", "prefill: attention FLOPs per token"):
        at.radio(key=P + "quantity").set_value(q).run()
        ok(at)
        assert at.query_params.get("show", q) == q


def test_measure_here_runs_real_decode_steps():
    at = run()
    at.multiselect(key=P + "measure_contexts").set_value([1024]).run()
    at.toggle(key=P + "measure").set_value(True).run()
    ok(at)
    measured = at.dataframe[1].value
    assert list(measured["context"].unique()) == [1024] and (measured["measured ms"] > 0).all()
    # every design name shows whole: the column is set wide enough for the longest, and pinned
    assert max(map(len, measured["design"])) == len("MLA materialised")
    design = json.loads(at.dataframe[1].proto.columns)["design"]
    assert (design["width"], design["pinned"]) == ("medium", True)
    assert any("copy bandwidth" in m.value for m in at.markdown)


def test_timing_more_contexts_times_only_the_new_ones(monkeypatch):
    """Decode timing is cached per design and context: adding a context to the timed ones runs only its
    steps (the toggle took 13.6 s on every change before), and the progress bar is gone once they are done."""
    from core.lab import measure

    calls = []
    real = measure.decode_benchmark
    monkeypatch.setattr(measure, "decode_benchmark", lambda *a, **k: calls.append(a[1]) or real(*a, **k))
    at = run()
    at.multiselect(key=P + "measure_contexts").set_value([1024]).run()
    at.toggle(key=P + "measure").set_value(True).run()
    before = len(calls)
    at.multiselect(key=P + "measure_contexts").set_value([1024, 4096]).run()
    ok(at)
    assert calls[before:] == [4096] * len(measure.DESIGNS)
    assert sorted(at.dataframe[1].value["context"].unique()) == [1024, 4096]
    assert not at.get("progress")


def test_links():
    at = run({"gpu": "B200", "context": "4096", "batch": "64"})
    ok(at)
    assert at.selectbox(key=P + "gpu").value == "B200" and at.select_slider(key=P + "batch").value == 64
    at = run({"gpu": "TPU", "context": "-1", "batch": "1e9", "x": "y"})
    assert not at.exception and len(at.warning) >= 3
