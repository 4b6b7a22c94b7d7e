"""LazyFS bookkeeping: armed faults, and which ranges of each file are not yet synced.

:class:`Faults` holds the faults armed on command (EIO on the next N writes, fsyncs or
reads of a path pattern; ENOSPC once a byte budget is spent). :class:`Dirty` records,
per live inode, the byte ranges written since its last fsync, so an fsync copies only
those to the backing directory (or the whole file after a truncate or a fresh create).
"""

from __future__ import annotations

import errno
import fnmatch
import os
import threading
from dataclasses import dataclass

KINDS = ("eio-write", "eio-fsync", "eio-read", "enospc")
MAX_RANGES = 4096  # past this many ranges, an fsync copies the whole file


def err(code: int) -> OSError:
    """An OSError with ``code`` and its message."""
    return OSError(code, os.strerror(code))


def rel(path: str) -> str:
    """A FUSE path ("/a/b") as a path relative to the tree ("a/b", "." for the root)."""
    return path.lstrip("/") or "."


def _match(glob: str, path: str | None) -> bool:
    return path is not None and fnmatch.fnmatchcase(rel(path), glob.lstrip("/"))


@dataclass
class Fault:
    """One armed fault: ``count`` more failures (EIO) or bytes left (ENOSPC)."""

    kind: str
    glob: str
    count: int


class Faults:
    """Faults armed on command, matched on the path relative to the mount (fnmatch)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._armed: list[Fault] = []

    def arm(self, kind: str, glob: str, count: int) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r} (one of {', '.join(KINDS)})")
        with self._lock:
            self._armed.append(Fault(kind, glob, count))

    def clear(self) -> None:
        with self._lock:
            self._armed.clear()

    def check(self, kind: str, path: str | None) -> None:
        """Raise EIO if an armed fault of ``kind`` matches ``path`` (and use one up)."""
        with self._lock:
            for f in self._armed:
                if f.kind == kind and f.count > 0 and _match(f.glob, path):
                    f.count -= 1
                    raise err(errno.EIO)

    def budget(self, path: str | None, size: int) -> int:
        """How many of ``size`` bytes may be written (ENOSPC when none)."""
        with self._lock:
            for f in self._armed:
                if f.kind == "enospc" and _match(f.glob, path):
                    if f.count <= 0:
                        raise err(errno.ENOSPC)
                    size = min(size, f.count)
                    f.count -= size
            return size


class Dirty:
    """Byte ranges written since the last fsync, per live inode (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ino: dict[int, int] = {}  # open file handle -> inode
        self._ranges: dict[int, list[tuple[int, int]] | None] = {}  # None: all of it

    def opened(self, fh: int) -> int:
        """Remember the inode of a new handle; returns ``fh``."""
        ino = os.fstat(fh).st_ino
        with self._lock:
            self._ino[fh] = ino
        return fh

    def closed(self, fh: int) -> None:
        with self._lock:
            self._ino.pop(fh, None)

    def wrote(self, fh: int, offset: int, size: int) -> None:
        with self._lock:
            ino = self._ino.get(fh)
            if ino is None:
                return
            ranges = self._ranges.setdefault(ino, [])
            if ranges is not None:
                ranges.append((offset, size))
                if len(ranges) > MAX_RANGES:
                    self._ranges[ino] = None

    def everything(self, ino: int) -> None:
        """The whole file must be copied at its next fsync."""
        with self._lock:
            self._ranges[ino] = None

    def take(self, ino: int) -> list[tuple[int, int]] | None:
        """The merged ranges to copy (None: the whole file) and forget them."""
        with self._lock:
            if ino not in self._ranges:
                return []
            ranges = self._ranges.pop(ino)
        if ranges is None:
            return None
        merged: list[tuple[int, int]] = []
        for off, size in sorted(ranges):
            if merged and off <= merged[-1][0] + merged[-1][1]:
                last_off, last_size = merged[-1]
                merged[-1] = (last_off, max(last_size, off + size - last_off))
            else:
                merged.append((off, size))
        return merged
