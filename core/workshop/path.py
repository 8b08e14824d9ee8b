"""The guided paths and their questions, kept as data (assets/workshop/), and how a guess is judged.

A path is a list of steps; each step opens a page with a view (that page's own URL parameters), says what to
look at, asks one question, and ends with a takeaway that quotes the engine's answer (`{answer}`). Questions
name their answer function in core.workshop.answers, so every revealed number is computed, never typed in.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from core.view.glossary import PAGES as ALL_PAGES
from core.workshop.answers import ANSWERS, Answer

ASSETS = Path(__file__).resolve().parents[2] / "assets" / "workshop"
PAGES = tuple(p for p in ALL_PAGES if p not in ("workshop", "glossary", "review"))  # the lessons a question can be on
KINDS = ("number", "choice")
ID = re.compile(r"^[a-z0-9_.-]{1,64}$")


@dataclass(frozen=True)
class Question:
    id: str
    page: str
    answer: str  # key of core.workshop.answers.ANSWERS
    kind: str  # "number" or "choice"
    prompt: str
    unit: str = ""
    min: float = 0.0
    max: float = 0.0
    step: float = 1.0
    choices: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        where = f"question {self.id!r}"
        if not ID.match(self.id):
            raise ValueError(f"{where}: an id is 1-64 characters of a-z, 0-9, '_', '.', '-'.")
        if self.page not in PAGES:
            raise ValueError(f"{where}: unknown page {self.page!r}; pages are {', '.join(PAGES)}.")
        if self.answer not in ANSWERS:
            raise ValueError(f"{where}: no answer function {self.answer!r} in core.workshop.answers.")
        if self.kind not in KINDS:
            raise ValueError(f"{where}: kind must be 'number' or 'choice', not {self.kind!r}.")
        if self.kind == "number" and not (self.min < self.max and self.step > 0):
            raise ValueError(f"{where}: a number question needs min < max and a positive step.")
        if self.kind == "choice" and (len(self.choices) < 2 or len(set(self.choices)) != len(self.choices)):
            raise ValueError(f"{where}: a choice question needs at least two distinct choices.")


@dataclass(frozen=True)
class Step:
    title: str
    page: str
    view: dict  # the page's own URL parameters (strings)
    look: str  # what to look at
    question: str  # a Question id
    takeaway: str  # may quote the engine's answer as {answer}


@dataclass(frozen=True)
class Path_:
    id: str
    title: str
    minutes: int
    audience: str
    steps: tuple[Step, ...]


@cache
def questions() -> dict[str, Question]:
    raw = json.loads((ASSETS / "questions.json").read_text())["questions"]
    out: dict[str, Question] = {}
    for q in raw:
        question = Question(**{**q, "choices": tuple(q.get("choices", ()))})
        if question.id in out:
            raise ValueError(f"question {question.id!r} is defined twice.")
        out[question.id] = question
    return out


@cache
def paths() -> dict[str, Path_]:
    raw = json.loads((ASSETS / "paths.json").read_text())["paths"]
    qs = questions()
    out: dict[str, Path_] = {}
    for p in raw:
        steps = tuple(Step(**s) for s in p["steps"])
        for i, s in enumerate(steps, 1):
            where = f"path {p['id']!r} step {i}"
            if s.question not in qs:
                raise ValueError(f"{where}: unknown question {s.question!r}.")
            if qs[s.question].page != s.page:
                raise ValueError(f"{where}: question {s.question!r} belongs to page {qs[s.question].page!r}.")
            if set(re.findall(r"{(\w*)}", s.takeaway)) - {"answer"}:
                raise ValueError(f"{where}: a takeaway may quote only {{answer}}.")
            if not all(isinstance(k, str) and isinstance(v, str) for k, v in s.view.items()):
                raise ValueError(f"{where}: a view maps URL parameter names to strings.")
        out[p["id"]] = Path_(p["id"], p["title"], int(p["minutes"]), p["audience"], steps)
    return out


@cache
def answer(question_id: str) -> Answer:
    """The engine's answer to a question (computed once per process)."""
    q = questions()[question_id]
    a = ANSWERS[q.answer]()
    if q.kind == "number" and not (a.value is not None and q.min <= a.value <= q.max):
        raise ValueError(f"question {q.id!r}: the engine's answer {a.value} is outside the input range.")
    if q.kind == "choice" and a.choice not in q.choices:
        raise ValueError(f"question {q.id!r}: the engine's answer {a.choice!r} is not one of its choices.")
    return a


def takeaway(step: Step) -> str:
    return step.takeaway.replace("{answer}", answer(step.question).shown)


def page_question(page: str) -> Question | None:
    """The page's own "Ask first" question: the first question asked on it."""
    return next((q for q in questions().values() if q.page == page), None)


def verdict(q: Question, truth: Answer, guess: float | str) -> str:
    """How far a guess was, in words: a ratio for numbers (off by a factor reads better than a difference
    when guesses span orders of magnitude), right or wrong for choices. Total over every finite number: 0,
    subnormals, negatives and ratios past 1,000x get a sentence, never an exception or a 300-digit number;
    anything that is not a finite number is a ValueError that says so."""
    if q.kind == "choice":
        return "Right." if guess == truth.choice else f"Not quite: the answer is {truth.choice}."
    try:
        g = float(guess)
    except (TypeError, ValueError, OverflowError):
        raise ValueError("a guess must be a number.") from None
    if not math.isfinite(g):
        raise ValueError("a guess must be a finite number.")
    t = float(truth.value)
    if g == t:
        return "Exactly right."
    if t == 0 or g == 0 or (g < 0) != (t < 0):  # no ratio: say the distance
        return f"Off by {_amount(abs(g - t))} {q.unit}."
    rel = abs(g - t) / abs(t)  # finite: |g - t| and |t| are finite and |t| > 0, but it may overflow to inf
    if rel <= 0.1:
        return f"Within {100 * rel:.0f}% of the engine's answer."
    log_ratio = math.log10(abs(g)) - math.log10(abs(t))  # logs: a subnormal guess does not overflow 1 / ratio
    if log_ratio > 3:
        return "More than 1,000x the answer: too high."
    if log_ratio < -3:
        return "More than 1,000x below the answer: too low."
    ratio = 10**log_ratio
    return f"{ratio:.2f}x the answer: too high." if ratio > 1 else f"{1 / ratio:.2f}x below the answer: too low."


def _amount(x: float) -> str:
    """A distance in at most a few characters: 3, 0.25, 1.5e+12, or 'more than 1e+300' past that."""
    return "more than 1e+300" if not math.isfinite(x) or x > 1e300 else f"{x:.3g}"
