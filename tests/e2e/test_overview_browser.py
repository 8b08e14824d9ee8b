"""In real Chromium: the Overview page loads, the context slider moves the chart and the table, a
shared link restores the view, the PNG download is a real image, and no exception element appears."""

CHART = "[data-testid='stVegaLiteChart']"


def wait_ready(page):
    page.wait_for_selector(f"{CHART} canvas, {CHART} svg", timeout=60_000)
    page.wait_for_selector("[data-testid='stDataFrame']", timeout=60_000)
    page.wait_for_timeout(500)


def no_exception(page):
    assert page.locator("[data-testid='stException']").count() == 0


def test_slider_changes_chart_and_table(page, app_url):
    page.goto(app_url)
    wait_ready(page)
    no_exception(page)
    table = page.locator("[data-testid='stDataFrame']")
    assert "128K" in table.inner_text() or "128K" in page.content()
    before = page.locator(CHART).screenshot()
    slider = page.get_by_role("slider")
    slider.focus()
    for _ in range(4):  # 128K -> 8K
        slider.press("ArrowLeft")
    page.wait_for_function("() => window.location.search.includes('context=8192')", timeout=30_000)
    wait_ready(page)
    page.wait_for_timeout(1000)
    after = page.locator(CHART).screenshot()
    assert before != after
    assert "KV cache at 8K" in page.content()
    no_exception(page)


def test_shared_link_and_png_download(page, app_url):
    page.goto(app_url + "/?models=llama-3.1-8b,deepseek-v3&context=1024&gpu=H100+SXM")
    wait_ready(page)
    no_exception(page)
    html = page.content()
    assert "KV cache at 1K" in html and "% of H100 SXM" in html
    with page.expect_download(timeout=60_000) as d:
        page.get_by_role("button", name="PNG", exact=True).click()
    data = open(d.value.path(), "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
