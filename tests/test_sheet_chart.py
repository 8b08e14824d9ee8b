"""The review sheet as one image (core/view/sheet_chart.py).

Proves:
- the width estimate is generous: no line is wider than its block by it, and it is at least DejaVu Sans's
  real advance for every printable ASCII character (the widest common sans-serif face, measured with PIL
  when the font is installed);
- wrapping keeps every line within the width, breaks long words after a hyphen where it can, and loses no
  character;
- the chart is a valid Vega-Lite spec (schema-checked) in light and dark, with one block per candidate side
  by side, every memory bar on the same scale, and every text block's lines inside its width and apart in
  height, for 1 to 4 candidates and a 60-character name;
- it renders to PNG, SVG and PDF.
"""

from pathlib import Path

import altair as alt
import pytest

from core.model.presets import load_preset, preset_names
from core.view import sheet_chart as sc
from core.view.export import to_pdf, to_png, to_svg
from core.view.review import DEFAULT_CANDIDATES, Candidate, review

LONG_NAME = max(preset_names(), key=len)
LABEL_60 = "Option W: DeepSeek-V3 MLA on eight H200 with fp8 cache & TP8"  # 60 characters
FOUR = (
    *DEFAULT_CANDIDATES,
    Candidate("llama-3.1-70b", "H100 SXM", 8, 0, kv_dtype="fp8", label=LABEL_60),
    Candidate(LONG_NAME, "MI300X", 4, 0),
)
DEJAVU = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")


def sheet(candidates):
    specs = {c.model: load_preset(c.model) for c in candidates}
    return review(tuple(candidates), specs, 131_072, 90, "2025-06-01", "9.9.9")


@pytest.mark.skipif(not DEJAVU.exists(), reason="DejaVu Sans is not installed")
def test_the_estimate_covers_dejavu_sans():
    from PIL import ImageFont

    font = ImageFont.truetype(str(DEJAVU), 100)
    bold = ImageFont.truetype(str(DEJAVU.with_name("DejaVuSans-Bold.ttf")), 100)
    for ch in [chr(code) for code in range(32, 127)] + list("×·≥≤⌊⌋Σ"):
        assert sc.text_width(ch, 100) >= font.getlength(ch), ch
        assert sc.text_width(ch, 100, bold=True) >= bold.getlength(ch), ch


@pytest.mark.parametrize("text", [LABEL_60, LONG_NAME, "W" * 60, "llama-3.3-nemotron-super-49b on 4 x MI300X"])
@pytest.mark.parametrize("width", [120, 200, 320])
def test_wrap_stays_within_the_width_and_keeps_every_character(text, width):
    out = sc.wrap(text, sc.NAME, width, bold=True)
    assert all(sc.text_width(line, sc.NAME, True) <= width for line in out)
    assert "".join(out).replace(" ", "") == text.replace(" ", "")


def test_a_long_model_name_breaks_after_a_hyphen():
    out = sc.wrap("llama-3.3-nemotron-super-49b", sc.NAME, 240, bold=True)
    assert len(out) > 1 and all(line.endswith("-") for line in out[:-1])


def text_blocks(spec: dict) -> list[dict]:
    """Every text block (a layer chart of text marks) in a sheet's spec, with its width and height."""
    out = []

    def walk(node):
        if isinstance(node, dict):
            if "layer" in node and any(lay.get("mark", {}).get("type") == "text" for lay in node["layer"]):
                out.append(node)
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(spec)
    return out


@pytest.mark.parametrize("theme", ["light", "dark"])
@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_the_layout_keeps_text_apart(theme, n):
    s = sheet(FOUR[:n])
    chart = sc.sheet_chart(s, theme)
    spec = chart.to_dict(validate=True)
    assert spec["background"] == sc.THEMES[theme].background
    (row,) = [part["hconcat"] for part in spec["vconcat"] if "hconcat" in part]
    assert len(row) == n  # one block per candidate, side by side
    domains = {
        str(part["encoding"]["x"]["scale"]["domain"]) for block in row for part in block["vconcat"] if "mark" in part
    }
    assert len(domains) == 1 and f"{s.scale_gib}" in domains.pop()  # one memory scale
    blocks = text_blocks(spec)
    assert len(blocks) == 2 + 5 * n  # header, footer; per candidate: name, keys and three sections
    widths = {b["width"] for b in blocks}
    w = min(widths)  # every candidate's blocks share one width; header and footer span the row
    assert widths == {w, n * w + (n - 1) * sc.GAP} and w <= sc.TARGET[n]
    for col in s.columns:
        for part in sc._blocks(col, sc.TARGET[n], True):
            assert all(line.width() <= sc.TARGET[n] for line in part)


def test_lines_are_placed_one_under_another_inside_the_width():
    block = [*sc.lines(LABEL_60, 200, sc.NAME, bold=True), *sc.key_lines([("#000", "weights 79.2 GiB")] * 4, 200)]
    chart = sc.text_chart(block, 200, sc.THEMES["light"]).to_dict()
    rows = next(iter(chart["datasets"].values()))
    texts = [r for r in rows if "text" in r]
    for r in texts:  # inside the width
        size = r["size"]
        assert r["x"] + sc.text_width(r["text"], size, r["bold"]) <= 200 + 1e-9
    by_y = sorted({r["y"] for r in texts})
    assert all(b - a >= sc.BODY * sc.LINE - 1e-9 for a, b in zip(by_y, by_y[1:], strict=False))
    for y in by_y:  # keys on one row do not overlap
        row = sorted((r for r in texts if r["y"] == y), key=lambda r: r["x"])
        for a, b in zip(row, row[1:], strict=False):
            assert a["x"] + sc.text_width(a["text"], a["size"]) < b["x"] - sc.SWATCH


def test_it_renders_to_png_svg_and_pdf():
    chart = sc.sheet_chart(sheet(DEFAULT_CANDIDATES), "dark", formulas=False)
    assert to_png(chart, scale=1).startswith(b"\x89PNG")
    assert "<svg" in to_svg(chart)
    assert to_pdf(chart).startswith(b"%PDF")


def test_no_candidate_still_draws_a_sheet():
    chart = sc.sheet_chart(sheet([Candidate("llama-3.1-70b", "H200", 8, 3)]))
    assert isinstance(chart, alt.VConcatChart)
    chart.to_dict(validate=True)


def test_the_long_names_are_long():
    assert len(LABEL_60) == 60 and len(LONG_NAME) >= 28
