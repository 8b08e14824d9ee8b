"""The look every chart shares: palette and one fixed colour per model and design, fonts, the context axis and
token labels, and style() for the outermost chart."""

from __future__ import annotations

import functools

import altair as alt

from core.model.presets import preset_names

# Heatmaps and sweeps are built from computed data of a known, bounded size; Altair's default limit of
# 5,000 rows would refuse a 104 x 104 causal map. Our largest chart is about 33,000 rows.
alt.data_transformers.disable_max_rows()


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
