"""Durations and sizes as users write them (``700ms``, ``30s``, ``8MiB``), parsed once.

:class:`Duration` is a ``float`` of seconds with a 1 ms resolution, :class:`Size` an
``int`` of bytes, :class:`Rate` a :class:`Size` per second. They behave as numbers in
code, print in their canonical written form (``str(Duration(0.7)) == '700ms'``), dump to
JSON as that form, and parse back to the same value: format → parse is the identity.

Only this module knows the grammar; the pydantic field types ``DurationField``,
``SizeField`` and ``RateField`` wrap it so errors come out as clear ``Problem`` messages.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Annotated, Final

from pydantic import PlainSerializer, PlainValidator, WithJsonSchema
from pydantic_core import PydanticCustomError

from hamod.config.types import DocType

__all__ = [
    "Duration",
    "DurationField",
    "Rate",
    "RateField",
    "Size",
    "SizeField",
    "UnitError",
]


class UnitError(ValueError):
    """A duration or size could not be parsed; the message is meant for users."""


_DURATION_UNITS: Final = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_SIZE_UNITS: Final = {
    "": 1,
    "B": 1,
    "KiB": 1 << 10,
    "MiB": 1 << 20,
    "GiB": 1 << 30,
    "TiB": 1 << 40,
    "kB": 1000,
    "KB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
    "TB": 1000**4,
}
_NUMBER_UNIT: Final = re.compile(r"(?P<num>[0-9]+(?:\.[0-9]+)?)\s*(?P<unit>[A-Za-z]*)")


def _split(text: str, kind: str, example: str) -> tuple[Decimal, str]:
    stripped = text.strip()
    if stripped.startswith("-"):
        raise UnitError(f"{kind} must not be negative")
    match = _NUMBER_UNIT.fullmatch(stripped)
    if match is None:
        raise UnitError(f"not a {kind}; write a number and a unit, e.g. '{example}'")
    try:
        number = Decimal(match["num"])
    except InvalidOperation:  # pragma: no cover - the regex admits only decimals
        raise UnitError(f"not a {kind}") from None
    return number, match["unit"]


class Duration(float):
    """A duration in seconds (float), exact to the millisecond.

    Written ``700ms``, ``1.5s``, ``30s``, ``5m``, ``24h``, ``7d`` or ``0``. A bare number
    other than 0 is refused: SafeKit files count milliseconds where hamod would count
    seconds, so the unit is always spelled out.
    """

    __slots__ = ()

    def __new__(cls, seconds: float = 0.0) -> Duration:
        if seconds < 0:
            raise UnitError("duration must not be negative")
        return super().__new__(cls, round(seconds * 1000) / 1000)

    @classmethod
    def from_ms(cls, ms: int) -> Duration:
        """The duration of ``ms`` whole milliseconds."""
        return cls(ms / 1000)

    @classmethod
    def parse(cls, text: str | int) -> Duration:
        """Parse ``text`` (``'700ms'``, ``'30s'``, ``0``...); raises :class:`UnitError`."""
        if isinstance(text, bool):
            raise UnitError("expected a duration such as '30s'")
        if isinstance(text, int):
            if text == 0:
                return cls(0.0)
            if text < 0:
                raise UnitError("duration must not be negative")
            raise UnitError(f"duration needs a unit (ms, s, m, h, d), e.g. '{text}s'")
        number, unit = _split(text, "duration", "30s")
        if unit == "":
            if number == 0:
                return cls(0.0)
            raise UnitError(f"duration needs a unit (ms, s, m, h, d), e.g. '{text.strip()}s'")
        if unit not in _DURATION_UNITS:
            raise UnitError(f"unknown duration unit '{unit}'; use ms, s, m, h or d")
        ms = number * _DURATION_UNITS[unit]
        if ms != ms.to_integral_value():
            raise UnitError("durations are counted in whole milliseconds")
        return cls.from_ms(int(ms))

    @property
    def ms(self) -> int:
        """Whole milliseconds."""
        return round(float(self) * 1000)

    def __str__(self) -> str:
        ms = self.ms
        if ms == 0:
            return "0s"
        for unit in ("h", "m", "s"):  # never "d": 24h reads better than 1d
            factor = _DURATION_UNITS[unit]
            if ms % factor == 0:
                return f"{ms // factor}{unit}"
        if ms >= 1000:
            return f"{ms // 1000}.{ms % 1000:03d}".rstrip("0") + "s"
        return f"{ms}ms"

    def __repr__(self) -> str:
        return f"Duration('{self}')"


class Size(int):
    """A size in bytes: ``4096``, ``512KiB``, ``8MiB``, ``1GiB`` (IEC, powers of 1024)
    or ``1MB`` (SI, powers of 1000). Decimals are allowed when they come to whole bytes.
    """

    __slots__ = ()

    def __new__(cls, value: int = 0) -> Size:
        if value < 0:
            raise UnitError("size must not be negative")
        return super().__new__(cls, value)

    @classmethod
    def parse(cls, text: str | int) -> Size:
        """Parse ``text`` (``'8MiB'``, ``4096``...); raises :class:`UnitError`."""
        if isinstance(text, bool):
            raise UnitError("expected a size such as '8MiB'")
        if isinstance(text, int):
            if text < 0:
                raise UnitError("size must not be negative")
            return cls(text)
        number, unit = _split(text, "size", "8MiB")
        if unit not in _SIZE_UNITS:
            raise UnitError(
                f"unknown size unit '{unit}'; use B, KiB, MiB, GiB, TiB, kB, MB, GB or TB"
            )
        total = number * _SIZE_UNITS[unit]
        if total != total.to_integral_value():
            raise UnitError("size must come to a whole number of bytes")
        return cls(int(total))

    def __str__(self) -> str:
        value = int(self)
        if value == 0:
            return "0"
        for unit in ("TiB", "GiB", "MiB", "KiB"):
            if value % _SIZE_UNITS[unit] == 0:
                return f"{value // _SIZE_UNITS[unit]}{unit}"
        return str(value)

    def __repr__(self) -> str:
        return f"Size('{self}')"


class Rate(Size):
    """Bytes per second, written as a size (``100MiB``) optionally followed by ``/s``."""

    __slots__ = ()

    @classmethod
    def parse(cls, text: str | int) -> Rate:
        """Parse ``text`` (``'100MiB'``, ``'100MiB/s'``); raises :class:`UnitError`."""
        if isinstance(text, str) and text.strip().endswith("/s"):
            text = text.strip()[:-2]
        return cls(int(Size.parse(text)))

    def __str__(self) -> str:
        return f"{Size(int(self))}/s"

    def __repr__(self) -> str:
        return f"Rate('{self}')"


def _validator(kind: type[Duration] | type[Size], example: str) -> PlainValidator:
    name = "duration" if kind is Duration else "size"

    def validate(value: object) -> Duration | Size:
        if isinstance(value, kind):
            return value
        if isinstance(value, str | int) and not isinstance(value, bool):
            try:
                return kind.parse(value)
            except UnitError as exc:
                raise PydanticCustomError("hamod", str(exc)) from None
        if isinstance(value, float) and kind is Duration:
            raise PydanticCustomError("hamod", f"duration needs a unit, e.g. '{value}s'")
        raise PydanticCustomError("hamod", f"expected a {name} such as '{example}'")

    return PlainValidator(validate)


_DURATION_SCHEMA: Final = {
    "type": ["string", "integer"],
    "pattern": r"^[0-9]+(\.[0-9]+)?(ms|s|m|h|d)$|^0$",
    "description": "A duration: 700ms, 30s, 5m, 24h, 7d or 0.",
    "examples": ["700ms", "30s"],
}
_SIZE_SCHEMA: Final = {
    "type": ["string", "integer"],
    "pattern": r"^[0-9]+(\.[0-9]+)?(B|KiB|MiB|GiB|TiB|kB|KB|MB|GB|TB)?$",
    "minimum": 0,
    "description": "A size in bytes: 4096, 512KiB, 8MiB, 1GiB (IEC) or 1MB (SI).",
    "examples": ["1MiB", "4096"],
}
_RATE_SCHEMA: Final = {
    "type": ["string", "integer"],
    "pattern": r"^[0-9]+(\.[0-9]+)?(B|KiB|MiB|GiB|TiB|kB|KB|MB|GB|TB)?(/s)?$",
    "minimum": 0,
    "description": "Bytes per second, written as a size: 100MiB or 100MiB/s.",
    "examples": ["100MiB"],
}


def _validate_rate(value: object) -> Rate:
    if isinstance(value, Rate):
        return value
    if isinstance(value, str | int) and not isinstance(value, bool):
        try:
            return Rate.parse(value)
        except UnitError as exc:
            raise PydanticCustomError("hamod", str(exc)) from None
    raise PydanticCustomError("hamod", "expected a size per second such as '100MiB'")


#: A pydantic field type for durations (documented as "duration").
DurationField = Annotated[
    Duration,
    _validator(Duration, "30s"),
    PlainSerializer(str, return_type=str),
    WithJsonSchema(_DURATION_SCHEMA),
    DocType("duration"),
]
#: A pydantic field type for sizes (documented as "size").
SizeField = Annotated[
    Size,
    _validator(Size, "8MiB"),
    PlainSerializer(str, return_type=str),
    WithJsonSchema(_SIZE_SCHEMA),
    DocType("size"),
]
#: A pydantic field type for bandwidths (documented as "size per second").
RateField = Annotated[
    Rate,
    PlainValidator(_validate_rate),
    PlainSerializer(str, return_type=str),
    WithJsonSchema(_RATE_SCHEMA),
    DocType("size per second"),
]
