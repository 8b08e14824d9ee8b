"""In real Chromium: the Real model page opens from a link, draws its Pareto picture from the shipped sweep,
follows the quality-measure control into the URL, and its downloads work."""

CHART = "[data-testid='stVegaLiteChart']"


def ready(page):
    page.wait_for_function(
        f'() => document.querySelectorAll("{CHART} canvas, {CHART} svg").length >= 1', timeout=120_000
    )
    assert page.locator("[data-testid='stException']").count() == 0


def test_real_model_page_from_a_link(page, app_url):
    page.goto(app_url + "/real_model?metric=passkey+retrieval&context=2048")
    ready(page)
    content = page.content()
    assert "SmolLM2-135M-Instruct" in content and "passkey in 2,048 tokens" in content


def test_real_model_control_moves_the_link_and_downloads(page, app_url):
    page.goto(app_url + "/real_model")
    ready(page)
    page.locator("[data-testid='stButtonGroup'] button", has_text="KL divergence").first.click()
    page.wait_for_url("**metric=KL+divergence**", timeout=60_000)
    ready(page)
    with page.expect_download() as dl:
        page.get_by_role("button", name="CSV").first.click()
    assert dl.value.suggested_filename == "real-model-pareto.csv"
