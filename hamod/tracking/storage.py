"""The file seam of change tracking: a directory of a few files, with explicit syncs.

Owns the port (:class:`Storage`), the real adapter (:class:`OsStorage`, with injectable
``fsync`` and ``opener``) and the test fake (:class:`LazyStorage`), which keeps what was
never synced apart and loses it on :meth:`LazyStorage.crash` — the same contract as the
lab's lazy file system: a file's bytes are durable after ``sync`` of that file, a name
(create, replace, remove) after ``sync_dir``. OSError is the seam's error type; the
journal translates it.
"""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

__all__ = ["Appender", "LazyStorage", "OsStorage", "SimulatedCrash", "Storage"]


class Appender(Protocol):
    def write(self, data: bytes) -> None: ...
    def sync(self) -> None: ...
    def truncate(self, size: int) -> None: ...
    def close(self) -> None: ...


class Storage(Protocol):
    def read(self, name: str) -> bytes | None: ...
    def open_append(self, name: str) -> Appender: ...
    def create(self, name: str, data: bytes) -> None:
        """Write ``name`` (replacing it) with ``data`` and sync its content."""

    def replace(self, src: str, dst: str) -> None: ...
    def remove(self, name: str) -> None: ...
    def sync_dir(self) -> None: ...


class _OsAppender:
    def __init__(self, fd: int, fsync: Callable[[int], None]) -> None:
        self._fd = fd
        self._fsync = fsync

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]

    def sync(self) -> None:
        self._fsync(self._fd)

    def truncate(self, size: int) -> None:
        os.ftruncate(self._fd, size)

    def close(self) -> None:
        os.close(self._fd)


class OsStorage:
    """Files in ``directory`` (created 0700). ``fsync`` syncs a descriptor (default
    ``os.fdatasync``: enough for appended data and its size); ``opener`` is ``os.open``."""

    def __init__(
        self,
        directory: Path | str,
        *,
        fsync: Callable[[int], None] = os.fdatasync,
        opener: Callable[..., int] = os.open,
    ) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._fsync = fsync
        self._open = opener

    def _path(self, name: str) -> str:
        return str(self.directory / name)

    def read(self, name: str) -> bytes | None:
        try:
            fd = self._open(self._path(name), os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        try:
            chunks = []
            while chunk := os.read(fd, 1 << 20):
                chunks.append(chunk)
            return b"".join(chunks)
        finally:
            os.close(fd)

    def open_append(self, name: str) -> Appender:
        fd = self._open(self._path(name), os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        return _OsAppender(fd, self._fsync)

    def create(self, name: str, data: bytes) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
        fd = self._open(self._path(name), flags, 0o600)
        try:
            _OsAppender(fd, self._fsync).write(data)
            self._fsync(fd)
        finally:
            os.close(fd)

    def replace(self, src: str, dst: str) -> None:
        os.replace(self._path(src), self._path(dst))

    def remove(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._path(name))

    def sync_dir(self) -> None:
        fd = self._open(str(self.directory), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            self._fsync(fd)
        finally:
            os.close(fd)


class SimulatedCrash(Exception):
    """Raised by :class:`LazyStorage` at the step chosen with ``crash_at``."""


class _LazyFile:
    def __init__(self, data: bytes = b"") -> None:
        self.data = bytearray(data)
        self.durable = b""


class _LazyAppender:
    def __init__(self, owner: LazyStorage, file: _LazyFile) -> None:
        self._owner = owner
        self._file = file

    def write(self, data: bytes) -> None:
        self._owner.step("write")
        self._file.data += data

    def sync(self) -> None:
        self._owner.step("sync")
        self._file.durable = bytes(self._file.data)
        self._owner.syncs += 1
        for hook in self._owner.on_sync:
            hook()

    def truncate(self, size: int) -> None:
        self._owner.step("truncate")
        del self._file.data[size:]

    def close(self) -> None:
        pass


class LazyStorage:
    """In-memory files whose unsynced bytes and names vanish on :meth:`crash`.

    ``crash_at=n`` raises :class:`SimulatedCrash` at the n-th mutating step (write, sync,
    truncate, create, replace, remove, sync_dir), before doing it; ``steps`` counts them.
    ``syncs`` counts file syncs; ``on_sync`` hooks run after each one.
    """

    def __init__(self) -> None:
        self._files: dict[str, _LazyFile] = {}
        self._durable_names: dict[str, _LazyFile] = {}
        self.steps = 0
        self.syncs = 0
        self.crash_at: int | None = None
        self.on_sync: list[Callable[[], None]] = []

    def step(self, what: str) -> None:
        self.steps += 1
        if self.crash_at is not None and self.steps >= self.crash_at:
            raise SimulatedCrash(f"crash before step {self.steps} ({what})")

    def read(self, name: str) -> bytes | None:
        file = self._files.get(name)
        return None if file is None else bytes(file.data)

    def open_append(self, name: str) -> Appender:
        file = self._files.get(name)
        if file is None:
            raise FileNotFoundError(name)
        return _LazyAppender(self, file)

    def create(self, name: str, data: bytes) -> None:
        self.step("create")
        file = _LazyFile(data)
        self._files[name] = file
        self.step("sync")
        file.durable = bytes(data)
        self.syncs += 1

    def replace(self, src: str, dst: str) -> None:
        self.step("replace")
        self._files[dst] = self._files.pop(src)

    def remove(self, name: str) -> None:
        self.step("remove")
        self._files.pop(name, None)

    def sync_dir(self) -> None:
        self.step("sync_dir")
        self._durable_names = dict(self._files)

    def names(self) -> list[str]:
        return sorted(self._files)

    def unsynced(self, name: str) -> int:
        """Bytes of ``name`` that a crash would lose now (0 if none or no such file)."""
        file = self._files.get(name)
        if file is None:
            return 0
        if not file.data.startswith(file.durable):
            return len(file.data)
        return len(file.data) - len(file.durable)

    def durable(self, name: str) -> bytes | None:
        """What ``name`` would hold after a crash now."""
        file = self._durable_names.get(name)
        return None if file is None else file.durable

    def corrupt(self, name: str, offset: int) -> None:
        """Flip one byte of ``name`` (durably): media damage."""
        file = self._durable_names[name]
        file.data[offset] ^= 0xFF
        file.durable = bytes(file.data)

    def crash(self, rng: random.Random | None = None) -> None:
        """Power off: keep durable names and bytes only. With ``rng``, each file also
        keeps a random prefix of its unsynced appended bytes, sometimes with a flipped
        byte (a torn write)."""
        self.crash_at = None
        for file in self._durable_names.values():
            extra = b""
            if rng is not None and file.data.startswith(file.durable):
                tail = bytearray(file.data[len(file.durable) :])
                tail = tail[: rng.randint(0, len(tail))]
                if tail and rng.random() < 0.3:
                    tail[rng.randrange(len(tail))] ^= 0x5A
                extra = bytes(tail)
            file.data = bytearray(file.durable + extra)
        self._files = dict(self._durable_names)
