"""Formatting at the edge: binary units for bytes (KiB, MiB, GiB, TiB), named explicitly."""

from __future__ import annotations

_BIN = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def fmt_bytes(n: float, digits: int = 3) -> str:
    """1024-based, with the unit named: 10334371840 -> '9.62 GiB'. A value moves to the next unit at
    1000 so that it never prints as "1,024 KiB" (1000 KiB -> "0.977 MiB"); bytes stay whole up to 1,023 B."""
    n = float(n)
    for unit in _BIN:
        if unit == "B" and abs(n) < 1024:
            return f"{int(n):,} B"
        if abs(round(n, 3)) < 1000 or unit == _BIN[-1]:
            return f"{n:.{digits}g} {unit}" if abs(n) < 1000 else f"{n:,.0f} {unit}"
        n /= 1024
    raise AssertionError


def fmt_si(n: float, unit: str = "", digits: int = 3) -> str:
    """1000-based for counts and FLOPs: 6.71e11 -> '671 G'."""
    for scale, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= scale:
            return f"{n / scale:.{digits}g} {prefix}{unit}"
    return f"{n:.{digits}g} {unit}".rstrip()


def fmt_params(n: int) -> str:
    """Parameter counts the way model cards write them: 70.6B, 1.6T, 124M."""
    for scale, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if n >= scale:
            return f"{n / scale:.3g}{suffix}"
    return str(n)


def truncate(text: str, limit: int) -> str:
    """At most `limit` characters of `text`, then "(... N more characters)": how a value from a stranger
    (a config field, a link) is cut before any message shows it."""
    more = len(text) - limit
    return text if more <= 0 else f"{text[:limit]} (... {more:,} more characters)"
