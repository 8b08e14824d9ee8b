"""In real Chromium: the Compute & roofline, Quantized caches and Needle pages load from links, draw
their charts, follow a control into the URL, and show no exception element."""

CHART = "[data-testid='stVegaLiteChart']"


def ready(page, n: int):
    page.wait_for_function(
        f'() => document.querySelectorAll("{CHART} canvas, {CHART} svg").length >= {n}', timeout=120_000
    )
    assert page.locator("[data-testid='stException']").count() == 0


def test_compute_page(page, app_url):
    page.goto(app_url + "/compute?batch=64")
    ready(page, 2)
    assert "Roofline on H200" in page.content()


def test_quantized_page(page, app_url):
    page.goto(app_url + "/quantized?layer=1")
    ready(page, 4)
    assert "Pareto" in page.content()


def test_needle_page(page, app_url):
    page.goto(app_url + "/needle?model=tiny-gqa&method=quantization")
    ready(page, 2)
    page.get_by_text("Model", exact=True).first.is_visible()
    assert "tiny-gqa" in page.content() and "quantization" in page.content()
