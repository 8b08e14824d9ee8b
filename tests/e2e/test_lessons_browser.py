"""In real Chromium, the two lesson pages: /inside_mla draws the four data-flow diagrams (an svg inside each
graphviz element) with the live shapes and shows both tables with "yes" in every match cell; turning the
RoPE switch on shows the error with a percentage and puts coupled=1 in the URL; /latent_rank?rank=32
opens at rank 32 with the 32 pill selected; typing an exact rank (40) and Enter changes the URL's rank, the
metrics and the charts, and clicking the 384 pill reaches the exact full width. No exception element
appears on either page."""

import re

CHART = "[data-testid='stVegaLiteChart']"
TABLE = "[data-testid='stDataFrame']"
GRAPH = "[data-testid='stGraphVizChart']"
EXCEPTION = "[data-testid='stException']"


def no_exception(page):
    assert page.locator(EXCEPTION).count() == 0


def wait_charts(page, n: int):
    page.wait_for_function(
        f'() => document.querySelectorAll("{CHART} canvas, {CHART} svg").length >= {n}', timeout=60_000
    )
    page.wait_for_timeout(500)


def test_inside_mla_diagram_tables_and_rope_switch(page, app_url):
    page.goto(app_url + "/inside_mla")
    page.wait_for_selector(f"{GRAPH} svg", timeout=60_000)
    page.wait_for_selector(TABLE, timeout=60_000)
    wait_charts(page, 2)
    no_exception(page)
    assert page.locator("h1").first.inner_text() == "Inside MLA"
    # the first tab's diagram (MHA) is drawn: graphviz nodes with the live shapes and the cached K and V
    svg = page.locator(f"{GRAPH} svg").first
    text = svg.text_content()
    assert "(1 x 8 x 64 x 32)" in text and "cached" in text, text
    assert svg.locator("g.node").count() >= 6
    measured = [t for t in page.locator(TABLE).all_text_contents() if "yes" in t]  # not the per-layout table
    assert len(measured) == 2
    for t in measured:
        assert t.count("yes") == 4 and "NO" not in t, t  # measured == formula for all four designs
        assert "MLA absorbed" in t
    # the other designs' tabs draw their own diagrams
    page.get_by_role("tab", name="MLA absorbed").click()
    page.wait_for_function(
        f"() => [...document.querySelectorAll(\"{GRAPH} svg\")].some(s => s.textContent.includes('c_KV'))",
        timeout=30_000,
    )
    assert page.locator(f"{GRAPH} svg", has_text="(1 x 64 x 8 x 64)").count() >= 1
    # RoPE on the key rebuilt from the latent: absorbing W_UK gives the wrong answer
    assert page.locator("[data-testid='stAlertContentError']").count() == 0
    switch = page.get_by_role("switch", name="Apply RoPE to the key rebuilt from the latent instead")
    switch.click(force=True)
    page.wait_for_function("() => window.location.search.includes('coupled=1')", timeout=30_000)
    error = page.locator("[data-testid='stAlertContentError']")
    error.wait_for(timeout=30_000)
    msg = error.inner_text()
    assert "wrong answer" in msg and re.search(r"relative output error \d+\.\d\d%", msg), msg
    no_exception(page)
    switch.click(force=True)  # and back
    page.wait_for_function("() => !window.location.search.includes('coupled')", timeout=30_000)
    page.locator("[data-testid='stAlertContentSuccess']").wait_for(timeout=30_000)
    assert error.count() == 0
    no_exception(page)


def metric(page, label: str) -> str:
    box = page.locator("[data-testid='stMetric']", has_text=label)
    return box.locator("[data-testid='stMetricValue']").inner_text()


def test_latent_rank_exact_input_and_pills_move_url_and_charts(page, app_url):
    page.goto(app_url + "/latent_rank?rank=32")
    page.wait_for_selector("[data-testid='stMetric']", timeout=60_000)
    wait_charts(page, 5)
    no_exception(page)
    assert page.locator("h1").first.inner_text() == "Latent rank"
    assert page.locator(CHART).count() == 5  # the real model first; spectra, energy, errors, tiny models
    assert metric(page, "cache per token per layer") == "64 B"  # 32 numbers x 2 bytes
    crossing = metric(page, "output error < 10% from d_c")
    assert crossing.isdigit() and 1 <= int(crossing) <= 384
    pills = page.locator("[data-testid='stButtonGroup']").first
    assert pills.locator("button", has_text=f"{crossing} (10% rank)").count() == 1  # the 10% rank is a pill
    err_before = metric(page, "layer output error")
    energy = page.locator(CHART).nth(2)
    before = energy.screenshot()
    exact = page.get_by_role("spinbutton", name="Exact d_c")
    assert exact.input_value() == "32"
    exact.fill("40")
    exact.press("Enter")
    page.wait_for_function("() => window.location.search.includes('rank=40')", timeout=30_000)
    page.wait_for_function(
        "() => [...document.querySelectorAll(\"[data-testid='stMetricValue']\")].some(m => m.innerText === '80 B')",
        timeout=30_000,
    )
    wait_charts(page, 5)
    page.wait_for_timeout(1000)
    assert "rank=40" in page.url and exact.input_value() == "40"
    assert metric(page, "layer output error") != err_before
    assert energy.screenshot() != before  # the d_c rule moved
    pills.locator("button").filter(has_text=re.compile(r"^\s*384\s*$")).click()  # the full width, exact
    page.wait_for_function("() => window.location.search.includes('rank=384')", timeout=30_000)
    page.wait_for_function(
        "() => [...document.querySelectorAll(\"[data-testid='stMetricValue']\")].some(m => m.innerText === '768 B')",
        timeout=30_000,
    )
    assert metric(page, "layer output error") == "0.0%"
    assert exact.input_value() == "384"
    no_exception(page)
