"""Screenshot pages of the running app (or start one) in headless Chromium.

python scripts/screenshot.py --out assets/screenshot.png [--path /overview?context=1048576] [--dark]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent))
from browser import launch  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def wait_for(url: str, seconds: float = 60) -> bool:
    end = time.time() + seconds
    while time.time() < end:
        try:
            urllib.request.urlopen(url + "/_stcore/health", timeout=2)
            return True
        except OSError:
            time.sleep(0.3)
    return False


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--out", default="assets/screenshot.png")
    p.add_argument("--path", default="/")
    p.add_argument("--port", type=int, default=8599)
    p.add_argument("--dark", action="store_true")
    p.add_argument("--height", type=int, default=1000, help="viewport height in pixels")
    p.add_argument("--width", type=int, default=1400, help="viewport width in pixels")
    p.add_argument("--no-chart", action="store_true", help="the page has no chart to wait for")
    p.add_argument("--full", action="store_true", help="the whole page, not only the viewport")
    a = p.parse_args()
    base = f"http://localhost:{a.port}"
    server = None
    if not wait_for(base, 0.5):
        cmd = [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            "app.py",
            "--server.port",
            str(a.port),
            "--server.headless",
            "true",
        ]
        if a.dark:
            cmd += ["--theme.base", "dark"]
        server = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not wait_for(base):
            server.kill()
            print("the app did not start", file=sys.stderr)
            return 1
    try:
        with sync_playwright() as pw:
            browser = launch(pw)
            page = browser.new_page(viewport={"width": a.width, "height": a.height}, device_scale_factor=1)
            page.goto(base + a.path)
            chart = "[data-testid='stVegaLiteChart'] canvas, [data-testid='stVegaLiteChart'] svg"
            ready = "h1" if a.no_chart else chart
            page.wait_for_selector(ready, timeout=60000)
            page.wait_for_timeout(1500)
            page.screenshot(path=a.out, full_page=a.full)
            browser.close()
    finally:
        if server:
            server.terminate()
    print(a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
