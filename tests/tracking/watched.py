"""Test helpers: a stand-in for the data path (tells the tracker, then does the operation
on a real directory), a copier that keeps hard links, and a tree comparison."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from hamod.tracking import (
    ChangeTracker,
    Create,
    FileRef,
    Link,
    Mkdir,
    NsOp,
    Rename,
    Rmdir,
    Symlink,
    Unlink,
)


class Watched:
    """What the FUSE data path does, minus FUSE: hook first, then the real operation."""

    def __init__(self, root: Path, tracker: ChangeTracker) -> None:
        self.root = root
        self.tracker = tracker

    def p(self, rel: str) -> Path:
        return self.root / rel

    def ref(self, rel: str) -> FileRef:
        return FileRef(rel, os.lstat(self.p(rel)).st_ino)

    def write(self, rel: str, offset: int, data: bytes) -> None:
        self.tracker.write(self.ref(rel), offset, len(data))
        fd = os.open(self.p(rel), os.O_WRONLY)
        try:
            os.pwrite(fd, data, offset)
        finally:
            os.close(fd)

    def truncate(self, rel: str, size: int) -> None:
        self.tracker.truncate(self.ref(rel), size)
        os.truncate(self.p(rel), size)

    def chmod(self, rel: str, mode: int) -> None:
        self.tracker.setattr(self.ref(rel))
        os.chmod(self.p(rel), mode)

    def setxattr(self, rel: str, name: str, value: bytes) -> None:
        self.tracker.setattr(self.ref(rel))
        os.setxattr(self.p(rel), name, value)

    def _ns(self, op: NsOp, action: object) -> None:
        self.tracker.namespace(op)
        try:
            assert callable(action)
            action()
        except OSError:
            self.tracker.failed(op)

    def create(self, rel: str) -> None:
        path = self.p(rel)
        self._ns(Create(rel), lambda: os.close(os.open(path, os.O_CREAT | os.O_EXCL, 0o644)))

    def mkdir(self, rel: str) -> None:
        self._ns(Mkdir(rel), lambda: os.mkdir(self.p(rel)))

    def symlink(self, rel: str, target: str) -> None:
        self._ns(Symlink(rel, target), lambda: os.symlink(target, self.p(rel)))

    def link(self, existing: str, new: str) -> None:
        ino = os.lstat(self.p(existing)).st_ino
        self._ns(Link(existing, new, ino), lambda: os.link(self.p(existing), self.p(new)))

    def unlink(self, rel: str) -> None:
        st = os.lstat(self.p(rel))
        self._ns(Unlink(rel, st.st_ino, st.st_nlink - 1), lambda: os.unlink(self.p(rel)))

    def rmdir(self, rel: str) -> None:
        self._ns(Rmdir(rel), lambda: os.rmdir(self.p(rel)))

    def rename(self, old: str, new: str) -> None:
        src, dst = self.p(old), self.p(new)
        replaced_ino = remaining = 0
        if os.path.lexists(dst):
            st = os.lstat(dst)
            if os.path.samestat(os.lstat(src), st):
                return  # two links of one inode: rename does nothing, report nothing
            if not stat.S_ISDIR(st.st_mode):
                replaced_ino, remaining = st.st_ino, st.st_nlink - 1
        op = Rename(old, new, False, replaced_ino, remaining)
        self._ns(op, lambda: os.rename(src, dst))


def copy_tree(src: Path, dst: Path) -> None:
    """``cp -a`` in Python: content, modes, owners, xattrs, times, hard links."""
    seen: dict[int, Path] = {}
    os.mkdir(dst)
    for dirpath, dirnames, filenames in os.walk(src):
        rel = os.path.relpath(dirpath, src)
        base = dst / rel if rel != "." else dst
        for name in dirnames + filenames:
            s, d = Path(dirpath) / name, base / name
            st = os.lstat(s)
            if stat.S_ISDIR(st.st_mode):
                os.mkdir(d)
            elif stat.S_ISLNK(st.st_mode):
                os.symlink(os.readlink(s), d)
            elif st.st_ino in seen:
                os.link(seen[st.st_ino], d)
                continue
            else:
                d.write_bytes(s.read_bytes())
                seen[st.st_ino] = d
    for dirpath, dirnames, filenames in os.walk(src, topdown=False):
        rel = os.path.relpath(dirpath, src)
        for name in [*dirnames, *filenames, ""]:
            s = Path(dirpath) / name if name else Path(dirpath)
            d = (dst / rel / name) if name else (dst / rel)
            _copy_meta(s, d)


def _copy_meta(s: Path, d: Path) -> None:
    st = os.lstat(s)
    if not stat.S_ISLNK(st.st_mode):
        os.chmod(d, stat.S_IMODE(st.st_mode))
        for name in os.listxattr(s):
            os.setxattr(d, name, os.getxattr(s, name))
    os.utime(d, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def describe(root: Path) -> dict[str, object]:
    """Everything the comparison covers, per relative path, plus the hard-link groups."""
    out: dict[str, object] = {}
    groups: dict[int, list[str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            full = Path(dirpath) / name
            rel = str(full.relative_to(root))
            st = os.lstat(full)
            kind = stat.S_IFMT(st.st_mode)
            item: tuple[object, ...] = (kind, stat.S_IMODE(st.st_mode), st.st_uid)
            if stat.S_ISLNK(st.st_mode):
                item += (os.readlink(full),)
            else:
                xattrs = sorted((n, os.getxattr(full, n)) for n in os.listxattr(full))
                item += (tuple(xattrs), st.st_mtime_ns)
            if stat.S_ISREG(st.st_mode):
                item += (full.read_bytes(),)
                groups.setdefault(st.st_ino, []).append(rel)
            out[rel] = item
    out["<links>"] = sorted(sorted(g) for g in groups.values() if len(g) > 1)
    return out
