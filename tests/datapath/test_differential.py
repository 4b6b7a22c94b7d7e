"""Differential POSIX suite: every step on the mount and on a native directory, compared.

Return values / errno of each step, then the whole tree (modes, sizes, nlink, owners,
contents, xattrs/ACLs, symlinks, listings, hard-link groups) must be equal. Steps run as
root and, for permission checks, as ``nobody`` in a forked child.
"""

from __future__ import annotations

import fcntl
import os
import struct

import pytest

from hamod.datapath import libc
from tests.datapath.harness import Step, World, run_as, snapshot

pytestmark = pytest.mark.lab

RW, WO, RO = os.O_RDWR, os.O_WRONLY, os.O_RDONLY
C = os.O_CREAT
GiB = 1 << 30
T1 = 1_234_567_890_123_456_789
T2 = 1_111_111_111_000_000_001


def acl(*entries: tuple[int, int, int]) -> bytes:
    """A system.posix_acl_access value: (tag, perm, id) entries, version 2."""
    return struct.pack("<I", 2) + b"".join(struct.pack("<HHI", t, p, i) for t, p, i in entries)


ACL_USER_OBJ, ACL_USER, ACL_GROUP_OBJ, ACL_MASK, ACL_OTHER = 0x01, 0x02, 0x04, 0x10, 0x20
UNDEF = 0xFFFFFFFF
ACL_NOBODY_RW = acl(
    (ACL_USER_OBJ, 6, UNDEF),
    (ACL_USER, 6, 65534),
    (ACL_GROUP_OBJ, 4, UNDEF),
    (ACL_MASK, 6, UNDEF),
    (ACL_OTHER, 0, UNDEF),
)

SCRIPT: list[Step] = [
    # create / open flags
    ("open", "a", "f", C | os.O_EXCL | RW, 0o640),
    ("open", "b", "f", C | os.O_EXCL | RW, 0o640),  # EEXIST
    ("write", "a", b"hello world"),
    ("pread", "a", 0, 100),
    ("open", "t", "f", WO | os.O_TRUNC),
    ("fstat", "a"),
    ("close", "t"),
    ("write", "a", b"after-trunc"),  # offset 11 of an emptied file -> hole of 11 bytes
    ("open", "ap", "f", WO | os.O_APPEND),
    ("write", "ap", b"APPENDED"),
    ("pwrite", "a", 0, b"XY"),
    ("write", "ap", b"++"),
    ("close", "ap"),
    ("pread", "a", 0, 100),
    ("open", "s", "sync", C | WO | os.O_SYNC, 0o600),
    ("write", "s", b"s" * 5000),
    ("close", "s"),
    ("open", "d", "dsync", C | WO | os.O_DSYNC, 0o600),
    ("pwrite", "d", 4096, b"d" * 100),
    ("close", "d"),
    ("open", "x", "direct", C | RW | os.O_DIRECT, 0o600),
    ("direct_write", "x", 0, 8192, 7),
    ("direct_write", "x", 8192, 4096, 9),
    ("pwrite", "x", 3, b"unaligned"),  # EINVAL natively with O_DIRECT
    ("close", "x"),
    ("open", "r", "missing", RO),  # ENOENT
    ("open", "r", "f", RO | os.O_DIRECTORY),  # ENOTDIR
    # big offsets, holes, seek
    ("open", "big", "big", C | RW, 0o644),
    ("pwrite", "big", 5 * GiB, b"tail"),
    ("pwrite", "big", 1 << 20, b"middle"),
    ("fstat", "big"),
    ("pread", "big", 5 * GiB - 2, 10),
    ("pread", "big", 4096, 64),
    ("lseek", "big", 0, os.SEEK_DATA),
    ("lseek", "big", (1 << 20) + 4096, os.SEEK_HOLE),
    ("lseek", "big", 2 << 20, os.SEEK_DATA),
    ("lseek", "big", 6 * GiB, os.SEEK_DATA),  # ENXIO
    ("ftruncate", "big", 3 * GiB),
    ("fstat", "big"),
    ("fallocate", "big", 0, 0, 1 << 20),
    ("fallocate", "big", libc.FALLOC_FL_PUNCH_HOLE | libc.FALLOC_FL_KEEP_SIZE, 1 << 20, 4096),
    ("pread", "big", 1 << 20, 16),
    ("fallocate", "big", libc.FALLOC_FL_KEEP_SIZE, 3 * GiB, 8192),
    ("fallocate", "big", libc.FALLOC_FL_PUNCH_HOLE, 0, 4096),  # EOPNOTSUPP without KEEP_SIZE
    ("fstat", "big"),
    ("fsync", "big"),
    ("fdatasync", "big"),
    ("close", "big"),
    ("truncate", "big", 10),
    ("truncate", "nope", 10),
    # directories
    ("mkdir", "d1", 0o755),
    ("mkdir", "d1", 0o755),  # EEXIST
    ("mkdir", "d1/d2", 0o700),
    ("mkdir", "nope/d", 0o755),  # ENOENT
    ("fsyncdir", "d1"),
    ("rmdir", "d1"),  # ENOTEMPTY
    ("rmdir", "f"),  # ENOTDIR
    ("stat", "d1"),
    # rename
    ("open", "g", "g", C | WO, 0o600),
    ("write", "g", b"gee"),
    ("close", "g"),
    ("rename", "g", "d1/g"),
    ("rename", "f", "d1/g"),  # over an existing file
    ("rename", "sync", "d1/g", libc.RENAME_NOREPLACE),  # EEXIST
    ("rename", "sync", "dsync", libc.RENAME_EXCHANGE),
    ("rename", "sync", "nothere", libc.RENAME_EXCHANGE),  # ENOENT
    ("rename", "d1/d2", "d3"),
    ("rename", "d1", "d1/sub"),  # EINVAL
    ("rename", "d3", "d1/g"),  # ENOTDIR
    ("mkdir", "d4", 0o755),
    ("rename", "d3", "d4"),  # over an empty directory
    ("listdir", ""),
    ("listdir", "d1"),
    # hard links, symlinks
    ("link", "d1/g", "hl"),
    ("link", "d1/g", "hl"),  # EEXIST
    ("link", "d4", "dl"),  # EPERM (directory)
    ("stat", "hl"),
    ("stat", "d1/g"),
    ("symlink", "d1/g", "sl"),
    ("symlink", "/nowhere", "dangling"),
    ("readlink", "sl"),
    ("readlink", "hl"),  # EINVAL
    ("stat", "sl"),
    ("mknod_fifo", "fifo"),
    ("stat", "fifo"),
    # unlink of an open file keeps working through the handle
    ("open", "u", "unl", C | RW, 0o644),
    ("write", "u", b"still here"),
    ("unlink", "unl"),
    ("unlink", "unl"),  # ENOENT
    ("pwrite", "u", 100, b"more"),
    ("fstat", "u"),
    ("pread", "u", 0, 200),
    ("ftruncate", "u", 5),
    ("fsync", "u"),
    ("close", "u"),
    # an open file whose other name survives
    ("open", "hh", "hl", RW),
    ("unlink", "hl"),
    ("pwrite", "hh", 0, b"via-unlinked-name"),
    ("close", "hh"),
    # metadata
    ("chmod", "d1/g", 0o4751),
    ("stat", "d1/g"),
    ("chown", "d1/g", 65534, 65534),
    ("stat", "d1/g"),
    ("chown", "sl", 65534, -1),
    ("stat", "sl"),
    ("utime", "dsync", T1, T2),
    ("mtime", "dsync"),
    ("utime", "dsync", -2, T1),  # atime OMIT
    ("mtime", "dsync"),
    ("utime", "nope", T1, T1),
    # xattrs and ACLs
    ("setxattr", "dsync", "user.k", b"v1"),
    ("setxattr", "dsync", "user.k", b"v2", os.XATTR_CREATE),  # EEXIST
    ("setxattr", "dsync", "user.new", b"v", os.XATTR_REPLACE),  # ENODATA
    ("setxattr", "dsync", "trusted.t", b"\x00\x01"),
    ("getxattr", "dsync", "user.k"),
    ("getxattr", "dsync", "user.none"),
    ("listxattr", "dsync"),
    ("removexattr", "dsync", "user.k"),
    ("removexattr", "dsync", "user.k"),
    ("setxattr", "sl", "user.k", b"x"),  # EPERM on a symlink
    ("setxattr", "d1", "system.posix_acl_access", ACL_NOBODY_RW),
    ("stat", "d1"),
    ("getxattr", "d1", "system.posix_acl_access"),
    ("setxattr", "d4", "system.posix_acl_default", ACL_NOBODY_RW),
    ("open", "i", "d4/inherits", C | WO, 0o666),
    ("close", "i"),
    ("stat", "d4/inherits"),
    ("listxattr", "d4/inherits"),
    ("mkdir", "d4/subdir", 0o777),
    ("listxattr", "d4/subdir"),
    # shared mmap, locks, statfs
    ("open", "m", "mm", C | RW, 0o644),
    ("ftruncate", "m", 8192),
    ("mmap_write", "m", 4000, b"mapped!"),
    ("pread", "m", 3990, 30),
    ("flock", "m", fcntl.LOCK_EX | fcntl.LOCK_NB),
    ("lockf", "m", fcntl.LOCK_EX | fcntl.LOCK_NB, 100),
    ("flock", "m", fcntl.LOCK_UN),
    ("close", "m"),
    ("statfs",),
    ("access", "d1/g", os.R_OK | os.X_OK),
    # remove
    ("unlink", "d1"),  # EISDIR
    ("rmdir", "d4/subdir"),
    ("unlink", "fifo"),
    ("unlink", "dangling"),
]


def _compare(mnt: str, nat: str, steps: list[Step]) -> None:
    wm, wn = World(mnt), World(nat)
    try:
        for i, step in enumerate(steps):
            got, want = wm.run(step), wn.run(step)
            assert got == want, f"step {i} {step!r}: mount {got} != native {want}"
    finally:
        wm.close_all()
        wn.close_all()
    assert snapshot(mnt) == snapshot(nat)


def test_scripted_sequence_matches_native(mounted: tuple[str, str]) -> None:
    mnt, nat = mounted
    _compare(mnt, nat, SCRIPT)


AS_NOBODY: list[Step] = [
    ("open", "a", "rootonly", RO),  # EACCES
    ("open", "a", "rootonly", WO),
    ("open", "b", "aclrw", RW),  # allowed by the ACL entry for nobody
    ("write", "b", b"acl ok"),
    ("close", "b"),
    ("chmod", "rootonly", 0o777),  # EPERM: not the owner
    ("chown", "mine", 0, 0),  # EPERM
    ("unlink", "sticky/rootfile"),  # EPERM: sticky directory
    ("open", "c", "mine", C | RW, 0o666),
    ("write", "c", b"x"),
    ("close", "c"),
    ("stat", "mine"),
    ("mkdir", "mydir", 0o777),
    ("stat", "mydir"),
    ("open", "e", "sgid/new", C | WO, 0o644),
    ("close", "e"),
    ("stat", "sgid/new"),
    ("mkdir", "sgid/newdir", 0o755),
    ("stat", "sgid/newdir"),
    ("utime", "rootonly", None, None),  # EACCES: no write permission
    ("utime", "mine", T1, T1),
    ("mtime", "mine"),
    ("setxattr", "rootonly", "user.x", b"1"),  # EACCES
    ("setxattr", "mine", "trusted.x", b"1"),  # EPERM
    ("access", "rootonly", os.R_OK),
    ("truncate", "rootonly", 0),  # EACCES
    ("mkdir", "ro/x", 0o755),  # EACCES
]

ROOT_SETUP: list[Step] = [
    ("open", "a", "rootonly", C | WO, 0o600),
    ("close", "a"),
    ("open", "a", "aclrw", C | WO, 0o600),
    ("close", "a"),
    ("setxattr", "aclrw", "system.posix_acl_access", ACL_NOBODY_RW),
    ("mkdir", "sticky", 0o1777),
    ("open", "a", "sticky/rootfile", C | WO, 0o666),
    ("close", "a"),
    ("mkdir", "sgid", 0o2777),
    ("chown", "sgid", 0, 4242),
    ("chmod", "sgid", 0o2777),
    ("mkdir", "ro", 0o555),
]


def test_permissions_as_nobody_match_native(mounted: tuple[str, str]) -> None:
    mnt, nat = mounted
    for root in (mnt, nat):
        assert World(root).run_all(ROOT_SETUP) == [("ok", None)] * len(ROOT_SETUP)
    got = run_as(65534, 65534, mnt, AS_NOBODY)
    want = run_as(65534, 65534, nat, AS_NOBODY)
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        assert g == w, f"step {i} {AS_NOBODY[i]!r}: mount {g} != native {w}"
    assert snapshot(mnt) == snapshot(nat)


def test_umask_applies_as_native(mounted: tuple[str, str]) -> None:
    mnt, nat = mounted
    old = os.umask(0o027)
    try:
        _compare(
            mnt,
            nat,
            [
                ("open", "a", "f", C | WO, 0o666),
                ("close", "a"),
                ("stat", "f"),
                ("mkdir", "d", 0o777),
                ("stat", "d"),
                ("setxattr", "d", "system.posix_acl_default", ACL_NOBODY_RW),
                ("open", "a", "d/f", C | WO, 0o666),
                ("close", "a"),
                ("stat", "d/f"),
            ],
        )
    finally:
        os.umask(old)
