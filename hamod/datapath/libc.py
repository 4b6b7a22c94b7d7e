"""The few Linux syscalls Python's ``os`` module lacks, through ctypes: renameat2,
fallocate with a mode, and utimensat with UTIME_NOW / UTIME_OMIT. Errors raise OSError
with the kernel's errno, like ``os`` does.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)

RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
RENAME_WHITEOUT = 4

FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02
FALLOC_FL_ZERO_RANGE = 0x10

UTIME_NOW = (1 << 30) - 1
UTIME_OMIT = (1 << 30) - 2
AT_SYMLINK_NOFOLLOW = 0x100
AT_FDCWD = -100


class Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


_libc.renameat2.argtypes = [
    ctypes.c_int,
    ctypes.c_char_p,
    ctypes.c_int,
    ctypes.c_char_p,
    ctypes.c_uint,
]
_libc.renameat2.restype = ctypes.c_int
_libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
_libc.fallocate.restype = ctypes.c_int
_libc.utimensat.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.POINTER(Timespec), ctypes.c_int]
_libc.utimensat.restype = ctypes.c_int
_libc.syncfs.argtypes = [ctypes.c_int]
_libc.syncfs.restype = ctypes.c_int


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def renameat2(olddirfd: int, old: str, newdirfd: int, new: str, flags: int) -> None:
    """renameat2(2), with RENAME_NOREPLACE / RENAME_EXCHANGE."""
    ret = _libc.renameat2(olddirfd, os.fsencode(old), newdirfd, os.fsencode(new), flags)
    _check(ret, "renameat2")


def syncfs(fd: int) -> None:
    """syncfs(2): write back the file system holding ``fd``; unlike sync(2) it reports
    a write-back error (EIO, ENOSPC) that happened since the descriptor was opened."""
    _check(_libc.syncfs(fd), "syncfs")


def fallocate(fd: int, mode: int, offset: int, length: int) -> None:
    """fallocate(2) with any mode (punch hole, zero range, keep size)."""
    _check(_libc.fallocate(fd, mode, offset, length), "fallocate")


def timespec_pair(atime_ns: int | None, mtime_ns: int | None) -> ctypes.Array[Timespec]:
    """The two timespecs of utimensat: ``None`` is UTIME_NOW, -2 (OMIT) is UTIME_OMIT."""
    pair = (Timespec * 2)()
    for i, ns in enumerate((atime_ns, mtime_ns)):
        if ns is None:
            pair[i].tv_sec, pair[i].tv_nsec = 0, UTIME_NOW
        elif ns == -2:
            pair[i].tv_sec, pair[i].tv_nsec = 0, UTIME_OMIT
        else:
            pair[i].tv_sec, pair[i].tv_nsec = divmod(ns, 10**9)
    return pair


def utimensat(
    dirfd: int,
    path: str | None,
    atime_ns: int | None,
    mtime_ns: int | None,
    *,
    follow: bool = False,
) -> None:
    """utimensat(2), not following a final symlink unless ``follow``; ``path=None`` is
    futimens(dirfd)."""
    times = timespec_pair(atime_ns, mtime_ns)
    if path is None:
        ret = _libc.utimensat(dirfd, None, times, 0)
    else:
        flags = 0 if follow else AT_SYMLINK_NOFOLLOW
        ret = _libc.utimensat(dirfd, os.fsencode(path), times, flags)
    _check(ret, "utimensat")
