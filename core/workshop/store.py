"""The room's predictions: participants who joined one session code (a "room") submit a guess per question,
and the presenter reads every guess back. SQLAlchemy 2.x Core only, so the same statements run on SQLite (one
file, the default: one command still runs everything) and on PostgreSQL (several app servers); the page hands
in the engine of its `st.connection`.

Nothing personal is kept: a room is its random code, creation time, guided path and a SHA-256 of the presenter
key (never the key); a participant is a SHA-256 of the random token the server issued when they joined (never
the token), the time they joined and whether the presenter muted them; an answer is that participant's hash, a
number or a choice, and a timestamp; a reveal is a question's id and the time the presenter showed its answer
(guesses on it close then).

Only participants the server let in can answer: `join` issues a random token and keeps its hash, and `submit`
refuses a token it did not issue (an id typed into a link counts for nothing). The presenter can remove one
participant's answer, or every guess outside a band, without clearing the room; those participants are muted
(their later guesses are refused).

Strangers cannot grow it without bound: at most `max_participants` participants per room and `max_answers`
per (room, question), rooms are deleted `room_ttl_s` (48 hours) after they were made, or `empty_ttl_s` (2
hours) when nobody answered in them, at most `max_rooms` rooms exist (and the page limits how many rooms, and
how many participants, one visitor starts).

Several processes share one database (two app replicas behind nginx share the SQLite file). SQLite runs in WAL
mode with a busy timeout, and every writing transaction starts with a write, so it waits for the lock instead
of failing (a deferred transaction that read first could not be upgraded while another process writes). On
PostgreSQL a new answer locks its room's row first, which makes the per-question cap exact under concurrency.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import numbers
import re
import secrets
import time
import unicodedata
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa

__all__ = [
    "ALPHABET",
    "DEFAULT_URL",
    "Store",
    "engine_url",
    "new_code",
    "normalise_code",
]

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_URL = "sqlite:///" + str(ROOT / "data" / "workshop.db")

ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"  # no I, L, O, 0, 1: a code read aloud is typed right
CODE_LENGTH = 6  # 31**6, about 8.9e8 codes
CODE_DRAWS = 20  # draws before giving up on a free code (a collision is already rare at 5,000 rooms)
MAX_VALUE = 1e15
MAX_CHOICE = 200
MAX_PATH = 64
MAX_KEY = 128  # a presenter key is 22 characters; longer input is not a key
MAX_CODE_INPUT = 64  # characters of a typed room code looked at before refusing it
SQLITE_BUSY_MS = 10_000  # how long a SQLite writer waits for another process's write lock

_CODE = re.compile(r"[A-Z2-9]{6}")
_PARTICIPANT = re.compile(r"[A-Za-z0-9_-]{8,64}")
_QUESTION = re.compile(r"[a-z0-9_.-]{1,64}")

metadata = sa.MetaData()
rooms = sa.Table(
    "rooms",
    metadata,
    sa.Column("code", sa.String(CODE_LENGTH), primary_key=True),
    sa.Column("created_at", sa.Float, nullable=False, index=True),
    sa.Column("host_hash", sa.String(64), nullable=False),  # hex SHA-256 of the presenter key
    sa.Column("path", sa.String(MAX_PATH), nullable=False),
)
answers = sa.Table(
    "answers",
    metadata,
    sa.Column("room", sa.String(CODE_LENGTH), sa.ForeignKey("rooms.code", ondelete="CASCADE"), primary_key=True),
    sa.Column("question", sa.String(64), primary_key=True),
    sa.Column("participant", sa.String(64), primary_key=True),
    sa.Column("value", sa.Float, nullable=True),
    sa.Column("choice", sa.String(MAX_CHOICE), nullable=True),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.CheckConstraint("(value IS NULL) <> (choice IS NULL)", name="answers_one_of_value_choice"),
)
participants = sa.Table(  # who the server let into a room: the hash of the token it issued, never the token
    "participants",
    metadata,
    sa.Column("room", sa.String(CODE_LENGTH), sa.ForeignKey("rooms.code", ondelete="CASCADE"), primary_key=True),
    sa.Column("participant", sa.String(64), primary_key=True),  # hex SHA-256 of the participant's token
    sa.Column("joined_at", sa.Float, nullable=False),
    sa.Column("muted", sa.Boolean, nullable=False, default=False),
)
reveals = sa.Table(  # questions whose answer the presenter has shown the room: guesses on them are closed
    "reveals",
    metadata,
    sa.Column("room", sa.String(CODE_LENGTH), sa.ForeignKey("rooms.code", ondelete="CASCADE"), primary_key=True),
    sa.Column("question", sa.String(64), primary_key=True),
    sa.Column("revealed_at", sa.Float, nullable=False),
)


def new_code() -> str:
    """A random room code: CODE_LENGTH characters of ALPHABET from the `secrets` generator."""
    return "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))


def normalise_code(code: object) -> str:
    """`code` as stored: surrounding spaces dropped, upper case; ValueError unless it is 6 of A-Z and 2-9."""
    if not isinstance(code, str) or len(code) > MAX_CODE_INPUT:
        raise ValueError("a room code is 6 letters and digits (A-Z, 2-9), like K7QH2M")
    norm = code.strip().upper()
    if not _CODE.fullmatch(norm):
        raise ValueError("a room code is 6 letters and digits (A-Z, 2-9), like K7QH2M")
    return norm


def engine_url(url: str | None = None) -> sa.URL:
    """The URL `Store.from_url` connects to: DEFAULT_URL for None; a bare `postgresql://` gets the psycopg
    driver (the one installed). ValueError for text that is not a database URL (the URL is not echoed: it
    may hold a password)."""
    try:
        parsed = sa.make_url(DEFAULT_URL if url is None else url)
    except (sa.exc.ArgumentError, TypeError, ValueError):
        raise ValueError(
            "the workshop database URL is not a SQLAlchemy URL "
            "(like sqlite:///data/workshop.db or postgresql+psycopg://user@host/dbname)"
        ) from None
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def _sqlite_on_connect(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_MS}")  # first: the next pragma may wait for a lock
    cursor.execute("PRAGMA journal_mode = WAL")  # readers and one writer at once, across processes
    cursor.execute("PRAGMA synchronous = NORMAL")  # safe with WAL; a power cut may lose the last answers only
    cursor.execute("PRAGMA foreign_keys = ON")  # deleting a room deletes its answers
    cursor.close()


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _no_control(text: str) -> bool:
    """No control characters (NUL, tabs, line breaks) and no lone surrogates (PostgreSQL refuses both)."""
    return not any(unicodedata.category(ch) in ("Cc", "Cs") for ch in text)


def _check_participant(participant: object) -> str:
    if not isinstance(participant, str) or not _PARTICIPANT.fullmatch(participant):
        raise ValueError("a participant id is 8-64 letters, digits, '_' or '-'")
    return participant


def _check_question(question: object) -> str:
    if not isinstance(question, str) or not _QUESTION.fullmatch(question):
        raise ValueError("a question id is 1-64 lower-case letters, digits, '_', '.' or '-'")
    return question


def _check_path(path: object) -> str:
    if not isinstance(path, str) or not path.strip():
        raise ValueError("a room needs the name of its guided path")
    if len(path) > MAX_PATH:
        raise ValueError(f"a guided path name is at most {MAX_PATH} characters; this one has {len(path)}")
    if not _no_control(path):
        raise ValueError("a guided path name cannot hold control characters")
    return path


def _check_answer(value: object, choice: object) -> tuple[float | None, str | None]:
    if (value is None) == (choice is None):
        raise ValueError("give exactly one answer: a number (value) or a choice, not both and not neither")
    if value is not None:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ValueError(f"a numeric answer must be a number, not {type(value).__name__}")
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if not math.isfinite(number):
            raise ValueError("a numeric answer must be a finite number (not NaN or infinity)")
        if abs(number) > MAX_VALUE:
            raise ValueError(f"a numeric answer must lie within +-{MAX_VALUE:.0e}; got {number:.3g}")
        return number, None
    if not isinstance(choice, str):
        raise ValueError(f"a choice must be text, not {type(choice).__name__}")
    if not choice.strip():
        raise ValueError("the choice is empty")
    if len(choice) > MAX_CHOICE:
        raise ValueError(f"a choice is at most {MAX_CHOICE} characters; this one has {len(choice)}")
    if not _no_control(choice):
        raise ValueError("a choice cannot hold control characters (line breaks, tabs, NUL)")
    return None, choice


class Store:
    """The rooms and their answers in one SQL database, reached through a SQLAlchemy `engine`.

    Every method validates its arguments and raises ValueError with a sentence a user can act on (a wrong
    presenter key raises PermissionError). `clock` gives the time in seconds (injected by tests); the limits
    are arguments so a test can make them small.
    """

    def __init__(
        self,
        engine: sa.Engine,
        *,
        clock: Callable[[], float] = time.time,
        max_answers: int = 2_000,
        max_participants: int = 2_000,
        max_rooms: int = 5_000,
        room_ttl_s: float = 48 * 3600,
        empty_ttl_s: float = 2 * 3600,
    ) -> None:
        if not isinstance(engine, sa.Engine):
            raise TypeError(f"Store needs a SQLAlchemy Engine, not {type(engine).__name__}")
        limits = {"max_answers": max_answers, "max_participants": max_participants, "max_rooms": max_rooms}
        for name, limit in limits.items():
            if not isinstance(limit, int) or limit < 1:
                raise ValueError(f"{name} must be a whole number of at least 1, not {limit!r}")
        for name, ttl in (("room_ttl_s", room_ttl_s), ("empty_ttl_s", empty_ttl_s)):
            if not ttl > 0:
                raise ValueError(f"{name} must be positive, not {ttl!r}")
        if engine.dialect.name == "sqlite" and not sa.event.contains(engine, "connect", _sqlite_on_connect):
            sa.event.listen(engine, "connect", _sqlite_on_connect)
            engine.dispose()  # connections pooled before the listener lack the pragmas
        self.engine = engine
        self._clock = clock
        self.max_answers = max_answers
        self.max_participants = max_participants
        self.max_rooms = max_rooms
        self.room_ttl_s = room_ttl_s
        self.empty_ttl_s = min(empty_ttl_s, room_ttl_s)
        self._create_tables()

    @classmethod
    def from_url(cls, url: str | None = None, **options) -> Store:
        """A Store on a new engine for `url` (see `engine_url`; None is the SQLite file data/workshop.db under
        the repository root). The folder of a SQLite file is made if missing. `options` go to Store()."""
        parsed = engine_url(url)
        if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        return cls(sa.create_engine(parsed, pool_pre_ping=True), **options)

    def _create_tables(self) -> None:
        # create_all checks, then creates: a second process between the two makes our CREATE fail with
        # "already exists" (PostgreSQL: a duplicate-key error); checking again then finds the tables. Each
        # table (and index) can be lost to another process once, so one try each, and a few more.
        attempts = 2 * (len(metadata.tables) + sum(len(t.indexes) for t in metadata.tables.values())) + 3
        for attempt in range(attempts):
            try:
                metadata.create_all(self.engine)
                return
            except sa.exc.DBAPIError:
                if attempt == attempts - 1:
                    raise

    # Rooms

    def create_room(self, path: str) -> tuple[str, str]:
        """A new room for guided path `path`: (its code, the presenter key). Only the key's hash is stored, so
        the key is shown once, to the presenter. Rooms older than room_ttl_s go first; ValueError when
        max_rooms remain."""
        path = _check_path(path)
        key = secrets.token_urlsafe(16)
        for _ in range(CODE_DRAWS):
            code = new_code()
            now = self._clock()
            try:
                with self.engine.begin() as conn:
                    self._expire(conn, now)  # a write first: see the module docstring
                    held = conn.scalar(sa.select(sa.func.count()).select_from(rooms))
                    if held >= self.max_rooms:
                        hours = self.room_ttl_s / 3600
                        raise ValueError(
                            f"the server already holds {self.max_rooms} workshop rooms, its limit; rooms are "
                            f"deleted {hours:g} hours after they were made, so try again later"
                        )
                    if conn.scalar(sa.select(rooms.c.code).where(rooms.c.code == code)) is not None:
                        continue
                    conn.execute(rooms.insert().values(code=code, created_at=now, host_hash=_hash(key), path=path))
                return code, key
            except sa.exc.IntegrityError:
                continue  # another process took the same code at the same moment
        raise RuntimeError(f"no free room code after {CODE_DRAWS} random draws")

    def _expire(self, conn: sa.Connection, now: float) -> None:
        """Delete rooms older than room_ttl_s, and those older than empty_ttl_s that nobody answered in (a
        room started and abandoned, or made in a loop to fill the server, goes within hours, not days)."""
        answered = sa.select(answers.c.room)
        gone = (rooms.c.created_at < now - self.room_ttl_s) | (
            (rooms.c.created_at < now - self.empty_ttl_s) & rooms.c.code.not_in(answered)
        )
        old = sa.select(rooms.c.code).where(gone)
        conn.execute(answers.delete().where(answers.c.room.in_(old)))  # also where foreign keys are off
        conn.execute(reveals.delete().where(reveals.c.room.in_(old)))
        conn.execute(participants.delete().where(participants.c.room.in_(old)))
        conn.execute(rooms.delete().where(gone))

    def room_exists(self, code: str) -> bool:
        """Whether room `code` exists (ValueError for text that cannot be a code)."""
        return self.room_path(code) is not None

    def room_path(self, code: str) -> str | None:
        """The guided path room `code` was made for; None if there is no such room."""
        code = normalise_code(code)
        with self.engine.connect() as conn:
            return conn.scalar(sa.select(rooms.c.path).where(rooms.c.code == code))

    def is_host(self, code: str, host_key: str) -> bool:
        """Whether `host_key` is the presenter key of room `code` (False for an unknown room or a non-key)."""
        code = normalise_code(code)
        if not isinstance(host_key, str) or not 0 < len(host_key) <= MAX_KEY:
            return False
        with self.engine.connect() as conn:
            stored = conn.scalar(sa.select(rooms.c.host_hash).where(rooms.c.code == code))
        return stored is not None and hmac.compare_digest(stored, _hash(host_key))

    def _require_room(self, conn: sa.Connection, code: str, lock: bool = False) -> None:
        query = sa.select(rooms.c.code).where(rooms.c.code == code)
        if conn.scalar(query.with_for_update() if lock else query) is None:
            hours = self.room_ttl_s / 3600
            raise ValueError(f"no room {code}: check the code; rooms are deleted {hours:g} hours after they start")

    # Participants

    def join(self, code: str) -> str:
        """Let a new participant into room `code`: a random token, of which only the hash is kept. The token is
        what `submit` asks for, so only the server makes participants. ValueError for no such room, or once
        max_participants have joined it."""
        code = normalise_code(code)
        token = secrets.token_urlsafe(18)
        with self.engine.begin() as conn:
            self._require_room(conn, code, lock=True)
            held = conn.scalar(sa.select(sa.func.count()).select_from(participants).where(participants.c.room == code))
            if held >= self.max_participants:
                raise ValueError(f"room {code} already has {self.max_participants} participants, its limit")
            conn.execute(
                participants.insert().values(room=code, participant=_hash(token), joined_at=self._clock(), muted=False)
            )
        return token

    def is_participant(self, code: str, token: str) -> bool:
        """Whether `token` is one this room issued (muted or not); False for anything else."""
        code = normalise_code(code)
        if not isinstance(token, str) or not _PARTICIPANT.fullmatch(token):
            return False
        where = (participants.c.room == code) & (participants.c.participant == _hash(token))
        with self.engine.connect() as conn:
            return conn.scalar(sa.select(participants.c.room).where(where)) is not None

    def participant_ref(self, token: str) -> str:
        """The participant's public name in this store (the hash the answers carry): what the presenter's
        `remove` takes."""
        return _hash(_check_participant(token))

    # Answers

    def submit(
        self, code: str, question: str, participant: str, value: float | None = None, choice: str | None = None
    ) -> None:
        """Store the answer of `participant` (the token `join` issued) to `question` in room `code`: a number
        (`value`) or a `choice`, exactly one. Resubmitting replaces the earlier answer. Refused with
        PermissionError for a token this room did not issue, a participant the presenter muted, and once the
        presenter has revealed the answer; with ValueError for a new answer once max_answers participants have
        answered this question in this room."""
        code = normalise_code(code)
        question = _check_question(question)
        participant = _hash(_check_participant(participant))
        value, choice = _check_answer(value, choice)
        who = (participants.c.room == code) & (participants.c.participant == participant)
        key = (answers.c.room == code) & (answers.c.question == question) & (answers.c.participant == participant)
        for _ in range(3):
            fields = dict(value=value, choice=choice, updated_at=self._clock())
            try:
                with self.engine.begin() as conn:
                    # Portable upsert: update, else insert; a concurrent insert of the same key makes ours fail
                    # with IntegrityError, and the next round's update then finds the row. The update is the
                    # transaction's first statement (a write first: see the module docstring); a refusal below
                    # raises, which rolls it back.
                    updated = conn.execute(answers.update().where(key).values(**fields)).rowcount
                    if self._revealed(conn, code, question):
                        raise PermissionError("the presenter has revealed the answer: guesses on it are closed")
                    muted = conn.scalar(sa.select(participants.c.muted).where(who))
                    if muted is None:
                        self._require_room(conn, code)  # a room that expired says so
                        raise PermissionError(f"this browser has not joined room {code}: join it first")
                    if muted:
                        raise PermissionError("the presenter removed your answers in this room; guesses are closed")
                    if updated:
                        return
                    self._require_room(conn, code, lock=True)
                    held = conn.scalar(
                        sa.select(sa.func.count())
                        .select_from(answers)
                        .where((answers.c.room == code) & (answers.c.question == question))
                    )
                    if held >= self.max_answers:
                        raise ValueError(
                            f"room {code} already has {self.max_answers} answers to this question, its limit; "
                            "those who answered can still change theirs"
                        )
                    conn.execute(
                        answers.insert().values(room=code, question=question, participant=participant, **fields)
                    )
                return
            except sa.exc.IntegrityError:
                continue
        raise RuntimeError(f"could not store the answer to {question} in room {code}; please submit again")

    def answers(self, code: str, question: str) -> list[float | str]:
        """Every answer to `question` in room `code`: numbers for numeric questions, choices otherwise,
        oldest first."""
        code = normalise_code(code)
        question = _check_question(question)
        with self.engine.connect() as conn:
            self._require_room(conn, code)
            rows = conn.execute(
                sa.select(answers.c.value, answers.c.choice)
                .where((answers.c.room == code) & (answers.c.question == question))
                .order_by(answers.c.updated_at, answers.c.participant)
            ).all()
        return [row.choice if row.value is None else row.value for row in rows]

    def count(self, code: str, question: str) -> int:
        """How many participants answered `question` in room `code`."""
        code = normalise_code(code)
        question = _check_question(question)
        with self.engine.connect() as conn:
            self._require_room(conn, code)
            return conn.scalar(
                sa.select(sa.func.count())
                .select_from(answers)
                .where((answers.c.room == code) & (answers.c.question == question))
            )

    def _revealed(self, conn: sa.Connection, code: str, question: str) -> bool:
        where = (reveals.c.room == code) & (reveals.c.question == question)
        return conn.scalar(sa.select(reveals.c.room).where(where)) is not None

    def revealed(self, code: str, question: str) -> bool:
        """Whether the presenter of room `code` has revealed the answer to `question` (False for no room)."""
        code = normalise_code(code)
        question = _check_question(question)
        with self.engine.connect() as conn:
            return self._revealed(conn, code, question)

    def reveal(self, code: str, host_key: str, question: str) -> None:
        """Show the room the answer to `question`: participants see it, and guesses on it close. The presenter
        only (PermissionError otherwise); revealing twice is revealing once."""
        code = normalise_code(code)
        question = _check_question(question)
        if not self.is_host(code, host_key):
            raise PermissionError(f"only the presenter of room {code} can reveal its answers: the key does not match")
        try:
            with self.engine.begin() as conn:
                if not self._revealed(conn, code, question):
                    conn.execute(reveals.insert().values(room=code, question=question, revealed_at=self._clock()))
        except sa.exc.IntegrityError:
            pass  # revealed at the same moment by the presenter's other tab

    def reset(self, code: str, host_key: str, question: str | None = None) -> int:
        """Delete room `code`'s answers to `question` (every question when None), and close its reveal so it
        can be asked again blind; the presenter only: PermissionError unless `host_key` is the room's key.
        Returns how many answers were deleted."""
        code = normalise_code(code)
        if question is not None:
            question = _check_question(question)
        with self.engine.connect() as conn:
            self._require_room(conn, code)
        if not self.is_host(code, host_key):
            raise PermissionError(f"only the presenter of room {code} can reset its answers: the key does not match")
        where, shown = answers.c.room == code, reveals.c.room == code
        if question is not None:
            where &= answers.c.question == question
            shown &= reveals.c.question == question
        with self.engine.begin() as conn:
            conn.execute(reveals.delete().where(shown))  # a cleared question is asked afresh, blind again
            return conn.execute(answers.delete().where(where)).rowcount

    # The presenter's remedies against a flood, short of clearing the room

    def answer_rows(self, code: str, question: str) -> list[tuple[str, float | str, float]]:
        """Every answer to `question` in room `code` as (participant ref, answer, time), oldest first: what the
        presenter picks from to remove one participant's answer."""
        code = normalise_code(code)
        question = _check_question(question)
        with self.engine.connect() as conn:
            self._require_room(conn, code)
            rows = conn.execute(
                sa.select(answers.c.participant, answers.c.value, answers.c.choice, answers.c.updated_at)
                .where((answers.c.room == code) & (answers.c.question == question))
                .order_by(answers.c.updated_at, answers.c.participant)
            ).all()
        return [(r.participant, r.choice if r.value is None else r.value, r.updated_at) for r in rows]

    def remove(self, code: str, host_key: str, question: str, refs: list[str]) -> int:
        """Delete the answers to `question` of the participants `refs` (from `answer_rows`) and mute them in
        this room (their later guesses are refused); the presenter only. Returns how many answers went."""
        code = normalise_code(code)
        question = _check_question(question)
        refs = [r for r in refs if isinstance(r, str) and len(r) == 64]
        return self._remove(code, host_key, question, answers.c.participant.in_(refs))

    def remove_outside(self, code: str, host_key: str, question: str, low: float, high: float) -> int:
        """Delete every numeric answer to `question` below `low` or above `high` (a band of outliers, a flood of
        0s and maxima) and mute those who gave them; the presenter only. Returns how many answers went."""
        code = normalise_code(code)
        question = _check_question(question)
        low, _ = _check_answer(low, None)
        high, _ = _check_answer(high, None)
        if low > high:
            raise ValueError(f"the band to keep runs from {low:g} up to {high:g}: the lower end must come first")
        return self._remove(code, host_key, question, (answers.c.value < low) | (answers.c.value > high))

    def _remove(self, code: str, host_key: str, question: str, which) -> int:
        if not self.is_host(code, host_key):
            raise PermissionError(f"only the presenter of room {code} can remove answers: the key does not match")
        where = (answers.c.room == code) & (answers.c.question == question) & which
        with self.engine.begin() as conn:
            refs = sa.select(answers.c.participant).where(where)
            conn.execute(  # a write first; mute, then delete (the mute reads the answers being deleted)
                participants.update()
                .where((participants.c.room == code) & participants.c.participant.in_(refs))
                .values(muted=True)
            )
            return conn.execute(answers.delete().where(where)).rowcount
