"""In real Chromium: the Review sheet's exported SVG, for four candidates (the longest preset name and a
60-character name among them), in light and dark, with and without formulas, has no two text elements whose
boxes intersect, and none that leaves the image, measured with getBBox in the browser's own sans-serif font;
and the page at /review opens from a link with its candidates, warns about a bad one and offers the PNG, SVG
and PDF downloads."""

import pytest

from core.model.presets import load_preset, preset_names
from core.view.export import to_svg
from core.view.review import DEFAULT_CANDIDATES, Candidate, review
from core.view.sheet_chart import sheet_chart

LABEL_60 = "Option W: DeepSeek-V3 MLA on eight H200 with fp8 cache & TP8"  # 60 characters
FOUR = (
    *DEFAULT_CANDIDATES,
    Candidate("llama-3.1-70b", "H100 SXM", 8, 0, kv_dtype="fp8", label=LABEL_60),
    Candidate(max(preset_names(), key=len), "MI300X", 4, 0),
)

BOXES = """() => [...document.querySelectorAll('svg text')].filter(t => t.textContent.trim()).map(t => {
    const r = t.getBoundingClientRect();
    return {text: t.textContent, x: r.left, y: r.top, w: r.width, h: r.height};
})"""


@pytest.mark.parametrize("formulas", [True, False])
@pytest.mark.parametrize("theme", ["light", "dark"])
def test_no_two_texts_of_the_exported_svg_overlap(page, theme, formulas):
    s = review(FOUR, {c.model: load_preset(c.model) for c in FOUR}, 131_072, 90, "2025-06-01", "9.9.9")
    svg = to_svg(sheet_chart(s, theme, formulas))
    page.set_content(f"<html><body style='margin:0'>{svg}</body></html>")
    boxes = page.evaluate(BOXES)
    size = page.evaluate(
        "() => { const r = document.querySelector('svg').getBoundingClientRect(); return [r.width, r.height]; }"
    )
    assert len(boxes) > 60 and any(b["text"] == LABEL_60[:8] or LABEL_60.startswith(b["text"]) for b in boxes)
    for b in boxes:
        assert b["x"] >= 0 and b["y"] >= 0 and b["x"] + b["w"] <= size[0] and b["y"] + b["h"] <= size[1], b
    clashes = [
        (a["text"], b["text"])
        for i, a in enumerate(boxes)
        for b in boxes[i + 1 :]
        if a["x"] < b["x"] + b["w"] - 0.5
        and b["x"] < a["x"] + a["w"] - 0.5
        and a["y"] < b["y"] + b["h"] - 0.5
        and b["y"] < a["y"] + a["h"] - 0.5
    ]
    assert not clashes, clashes[:5]


def test_the_page_opens_from_a_link_and_offers_the_downloads(page, app_url):
    page.goto(app_url + "/review?c=deepseek-v3~H200~8~8~latent~auto~native,nope~H200~8~8~latent~auto~native&theme=dark")
    page.get_by_role("heading", name="Review sheet").wait_for(timeout=60_000)
    page.get_by_text("candidate 2 left out").wait_for(timeout=60_000)
    for kind in ("PNG", "SVG", "PDF"):
        page.get_by_role("button", name=kind, exact=True).wait_for(timeout=60_000)
    assert not page.locator("[data-testid='stException']").count()
