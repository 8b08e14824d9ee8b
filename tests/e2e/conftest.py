"""Start the app once per session on a free port and give tests a Chromium page."""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
from browser import launch  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def workshop_db(tmp_path_factory) -> str:
    """The app's workshop database for the browser tests: a fresh SQLite file, never the repository's data/."""
    return f"sqlite:///{tmp_path_factory.mktemp('workshop') / 'workshop.db'}"


@pytest.fixture(scope="session")
def app_url(workshop_db):
    port = _free_port()
    cmd = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        "app.py",
        "--server.port",
        str(port),
        "--server.headless",
        "true",
        "--server.fileWatcherType",
        "none",  # a file edited while the suite runs must not reload half the app's modules
    ]
    env = {**os.environ, "KVLAB_WORKSHOP_DB": workshop_db}
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    url = f"http://localhost:{port}"
    for _ in range(240):
        try:
            urllib.request.urlopen(url + "/_stcore/health", timeout=1)
            break
        except OSError:
            time.sleep(0.25)
    else:
        proc.kill()
        pytest.fail("the app did not start")
    yield url
    proc.terminate()
    proc.wait(10)


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = launch(pw)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    ctx = browser.new_context(viewport={"width": 1400, "height": 1400}, accept_downloads=True)
    p = ctx.new_page()
    yield p
    ctx.close()
