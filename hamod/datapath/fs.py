"""The FUSE operations of the data path: every call done on the directory underneath.

:class:`MirrorFS` holds a file descriptor on the replicated directory opened *before*
the mount hid it, and does every operation relative to it with the ``*at`` syscalls
(``openat``, ``mkdirat``, ``unlinkat``, ``renameat2``, ``linkat``, ``symlinkat``,
``fchmodat``, ``fchownat``, ``utimensat``, ``fstatat``, ``fstatvfs``) or, for xattrs and
truncate, through ``/proc/self/fd/<base>/<path>``, which resolves to the directory
underneath and never re-enters the mount. File handles are the kernel file descriptors
of the files underneath; reads and writes are a single ``preadv``/``pwrite``.

Permissions are the kernel's (``default_permissions`` + POSIX ACLs); this process runs
as root and gives new files the caller's owner (or the directory's group when it is
set-group-ID), applying the caller's umask unless the parent has a default ACL, as the
kernel would. Before each mutating operation the change tracker's hook is called (see
:mod:`.tracking`; a tracker failure fails the call with ``EIO``, nothing done locally);
after it succeeded, and before the reply, a :class:`~hamod.datapath.mutation.Mutation`
carrying the hook's number goes to the :class:`Shipper`.
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat
from typing import Any

from hamod.datapath import libc
from hamod.datapath.base import (
    FUSE_CAP_DONT_MASK,
    FUSE_CAP_POSIX_ACL,
    STRIP_FLAGS,
    WRITE_ACCESS,
    caller,
    rel_path,
    track_path,
)
from hamod.datapath.mutation import Mutation, Op
from hamod.datapath.names import NameOps
from hamod.tracking.types import Create, FileRef


class MirrorFS(NameOps):
    """mfusepy operations (raw file-info mode) over the directory behind ``base_fd``."""

    use_ns = True

    # -- lifecycle --------------------------------------------------------------------

    def init_with_config(self, conn: Any, config: Any) -> None:
        if config is not None:
            config.use_ino = 1
            config.readdir_ino = 1
            config.hard_remove = 0  # see LayerBase._hidden
            config.nullpath_ok = 0
            config.entry_timeout = self.timeouts.entry
            config.attr_timeout = self.timeouts.attr
            config.negative_timeout = self.timeouts.negative
        if conn is not None:
            conn.want |= (FUSE_CAP_POSIX_ACL | FUSE_CAP_DONT_MASK) & conn.capable

    def destroy(self, path: str) -> None:
        return None

    # -- reads: never shipped ---------------------------------------------------------

    def getattr(self, path: str | None, fh: int | None) -> os.stat_result:
        if fh is not None:
            return os.fstat(fh)
        if path is None:
            raise OSError(errno.ESTALE, os.strerror(errno.ESTALE))
        if self._is_hidden(path):
            return os.stat(self._procpath(path))
        st = os.stat(rel_path(path), dir_fd=self.base, follow_symlinks=False)
        if st.st_nlink > 1 and not stat.S_ISDIR(st.st_mode):
            self._seen(st.st_ino, path)
        return st

    def readlink(self, path: str) -> str:
        return os.readlink(rel_path(path), dir_fd=self.base)

    def statfs(self, path: str) -> dict[str, int]:
        sv = os.statvfs(self.base)
        return {
            "f_bsize": sv.f_bsize,
            "f_frsize": sv.f_frsize,
            "f_blocks": sv.f_blocks,
            "f_bfree": sv.f_bfree,
            "f_bavail": sv.f_bavail,
            "f_files": sv.f_files,
            "f_ffree": sv.f_ffree,
            "f_favail": sv.f_favail,
            "f_namemax": sv.f_namemax,
        }

    def getxattr(self, path: str, name: str, *args: Any) -> bytes:
        return os.getxattr(self._procpath(path), name, follow_symlinks=False)

    def listxattr(self, path: str) -> list[str]:
        return os.listxattr(self._procpath(path), follow_symlinks=False)

    def opendir(self, path: str) -> int:
        return os.open(rel_path(path), os.O_RDONLY | os.O_DIRECTORY, dir_fd=self.base)

    def readdir(self, path: str | None, fh: int) -> list[tuple[str, dict[str, int], int]]:
        out: list[tuple[str, dict[str, int], int]] = [
            (".", {"st_mode": stat.S_IFDIR}, 0),
            ("..", {"st_mode": stat.S_IFDIR}, 0),
        ]
        with os.scandir(fh) as entries:
            for e in entries:
                if e.is_symlink():
                    kind = stat.S_IFLNK
                elif e.is_dir(follow_symlinks=False):
                    kind = stat.S_IFDIR
                elif e.is_file(follow_symlinks=False):
                    kind = stat.S_IFREG
                else:
                    kind = stat.S_IFMT(e.stat(follow_symlinks=False).st_mode)
                out.append((e.name, {"st_mode": kind, "st_ino": e.inode()}, 0))
        return out

    def releasedir(self, path: str | None, fh: int) -> None:
        os.close(fh)

    def lseek(self, fh: int, offset: int, whence: int) -> int:
        return os.lseek(fh, offset, whence)

    def read(self, buf: int, size: int, offset: int, fi: Any) -> int:
        fh = int(fi.fh)
        if fi.flags & os.O_DIRECT:
            bounce = self._bounce(size)
            n = os.preadv(fh, [memoryview(bounce)[:size]], offset)
            ctypes.memmove(buf, ctypes.addressof(ctypes.c_char.from_buffer(bounce)), n)
            return n
        return os.preadv(fh, [(ctypes.c_char * size).from_address(buf)], offset)

    # -- files ------------------------------------------------------------------------

    def open(self, path: str, fi: Any) -> int:
        flags = int(fi.flags)
        writing = bool(flags & WRITE_ACCESS) or bool(flags & os.O_TRUNC)
        if writing:
            self._rw()
        rel = rel_path(path)
        n = 0
        if flags & os.O_TRUNC and self._tracks:
            # Before the (atomic) O_TRUNC open; libfuse's path lock keeps a rename or
            # unlink of this path from running between the stat and the open.
            pre = os.stat(rel, dir_fd=self.base, follow_symlinks=False)
            if stat.S_ISREG(pre.st_mode):
                n = self._track_truncate(FileRef(track_path(path), pre.st_ino), 0)
        fh = os.open(rel, flags & ~STRIP_FLAGS, dir_fd=self.base)
        fi.fh = fh
        st = os.fstat(fh)
        self._inos[fh] = st.st_ino
        # Another name of a hard-linked file is another kernel inode with its own cache.
        fi.keep_cache = 0 if self.read_only or st.st_nlink > 1 else 1
        if writing:
            self._ship(Mutation(Op.OPEN, path, handle=fh, flags=flags, track=n))
        return 0

    def create(self, path: str, mode: int, fi: Any) -> int:
        self._rw()
        rel = rel_path(path)
        uid, gid, umask = caller()
        flags = int(fi.flags)
        mode = self._new_mode(rel, mode, umask)
        op: Create | None = None
        n = 0
        if self._tracks:  # announce only a create that creates (else: an open)
            try:
                os.stat(rel, dir_fd=self.base, follow_symlinks=False)
            except FileNotFoundError:
                op = Create(track_path(path))
                n = self._announce(op)
            else:
                if flags & os.O_EXCL:
                    raise OSError(errno.EEXIST, os.strerror(errno.EEXIST), path)
                return self.open(path, fi)
        try:
            fh = os.open(
                rel, (flags & ~STRIP_FLAGS) | os.O_CREAT | os.O_EXCL, mode, dir_fd=self.base
            )
        except FileExistsError:
            self._failed(op)
            if flags & os.O_EXCL:
                raise
            return self.open(path, fi)
        except OSError:
            self._failed(op)
            raise
        try:
            uid, gid = self._owner(rel, uid, gid)
            st = os.fstat(fh)
            if (st.st_uid, st.st_gid) != (uid, gid):
                os.fchown(fh, uid, gid)
                if mode & (stat.S_ISUID | stat.S_ISGID):
                    os.fchmod(fh, stat.S_IMODE(st.st_mode))
        except OSError:
            os.close(fh)
            os.unlink(rel, dir_fd=self.base)
            self._failed(op)
            raise
        fi.fh = fh
        fi.keep_cache = 1
        self._inos[fh] = st.st_ino
        self._ship(
            Mutation(Op.CREATE, path, handle=fh, mode=mode, flags=flags, uid=uid, gid=gid, track=n)
        )
        return 0

    def write(self, path: str | None, buf: int, size: int, offset: int, fi: Any) -> int:
        self._rw()
        fh = int(fi.fh)
        flags = int(fi.flags)
        n = self._track_write(self._fh_ref(path, fh), offset, size) if self._tracks else 0
        if flags & os.O_DIRECT:
            bounce = self._bounce(size)
            ctypes.memmove(ctypes.addressof(ctypes.c_char.from_buffer(bounce)), buf, size)
            done = os.pwrite(fh, memoryview(bounce)[:size], offset)
        else:
            done = os.pwrite(fh, (ctypes.c_char * size).from_address(buf), offset)
        data = ctypes.string_at(buf, done) if self.shipper.wants_data else None
        self._ship(
            Mutation(
                Op.WRITE,
                path,
                handle=fh,
                offset=offset,
                length=done,
                data=data,
                flags=flags,
                track=n,
            )
        )
        return done

    def truncate(self, path: str | None, length: int, fh: int | None) -> None:
        self._rw()
        n = 0
        if self._tracks:
            ref = self._fh_ref(path, fh) if fh is not None else self._path_ref(path)
            n = self._track_truncate(ref, length)
        if fh is not None:
            os.ftruncate(fh, length)
        elif path is not None:
            os.truncate(self._procpath(path), length)
        else:
            raise OSError(errno.ESTALE, os.strerror(errno.ESTALE))
        self._ship(Mutation(Op.TRUNCATE, path, handle=fh, length=length, track=n))

    def fallocate(self, path: str | None, mode: int, offset: int, size: int, fi: Any) -> None:
        self._rw()
        fh = int(fi.fh)
        n = self._track_write(self._fh_ref(path, fh), offset, size) if self._tracks else 0
        libc.fallocate(fh, mode, offset, size)
        self._ship(
            Mutation(Op.FALLOCATE, path, handle=fh, mode=mode, offset=offset, length=size, track=n)
        )

    def fsync(self, path: str | None, datasync: int, fi: Any) -> None:
        fh = int(fi.fh)
        sync = os.fdatasync if datasync else os.fsync
        if self.read_only:
            sync(fh)
            return
        # the frame goes first: the peer's flush overlaps ours (the shipper runs ours
        # exactly once, while it waits for the peer's acknowledgement)
        self._ship(Mutation(Op.FSYNC, path, handle=fh, flags=1 if datasync else 0),
                   lambda: sync(fh))  # fmt: skip

    def fsyncdir(self, path: str | None, datasync: int, fh: int) -> None:
        os.fsync(fh)
        if not self.read_only:
            self._ship(Mutation(Op.FSYNCDIR, path, handle=fh, flags=1 if datasync else 0))

    def flush(self, path: str | None, fi: Any) -> None:
        return None

    def release(self, path: str | None, fi: Any) -> None:
        fh = int(fi.fh)
        # Shipped before the close: once closed, the number can be reused by an open.
        if int(fi.flags) & WRITE_ACCESS and not self.read_only:
            self._ship(Mutation(Op.RELEASE, path, handle=fh))
        self._inos.pop(fh, None)
        os.close(fh)
