"""Find and launch a headless Chromium for Playwright (shared by the screenshot script and e2e tests).

Order: CHROMIUM_PATH, then chromium / chromium-browser / google-chrome on PATH, then Playwright's own
downloaded browser (`playwright install chromium`, for users with internet access).
"""

from __future__ import annotations

import os
import shutil

ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str | None:
    for c in (os.environ.get("CHROMIUM_PATH"), "chromium", "chromium-browser", "google-chrome"):
        if c and (p := shutil.which(c)):
            return p
    return None


def launch(playwright):
    """A Chromium browser (Playwright gives each launch a fresh profile); executable_path None falls
    back to Playwright's bundled download."""
    return playwright.chromium.launch(
        executable_path=chromium_path(),
        args=ARGS,
    )
