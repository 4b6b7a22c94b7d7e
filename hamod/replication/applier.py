""":class:`DirectoryApplier`: redoes mutations on a directory with ``*at`` system calls.

All names are resolved relative to a file descriptor of the target directory opened
once (``dir_fd``), never following a symlink at the last component where the system call
allows it. Handles of the primary map to descriptors opened here (OPEN/CREATE bind one,
RELEASE closes it); an operation on an unknown handle opens its path for writing.

The resync-only ops (``REMOVE``, ``ENSURE``, ``RELINK``, ``MOVE``, ``PUNCH``,
``SETATTRS``) and every op through a resync handle go to
:class:`~hamod.replication.resync_apply.ResyncOps`, which never follows a symlink of the
target and does not fail because of what the target has at a name.
"""

from __future__ import annotations

import ctypes
import errno
import os
from collections.abc import Callable
from pathlib import Path
from typing import Final

from hamod.datapath import libc
from hamod.datapath.mutation import OMIT, Mutation, Op
from hamod.replication.resync_apply import RESYNC_OPS, ResyncOps, is_resync_handle

_LIBC: Final = ctypes.CDLL(None, use_errno=True)
# O_DIRECT is the primary's business (alignment, cache bypass); the replica writes
# through its page cache and makes data durable when asked.
_STRIPPED_OPEN_FLAGS: Final = os.O_ACCMODE | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_DIRECT
_SYNC_FLAGS: Final = os.O_SYNC | os.O_DSYNC


class DirectoryApplier:
    """The :class:`~hamod.replication.receiver.Applier` of a real directory."""

    def __init__(self, root: Path) -> None:
        self._dir = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
        self._fds: dict[int, int] = {}
        self._resync = ResyncOps(self._dir, self._fds)

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
        os.close(self._dir)

    def flush(self) -> None:
        for fd in self._fds.values():
            os.fsync(fd)
        os.sync()
        # sync(2) reports nothing: syncfs(2) on the directory's file system reports a
        # write-back error (a resynced file that never reached the disk)
        libc.syncfs(self._dir)

    def apply(self, mutation: Mutation, *, durable: bool) -> None:
        m = mutation
        if m.op in RESYNC_OPS or is_resync_handle(m.handle):
            self._resync.apply(m, durable=durable)
            return
        fd = self._dir
        match m.op:
            case Op.CREATE:
                flags = (m.flags & ~_STRIPPED_OPEN_FLAGS) | os.O_CREAT | os.O_RDWR
                new = os.open(_rel(m.path), flags, m.mode & 0o7777, dir_fd=fd)
                os.fchmod(new, m.mode & 0o7777)
                _chown(lambda u, g: os.fchown(new, u, g), m.uid, m.gid)
                self._bind(m.handle, new)
            case Op.OPEN:
                flags = (m.flags & ~_STRIPPED_OPEN_FLAGS) | os.O_RDWR
                self._bind(m.handle, os.open(_rel(m.path), flags, dir_fd=fd))
            case Op.RELEASE:
                if m.handle is not None and m.handle in self._fds:
                    os.close(self._fds.pop(m.handle))
            case Op.MKNOD:
                os.mknod(_rel(m.path), m.mode, m.offset, dir_fd=fd)
                self._chown_path(m)
            case Op.MKDIR:
                os.mkdir(_rel(m.path), m.mode & 0o7777, dir_fd=fd)
                os.chmod(_rel(m.path), m.mode & 0o7777, dir_fd=fd)
                self._chown_path(m)
            case Op.SYMLINK:
                os.symlink(m.target or "", _rel(m.path), dir_fd=fd)
                self._chown_path(m)
            case Op.LINK:
                os.link(_rel(m.path), _rel(m.path2), src_dir_fd=fd, dst_dir_fd=fd,
                        follow_symlinks=False)  # fmt: skip
            case Op.UNLINK:
                os.unlink(_rel(m.path), dir_fd=fd)
            case Op.RMDIR:
                os.rmdir(_rel(m.path), dir_fd=fd)
            case Op.RENAME:
                self._rename(_rel(m.path), _rel(m.path2), m.flags)
            case Op.CHMOD:
                if m.path is None:
                    os.fchmod(self._fd(m), m.mode & 0o7777)
                else:
                    os.chmod(_rel(m.path), m.mode & 0o7777, dir_fd=fd, follow_symlinks=True)
            case Op.CHOWN:
                if m.path is None:
                    os.fchown(self._fd(m), m.uid, m.gid)
                else:
                    os.chown(_rel(m.path), m.uid, m.gid, dir_fd=fd, follow_symlinks=False)
            case Op.UTIMENS:
                self._utimens(m)
            case Op.TRUNCATE:
                if m.handle is not None or m.path is None:
                    os.ftruncate(self._fd(m), m.length)
                else:
                    target = os.open(_rel(m.path), os.O_WRONLY, dir_fd=fd)
                    try:
                        os.ftruncate(target, m.length)
                    finally:
                        os.close(target)
            case Op.WRITE:
                out = self._fd(m)
                data = m.data or b""
                written = os.pwrite(out, data, m.offset)
                if written != len(data):
                    raise OSError(errno.EIO, f"short write ({written} of {len(data)} bytes)")
                if durable or m.flags & _SYNC_FLAGS:
                    os.fdatasync(out)
            case Op.FALLOCATE:  # every mode: punch hole, zero range, keep size
                libc.fallocate(self._fd(m), m.mode, m.offset, m.length)
            case Op.SETXATTR:
                os.setxattr(self._proc(m.path), m.name or "", m.value or b"", m.flags)
            case Op.REMOVEXATTR:
                os.removexattr(self._proc(m.path), m.name or "")
            case Op.FSYNC:
                sync = os.fdatasync if m.flags & 1 else os.fsync
                sync(self._fd(m))
            case Op.FSYNCDIR:
                self._fsync_path(m.path)
        if durable and m.op not in (Op.WRITE, Op.FSYNC, Op.FSYNCDIR):
            self._fsync_path(_parent(m.path))

    # --- helpers --------------------------------------------------------------------

    def _bind(self, handle: int | None, new: int) -> None:
        if handle is None:
            os.close(new)
            return
        old = self._fds.pop(handle, None)
        if old is not None:
            os.close(old)
        self._fds[handle] = new

    def _fd(self, m: Mutation) -> int:
        if m.handle is not None and m.handle in self._fds:
            return self._fds[m.handle]
        if m.path is None:
            raise OSError(errno.EBADF, f"unknown handle {m.handle} and no path")
        new = os.open(_rel(m.path), os.O_RDWR, dir_fd=self._dir)
        if m.handle is None:
            self._fds[-1 - len(self._fds)] = new  # closed with the applier
        else:
            self._fds[m.handle] = new
        return new

    def _chown_path(self, m: Mutation) -> None:
        _chown(
            lambda u, g: os.chown(_rel(m.path), u, g, dir_fd=self._dir, follow_symlinks=False),
            m.uid,
            m.gid,
        )

    def _rename(self, src: str, dst: str, flags: int) -> None:
        if not flags:
            os.rename(src, dst, src_dir_fd=self._dir, dst_dir_fd=self._dir)
            return
        rc = _LIBC.renameat2(self._dir, os.fsencode(src), self._dir, os.fsencode(dst), flags)
        if rc != 0:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code), src)

    def _utimens(self, m: Mutation) -> None:
        current = (
            os.fstat(self._fd(m))
            if m.path is None
            else os.stat(_rel(m.path), dir_fd=self._dir, follow_symlinks=False)
        )
        atime = current.st_atime_ns if m.atime_ns == OMIT else m.atime_ns
        mtime = current.st_mtime_ns if m.mtime_ns == OMIT else m.mtime_ns
        # None ("now") for either: both set to now (rare: touch without a time).
        ns = None if atime is None or mtime is None else (atime, mtime)
        if m.path is None:
            if ns is None:
                os.utime(self._fd(m))
            else:
                os.utime(self._fd(m), ns=ns)
        elif ns is None:
            os.utime(_rel(m.path), dir_fd=self._dir, follow_symlinks=False)
        else:
            os.utime(_rel(m.path), ns=ns, dir_fd=self._dir, follow_symlinks=False)

    def _proc(self, path: str | None) -> str:
        return f"/proc/self/fd/{self._dir}/{_rel(path)}"

    def _fsync_path(self, path: str | None) -> None:
        name = "." if path in (None, "/") else _rel(path)
        target = os.open(name, os.O_RDONLY, dir_fd=self._dir)
        try:
            os.fsync(target)
        finally:
            os.close(target)


def _rel(path: str | None) -> str:
    """``path`` (leading ``/``) relative to the target directory; refuses escapes."""
    if path is None:
        raise OSError(errno.EINVAL, "operation without a path")
    parts = [p for p in path.split("/") if p]
    if not parts or any(p in (".", "..") for p in parts):
        raise OSError(errno.EINVAL, f"invalid replicated path {path!r}")
    return "/".join(parts)


def _parent(path: str | None) -> str | None:
    if path is None:
        return None
    head = path.rstrip("/").rpartition("/")[0]
    return head or "/"


def _chown(do: Callable[[int, int], None], uid: int, gid: int) -> None:
    if uid != -1 or gid != -1:
        do(uid, gid)
