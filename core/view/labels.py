"""Direct labels that do not collide: where each point's name goes (pixel geometry, placed for the narrowest
plot a page gives), and the text and leader-line layers that draw them."""

from __future__ import annotations

import math
from typing import NamedTuple

import altair as alt
import numpy as np
import pandas as pd

from core.view.theme import LABEL_FONT, NEUTRAL


class Box(NamedTuple):
    """A rectangle in pixels, y downwards."""

    x0: float
    y0: float
    x1: float
    y1: float

    def overlaps(self, other: Box) -> bool:
        return self.x0 < other.x1 and other.x0 < self.x1 and self.y0 < other.y1 and other.y0 < self.y1


def text_box(x: float, y: float, text: str, font: int = LABEL_FONT) -> Box:
    """The box of a left-aligned, vertically centred label at (x, y): a generous 0.62 em per character, so a
    real font fits inside it."""
    w, h = 0.62 * font * len(text), font + 2
    return Box(x, y - h / 2, x + w, y + h / 2)


def place_labels(
    points: list[tuple[float, float]],
    texts: list[str],
    size: tuple[float, float],
    obstacles=(),
    font: int = LABEL_FONT,
    gap: float = 8,
    tries: int = 40,
) -> list[Box | None]:
    """Boxes (pixels, y down) for one label per point in a plot of `size` (width, height): right of the point,
    else left of it, moved up or down a line at a time until the box stays inside the plot and overlaps no
    label placed before it, no point (a 14 px marker) and no obstacle (a line drawn as small boxes). Points
    earlier in the list are placed first. None for a label that finds no free place: the chart leaves it out
    (its point keeps its tooltip) rather than draw it over another."""
    w, h = size
    # every box a label may not touch, as rows (x0, y0, x1, y1): one array test per candidate keeps this fast
    marks = np.array([(x - 7, y - 7, x + 7, y + 7) for x, y in points], float).reshape(-1, 4)
    blocked = np.vstack([marks, np.asarray(obstacles, float).reshape(-1, 4)])
    taken: list[Box | None] = []
    line = font + 3
    for (x, y), text in zip(points, texts, strict=True):
        width = text_box(0, 0, text, font).x1
        for k in range(2 * tries + 1):
            dy = line * ((k + 1) // 2) * (1 if k % 2 else -1)  # 0, +1, -1, +2, -2, ... lines
            options = (text_box(x + gap, y + dy, text, font), text_box(x - gap - width, y + dy, text, font))
            free = [
                b
                for b in options
                if b.x0 >= 0 and b.x1 <= w and b.y0 >= 0 and b.y1 <= h
                and not (
                    (b.x0 < blocked[:, 2]) & (blocked[:, 0] < b.x1) & (b.y0 < blocked[:, 3]) & (blocked[:, 1] < b.y1)
                ).any()
            ]  # fmt: skip
            if free:
                taken.append(free[0])
                blocked = np.vstack([blocked, np.array(free[0], float)[None]])
                break
        else:
            taken.append(None)
    return taken


def line_obstacles(xs, ys, step: float = 4) -> np.ndarray:
    """A polyline in pixels as small boxes (rows x0, y0, x1, y1) every `step` pixels or closer, for place_labels
    to keep labels off it."""
    xs, ys = np.asarray(xs, float), np.asarray(ys, float)
    centres = [np.zeros((0, 2))]
    for x0, y0, x1, y1 in zip(xs[:-1], ys[:-1], xs[1:], ys[1:], strict=True):
        t = np.linspace(0, 1, max(1, int(math.hypot(x1 - x0, y1 - y0) / step)) + 1)[:, None]
        centres.append(np.hstack([x0 + (x1 - x0) * t, y0 + (y1 - y0) * t]))
    c = np.vstack(centres)
    return np.hstack([c - 1.5, c + 1.5])


class Axis(NamedTuple):
    """A scale's domain and type, to turn data into pixels and back the way Vega-Lite draws it."""

    lo: float
    hi: float
    log: bool

    def _f(self, v: float) -> float:
        return math.log10(v) if self.log else v

    def to_px(self, v: float, length: float, flip: bool = False) -> float:
        t = (self._f(v) - self._f(self.lo)) / (self._f(self.hi) - self._f(self.lo))
        return length * (1 - t if flip else t)

    def from_px(self, px: float, length: float, flip: bool = False) -> float:
        t = 1 - px / length if flip else px / length
        v = self._f(self.lo) + t * (self._f(self.hi) - self._f(self.lo))
        return 10**v if self.log else v

    def decades(self) -> list[float]:
        """Powers of ten inside the domain: the ticks of a log axis whose labels never run into each other."""
        return [10.0**k for k in range(math.ceil(math.log10(self.lo)), math.floor(math.log10(self.hi)) + 1)]

    def scale(self) -> alt.Scale:
        return alt.Scale(type="log" if self.log else "linear", domain=[self.lo, self.hi], nice=False, zero=False)


# Labels are placed for the narrowest plot a page gives a chart (a 1024 px window with the sidebar open): a wider
# plot only moves the labels' anchors apart, so what does not overlap at this width does not overlap at any wider.
NARROWEST_PLOT = 520


def label_frame(
    df: pd.DataFrame, x: str, y: str, text: str, xa: Axis, ya: Axis, height: float, lines: list[pd.DataFrame] = ()
) -> pd.DataFrame:
    """Where each row's label goes (columns label_x, label_y in data units, and the row's own x, y for the leader
    line), placed by place_labels at NARROWEST_PLOT px wide and `height` px high. Rows with the same text less
    than 4 px apart get one label. `lines` (frames with the same x and y columns) are kept free of labels."""
    w = NARROWEST_PLOT
    px = [(xa.to_px(a, w), ya.to_px(b, height, flip=True)) for a, b in zip(df[x], df[y], strict=True)]
    texts = [str(t) for t in df[text]]
    keep: list[int] = []
    for i, (p, t) in enumerate(zip(px, texts, strict=True)):
        if not any(texts[j] == t and math.dist(px[j], p) < 4 for j in keep):
            keep.append(i)
    obstacles = [np.zeros((0, 4))]
    for ln in lines:
        ln = ln[(ln[x] >= xa.lo) & (ln[x] <= xa.hi) & (ln[y] >= ya.lo) & (ln[y] <= ya.hi)]
        obstacles.append(line_obstacles([xa.to_px(v, w) for v in ln[x]], [ya.to_px(v, height, True) for v in ln[y]]))
    boxes = place_labels([px[i] for i in keep], [texts[i] for i in keep], (w, height), np.vstack(obstacles))
    placed = [(i, b) for i, b in zip(keep, boxes, strict=True) if b is not None]
    out = df.iloc[[i for i, _ in placed]].copy()
    out["label_x"] = [xa.from_px(b.x0, w) for _, b in placed]
    out["label_y"] = [ya.from_px((b.y0 + b.y1) / 2, height, flip=True) for _, b in placed]
    out["label_box"] = [b for _, b in placed]  # pixels at NARROWEST_PLOT wide, for tests
    return out


def with_labels(df: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """df with label_frame's columns joined on (NaN on rows whose label another row shows), so the points and
    their labels share one data set (layers over one data set are cheaper to build than over several)."""
    return df.join(labels[["label_x", "label_y"]].astype(float))


def direct_labels(base: alt.Chart, x: str, y: str, text: str, xa: Axis, ya: Axis, color=None) -> list[alt.Chart]:
    """The labels of label_frame (joined by with_labels into base's data) as text, each joined to its point by
    a thin leader line: two layers to add to the chart's own."""
    xs, ys = xa.scale(), ya.scale()
    labelled = base.transform_filter("isValid(datum.label_x)")
    leader = labelled.mark_rule(color=NEUTRAL, strokeWidth=1, opacity=0.8).encode(
        x=alt.X(f"{x}:Q", scale=xs), y=alt.Y(f"{y}:Q", scale=ys), x2="label_x:Q", y2="label_y:Q"
    )
    words = labelled.mark_text(align="left", baseline="middle", fontSize=LABEL_FONT, fontWeight="bold").encode(
        x=alt.X("label_x:Q", scale=xs), y=alt.Y("label_y:Q", scale=ys), text=f"{text}:N"
    )
    if color is not None:
        words = words.encode(color=color)
    return [leader, words]
