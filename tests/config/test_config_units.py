"""Durations and sizes: parsing, canonical form, round trips (hypothesis)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hamod.config import Duration, Rate, Size, UnitError


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("700ms", 0.7),
        ("30s", 30.0),
        ("1.5s", 1.5),
        ("5m", 300.0),
        ("24h", 86400.0),
        ("7d", 604800.0),
        ("0", 0.0),
        (0, 0.0),
        ("0s", 0.0),
        (" 10s ", 10.0),
    ],
)
def test_duration_parse(text: str | int, seconds: float) -> None:
    assert Duration.parse(text) == seconds


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.7, "700ms"),
        (30.0, "30s"),
        (90.0, "90s"),
        (300.0, "5m"),
        (86400.0, "24h"),
        (1.4, "1.4s"),
        (0.0, "0s"),
        (3600.5, "3600.5s"),
    ],
)
def test_duration_str(seconds: float, text: str) -> None:
    assert str(Duration(seconds)) == text
    assert repr(Duration(seconds)) == f"Duration('{text}')"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("-1s", "duration must not be negative"),
        (-3, "duration must not be negative"),
        ("30", "duration needs a unit (ms, s, m, h, d), e.g. '30s'"),
        (30, "duration needs a unit (ms, s, m, h, d), e.g. '30s'"),
        ("30 seconds", "unknown duration unit 'seconds'; use ms, s, m, h or d"),
        ("abc", "not a duration; write a number and a unit, e.g. '30s'"),
        ("1.0005s", "durations are counted in whole milliseconds"),
        ("", "not a duration; write a number and a unit, e.g. '30s'"),
    ],
)
def test_duration_errors(text: str | int, message: str) -> None:
    with pytest.raises(UnitError) as info:
        Duration.parse(text)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("4096", 4096),
        (4096, 4096),
        ("512KiB", 512 * 1024),
        ("8MiB", 8 << 20),
        ("1GiB", 1 << 30),
        ("1TiB", 1 << 40),
        ("1MB", 10**6),
        ("1kB", 1000),
        ("1.5KiB", 1536),
        ("0", 0),
        ("10B", 10),
    ],
)
def test_size_parse(text: str | int, size: int) -> None:
    assert Size.parse(text) == size


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("-1MiB", "size must not be negative"),
        (-1, "size must not be negative"),
        ("1XB", "unknown size unit 'XB'; use B, KiB, MiB, GiB, TiB, kB, MB, GB or TB"),
        ("0.3B", "size must come to a whole number of bytes"),
        ("lots", "not a size; write a number and a unit, e.g. '8MiB'"),
    ],
)
def test_size_errors(text: str | int, message: str) -> None:
    with pytest.raises(UnitError) as info:
        Size.parse(text)
    assert str(info.value) == message


def test_size_and_rate_str() -> None:
    assert str(Size(8 << 20)) == "8MiB"
    assert str(Size(1536)) == "1536"
    assert str(Size(0)) == "0"
    assert str(Rate.parse("100MiB/s")) == "100MiB/s"
    assert Rate.parse("100MiB") == 100 << 20


def test_bool_is_not_a_duration_or_size() -> None:
    with pytest.raises(UnitError):
        Duration.parse(True)
    with pytest.raises(UnitError):
        Size.parse(False)


@given(st.integers(min_value=0, max_value=10**12))
def test_duration_round_trip(ms: int) -> None:
    value = Duration.from_ms(ms)
    assert Duration.parse(str(value)) == value
    assert Duration.parse(str(value)).ms == ms


@given(
    st.integers(min_value=0, max_value=10**6),
    st.sampled_from(["ms", "s", "m", "h", "d"]),
)
def test_duration_written_forms(number: int, unit: str) -> None:
    factor = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}[unit]
    assert Duration.parse(f"{number}{unit}").ms == number * factor


@given(st.integers(min_value=0, max_value=1 << 50))
def test_size_round_trip(size: int) -> None:
    assert Size.parse(str(Size(size))) == size
    assert Rate.parse(str(Rate(size))) == size


@given(
    st.integers(min_value=0, max_value=10**6),
    st.sampled_from(["", "B", "KiB", "MiB", "GiB", "kB", "MB", "GB"]),
)
def test_size_written_forms(number: int, unit: str) -> None:
    factor = {
        "": 1,
        "B": 1,
        "KiB": 1024,
        "MiB": 1 << 20,
        "GiB": 1 << 30,
        "kB": 1000,
        "MB": 10**6,
        "GB": 10**9,
    }[unit]
    assert Size.parse(f"{number}{unit}") == number * factor
