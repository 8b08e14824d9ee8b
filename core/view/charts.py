"""Chart builders (pure: data in, alt.Chart out) and offline export to PNG/SVG (vl-convert)."""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import altair as alt
import numpy as np
import pandas as pd

from core.accounting import totals as acc
from core.model.presets import preset_names
from core.model.specs import ModelSpec

# Heatmaps and sweeps are built from computed data of a known, bounded size; Altair's default limit of
# 5,000 rows would refuse a 104 x 104 causal map. Our largest chart is about 33,000 rows.
alt.data_transformers.disable_max_rows()

GIB = 2**30
GPU_COLOR = "#a855f7"  # the memory line: purple, a colour no model line uses, visible on dark and light
# Series colours: saturated, readable on white, on Streamlit's dark background and through a projector (no pale
# yellow, no purple: that is the GPU's). RESERVE serves only where two series shown together want one colour.
PALETTE = ("#2563eb", "#ea580c", "#16a34a", "#dc2626", "#0891b2", "#db2777", "#ca8a04", "#64748b")
RESERVE = ("#4f46e5", "#0f766e", "#be123c", "#a16207", "#15803d", "#c2410c", "#0369a1", "#9d174d")
MODEL_COLORS = list(PALETTE)  # series that are neither models nor designs (matrices, errors, methods)
NEUTRAL = "#7b8698"  # lines that must read on light and dark alike (the roof, the unbiased rule)
FONT = 15  # large enough to read when the chart is pasted into a slide or shown on a projector
LABEL_FONT = 13  # direct labels next to points
# 1, 4, ..., 256, 1K, 4K, ..., 1M (binary K and M, as context lengths are written)
TOKENS_LABEL = (
    "datum.value >= 1048576 ? datum.value / 1048576 + 'M' : "
    "datum.value >= 1024 ? datum.value / 1024 + 'K' : datum.value"
)


CONTEXTS = [2**k for k in range(21)]  # the context grid of every page: 1, 2, 4, ..., 1M tokens


def token_label(n: int) -> str:
    """1,000 -> "1,000"; 4,096 -> "4K"; 1,048,576 -> "1M" (exact multiples only)."""
    if n >= 2**20 and n % 2**20 == 0:
        return f"{n // 2**20}M"
    return f"{n // 1024}K" if n >= 1024 and n % 1024 == 0 else f"{n:,}"


def context_x(field: str = "context") -> alt.X:
    """The log-2 context axis every context chart shares: 1, 4, ..., 1K, 4K, ..., 1M."""
    return alt.X(
        f"{field}:Q",
        scale=alt.Scale(type="log", base=2),
        axis=alt.Axis(title="context (tokens, log scale)", values=[4**k for k in range(11)], labelExpr=TOKENS_LABEL),
    )


def _grid(df: pd.DataFrame) -> tuple[int, int]:
    """(n, cell size in px) of a square query-by-position heatmap: at most ~560 px wide."""
    n = int(df["query"].max()) + 1
    return n, max(4, min(12, 560 // max(n, 1)))


# ----------------------------------------------------------------------------- one colour per model and design

# A design wears one colour on every page, and the preset that stands for it on the Overview wears the same one
# (DeepSeek-V3 is the absorbed-MLA model of the Compute page, Llama-3.1-70B its GQA model).
DESIGN_COLORS = {
    "MLA absorbed": PALETTE[0],
    "MLA": PALETTE[0],
    "GQA": PALETTE[1],
    "DSA": PALETTE[2],
    "MHA": PALETTE[3],
    "MLA materialised": PALETTE[4],
    "MQA": PALETTE[5],
    "V4": PALETTE[6],
}
STANDS_FOR = {
    "deepseek-v3": "MLA absorbed",
    "llama-3.1-70b": "GQA",
    "deepseek-v3.2": "DSA",
    "V3.2": "DSA",
    "deepseek-v4-pro": "V4",
    "V4-Pro": "V4",
    "tiny-mha": "MHA",
    "tiny-gqa": "GQA",
    "tiny-mla": "MLA",
}


@functools.cache
def _preset_colors() -> dict[str, str]:
    """Every shipped preset's colour: the design it stands for, else the palette in preset order."""
    others = [n for n in preset_names() if n not in STANDS_FOR]
    colors = {n: PALETTE[i % len(PALETTE)] for i, n in enumerate(others)}
    return colors | {n: DESIGN_COLORS[d] for n, d in STANDS_FOR.items()}


def color_of(name: str) -> str | None:
    """The fixed colour of a preset model, a design ("GQA") or a design label ("GQA (Llama-3.1-70B)"); None for a
    name the app does not ship (an uploaded config)."""
    if name in DESIGN_COLORS:
        return DESIGN_COLORS[name]
    if (c := _preset_colors().get(name)) is not None:
        return c
    if " (" in name:
        return color_of(name.split(" (", 1)[0])
    return None


def model_colors(names) -> alt.Scale:
    """A colour scale for the models or designs of one chart, in the order given (the legend's order): each name
    its fixed colour (`color_of`), so a model looks the same on every page. A name without one (an uploaded
    config), or one whose colour an earlier name of this chart took, gets the first colour still free."""
    names = list(dict.fromkeys(names))
    spare = PALETTE + RESERVE
    if len(names) > len(spare):
        raise ValueError(f"{len(names)} series in one chart: at most {len(spare)} can have distinct colours")
    used: list[str] = []
    for n in names:
        c = color_of(n)
        if c is None or c in used:
            c = next(c for c in spare if c not in used)
        used.append(c)
    return alt.Scale(domain=names, range=used)


# ----------------------------------------------------------------------------- direct labels that do not collide


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


def cache_vs_context(
    models: dict[str, ModelSpec], contexts: list[int], kv_dtype: str = "bf16", batch: int = 1, layout: str = "latent"
) -> pd.DataFrame:
    """Long table: model, design, context, part ("KV cache", or "fixed state" for models with linear-attention
    or Mamba layers: the same at every context), bytes and GiB (columns kv_bytes, kv_gib)."""
    rows = []
    for label, spec in models.items():
        state = acc.state_bytes(spec, batch)
        for n in contexts:
            b = acc.kv_cache_bytes(spec, n, batch, kv_dtype, layout)
            rows.append(
                {
                    "model": label,
                    "design": spec.design,
                    "context": n,
                    "part": "KV cache",
                    "kv_bytes": b,
                    "kv_gib": b / GIB,
                }
            )
            if state:
                rows.append(
                    {
                        "model": label,
                        "design": spec.design,
                        "context": n,
                        "part": "fixed state",
                        "kv_bytes": state,
                        "kv_gib": state / GIB,
                    }
                )
    return pd.DataFrame(rows)


def style(chart: alt.TopLevelMixin) -> alt.TopLevelMixin:
    """Fonts and legend placement for the page and for slides; apply once, to the outermost chart. A single or
    layered chart fills the page's width and keeps its own plot height ("fit-x"): under Streamlit's default "fit"
    a legend of several rows squeezed the plot and cut the title, and a fixed element height let the next element
    (the download buttons) cover the axis. Show styled charts without a height= so the element grows with them."""
    styled = chart.configure(  # one configure: each configure_* call copies the chart again
        axis=alt.AxisConfig(labelFontSize=FONT, titleFontSize=FONT, labelLimit=300),
        legend=alt.LegendConfig(labelFontSize=FONT, titleFontSize=FONT, labelLimit=400, orient="bottom", columns=2),
        title=alt.TitleConfig(fontSize=FONT + 2, anchor="start"),
    )
    if isinstance(chart, (alt.HConcatChart, alt.VConcatChart, alt.ConcatChart)):
        return styled.properties(autosize=alt.AutoSizeParams(type="pad"))  # panels keep their size
    return styled.properties(autosize=alt.AutoSizeParams(type="fit-x", contains="padding"))


def cache_chart(  # unstyled: wrap in style() before showing
    df: pd.DataFrame, gpu_label: str, gpu_gib: float, context: int, title: str = "KV cache vs context"
) -> alt.Chart:
    """Log-log KV cache (GiB) vs context, a line per model, the GPU's memory as a dashed rule and the
    chosen context as a vertical rule. Models with a fixed-size state (linear attention, Mamba) get a
    second, dotted line in their colour for the state, which does not grow."""
    x = context_x().scale(type="log", base=2, domain=[int(df.context.min()), int(df.context.max())])
    stateful = "part" in df and (df["part"] == "fixed state").any()
    y_title = "KV cache and fixed state (GiB, log scale)" if stateful else "KV cache (GiB, log scale)"
    y = alt.Y("kv_gib:Q", scale=alt.Scale(type="log"), axis=alt.Axis(title=y_title, format="~g"))
    encoding = dict(
        x=x,
        y=y,
        color=alt.Color("model:N", title=None, scale=model_colors(df["model"]), sort=None),
        tooltip=[
            "model",
            "design",
            *(["part"] if stateful else []),
            alt.Tooltip("context:Q", format=","),
            alt.Tooltip("kv_gib:Q", format=".3~f", title="GiB"),
        ],
    )
    if stateful:
        encoding["strokeDash"] = alt.StrokeDash(
            "part:N",
            title=None,
            scale=alt.Scale(domain=["KV cache", "fixed state"], range=[[1, 0], [2, 3]]),
        )
        encoding["detail"] = "part:N"
    lines = alt.Chart(df).mark_line(strokeWidth=3).encode(**encoding)
    gpu = pd.DataFrame({"gib": [gpu_gib], "label": [f"{gpu_label}: {gpu_gib:.1f} GiB"]})
    rule = alt.Chart(gpu).mark_rule(strokeDash=[8, 4], color=GPU_COLOR, strokeWidth=2).encode(y="gib:Q")
    text = (
        alt.Chart(gpu)
        .mark_text(align="left", dx=6, dy=-8, color=GPU_COLOR, fontSize=FONT, fontWeight="bold")
        .encode(y="gib:Q", x=alt.value(0), text="label:N")
    )
    now = alt.Chart(pd.DataFrame({"context": [context]})).mark_rule(color="#6b7280").encode(x="context:Q")
    return alt.layer(lines, rule, text, now).properties(width=720, height=420, title=title)


def to_png(chart: alt.TopLevelMixin | str, scale: float = 2.0) -> bytes:
    """PNG of a chart (or of its Vega-Lite JSON), rendered offline by vl-convert."""
    import vl_convert as vlc

    return vlc.vegalite_to_png(chart if isinstance(chart, str) else chart.to_json(), scale=scale)


def to_svg(chart: alt.TopLevelMixin | str) -> str:
    import vl_convert as vlc

    return vlc.vegalite_to_svg(chart if isinstance(chart, str) else chart.to_json())


# ----------------------------------------------------------------------------- memory planner

PART_COLORS = {
    "weights": "#64748b",
    "KV cache": "#2563eb",
    "fixed state": "#7c3aed",
    "reserved": "#f59e0b",
    "free": "#10b981",
    "over capacity": "#dc2626",
}


def memory_parts(plans: dict) -> pd.DataFrame:
    """Long table, one bar per model and pipeline stage, for ONE GPU of that stage: weights, KV cache
    (this GPU's share of its requests), fixed state (linear attention, Mamba; only where there is some),
    reserved, free or over (GiB). `plans` maps a model label to a core.accounting.planner.Plan."""
    rows = []
    for label, p in plans.items():
        for k, st in enumerate(p.stages):
            a, b = st.layers
            name = label if len(p.stages) == 1 else f"{label}, stage {k + 1} (layers {a}-{b - 1})"
            n = p.requests_per_group
            parts = {"weights": st.weights.total, "KV cache": n * (st.request_bytes - st.state_bytes)}
            if st.state_bytes:
                parts["fixed state"] = n * st.state_bytes
            parts["reserved"] = p.reserved_bytes
            free = st.weights.total + p.reserved_bytes + st.kv_budget_bytes - sum(parts.values())
            parts["free" if free >= 0 else "over capacity"] = abs(free)
            for order, (part, v) in enumerate(parts.items()):
                rows.append({"model": name, "part": part, "order": order, "bytes": v, "gib": v / GIB})
    return pd.DataFrame(rows)


def memory_chart(df: pd.DataFrame, usable_gib: float, label: str, title: str = "Memory on the GPUs") -> alt.Chart:
    """Horizontal stacked bars per model; the usable memory as a dashed rule."""
    bars = (
        alt.Chart(df)
        .mark_bar()
        .encode(
            y=alt.Y("model:N", title=None, sort=None, axis=alt.Axis(labelLimit=300)),
            x=alt.X("sum(gib):Q", title="GiB", stack="zero"),
            color=alt.Color(
                "part:N",
                title=None,
                scale=alt.Scale(domain=list(PART_COLORS), range=list(PART_COLORS.values())),
                legend=alt.Legend(orient="top", columns=5),
            ),
            order=alt.Order("order:Q"),
            tooltip=["model", "part", alt.Tooltip("gib:Q", format=",.2f", title="GiB")],
        )
    )
    cap = pd.DataFrame({"gib": [usable_gib], "label": [label]})
    rule = alt.Chart(cap).mark_rule(strokeDash=[8, 4], color=GPU_COLOR, strokeWidth=2).encode(x="gib:Q")
    text = (
        alt.Chart(cap)
        .mark_text(align="right", dx=-6, dy=-6, color=GPU_COLOR, fontSize=FONT, fontWeight="bold", baseline="bottom")
        .encode(x="gib:Q", y=alt.value(0), text="label:N")
    )
    return alt.layer(bars, rule, text).properties(width=720, height=alt.Step(48), title=title)


def breakdown_table(specs: dict[str, ModelSpec], context: int, batch: int, kv_dtype: str, layout: str) -> pd.DataFrame:
    """Cache by layer type and tensor, per model (GiB), then the fixed-size state (linear attention, Mamba),
    whose rows do not depend on the context."""
    rows = []
    for label, spec in specs.items():
        terms = acc.kv_cache(spec, context, batch, kv_dtype, layout).terms + acc.state(spec, batch).terms
        for t in terms:
            rows.append(
                {
                    "model": label,
                    "layer type": t.layer_kind,
                    "tensor": t.tensor,
                    "part": f"{t.layer_kind} {t.tensor}",
                    "layers": t.n_layers,
                    "rows per layer": t.rows,
                    "bytes per row": t.bytes_per_row,
                    "bytes": t.bytes,
                    "gib": t.bytes / GIB,
                }
            )
    return pd.DataFrame(rows)


def breakdown_chart(df: pd.DataFrame, title: str) -> alt.Chart:
    """Share of each layer type and tensor in each model's cache (normalised bars)."""
    return (
        alt.Chart(df)
        .mark_bar()
        .encode(
            y=alt.Y("model:N", title=None, sort=None, axis=alt.Axis(labelLimit=300)),
            x=alt.X("sum(bytes):Q", stack="normalize", title="share of what is kept", axis=alt.Axis(format="%")),
            color=alt.Color("part:N", title=None, scale=alt.Scale(scheme="tableau20")),
            tooltip=[
                "model",
                "part",
                "layers",
                alt.Tooltip("rows per layer:Q", format=","),
                alt.Tooltip("gib:Q", format=",.3f", title="GiB"),
            ],
        )
        .properties(width=720, height=alt.Step(40), title=title)
    )


def review_card(
    title: str, inputs: list[str], table: pd.DataFrame, chart: alt.TopLevelMixin, footer: str
) -> alt.TopLevelMixin:
    """One image for a slide: title, the inputs, the comparison table (as text), the main chart, and a
    footer with the app version and date. Render with to_png."""

    def text_block(lines: list[str], size: int, weight: str = "normal", color: str = "#111827") -> alt.Chart:
        df = pd.DataFrame({"line": lines, "i": range(len(lines))})
        return (
            alt.Chart(df)
            .mark_text(align="left", baseline="top", fontSize=size, fontWeight=weight, color=color)
            .encode(x=alt.value(0), y=alt.Y("i:O", axis=None), text="line:N")
            .properties(width=900, height=(size + 8) * len(lines))
        )

    cols = list(table.columns)
    cells = []
    for r, row in enumerate([dict(zip(cols, cols, strict=True)), *table.astype(str).to_dict("records")]):
        for c, col in enumerate(cols):
            cells.append({"r": r, "c": c, "text": str(row[col]), "head": r == 0})
    base = alt.Chart(pd.DataFrame(cells)).encode(
        x=alt.X("c:O", axis=None, scale=alt.Scale(align=0)), y=alt.Y("r:O", axis=None), text="text:N"
    )
    grid = alt.layer(
        base.transform_filter("datum.head").mark_text(align="left", baseline="middle", fontSize=13, fontWeight="bold"),
        base.transform_filter("!datum.head").mark_text(align="left", baseline="middle", fontSize=13),
    ).properties(width=min(1100, 150 * len(cols)), height=24 * (len(table) + 1))
    return (
        alt.vconcat(
            text_block([title], 22, "bold"),
            text_block(inputs, 13, color="#374151"),
            grid,
            chart,
            text_block([footer], 11, color="#6b7280"),
            spacing=14,
        )
        .configure_view(stroke=None)
        .configure_axis(labelFontSize=FONT, titleFontSize=FONT)
        .configure_legend(labelFontSize=FONT, labelLimit=400, orient="bottom", columns=3)
        .configure_title(fontSize=FONT + 2)
        .properties(background="white", padding=24)
    )


# ----------------------------------------------------------------------------- inside MLA


def heatmap_frame(probs, head: int, max_side: int = 128, block: int = 1) -> pd.DataFrame:
    """Long table (query, key, p) of one head's attention probabilities (H, T, S) array. Longer maps
    are averaged over square blocks so at most max_side x max_side cells reach the browser (query
    and key then index blocks: the first position of each block). `block`: the maps were already
    averaged over blocks of that many positions (core.lab.inside.block_average)."""
    p = probs[head]
    t, s = p.shape
    if block > 1:
        q_idx = [i * block for i in range(t) for _ in range(s)]
        k_idx = [j * block for _ in range(t) for j in range(s)]
        return pd.DataFrame({"query": q_idx, "key": k_idx, "p": [float(v) for v in p.reshape(-1)]})
    f = -(-max(t, s) // max_side)
    if f > 1:
        import numpy as np

        tt, ss = -(-t // f) * f, -(-s // f) * f
        padded = np.zeros((tt, ss), dtype=p.dtype)
        padded[:t, :s] = p
        p = padded.reshape(tt // f, f, ss // f, f).mean(axis=(1, 3))
        t, s = p.shape
        q_idx = [i * f for i in range(t) for _ in range(s)]
        k_idx = [j * f for _ in range(t) for j in range(s)]
        return pd.DataFrame({"query": q_idx, "key": k_idx, "p": [float(v) for v in p.reshape(-1)]})
    q_idx, k_idx = [i for i in range(t) for _ in range(s)], [j for _ in range(t) for j in range(s)]
    return pd.DataFrame({"query": q_idx, "key": k_idx, "p": [float(v) for v in p.reshape(-1)]})


def attention_heatmap(df: pd.DataFrame, title: str) -> alt.Chart:
    """Query x key heatmap of attention probabilities (causal: the upper triangle is zero)."""
    n, size = _grid(df)
    return (
        alt.Chart(df)
        .mark_rect()
        .encode(
            x=alt.X("key:O", title="key position (attended token)", axis=alt.Axis(labelAngle=0, values=_ticks(n))),
            y=alt.Y("query:O", title="query position", axis=alt.Axis(values=_ticks(n))),
            color=alt.Color(
                "p:Q", title="probability", scale=alt.Scale(type="sqrt", domain=[0, 1], range=["#ffffff", "#1e3a8a"])
            ),
            tooltip=["query", "key", alt.Tooltip("p:Q", format=".3f")],
        )
        .properties(width=size * n, height=size * n, title=title)
    )


def _ticks(n: int) -> list[int]:
    step = max(1, n // 8)
    return list(range(0, n, step))


def flops_chart(df: pd.DataFrame, title: str) -> alt.TopLevelMixin:
    """Measured FLOPs per design, one panel per step (prefill, decode), each on its own linear scale."""
    colors = model_colors(df["design"])
    panels = []
    for step in df["step"].unique():
        panels.append(
            alt.Chart(df[df["step"] == step])
            .mark_bar()
            .encode(
                x=alt.X(
                    "design:N",
                    title=None,
                    sort=None,
                    axis=alt.Axis(labelAngle=-35, labelLimit=160, labelOverlap=False),
                ),
                y=alt.Y("flops:Q", title="FLOPs (measured)", axis=alt.Axis(format="~s")),
                color=alt.Color("design:N", scale=colors, legend=None),
                tooltip=["design", "step", alt.Tooltip("flops:Q", format=",")],
            )
            .properties(width=250, height=260, title=step)
        )
    return alt.hconcat(*panels).properties(title=title)


# ----------------------------------------------------------------------------- latent rank


def _rank_rule(rank: int) -> alt.Chart:
    return (
        alt.Chart(pd.DataFrame({"rank": [rank], "label": [f"d_c = {rank}"]}))
        .mark_rule(color=GPU_COLOR, strokeDash=[6, 4], strokeWidth=2)
        .encode(x="rank:Q")
    )


def spectra_chart(df: pd.DataFrame, title: str) -> alt.Chart:
    """Singular values (log) vs index, one line per matrix (columns: index, value, matrix)."""
    return (
        alt.Chart(df)
        .mark_line(strokeWidth=2.5)
        .encode(
            x=alt.X("index:Q", title="singular direction (largest first)"),
            y=alt.Y("value:Q", title="singular value (log scale)", scale=alt.Scale(type="log")),
            color=alt.Color("matrix:N", title=None, scale=alt.Scale(range=MODEL_COLORS)),
            tooltip=["matrix", "index", alt.Tooltip("value:Q", format=".4g")],
        )
        .properties(width=720, height=320, title=title)
    )


def energy_chart(df: pd.DataFrame, rank: int, title: str) -> alt.Chart:
    """Cumulative energy share vs rank, one line per matrix, the chosen rank marked."""
    lines = (
        alt.Chart(df)
        .mark_line(strokeWidth=2.5)
        .encode(
            x=alt.X("rank:Q", title="latent rank d_c (directions kept)"),
            y=alt.Y("energy:Q", title="energy captured", axis=alt.Axis(format="%"), scale=alt.Scale(domain=[0, 1])),
            color=alt.Color("matrix:N", title=None, scale=alt.Scale(range=MODEL_COLORS)),
            tooltip=["matrix", "rank", alt.Tooltip("energy:Q", format=".1%")],
        )
    )
    return alt.layer(lines, _rank_rule(rank)).properties(width=720, height=320, title=title)


ERROR_LABELS = {
    "k_error": "keys",
    "v_error": "values",
    "scores_error": "attention scores",
    "probs_tv": "attention probabilities (TV)",
    "out_error": "layer output",
}


def errors_chart(sweep: pd.DataFrame, rank: int, title: str) -> alt.Chart:
    """Relative errors of the converted layer vs rank (K, V, scores, probabilities, output)."""
    long = sweep.melt(id_vars=["rank"], value_vars=list(ERROR_LABELS), var_name="what", value_name="error")
    long["what"] = long["what"].map(ERROR_LABELS)
    lines = (
        alt.Chart(long)
        .mark_line(point=True, strokeWidth=2.5)
        .encode(
            x=alt.X("rank:Q", title="latent rank d_c"),
            y=alt.Y("error:Q", title="relative error (TV for probabilities)"),
            color=alt.Color(
                "what:N", title=None, sort=list(ERROR_LABELS.values()), scale=alt.Scale(range=MODEL_COLORS)
            ),
            tooltip=["what", "rank", alt.Tooltip("error:Q", format=".4f")],
        )
    )
    return alt.layer(lines, _rank_rule(rank)).properties(width=720, height=340, title=title)


# ----------------------------------------------------------------------------- sparse and compressed

HOW_COLORS = {
    "raw (window)": "#1d4ed8",
    "in a selected entry": "#10b981",
    "in an entry not selected": "#e5e7eb",
}


def selection_heatmap(df: pd.DataFrame, title: str) -> alt.Chart:
    """Query x key: the indexer's score in grey, the top-k tokens each query keeps in blue."""
    n, size = _grid(df)
    x = alt.X("key:O", title="key position", axis=alt.Axis(labelAngle=0, values=_ticks(n)))
    y = alt.Y("query:O", title="query position", axis=alt.Axis(values=_ticks(n)))
    base = alt.Chart(df).encode(x=x, y=y, tooltip=["query", "key", alt.Tooltip("score:Q", format=".3f"), "selected"])
    scores = base.mark_rect().encode(
        color=alt.Color("score:Q", title="indexer score", scale=alt.Scale(range=["#f9fafb", "#9ca3af"]))
    )
    chosen = base.transform_filter("datum.selected").mark_rect(color="#1d4ed8")
    return alt.layer(scores, chosen).properties(width=size * n, height=size * n, title=title)


def visibility_heatmap(df: pd.DataFrame, title: str) -> alt.Chart:
    """Query x original token: seen raw, through a selected entry, or compressed but not selected."""
    n, size = _grid(df)
    return (
        alt.Chart(df)
        .mark_rect()
        .encode(
            x=alt.X("token:O", title="original token", axis=alt.Axis(labelAngle=0, values=_ticks(n))),
            y=alt.Y("query:O", title="query position", axis=alt.Axis(values=_ticks(n))),
            color=alt.Color(
                "how:N", title=None, scale=alt.Scale(domain=list(HOW_COLORS), range=list(HOW_COLORS.values()))
            ),
            tooltip=["query", "token", "how"],
        )
        .properties(width=size * n, height=size * n, title=title)
    )


def parts_vs_context(df: pd.DataFrame, title: str) -> alt.Chart:
    """FLOPs per decoded token by part vs context (log-log), in the model's colour, a line style per part. Zero
    values (no indexer yet below one compressed entry) are left out: a log axis has no zero."""
    return (
        alt.Chart(df[df["flops"] > 0])
        .mark_line(strokeWidth=2.5)
        .encode(
            x=context_x(),
            y=alt.Y(
                "flops:Q",
                title="FLOPs per decoded token (log scale)",
                scale=alt.Scale(type="log"),
                axis=alt.Axis(format="~s"),
            ),
            color=alt.Color("model:N", title=None, scale=model_colors(df["model"]), sort=None),
            strokeDash=alt.StrokeDash("part:N", title=None, scale=alt.Scale(range=[[1, 0], [10, 5], [2, 3]])),
            tooltip=["model", "part", alt.Tooltip("context:Q", format=","), alt.Tooltip("flops:Q", format=".3s")],
        )
        .properties(width=720, height=400, title=title)
    )


# ----------------------------------------------------------------------------- quantized caches


def pareto_frontier(df: pd.DataFrame, x: str, y: str) -> pd.Series:
    """True for the rows no other row beats on both x (smaller) and y (smaller)."""
    a, b = df[x].to_numpy(float)[:, None], df[y].to_numpy(float)[:, None]  # this row (i) against every row (j)
    beaten = ((a.T <= a) & (b.T <= b) & ((a.T < a) | (b.T < b))).any(axis=1)
    return pd.Series(~beaten, index=df.index)


PARETO_HEIGHT = 420  # px of the Pareto plot; its labels are placed for this height


def pareto_chart(df: pd.DataFrame, x: str, y: str, title: str) -> alt.LayerChart:
    """Bytes per token vs error, one point per scheme with its name as a direct label (placed by label_frame so
    no two labels, and no label and a point or the frontier, overlap), the Pareto frontier as a line."""
    front_mask = pareto_frontier(df, x, y)
    d = df.assign(frontier=front_mask, kind=front_mask.map({True: "on the Pareto frontier", False: "dominated"}))
    xa = Axis(float(d[x].min()) / 1.25, float(d[x].max()) * 2.2, log=True)  # room right of the largest
    ya = Axis(-0.04 * float(d[y].max()), 1.08 * float(d[y].max()), log=False)
    line = d[d["frontier"]].sort_values(x)
    order = d.sort_values(["frontier", x], ascending=[False, True])  # the frontier's labels first, nearest
    labels = label_frame(order, x, y, "scheme", xa, ya, PARETO_HEIGHT, lines=[line])
    data = alt.Chart(with_labels(d, labels))
    base = data.encode(
        x=alt.X(f"{x}:Q", title=f"{x} (log scale)", scale=xa.scale()),
        y=alt.Y(f"{y}:Q", title=y, axis=alt.Axis(format="%"), scale=ya.scale()),
    )
    kind = alt.Color(
        "kind:N",
        title=None,
        scale=alt.Scale(domain=["on the Pareto frontier", "dominated"], range=["#2563eb", "#8a94a6"]),
    )
    pts = base.mark_circle(size=90, opacity=1).encode(
        color=kind,
        tooltip=["scheme", alt.Tooltip(f"{x}:Q", format=",.1f"), alt.Tooltip(f"{y}:Q", format=".2%")],
    )
    front = base.transform_filter("datum.frontier").mark_line(color="#2563eb", strokeDash=[4, 3])
    text = direct_labels(data, x, y, "scheme", xa, ya, kind)
    return alt.layer(front, pts, *text).properties(width=720, height=PARETO_HEIGHT, title=title)


def bias_chart(df: pd.DataFrame, title: str) -> alt.Chart:
    """Estimated / true inner products (ratio) by bits and estimator; 1 is unbiased."""
    bars = (
        alt.Chart(df)
        .mark_bar()
        .encode(
            x=alt.X("bits:O", title="bits per coordinate (codebook)", axis=alt.Axis(labelAngle=0)),
            xOffset="estimator:N",
            y=alt.Y("ratio:Q", title="estimate / truth (least-squares slope)", scale=alt.Scale(domain=[0, 1.1])),
            color=alt.Color("estimator:N", title=None, scale=alt.Scale(range=["#f59e0b", "#2563eb"])),
            tooltip=[
                "bits",
                "estimator",
                alt.Tooltip("ratio:Q", format=".3f"),
                alt.Tooltip("relative error:Q", format=".3f"),
            ],
        )
    )
    one = (
        alt.Chart(pd.DataFrame({"y": [1.0]})).mark_rule(color=NEUTRAL, strokeDash=[6, 4], strokeWidth=2).encode(y="y:Q")
    )
    return alt.layer(bars, one).properties(width=480, height=320, title=title)


def rotation_chart(df: pd.DataFrame, title: str) -> alt.Chart:
    """Per-channel RMS of the keys, channels sorted by RMS, before and after a random rotation."""
    d = df.copy()
    d["order"] = d.groupby("when")["rms"].rank(ascending=False, method="first")
    return (
        alt.Chart(d)
        .mark_line(strokeWidth=2.5)
        .encode(
            x=alt.X("order:Q", title="channels, sorted by RMS"),
            y=alt.Y("rms:Q", title="channel RMS"),
            color=alt.Color("when:N", title=None, scale=alt.Scale(range=["#2563eb", "#ef4444"])),
            tooltip=["when", "channel", alt.Tooltip("rms:Q", format=".3f")],
        )
        .properties(width=720, height=320, title=title)
    )


# ----------------------------------------------------------------------------- compute and roofline


ROOF_HEIGHT = 440  # px of the roofline's plot; its labels are placed for this height


def roofline_chart(roof: pd.DataFrame, points: pd.DataFrame, title: str) -> alt.LayerChart:
    """Log-log roofline: the roof of one GPU, and each design's decode (whole step: filled square; attention core
    alone: hollow circle) at its arithmetic intensity. Designs often sit at the same place on the roof (MHA and
    materialised MLA both at 1 FLOP per byte), so every point carries its design's name as a direct label, placed
    by label_frame where it overlaps no other label, point or the roof, with a leader line to its point."""
    xa = Axis(float(roof.intensity.min()), float(roof.intensity.max()), log=True)
    low = min(roof.attainable_tflops.min(), points.attainable_tflops.min())
    ya = Axis(10 ** math.floor(math.log10(low)), 3 * float(roof.attainable_tflops.max()), log=True)
    x = alt.X(
        "intensity:Q",
        title="arithmetic intensity (FLOP per byte, log scale)",
        scale=xa.scale(),
        axis=alt.Axis(values=xa.decades(), format="~g"),
    )
    y = alt.Y(
        "attainable_tflops:Q",
        title="attainable TFLOP/s (log scale)",
        scale=ya.scale(),
        axis=alt.Axis(values=ya.decades(), format="~g"),
    )
    line = alt.Chart(roof).mark_line(color=NEUTRAL, strokeWidth=3).encode(x=x, y=y)
    colors = model_colors(points["design"])
    short = points.assign(name=points["design"].str.split(" (", n=1, regex=False).str[0])
    labels = label_frame(short, "intensity", "attainable_tflops", "name", xa, ya, ROOF_HEIGHT, lines=[roof])
    base = alt.Chart(with_labels(short, labels))
    pts = base.mark_point(size=150, strokeWidth=2.5, opacity=0.9).encode(
        x=x,
        y=y,
        color=alt.Color("design:N", title=None, scale=colors, sort=None),
        shape=alt.Shape(
            "what:N",
            title=None,
            scale=alt.Scale(domain=["whole decode step", "attention core"], range=["square", "circle"]),
            legend=alt.Legend(orient="top", columns=2),
        ),
        fill=alt.condition(
            "datum.what == 'whole decode step'", alt.Color("design:N", scale=colors), alt.value("transparent")
        ),
        tooltip=[
            "design",
            "what",
            alt.Tooltip("intensity:Q", format=".1f"),
            "bound",
            alt.Tooltip("step_ms:Q", format=".2f", title="step ms"),
            alt.Tooltip("tokens_per_s:Q", format=",.0f", title="tokens/s"),
        ],
    )
    text = direct_labels(base, "intensity", "attainable_tflops", "name", xa, ya, alt.Color("design:N", scale=colors))
    return alt.layer(line, pts, *text).properties(width=720, height=ROOF_HEIGHT, title=title)


def per_token_chart(df: pd.DataFrame, quantity: str, title: str) -> alt.Chart:
    """One quantity per decoded token vs context (log-log), a line per design."""
    d = df[(df["quantity"] == quantity) & (df["value"] > 0)]
    unit = "bytes" if "bytes" in quantity else "FLOPs"
    return (
        alt.Chart(d)
        .mark_line(strokeWidth=2.5)
        .encode(
            x=context_x(),
            y=alt.Y(
                "value:Q",
                title=f"{quantity} ({unit}, log scale)",
                scale=alt.Scale(type="log"),
                axis=alt.Axis(format="~s"),
            ),
            color=alt.Color("design:N", title=None, scale=model_colors(df["design"]), sort=None),
            tooltip=["design", alt.Tooltip("context:Q", format=","), alt.Tooltip("value:Q", format=".3s")],
        )
        .properties(width=720, height=400, title=title)
    )


# ----------------------------------------------------------------------------- needle in a haystack


def needle_heatmap(df: pd.DataFrame, title: str) -> alt.Chart:
    """Context length x needle depth -> retrieval accuracy, the classic picture."""
    base = alt.Chart(df).encode(
        x=alt.X(
            "depth:O",
            title="needle depth (0: start of the context, 1: just before the question)",
            axis=alt.Axis(labelAngle=0),
        ),
        y=alt.Y("length:O", title="context length (tokens)", sort="descending"),
    )
    rect = base.mark_rect().encode(
        color=alt.Color(
            "accuracy:Q", title="accuracy", scale=alt.Scale(domain=[0, 1], range=["#dc2626", "#fde68a", "#16a34a"])
        ),
        tooltip=["length", "depth", alt.Tooltip("accuracy:Q", format=".0%"), alt.Tooltip("cache_bytes:Q", format=",")],
    )
    text = base.mark_text(fontSize=FONT, color="#111827").encode(text=alt.Text("accuracy:Q", format=".0%"))
    return alt.layer(rect, text).properties(width=520, height=300, title=title)


def needle_summary_chart(df: pd.DataFrame, title: str) -> alt.Chart:
    """Accuracy vs cache bytes per sequence, a line through the strengths of each method."""
    base = alt.Chart(df).encode(
        x=alt.X("cache_bytes:Q", title="cache bytes per sequence (log scale)", scale=alt.Scale(type="log")),
        y=alt.Y("accuracy:Q", title="retrieval accuracy", axis=alt.Axis(format="%"), scale=alt.Scale(domain=[0, 1.02])),
        color=alt.Color("method:N", title=None, scale=alt.Scale(range=MODEL_COLORS + ["#84cc16", "#64748b"])),
        tooltip=["label", alt.Tooltip("cache_bytes:Q", format=","), alt.Tooltip("accuracy:Q", format=".0%")],
    )
    return alt.layer(base.mark_line(strokeWidth=2.5), base.mark_point(size=70, filled=True)).properties(
        width=720, height=420, title=title
    )


# ----------------------------------------------------------------------------- hybrid models

HOLDS_COLORS = {"attention (GQA)": "#2563eb", "Gated DeltaNet": "#7c3aed", "Mamba-2": "#10b981"}


def held_chart(
    df: pd.DataFrame, value: str, measured: str, title: str, y_title: str, axis_format: str = "~g"
) -> alt.Chart:
    """Log-log: what each layer holds (or computes) vs context; the accounting as a line, the measurement
    as points on it (core.lab.hybrid.run's table)."""
    x = context_x().scale(type="log", base=2, domain=[1, int(df.context.max())])
    color = alt.Color(
        "layer:N", title=None, scale=alt.Scale(domain=list(HOLDS_COLORS), range=list(HOLDS_COLORS.values()))
    )
    y = alt.Y(f"{value}:Q", scale=alt.Scale(type="log"), axis=alt.Axis(title=y_title, format=axis_format))
    tip = ["layer", "holds", alt.Tooltip("context:Q", format=","), alt.Tooltip(f"{measured}:Q", format=",.6~g")]
    line = alt.Chart(df).mark_line(strokeWidth=3).encode(x=x, y=y, color=color, tooltip=tip)
    points = (
        alt.Chart(df)
        .mark_point(size=90, filled=True, stroke="white", strokeWidth=1)
        .encode(x=x, y=alt.Y(f"{measured}:Q"), color=color, tooltip=tip)
    )
    return alt.layer(line, points).properties(width=720, height=340, title=title)
