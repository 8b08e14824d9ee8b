"""The review sheet as one image (core.view.review gives its content): a header, one block per candidate side
by side, and a footer, laid out by Vega-Lite's concatenation, not by fixed offsets. Each block is its name, its
setup, one GPU's memory as a bar on the scale every block shares, and its numbers, assumptions and formulas.

Nothing can run into a neighbour: every line is wrapped to its block's width by a width estimate that is
generous for any sans-serif font a viewer may substitute (DejaVu Sans, the widest common one, is under it:
`glyph_em`), a block is as wide as its longest line, and Vega-Lite places blocks by their real bounds. The
blocks' parts have the same heights across candidates, so bars and sections line up. Light and dark variants
differ only in colours.
"""

from __future__ import annotations

from dataclasses import dataclass

import altair as alt
import pandas as pd

from core.view.memory_charts import PART_COLORS
from core.view.review import PARTS, Column, Sheet

TITLE, NAME, BODY, SMALL = 22, 17, 13, 12  # font sizes (px at scale 1): readable on a 1280 x 720 slide
LINE = 1.35  # line height, in font sizes
GAP = 40  # between candidate blocks (px)
TARGET = {1: 640, 2: 520, 3: 400, 4: 320}  # a block's widest line (px), by the number of candidates
PADDING = {side: 28 for side in ("left", "top", "right", "bottom")}  # an object: Streamlit cannot extend a number
SWATCH = 18  # from a colour key's square to its text (px)
KEY_GAP = 16  # between one colour key's text and the next key (px)
BAR_COLORS = {part: PART_COLORS["KV cache" if part == "KV cache pool" else part] for part in PARTS}


@dataclass(frozen=True)
class Theme:
    background: str
    text: str
    muted: str  # setup, assumptions, section names
    faint: str  # the footer, the axis
    error: str


THEMES = {
    "light": Theme("#ffffff", "#111827", "#374151", "#6b7280", "#b91c1c"),
    "dark": Theme("#0e1117", "#f3f4f6", "#c9ced6", "#9ca3af", "#f87171"),
}


def glyph_em(ch: str) -> float:
    """A character's advance in ems, rounded up for the wide sans-serif faces (DejaVu Sans: 'W' 0.99, 'm' 0.97,
    capitals 0.6-0.86, '+' and '=' 0.84, digits 0.64, lower case 0.28-0.65; bold up to 12% wider): better a
    block a little too wide than text that runs into the next one."""
    if ch in " .,:;'|!ijlfrt()[]/":
        return 0.45
    if ch in "WMmw@%&":
        return 1.02
    if not ch.isascii():
        return 1.0
    if ch.isupper() or ch in "#+<=>^~":
        return 0.86
    return 0.66


def text_width(text: str, size: float, bold: bool = False) -> float:
    """Width of `text` in px at font size `size`, over-estimated (bold adds 12%)."""
    return sum(glyph_em(ch) for ch in text) * size * (1.12 if bold else 1.0)


def wrap(text: str, size: float, width: float, bold: bool = False) -> list[str]:
    """`text` in lines no wider than `width` px by `text_width`: broken at spaces, and a word longer than a line
    broken where it must be."""
    lines, line = [], ""
    for word in text.split():
        while word and text_width(word, size, bold) > width:
            fits = [j for j in range(1, len(word)) if text_width(word[:j], size, bold) <= width] or [1]
            k = max([j for j in fits if word[j - 1] == "-"] or fits)  # after a hyphen where one fits
            if line:
                lines.append(line)
                line = ""
            lines.append(word[:k])
            word = word[k:]
        if not word:
            continue
        joined = f"{line} {word}" if line else word
        if text_width(joined, size, bold) <= width:
            line = joined
        else:
            lines.append(line)
            line = word
    return [*lines, line] if line else lines or [""]


@dataclass(frozen=True)
class Line:
    """One line of a block: its text, font size, weight and colour (a Theme field); or, with `keys`, a row of
    colour keys, each a (colour, text) placed after the one before by its measured width."""

    text: str
    size: int = BODY
    bold: bool = False
    role: str = "text"
    keys: tuple[tuple[str, str], ...] = ()

    def key_x(self) -> list[float]:
        """Where each key starts (px): after the previous key's swatch, text and a space."""
        xs, x = [], 0.0
        for _, text in self.keys:
            xs.append(x)
            x += SWATCH + text_width(text, self.size) + KEY_GAP
        return xs

    def width(self) -> float:
        if self.keys:
            return self.key_x()[-1] + SWATCH + text_width(self.keys[-1][1], self.size)
        return text_width(self.text, self.size, self.bold)


def key_lines(items: list[tuple[str, str]], width: float, size: int = BODY) -> list[Line]:
    """Colour keys (colour, text) flowed into as few rows as fit in `width`."""
    rows: list[Line] = []
    for item in items:
        if rows and Line("", size, keys=(*rows[-1].keys, item)).width() <= width:
            rows[-1] = Line("", size, keys=(*rows[-1].keys, item))
        else:
            rows.append(Line("", size, keys=(item,)))
    return rows


def lines(text: str, width: float, size: int = BODY, bold: bool = False, role: str = "text") -> list[Line]:
    return [Line(t, size, bold, role) for t in wrap(text, size, width, bold)]


def height(block: list[Line]) -> float:
    return sum(line.size * LINE for line in block)


def text_chart(block: list[Line], width: float, theme: Theme, min_height: float = 0) -> alt.LayerChart:
    """A block of lines as text marks at their own pixel positions, `width` x the block's height (or more)."""
    h = max(height(block), min_height, 1)
    rows, keys, y = [], [], 0.0
    for line in block:
        color = getattr(theme, line.role)
        if not line.keys:
            rows.append({"text": line.text, "x": 0, "y": y, "size": line.size, "bold": line.bold, "color": color})
        for x, (swatch, text) in zip(line.key_x(), line.keys, strict=True):
            keys.append({"x": x + 6, "y": y + line.size * 0.55, "color": swatch})
            rows.append({"text": text, "x": x + SWATCH, "y": y, "size": line.size, "bold": False, "color": color})
        y += line.size * LINE
    at = {
        "x": alt.X("x:Q", axis=None, scale=alt.Scale(domain=[0, width], range=[0, width], nice=False, zero=True)),
        "y": alt.Y("y:Q", axis=None, scale=alt.Scale(domain=[0, h], range=[0, h], nice=False, zero=True)),
    }
    base = alt.Chart(pd.DataFrame(rows)).encode(
        **at,
        text="text:N",
        size=alt.Size("size:Q", scale=None, legend=None),
        color=alt.Color("color:N", scale=None, legend=None),
    )
    layers = [
        base.transform_filter("!datum.bold").mark_text(align="left", baseline="top"),
        base.transform_filter("datum.bold").mark_text(align="left", baseline="top", fontWeight="bold"),
    ]
    if keys:
        layers.append(
            alt.Chart(pd.DataFrame(keys))
            .mark_square(size=110, opacity=1)
            .encode(**at, color=alt.Color("color:N", scale=None, legend=None))
        )
    return alt.layer(*layers).properties(width=width, height=h)


def memory_bar(col: Column, scale_gib: float, width: float, theme: Theme) -> alt.Chart:
    """One GPU's memory as a stacked bar on the sheet's shared scale [0, scale_gib]."""
    df = pd.DataFrame([{"part": p, "gib": v, "order": PARTS.index(p)} for p, v in col.memory])
    axis = alt.Axis(
        title="GiB on one GPU",
        format=",d",
        tickCount=5,
        labelFlush=True,
        grid=False,
        labelFontSize=SMALL,
        titleFontSize=SMALL,
        labelColor=theme.faint,
        titleColor=theme.faint,
        domainColor=theme.faint,
        tickColor=theme.faint,
        titleFontWeight="normal",
    )
    return (
        alt.Chart(df)
        .mark_bar()
        .encode(
            x=alt.X("gib:Q", stack="zero", scale=alt.Scale(domain=[0, scale_gib], nice=False), axis=axis),
            color=alt.Color(
                "part:N", scale=alt.Scale(domain=list(PARTS), range=list(BAR_COLORS.values())), legend=None
            ),
            order=alt.Order("order:Q"),
            tooltip=["part", alt.Tooltip("gib:Q", format=",.2f", title="GiB")],
        )
        .properties(width=width, height=26)
    )


SECTIONS = ("Numbers", "Assumptions", "Formulas, with these numbers")


def _blocks(col: Column, width: float, formulas: bool) -> list[list[Line]]:
    """A candidate's blocks of lines: above its bar (name, setup), then below it the memory's colour keys,
    its numbers, assumptions and formulas, each section under its name."""
    head = lines(col.name, width, NAME, bold=True) + [line for s in col.setup for line in lines(s, width, role="muted")]
    keys = key_lines([(BAR_COLORS[part], f"{part} {gib:,.1f} GiB") for part, gib in col.memory], width)
    out = [head, keys]
    bodies = (col.numbers, col.assumptions, col.formulas if formulas else ())
    for section, texts, role in zip(SECTIONS, bodies, ("text", "muted", "text"), strict=True):
        if not texts:
            continue
        out.append(
            lines(section, width, SMALL, bold=True, role="muted")
            + [line for t in texts for line in lines(t, width, role=role)]
        )
    return out


def sheet_chart(sheet: Sheet, theme: str = "light", formulas: bool = True) -> alt.VConcatChart:
    """The whole sheet as one Vega-Lite chart: render it with to_png, to_svg or to_pdf (core.view.export).
    `formulas`: with each candidate's formulas (without them four candidates fit a 16:9 slide better)."""
    t = THEMES[theme]
    n = max(len(sheet.columns), 1)
    target = TARGET[min(n, max(TARGET))]
    blocks = [_blocks(c, target, formulas) for c in sheet.columns]
    # every candidate as wide as the widest line of any (all of them at most `target`)
    width = max([line.width() for parts in blocks for block in parts for line in block] + [target * 0.5])
    total = n * width + (n - 1) * GAP
    header = lines(sheet.title, total, TITLE, bold=True)
    header += [line for s in sheet.shared for line in lines(s, total, role="muted")]
    header += [line for s in sheet.errors for line in lines(s, total, role="error")]
    footer = [line for s in sheet.footer for line in lines(s, total, SMALL, role="faint")]
    # the same part of every candidate is as tall as its tallest, so bars and sections line up
    heights = [max(height(parts[k]) for parts in blocks) for k in range(len(blocks[0]))] if blocks else []
    columns = []
    for col, (head, *below) in zip(sheet.columns, blocks, strict=True):
        charts = [text_chart(head, width, t, heights[0]), memory_bar(col, sheet.scale_gib, width, t)]
        charts += [text_chart(block, width, t, h) for block, h in zip(below, heights[1:], strict=True)]
        columns.append(alt.vconcat(*charts, spacing=12))
    parts = [text_chart(header, total, t)]
    if columns:
        parts.append(alt.hconcat(*columns, spacing=GAP))
    parts.append(text_chart(footer, total, t))
    return (
        alt.vconcat(*parts, spacing=18)
        .configure_view(stroke=None)
        .configure_concat(spacing=GAP)
        .properties(background=t.background, padding=PADDING, autosize=alt.AutoSizeParams(type="pad"))
    )
