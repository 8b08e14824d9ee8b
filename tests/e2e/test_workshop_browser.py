"""In real Chromium, three people walk the whole workshop path together: a presenter (presenter view, 1024x768)
starts a room, two participants join it by code, and at every step both submit a guess on the page the step
opens; the guesses reach the database, the presenter's live panel counts both and draws their distribution, the
participants see "locked in", not the answer, until the presenter reveals it; the presenter's reveal then
shows the engine's answer (computed here by the same engine) on every screen, the participants' within their
page's next check, and "Next step" carries everyone on. With KVLAB_SHOTS=<folder> the presenter's screen is
saved at every step."""

import os
import re
from pathlib import Path

from core.workshop import path as wp
from core.workshop.store import Store

EXCEPTION = "[data-testid='stException']"
METRIC = "[data-testid='stMetric']"
TOUR = "workshop"


def no_exception(page):
    assert page.locator(EXCEPTION).count() == 0, page.locator(EXCEPTION).first.inner_text()


def engine_metric(page):
    return page.locator(METRIC, has_text="The engine's answer").locator("[data-testid='stMetricValue']")


def guess_for(q: wp.Question, who: int):
    """Alice guesses high, Bob low (numbers, inside the box's range); both pick a choice, Bob the last."""
    if q.kind == "choice":
        return q.choices[0] if who == 0 else q.choices[-1]
    truth = wp.answer(q.id).value
    g = truth * 2 if who == 0 else truth / 2
    return round(min(max(g, q.min), q.max), 2)


def settle(page) -> None:
    """Wait until the rerun has finished: no element of the previous step left (Streamlit marks them stale)."""
    page.wait_for_function("() => !document.querySelector('[data-stale=\"true\"]')", timeout=90_000)
    page.wait_for_timeout(300)


def answer(page, q: wp.Question, guess) -> None:
    page.get_by_text(q.prompt, exact=True).wait_for(timeout=90_000)
    settle(page)
    if q.kind == "number":
        box = page.get_by_label(f"Your guess ({q.unit})")
        box.fill(f"{guess:g}")
        box.press("Tab")
    else:
        page.get_by_role("radiogroup", name="Your guess").get_by_text(guess, exact=True).click()
    page.get_by_role("button", name="Lock in my guess").click()
    page.get_by_text("Locked in:").wait_for(timeout=90_000)  # blind in a room: no answer before the reveal


def test_two_participants_and_a_presenter_walk_the_whole_path(browser, app_url, workshop_db):
    shots = os.environ.get("KVLAB_SHOTS")
    presenter = browser.new_context(viewport={"width": 1024, "height": 768}).new_page()
    people = [browser.new_context(viewport={"width": 1280, "height": 900}).new_page() for _ in range(2)]
    store = Store.from_url(workshop_db)

    presenter.goto(app_url + f"/workshop?tour={TOUR}&present=1")
    presenter.get_by_role("tab", name="Present a room").click()
    presenter.get_by_role("button", name="Start a new room").click()
    heading = presenter.get_by_text(re.compile(r"Room [A-Z2-9]{6}: you are presenting"))
    heading.wait_for(timeout=60_000)
    code = re.search(r"Room ([A-Z2-9]{6})", heading.inner_text()).group(1)
    assert store.room_exists(code)

    for p in people:
        p.goto(app_url + "/workshop")
        p.get_by_label("Room code").fill(code.lower())
        p.get_by_role("button", name="Join").click()
        p.get_by_text(f"Joined room {code}").wait_for(timeout=60_000)
        assert f"room={code}" in p.url and "me=" not in p.url  # who you are is not in a link

    steps = wp.paths()[TOUR].steps
    for everyone in (presenter, *people):
        everyone.get_by_role("link", name=f"1. {steps[0].title}").click()
    for n, step in enumerate(steps, 1):
        q = wp.questions()[step.question]
        truth = wp.answer(q.id)
        for who, p in enumerate(people):
            p.wait_for_url(re.compile(rf"[?&]step={n}(&|$)"), timeout=60_000)
            answer(p, q, guess_for(q, who))
            assert engine_metric(p).count() == 0
            no_exception(p)
        stored = sorted(store.answers(code, q.id), key=str)
        assert stored == sorted((guess_for(q, 0), guess_for(q, 1)), key=str), (n, stored)

        presenter.wait_for_url(re.compile(rf"[?&]step={n}(&|$)"), timeout=60_000)
        assert "present=1" in presenter.url
        presenter.get_by_text(f"Room {code}: 2 answered.").wait_for(timeout=60_000)  # the live panel polls
        panel = presenter.locator("[data-testid='stVegaLiteChart']").last
        panel.wait_for(timeout=30_000)
        presenter.get_by_role("button", name="Reveal the answer").click()
        engine_metric(presenter).wait_for(timeout=90_000)
        assert engine_metric(presenter).inner_text() == truth.shown
        presenter.get_by_text(wp.takeaway(step)).wait_for(timeout=30_000)
        for p in people:  # each participant's page checks every few seconds and shows the answer
            engine_metric(p).wait_for(timeout=60_000)
            assert engine_metric(p).inner_text() == truth.shown
            no_exception(p)
        assert presenter.locator("[data-testid='stSidebar']").is_hidden()
        no_exception(presenter)
        if shots:
            Path(shots).mkdir(parents=True, exist_ok=True)
            presenter.screenshot(path=str(Path(shots) / f"step-{n:02d}.png"))
        if n < len(steps):
            for everyone in (presenter, *people):
                everyone.get_by_role("link", name="Next step").click()
    presenter.get_by_role("link", name="Finish").click()
    presenter.get_by_role("heading", name="Workshop").wait_for(timeout=60_000)


def test_a_reload_keeps_each_role_and_a_shared_link_is_someone_new(browser, app_url, workshop_db):
    """Through real browser cookies: a presenter who reloads is still presenting; a participant who reloads
    answers as the same participant (the guess is replaced, not doubled); their link opened in another browser
    is a new participant (before, it overwrote the first one's guess)."""
    store = Store.from_url(workshop_db)
    presenter = browser.new_context().new_page()
    presenter.goto(app_url + f"/workshop?tour={TOUR}&present=1")  # presenter view hides the sidebar
    presenter.get_by_role("tab", name="Present a room").click()
    presenter.get_by_role("button", name="Start a new room").click()
    heading = presenter.get_by_text(re.compile(r"Room [A-Z2-9]{6}: you are presenting"))
    heading.wait_for(timeout=60_000)
    code = re.search(r"Room ([A-Z2-9]{6})", heading.inner_text()).group(1)
    presenter.wait_for_timeout(500)  # the cookie's script (in the hidden sidebar) runs as the page renders
    presenter.reload()
    presenter.get_by_text(f"Room {code}: you are presenting").wait_for(timeout=60_000)

    step = wp.paths()[TOUR].steps[0]
    q = wp.questions()[step.question]
    view = "&".join(f"{k}={v}" for k, v in step.view.items())
    person = browser.new_context().new_page()
    person.goto(f"{app_url}/{step.page}?{view}&tour={TOUR}&step=1&room={code}")
    first, second, third = (round(q.min + (q.max - q.min) * f, 2) for f in (0.1, 0.2, 0.3))
    answer(person, q, first)
    assert store.answers(code, q.id) == [first] and "me=" not in person.url
    person.wait_for_timeout(500)
    person.reload()
    answer(person, q, second)
    assert store.answers(code, q.id) == [second]  # the same participant: replaced, not doubled
    shared = browser.new_context().new_page()  # another browser: no cookie, only the link
    shared.goto(person.url)
    answer(shared, q, third)
    assert sorted(store.answers(code, q.id)) == sorted([second, third])
    for p in (presenter, person, shared):
        no_exception(p)


def test_a_room_spans_two_app_processes(browser, app_url, workshop_db):
    """Two replicas (as `make serve` runs them) share the room's database: a guess sent to one process shows in
    the presenter's panel served by the other."""
    import subprocess
    import sys
    import time
    import urllib.request

    from conftest import ROOT, _free_port

    port = _free_port()
    env = {**os.environ, "KVLAB_WORKSHOP_DB": workshop_db}
    cmd = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port), "--server.headless",
           "true", "--server.fileWatcherType", "none"]  # fmt: skip
    other = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        for _ in range(240):
            try:
                urllib.request.urlopen(f"http://localhost:{port}/_stcore/health", timeout=1)
                break
            except OSError:
                time.sleep(0.25)
        store = Store.from_url(workshop_db)
        code, key = store.create_room("review")
        step = wp.paths()["review"].steps[0]
        q = wp.questions()[step.question]
        view = "&".join(f"{k}={v}" for k, v in step.view.items())
        person = browser.new_context().new_page()
        person.goto(f"{app_url}/{step.page}?{view}&tour=review&step=1&room={code}")
        answer(person, q, guess_for(q, 0))
        presenter = browser.new_context().new_page()
        presenter.goto(f"http://localhost:{port}/workshop")
        presenter.get_by_role("tab", name="Present a room").click()
        presenter.get_by_label("Code of your room").fill(code)
        presenter.get_by_label("Presenter key").fill(key)
        presenter.get_by_role("button", name="Resume as presenter").click()
        presenter.get_by_role("link", name=f"1. {step.title}").click()
        presenter.get_by_text(f"Room {code}: 1 answered.").wait_for(timeout=60_000)
        no_exception(presenter)
    finally:
        other.terminate()
        other.wait(10)
