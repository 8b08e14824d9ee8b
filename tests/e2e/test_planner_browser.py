"""In real Chromium: a shared link opens the Memory planner with planner v2's numbers (8 x H200 as TP8:
llama-3.1-70b 20.35x, deepseek-v3 4.55x, while pooled memory would say 37.15x); turning on data-parallel
attention gives deepseek-v3 22.73x and writes dpa=1 into the URL; the sidebar lists the pages app.py
registers, not the files in app_pages/; typing a batch updates the URL and the table; the link to the Review
sheet carries the view, and a chart downloads as a real PNG; and a fresh server whose very first request is
/planner runs the page through app.py's router (st.navigation, the only router: the page folder is not named pages/)."""

import contextlib
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHART = "[data-testid='stVegaLiteChart']"
TABLE = "[data-testid='stDataFrame']"
NAV = "[data-testid='stSidebarNav']"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SHARED = "/planner?models=llama-3.1-70b,deepseek-v3&context=131072&gpus=8"


def results(page):
    """The results table (the page also shows a table of cache dtypes, in a folded expander)."""
    return page.locator(TABLE).filter(has_text="pooled would say").first


def wait_ready(page):
    page.wait_for_selector(f"{CHART} canvas, {CHART} svg", timeout=60_000)
    results(page).wait_for(timeout=60_000)
    page.wait_for_timeout(500)


def no_exception(page):
    assert page.locator("[data-testid='stException']").count() == 0


def table_text(page) -> str:
    return results(page).text_content()


def nav_is_app_pys(page):
    nav = page.locator(NAV)
    nav.wait_for(timeout=60_000)
    links = [a.split("\n")[-1].strip() for a in page.locator(f"{NAV} a").all_inner_texts()]  # after the icon
    assert "Overview" in links and "Memory planner" in links, links
    assert {"Review sheet", "Workshop", "Glossary"} <= set(links), links  # every page listed, none folded away
    assert not page.locator(NAV).get_by_text(re.compile(r"View \d+ more")).count()
    # legacy mode lists every file as a page, named by its stem: app, common, overview, planner, ...
    assert not any("common" in a.lower() for a in links), links
    assert not {"app", "overview", "planner"} & set(links), links


def test_shared_link_shows_planner_numbers_and_only_registered_pages(page, app_url):
    page.goto(app_url + SHARED)
    wait_ready(page)
    no_exception(page)
    assert page.locator("h1").first.inner_text() == "Memory planner"
    text = table_text(page)
    assert "20.35x" in text and "4.55x" in text and "37.15x" in text, text  # 37.15x: "pooled would say"
    assert "pooled would say" in text
    assert "Pooled memory would suggest 37.15 requests, not 4.55" in page.locator("body").inner_text()
    assert page.locator(CHART).count() == 3
    nav_is_app_pys(page)


def table_shows(page, text: str) -> None:
    page.wait_for_function(
        f"() => [...document.querySelectorAll(\"{TABLE}\")].some(t => t.textContent.includes('pooled would say') "
        f"&& t.textContent.includes('{text}'))",
        timeout=30_000,
    )


def test_data_parallel_attention_toggle_gives_deepseek_v3_22_73x(page, app_url):
    page.goto(app_url + SHARED)
    wait_ready(page)
    assert "22.73x" not in table_text(page)
    toggle = page.locator(
        "[data-testid='stCheckbox']", has=page.get_by_role("switch", name=re.compile("attention", re.I))
    )
    assert not toggle.get_by_role("switch").is_checked()
    toggle.get_by_test_id("stWidgetLabel").click()  # the label a user clicks (the input itself is hidden)
    page.wait_for_function("() => window.location.search.includes('dpa=1')", timeout=30_000)
    table_shows(page, "22.73x")
    text = table_text(page)
    assert "22.73x" in text and "4.55x" not in text, text
    # the whole of llama-3.1-70b on every GPU does not fit, and the page says so
    page.get_by_text("do not fit", exact=False).first.wait_for(timeout=30_000)
    no_exception(page)
    page.goto(app_url + SHARED + "&dpa=1")  # the link alone restores it
    wait_ready(page)
    assert "22.73x" in table_text(page)
    no_exception(page)


def test_typing_a_batch_updates_url_and_table(page, app_url):
    page.goto(app_url + SHARED)
    wait_ready(page)
    # llama-3.1-70b's max context: (166,716 blocks - the null block) // batch x 16 tokens, never above its
    # max_model_len (131,072, from its config): one request is capped by that
    assert "131,072" in table_text(page)
    box = page.get_by_role("spinbutton", name="Concurrent requests")
    box.fill("32")
    box.press("Enter")
    page.wait_for_function("() => window.location.search.includes('batch=32')", timeout=30_000)
    table_shows(page, "83,344")
    assert "batch=32" in page.url
    text = table_text(page)
    assert "20.35x" in text and "4.55x" in text  # concurrency does not depend on the batch
    box.press("ArrowUp")  # the keyboard steps the number too
    page.wait_for_function("() => window.location.search.includes('batch=33')", timeout=30_000)
    table_shows(page, "80,816")
    no_exception(page)


def download(page, button) -> bytes:
    with page.expect_download(timeout=60_000) as d:
        button.click()
    return Path(d.value.path()).read_bytes()


def test_review_sheet_link_and_chart_png_downloads(page, app_url):
    page.goto(app_url + SHARED)
    wait_ready(page)
    link = page.get_by_role("link", name="Compare these models side by side on the Review sheet")
    assert "review?c=" in link.get_attribute("href")
    chart = download(page, page.get_by_role("button", name="PNG", exact=True).first)
    assert chart[:8] == PNG_MAGIC and len(chart) > 20_000
    no_exception(page)


# ----------------------------------------------------------------------------- a fresh server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def fresh_server(root: Path = ROOT):
    """A new streamlit process (the same start as tests/e2e/conftest.py) on its own free port; only the
    health endpoint is touched before the test's first page request."""
    port = _free_port()
    cmd = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port), "--server.headless", "true"]
    proc = subprocess.Popen(cmd, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://localhost:{port}"
    try:
        for _ in range(240):
            try:
                urllib.request.urlopen(url + "/_stcore/health", timeout=1)
                break
            except OSError:
                time.sleep(0.25)
        else:
            pytest.fail("the fresh app did not start")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_fresh_server_first_request_to_planner_runs_through_the_router(page):
    with fresh_server() as url:
        page.goto(url + "/planner")
        wait_ready(page)
        no_exception(page)
        assert page.locator("h1").first.inner_text() == "Memory planner"
        nav_is_app_pys(page)
        assert "KV Cache Lab" in page.title()  # app.py's page config applied
        assert "20.35x" in table_text(page)
