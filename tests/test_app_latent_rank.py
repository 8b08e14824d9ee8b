"""The Latent rank page, run through app.py's router with Streamlit's AppTest.

What it proves:
- at the defaults the page renders the lesson, three charts (spectra, energy, errors vs rank) and five
  metrics, with no exception and no error, and writes a bare link;
- every layer 0..5 x head all/0/11 x text all/each passage renders the same three charts and four
  metrics, with titles that name the layer and head, and (at rank 384) a 0.0% output error; the URL
  written back parses to the widgets;
- the exact rank input at 1 and 384: at 384 the converted layer is exact (output error "0.0%") and caches
  half of MHA (768 of 1,536 B per token per layer in bf16); at 1 it caches 2 B and the error is large; the
  output error falls as the rank grows, and the rank rule on the energy and error charts follows the rank;
- the rank pills offer the powers of two, 384 and the 10% rank (the engine's error_crossing on the shipped
  sweep, also shown as a metric, and in the takeaways); a pill sets the rank and the number input, the link
  follows, and a rank typed off the pills leaves no pill selected;
- a link restores every widget and is written back unchanged; hostile links give st.warning notices,
  never an exception.
"""

from __future__ import annotations

import json

import pytest
import torch
from apptest import assert_clean, open_page, unescaped
from streamlit.testing.v1 import AppTest

from core.lab.passages import load_passages
from core.view.urlcodec import parse_state
from core.view.urlstate import LatentState

P = "latent."
N_PASSAGES = len(load_passages())
CROSS = "output error < 10% from d_c"
METRICS = [
    CROSS,
    "layer output error",
    "keys / values error",
    "probabilities (mean TV)",
    "cache per token per layer (bf16)",
]


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """One intra-op thread: with the 2 cores shared by other jobs, torch's 2-thread pool spin-waits and the
    layers run 10-100x slower; results do not depend on it."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def run(query: dict | None = None) -> AppTest:
    return open_page("app_pages/latent_rank.py", query)


def ok(at: AppTest) -> None:
    """No exception, no st.error, the five metrics and the five charts."""
    assert_clean(at)
    assert [m.label for m in at.metric] == METRICS
    assert len(at.get("vega_lite_chart")) == 5  # the real model first, then spectra, energy, errors, tiny models


def titles(at: AppTest) -> list[str]:
    """The MiniLM charts' titles (the real model's chart at the top of the page left out)."""
    out = []
    for c in at.get("vega_lite_chart"):
        t = json.loads(c.proto.spec).get("title")
        out.append(t["text"] if isinstance(t, dict) else t)
    return [t for t in out if not str(t).startswith("SmolLM2-135M")]


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def url_state(at: AppTest) -> LatentState:
    s = parse_state(LatentState, dict(at.query_params))
    assert not s.notices, s.notices
    return s


def rule_rows(dataset) -> dict:
    import pyarrow as pa

    return pa.ipc.open_stream(dataset.data.data).read_all().to_pydict()


def pct(v: str) -> float:
    assert v.endswith("%"), v
    return float(v[:-1])


def test_defaults_render_four_metrics_and_four_charts():
    at = run()
    ok(at)
    assert at.title[0].value == "Latent rank"
    assert dict(at.query_params) == {}
    assert at.selectbox(key=P + "layer").value == 0 and at.selectbox(key=P + "head").value == -1
    assert at.selectbox(key=P + "passage").value == 0 and at.number_input(key=P + "rank").value == 64
    assert at.selectbox(key=P + "head").options[0] == "all (joint)"
    assert at.selectbox(key=P + "passage").options == ["all passages", *(p.title for p in load_passages())]
    t = titles(at)
    assert t[0] == "Layer 0, all heads jointly" and t[1].startswith("Layer 0, all heads jointly: cumulative")
    assert t[2].startswith("Layer 0 converted to MLA")
    m = metrics(at)
    assert 0 < pct(m["layer output error"]) < 100
    assert m["cache per token per layer (bf16)"] == "128 B"  # 64 numbers x 2 bytes
    assert at.metric[4].delta == "8% of MHA's 1.5 KiB"  # 128 B of 2 x 384 x 2 B
    latex = " ".join(x.value for x in at.get("latex"))
    assert r"\mathbb{R}^{64}" in latex and "= 128" in latex and "= 1536" in latex
    assert "The first **64** directions keep" in " ".join(x.value for x in at.markdown)


def test_every_layer_head_and_passage():
    """At rank 384 (the full width), so every combination also shows the exact conversion: 0.0% error."""
    at = run({"rank": "384"})
    for layer in range(6):
        at.selectbox(key=P + "layer").set_value(layer)
        for head in (-1, 0, 11):
            at.selectbox(key=P + "head").set_value(head)
            for passage in (-1, *range(N_PASSAGES)):
                at.selectbox(key=P + "passage").set_value(passage).run()
                ok(at)
                who = "all heads jointly" if head < 0 else f"head {head}"
                t = titles(at)
                assert t[0] == f"Layer {layer}, {who}", t
                assert t[2].startswith(f"Layer {layer} converted")
                s = url_state(at)
                assert (s.layer, s.head, s.passage, s.rank) == (layer, head, passage, 384)
                assert metrics(at)["layer output error"] == "0.0%", (layer, head, passage)


@pytest.mark.parametrize("rank", [1, 384])
def test_rank_extremes(rank):
    at = run()
    at.number_input(key=P + "rank").set_value(rank).run()
    ok(at)
    m = metrics(at)
    assert url_state(at).rank == rank and at.query_params["rank"] == str(rank)
    assert m["cache per token per layer (bf16)"] == f"{2 * rank} B"
    if rank == 384:
        assert m["layer output error"] == "0.0%"
        assert m["keys / values error"] == "0.0% / 0.0%"
        assert m["probabilities (mean TV)"] == "0.000"
        assert at.metric[4].delta == "50% of MHA's 1.5 KiB"  # the latent is as wide as K alone
    else:
        assert pct(m["layer output error"]) > 50
        assert at.metric[4].delta == "0% of MHA's 1.5 KiB"
    assert f"The first **{rank}** directions keep" in " ".join(x.value for x in at.markdown)


def test_error_falls_as_the_rank_grows():
    at = run({"layer": "2"})
    errs = []
    for rank in (1, 16, 128, 384):
        at.number_input(key=P + "rank").set_value(rank).run()
        ok(at)
        errs.append(pct(metrics(at)["layer output error"]))
    # not monotone at the very bottom (layer 2: 1 -> 102%, 16 -> 104%), but far lower by 128 and 0 at 384
    assert min(errs[:2]) > errs[2] + 20 and errs[3] == 0.0, errs


def test_rank_rule_follows_the_rank():
    at = run({"rank": "100"})
    ok(at)
    for chart in at.get("vega_lite_chart")[2:4]:  # the energy and error charts carry a rule at d_c
        layers = json.loads(chart.proto.spec)["layer"]
        rules = [lay for lay in layers if lay["mark"] == "rule" or lay["mark"].get("type") == "rule"]
        assert len(rules) == 1
        names = {d.name: d for d in chart.proto.datasets}
        rule_data = rule_rows(names[rules[0]["data"]["name"]])
        assert rule_data["rank"] == [100]


LINK = {"layer": "3", "head": "5", "text": "all", "rank": "100"}


def test_link_restores_every_widget_and_round_trips():
    at = run(LINK)
    ok(at)
    assert not at.warning
    assert at.selectbox(key=P + "layer").value == 3
    assert at.selectbox(key=P + "head").value == 5
    assert at.selectbox(key=P + "passage").value == -1
    assert at.number_input(key=P + "rank").value == 100
    assert dict(at.query_params) == LINK
    assert titles(at)[0] == "Layer 3, head 5"
    at.number_input(key=P + "rank").set_value(64).run()  # back to the default: the key leaves the link
    assert dict(at.query_params) == {k: v for k, v in LINK.items() if k != "rank"}


def test_a_written_link_reopens_the_same_view():
    at = run()
    at.selectbox(key=P + "layer").set_value(5)
    at.selectbox(key=P + "head").set_value(11)
    at.selectbox(key=P + "passage").set_value(N_PASSAGES - 1)
    at.number_input(key=P + "rank").set_value(7).run()
    link = dict(at.query_params)
    assert link == {"layer": "5", "head": "11", "text": str(N_PASSAGES - 1), "rank": "7"}
    again = run(link)
    ok(again)
    assert metrics(again) == metrics(at) and titles(again) == titles(at)
    assert dict(again.query_params) == link


@pytest.mark.parametrize(
    "query,words",
    [
        ({"zzz": "1", "layer": "9", "head": "12", "text": "-1", "rank": "0"}, ["unknown link parameter", "layer"]),
        ({"layer": "x", "head": "<script>", "text": "", "rank": "1e3"}, ["head", "passage", "rank"]),
        ({"rank": "385", "head": "ALL", "layer": "-0"}, ["rank", "head", "layer"]),
        ({"rank": "9" * 40, "text": "all,all"}, ["rank", "passage"]),
    ],
    ids=["out-of-range", "garbage", "near-misses", "long"],
)
def test_hostile_links_give_notices_not_exceptions(query, words):
    at = run(query)
    ok(at)
    notes = [unescaped(w.value) for w in at.warning]
    assert notes and all(n.startswith("Link: ") for n in notes)
    assert len(notes) == len(query), notes  # one notice per bad parameter
    text = " ".join(notes)
    for w in words:
        assert w in text, text
    assert "9" * 41 not in text
    assert url_state(at) == LatentState()  # every bad value fell back to the default


def test_a_passage_that_does_not_exist_gives_a_notice():
    at = run({"text": str(N_PASSAGES)})
    assert not at.exception
    assert at.warning, "no notice for a passage past the last"


def test_pills_offer_the_useful_ranks_and_the_10_percent_rank():
    """The pills hold the powers of two, 384 and the engine's 10% rank; the metric and the takeaways say it."""
    from core.lab.lowrank import error_crossing, shipped_sweeps

    cross = error_crossing(shipped_sweeps()["2|0"], 0.10)
    assert cross.rank is not None and cross.measured == tuple(range(1, 385))
    at = run({"layer": "2"})
    ok(at)
    pills = at.pills(key=P + "rank_pick")
    offered = sorted({1, 2, 4, 8, 16, 32, 64, 128, 256, 384, cross.rank})
    assert [o.content for o in pills.proto.options] == [
        f"{r} (10% rank)" if r == cross.rank else str(r) for r in offered
    ]
    assert pills.value == 64  # the default rank is a pill
    assert metrics(at)[CROSS] == str(cross.rank)
    text = " ".join(x.value for x in at.markdown)
    assert f"first drops below 10% at d_c = {cross.rank} (measured: every rank from 1 to 384)" in text
    pills.set_value(cross.rank).run()
    ok(at)
    assert at.number_input(key=P + "rank").value == cross.rank
    assert at.query_params["rank"] == str(cross.rank)
    assert pct(metrics(at)["layer output error"]) < 10
    at.number_input(key=P + "rank").set_value(cross.rank - 1).run()
    ok(at)
    assert at.pills(key=P + "rank_pick").value is None  # off the pills: none selected
    assert pct(metrics(at)["layer output error"]) >= 10  # the crossing is the first rank below 10%
    assert at.query_params["rank"] == str(cross.rank - 1)
