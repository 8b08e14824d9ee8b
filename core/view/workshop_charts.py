"""The room's guesses against the engine's answer, for the presenter (pure chart builders)."""

from __future__ import annotations

import math

import altair as alt
import pandas as pd

TRUTH = "#dc2626"  # the engine's answer: red on light and dark, and on a projector
GUESS = "#2563eb"
FONT = 18


def _jitter(n: int) -> list[float]:
    """Deterministic vertical offsets in [-0.4, 0.4] (golden-ratio sequence), so equal guesses stay visible."""
    return [((i * 0.6180339887) % 1.0 - 0.5) * 0.8 for i in range(n)]


def chart_height(kind: str, choices: list[str] | None = None) -> int:
    """Pixels the chart needs (pass to st.altair_chart: a layered chart's own height is not always kept)."""
    return max(160, 56 * len(choices or ())) + 90 if kind == "choice" else 260


def guesses_chart(
    df: pd.DataFrame,
    kind: str,
    truth=None,
    unit: str = "",
    choices: list[str] | None = None,
    shown: str | None = None,
) -> alt.Chart:
    """Numbers: one dot per guess (jittered), and once revealed (`truth` not None) the answer as a red rule
    with its value. Choices: a bar per choice counting the guesses, once revealed the right one in red.
    `df` has one column, `guess`; `shown` labels the answer as the page says it (default: its value and unit).
    Text takes the app theme's colour (Streamlit's chart theme), so it reads on light and dark."""
    if kind == "choice":
        counts = df["guess"].value_counts()
        order = list(choices or counts.index)
        n = [int(counts.get(c, 0)) for c in order]
        what = ["the answer" if truth is not None and c == truth else "a guess" for c in order]
        bars = pd.DataFrame({"choice": order, "guesses": n, "bar": what})
        top = max([1, *n])
        axis = alt.Axis(values=list(range(top + 1)) if top <= 10 else alt.Undefined, format="d")
        chart = (
            alt.Chart(bars)
            .mark_bar()
            .encode(
                y=alt.Y("choice:N", sort=order, title=None, axis=alt.Axis(labelLimit=400)),
                x=alt.X("guesses:Q", title="guesses", axis=axis, scale=alt.Scale(domain=[0, top])),
                color=alt.Color(
                    "bar:N", scale=alt.Scale(domain=["the answer", "a guess"], range=[TRUTH, GUESS]), title=None
                ),
                tooltip=["choice", "guesses"],
            )
        )
        text = chart.mark_text(align="left", dx=4, fontSize=FONT).encode(text="guesses:Q")
        return _style((chart + text).properties(height=56 * len(order), title=f"The room's {sum(n)} guesses"))
    values = [float(v) for v in df["guess"] if v is not None and math.isfinite(float(v))]
    pts = pd.DataFrame({"guess": values, "y": _jitter(len(values))})
    xs = [*values, *([float(truth)] if truth is not None else [])]
    log = min(xs) > 0 and max(xs) / min(xs) > 20
    lo, hi = min(xs), max(xs)
    pad = (hi / lo) ** 0.08 if log else (hi - lo) * 0.08 or 1
    domain = [lo / pad, hi * pad] if log else [lo - pad, hi + pad]
    x = alt.X(
        "guess:Q",
        title=f"guess ({unit}{', log scale' if log else ''})",
        scale=alt.Scale(type="log" if log else "linear", domain=domain, nice=False),
        axis=alt.Axis(format=",~f", tickCount=6),
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
    title = f"The room's {len(values)} guesses"
    if truth is None:
        return _style(dots.properties(height=180, title=title))
    ans = pd.DataFrame({"guess": [float(truth)], "label": [f"answer: {shown or f'{float(truth):,.4g} {unit}'}"]})
    rule = alt.Chart(ans).mark_rule(color=TRUTH, strokeWidth=4).encode(x="guess:Q")
    label = (
        alt.Chart(ans)
        .mark_text(color=TRUTH, fontSize=FONT + 2, fontWeight="bold", dy=-8, align="left", dx=6, baseline="bottom")
        .encode(x="guess:Q", y=alt.value(0), text="label:N")
    )
    return _style((dots + rule + label).properties(height=180, title=title))


def _style(chart: alt.TopLevelMixin) -> alt.TopLevelMixin:
    return chart.configure(
        axis=alt.AxisConfig(labelFontSize=FONT, titleFontSize=FONT),
        legend=alt.LegendConfig(labelFontSize=FONT, orient="bottom"),
        title=alt.TitleConfig(fontSize=FONT + 4),
    )
