"""Workshop mode through app.py (AppTest): a presenter starts a room, a participant joins it by code, answers a
step's question on the page the step opens, the guess lands in the database, the reveal shows the engine's
number, and the presenter sees the count. Also: every page's own question box, step views that replace the
page's widgets, the presenter view, and hostile workshop parameters in a link."""

import pytest
from apptest import assert_no_exception, open_page

from app_pages import workshop_ui
from core.workshop import path as wp
from core.workshop.store import Store


@pytest.fixture
def db(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'workshop.db'}"
    monkeypatch.setenv("KVLAB_WORKSHOP_DB", url)
    return Store.from_url(url)


def start_room() -> tuple[str, str]:
    host = open_page("app_pages/workshop.py")
    host.button(key="ws.create").click().run()
    assert_no_exception(host)
    code, key = host.query_params["room"], host.session_state["ws.host"]
    assert any(f"Room **{code}**" in m.value for m in host.markdown)
    return code, key


def join(code: str) -> str:
    p = open_page("app_pages/workshop.py")
    p.text_input(key="ws.join.code").input(f"  {code.lower()} ")  # typed loosely: normalised
    p.button[0].click().run()
    assert_no_exception(p)
    assert p.query_params["room"] == code and "me" not in p.query_params  # who you are is not in the link
    held_code, token = p.session_state["ws.me"]
    assert held_code == code
    return token


def step_page(tour: str, n: int, **extra) -> tuple:
    step = wp.paths()[tour].steps[n - 1]
    return f"app_pages/{step.page}.py", {**step.view, "tour": tour, "step": str(n), **extra}


def test_workshop_page_lists_both_paths_and_every_step():
    at = open_page("app_pages/workshop.py")
    assert_no_exception(at)
    assert set(at.radio(key="ws.tour").options) == {
        f"{p.title} ({len(p.steps)} steps, about {p.minutes} minutes)" for p in wp.paths().values()
    }
    labels = [pl.proto.label for pl in at.get("page_link")]
    assert labels == [f"{n}. {s.title}" for n, s in enumerate(wp.paths()["workshop"].steps, 1)]


def test_a_room_from_start_to_reveal(db):
    """Presenter, participant, guess, database, a blind wait, reveal, presenter's count, closed guesses."""
    code, key = start_room()
    assert db.room_exists(code) and db.is_host(code, key)
    me = join(code)
    page, query = step_page("workshop", 1, room=code)
    p = open_page(page, query)
    assert_no_exception(p)
    assert not p.warning, [w.value for w in p.warning]  # the workshop parameters are not "unknown"
    assert not [b for b in p.button if "Show me the answer" in str(b.label)]  # no peeking in a room
    p.number_input(key="ws.llama_fit.in").set_value(5)
    p.button(key="FormSubmitter:ws.llama_fit.form-Lock in my guess").click().run()
    assert_no_exception(p)
    assert db.answers(code, "llama_fit") == [5.0]
    truth = wp.answer("llama_fit")
    # blind until the reveal: "locked in" and the guess, not the answer, the verdict or the takeaway
    assert any("Locked in: **5 " in i.value for i in p.info)
    assert not any(m.label == "The engine's answer" for m in p.metric) and not p.success
    assert not any(truth.shown in m.value for m in p.markdown)
    # resubmitting replaces the guess
    p.number_input(key="ws.llama_fit.in").set_value(3)
    p.button(key="FormSubmitter:ws.llama_fit.form-Lock in my guess").click().run()
    assert db.answers(code, "llama_fit") == [3.0]

    h = open_page(page, query)
    h.session_state["ws.host"] = key
    h.run()
    assert_no_exception(h)
    assert any(f"Room **{code}**: **1** answered." in m.value for m in h.markdown)
    assert not any(m.label == "The engine's answer" for m in h.metric)  # not before the presenter reveals
    h.button(key="ws.llama_fit.reveal").click().run()
    assert any(m.label == "The engine's answer" and m.value == truth.shown for m in h.metric)
    assert db.revealed(code, "llama_fit")

    p.run()  # the participant's next run (their page checks every few seconds) shows the answer
    assert any(m.label == "The engine's answer" and m.value == truth.shown for m in p.metric)
    assert any(wp.verdict(wp.questions()["llama_fit"], truth, 3.0) in m.value for m in p.markdown)
    assert any(wp.takeaway(wp.paths()["workshop"].steps[0]) in s.value for s in p.success)
    assert not [n for n in p.number_input if n.key == "ws.llama_fit.in"]  # guesses are closed
    with pytest.raises(PermissionError, match="revealed"):
        db.submit(code, "llama_fit", p.session_state["ws.me"][1], value=4.0)
    assert db.is_participant(code, me)  # joined by code on the Workshop page


def test_wrong_code_is_refused_in_a_sentence(db):
    p = open_page("app_pages/workshop.py")
    p.text_input(key="ws.join.code").input("ZZZZZZ")
    p.button[0].click().run()
    assert_no_exception(p)
    assert any("No room ZZZZZZ" in e.value for e in p.error)
    p.text_input(key="ws.join.code").input("<b>!")
    p.button[0].click().run()
    assert_no_exception(p)
    assert any("room code" in e.value.lower() for e in p.error), [e.value for e in p.error]


def test_presenter_key_resumes_the_room(db):
    code, key = db.create_room("workshop")
    at = open_page("app_pages/workshop.py")
    at.text_input(key="ws.resume.code").input(code)
    at.text_input(key="ws.resume.key").input("wrong")
    at.button(key="FormSubmitter:ws.resume-Resume as presenter").click().run()
    assert any("do not open a room" in e.value for e in at.error)
    at.text_input(key="ws.resume.key").input(f" {key} ")  # pasted with spaces: trimmed
    at.button(key="FormSubmitter:ws.resume-Resume as presenter").click().run()
    assert at.session_state["ws.host"] == key
    assert any("you are presenting" in m.value for m in at.markdown)


@pytest.mark.parametrize("page", wp.PAGES)
def test_every_page_asks_its_question_and_reveals(page):
    """Without a path, each page's "Ask first" is an answer box; "show me" reveals the engine's answer."""
    q = wp.page_question(page)
    at = open_page(f"app_pages/{page}.py")
    assert_no_exception(at)
    assert any(m.value == f"**{q.prompt}**" for m in at.markdown)
    assert not any("*Ask first:*" in m.value for m in at.markdown)
    at.button(key=f"FormSubmitter:ws.{q.id}.form-Show me the answer").click().run()
    assert_no_exception(at)
    assert any(m.label == "The engine's answer" and m.value == wp.answer(q.id).shown for m in at.metric)


def test_a_step_view_replaces_the_pages_widgets():
    """Step 1 and step 2 both open the Overview with different models: moving on replaces the widgets."""
    page, q1 = step_page("workshop", 1)
    at = open_page(page, q1)
    assert at.multiselect(key="overview.models").value == q1["models"].split(",")
    _, q2 = step_page("workshop", 2)
    at.query_params.clear()
    for k, v in q2.items():
        at.query_params[k] = v
    at.run()
    assert_no_exception(at)
    assert at.multiselect(key="overview.models").value == q2["models"].split(",")


def test_presenter_view_hides_the_sidebar_and_folds_the_lesson():
    page, q = step_page("workshop", 8, present="1")
    at = open_page(page, q)
    assert_no_exception(at)
    assert any("stSidebar" in m.value and "display: none" in m.value for m in at.markdown)
    assert at.expander[0].label == "The lesson" and not at.expander[0].proto.expanded


@pytest.mark.parametrize(
    "query",
    [
        {"tour": "nope", "step": "1"},
        {"tour": "workshop", "step": "999"},
        {"tour": "workshop", "step": "-4"},
        {"tour": "workshop", "step": "x" * 500},
        {"room": "<script>", "me": "a b"},
        {"room": "ABCDEF", "present": "2"},
    ],
)
def test_hostile_workshop_parameters_never_break_a_page(query):
    at = open_page("app_pages/overview.py", query)
    assert_no_exception(at)
    assert not any("<script>" in m.value for m in at.markdown)
    warned = " ".join(w.value for w in at.warning)
    bad = {"tour": "nope", "step": query.get("step"), "room": "<script>", "present": "2"}
    for k, v in query.items():
        if k in bad and v == bad[k] and not (k == "step" and query.get("tour") == "nope"):
            assert f"workshop parameter {k}=" in warned, (k, warned)  # said, not silently dropped
    assert "room=ABCDEF" not in warned  # a well-formed code is not a bad parameter


def test_joining_a_room_follows_its_path(db):
    code, _ = db.create_room("review")
    p = open_page("app_pages/workshop.py")
    p.text_input(key="ws.join.code").input(code)
    p.button[0].click().run()
    assert p.radio(key="ws.tour").value == "review" and p.query_params["tour"] == "review"
    again = open_page("app_pages/workshop.py", {"room": code})  # a reload: the link's room
    assert again.radio(key="ws.tour").value == "review"


def test_an_answer_the_engine_cannot_compute_is_a_sentence(monkeypatch):
    """A missing package or shipped file behind an answer: the reveal says so, no traceback, no takeaway."""
    from core.workshop import answers

    def broken():
        raise RuntimeError("the MiniLM weights are not installed")

    monkeypatch.setitem(answers.ANSWERS, "int4_or_turboquant", broken)
    wp.answer.cache_clear()
    workshop_ui._answer.clear()  # an earlier test may have revealed it: Streamlit's cache outlives one AppTest
    page, q = step_page("workshop", 11)
    at = open_page(page, q)
    at.button(key="FormSubmitter:ws.int4_tq.form-Show me the answer").click().run()
    assert_no_exception(at)
    assert any("could not compute this answer: the MiniLM weights are not installed" in e.value for e in at.error)
    assert not at.success
    wp.answer.cache_clear()
    workshop_ui._answer.clear()


def test_a_subnormal_guess_is_judged_in_words_not_a_traceback():
    """'5e-324' typed as a guess crashed the step (ZeroDivisionError in the verdict); it is now a sentence."""
    p = open_page("app_pages/overview.py")
    p.number_input(key="ws.llama_fit.in").set_value(5e-324)
    p.button(key="FormSubmitter:ws.llama_fit.form-Lock in my guess").click().run()
    assert_no_exception(p)
    assert any("More than 1,000x below the answer: too low." in m.value for m in p.markdown)


def test_a_link_to_a_room_that_does_not_exist_says_so(db):
    code, _ = db.create_room("workshop")
    dead = next(c for c in ("ABCDEF", "GHJKMN", "PQRSTU") if c != code and not db.room_exists(c))
    at = open_page("app_pages/workshop.py", {"room": dead})
    assert_no_exception(at)
    assert any(f"There is no room {dead}" in e.value for e in at.error)
    assert not any("Joined room" in m.value for m in at.markdown)
    live = open_page("app_pages/workshop.py", {"room": code})
    assert any(f"Joined room **{code}**" in m.value for m in live.markdown) and not live.error


def test_one_visitor_starting_rooms_in_a_loop_is_stopped_and_keeps_the_forms(db, monkeypatch):
    """Room-cap exhaustion: past the per-visitor limit, 'Start a new room' says when to retry, and the
    Resume as presenter form stays on screen; another visitor can still start one."""
    from app_pages import workshop_ui
    from core.workshop.ratelimit import RateLimiter

    monkeypatch.setattr(workshop_ui, "ROOMS", RateLimiter(1, 3600))
    at = open_page("app_pages/workshop.py")
    at.button(key="ws.create").click().run()
    first = at.query_params["room"]
    for k in ("ws.room", "ws.host"):  # the same browser session, back on the Present tab
        del at.session_state[k]
    del at.query_params["room"]
    at.run()
    at.button(key="ws.create").click().run()
    assert_no_exception(at)
    assert any("this server's limit per visitor" in e.value for e in at.error)
    assert at.text_input(key="ws.resume.code") is not None and db.room_exists(first)
    other = open_page("app_pages/workshop.py")  # a new browser session
    other.button(key="ws.create").click().run()
    assert other.query_params["room"] != first and not other.error


def test_an_operator_token_guards_room_creation(db, monkeypatch):
    monkeypatch.setenv("KVLAB_WORKSHOP_TOKEN", "s3cret-token")
    at = open_page("app_pages/workshop.py")
    at.button(key="ws.create").click().run()
    assert any("needs the operator token" in e.value for e in at.error) and "room" not in at.query_params
    at.text_input(key="ws.token").input(" s3cret-token ")
    at.button(key="ws.create").click().run()
    assert_no_exception(at)
    assert db.room_exists(at.query_params["room"])


def test_a_presenter_who_lands_on_the_joined_view_resumes_from_it(db):
    """After a reload a presenter holding the room's link is shown as a participant ('Joined room'); the view
    offers the presenter's way back, the code filled in, and the key stays viewable in the session."""
    code, key = db.create_room("workshop")
    at = open_page("app_pages/workshop.py", {"room": code})
    assert any(f"Joined room **{code}**" in m.value for m in at.markdown)
    assert at.text_input(key="ws.resume.code").value == code
    at.text_input(key="ws.resume.key").input(key)
    at.button(key="FormSubmitter:ws.resume-Resume as presenter").click().run()
    assert_no_exception(at)
    assert any("you are presenting" in m.value for m in at.markdown)
    assert any(c.value == key for c in at.code)  # "Show my presenter key", any time in this session


def cookie_jar(monkeypatch, jar: dict[str, str]) -> None:
    """What a browser would send: AppTest cannot seed st.context.cookies, so the reader sees `jar` instead (the
    browser test reloads a real Chromium for the same)."""
    monkeypatch.setattr(workshop_ui, "_cookie", lambda name: tuple(jar[name].split(".", 1)) if name in jar else None)


def cookies_written(at) -> str:
    return " ".join(getattr(e.proto, "body", "") for e in at.get("html"))


def lock_in(at, value: float) -> None:
    at.number_input(key="ws.llama_fit.in").set_value(value)
    at.button(key="FormSubmitter:ws.llama_fit.form-Lock in my guess").click().run()
    assert_no_exception(at)


def test_ids_in_links_count_for_nothing_and_a_shared_link_is_someone_new(db):
    """Answer flooding and the shared link: a participant is a token the server issued, not a URL value. 100
    made-up me= values in links are no participants; the room's link opened in another browser (a new session)
    joins as a new participant instead of overwriting the first one's guess."""
    code, _ = db.create_room("workshop")
    page, query = step_page("workshop", 1, room=code)
    first = open_page(page, query)
    lock_in(first, 5)
    token = first.session_state["ws.me"][1]
    assert db.answers(code, "llama_fit") == [5.0]
    assert token not in dict(first.query_params).values()  # never in the link
    for i in range(100):  # a forger cycling ids: the page ignores them, and the store refuses them
        with pytest.raises(PermissionError, match="has not joined"):
            db.submit(code, "llama_fit", f"forged-participant-{i:03d}", value=1000.0)
    second = open_page(page, {**query, "me": token})  # the first one's link, pasted into a chat, with an old me=
    lock_in(second, 11)
    assert second.session_state["ws.me"][1] != token
    assert sorted(db.answers(code, "llama_fit")) == [5.0, 11.0]


def test_one_browser_cannot_mint_participants_in_a_loop(db, monkeypatch):
    """A session that leaves and rejoins to become someone new each time is stopped at the per-session limit,
    with when to retry; another browser still joins."""
    from core.workshop.ratelimit import RateLimiter

    monkeypatch.setattr(workshop_ui, "JOINS_PER_SESSION", RateLimiter(2, 3600))
    code, _ = db.create_room("workshop")
    at = open_page("app_pages/workshop.py")
    for attempt in range(3):
        at.text_input(key="ws.join.code").input(code)
        at.button[0].click().run()
        assert_no_exception(at)
        if attempt < 2:
            assert any(f"Joined room **{code}**" in m.value for m in at.markdown)
            at.button(key="ws.leave").click().run()
    assert any("as someone new 2 times in the last hour" in e.value and "try again in" in e.value for e in at.error)
    assert "room" not in at.query_params
    other = open_page("app_pages/workshop.py")
    other.text_input(key="ws.join.code").input(code)
    other.button[0].click().run()
    assert any(f"Joined room **{code}**" in m.value for m in other.markdown)


def test_a_reloaded_participant_is_the_same_participant(db, monkeypatch):
    """The page writes the participant's token to a browser-session cookie; a reload (a new session sending
    that cookie) answers as the same participant, so the guess is replaced, not doubled. A cookie for another
    room, or one the room never issued, is ignored."""
    code, _ = db.create_room("workshop")
    page, query = step_page("workshop", 1, room=code)
    first = open_page(page, query)
    lock_in(first, 5)
    token = first.session_state["ws.me"][1]
    assert f"kvlab_me={code}.{token}" in cookies_written(first)
    cookie_jar(monkeypatch, {"kvlab_me": f"{code}.{token}"})
    reloaded = open_page(page, query)
    lock_in(reloaded, 7)
    assert reloaded.session_state["ws.me"][1] == token and db.answers(code, "llama_fit") == [7.0]
    cookie_jar(monkeypatch, {"kvlab_me": f"{code}.made-up-token-123"})
    stranger = open_page(page, query)
    lock_in(stranger, 9)
    assert stranger.session_state["ws.me"][1] != "made-up-token-123"
    assert sorted(db.answers(code, "llama_fit")) == [7.0, 9.0]


def test_a_reloaded_presenter_is_still_the_presenter(db, monkeypatch):
    """Presenter reload: the key rides in a browser-session cookie, so the reloaded Workshop page and step pages
    show the presenter's view, not the participant's form; a wrong key in the cookie is a participant."""
    host = open_page("app_pages/workshop.py")
    host.button(key="ws.create").click().run()
    code, key = host.query_params["room"], host.session_state["ws.host"]
    assert f"kvlab_host={code}.{key}" in cookies_written(host)
    cookie_jar(monkeypatch, {"kvlab_host": f"{code}.{key}"})
    again = open_page("app_pages/workshop.py", {"room": code})
    assert_no_exception(again)
    assert any(f"Room **{code}**: you are presenting" in m.value for m in again.markdown)
    page, query = step_page("workshop", 1, room=code)
    step = open_page(page, query)
    assert step.button(key="ws.llama_fit.reveal") is not None
    assert not [n for n in step.number_input if n.key == "ws.llama_fit.in"]
    cookie_jar(monkeypatch, {"kvlab_host": f"{code}.not-the-key-at-all"})
    other = open_page("app_pages/workshop.py", {"room": code})
    assert any(f"Joined room **{code}**" in m.value for m in other.markdown)


def test_the_presenter_removes_a_flood_without_clearing_the_room(db):
    """Flood bars at 0 and 1,000 among real guesses: the presenter removes one answer by picking it, then every
    guess outside a band; the real guesses stay, and the removed participants' new guesses are refused."""
    code, key = db.create_room("workshop")
    real = [db.join(code) for _ in range(2)]
    flood = [db.join(code) for _ in range(4)]
    for t, v in zip(real + flood, [4.0, 6.0, 0.0, 1000.0, 0.0, 1000.0], strict=True):
        db.submit(code, "llama_fit", t, value=v)
    page, query = step_page("workshop", 1, room=code)
    h = open_page(page, query)
    h.session_state["ws.host"] = key
    h.run()
    pick = h.multiselect(key="ws.llama_fit.rm.pick")
    assert any(o.startswith("1000 caches") for o in pick.options)  # what the presenter reads: value, when, who
    pick.select(db.participant_ref(flood[1])).run()
    h.button(key="ws.llama_fit.rm.one").click().run()
    assert_no_exception(h)
    assert sorted(db.answers(code, "llama_fit")) == [0.0, 0.0, 4.0, 6.0, 1000.0]
    h.number_input(key="ws.llama_fit.rm.low").set_value(1).run()
    h.number_input(key="ws.llama_fit.rm.high").set_value(100).run()
    h.button(key="ws.llama_fit.rm.band").click().run()
    assert_no_exception(h)
    assert sorted(db.answers(code, "llama_fit")) == [4.0, 6.0]
    assert any("Room **" in m.value and "**2** answered" in m.value for m in h.markdown)
    with pytest.raises(PermissionError, match="removed your answers"):
        db.submit(code, "llama_fit", flood[0], value=5.0)
    db.submit(code, "llama_fit", real[0], value=5.0)


def test_a_bad_limit_in_the_environment_is_the_default_not_a_traceback(monkeypatch):
    for raw in ("ten", "0", "-3", "1e3", " "):
        monkeypatch.setenv("KVLAB_ROOMS_PER_HOUR", raw)
        assert workshop_ui._env_count("KVLAB_ROOMS_PER_HOUR", 10) == 10
    monkeypatch.setenv("KVLAB_ROOMS_PER_HOUR", " 25 ")
    assert workshop_ui._env_count("KVLAB_ROOMS_PER_HOUR", 10) == 25


def test_turning_on_presenter_view_hides_the_sidebar_in_the_same_run():
    """The Workshop page read presenter view from the link, which the toggle updates at the end of the run: the
    sidebar stayed until the next page load."""
    at = open_page("app_pages/workshop.py")
    assert not any("stSidebar" in m.value for m in at.markdown)
    at.toggle(key="ws.present").set_value(True).run()
    assert_no_exception(at)
    assert any("stSidebar" in m.value and "display: none" in m.value for m in at.markdown)
    assert at.query_params["present"] == "1"
