"""JSON form of the core's frozen dataclasses (``ModuleState``, ``Durable``): the resume
marker and the status store use it. Generic over the dataclass fields and their type
hints (enums by value, tuples as lists, ``X | None``), strict on the way in: a field of
the wrong shape is a :class:`ValueError` naming it."""

from __future__ import annotations

import dataclasses
import types
import typing
from enum import Enum
from typing import Any, TypeVar

T = TypeVar("T")
Json = Any  # decoded JSON: the one untyped shape, at this edge only


def encode(value: object) -> Json:
    """``value`` (a core dataclass, enum, tuple or scalar) as plain JSON data."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, tuple | list | frozenset):
        return [encode(v) for v in value]
    return value


def _decode(tp: Any, data: Json, where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if data is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _decode(inner[0], data, where)
    if origin is tuple:
        if not isinstance(data, list):
            raise ValueError(f"{where}: expected a list")
        item = typing.get_args(tp)[0]
        return tuple(_decode(item, v, f"{where}[{i}]") for i, v in enumerate(data))
    if origin is frozenset:
        item = typing.get_args(tp)[0]
        return frozenset(_decode(item, v, where) for v in data)
    if isinstance(tp, type) and issubclass(tp, Enum):
        return tp(data)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return decode(tp, data, where)
    if tp is float:
        if isinstance(data, bool) or not isinstance(data, int | float):
            raise ValueError(f"{where}: expected a number")
        return float(data)
    if tp in (int, str, bool):
        if type(data) is not tp:
            raise ValueError(f"{where}: expected {tp.__name__}")
        return data
    raise ValueError(f"{where}: unsupported type {tp!r}")


def decode(cls: type[T], data: Json, where: str = "") -> T:
    """Rebuild a ``cls`` dataclass from :func:`encode`'s output (missing fields take
    their defaults)."""
    if not isinstance(data, dict):
        raise ValueError(f"{where or cls.__name__}: expected an object")
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name in data:
            kwargs[f.name] = _decode(hints[f.name], data[f.name], f"{where}.{f.name}".lstrip("."))
    return cls(**kwargs)
