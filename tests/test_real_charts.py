"""core.view.real_charts: the real model's Pareto picture builds a valid Vega-Lite spec for every quality
measure from the shipped sweep; the rows it draws are the methods asked for (an y cap leaves out exactly the
rows above it; KL's log axis leaves out the reference's 0); labels never overlap."""

import pytest

from core.lab import realquality as rq
from core.view.real_charts import METRICS, SERIES_COLORS, pareto_chart, pareto_frame


@pytest.fixture(scope="module")
def df():
    return rq.frame(rq.shipped())


@pytest.mark.parametrize("metric", list(METRICS))
def test_every_measure_builds_a_valid_chart(df, metric):
    d = pareto_frame(df, metric, 2048)
    chart = pareto_chart(d, metric, "t", float(df.perplexity.iloc[0]) if metric == "perplexity" else None)
    chart.to_dict(validate=True)
    assert set(d.group) <= set(SERIES_COLORS)
    expected = len(df) - (metric == "KL divergence")  # the fp32 reference has KL 0
    assert len(d) == expected


def test_y_cap_leaves_out_exactly_the_rows_above_it(df):
    cap = 2 * float(df.set_index("method").loc["fp32", "perplexity"])
    d = pareto_frame(df, "perplexity", y_max=cap)
    assert len(d) == int((df.perplexity <= cap).sum()) and (d.y <= cap).all()


def test_labels_do_not_overlap(df):
    from core.view.labels import Axis, label_frame

    d = pareto_frame(df[df.family.isin(["none", "quantization"])], "top-1 agreement")
    labels = label_frame(
        d, "x", "y", "short", Axis(d.x.min() / 1.3, d.x.max() * 2.4, True), Axis(-0.04, 1.08, False), 460
    )
    boxes = list(labels["label_box"])
    assert len(boxes) >= len(d) // 2
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1 :])
