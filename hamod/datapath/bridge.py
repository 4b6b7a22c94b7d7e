"""The glue between libfuse (through mfusepy) and :class:`~hamod.datapath.fs.MirrorFS`.

mfusepy's ``FUSE`` class drops what the data path needs on a few calls, so this subclass
replaces those callbacks: ``rename`` keeps its flags (RENAME_NOREPLACE/EXCHANGE),
chmod/chown/truncate/utimens keep the file handle (an unlinked open file has no path),
utimens keeps UTIME_NOW/UTIME_OMIT, getattr fills ``struct stat`` straight from
``os.stat_result``, read and write pass the kernel buffer's address (no copy), and
``lseek`` (SEEK_DATA/SEEK_HOLE), which mfusepy does not wire, is added. After every
operation the thread leaves the tracking gate it may have entered
(:func:`hamod.datapath.gate.leave_any`), and an EIO answer is reported
(:mod:`hamod.datapath.faults`).
"""

from __future__ import annotations

import ctypes
import errno
from typing import Any

import mfusepy

from hamod.datapath import faults
from hamod.datapath.fs import MirrorFS
from hamod.datapath.gate import leave_any
from hamod.datapath.libc import UTIME_NOW, UTIME_OMIT
from hamod.datapath.mutation import OMIT


def _dec(path: bytes | None) -> str | None:
    return None if path is None else path.decode("utf-8", "surrogateescape")


def _fh(fip: Any) -> int | None:
    return int(fip.contents.fh) if fip else None


def _ns(ts: Any) -> int | None:
    if ts.tv_nsec == UTIME_NOW:
        return None
    if ts.tv_nsec == UTIME_OMIT:
        return OMIT
    return int(ts.tv_sec) * 1_000_000_000 + int(ts.tv_nsec)


class Bridge(mfusepy.FUSE):  # type: ignore[misc]
    """mfusepy.FUSE with the callbacks the data path needs (see the module docstring)."""

    operations: MirrorFS

    def _wrapper(self, func: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            ret = super()._wrapper(func, *args, **kwargs)
        finally:
            leave_any()
        if ret == -errno.EIO:
            faults.report(getattr(func, "__name__", "?"))
        return ret

    def getattr_fuse_3(self, path: bytes | None, buf: Any, fip: Any) -> int:
        st = self.operations.getattr(_dec(path), _fh(fip))
        c = buf.contents
        ctypes.memset(buf, 0, ctypes.sizeof(c))
        c.st_dev = st.st_dev
        c.st_ino = st.st_ino
        c.st_nlink = st.st_nlink
        c.st_mode = st.st_mode
        c.st_uid = st.st_uid
        c.st_gid = st.st_gid
        c.st_rdev = st.st_rdev
        c.st_size = st.st_size
        c.st_blksize = st.st_blksize
        c.st_blocks = st.st_blocks
        c.st_atimespec.tv_sec, c.st_atimespec.tv_nsec = divmod(st.st_atime_ns, 1_000_000_000)
        c.st_mtimespec.tv_sec, c.st_mtimespec.tv_nsec = divmod(st.st_mtime_ns, 1_000_000_000)
        c.st_ctimespec.tv_sec, c.st_ctimespec.tv_nsec = divmod(st.st_ctime_ns, 1_000_000_000)
        return 0

    def rename_fuse_3(self, old: bytes, new: bytes, flags: int) -> int:
        self.operations.rename(_dec(old) or "/", _dec(new) or "/", int(flags))
        return 0

    def chmod_fuse_3(self, path: bytes | None, mode: int, fip: Any) -> int:
        self.operations.chmod(_dec(path), int(mode), _fh(fip))
        return 0

    def chown_fuse_3(self, path: bytes | None, uid: int, gid: int, fip: Any) -> int:
        uid = -1 if uid == 0xFFFFFFFF else uid
        gid = -1 if gid == 0xFFFFFFFF else gid
        self.operations.chown(_dec(path), uid, gid, _fh(fip))
        return 0

    def truncate_fuse_3(self, path: bytes | None, length: int, fip: Any) -> int:
        self.operations.truncate(_dec(path), int(length), _fh(fip))
        return 0

    def utimens_fuse_3(self, path: bytes | None, buf: Any, fip: Any) -> int:
        if buf:
            atime, mtime = _ns(buf.contents.actime), _ns(buf.contents.modtime)
        else:
            atime = mtime = None
        self.operations.utimens(_dec(path), atime, mtime, _fh(fip))
        return 0

    def read(self, path: bytes | None, buf: Any, size: int, offset: int, fip: Any) -> int:
        return self.operations.read(
            ctypes.cast(buf, ctypes.c_void_p).value or 0, size, offset, fip.contents
        )

    def write(self, path: bytes | None, buf: Any, size: int, offset: int, fip: Any) -> int:
        return self.operations.write(
            _dec(path), ctypes.cast(buf, ctypes.c_void_p).value or 0, size, offset, fip.contents
        )

    def getxattr(self, path: bytes, name: bytes, value: Any, size: int, *args: Any) -> int:
        """Without raising through mfusepy's wrapper: the kernel asks for
        ``security.capability`` before every write, and ENODATA is the usual answer."""
        try:
            data = self.operations.getxattr(
                _dec(path) or "/", name.decode("utf-8", "surrogateescape")
            )
        except OSError as exc:
            return -(exc.errno or errno.EIO)
        if not value:
            return len(data)
        if len(data) > size:
            return -errno.ERANGE
        ctypes.memmove(value, data, len(data))
        return len(data)

    def lseek(self, path: bytes | None, offset: int, whence: int, fip: Any) -> int:
        fh = _fh(fip)
        if fh is None:
            return -errno.EINVAL
        return self.operations.lseek(fh, int(offset), int(whence))
