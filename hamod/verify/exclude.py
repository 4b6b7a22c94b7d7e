"""Exclude patterns of a replicated directory, written as lsyncd's (rsync's filter syntax).

Owns one pure decision, :func:`excluded`: is this path (relative to the replicated
directory) outside the replicated set? Shared by ``verify`` and the rsync transport, so a
pattern means the same everywhere. The rules are rsync's, for exclude patterns:

- ``/`` at the start anchors the pattern at the root (``/pg_stat_tmp/``); otherwise it
  matches the end of the path: the last component when it has no ``/`` (``*.tmp``), the
  last components when it has one (``log/*.old`` matches ``a/log/x.old``);
- ``/`` at the end matches directories only;
- ``*`` matches within one component, ``**`` across components, ``?`` one character but
  ``/``, ``[...]`` a class (``[!...]``/``[^...]`` negated), ``\\`` escapes the next
  character; ``dir/***`` matches ``dir`` and everything under it;
- a path below an excluded directory is excluded (rsync never descends into it).

POSIX classes (``[[:alpha:]]``) and include rules (``+ ``) are not supported.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from hamod.errors import UsageError

__all__ = ["Excluder", "excluded"]


@dataclass(frozen=True)
class _Rule:
    pattern: str
    regex: re.Pattern[str]
    dir_only: bool


def _class(body: str, i: int) -> tuple[str, int] | None:
    """The regex of the ``[...]`` class starting at ``body[i]`` and the index after it,
    or None when the bracket is not closed (then it is a literal ``[``)."""
    j = i + 1
    negate = j < len(body) and body[j] in "!^"
    if negate:
        j += 1
    start = j
    if j < len(body) and body[j] == "]":
        j += 1  # a leading ']' is a member
    end = body.find("]", j)
    if end < 0:
        return None
    members = "".join(c if c == "-" else re.escape(c) for c in body[start:end])
    # A class never matches '/', as in rsync's wildmatch on path names.
    regex = f"[^/{members}]" if negate else f"(?!/)[{members}]"
    return regex, end + 1


def _translate(body: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(body):
        c = body[i]
        if c == "*":
            if body.startswith("**", i):
                out.append(".*")
                while i < len(body) and body[i] == "*":
                    i += 1
                continue
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[" and (cls := _class(body, i)) is not None:
            out.append(cls[0])
            i = cls[1]
            continue
        elif c == "\\" and i + 1 < len(body):
            i += 1
            out.append(re.escape(body[i]))
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


def _compile(pattern: str) -> _Rule:
    if not isinstance(pattern, str) or "\0" in pattern:
        raise UsageError(f"exclude pattern {pattern!r}: not a text without NUL")
    body = pattern
    anchored = body.startswith("/")
    body = body.lstrip("/") if anchored else body
    tail = ""
    dir_only = False
    if body.endswith("/***"):
        body, tail = body[:-4], "(?:/.*)?"
    elif body.endswith("/"):
        body, dir_only = body.rstrip("/"), True
    if not body:
        raise UsageError(f"exclude pattern {pattern!r}: matches nothing (empty)")
    head = "" if anchored else "(?:.*/)?"
    regex = re.compile(f"{head}{_translate(body)}{tail}", re.DOTALL)
    return _Rule(pattern, regex, dir_only)


def _relative(relpath: str) -> str:
    return relpath.strip("/")


class Excluder:
    """Compiled exclude patterns (an invalid pattern raises :class:`UsageError` here)."""

    def __init__(self, patterns: Iterable[str]) -> None:
        self.rules = tuple(_compile(p) for p in patterns)

    def __bool__(self) -> bool:
        return bool(self.rules)

    def matches(self, relpath: str, is_dir: bool) -> bool:
        """Whether a pattern matches this path itself (its directories not considered:
        for a walk that does not descend into excluded directories)."""
        rel = _relative(relpath)
        if not rel:
            return False  # the root is never excluded
        return any(
            (is_dir or not r.dir_only) and r.regex.fullmatch(rel) is not None for r in self.rules
        )

    def below_excluded(self, relpath: str) -> bool:
        """Whether one of the directories holding the path is excluded."""
        parts = _relative(relpath).split("/")
        return any(self.matches("/".join(parts[:n]), True) for n in range(1, len(parts)))

    def excluded(self, relpath: str, is_dir: bool) -> bool:
        """Whether the path or one of its directories is excluded."""
        return bool(self.rules) and (self.matches(relpath, is_dir) or self.below_excluded(relpath))


@lru_cache(maxsize=64)
def _cached(patterns: tuple[str, ...]) -> Excluder:
    return Excluder(patterns)


def excluded(relpath: str, is_dir: bool, patterns: Sequence[str]) -> bool:
    """Whether ``relpath`` (relative to the replicated directory, a leading ``/``
    optional; ``is_dir`` says whether it names a directory) is excluded by ``patterns``:
    matched itself, or below an excluded directory. Pure; compiled patterns are cached."""
    return _cached(tuple(patterns)).excluded(relpath, is_dir)
