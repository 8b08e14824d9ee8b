"""Charts that survive a projector and a slide (core/view/*_charts.py): a model or design has one colour on every
chart, the roofline's and the Pareto charts' direct labels never overlap each other, a point or a line, styled
charts keep their plot height (no fixed element height for the download buttons to cover), and app_pages.layout.table
sizes a table to its rows."""

import itertools
import math

import pandas as pd
import pytest

from core.accounting import roofline as rl
from core.model.gpus import GPUS
from core.model.presets import load_preset, preset_names
from core.view.compute_charts import ROOF_HEIGHT, flops_chart, per_token_chart, roofline_chart
from core.view.frames import CONTEXTS, cache_vs_context, pareto_frontier
from core.view.labels import NARROWEST_PLOT, Axis, Box, label_frame, place_labels
from core.view.memory_charts import cache_chart
from core.view.quality_charts import PARETO_HEIGHT
from core.view.theme import FONT, PALETTE, RESERVE, color_of, model_colors, style


def scale_of(spec: dict, field: str) -> dict:
    """{name: colour} of the first colour encoding on `field` anywhere in a chart's spec."""
    stack = [spec]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            enc = node.get("encoding", {}).get("color", {})
            if enc.get("field") == field and "scale" in enc and "domain" in enc["scale"]:
                return dict(zip(enc["scale"]["domain"], enc["scale"]["range"], strict=True))
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    raise AssertionError(f"no colour scale on {field}")


def overview_colors(models: list[str]) -> dict:
    df = cache_vs_context({m: load_preset(m) for m in models}, [1024, 4096])
    return scale_of(cache_chart(df, "H200", 131.3, 1024).to_dict(), "model")


def test_a_model_has_the_same_colour_on_two_charts_whatever_else_they_show():
    """deepseek-v3 and llama-3.1-70b keep their colours between the Overview's four models and the Planner's two
    in the other order, and the Compute page's designs they stand for wear the same ones."""
    four = overview_colors(["llama-3.1-70b", "deepseek-v3", "deepseek-v3.2", "deepseek-v4-pro"])
    two = overview_colors(["deepseek-v3", "llama-3.1-70b"])
    assert four["deepseek-v3"] == two["deepseek-v3"] and four["llama-3.1-70b"] == two["llama-3.1-70b"]
    assert len(set(four.values())) == 4
    pts = rl.roofline_points(rl.designs(load_preset), GPUS["H200"], 32768, 1)
    designs = scale_of(roofline_chart(rl.roof(GPUS["H200"]), pts, "t").to_dict(), "design")
    assert designs["MLA absorbed (DeepSeek-V3)"] == four["deepseek-v3"]
    assert designs["GQA (Llama-3.1-70B)"] == four["llama-3.1-70b"]
    assert designs["DSA (DeepSeek-V3.2)"] == four["deepseek-v3.2"]
    assert len(set(designs.values())) == len(designs)
    per_token = rl.per_token_table(rl.designs(load_preset), [1024, 4096])
    for quantity in per_token["quantity"].unique():
        assert scale_of(per_token_chart(per_token, quantity, "t").to_dict(), "design") == designs


def test_a_design_has_the_same_colour_on_inside_mla_compute_and_needle():
    inside = model_colors(["MHA", "GQA", "MLA materialised", "MLA absorbed"])
    assert dict(zip(inside.domain, inside.range, strict=True)) == {
        "MHA": color_of("MHA (Llama-70B shapes, 64 kv heads)"),
        "GQA": color_of("tiny-gqa"),
        "MLA materialised": color_of("MLA materialised (DeepSeek-V3)"),
        "MLA absorbed": color_of("deepseek-v3"),
    }
    assert len(set(inside.range)) == 4


def test_every_preset_has_a_fixed_colour_and_any_chosen_set_gets_distinct_ones():
    """Any four presets (the Planner's limit) get four distinct colours; an uploaded config (no fixed colour)
    gets one nobody else in the chart has."""
    names = preset_names()
    assert all(color_of(n) in PALETTE for n in names)
    for combo in itertools.islice(itertools.combinations(names, 4), 0, None, 97):
        scale = model_colors([*combo, "your config: mine"])
        assert len(set(scale.range)) == 5
    assert color_of("your config: mine") is None


def test_too_many_series_for_distinct_colours_is_refused():
    with pytest.raises(ValueError, match="at most"):
        model_colors([f"m{i}" for i in range(len(PALETTE) + len(RESERVE) + 1)])


def assert_apart(labels: pd.DataFrame, points_px: list[tuple[float, float]]) -> None:
    boxes = list(labels["label_box"])
    for a, b in itertools.combinations(boxes, 2):
        assert not a.overlaps(b), (a, b)
    for box in boxes:
        assert box.x0 >= 0 and box.x1 <= NARROWEST_PLOT
        for x, y in points_px:
            assert not box.overlaps(Box(x - 7, y - 7, x + 7, y + 7)), (box, x, y)


@pytest.mark.parametrize("gpu", list(GPUS))
def test_roofline_labels_are_apart_and_every_design_is_named(gpu):
    """At every context and batch the pages offer, on every GPU: designs that sit on the same spot of the roof
    (MHA and materialised MLA at 1 FLOP per byte) each keep a label, and no label overlaps another or a point."""
    designs = rl.designs(load_preset)
    roof = rl.roof(GPUS[gpu])
    for context, batch in itertools.product(CONTEXTS[::3], (1, 16, 1024)):
        pts = rl.roofline_points(designs, GPUS[gpu], context, batch)
        short = pts.assign(name=pts["design"].str.split(" (", n=1, regex=False).str[0])
        xa = Axis(float(roof.intensity.min()), float(roof.intensity.max()), log=True)
        low = min(roof.attainable_tflops.min(), pts.attainable_tflops.min())
        ya = Axis(10 ** math.floor(math.log10(low)), 3 * float(roof.attainable_tflops.max()), log=True)
        labels = label_frame(short, "intensity", "attainable_tflops", "name", xa, ya, ROOF_HEIGHT, [roof])
        assert set(labels["name"]) == set(short["name"])
        px = [
            (xa.to_px(x, NARROWEST_PLOT), ya.to_px(y, ROOF_HEIGHT, flip=True))
            for x, y in zip(pts.intensity, pts.attainable_tflops, strict=True)
        ]
        assert_apart(labels, px)


def test_the_roofline_draws_those_labels():
    """The chart's text layer shows a label for every design at the placed position (and the layout check above
    is about what the chart draws)."""
    pts = rl.roofline_points(rl.designs(load_preset), GPUS["H200"], 32768, 1)
    spec = roofline_chart(rl.roof(GPUS["H200"]), pts, "t").to_dict()
    texts = [lay for lay in spec["layer"] if lay["mark"]["type"] == "text"]
    assert len(texts) == 1 and texts[0]["encoding"]["x"]["field"] == "label_x"
    data = pd.DataFrame(spec["datasets"][texts[0]["data"]["name"]] if "data" in texts[0] else [])
    if data.empty:  # the layers share the chart's data set
        data = pd.DataFrame(next(iter(spec["datasets"].values())))
    assert data["label_x"].notna().sum() >= 7


def pareto_frames():
    from core.lab import quantlab

    shipped = quantlab.shipped_latents()
    for key in list(shipped)[:: max(1, len(shipped) // 12)]:
        df = pd.DataFrame(shipped[key])
        for metric in ("error vs MLA layer", "error vs original layer"):
            yield key, df, metric


def test_pareto_labels_are_apart_and_off_the_points():
    """On the shipped latent-quantization results (every scheme, both errors, a spread of layers, texts and
    ranks), each scheme's label is placed, and no two labels overlap each other or any point."""
    n = 0
    for key, df, metric in pareto_frames():
        x = "bytes per token"
        xa = Axis(float(df[x].min()) / 1.25, float(df[x].max()) * 2.2, log=True)
        ya = Axis(-0.04 * float(df[metric].max()), 1.08 * float(df[metric].max()), log=False)
        labels = label_frame(df, x, metric, "scheme", xa, ya, PARETO_HEIGHT)
        assert set(labels["scheme"]) == set(df["scheme"]), key
        px = [
            (xa.to_px(a, NARROWEST_PLOT), ya.to_px(b, PARETO_HEIGHT, flip=True))
            for a, b in zip(df[x], df[metric], strict=True)
        ]
        assert_apart(labels, px)
        n += 1
    assert n >= 10


def test_place_labels_moves_a_colliding_label_and_gives_up_only_without_room():
    """Three points on one spot get three stacked labels; in a plot too small for a second label, the second is
    left out (None) rather than drawn over the first."""
    boxes = place_labels([(100, 100)] * 3, ["alpha", "beta", "gamma"], (400, 300))
    assert all(b is not None for b in boxes)
    for a, b in itertools.combinations(boxes, 2):
        assert not a.overlaps(b)
    tight = place_labels([(5, 10), (5, 10)], ["alpha", "alpha2"], (70, 20))
    assert tight[0] is not None and tight[1] is None


def test_pareto_frontier_is_the_set_nobody_beats():
    df = pd.DataFrame({"b": [1, 2, 3, 2, 4], "e": [0.5, 0.2, 0.1, 0.3, 0.1]})
    assert list(pareto_frontier(df, "b", "e")) == [True, True, True, False, False]


def test_styled_single_charts_keep_their_plot_height_and_concats_their_size():
    """fit-x: the page's width, the chart's own plot height (a legend no longer squeezes the plot or cuts the
    title); concatenated panels keep their size."""
    df = cache_vs_context({"gpt2": load_preset("gpt2")}, [1024, 4096])
    single = style(cache_chart(df, "H200", 131.3, 1024)).to_dict()
    assert single["autosize"] == {"type": "fit-x", "contains": "padding"}
    fl = pd.DataFrame(
        {"design": ["MHA", "GQA"] * 2, "step": ["prefill 8"] * 2 + ["decode 1"] * 2, "flops": [4, 3, 2, 1]}
    )
    concat = style(flops_chart(fl, "t")).to_dict()
    assert concat["autosize"] == {"type": "pad"}
    assert FONT >= 14


def test_table_height_fits_every_row(monkeypatch):
    """app_pages.layout.table asks st.dataframe for the header plus one row height per row (a Styler counts its
    frame's rows), hides the index and stretches; a caller's own setting wins."""
    from app_pages import layout

    seen = []
    monkeypatch.setattr(layout.st, "dataframe", lambda df, **kw: seen.append(kw))
    df = pd.DataFrame({"a": range(12)})
    layout.table(df)
    layout.table(df.style.format({"a": "{:.1f}"}))
    layout.table(pd.DataFrame({"a": range(100)}))
    layout.table(df, hide_index=False)
    row = layout.TABLE_ROW_PX
    assert seen[0] == {"hide_index": True, "width": "stretch", "row_height": row, "height": 13 * row + 3}
    assert seen[1]["height"] == 13 * row + 3
    assert seen[2]["height"] == (layout.TABLE_MAX_ROWS + 1) * row + 3
    assert seen[3]["hide_index"] is False
