"""In real Chromium: links and configs from strangers stay inert.

A local "beacon" HTTP server counts every request it gets. Crafted links put Markdown images, links and
KaTeX formulas that point at the beacon into unknown query keys, into values and into a config carried by a
planner link (its model_type, a bad field value), on every page. Proves: the beacon gets no request (no
remote image is fetched), the page shows no link to it and no formula made from the injected text, shows no
exception element, and a config whose value is a 1,000,000-character string renders (the tab does not
freeze) with the value cut short. Also: /overview (the default page's old address) opens the Overview,
keeping the link's parameters, with no "Page not found" dialog.
"""

import http.server
import json
import socket
import threading
import zlib
from base64 import urlsafe_b64encode
from urllib.parse import quote

import pytest

CHART = "[data-testid='stVegaLiteChart']"
PAGES = ["", "planner", "inside_mla", "latent_rank", "compute", "sparse", "hybrid", "quantized", "needle"]


@pytest.fixture(scope="module")
def beacon():
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            hits.append(self.path)
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{port}", hits
    server.shutdown()


def token(cfg: dict) -> str:
    return urlsafe_b64encode(zlib.compress(json.dumps(cfg).encode())).decode().rstrip("=")


def injections(host: str) -> dict[str, str]:
    return {
        f"![b]({host}/img-key)": "1",
        f"[Log in again]({host}/link-key)": "1",
        "$\\Huge INJECTEDFORMULA$": "1",
        "context": f"![c]({host}/img-value)",
    }


def visit(page, url: str) -> None:
    page.goto(url)
    page.wait_for_selector(f"{CHART} canvas, {CHART} svg, [data-testid='stAlert']", timeout=120_000)
    page.wait_for_timeout(2500)


def assert_inert(page, host: str) -> None:
    assert page.locator("[data-testid='stException']").count() == 0
    assert page.locator(f"a[href^='{host}']").count() == 0
    assert page.locator(f"img[src^='{host}']").count() == 0
    for el in page.locator(".katex").all():
        assert "INJECTED" not in (el.text_content() or "")


@pytest.mark.parametrize("path", PAGES)
def test_injected_markdown_in_links_stays_text(page, app_url, beacon, path):
    host, hits = beacon
    query = "&".join(f"{quote(k)}={quote(v)}" for k, v in injections(host).items())
    visit(page, f"{app_url}/{path}?{query}")
    assert_inert(page, host)
    alerts = " ".join(page.locator("[data-testid='stAlert']").all_text_contents())
    assert "Link:" in alerts and "Log in again" in alerts  # shown, as text
    assert hits == []


def test_a_config_in_a_planner_link_stays_text(page, app_url, beacon):
    host, hits = beacon
    with open("assets/configs/llama-3.1-8b.json") as f:
        cfg = json.load(f)
    cfg["model_type"] = f"![x]({host}/img-model-type) [Log in again]({host}/link-model-type) $\\Huge INJECTEDX$"
    visit(page, f"{app_url}/planner?models=llama-3.1-70b,@config&cfg={token(cfg)}")
    assert_inert(page, host)
    assert "Log in again" in " ".join(page.locator("[data-testid='stAlert']").all_text_contents())
    bad = dict(cfg, model_type="llama", hidden_size=f"[Log in again]({host}/link-value) ![y]({host}/img-value)")
    visit(page, f"{app_url}/planner?models=llama-3.1-70b,@config&cfg={token(bad)}")
    assert_inert(page, host)
    assert hits == []


def test_a_million_character_value_renders_cut_short(page, app_url):
    with open("assets/configs/llama-3.1-8b.json") as f:
        cfg = json.load(f)
    cfg["hidden_size"] = "9" * 1_000_000  # compresses to a link of a few thousand characters
    visit(page, f"{app_url}/planner?models=llama-3.1-70b,@config&cfg={token(cfg)}")  # renders, tab not frozen
    text = " ".join(page.locator("[data-testid='stAlert']").all_text_contents())
    assert "hidden_size" in text and "more characters" in text
    assert "9" * 1000 not in text
    assert page.locator("[data-testid='stException']").count() == 0


def test_the_overview_address_opens_the_overview_without_a_dialog(page, app_url):
    visit(page, f"{app_url}/overview?context=4096&models=llama-3.1-8b,deepseek-v3")
    assert page.locator("[role='dialog']").count() == 0
    assert "Why the KV cache" in page.locator("h1").first.inner_text()
    assert "context=4096" in page.url and "/overview" not in page.url
