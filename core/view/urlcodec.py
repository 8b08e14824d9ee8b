"""Link parameters <-> values, for any page: the parsers and serialisers a page's state declares in its fields,
`parse_state` and `dump_state` for any such dataclass, and a config.json carried in a link.

Parsing never raises: unknown keys and bad values are dropped, each with a notice the page shows. Only values
that differ from the defaults go into the link, so links stay short. An uploaded config.json travels in the
link compressed (zlib) and base64url-encoded when it is small; decoding refuses anything that inflates past
1 MiB (no zip bombs).
"""

from __future__ import annotations

import base64
import binascii
import json
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

MAX_LINK_CONFIG_CHARS = 2000  # an encoded config longer than this stays out of the link


class Replaced(ValueError):
    """A link value the page cannot show as it is, replaced by the nearest one it can: parse_state keeps
    `value` and announces the sentence."""

    def __init__(self, value: Any, sentence: str):
        super().__init__(sentence)
        self.value = value


def nearest(value: int, grid, what: str) -> int:
    """`value` if it is on `grid`, else the nearest grid value, announced (Replaced)."""
    options = list(grid)
    if value in options:
        return value
    near = min(options, key=lambda g: (abs(g - value), g))
    raise Replaced(near, f"{what} {value:,} is not offered here; showing the nearest, {near:,}")


@dataclass(frozen=True)
class Param:
    key: str
    parse: Callable[[str], Any]  # raises ValueError with a sentence for the notice
    dump: Callable[[Any], str] = str


def meta(key: str, parse: Callable[[str], Any], dump: Callable[[Any], str] = str) -> dict:
    return {"param": Param(key, parse, dump)}


def _first(v: Any) -> str:
    """The last value of a repeated key (what the browser shows), '' for an empty list."""
    if isinstance(v, list):
        return str(v[-1]) if v else ""
    return str(v)


def int_in(lo: int, hi: int, what: str) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        raw = raw.strip().replace("_", "").replace(",", "")
        if not (raw.isascii() and raw.isdigit()) or len(raw) > 15 or not lo <= int(raw) <= hi:
            raise ValueError(f"{what} in the link must be a whole number from {lo:,} to {hi:,}")
        return int(raw)

    return parse


def float_in(lo: float, hi: float, what: str) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        try:
            v = float(raw)
        except ValueError:
            v = float("nan")
        if not lo <= v <= hi:  # NaN fails too
            raise ValueError(f"{what} in the link must be a number from {lo:g} to {hi:g}")
        return v

    return parse


def choice(options: Callable[[], Any], what: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if raw not in options():
            raise ValueError(f"unknown {what} in the link")
        return raw

    return parse


def choice_int(options: tuple[int, ...], what: str) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        if raw not in {str(o) for o in options}:
            raise ValueError(f"{what} in the link must be one of {', '.join(map(str, options))}")
        return int(raw)

    return parse


def flag(what: str) -> Callable[[str], bool]:
    def parse(raw: str) -> bool:
        if raw not in ("0", "1"):
            raise ValueError(f"{what} in the link must be 0 or 1")
        return raw == "1"

    return parse


def name_list(options: Callable[[], Any], max_n: int, what: str) -> Callable[[str], tuple[str, ...]]:
    def parse(raw: str) -> tuple[str, ...]:
        names = [m for m in raw.split(",") if m][:100]
        known = tuple(dict.fromkeys(m for m in names if m in options()))
        good = known[:max_n]
        if not good:
            raise ValueError(f"no known {what} in the link")
        unknown = [m for m in names if m not in options()]
        said = []
        if unknown:
            more = f" and {len(unknown) - 3} more" if len(unknown) > 3 else ""
            said.append(f"unknown {what} {', '.join(repr(m[:40]) for m in unknown[:3])}{more} left out")
        if len(known) > max_n:
            said.append(f"{len(known)} {what} asked for; showing the first {max_n}, the most this page compares")
        if said:
            raise Replaced(good, "; ".join(said))
        return good

    return parse


def join_names(v: tuple[str, ...]) -> str:
    return ",".join(v)


WORKSHOP_KEYS = ("tour", "step", "room", "me", "present")  # every page's: validated by app_pages/workshop_ui.py


def parse_state(cls: type, params: Mapping[str, Any]):
    """An instance of the state dataclass `cls` from query params; problems become `notices`."""
    notes: list[str] = []
    values: dict[str, Any] = {}
    by_key = {f.metadata["param"].key: f for f in fields(cls) if "param" in f.metadata}
    for k in params:
        if k not in by_key and k not in WORKSHOP_KEYS:
            notes.append(f"ignored unknown link parameter {str(k)[:40]!r}")
    for key, f in by_key.items():
        if key in params:
            try:
                values[f.name] = f.metadata["param"].parse(_first(params[key]))
            except Replaced as e:
                values[f.name] = e.value
                notes.append(str(e))
            except ValueError as e:
                notes.append(str(e))
    return replace(cls(**values), notices=tuple(notes))


def dump_state(state) -> dict[str, str]:
    """Query params for the fields that differ from the defaults."""
    default = type(state)()
    out = {}
    for f in fields(state):
        if "param" in f.metadata and getattr(state, f.name) != getattr(default, f.name):
            out[f.metadata["param"].key] = f.metadata["param"].dump(getattr(state, f.name))
    return out


# ----------------------------------------------------------------------------- config in the link


def encode_config(text: str) -> str:
    """Minified JSON, zlib-compressed, base64url without padding."""

    packed = json.dumps(json.loads(text), separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(zlib.compress(packed, 9)).decode().rstrip("=")


def decode_config(token: str, limit: int = 1 << 20) -> str:
    """Inverse of encode_config; ValueError for anything malformed or inflating past `limit` bytes."""
    if len(token) > 4 * MAX_LINK_CONFIG_CHARS or not token.replace("-", "").replace("_", "").isalnum():
        raise ValueError("the config in the link is not valid")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        d = zlib.decompressobj()
        out = d.decompress(raw, limit + 1)
        if len(out) > limit or d.unconsumed_tail:
            raise ValueError("the config in the link inflates past 1 MiB")
        if not d.eof:
            raise ValueError("the config in the link is cut short")
        return out.decode()
    except (binascii.Error, zlib.error, UnicodeDecodeError):
        raise ValueError("the config in the link is not valid") from None
