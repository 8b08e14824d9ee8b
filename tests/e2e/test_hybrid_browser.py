"""In real Chromium: /hybrid opens the Hybrid models page with its three charts drawn (canvas or svg inside each
stVegaLiteChart) and no exception element; choosing another model in the select box writes model=... into the
URL and names it in the breakdown chart, and moving the tokens slider with the keyboard writes T=... into the
URL; the first chart's PNG, SVG and CSV buttons download a real PNG, an SVG document and the run's table."""

from pathlib import Path

CHART = "[data-testid='stVegaLiteChart']"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def wait_ready(page):
    page.wait_for_function(
        f'() => [...document.querySelectorAll("{CHART}")].length === 3 && '
        f"[...document.querySelectorAll(\"{CHART}\")].every(c => c.querySelector('canvas, svg'))",
        timeout=120_000,
    )
    page.wait_for_selector("[data-testid='stMetricValue']", timeout=60_000)
    page.wait_for_timeout(500)


def no_exception(page):
    assert page.locator("[data-testid='stException']").count() == 0


def wait_url(page, fragment: str):
    page.wait_for_function(f"() => window.location.search.includes({fragment!r})", timeout=60_000)


def download(page, button) -> tuple[str, bytes]:
    with page.expect_download(timeout=60_000) as d:
        button.click()
    return d.value.suggested_filename, Path(d.value.path()).read_bytes()


def test_page_loads_with_three_charts(page, app_url):
    page.goto(app_url + "/hybrid")
    wait_ready(page)
    no_exception(page)
    assert page.locator("h1").first.inner_text().startswith("Hybrid models")
    assert page.locator(CHART).count() == 3
    for i in range(3):
        box = page.locator(CHART).nth(i).locator("canvas, svg").first.bounding_box()
        assert box and box["width"] > 100 and box["height"] > 100, (i, box)
    assert "KV cache at 128K (bf16)" in page.content()
    assert "?" not in page.url  # the defaults make a bare link


def test_model_select_and_tokens_slider_change_the_url(page, app_url):
    page.goto(app_url + "/hybrid?T=16")
    wait_ready(page)
    select = page.locator("[data-testid='stSelectbox']").filter(has_text="Model")
    select.get_by_role("combobox").focus()
    select.get_by_role("combobox").press("ArrowDown")  # opens the list; the first click on "Open" only focuses
    page.get_by_role("option", name="nemotron-h-56b", exact=True).click()
    wait_url(page, "model=nemotron-h-56b")
    page.wait_for_function("() => document.body.textContent.includes('nemotron-h-56b at 131,072 tokens')")
    no_exception(page)

    slider = page.locator("input[type='range'][aria-label='Tokens']")  # its accessible name is "Tokens Tokens"
    assert slider.get_attribute("aria-valuetext") == "16"
    slider.focus()
    slider.press("ArrowRight")  # 16 -> 32
    wait_url(page, "T=32")
    wait_ready(page)
    assert "model=nemotron-h-56b" in page.url
    page.wait_for_function(
        "() => document.querySelector(\"[data-testid='stDataFrame']\").textContent.includes('nbytes at 32 tokens')",
        timeout=30_000,
    )
    no_exception(page)


def test_first_chart_downloads_png_svg_and_csv(page, app_url):
    page.goto(app_url + "/hybrid?T=16")
    wait_ready(page)
    name, png = download(page, page.get_by_role("button", name="PNG", exact=True).first)
    assert name == "hybrid-bytes-held.png"
    assert png[:8] == PNG_MAGIC and len(png) > 20_000
    name, svg = download(page, page.get_by_role("button", name="SVG", exact=True).first)
    assert name == "hybrid-bytes-held.svg"
    text = svg.decode()
    assert text.lstrip().startswith(("<svg", "<?xml")) and "</svg>" in text
    assert "What each layer holds" in text
    name, csv = download(page, page.get_by_role("button", name="CSV", exact=True).first)
    assert name == "hybrid-bytes-held.csv"
    lines = csv.decode().splitlines()
    assert lines[0].startswith("layer,holds,context,measured_bytes,accounted_bytes")
    assert len(lines) == 1 + 3 * 5  # three layers at 1, 2, 4, 8, 16 tokens
    no_exception(page)
