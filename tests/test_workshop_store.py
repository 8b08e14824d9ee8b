"""core/workshop/store.py keeps the room's predictions correctly on SQLite and on PostgreSQL: answers round
trip, a resubmission replaces the earlier answer, only the presenter's key resets, every input rule refuses
bad input with a ValueError, the per-question cap and room limits hold, old rooms expire, two Store objects
(two processes) on one SQLite file see each other's answers, and concurrent submits from threads lose
nothing. Only the key's hash is stored.

Every test runs twice: on a SQLite file in tmp_path, and on a real PostgreSQL in a fresh schema of its own
(dropped afterwards). The server's URL comes from KVLAB_TEST_POSTGRES_URL, else from the file that
scripts/ensure_postgres.sh writes (`make test` runs it first; this module runs it once more when the file
is missing or stale); the PostgreSQL cases skip, saying why, only when no server can be started.
"""

from __future__ import annotations

import hashlib
import math
import os
import subprocess
import threading
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from core.workshop import store as store_module
from core.workshop.store import ALPHABET, DEFAULT_URL, Store, engine_url, normalise_code

ROOT = Path(__file__).resolve().parent.parent
PG_DIR = Path("/tmp/kvlab-pg")  # where scripts/ensure_postgres.sh keeps its cluster, URL and reason
Q = "kv.bytes_per_token"
_TOKENS: dict[tuple[str, int], str] = {}


def who(store: Store, code: str, i: int) -> str:
    """Participant number i of room `code`: a token the room issued (`join`), the same one on every call."""
    code = normalise_code(code)
    if (code, i) not in _TOKENS:
        _TOKENS[code, i] = store.join(code)
    return _TOKENS[code, i]


def _reachable(url: str) -> str:
    """'' when `url` accepts a connection, else the reason."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
        return ""
    except sa.exc.SQLAlchemyError as exc:
        return str(exc.orig or exc).splitlines()[0]
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """A reachable PostgreSQL URL: the environment's (which must work), else the script's (started here if
    needed); skips with the script's reason when it cannot start a server."""
    url = os.environ.get("KVLAB_TEST_POSTGRES_URL")
    if url:
        problem = _reachable(url)
        assert not problem, f"KVLAB_TEST_POSTGRES_URL does not accept connections: {problem}"
        return url
    url_file = PG_DIR / "url"
    if not url_file.is_file() or _reachable(url_file.read_text().strip()):
        subprocess.run(["bash", str(ROOT / "scripts" / "ensure_postgres.sh")], capture_output=True, timeout=600)
    if not url_file.is_file():
        reason_file = PG_DIR / "reason"
        reason = reason_file.read_text().strip() if reason_file.is_file() else "scripts/ensure_postgres.sh failed"
        pytest.skip(f"no PostgreSQL for the store tests: {reason}")
    url = url_file.read_text().strip()
    problem = _reachable(url)
    if problem:
        pytest.skip(f"no PostgreSQL for the store tests: {url_file} names a server that refuses: {problem}")
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def make_store(request, tmp_path):
    """A factory of Stores on one fresh database: each call is a new engine (as another process would have)."""
    engines: list[sa.Engine] = []
    if request.param == "sqlite":
        url, connect_args, schema = f"sqlite:///{tmp_path / 'workshop.db'}", {}, None
    else:
        url = request.getfixturevalue("postgres_url")
        schema = f"test_{uuid.uuid4().hex[:16]}"
        connect_args = {"options": f"-c search_path={schema}"}
        admin = sa.create_engine(url)
        with admin.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))

    def make(**options) -> Store:
        engine = sa.create_engine(url, connect_args=connect_args)
        engines.append(engine)
        return Store(engine, **options)

    yield make
    for engine in engines:
        engine.dispose()
    if schema is not None:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def store(make_store) -> Store:
    return make_store()


class Clock:
    """A settable clock in seconds, for Store(clock=...)."""

    def __init__(self, now: float = 1_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_round_trip_of_numbers_and_choices(store):
    """A new room has a valid code and a key; its path, numeric and choice answers come back as stored."""
    code, key = store.create_room("full-workshop")
    assert len(code) == 6 and set(code) <= set(ALPHABET) and normalise_code(code) == code
    assert isinstance(key, str) and len(key) >= 20
    assert store.room_exists(code) and store.room_path(code) == "full-workshop"
    assert store.answers(code, Q) == [] and store.count(code, Q) == 0
    store.submit(code, Q, who(store, code, 0), value=70_272.5)
    store.submit(f"  {code.lower()} ", "mla.cheaper", who(store, f"  {code.lower()} ", 0), choice="MLA (absorbed)")
    assert store.answers(code, Q) == [70_272.5] and store.count(code, Q) == 1
    assert store.answers(code, "mla.cheaper") == ["MLA (absorbed)"]


def test_resubmitting_replaces_the_answer(store):
    """One answer per participant per question: the second submission replaces the first, count stays 1,
    even when it switches from a number to a choice."""
    code, _ = store.create_room("full")
    store.submit(code, Q, who(store, code, 0), value=1.0)
    store.submit(code, Q, who(store, code, 0), value=2.0)
    assert store.answers(code, Q) == [2.0] and store.count(code, Q) == 1
    store.submit(code, Q, who(store, code, 0), choice="about 2")
    assert store.answers(code, Q) == ["about 2"] and store.count(code, Q) == 1


def test_two_participants_and_rooms_are_kept_apart(store):
    """Two participants' answers both count; another room and another question see none of them."""
    code, _ = store.create_room("full")
    other, _ = store.create_room("review")
    store.submit(code, Q, who(store, code, 0), value=3.0)
    store.submit(code, Q, who(store, code, 1), value=5.0)
    assert sorted(store.answers(code, Q)) == [3.0, 5.0] and store.count(code, Q) == 2
    assert store.count(other, Q) == 0 and store.count(code, "other.question") == 0
    assert store.room_path(other) == "review"


def test_reset_is_for_the_presenter_only(store):
    """A wrong or foreign key is refused and deletes nothing; the right key resets one question, then all."""
    code, key = store.create_room("full")
    other, other_key = store.create_room("full")
    for i in range(2):
        store.submit(code, Q, who(store, code, i), value=1.0)
        store.submit(code, "q2", who(store, code, i), value=2.0)
    assert store.is_host(code, key) and not store.is_host(code, other_key) and not store.is_host(other, key)
    assert not store.is_host(code, "") and not store.is_host(code, None) and not store.is_host(code, key * 10)
    for wrong in ("not-the-key", other_key, ""):
        with pytest.raises(PermissionError, match="presenter"):
            store.reset(code, wrong)
    assert store.count(code, Q) == 2
    assert store.reset(code, key, question=Q) == 2
    assert store.count(code, Q) == 0 and store.count(code, "q2") == 2
    assert store.reset(code, key) == 2
    assert store.count(code, "q2") == 0


def test_only_a_hash_of_the_key_is_stored(store):
    """The rooms table holds the key's SHA-256 and never the key itself."""
    code, key = store.create_room("full")
    with store.engine.connect() as conn:
        rows = conn.execute(sa.text("select * from rooms")).all()
    assert [row.host_hash for row in rows] == [hashlib.sha256(key.encode()).hexdigest()]
    assert all(key not in str(tuple(row)) for row in rows)


@pytest.mark.parametrize(
    "bad", ["", "ABC12", "ABCDEFG", "ABC-12", "ABC10Z", "ÄBCDEF", "ABCDE\n", "A" * 10_000, None, 123456]
)
def test_bad_room_codes_are_refused(store, bad):
    """Anything but 6 of A-Z/2-9 (after trimming and upper-casing) is refused by every method taking a code."""
    with pytest.raises(ValueError, match="room code"):
        normalise_code(bad)
    for call in (
        lambda: store.room_exists(bad),
        lambda: store.room_path(bad),
        lambda: store.submit(bad, Q, who(store, bad, 0), value=1.0),
        lambda: store.answers(bad, Q),
        lambda: store.count(bad, Q),
        lambda: store.reset(bad, "key"),
        lambda: store.is_host(bad, "key"),
    ):
        with pytest.raises(ValueError, match="room code"):
            call()


def test_codes_are_normalised():
    """Spaces around a code are dropped and lower case is raised, so a code typed from a slide still works."""
    assert normalise_code("  k7qh2m\t") == "K7QH2M"


def test_unknown_rooms_are_refused(store):
    """A well-formed code without a room is refused with 'no room CODE' by reads, writes and reset."""
    code, key = store.create_room("full")
    missing = "ZZZZZZ" if code != "ZZZZZZ" else "YYYYYY"
    assert not store.room_exists(missing) and store.room_path(missing) is None
    assert not store.is_host(missing, key)
    for call in (
        lambda: store.submit(missing, Q, who(store, missing, 0), value=1.0),
        lambda: store.submit(missing, Q, who(store, missing, 0), choice="a"),
        lambda: store.answers(missing, Q),
        lambda: store.count(missing, Q),
        lambda: store.reset(missing, key),
    ):
        with pytest.raises(ValueError, match=f"no room {missing}"):
            call()


@pytest.mark.parametrize(
    "bad", ["short", "x" * 65, "has space1", "semi;colon", "ümlaut123", "abcdefgh\n", None, 12345678]
)
def test_bad_participant_ids_are_refused(store, bad):
    """A participant id is 8-64 of letters, digits, '_' and '-': nothing else is stored."""
    code, _ = store.create_room("full")
    with pytest.raises(ValueError, match="participant id"):
        store.submit(code, Q, bad, value=1.0)
    assert store.count(code, Q) == 0


@pytest.mark.parametrize("bad", ["", "Upper", "x" * 65, "has space", "q/1", "q1\n", None])
def test_bad_question_ids_are_refused(store, bad):
    """A question id is 1-64 of a-z, 0-9, '_', '.', '-', checked on write, read and reset (where None
    means every question)."""
    code, key = store.create_room("full")
    calls = [
        lambda: store.submit(code, bad, who(store, code, 0), value=1.0),
        lambda: store.answers(code, bad),
        lambda: store.count(code, bad),
    ]
    if bad is not None:
        calls.append(lambda: store.reset(code, key, question=bad))
    for call in calls:
        with pytest.raises(ValueError, match="question id"):
            call()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (math.nan, "finite"),
        (math.inf, "finite"),
        (-math.inf, "finite"),
        (10**400, "finite"),
        (1.000001e15, "within"),
        (-2e15, "within"),
        (True, "must be a number"),
        ("12", "must be a number"),
    ],
)
def test_bad_values_are_refused(store, value, message):
    """A numeric answer is a finite real number within +-1e15 (not a bool, not text)."""
    code, _ = store.create_room("full")
    with pytest.raises(ValueError, match=message):
        store.submit(code, Q, who(store, code, 0), value=value)
    assert store.count(code, Q) == 0


def test_value_limits_are_inclusive(store):
    """+-1e15 and integers are accepted, and come back as floats."""
    code, _ = store.create_room("full")
    store.submit(code, Q, who(store, code, 0), value=1e15)
    store.submit(code, Q, who(store, code, 1), value=-(10**15))
    store.submit(code, Q, who(store, code, 2), value=7)
    assert sorted(store.answers(code, Q)) == [-1e15, 7.0, 1e15]


@pytest.mark.parametrize(
    ("choice", "message"),
    [
        ("x" * 201, "at most 200"),
        ("", "empty"),
        ("   ", "empty"),
        ("a\x00b", "control"),
        ("a\nb", "control"),
        ("\ud800", "control"),
        (3, "must be text"),
    ],
)
def test_bad_choices_are_refused(store, choice, message):
    """A choice is 1-200 characters of text without control characters."""
    code, _ = store.create_room("full")
    with pytest.raises(ValueError, match=message):
        store.submit(code, Q, who(store, code, 0), choice=choice)
    store.submit(code, Q, who(store, code, 0), choice="y" * 200)
    assert store.answers(code, Q) == ["y" * 200]


def test_exactly_one_of_value_and_choice(store):
    """Neither or both of value and choice is refused."""
    code, _ = store.create_room("full")
    for kwargs in ({}, {"value": 1.0, "choice": "a"}):
        with pytest.raises(ValueError, match="exactly one"):
            store.submit(code, Q, who(store, code, 0), **kwargs)


@pytest.mark.parametrize(
    ("path", "message"), [("p" * 65, "at most 64"), ("", "needs"), ("a\tb", "control"), (None, "needs")]
)
def test_bad_paths_are_refused(store, path, message):
    """A room's path name is 1-64 characters without control characters; 64 is accepted."""
    with pytest.raises(ValueError, match=message):
        store.create_room(path)
    code, _ = store.create_room("p" * 64)
    assert store.room_path(code) == "p" * 64


def test_per_question_cap(make_store):
    """Past max_answers participants, a newcomer is refused while those who answered can still replace
    theirs; other questions and rooms have their own cap."""
    store = make_store(max_answers=3)
    code, _ = store.create_room("full")
    for i in range(3):
        store.submit(code, Q, who(store, code, i), value=1.0)
    with pytest.raises(ValueError, match="3 answers to this question"):
        store.submit(code, Q, who(store, code, 3), value=1.0)
    store.submit(code, Q, who(store, code, 0), value=9.0)
    assert store.count(code, Q) == 3 and 9.0 in store.answers(code, Q)
    store.submit(code, "q2", who(store, code, 3), value=1.0)
    other, _ = store.create_room("full")
    store.submit(other, Q, who(store, other, 3), value=1.0)
    assert store.count(code, "q2") == 1 and store.count(other, Q) == 1


def test_old_rooms_expire_when_a_room_is_made(make_store):
    """Creating a room deletes rooms older than room_ttl_s with their answers, and keeps younger ones."""
    clock = Clock()
    store = make_store(clock=clock)
    old, _ = store.create_room("full")
    store.submit(old, Q, who(store, old, 0), value=1.0)
    clock.now += 24 * 3600
    young, _ = store.create_room("full")
    store.submit(young, Q, who(store, young, 0), value=2.0)
    clock.now += 24 * 3600 + 1  # old is 48 h + 1 s old, young 24 h + 1 s
    assert store.room_exists(old)  # nothing is deleted until a room is made
    store.create_room("full")
    assert not store.room_exists(old) and store.room_exists(young)
    with store.engine.connect() as conn:
        left = conn.execute(sa.text("select room, value from answers")).all()
    assert [tuple(row) for row in left] == [(young, 2.0)]
    with pytest.raises(ValueError, match=f"no room {old}"):
        store.submit(old, Q, who(store, old, 0), value=1.0)


def test_a_reveal_closes_guesses_and_only_the_presenter_reveals(store):
    """Blind until the reveal: revealing needs the presenter key, closes the question to every guess (new
    and changed), leaves the other questions open, and Clear reopens it, blind again."""
    code, key = store.create_room("full")
    store.submit(code, Q, who(store, code, 0), value=1.0)
    assert not store.revealed(code, Q)
    with pytest.raises(PermissionError, match="only the presenter"):
        store.reveal(code, "not-the-key", Q)
    store.reveal(code, key, Q)
    store.reveal(code, key, Q)  # twice is once
    assert store.revealed(code, Q) and not store.revealed(code, "other")
    for i in range(2):
        with pytest.raises(PermissionError, match="revealed"):
            store.submit(code, Q, who(store, code, i), value=2.0)
    store.submit(code, "other", who(store, code, 0), value=2.0)
    assert store.answers(code, Q) == [1.0]
    store.reset(code, key, Q)
    assert not store.revealed(code, Q)
    store.submit(code, Q, who(store, code, 1), value=3.0)
    assert store.answers(code, Q) == [3.0]


def test_an_expired_room_takes_its_reveals_with_it(make_store):
    clock = Clock()
    store = make_store(clock=clock)
    old, key = store.create_room("full")
    store.reveal(old, key, Q)
    clock.now += 48 * 3600 + 1
    store.create_room("full")
    with store.engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from reveals")).scalar() == 0


def test_rooms_nobody_answered_in_expire_within_hours(make_store):
    """A room made and abandoned (or made in a loop to fill the server) goes after empty_ttl_s; a room with an
    answer stays until room_ttl_s."""
    clock = Clock()
    store = make_store(clock=clock, empty_ttl_s=2 * 3600)
    empty, _ = store.create_room("full")
    used, _ = store.create_room("full")
    store.submit(used, Q, who(store, used, 0), value=1.0)
    clock.now += 2 * 3600 + 1
    store.create_room("full")
    assert not store.room_exists(empty) and store.room_exists(used)


def test_room_limit(make_store):
    """At most max_rooms rooms: one more is refused until old rooms expire."""
    clock = Clock()
    store = make_store(clock=clock, max_rooms=2)
    store.create_room("full")
    store.create_room("full")
    with pytest.raises(ValueError, match="already holds 2 workshop rooms"):
        store.create_room("full")
    clock.now += 48 * 3600 + 1
    store.create_room("full")


def test_code_collisions_draw_again(store, monkeypatch):
    """A drawn code that is taken is drawn again, never overwriting the existing room."""
    taken, key = store.create_room("full")
    draws = iter([taken, taken, "NEWRM2"])
    monkeypatch.setattr(store_module, "new_code", lambda: next(draws))
    code, other_key = store.create_room("review")
    assert code == "NEWRM2" and store.room_path(taken) == "full" and store.is_host(taken, key)
    assert store.room_path(code) == "review" and not store.is_host(taken, other_key)


def test_codes_are_random(store):
    """Room codes come from the alphabet and differ (20 draws of 31**6 codes: a repeat means no randomness)."""
    codes = {store_module.new_code() for _ in range(20)}
    assert len(codes) == 20 and all(set(c) <= set(ALPHABET) for c in codes)


def test_two_stores_on_one_database_see_each_other(make_store):
    """Two Store objects with their own engines (as two app processes behind nginx) share rooms and answers."""
    first, second = make_store(), make_store()
    code, key = first.create_room("full")
    assert second.room_exists(code) and second.is_host(code, key)
    first.submit(code, Q, who(first, code, 0), value=1.0)
    second.submit(code, Q, who(second, code, 1), value=2.0)
    second.submit(code, Q, who(second, code, 0), value=3.0)
    assert sorted(first.answers(code, Q)) == sorted(second.answers(code, Q)) == [2.0, 3.0]
    second.reset(code, key)
    assert first.count(code, Q) == 0


def test_concurrent_submits_from_threads(make_store):
    """Threads on two engines submitting and resubmitting at once, two threads per participant (so first
    answers race each other), lose no answer and duplicate none."""
    stores = [make_store(), make_store()]
    code, _ = stores[0].create_room("full")
    parts = [stores[0].join(code) for _ in range(64)]
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def work(worker: int) -> None:
        try:
            start.wait()
            for round_ in range(3):
                for part in parts[(worker % 4) * 16 : (worker % 4) * 16 + 16]:
                    stores[worker % 2].submit(code, Q, part, value=float(round_))
        except BaseException as exc:  # noqa: BLE001 - reported by the assert below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert stores[1].count(code, Q) == 64 and stores[1].answers(code, Q) == [2.0] * 64


def test_concurrent_cap_is_exact(make_store):
    """Many newcomers at once against a cap of 5: exactly 5 are stored and the rest are refused."""
    stores = [make_store(max_answers=5), make_store(max_answers=5)]
    code, _ = stores[0].create_room("full")
    parts = [stores[0].join(code) for _ in range(16)]
    refused: list[str] = []
    errors: list[BaseException] = []
    start = threading.Barrier(16)

    def work(i: int) -> None:
        try:
            start.wait()
            stores[i % 2].submit(code, Q, parts[i], value=1.0)
        except ValueError as exc:
            refused.append(str(exc))
        except BaseException as exc:  # noqa: BLE001 - reported by the assert below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len(refused) == 11 and stores[0].count(code, Q) == 5


def test_tables_can_be_created_by_two_stores_at_once(make_store):
    """Two processes starting together both create the tables without failing (create_all races)."""
    made: list[Store] = []
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def build() -> None:
        try:
            start.wait()
            made.append(make_store())
        except BaseException as exc:  # noqa: BLE001 - reported by the assert below
            errors.append(exc)

    threads = [threading.Thread(target=build) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len(made) == 4
    code, _ = made[0].create_room("full")
    assert all(s.room_exists(code) for s in made)


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(tmp_path):
    """SQLite connections get WAL (readers alongside a writer, across processes), a busy timeout and
    foreign keys, even on an engine made elsewhere (as st.connection makes it)."""
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'w.db'}")
    Store(engine)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == store_module.SQLITE_BUSY_MS
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    Store(engine)  # a second Store on the same engine adds no second listener
    assert sa.event.contains(engine, "connect", store_module._sqlite_on_connect)
    engine.dispose()


def test_from_url_makes_the_sqlite_folder(tmp_path):
    """from_url makes a SQLite file's folder; the app's default file is data/workshop.db in the repository."""
    store = Store.from_url(f"sqlite:///{tmp_path / 'a' / 'b' / 'w.db'}")
    code, _ = store.create_room("full")
    assert (tmp_path / "a" / "b" / "w.db").is_file() and store.room_exists(code)
    store.engine.dispose()
    assert sa.make_url(DEFAULT_URL).database == str(ROOT / "data" / "workshop.db")


def test_engine_url():
    """A bare postgresql:// URL gets the installed psycopg driver; text that is no URL is refused without
    echoing it (it may hold a password)."""
    assert engine_url("postgresql://u@h/db").drivername == "postgresql+psycopg"
    assert engine_url("postgresql+psycopg://u@h/db").drivername == "postgresql+psycopg"
    assert engine_url(None).database == str(ROOT / "data" / "workshop.db")
    with pytest.raises(ValueError, match="not a SQLAlchemy URL") as info:
        engine_url("secret-password-not-a-url")
    assert "secret" not in str(info.value)


@pytest.mark.parametrize(
    ("option", "bad"),
    [("max_answers", 0), ("max_rooms", -1), ("max_answers", 1.5), ("room_ttl_s", 0), ("empty_ttl_s", -1)],
)
def test_bad_limits_are_refused(tmp_path, option, bad):
    """Store refuses limits that would make it refuse everything."""
    with pytest.raises(ValueError, match=option):
        Store(sa.create_engine(f"sqlite:///{tmp_path / 'w.db'}"), **{option: bad})


def test_only_participants_the_room_let_in_can_answer(store):
    """A token the room did not issue (typed into a link, made up in a loop, issued by another room) is
    refused and counts for nothing; the room keeps only the token's hash."""
    code, _ = store.create_room("full")
    other, _ = store.create_room("full")
    token = store.join(code)
    for forged in ("participant-000", "x" * 24, store.join(other)):
        with pytest.raises(PermissionError, match=f"has not joined room {code}"):
            store.submit(code, Q, forged, value=1.0)
    assert store.count(code, Q) == 0
    store.submit(code, Q, token, value=2.0)
    assert store.answers(code, Q) == [2.0]
    assert store.is_participant(code, token) and not store.is_participant(other, token)
    assert not store.is_participant(code, "participant-000") and not store.is_participant(code, None)
    with store.engine.connect() as conn:
        rows = [tuple(r) for t in ("participants", "answers") for r in conn.execute(sa.text(f"select * from {t}"))]
    assert rows and not any(token in str(r) for r in rows)
    assert store.participant_ref(token) == hashlib.sha256(token.encode()).hexdigest()


def test_participants_per_room_are_capped(make_store):
    store = make_store(max_participants=2)
    code, _ = store.create_room("full")
    store.join(code)
    store.join(code)
    with pytest.raises(ValueError, match="already has 2 participants"):
        store.join(code)
    other, _ = store.create_room("full")
    store.join(other)  # another room has its own cap
    with pytest.raises(ValueError, match="no room"):
        store.join("ZZZZZZ" if code != "ZZZZZZ" else "YYYYYY")


def test_the_presenter_removes_one_answer_and_mutes_its_participant(store):
    """Against a flood the presenter removes one participant's answer, not the room's: the others stay, and
    the removed participant's later guesses are refused. Only the presenter's key removes."""
    code, key = store.create_room("full")
    good, bad = who(store, code, 0), who(store, code, 1)
    store.submit(code, Q, good, value=5.0)
    store.submit(code, Q, bad, value=1000.0)
    rows = store.answer_rows(code, Q)
    assert [r[1] for r in rows] == [5.0, 1000.0] and rows[1][0] == store.participant_ref(bad)
    with pytest.raises(PermissionError, match="only the presenter"):
        store.remove(code, "not-the-key", Q, [rows[1][0]])
    assert store.remove(code, key, Q, [rows[1][0], "not-a-ref"]) == 1
    assert store.answers(code, Q) == [5.0]
    with pytest.raises(PermissionError, match="removed your answers"):
        store.submit(code, Q, bad, value=6.0)
    with pytest.raises(PermissionError, match="removed your answers"):
        store.submit(code, "q2", bad, value=6.0)  # muted in the whole room
    store.submit(code, Q, good, value=7.0)  # the others are untouched
    assert store.answers(code, Q) == [7.0]


def test_the_presenter_removes_a_band_of_outliers(store):
    """A flood of 0s and maxima among real guesses: removing everything outside [1, 100] keeps the real
    guesses (both ends inclusive), mutes the flood, and leaves choice questions and other questions alone."""
    code, key = store.create_room("full")
    values = [0.0, 1000.0, 0.0, 1.0, 42.0, 100.0, 1000.0]
    for i, v in enumerate(values):
        store.submit(code, Q, who(store, code, i), value=v)
    store.submit(code, "q2", who(store, code, 0), value=0.0)
    with pytest.raises(ValueError, match="lower end must come first"):
        store.remove_outside(code, key, Q, 100, 1)
    with pytest.raises(ValueError, match="finite"):
        store.remove_outside(code, key, Q, math.nan, 1)
    with pytest.raises(PermissionError, match="only the presenter"):
        store.remove_outside(code, "wrong", Q, 1, 100)
    assert store.remove_outside(code, key, Q, 1, 100) == 4
    assert sorted(store.answers(code, Q)) == [1.0, 42.0, 100.0]
    assert store.answers(code, "q2") == [0.0]  # its answer on another question stays; it is muted from now
    with pytest.raises(PermissionError, match="removed"):
        store.submit(code, Q, who(store, code, 1), value=50.0)
    store.submit(code, Q, who(store, code, 4), value=43.0)


def test_an_expired_room_takes_its_participants_with_it(make_store):
    clock = Clock()
    store = make_store(clock=clock)
    old, _ = store.create_room("full")
    store.join(old)
    clock.now += 48 * 3600 + 1
    store.create_room("full")
    with store.engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from participants")).scalar() == 0
