"""Differential harness: the same steps applied to a directory, outcomes and trees compared.

A step is a tuple ``(name, *args)``; :class:`World` runs it against one root directory
and returns a comparable outcome (``("ok", value)`` or ``("err", "ENOENT")``). Open files
are named handles so a script can keep using a file after unlinking it. :func:`snapshot`
captures what must match between the mount and a native directory: type, mode, size,
nlink, owner, content digest, symlink target, xattrs, listing, hard-link groups.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import mmap
import os
import stat
from collections.abc import Sequence
from typing import Any

from hamod.datapath import libc

Step = tuple[Any, ...]
Outcome = tuple[str, Any]
XATTR_PREFIXES = ("user.", "trusted.", "system.posix_acl_access", "system.posix_acl_default")


class World:
    """Runs steps against one root directory."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.fds: dict[str, int] = {}

    def p(self, rel: str) -> str:
        return os.path.join(self.root, rel)

    def close_all(self) -> None:
        for fd in self.fds.values():
            os.close(fd)
        self.fds.clear()

    def run(self, step: Step) -> Outcome:
        name, *args = step
        try:
            value = getattr(self, f"do_{name}")(*args)
        except OSError as exc:
            return ("err", errno.errorcode.get(exc.errno or 0, str(exc.errno)))
        return ("ok", value)

    def run_all(self, steps: Sequence[Step]) -> list[Outcome]:
        return [self.run(s) for s in steps]

    # -- files ----------------------------------------------------------------------
    def do_open(self, h: str, rel: str, flags: int, mode: int = 0o644) -> None:
        self.fds[h] = os.open(self.p(rel), flags, mode)

    def do_close(self, h: str) -> None:
        os.close(self.fds.pop(h))

    def do_write(self, h: str, data: bytes) -> int:
        return os.write(self.fds[h], data)

    def do_pwrite(self, h: str, off: int, data: bytes) -> int:
        return os.pwrite(self.fds[h], data, off)

    def do_read(self, h: str, n: int) -> str:
        return hashlib.sha1(os.read(self.fds[h], n)).hexdigest()

    def do_pread(self, h: str, off: int, n: int) -> str:
        data = os.pread(self.fds[h], n, off)
        return f"{len(data)}:{hashlib.sha1(data).hexdigest()}"

    def do_direct_write(self, h: str, off: int, size: int, byte: int) -> int:
        buf = mmap.mmap(-1, size)
        buf.write(bytes([byte]) * size)
        return os.pwrite(self.fds[h], buf, off)

    def do_lseek(self, h: str, off: int, whence: int) -> int:
        return os.lseek(self.fds[h], off, whence)

    def do_ftruncate(self, h: str, n: int) -> None:
        os.ftruncate(self.fds[h], n)

    def do_truncate(self, rel: str, n: int) -> None:
        os.truncate(self.p(rel), n)

    def do_fallocate(self, h: str, mode: int, off: int, n: int) -> None:
        libc.fallocate(self.fds[h], mode, off, n)

    def do_fsync(self, h: str) -> None:
        os.fsync(self.fds[h])

    def do_fdatasync(self, h: str) -> None:
        os.fdatasync(self.fds[h])

    def do_fsyncdir(self, rel: str) -> None:
        fd = os.open(self.p(rel), os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def do_fstat(self, h: str) -> tuple[int, int, int, int, int]:
        st = os.fstat(self.fds[h])
        return (st.st_mode, st.st_size, st.st_nlink, st.st_uid, st.st_gid)

    def do_mmap_write(self, h: str, off: int, data: bytes) -> None:
        with mmap.mmap(self.fds[h], off + len(data), mmap.MAP_SHARED) as m:
            m[off : off + len(data)] = data
            m.flush()

    def do_flock(self, h: str, op: int) -> None:
        fcntl.flock(self.fds[h], op)

    def do_lockf(self, h: str, cmd: int, length: int) -> None:
        fcntl.lockf(self.fds[h], cmd, length)

    # -- names ----------------------------------------------------------------------
    def do_mkdir(self, rel: str, mode: int = 0o755) -> None:
        os.mkdir(self.p(rel), mode)

    def do_rmdir(self, rel: str) -> None:
        os.rmdir(self.p(rel))

    def do_unlink(self, rel: str) -> None:
        os.unlink(self.p(rel))

    def do_rename(self, a: str, b: str, flags: int = 0) -> None:
        libc.renameat2(libc.AT_FDCWD, self.p(a), libc.AT_FDCWD, self.p(b), flags)

    def do_link(self, a: str, b: str) -> None:
        os.link(self.p(a), self.p(b))

    def do_symlink(self, target: str, rel: str) -> None:
        os.symlink(target, self.p(rel))

    def do_readlink(self, rel: str) -> str:
        return os.readlink(self.p(rel))

    def do_mknod_fifo(self, rel: str) -> None:
        os.mkfifo(self.p(rel), 0o600)

    def do_listdir(self, rel: str) -> list[str]:
        return sorted(os.listdir(self.p(rel)))

    def do_stat(self, rel: str) -> tuple[int, int, int, int, int]:
        st = os.lstat(self.p(rel))
        return (
            st.st_mode,
            st.st_size if not stat.S_ISDIR(st.st_mode) else -1,
            st.st_nlink,
            st.st_uid,
            st.st_gid,
        )

    def do_mtime(self, rel: str) -> tuple[int, int]:
        st = os.lstat(self.p(rel))
        return (st.st_atime_ns, st.st_mtime_ns)

    def do_chmod(self, rel: str, mode: int) -> None:
        os.chmod(self.p(rel), mode)

    def do_chown(self, rel: str, uid: int, gid: int) -> None:
        os.chown(self.p(rel), uid, gid, follow_symlinks=False)

    def do_utime(self, rel: str, atime_ns: int | None, mtime_ns: int | None) -> None:
        libc.utimensat(libc.AT_FDCWD, self.p(rel), atime_ns, mtime_ns)

    def do_access(self, rel: str, mode: int) -> bool:
        return os.access(self.p(rel), mode)

    # -- xattrs ---------------------------------------------------------------------
    def do_setxattr(self, rel: str, name: str, value: bytes, flags: int = 0) -> None:
        os.setxattr(self.p(rel), name, value, flags, follow_symlinks=False)

    def do_getxattr(self, rel: str, name: str) -> bytes:
        return os.getxattr(self.p(rel), name, follow_symlinks=False)

    def do_listxattr(self, rel: str) -> list[str]:
        return sorted(os.listxattr(self.p(rel), follow_symlinks=False))

    def do_removexattr(self, rel: str, name: str) -> None:
        os.removexattr(self.p(rel), name, follow_symlinks=False)

    def do_statfs(self) -> tuple[int, int, int]:
        sv = os.statvfs(self.root)
        return (sv.f_bsize, sv.f_blocks, sv.f_namemax)


def digest(path: str) -> str:
    """SHA-1 of a file's size and non-zero 64 KiB blocks (with their index), found through
    SEEK_DATA/SEEK_HOLE: sparse files of several GiB hash in milliseconds, and a hole
    equals written zeros (ext4 reports an unwritten extent as data or hole depending on
    its page cache, which differs between the mount and native)."""
    block = 1 << 16
    h = hashlib.sha1()
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        h.update(str(size).encode())
        pos, done = 0, -1
        while pos < size:
            try:
                start = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError as exc:
                if exc.errno == errno.ENXIO:
                    break
                raise
            end = os.lseek(fd, start, os.SEEK_HOLE)
            for index in range(max(start // block, done + 1), (end - 1) // block + 1):
                chunk = os.pread(fd, block, index * block)
                if chunk.strip(b"\0"):
                    h.update(index.to_bytes(8, "little") + chunk)
                done = index
            pos = end
    finally:
        os.close(fd)
    return h.hexdigest()


def snapshot(root: str) -> dict[str, Any]:
    """Everything about a tree that must be equal between the mount and native."""
    tree: dict[str, Any] = {}
    inodes: dict[int, list[str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames):
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root)
            st = os.lstat(full)
            entry: dict[str, Any] = {
                "mode": st.st_mode,
                "nlink": st.st_nlink,
                "uid": st.st_uid,
                "gid": st.st_gid,
            }
            if stat.S_ISREG(st.st_mode):
                entry["size"] = st.st_size
                entry["sha1"] = digest(full)
                inodes.setdefault(st.st_ino, []).append(rel)
            elif stat.S_ISLNK(st.st_mode):
                entry["target"] = os.readlink(full)
            elif stat.S_ISDIR(st.st_mode):
                entry["list"] = sorted(os.listdir(full))
            if not stat.S_ISLNK(st.st_mode):
                names = [n for n in os.listxattr(full) if n.startswith(XATTR_PREFIXES)]
                entry["xattrs"] = {n: os.getxattr(full, n).hex() for n in sorted(names)}
            tree[rel] = entry
    tree["<links>"] = sorted(sorted(v) for v in inodes.values() if len(v) > 1)
    return tree


def run_as(uid: int, gid: int, root: str, steps: Sequence[Step]) -> list[Outcome]:
    """Run steps in a forked child with the given real/effective ids (no groups)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 0
        try:
            os.close(r)
            os.setgroups([])
            os.setresgid(gid, gid, gid)
            os.setresuid(uid, uid, uid)
            world = World(root)
            out = world.run_all(steps)
            world.close_all()
            os.write(w, json.dumps(out, default=repr).encode())
        except BaseException:
            code = 1
        os._exit(code)
    os.close(w)
    chunks = []
    while chunk := os.read(r, 65536):
        chunks.append(chunk)
    os.close(r)
    _, status = os.waitpid(pid, 0)
    assert status == 0, "child failed"
    return [tuple(o) for o in json.loads(b"".join(chunks))]  # type: ignore[misc]
