"""Pydantic validation errors → :class:`hamod.errors.Problem`, in hamod's own words.

Users never see pydantic's wording or URLs: each error becomes a dotted path
(``vips[0].addr``, ``checkers[2].port``), a message, and the offending value. Unknown
keys get a "did you mean" hint computed from the fields of the model at that place.
"""

from __future__ import annotations

import difflib
import types
import typing
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from hamod.errors import Problem

__all__ = ["problems_from_validation", "show_value"]


def show_value(value: object) -> str:
    """How an offending value is shown: YAML words for scalars, a kind for containers."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return repr(str(value))


def _unwrap(tp: Any) -> Any:
    """Strip ``Annotated`` and ``None`` from ``tp``."""
    while True:
        if get_origin(tp) is typing.Annotated:
            tp = get_args(tp)[0]
            continue
        if get_origin(tp) in (Union, types.UnionType):
            args = [a for a in get_args(tp) if a is not type(None)]
            if len(args) == 1:
                tp = args[0]
                continue
        return tp


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _tag_member(tp: Any, tag: str) -> Any:
    for member in get_args(tp):
        if _is_model(member):
            field = member.model_fields.get("type")
            if field is not None and tag in get_args(_unwrap(field.annotation)):
                return member
    return None


def _walk(root: type[BaseModel], loc: tuple[int | str, ...]) -> tuple[str, list[str]]:
    """The display path of ``loc`` and the field names of the model holding its last key."""
    path = ""
    fields: list[str] = []
    tp: Any = root
    for item in loc:
        tp = _unwrap(tp)
        origin = get_origin(tp)
        if origin in (Union, types.UnionType) and isinstance(item, str):
            tp = _tag_member(tp, item)  # a discriminated union's tag: not part of the path
            continue
        if item == "[key]":
            path += " (key)"
            continue
        if isinstance(item, int):
            path += f"[{item}]"
            args = get_args(tp)
            tp = args[0] if origin in (tuple, list) and args else None
            continue
        path += f".{item}" if path else item
        if _is_model(tp):
            fields = list(tp.model_fields)
            field = tp.model_fields.get(item)
            tp = field.annotation if field is not None else None
        elif origin is dict:
            tp = get_args(tp)[1]
        else:
            tp = None
    return path, fields


_TYPE_WORDS = {
    "string_type": "expected a string",
    "int_type": "expected an integer",
    "int_parsing": "expected an integer",
    "int_from_float": "expected an integer",
    "bool_type": "expected true or false",
    "bool_parsing": "expected true or false",
    "model_type": "expected a mapping",
    "model_attributes_type": "expected a mapping",
    "dict_type": "expected a mapping",
    "list_type": "expected a list",
    "tuple_type": "expected a list",
    "literal_error": "",
}


def _message(err: ErrorDetails) -> tuple[str, bool]:
    """(message, whether to show the value)."""
    kind = err["type"]
    ctx: dict[str, Any] = dict(err.get("ctx") or {})
    if kind == "hamod":
        return err["msg"], True
    if kind == "literal_error":
        return f"expected {ctx['expected']}", True
    if kind in _TYPE_WORDS:
        return _TYPE_WORDS[kind], True
    if kind == "missing":
        return "required field is missing", False
    if kind == "union_tag_invalid":
        return f"unknown type; expected {_or(ctx['expected_tags'])}", False
    if kind == "union_tag_not_found":
        return "'type' is missing", False
    if kind == "greater_than_equal":
        return f"must be at least {ctx['ge']}", True
    if kind == "greater_than":
        return f"must be more than {ctx['gt']}", True
    if kind == "less_than_equal":
        return f"must be at most {ctx['le']}", True
    if kind == "less_than":
        return f"must be less than {ctx['lt']}", True
    if kind in ("too_short", "string_too_short"):
        n = ctx.get("min_length", 1)
        return ("must not be empty", False) if n == 1 else (f"needs at least {n} items", False)
    if kind in ("too_long", "string_too_long"):
        return f"has more than {ctx.get('max_length')} items", False
    if kind == "value_error":
        return str(ctx.get("error", "invalid value")), True
    return "invalid value", True


def _or(expected: str) -> str:
    items = [e.strip() for e in expected.replace(" or ", ",").split(",") if e.strip()]
    if len(items) <= 1:
        return expected
    return ", ".join(items[:-1]) + " or " + items[-1]


def problems_from_validation(
    exc: ValidationError, root: type[BaseModel], prefix: str = ""
) -> list[Problem]:
    """One :class:`Problem` per pydantic error of ``exc`` raised validating ``root``."""
    problems: list[Problem] = []
    errors = exc.errors(include_url=False)
    for err in errors:
        loc = tuple(err["loc"])
        if err["type"] == "too_short" and any(
            len(e["loc"]) > len(loc) and tuple(e["loc"][: len(loc)]) == loc for e in errors
        ):
            continue  # the list is short because an item is invalid: report the item only
        path, fields = _walk(root, tuple(err["loc"]))
        path = f"{prefix}{path}" if path else prefix.rstrip(".")
        if err["type"] == "extra_forbidden":
            key = str(err["loc"][-1])
            close = difflib.get_close_matches(key, fields, n=1, cutoff=0.6)
            if close:
                message = f"unknown field; did you mean '{close[0]}'?"
            else:
                message = "unknown field; expected one of " + ", ".join(fields)
            problems.append(Problem(path, message))
            continue
        message, with_value = _message(err)
        value = err.get("input")
        shown = show_value(value) if with_value else None
        if (
            shown is not None
            and isinstance(value, dict | list | tuple)
            and err["type"] not in (_TYPE_WORDS.keys() | {"hamod"})
        ):
            shown = None
        if err["type"] == "hamod" and isinstance(value, dict):
            shown = None  # a model-level check: the message says what is wrong
        problems.append(Problem(path, message, shown))
    return problems
