"""Target side of the resync stream: the resync-only ops of :class:`Op` (``REMOVE``,
``ENSURE``, ``RELINK``, ``MOVE``, ``PUNCH``, ``SETATTRS``) and the writes through resync
handles, for :class:`~hamod.replication.applier.DirectoryApplier`.

Every name is reached from the target directory's descriptor one directory at a time with
``O_NOFOLLOW``, and the last component is acted on with ``*at`` calls that do not follow
it: a symlink of the target is never followed (unlike the live ops, whose paths come from
the primary's kernel). A parent that is missing or not a directory makes an op a no-op:
the stream reconciles that parent. Errors that the target's state explains (the name is
there or not, of another type, a directory not empty) are handled by the op's semantics;
only real failures (I/O, space, permissions) raise ``OSError``.

Also owns the two encodings the source side shares: resync handles (numbers from
:data:`RESYNC_HANDLE_BASE`, never a data-path descriptor) and the xattr set of
``SETATTRS`` (:func:`pack_xattrs`).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import shutil
import stat
from collections.abc import Iterable, Iterator
from typing import Final

from hamod.datapath.mutation import OMIT, Mutation, Op
from hamod.proto.wire import Reader, WireError, Writer

__all__ = [
    "RENAME_EXCHANGE",
    "RESYNC_HANDLE_BASE",
    "RESYNC_OPS",
    "ResyncOps",
    "is_resync_handle",
    "open_parent",
    "pack_xattrs",
    "split_path",
    "unpack_xattrs",
]

RESYNC_HANDLE_BASE: Final = 1 << 48
"""Handles of the resync stream start here (a data-path handle is a small descriptor)."""
RESYNC_OPS: Final = frozenset({Op.REMOVE, Op.ENSURE, Op.RELINK, Op.MOVE, Op.PUNCH, Op.SETATTRS})
RENAME_EXCHANGE: Final = 2
_FALLOC_KEEP_SIZE: Final = 1
_FALLOC_PUNCH_HOLE: Final = 2
_DIR_FLAGS: Final = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_MISSING: Final = (errno.ENOENT, errno.ENOTDIR, errno.ELOOP)
_ZEROS: Final = bytes(1 << 20)

_LIBC: Final = ctypes.CDLL(None, use_errno=True)
_LIBC.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
_LIBC.renameat2.argtypes = [
    ctypes.c_int,
    ctypes.c_char_p,
    ctypes.c_int,
    ctypes.c_char_p,
    ctypes.c_uint,
]


def is_resync_handle(handle: int | None) -> bool:
    return handle is not None and handle >= RESYNC_HANDLE_BASE


def pack_xattrs(items: Iterable[tuple[str, bytes]]) -> bytes:
    """The ``value`` of ``SETATTRS``: ``(varint len, name, varint len, value)*``."""
    w = Writer()
    for name, value in items:
        raw = name.encode("utf-8", "surrogateescape")
        w.varint(len(raw))
        w.raw(raw)
        w.varint(len(value))
        w.raw(value)
    return w.getvalue()


def unpack_xattrs(data: bytes) -> dict[str, bytes]:
    r = Reader(data)
    out: dict[str, bytes] = {}
    try:
        while r.remaining:
            name = r.take(r.varint()).decode("utf-8", "surrogateescape")
            out[name] = r.take(r.varint())
    except WireError as exc:
        raise OSError(errno.EINVAL, f"bad xattr set in SETATTRS: {exc}") from None
    return out


def split_path(path: str | None) -> list[str]:
    """The components of a replicated path (``[]`` for the root); refuses ``.``/``..``."""
    if path is None:
        raise OSError(errno.EINVAL, "resync operation without a path")
    parts = [p for p in path.split("/") if p]
    if any(p in (".", "..") for p in parts):
        raise OSError(errno.EINVAL, f"invalid replicated path {path!r}")
    return parts


def open_parent(root: int, parts: list[str]) -> int | None:
    """A new descriptor of the directory holding ``parts[-1]``, reached from ``root``
    through directories only (never a symlink); None if there is no such directory."""
    fd = os.dup(root)
    for part in parts[:-1]:
        try:
            nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
        except OSError as exc:
            os.close(fd)
            if exc.errno in _MISSING:
                return None
            raise
        os.close(fd)
        fd = nxt
    return fd


def lstat_at(dir_fd: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _remove_at(dir_fd: int, name: str, st: os.stat_result) -> None:
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(name, dir_fd=dir_fd)  # descriptor based: never follows a symlink
    else:
        os.unlink(name, dir_fd=dir_fd)


def _renameat2(src_dir: int, src: str, dst_dir: int, dst: str, flags: int) -> None:
    rc = _LIBC.renameat2(src_dir, os.fsencode(src), dst_dir, os.fsencode(dst), flags)
    if rc != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), src)


def _related(a: list[str], b: list[str]) -> bool:
    """One path is the other or an ancestor of it."""
    n = min(len(a), len(b))
    return a[:n] == b[:n]


class ResyncOps:
    """Applies resync mutations below ``root`` (a directory descriptor), binding resync
    handles in ``fds`` (shared with the applier, which closes them)."""

    def __init__(self, root: int, fds: dict[int, int]) -> None:
        self._root = root
        self._fds = fds

    def apply(self, m: Mutation, *, durable: bool) -> None:
        match m.op:
            case Op.REMOVE:
                self._remove(m)
            case Op.ENSURE:
                self._ensure(m)
            case Op.RELINK:
                self._relink(m)
            case Op.MOVE:
                self._move(m)
            case Op.SETATTRS:
                self._setattrs(m)
            case Op.WRITE | Op.TRUNCATE | Op.PUNCH | Op.RELEASE | Op.FSYNC:
                self._through_handle(m, durable=durable)
                return
            case _:
                raise OSError(errno.EINVAL, f"{m.op.value} is not a resync operation")
        if durable:
            for path in (m.path, m.path2):
                if path is not None:
                    self._fsync_parent(path)

    # --- helpers --------------------------------------------------------------------

    @contextlib.contextmanager
    def _at(self, path: str | None) -> Iterator[tuple[int, str] | None]:
        """(descriptor of the parent directory, last name), or None (no such parent)."""
        parts = split_path(path)
        if not parts:
            raise OSError(errno.EINVAL, "the resync cannot replace the root directory")
        fd = open_parent(self._root, parts)
        try:
            yield None if fd is None else (fd, parts[-1])
        finally:
            if fd is not None:
                os.close(fd)

    def _unbind(self, handle: int | None) -> None:
        if handle is not None:
            old = self._fds.pop(handle, None)
            if old is not None:
                os.close(old)

    def _fsync_parent(self, path: str) -> None:
        parts = split_path(path)
        fd = open_parent(self._root, parts) if parts else os.dup(self._root)
        if fd is not None:
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    # --- namespace --------------------------------------------------------------------

    def _remove(self, m: Mutation) -> None:
        with self._at(m.path) as at:
            if at is not None and (st := lstat_at(*at)) is not None:
                _remove_at(*at, st)

    def _ensure(self, m: Mutation) -> None:
        kind = stat.S_IFMT(m.mode) or stat.S_IFREG
        if m.handle is not None and kind != stat.S_IFREG:
            raise OSError(errno.EINVAL, "ENSURE binds a handle to regular files only")
        self._unbind(m.handle)
        with self._at(m.path) as at:
            if at is None:
                return
            d, name = at
            st = lstat_at(d, name)
            keep = st is not None and not m.flags & os.O_EXCL and stat.S_IFMT(st.st_mode) == kind
            if keep and kind == stat.S_IFLNK:
                keep = os.readlink(name, dir_fd=d) == (m.target or "")
            elif keep and kind in (stat.S_IFCHR, stat.S_IFBLK):
                keep = st is not None and st.st_rdev == m.offset
            if st is not None and not keep:
                _remove_at(d, name, st)
            if kind == stat.S_IFREG:
                flags = os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC
                flags |= (m.flags & os.O_TRUNC) if keep else os.O_CREAT | os.O_EXCL
                fd = os.open(name, flags, 0o600, dir_fd=d)
                if m.handle is None:
                    os.close(fd)
                else:
                    self._fds[m.handle] = fd
            elif keep:
                return
            elif kind == stat.S_IFDIR:
                os.mkdir(name, 0o700, dir_fd=d)
            elif kind == stat.S_IFLNK:
                os.symlink(m.target or "", name, dir_fd=d)
            else:
                os.mknod(name, kind | 0o600, m.offset, dir_fd=d)

    def _relink(self, m: Mutation) -> None:
        if _related(split_path(m.path), split_path(m.path2)):
            return
        with self._at(m.path) as src, self._at(m.path2) as dst:
            if dst is None:
                return
            st = lstat_at(*src) if src is not None else None
            old = lstat_at(*dst)
            if st is not None and old is not None and os.path.samestat(st, old):
                return
            if old is not None:
                _remove_at(*dst, old)
            if src is not None and st is not None and not stat.S_ISDIR(st.st_mode):
                os.link(src[1], dst[1], src_dir_fd=src[0], dst_dir_fd=dst[0], follow_symlinks=False)

    def _move(self, m: Mutation) -> None:
        if _related(split_path(m.path), split_path(m.path2)):
            return  # into itself (or onto an ancestor): the kernel refuses it on any node
        exchange = bool(m.flags & RENAME_EXCHANGE)
        with self._at(m.path) as src, self._at(m.path2) as dst:
            a = lstat_at(*src) if src is not None else None
            b = lstat_at(*dst) if dst is not None else None
            if exchange:
                if src is None or dst is None:
                    return
                if a is not None and b is not None:
                    _renameat2(src[0], src[1], dst[0], dst[1], RENAME_EXCHANGE)
                elif a is not None:
                    os.rename(src[1], dst[1], src_dir_fd=src[0], dst_dir_fd=dst[0])
                elif b is not None:
                    os.rename(dst[1], src[1], src_dir_fd=dst[0], dst_dir_fd=src[0])
                return
            if src is None or a is None:
                return
            if dst is None:
                _remove_at(*src, a)
                return
            if b is not None and os.path.samestat(a, b):
                os.unlink(src[1], dir_fd=src[0])  # what the rename did on the source
                return
            if b is not None and (
                stat.S_ISDIR(a.st_mode) != stat.S_ISDIR(b.st_mode) or stat.S_ISDIR(b.st_mode)
            ):
                _remove_at(*dst, b)  # the kernel would refuse: ENOTEMPTY/EISDIR/ENOTDIR
            os.rename(src[1], dst[1], src_dir_fd=src[0], dst_dir_fd=dst[0])

    # --- attributes -------------------------------------------------------------------

    def _setattrs(self, m: Mutation) -> None:
        parts = split_path(m.path)
        if not parts:
            self._set_attrs_of(m, self._root, None, None)
            return
        with self._at(m.path) as at:
            if at is None:
                return
            d, name = at
            try:
                fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=d)
            except FileNotFoundError:
                return
            try:
                self._set_attrs_of(m, fd, d, name)
            finally:
                os.close(fd)

    def _set_attrs_of(self, m: Mutation, fd: int, d: int | None, name: str | None) -> None:
        """``fd`` pins the entry (``O_PATH``, or the root's descriptor); a non-symlink is
        changed through ``/proc/self/fd/<fd>``, a symlink by name without following it."""
        st = os.fstat(fd)
        if stat.S_IFMT(st.st_mode) != stat.S_IFMT(m.mode):
            return  # not the entry the source described
        pinned = f"/proc/self/fd/{fd}"
        link = stat.S_ISLNK(st.st_mode)
        if m.uid != -1 or m.gid != -1:
            if link:
                os.chown(name or "", m.uid, m.gid, dir_fd=d, follow_symlinks=False)
            else:
                os.chown(pinned, m.uid, m.gid)
        if not link:
            os.chmod(pinned, stat.S_IMODE(m.mode))  # after chown, which may clear set-id
            if m.value is not None:
                _exact_xattrs(pinned, unpack_xattrs(m.value))
        if m.atime_ns is None and m.mtime_ns is None:
            return
        atime = st.st_atime_ns if m.atime_ns in (None, OMIT) else m.atime_ns
        mtime = st.st_mtime_ns if m.mtime_ns in (None, OMIT) else m.mtime_ns
        assert atime is not None and mtime is not None
        if link:
            os.utime(name or "", ns=(atime, mtime), dir_fd=d, follow_symlinks=False)
        else:
            os.utime(pinned, ns=(atime, mtime))

    # --- data -------------------------------------------------------------------------

    def _through_handle(self, m: Mutation, *, durable: bool) -> None:
        if not is_resync_handle(m.handle):
            raise OSError(errno.EINVAL, f"resync {m.op.value} without a resync handle")
        assert m.handle is not None
        fd = self._fds.get(m.handle)
        if fd is None:
            return  # its ENSURE found no directory to put the file in: nothing to do
        match m.op:
            case Op.WRITE:
                data = m.data or b""
                written = os.pwrite(fd, data, m.offset)
                if written != len(data):
                    raise OSError(errno.EIO, f"short write ({written} of {len(data)} bytes)")
                if durable:
                    os.fdatasync(fd)
            case Op.TRUNCATE:
                os.ftruncate(fd, m.length)
                if durable:
                    os.fsync(fd)
            case Op.PUNCH:
                _punch(fd, m.offset, m.length)
                if durable:
                    os.fdatasync(fd)
            case Op.FSYNC:
                (os.fdatasync if m.flags & 1 else os.fsync)(fd)
            case _:  # RELEASE
                if durable:
                    os.fsync(fd)
                self._unbind(m.handle)


def _exact_xattrs(path: str, wanted: dict[str, bytes]) -> None:
    """Make the xattr set of ``path`` exactly ``wanted`` (ACLs included). A file system
    without xattrs has nothing to remove (and fails only if some are wanted)."""
    try:
        present = os.listxattr(path)
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP) and not wanted:
            return
        raise
    for name in present:
        if name not in wanted:
            try:
                os.removexattr(path, name)
            except OSError as exc:
                if exc.errno != errno.ENODATA:
                    raise
    for name, value in wanted.items():
        try:
            current: bytes | None = os.getxattr(path, name)
        except OSError as exc:
            if exc.errno != errno.ENODATA:
                raise
            current = None
        if current != value:
            os.setxattr(path, name, value)


def _punch(fd: int, offset: int, length: int) -> None:
    if length <= 0:
        return
    mode = _FALLOC_PUNCH_HOLE | _FALLOC_KEEP_SIZE
    if _LIBC.fallocate(fd, mode, offset, length) == 0:
        return
    code = ctypes.get_errno()
    if code not in (errno.EOPNOTSUPP, errno.ENOSYS):
        raise OSError(code, os.strerror(code), "fallocate(PUNCH_HOLE)")
    end = min(offset + length, os.fstat(fd).st_size)  # KEEP_SIZE: never extend
    while offset < end:
        offset += os.pwrite(fd, _ZEROS[: min(len(_ZEROS), end - offset)], offset)
