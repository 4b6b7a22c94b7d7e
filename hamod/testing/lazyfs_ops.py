"""The FUSE operations of LazyFS: a live tree in memory, a durable tree on disk.

The *live* tree is a copy of the backing directory made at mount time in a private
tmpfs directory (the "page cache"); every operation, reads included, is done on it. The
*durable* tree is the backing directory; only fsync/fdatasync/fsyncdir write to it:

- fsync/fdatasync of a file persists its content, mode, owner and times, and its own
  name (with the names of any parent directories that were never persisted); a renamed
  file is moved under its new name.
- fsync of a directory persists its entries as they are now: new names appear (a new
  file is empty until it is fsynced itself), renamed names move,
  removed names disappear (recursively).
- Everything else (write, truncate, create, mkdir, unlink, rename, chmod...) lives only
  in the live tree and is lost on power-off.

Durable names are tracked by live inode number (``tmpfs`` never reuses one while
mounted); hard links are refused (EOPNOTSUPP). Faults (:class:`Faults`) are checked
before each write and fsync.
"""

from __future__ import annotations

import errno
import functools
import os
import shutil
import stat
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import mfusepy

from hamod.datapath.base import caller
from hamod.testing.lazyfs_state import Dirty, Faults
from hamod.testing.lazyfs_state import err as _err
from hamod.testing.lazyfs_state import rel as _rel

F = TypeVar("F", bound=Callable[..., Any])


def _live(func: F) -> F:
    """Fail with EIO once the file system has been powered off."""

    @functools.wraps(func)
    def wrapper(self: LazyOps, *args: Any) -> Any:
        if self.dead:
            raise _err(errno.EIO)
        return func(self, *args)

    return wrapper  # type: ignore[return-value]


class LazyOps(mfusepy.Operations):  # type: ignore[misc]
    """mfusepy operations over the live tree ``upper``, persisting to ``backing``."""

    def __init__(self, backing: str, upper: str) -> None:
        self.backing = backing
        self.upper = upper
        self.faults = Faults()
        self.dirty = Dirty()
        self.dead = False
        self.mounted = False  # set by libfuse's init: caller() has a context
        self.lock = threading.RLock()  # namespace changes and persistence
        self.dur: dict[int, str] = {}  # live inode -> durable path (relative)
        self.at: dict[str, int] = {}  # durable path -> live inode
        for root, dirs, files in os.walk(upper):
            for name in [".", *dirs, *files]:
                full = os.path.normpath(os.path.join(root, name))
                rel = os.path.relpath(full, upper)
                self._bind(os.lstat(full).st_ino, rel)

    # -- control ----------------------------------------------------------------------

    def power_off(self) -> None:
        """Drop everything not synced: from now on every call fails with EIO."""
        with self.lock:
            self.dead = True

    def sync_all(self) -> None:
        """Persist the whole live tree (a clean shutdown)."""
        with self.lock:
            if self.dead:
                raise _err(errno.EIO)
            for root, _dirs, files in os.walk(self.upper):
                rel = os.path.relpath(root, self.upper)
                self._sync_dir(rel)
                for name in files:
                    child = os.path.normpath(os.path.join(rel, name))
                    if stat.S_ISREG(os.lstat(self._up(child)).st_mode):
                        self._sync_file(child, None)

    # -- durable model ----------------------------------------------------------------

    def _own(self, path: str) -> None:
        """Give a new node to the caller (the server runs as root)."""
        if not self.mounted:  # called directly (unit tests): no FUSE context
            return
        uid, gid, _ = caller()
        os.chown(self._up(_rel(path)), uid, gid, follow_symlinks=False)

    def _up(self, rel: str) -> str:
        return os.path.join(self.upper, rel)

    def _down(self, rel: str) -> str:
        return os.path.join(self.backing, rel)

    def _bind(self, ino: int, rel: str) -> None:
        self.dur[ino] = rel
        self.at[rel] = ino

    def _forget(self, rel: str) -> None:
        """Forget the durable names at and under ``rel``."""
        for path in [p for p in self.at if p == rel or p.startswith(rel + "/")]:
            ino = self.at.pop(path)
            if self.dur.get(ino) == path:
                del self.dur[ino]

    def _drop(self, rel: str) -> None:
        """Remove ``rel`` from the durable tree."""
        full = self._down(rel)
        if os.path.isdir(full) and not os.path.islink(full):
            shutil.rmtree(full)
        elif os.path.lexists(full):
            os.unlink(full)
        self._forget(rel)

    def _persist_name(self, ino: int, rel: str) -> None:
        """Make the durable ``rel`` name live inode ``ino`` (moving or creating it)."""
        if self.dur.get(ino) == rel or rel == ".":
            return
        parent = os.path.dirname(rel) or "."
        self._persist_name(os.lstat(self._up(parent)).st_ino, parent)
        if rel in self.at or os.path.lexists(self._down(rel)):
            self._drop(rel)
        old = self.dur.get(ino)
        if old is not None:
            os.rename(self._down(old), self._down(rel))
            for path in [p for p in self.at if p == old or p.startswith(old + "/")]:
                moved = self.at.pop(path)
                self._bind(moved, rel + path[len(old) :])
            return
        st = os.lstat(self._up(rel))
        if stat.S_ISDIR(st.st_mode):
            os.mkdir(self._down(rel), stat.S_IMODE(st.st_mode))
        elif stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(self._up(rel)), self._down(rel))
        elif stat.S_ISREG(st.st_mode):
            os.close(os.open(self._down(rel), os.O_WRONLY | os.O_CREAT, 0o600))
            self.dirty.everything(ino)
        else:
            os.mknod(self._down(rel), st.st_mode, st.st_rdev)
        self._copy_meta(st, rel)
        self._bind(ino, rel)

    def _copy_meta(self, st: os.stat_result, rel: str) -> None:
        target = self._down(rel)
        os.chown(target, st.st_uid, st.st_gid, follow_symlinks=False)
        if not stat.S_ISLNK(st.st_mode):
            os.chmod(target, stat.S_IMODE(st.st_mode))
            os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))

    def _sync_file(self, path: str | None, fh: int | None) -> None:
        source = f"/proc/self/fd/{fh}" if fh is not None else self._up(_rel(path or "/"))
        st = os.stat(source)
        if path is not None:
            self._persist_name(st.st_ino, _rel(path))
        rel = self.dur.get(st.st_ino)
        if rel is None:  # unlinked and never persisted: nothing durable to update
            return
        ranges = self.dirty.take(st.st_ino)
        if ranges is None:
            shutil.copyfile(source, self._down(rel))
        elif ranges:
            src = os.open(source, os.O_RDONLY)
            dst = os.open(self._down(rel), os.O_WRONLY)
            try:
                for off, size in ranges:
                    os.pwrite(dst, os.pread(src, size, off), off)
                os.ftruncate(dst, st.st_size)
            finally:
                os.close(src)
                os.close(dst)
        self._copy_meta(st, rel)

    def _sync_dir(self, rel: str) -> None:
        self._persist_name(os.lstat(self._up(rel)).st_ino, rel)
        live = set(os.listdir(self._up(rel)))
        for name in sorted(live):
            child = os.path.normpath(os.path.join(rel, name))
            self._persist_name(os.lstat(self._up(child)).st_ino, child)
        for name in os.listdir(self._down(rel)):
            if name not in live:
                self._drop(os.path.normpath(os.path.join(rel, name)))
        self._copy_meta(os.lstat(self._up(rel)), rel)

    # -- FUSE: lifecycle and reads ----------------------------------------------------

    def init_with_config(self, conn: Any, config: Any) -> None:
        self.mounted = True
        if config is not None:
            config.hard_remove = 1  # no .fuse_hidden files in the live tree
            config.direct_io = 1  # every read comes here (no kernel page cache)
            config.entry_timeout = config.attr_timeout = config.negative_timeout = 0.0

    def destroy(self, path: str) -> None:
        return None

    @_live
    def getattr(self, path: str | None, fh: int | None = None) -> dict[str, Any]:
        st = os.fstat(fh) if fh is not None else os.lstat(self._up(_rel(path or "/")))
        keys = ("mode", "ino", "nlink", "uid", "gid", "size", "blocks", "blksize", "rdev")
        attrs: dict[str, Any] = {f"st_{k}": getattr(st, f"st_{k}") for k in keys}
        attrs.update(st_atime=st.st_atime, st_mtime=st.st_mtime, st_ctime=st.st_ctime)
        return attrs

    @_live
    def readdir(self, path: str, fh: int) -> list[str]:
        return [".", "..", *os.listdir(self._up(_rel(path)))]

    @_live
    def readlink(self, path: str) -> str:
        return os.readlink(self._up(_rel(path)))

    @_live
    def statfs(self, path: str) -> dict[str, int]:
        sv = os.statvfs(self.backing)
        keys = ("bsize", "frsize", "blocks", "bfree", "bavail", "files", "ffree", "namemax")
        return {f"f_{k}": getattr(sv, f"f_{k}") for k in keys}

    @_live
    def open(self, path: str, flags: int) -> int:
        flags &= ~(os.O_CREAT | os.O_EXCL | os.O_APPEND)
        return self.dirty.opened(os.open(self._up(_rel(path)), flags))

    @_live
    def create(self, path: str, mode: int, flags: int) -> int:
        with self.lock:
            flags &= ~os.O_APPEND
            fh = os.open(self._up(_rel(path)), flags | os.O_CREAT, mode)
            self._own(path)
            return self.dirty.opened(fh)

    @_live
    def read(self, path: str | None, size: int, offset: int, fh: int) -> bytes:
        self.faults.check("eio-read", path)
        return os.pread(fh, size, offset)

    def release(self, path: str | None, fh: int) -> int:
        self.dirty.closed(fh)
        os.close(fh)
        return 0

    def flush(self, path: str | None, fh: int) -> int:
        return 0

    # -- FUSE: buffered changes -------------------------------------------------------

    @_live
    def write(self, path: str | None, data: bytes, offset: int, fh: int) -> int:
        self.faults.check("eio-write", path)
        size = self.faults.budget(path, len(data))
        done = os.pwrite(fh, data[:size], offset)
        self.dirty.wrote(fh, offset, done)  # after: a write in flight is not yet due
        return done

    @_live
    def truncate(self, path: str | None, length: int, fh: int | None = None) -> int:
        if fh is not None:
            os.ftruncate(fh, length)
            self.dirty.everything(os.fstat(fh).st_ino)
        else:
            os.truncate(self._up(_rel(path or "/")), length)
            self.dirty.everything(os.stat(self._up(_rel(path or "/"))).st_ino)
        return 0

    @_live
    def fallocate(self, path: str | None, mode: int, offset: int, size: int, fh: int) -> int:
        if mode != 0:
            raise _err(errno.EOPNOTSUPP)
        self.faults.budget(path, size)
        os.posix_fallocate(fh, offset, size)
        self.dirty.wrote(fh, offset, size)
        return 0

    @_live
    def mkdir(self, path: str, mode: int) -> int:
        with self.lock:
            os.mkdir(self._up(_rel(path)), mode)
            self._own(path)
        return 0

    @_live
    def mknod(self, path: str, mode: int, dev: int) -> int:
        with self.lock:
            os.mknod(self._up(_rel(path)), mode, dev)
            self._own(path)
        return 0

    @_live
    def symlink(self, path: str, target: str) -> int:
        with self.lock:
            os.symlink(target, self._up(_rel(path)))
            self._own(path)
        return 0

    @_live
    def link(self, target: str, source: str) -> int:
        raise _err(errno.EOPNOTSUPP)

    @_live
    def unlink(self, path: str) -> int:
        with self.lock:
            os.unlink(self._up(_rel(path)))
        return 0

    @_live
    def rmdir(self, path: str) -> int:
        with self.lock:
            os.rmdir(self._up(_rel(path)))
        return 0

    @_live
    def rename(self, old: str, new: str) -> int:
        with self.lock:
            os.rename(self._up(_rel(old)), self._up(_rel(new)))
        return 0

    @_live
    def chmod(self, path: str, mode: int) -> int:
        os.chmod(self._up(_rel(path)), mode)
        return 0

    @_live
    def chown(self, path: str, uid: int, gid: int) -> int:
        os.chown(self._up(_rel(path)), uid, gid, follow_symlinks=False)
        return 0

    @_live
    def utimens(self, path: str, times: tuple[float, float] | None = None) -> int:
        os.utime(self._up(_rel(path)), times, follow_symlinks=False)
        return 0

    # -- FUSE: persistence ------------------------------------------------------------

    @_live
    def fsync(self, path: str | None, datasync: int, fh: int) -> int:
        self.faults.check("eio-fsync", path)
        with self.lock:
            if self.dead:
                raise _err(errno.EIO)
            self._sync_file(path, fh)
        return 0

    @_live
    def fsyncdir(self, path: str | None, datasync: int, fh: int) -> int:
        self.faults.check("eio-fsync", path)
        with self.lock:
            if self.dead:
                raise _err(errno.EIO)
            self._sync_dir(_rel(path or "/"))
        return 0
