"""Helpers of the checker tests: build checker configurations as a module file would."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from pydantic import TypeAdapter

from hamod.config.checkers import Checker

T = TypeVar("T")
_CHECKER: TypeAdapter[Checker] = TypeAdapter(Checker)


def checker(type: str, name: str = "c", **fields: Any) -> Checker:
    """A checker configuration, validated like one read from a module file."""
    return _CHECKER.validate_python({"type": type, "name": name, **fields})


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)
