"""The room's guesses against the engine's answer, for the presenter (pure chart builders)."""

from __future__ import annotations

import math

import altair as alt
import pandas as pd

TRUTH = "#dc2626"  # the engine's answer: red on light and dark, and on a projector
GUESS = "#2563eb"
FONT = 16


def _jitter(n: int) -> list[float]:
    """Deterministic vertical offsets in [-0.4, 0.4] (golden-ratio sequence), so equal guesses stay visible."""
    return [((i * 0.6180339887) % 1.0 - 0.5) * 0.8 for i in range(n)]


def log_scale(values: list[float], truth: float) -> bool:
    """A log axis when guesses spread over more than a factor of 20 and none is zero or negative."""
    xs = [*values, truth]
    return min(xs) > 0 and max(xs) / min(xs) > 20


def guesses_chart(df: pd.DataFrame, kind: str, truth, unit: str = "", choices: list[str] | None = None) -> alt.Chart:
    """Numbers: one dot per guess (jittered), the answer as a red rule with its value. Choices: a bar per
    choice counting the guesses, the right one in red. `df` has one column, `guess`."""
    if kind == "choice":
        counts = df["guess"].value_counts()
        order = list(choices or counts.index)
        bars = pd.DataFrame(
            {"choice": order, "guesses": [int(counts.get(c, 0)) for c in order], "right": [c == truth for c in order]}
        )
        chart = (
            alt.Chart(bars)
            .mark_bar()
            .encode(
                y=alt.Y("choice:N", sort=order, title=None, axis=alt.Axis(labelLimit=400)),
                x=alt.X("guesses:Q", title="guesses", axis=alt.Axis(tickMinStep=1, format="d")),
                color=alt.Color(
                    "right:N",
                    scale=alt.Scale(domain=[True, False], range=[TRUTH, GUESS]),
                    legend=alt.Legend(title=None, labelExpr="datum.value ? 'the answer' : 'other choices'"),
                ),
                tooltip=["choice", "guesses"],
            )
        )
        text = chart.mark_text(align="left", dx=4, fontSize=FONT).encode(text="guesses:Q", color=alt.value("#111"))
        return _style((chart + text).properties(height=max(120, 48 * len(order)), title="The room's guesses"))
    values = [float(v) for v in df["guess"] if v is not None and math.isfinite(float(v))]
    pts = pd.DataFrame({"guess": values, "y": _jitter(len(values))})
    log = log_scale(values, float(truth))
    lo, hi = min([*values, truth]), max([*values, truth])
    pad = (hi / lo) ** 0.08 if log else (hi - lo) * 0.08 or 1
    domain = [lo / pad, hi * pad] if log else [lo - pad, hi + pad]
    x = alt.X(
        "guess:Q",
        title=f"guess ({unit}{', log scale' if log else ''})",
        scale=alt.Scale(type="log" if log else "linear", domain=domain, nice=False),
        axis=alt.Axis(format="~g"),
    )
    dots = (
        alt.Chart(pts)
        .mark_circle(size=160, opacity=0.75, color=GUESS)
        .encode(
            x=x,
            y=alt.Y("y:Q", axis=None, scale=alt.Scale(domain=[-0.6, 0.6])),
            tooltip=[alt.Tooltip("guess:Q", format=",.4~g")],
        )
    )
    ans = pd.DataFrame({"guess": [float(truth)], "label": [f"answer: {float(truth):,.4g} {unit}"]})
    rule = alt.Chart(ans).mark_rule(color=TRUTH, strokeWidth=4).encode(x="guess:Q")
    label = (
        alt.Chart(ans)
        .mark_text(color=TRUTH, fontSize=FONT + 2, fontWeight="bold", dy=-8, align="left", dx=6, baseline="bottom")
        .encode(x="guess:Q", y=alt.value(0), text="label:N")
    )
    return _style((dots + rule + label).properties(height=200, title=f"The room's {len(values)} guesses"))


def _style(chart: alt.TopLevelMixin) -> alt.TopLevelMixin:
    return chart.configure(
        axis=alt.AxisConfig(labelFontSize=FONT, titleFontSize=FONT),
        legend=alt.LegendConfig(labelFontSize=FONT, orient="bottom"),
        title=alt.TitleConfig(fontSize=FONT + 4),
    )
