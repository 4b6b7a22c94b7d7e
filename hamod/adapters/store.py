"""Durable status store: one JSON document per file, written atomically and durably.

Owns the on-disk form of the daemon's per-node status (the schema is the caller's
pydantic model) and nothing else: it decides nothing about what is stored.

File content, one line of canonical JSON (sorted keys, no spaces, ASCII)::

    {"body":{...},"format_version":2,"sha256":"<hex>"}

``sha256`` is the SHA-256 of the canonical JSON of ``{"body", "format_version"}``, so a
torn or bit-flipped file is detected, including a damaged version number.

``save``: write ``.NAME.tmp-PID-RANDOM`` in the same directory (mode 0600), fsync it;
hard-link the current file, if it is valid, as ``NAME.prev`` (so the last good copy
survives); rename the temporary file over ``NAME``; fsync the directory. At every instant
``NAME`` holds either the old or the new document, never a mix. Saves (and loads) of one
path are serialized across threads of this process.

``load``: ``None`` when neither ``NAME`` nor ``NAME.prev`` exists. A corrupt or
unreadable ``NAME`` falls back to ``NAME.prev``, reported through the ``notify`` callback
and :attr:`LoadResult.recovered_from`; load never writes (the next save replaces the bad
file). Older formats are migrated (``migrations[n]`` turns a format-n body into format
n+1). A newer format is refused even if an older ``.prev`` exists: silently rolling the
status back would be worse than stopping. Everything else (both copies bad, a body the
model rejects, an OS error while saving) is an :class:`AdapterError` naming the file.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import hmac
import json
import os
import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from hamod.errors import AdapterError

__all__ = ["DurableStore", "JsonObject", "LoadResult", "Migration", "canonical_json"]

T = TypeVar("T", bound=BaseModel)
JsonObject = dict[str, Any]  # a decoded JSON object: the one untyped shape, at the edge
Migration = Callable[[JsonObject], JsonObject]
FILE_MODE = 0o600
DIR_MODE = 0o700
PREV_SUFFIX = ".prev"

_locks_guard = threading.Lock()
_locks: dict[str, threading.Lock] = {}


def _lock_for(path: Path) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(str(path), threading.Lock())


def canonical_json(value: object) -> bytes:
    """The canonical encoding the checksum covers: sorted keys, no spaces, ASCII."""
    text = json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    )
    return text.encode("ascii")


def _digest(version: int, body: JsonObject) -> str:
    return hashlib.sha256(canonical_json({"body": body, "format_version": version})).hexdigest()


@dataclass(frozen=True)
class LoadResult(Generic[T]):
    """A loaded document, the file it came from, and what had to be done to get it."""

    value: T
    source: Path
    format_version: int
    recovered_from: str | None = None  # why the main file was unusable, when .prev was used
    migrated_from: int | None = None  # the format the file was written in, when older


class _Unusable(Exception):
    """A file that cannot be trusted (torn, corrupt, unreadable); the message says why."""


@dataclass(frozen=True)
class _Decoded:
    version: int
    body: JsonObject


def _decode(raw: bytes) -> _Decoded:
    """Check the envelope and checksum of ``raw``; raise _Unusable saying what is wrong."""
    try:
        doc = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise _Unusable(f"not UTF-8 at byte {exc.start}") from None
    except json.JSONDecodeError as exc:
        raise _Unusable(f"not JSON ({exc.msg} at byte {exc.pos})") from None
    if not isinstance(doc, dict) or set(doc) != {"body", "format_version", "sha256"}:
        keys = sorted(doc) if isinstance(doc, dict) else type(doc).__name__
        raise _Unusable(f"not a hamod store document (top level: {keys})")
    version, body, claimed = doc["format_version"], doc["body"], doc["sha256"]
    if type(version) is not int or version < 1:
        raise _Unusable(f"format_version is not a positive integer ({version!r})")
    if not isinstance(body, dict) or not isinstance(claimed, str):
        raise _Unusable("body is not an object or sha256 is not a string")
    actual = _digest(version, body)
    if not hmac.compare_digest(actual, claimed):
        raise _Unusable(f"checksum mismatch (file says {claimed[:12]}…, content is {actual[:12]}…)")
    return _Decoded(version, body)


class DurableStore(Generic[T]):
    """One durable document of type ``model`` at ``path``, in format ``format_version``.

    Seams for tests: ``fsync`` (called with the file's, then the directory's descriptor)
    and ``replace`` (``os.replace``); ``notify`` receives one line per recovery/migration.
    """

    def __init__(
        self,
        path: Path | str,
        model: type[T],
        format_version: int,
        migrations: Mapping[int, Migration] | None = None,
        *,
        notify: Callable[[str], None] | None = None,
        fsync: Callable[[int], None] = os.fsync,
        replace: Callable[[Path, Path], None] = os.replace,
    ) -> None:
        self.path = Path(os.path.abspath(path))
        self.prev_path = self.path.with_name(self.path.name + PREV_SUFFIX)
        self.model = model
        self.format_version = format_version
        self.migrations = dict(migrations or {})
        if type(format_version) is not int or format_version < 1:
            raise AdapterError(f"store {self.path}: format_version must be >= 1")
        stray = sorted(k for k in self.migrations if not 1 <= k < format_version)
        if stray:
            raise AdapterError(
                f"store {self.path}: migrations {stray} outside 1..{format_version - 1}"
            )
        self._notify = notify
        self._fsync = fsync
        self._replace = replace
        self._lock = _lock_for(self.path)

    # --- reading ------------------------------------------------------------------------

    def load(self) -> T | None:
        """The stored value, or None when nothing was ever saved here."""
        result = self.load_result()
        return None if result is None else result.value

    def load_result(self) -> LoadResult[T] | None:
        """Like :meth:`load`, with where the value came from and what was done to it."""
        with self._lock:
            try:
                return self._from(self.path, self._read(self.path), None)
            except _Unusable as exc:
                main_problem = str(exc)
            except FileNotFoundError:
                main_problem = "missing"
            try:
                prev = self._read(self.prev_path)
            except FileNotFoundError:
                if main_problem == "missing":
                    return None
                raise AdapterError(
                    f"status store {self.path}: {main_problem}; no previous copy "
                    f"{self.prev_path.name} to fall back on"
                ) from None
            except _Unusable as exc:
                raise AdapterError(
                    f"status store {self.path}: {main_problem}; previous copy "
                    f"{self.prev_path} is unusable too: {exc}"
                ) from None
            note = f"{self.path}: {main_problem}"
            result = self._from(self.prev_path, prev, note)
            self._tell(f"status store {self.path}: {main_problem}; using {self.prev_path}")
            return result

    def _read(self, path: Path) -> _Decoded:
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise _Unusable(f"unreadable: {exc.strerror or exc}") from None
        if not raw:
            raise _Unusable("empty file")
        return _decode(raw)

    def _from(self, path: Path, doc: _Decoded, recovered: str | None) -> LoadResult[T]:
        if doc.version > self.format_version:
            raise AdapterError(
                f"status store {path}: written by a newer hamod: format {doc.version}, "
                f"this hamod reads ≤ {self.format_version}"
            )
        body = doc.body
        for version in range(doc.version, self.format_version):
            step = self.migrations.get(version)
            if step is None:
                raise AdapterError(
                    f"status store {path}: format {doc.version} is too old: "
                    f"no migration from format {version} to {version + 1}"
                )
            try:
                body = step(body)
            except Exception as exc:
                raise AdapterError(
                    f"status store {path}: migrating format {version} to {version + 1} "
                    f"failed: {type(exc).__name__}: {exc}"
                ) from exc
        try:
            value = self.model.model_validate(body)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or '<body>'}: {e['msg']}" for e in exc.errors()
            )
            raise AdapterError(
                f"status store {path}: content does not fit {self.model.__name__}: {problems}"
            ) from None
        migrated = doc.version if doc.version < self.format_version else None
        if migrated is not None:
            self._tell(
                f"status store {path}: migrated from format {migrated} to {self.format_version}"
            )
        return LoadResult(value, path, self.format_version, recovered, migrated)

    def _tell(self, line: str) -> None:
        if self._notify is not None:
            self._notify(line)

    # --- writing ------------------------------------------------------------------------

    def encode(self, value: T) -> bytes:
        """The exact bytes :meth:`save` writes for ``value``."""
        if not isinstance(value, self.model):
            raise AdapterError(
                f"status store {self.path}: expected {self.model.__name__}, "
                f"got {type(value).__name__}"
            )
        body = value.model_dump(mode="json")
        try:
            digest = _digest(self.format_version, body)
            doc = {"body": body, "format_version": self.format_version, "sha256": digest}
            return canonical_json(doc) + b"\n"
        except (TypeError, ValueError) as exc:
            raise AdapterError(f"status store {self.path}: value is not JSON: {exc}") from None

    def save(self, value: T) -> None:
        """Replace the stored value atomically and durably (see the module docstring)."""
        data = self.encode(value)
        with self._lock:
            self._ensure_dir(self.path.parent)
            self._sweep_temps()
            tmp = self._temp_name(self.path)
            step = f"write {tmp}"
            try:
                self._write_synced(tmp, data)
                step = f"keep the previous copy as {self.prev_path}"
                self._keep_previous()
                step = f"rename {tmp.name} over {self.path}"
                self._replace(tmp, self.path)
                step = f"fsync directory {self.path.parent}"
                self._sync_dir(self.path.parent)
            except OSError as exc:
                with contextlib.suppress(OSError):
                    tmp.unlink()
                raise AdapterError(
                    f"status store {self.path}: cannot {step}: {exc.strerror or exc}"
                ) from None

    def _write_synced(self, tmp: Path, data: bytes) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW
        fd = os.open(tmp, flags, FILE_MODE)
        try:
            os.fchmod(fd, FILE_MODE)  # exact, whatever the umask
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            self._fsync(fd)
        finally:
            os.close(fd)

    def _keep_previous(self) -> None:
        """Hard-link the current file as NAME.prev if it is valid (never a bad one)."""
        try:
            _decode(self.path.read_bytes())
        except (OSError, _Unusable):
            return
        with contextlib.suppress(OSError):
            if os.path.samefile(self.path, self.prev_path):
                return  # already linked (rename between two links of one inode is a no-op)
        link = self._temp_name(self.prev_path)
        try:
            try:
                os.link(self.path, link)
            except OSError as exc:
                if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
                    raise
                self._write_synced(link, self.path.read_bytes())  # no hard links here: copy
            self._replace(link, self.prev_path)
        except OSError:
            with contextlib.suppress(OSError):
                link.unlink()
            raise

    @staticmethod
    def _temp_name(final: Path) -> Path:
        return final.with_name(f".{final.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")

    def _sweep_temps(self) -> None:
        """Remove temporary files a crashed save left (their process is gone, or is us:
        saves are serialized, so none of ours is in flight)."""
        for final in (self.path, self.prev_path):
            for leftover in final.parent.glob(f".{final.name}.tmp-*"):
                pid = leftover.name.rsplit("-", 2)[-2]
                if pid.isdigit() and (int(pid) == os.getpid() or not Path(f"/proc/{pid}").exists()):
                    with contextlib.suppress(OSError):
                        leftover.unlink()

    def _sync_dir(self, directory: Path) -> None:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            self._fsync(fd)
        finally:
            os.close(fd)

    def _ensure_dir(self, directory: Path) -> None:
        """Create ``directory`` and missing parents with mode 0700 (existing ones kept)."""
        if directory.is_dir():
            return
        self._ensure_dir(directory.parent)
        try:
            directory.mkdir(mode=DIR_MODE)
            os.chmod(directory, DIR_MODE)
        except FileExistsError:
            if not directory.is_dir():
                raise AdapterError(
                    f"status store {self.path}: {directory} exists and is not a directory"
                ) from None
            self._sync_dir(directory.parent)
        except OSError as exc:
            raise AdapterError(
                f"status store {self.path}: cannot create {directory}: {exc.strerror or exc}"
            ) from None
