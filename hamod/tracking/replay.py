"""Reference application of a :class:`~hamod.tracking.types.ChangeSet` between two local
trees: what a resync must do, written plainly (the tests' oracle, and the resync's
specification; the real resync does the same over the peer link, online).

Owns nothing on disk but the target tree it is asked to change. Order: replay the ops
(an op that fails on the target adds its names to the reconcile set), reconcile names
whole (shallowest first), copy regions and tails, set sizes, then copy attributes
(mode, owner, xattrs, times; deepest first) of every path that may have changed and of
the parents of every op. Each side's set must first be completed by :func:`resolve_names`
on the node that tracked it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from dataclasses import dataclass, replace
from pathlib import Path

from hamod.errors import UsageError
from hamod.tracking.types import (
    ChangeSet,
    Create,
    FileChanges,
    Link,
    Mkdir,
    Mknod,
    NsOp,
    Rename,
    Rmdir,
    Symlink,
    Unlink,
    op_paths,
    rename_path,
)

__all__ = ["Applied", "apply_changes", "resolve_names"]

_RENAME_EXCHANGE = 2


@dataclass(frozen=True)
class Applied:
    replayed: int
    failed_ops: tuple[NsOp, ...]
    reconciled: tuple[str, ...]
    bytes_copied: int


def _rel(path: str) -> str:
    return path.lstrip("/")


def _parent(path: str) -> str:
    return _rel(path).rpartition("/")[0]


def _depth(path: str) -> int:
    return _rel(path).count("/") + (1 if _rel(path) else 0)


def _real_dir(root: Path, rel: str) -> bool:
    """Whether ``rel`` below ``root`` is a directory reached through directories only
    (no symlink on the way: an operation there cannot escape the tree)."""
    here = root
    for part in [p for p in rel.split("/") if p]:
        here = here / part
        try:
            if not stat.S_ISDIR(os.lstat(here).st_mode):
                return False
        except OSError:
            return False
    return True


def resolve_names(changes: ChangeSet, root: Path) -> ChangeSet:
    """Complete ``changes`` on the node that tracked them, by one scan of its ``root``
    (only when needed): give each orphan its current names, and give a changed file
    that has several hard links all its names (a change through one name is a change of
    every name; the peer's replay may remove the name it was recorded under)."""
    wanted: dict[int, FileChanges] = dict(changes.orphans)
    for path, file_changes in changes.files.items():
        with contextlib.suppress(OSError):
            st = os.lstat(root / _rel(path))
            if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
                known = wanted.get(st.st_ino)
                wanted[st.st_ino] = known.union(file_changes) if known else file_changes
    if not wanted:
        return changes
    files = dict(changes.files)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames + dirnames:
            full = os.path.join(dirpath, name)
            found = wanted.get(os.lstat(full).st_ino)
            if found is not None:
                rel = os.path.relpath(full, root)
                files[rel] = files[rel].union(found) if rel in files else found
    return replace(changes, files=files, orphans={})  # an orphan not found has no name


def _replay(op: NsOp, t: Path) -> None:
    for path in op_paths(op):
        if not _real_dir(t, _parent(path)):
            raise NotADirectoryError(path)  # never act through a symlink of the target
    if isinstance(op, Create):
        os.close(os.open(t / _rel(op.path), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    elif isinstance(op, Mkdir):
        os.mkdir(t / _rel(op.path), 0o700)
    elif isinstance(op, Mknod):
        os.mknod(t / _rel(op.path), op.mode, op.rdev)
    elif isinstance(op, Symlink):
        os.symlink(op.target, t / _rel(op.path))
    elif isinstance(op, Link):
        os.link(t / _rel(op.existing), t / _rel(op.new), follow_symlinks=False)
    elif isinstance(op, Unlink):
        os.unlink(t / _rel(op.path))
    elif isinstance(op, Rmdir):
        os.rmdir(t / _rel(op.path))
    else:
        old, new = t / _rel(op.old), t / _rel(op.new)
        if op.exchange:
            _exchange(old, new)
        else:
            st = os.lstat(old)  # ENOENT rather than a silent success on a missing source
            with contextlib.suppress(FileNotFoundError):
                if os.path.samestat(st, os.lstat(new)):  # links of one inode: a no-op here,
                    raise FileExistsError(str(new))  # not what the source did: reconcile
            os.rename(old, new)


def _exchange(a: Path, b: Path) -> None:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    at_fdcwd = -100
    rc = libc.renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE)
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), str(a))


class _Applier:
    def __init__(self, changes: ChangeSet, source: Path, target: Path) -> None:
        self.changes, self.s, self.t = changes, source, target
        self.copied = 0
        self.meta: set[str] = set()
        self._source_links: dict[int, list[str]] | None = None

    def _remove(self, path: Path) -> None:
        st = os.lstat(path)
        if stat.S_ISDIR(st.st_mode):
            shutil.rmtree(path)
        else:
            os.unlink(path)

    def _links(self, ino: int) -> list[str]:
        """Names of the source inode ``ino`` (one scan, only when hard links are met)."""
        if self._source_links is None:
            self._source_links = {}
            for dirpath, _, filenames in os.walk(self.s):
                for name in filenames:
                    full = os.path.join(dirpath, name)
                    st = os.lstat(full)
                    if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
                        rel = os.path.relpath(full, self.s)
                        self._source_links.setdefault(st.st_ino, []).append(rel)
        return self._source_links.get(ino, [])

    def reconcile(self, name: str) -> None:
        """Make the target's entry ``name`` (recursively) equal to the source's."""
        rel = _rel(name)
        src, dst = self.s / rel, self.t / rel
        parent = _parent(rel)
        if not rel:
            raise UsageError("apply_changes: the root itself cannot be reconciled")
        if not _real_dir(self.t, parent):
            self.reconcile(parent)  # covers rel, and nothing is done through a symlink
            return
        with contextlib.suppress(FileNotFoundError):
            self._remove(dst)
        self.meta.add(parent)
        if _real_dir(self.s, parent) and os.path.lexists(src):
            self._copy_entry(rel)

    def _copy_entry(self, rel: str) -> None:
        src, dst = self.s / rel, self.t / rel
        st = os.lstat(src)
        self.meta.add(rel)
        if stat.S_ISDIR(st.st_mode):
            os.mkdir(dst, 0o700)
            for child in sorted(os.listdir(src)):
                self._copy_entry(f"{rel}/{child}" if rel else child)
        elif stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(src), dst)
        elif stat.S_ISREG(st.st_mode):
            shutil.copyfile(src, dst, follow_symlinks=False)
            self.copied += st.st_size
            if st.st_nlink > 1:
                for other in self._links(st.st_ino):
                    peer = self.t / other
                    if other != rel and (self.t / _parent(other)).is_dir():
                        with contextlib.suppress(FileNotFoundError):
                            self._remove(peer)
                        os.link(dst, peer)
                        self.meta.add(_parent(other))
        else:
            os.mknod(dst, st.st_mode, st.st_rdev)

    def copy_file(self, rel: str, changes: FileChanges) -> None:
        src, dst = self.s / rel, self.t / rel
        if not (_real_dir(self.s, _parent(rel)) and _real_dir(self.t, _parent(rel))):
            self.reconcile(rel)
            return
        try:
            s_st, d_st = os.lstat(src), os.lstat(dst)
        except (FileNotFoundError, NotADirectoryError):
            self.reconcile(rel)
            return
        if not (stat.S_ISREG(s_st.st_mode) and stat.S_ISREG(d_st.st_mode)):
            if changes.attrs and stat.S_IFMT(s_st.st_mode) == stat.S_IFMT(d_st.st_mode):
                self.meta.add(rel)  # attributes of a directory, symlink or node
            else:
                self.reconcile(rel)
            return
        size, unit = s_st.st_size, self.changes.region_size
        regions = set(changes.regions)
        if changes.tail_from is not None:
            regions.update(range(changes.tail_from, (size + unit - 1) // unit))
        with open(src, "rb") as fs, open(dst, "r+b") as fd:
            for region in sorted(regions):
                if region * unit < size:
                    data = os.pread(fs.fileno(), unit, region * unit)
                    os.pwrite(fd.fileno(), data, region * unit)
                    self.copied += len(data)
            os.ftruncate(fd.fileno(), size)
        self.meta.add(rel)

    def copy_attrs(self, rel: str) -> None:
        src, dst = self.s / rel, self.t / rel
        if not (_real_dir(self.s, _parent(rel)) and _real_dir(self.t, _parent(rel))):
            return
        try:
            st, d_st = os.lstat(src), os.lstat(dst)
        except (FileNotFoundError, NotADirectoryError):
            return
        if stat.S_IFMT(st.st_mode) != stat.S_IFMT(d_st.st_mode):
            return
        link = stat.S_ISLNK(st.st_mode)
        os.chown(dst, st.st_uid, st.st_gid, follow_symlinks=False)
        if not link:
            os.chmod(dst, stat.S_IMODE(st.st_mode))
            wanted = {n: os.getxattr(src, n, follow_symlinks=False) for n in os.listxattr(src)}
            for name in set(os.listxattr(dst)) - set(wanted):
                os.removexattr(dst, name)
            for name, value in wanted.items():
                os.setxattr(dst, name, value)
        os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def apply_changes(changes: ChangeSet, source: Path, target: Path) -> Applied:
    """Make ``target`` equal to ``source`` where ``changes`` says they may differ."""
    if changes.orphans:
        raise UsageError("apply_changes: resolve_names first (orphans left)")
    work = _Applier(changes, Path(source), Path(target))
    names = set(changes.names)
    failed: list[NsOp] = []
    for op in changes.ops:
        try:
            _replay(op, work.t)
        except OSError:
            failed.append(op)
            names.update(op_paths(op))
        for path in op_paths(op):
            work.meta.update((_rel(path), _parent(path)))
        if isinstance(op, Rename):  # what a rename moves keeps needing its fix-up
            pairs = [(op.old, op.new), (op.new, op.old)] if op.exchange else [(op.old, op.new)]
            for bag in (names, work.meta):
                bag.update(
                    _rel(q) for p in list(bag) for a, b in pairs if (q := rename_path(p, a, b))
                )
    for name in sorted(names, key=_depth):
        work.reconcile(name)
    for path, file_changes in changes.files.items():
        work.copy_file(_rel(path), file_changes)
    for path in sorted(work.meta, key=_depth, reverse=True):
        work.copy_attrs(path)
    return Applied(len(changes.ops), tuple(failed), tuple(sorted(names)), work.copied)
