"""Formatting at the edge (core/units.py).

Proves that bytes are shown in binary units with the unit named (KiB, MiB, GiB, TiB, never "GB"),
e.g. 10334371840 -> '9.62 GiB', and that the SI (FLOPs) and parameter-count helpers read as model cards
write them.
"""

from __future__ import annotations

import pytest

from core.model.units import fmt_bytes, fmt_params, fmt_si


@pytest.mark.parametrize(
    "n, text",
    [
        (0, "0 B"),
        (1, "1 B"),
        (1023, "1,023 B"),
        (1024, "1 KiB"),
        (1536, "1.5 KiB"),
        (1 << 20, "1 MiB"),
        (10_334_371_840, "9.62 GiB"),  # DeepSeek-V4-Pro at 1M tokens (docs/facts.md section 7)
        (90_060_095_488, "83.9 GiB"),  # DeepSeek-V3.2 at 1M tokens
        (1 << 40, "1 TiB"),
        (1000 * (1 << 30), "0.977 TiB"),  # moves up at 1000 so it never prints "1,024 GiB"
        ((1 << 20) - 1, "1 MiB"),
        (-2048, "-2 KiB"),
    ],
)
def test_fmt_bytes_uses_binary_units(n, text):
    assert fmt_bytes(n) == text


def test_fmt_bytes_is_1024_based_not_1000():
    assert fmt_bytes(10**9) == "954 MiB"  # a decimal GB is less than a GiB
    assert fmt_bytes(80 * 10**9) == "74.5 GiB"  # an "80 GB" GPU
    for n in (10**3, 10**6, 10**9, 10**12, 10**15):
        assert "GB" not in fmt_bytes(n) and "MB" not in fmt_bytes(n) and "kB" not in fmt_bytes(n)


def test_fmt_bytes_digits():
    assert fmt_bytes(10_334_371_840, digits=5) == "9.6246 GiB"


def test_fmt_bytes_accepts_floats_and_huge_values():
    assert fmt_bytes(1536.0) == "1.5 KiB"
    assert fmt_bytes(1 << 60).endswith(" PiB")


@pytest.mark.parametrize(
    "n, unit, text",
    [(6.71e11, "", "671 G"), (6.71e11, "FLOP", "671 GFLOP"), (2.5e15, "FLOP", "2.5 PFLOP"), (12, "", "12")],
)
def test_fmt_si(n, unit, text):
    assert fmt_si(n, unit) == text


@pytest.mark.parametrize(
    "n, text",
    [(70_553_706_496, "70.6B"), (1_600_000_000_000, "1.6T"), (124_439_808, "124M"), (999, "999")],
)
def test_fmt_params(n, text):
    assert fmt_params(n) == text
