"""Module logs: one file per module (``/var/log/hamod/<module>.log``), a copy of every
line to the ``hamod`` Python logger (stderr / the daemon log, and syslog when
``/dev/log`` exists), and live followers for ``hamod log -f``.

Line format: ``2025-01-31T12:00:00.123+00:00 I transition text`` (``I`` info, ``W``
warning, ``E`` error). Lines are appended and flushed one by one (no fsync: a log).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import logging.handlers
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

log = logging.getLogger("hamod")
_LEVELS = {"I": logging.INFO, "W": logging.WARNING, "E": logging.ERROR}


def setup_logging(verbose: bool = False, syslog: bool = True) -> None:
    """The daemon's logging: stderr, plus syslog (``/dev/log``) when present."""
    root = logging.getLogger()
    if getattr(root, "_hamod_configured", False):
        return
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    err = logging.StreamHandler()
    err.setFormatter(logging.Formatter("%(asctime)s %(levelname).1s %(name)s: %(message)s"))
    root.addHandler(err)
    if syslog and os.path.exists("/dev/log"):
        with contextlib.suppress(OSError):
            sys_handler = logging.handlers.SysLogHandler(address="/dev/log")
            sys_handler.setFormatter(logging.Formatter("hamod[%(process)d]: %(message)s"))
            sys_handler.setLevel(logging.INFO)
            root.addHandler(sys_handler)
    root._hamod_configured = True  # type: ignore[attr-defined]


def parse_time(line: str) -> datetime | None:
    """The timestamp a log line starts with (None if it has none)."""
    head = line.split(" ", 1)[0]
    try:
        return datetime.fromisoformat(head)
    except ValueError:
        return None


class ModuleLog:
    """The log of one module."""

    def __init__(self, module: str, path: Path) -> None:
        self.module = module
        self.path = path
        self._followers: set[asyncio.Queue[str]] = set()
        self._warned = False
        self._logger = logging.getLogger(f"hamod.module.{module}")

    def write(self, level: str, text: str) -> str:
        """Append one line (``level``: I, W or E); returns it."""
        text = " ".join(text.split("\n"))
        line = f"{datetime.now(UTC).isoformat(timespec='milliseconds')} {level} {text}"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(line + "\n")
        except OSError as exc:
            if not self._warned:
                log.error("module %s: cannot write %s: %s", self.module, self.path, exc)
                self._warned = True
        self._logger.log(_LEVELS.get(level, logging.INFO), "%s: %s", self.module, text)
        for q in list(self._followers):
            with contextlib.suppress(asyncio.QueueFull):
                q.put_nowait(line)
        return line

    def info(self, text: str) -> str:
        return self.write("I", text)

    def warning(self, text: str) -> str:
        return self.write("W", text)

    def error(self, text: str) -> str:
        return self.write("E", text)

    def lines(self, since: datetime | None = None) -> list[str]:
        """Every kept line (from ``since``)."""
        try:
            text = self.path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return []
        out = text.splitlines()
        if since is None:
            return out
        return [ln for ln in out if (t := parse_time(ln)) is None or t >= since]

    async def follow(self, since: datetime | None) -> AsyncIterator[str]:
        """The kept lines, then every new one until cancelled."""
        q: asyncio.Queue[str] = asyncio.Queue(maxsize=10_000)
        self._followers.add(q)
        try:
            for line in self.lines(since):
                yield line
            while True:
                yield await q.get()
        finally:
            self._followers.discard(q)

    async def stream(self, since: datetime | None, follow: bool) -> AsyncIterator[str]:
        if follow:
            async for line in self.follow(since):
                yield line
        else:
            for line in self.lines(since):
                yield line
