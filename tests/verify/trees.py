"""A tree with every kind of name verify compares, and its copy by rsync (as fullsync).

Built as root on a local directory: files (one sparse over three regions), directories,
symlinks, a fifo, a socket, a character device (when mknod is allowed), hard links,
user and trusted xattrs, access and default ACLs (raw ``system.posix_acl_*`` values:
``setfacl`` is not installed here), modes with suid/sgid/sticky, owners, and a name that
is not UTF-8.
"""

from __future__ import annotations

import os
import shutil
import stat
import struct
import subprocess
from pathlib import Path

import pytest

RS = 64 * 1024  # region size of the tests
BIG = "/data/big"  # three regions: data, hole, data (the last one partial)
BIG_SIZE = 2 * RS + RS // 2
UTF8_BAD = os.fsdecode(b"caf\xe9")  # a Latin-1 name

ACL_USER_OBJ, ACL_USER, ACL_GROUP_OBJ, ACL_MASK, ACL_OTHER = 0x01, 0x02, 0x04, 0x10, 0x20
UNDEF = 0xFFFFFFFF


def acl(*entries: tuple[int, int, int]) -> bytes:
    """A ``system.posix_acl_*`` value (version 2): (tag, perm, id) entries."""
    return struct.pack("<I", 2) + b"".join(struct.pack("<HHI", t, p, i) for t, p, i in entries)


def acl_with(user_perm: int) -> bytes:
    """An ACL granting user 1000 ``user_perm`` (mask rw-, so the mode stays 0660)."""
    return acl(
        (ACL_USER_OBJ, 6, UNDEF),
        (ACL_USER, user_perm, 1000),
        (ACL_GROUP_OBJ, 4, UNDEF),
        (ACL_MASK, 6, UNDEF),
        (ACL_OTHER, 0, UNDEF),
    )


def require_root_and_xattrs(where: Path) -> None:
    """Skip, with the reason, where the tree cannot be built."""
    if os.geteuid() != 0:
        pytest.skip("needs root (owners, trusted.* xattrs, devices)")
    probe = where / ".xattr-probe"
    probe.touch()
    try:
        os.setxattr(probe, "user.probe", b"1")
        os.setxattr(probe, "system.posix_acl_access", acl_with(4))
    except OSError as exc:
        pytest.skip(f"{where}: user xattrs or POSIX ACLs unsupported ({exc.strerror})")
    finally:
        probe.unlink()
    if shutil.which("rsync") is None:
        pytest.skip("rsync is not installed (scripts/setup installs it)")


def write(path: Path, data: bytes, offset: int = 0) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.pwrite(fd, data, offset)
    finally:
        os.close(fd)


def build(root: Path) -> bool:
    """Build the tree under ``root``; returns whether a device node could be made."""
    d = root / "data"
    (root / "dir" / "sub" / "deep").mkdir(parents=True)
    d.mkdir()
    big = root / BIG.lstrip("/")
    write(big, os.urandom(1000))  # region 0: data
    write(big, os.urandom(RS // 2), 2 * RS)  # region 1 a hole, region 2 partial data
    write(d / "small", b"hello")
    (d / "empty").touch()
    write(d / UTF8_BAD, b"latin-1 name")
    write(root / "dir" / "sub" / "deep" / "leaf", b"leaf")
    write(d / "hl1", b"linked")
    os.link(d / "hl1", root / "dir" / "hl2")
    os.link(d / "hl1", d / "hl3")
    write(d / "twin", b"linked")  # same content as hl1, its own inode
    os.symlink("data/small", root / "link")
    os.symlink("nowhere", root / "dangling")
    os.mkfifo(root / "fifo")
    os.mknod(root / "sock", stat.S_IFSOCK | 0o600)
    try:
        os.mknod(root / "null", stat.S_IFCHR | 0o600, os.makedev(1, 3))
        device = True
    except PermissionError:
        device = False
    os.setxattr(d / "small", "user.k", b"v")
    os.setxattr(root / "dir", "user.dir", b"d")
    os.setxattr(d / "small", "trusted.t", b"t")
    write(d / "acl", b"acl")
    os.chmod(d / "acl", 0o660)
    os.setxattr(d / "acl", "system.posix_acl_access", acl_with(6))
    os.setxattr(root / "dir", "system.posix_acl_default", acl_with(4))
    write(d / "private", b"secret")
    os.chmod(d / "private", 0o600)
    write(d / "owned", b"owned")
    os.chown(d / "owned", 1234, 5678)
    os.chown(root / "dangling", 1234, 5678, follow_symlinks=False)
    write(d / "suid", b"#!/bin/sh\n")
    os.chmod(d / "suid", 0o4755)
    os.chmod(root / "dir" / "sub", 0o2775)
    (root / "tmp").mkdir(mode=0o1777)
    os.chmod(root / "tmp", 0o1777)
    return device


def rsync(src: Path, dst: Path) -> None:
    """Copy ``src`` to ``dst`` as fullsync does."""
    subprocess.run(
        ["rsync", "-aHAXS", "--numeric-ids", "--delete", f"{src}/", f"{dst}/"],
        check=True,
        capture_output=True,
    )


def flip_byte(path: Path, offset: int) -> None:
    """Invert one byte in place (size, mode and owner unchanged)."""
    fd = os.open(path, os.O_RDWR)
    try:
        byte = os.pread(fd, 1, offset) or b"\0"
        os.pwrite(fd, bytes([byte[0] ^ 0xFF]), offset)
    finally:
        os.close(fd)
