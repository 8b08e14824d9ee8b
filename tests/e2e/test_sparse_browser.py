"""In real Chromium: a shared link /sparse?layer=HCA&T=32 opens the Sparse & compressed page with its three
charts drawn (canvas or svg inside each stVegaLiteChart), the HCA layer type selected and no exception
element; clicking "production" turns the KV metric from 11.5% into 10.5% and writes prec=production into
the URL."""

import re

CHART = "[data-testid='stVegaLiteChart']"
METRIC = "[data-testid='stMetricValue']"
LINK = "/sparse?layer=HCA&T=32"


def wait_ready(page):
    page.wait_for_selector(f"{CHART} canvas, {CHART} svg", timeout=60_000)
    page.wait_for_selector(METRIC, timeout=60_000)
    page.wait_for_function(
        f'() => [...document.querySelectorAll("{CHART}")].length === 3 && '
        f"[...document.querySelectorAll(\"{CHART}\")].every(c => c.querySelector('canvas, svg'))",
        timeout=60_000,
    )
    page.wait_for_timeout(500)


def no_exception(page):
    assert page.locator("[data-testid='stException']").count() == 0


def metric_values(page) -> list[str]:
    return [t.strip() for t in page.locator(METRIC).all_inner_texts()]


def radio_option(page, text: str):
    return page.locator("[data-testid='stRadio'] label").filter(has_text=re.compile(f"^{re.escape(text)}$"))


def test_hca_link_renders_heatmaps_and_production_shows_10_5_percent(page, app_url):
    page.goto(app_url + LINK)
    wait_ready(page)
    no_exception(page)
    assert page.locator("h1").first.inner_text() == "Sparse & compressed attention"
    assert page.locator(CHART).count() == 3
    for i in (0, 2):  # the DSA selection and V4 visibility heatmaps have drawn something
        box = page.locator(CHART).nth(i).locator("canvas, svg").first.bounding_box()
        assert box and box["width"] > 100 and box["height"] > 100, (i, box)
    assert page.get_by_role("radio", name="HCA (toy ratio 16)").is_checked()
    assert not page.get_by_role("radio", name="CSA (ratio 4 + indexer)").is_checked()
    assert "HCA layer" in page.content()  # the visibility chart's title
    assert metric_values(page) == ["11.5%", "26.2%"]

    radio_option(page, "production").click()
    page.wait_for_function("() => window.location.search.includes('prec=production')", timeout=30_000)
    page.wait_for_function(
        f"() => [...document.querySelectorAll(\"{METRIC}\")].some(m => m.textContent.includes('10.5%'))",
        timeout=30_000,
    )
    assert metric_values(page) == ["10.5%", "26.2%"]
    assert page.get_by_role("radio", name="production").is_checked()
    assert "layer=HCA" in page.url and "T=32" in page.url
    no_exception(page)
