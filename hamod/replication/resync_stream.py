"""The incremental resync as a stream of replication mutations (source side).

:func:`resync_mutations` turns a :class:`~hamod.tracking.types.ChangeSet` (the merged,
name-resolved set of docs/tracking.md) into the ordered mutations that, applied by a
:class:`~hamod.replication.applier.DirectoryApplier` on the target, make the target equal
to the source for everything the set covers: the remote equivalent of
:func:`hamod.tracking.replay.apply_changes`, in the same order (replay namespace ops,
reconcile names whole, copy regions and tails, set sizes, copy attributes deepest first).
Data and attributes are read from the source directory (the one underneath the mount)
while the stream is generated: the application may keep writing, the tracker records
those writes again and the caller runs rounds until the set is small (see
:class:`ResyncStream` for what one round hands to the next).

The source cannot see the target, so the stream uses ops that cannot fail because of the
target's state (``Op.ENSURE``, ``RELINK``, ``MOVE``, ``REMOVE``, ``PUNCH``, ``SETATTRS``;
see their comments in :mod:`hamod.datapath.mutation`), and reconciles whole every name
where a replayed op may have acted on something else than on the source: the names of the
set, and the names of every op at or under one of them (where the reference applier sees
a failure), carried through later renames. Owns nothing on disk.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from hamod.datapath.mutation import Mutation, Op
from hamod.datapath.tracking import Tracker
from hamod.errors import UsageError
from hamod.replication.frames import MAX_FRAME
from hamod.replication.resync_apply import (
    RENAME_EXCHANGE,
    RESYNC_HANDLE_BASE,
    lstat_at,
    open_parent,
    pack_xattrs,
)
from hamod.tracking.types import (
    ChangeSet,
    Create,
    FileChanges,
    FileRef,
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

__all__ = [
    "MAX_CHUNK",
    "Plan",
    "Remaining",
    "ResyncStream",
    "Touched",
    "plan_resync",
    "record_remaining",
    "resync_mutations",
]

MAX_CHUNK: Final = MAX_FRAME // 2
"""Largest data payload of one WRITE (a frame also carries the path)."""
_MISSING: Final = (errno.ENOENT, errno.ENOTDIR, errno.ELOOP)
_READ: Final = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_DIR_READ: Final = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NOATIME: Final = getattr(os, "O_NOATIME", 0)


@dataclass(frozen=True)
class Touched:
    """What one round read from the live source, for the next round: names whose data
    (``data``: reconciled whole, regions copied, removed) or attributes (``attrs``) it
    sent. A read may have raced a namespace op of the next set (a rename away, a new file
    at the name); the next round reconciles whole every name such an op leads to, and
    re-sends the attributes of names moved or replaced."""

    data: frozenset[str] = frozenset()
    attrs: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Remaining:
    """What a round cut short at a checkpoint did not send (see
    :meth:`ResyncStream.remaining`): the regions and tails of ``files``, by name."""

    files: dict[str, FileChanges]
    region_size: int

    @property
    def data_bytes(self) -> int:
        """The whole regions left (tails excluded), for progress."""
        return sum(len(c.regions) for c in self.files.values()) * self.region_size


@dataclass(frozen=True)
class Plan:
    """Totals of a stream, measured on the source as it is now (it is live)."""

    ops: int
    """Namespace ops replayed."""
    reconciled: tuple[str, ...]
    """Names reconciled whole (outermost only)."""
    files: int
    """Files whose regions and tails are copied."""
    mutations: int
    data_bytes: int
    """Payload of the WRITE mutations: what the link carries, for progress and ETA."""


def _rel(path: str) -> str:
    return path.strip("/")


def _abs(rel: str) -> str:
    return "/" + rel


def _parent(rel: str) -> str:
    return rel.rpartition("/")[0]


def _order(rel: str) -> tuple[int, str]:
    return (rel.count("/") + 1 if rel else 0, rel)


def _ancestors(rel: str) -> list[str]:
    parts = rel.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


class _PathSet:
    """Relative paths, with an index of their ancestors."""

    def __init__(self, paths: Iterable[str] = ()) -> None:
        self._paths: set[str] = set()
        self._below: dict[str, int] = {}
        for path in paths:
            self.add(path)

    def add(self, path: str) -> None:
        if path not in self._paths:
            self._paths.add(path)
            for parent in _ancestors(path):
                self._below[parent] = self._below.get(parent, 0) + 1

    def __iter__(self) -> Iterator[str]:
        return iter(self._paths)

    def __contains__(self, path: object) -> bool:
        return path in self._paths

    def covers(self, path: str) -> bool:
        """``path`` or one of its ancestors is in the set."""
        return path in self._paths or self.above(path)

    def above(self, path: str) -> bool:
        """A strict ancestor of ``path`` is in the set."""
        return any(a in self._paths for a in _ancestors(path))

    def translate(self, pairs: tuple[tuple[str, str], ...]) -> set[str]:
        """Add where the members at or under each ``old`` go (they stay too: conservative);
        return those destinations."""
        moved: set[str] = set()
        for old, new in pairs:
            if old in self._paths:
                moved.add(new)
            if old in self._below:  # a directory rename: scan for what is below
                prefix = old + "/"
                moved.update(new + p[len(old) :] for p in self._paths if p.startswith(prefix))
        for path in moved:
            self.add(path)
        return moved


def _pairs(op: Rename) -> tuple[tuple[str, str], ...]:
    old, new = _rel(op.old), _rel(op.new)
    return ((old, new), (new, old)) if op.exchange else ((old, new),)


def _carry(into: dict[str, FileChanges], path: str, *found: FileChanges | None) -> None:
    for changes in found:
        if changes is not None:
            into[path] = into[path].union(changes) if path in into else changes


def _detached(op: NsOp) -> tuple[str, int] | None:
    """(name, inode) when ``op`` takes a name from an inode that keeps other links."""
    if isinstance(op, Unlink) and op.remaining > 0:
        return _rel(op.path), op.ino
    if isinstance(op, Rename) and not op.exchange and op.replaced_ino and op.replaced_remaining:
        return _rel(op.new), op.replaced_ino
    return None


def _ranges(regions: Iterable[int], unit: int, limit: int) -> list[tuple[int, int]]:
    """Byte ranges of ``regions`` below ``limit``, adjacent regions merged."""
    out: list[tuple[int, int]] = []
    for region in sorted(regions):
        start, end = region * unit, min((region + 1) * unit, limit)
        if start >= end:
            continue
        if out and out[-1][1] == start:
            out[-1] = (out[-1][0], end)
        else:
            out.append((start, end))
    return out


class ResyncStream:
    """One round of the resync: iterate it (once) for the mutations.

    ``changes``: the merged set, with names resolved on each side (no orphans).
    ``source``: the source directory. ``chunk``: largest WRITE payload. ``previous``:
    :meth:`touched` of the previous round (or of an interrupted attempt of this one)
    when it ran while the application wrote: always, but for the first round.
    ``dry``: plan only (WRITE mutations carry ``length`` but no data; nothing is read).
    After the iteration, ``reconciled``, ``files``, ``mutations`` and ``data_bytes``
    describe what was produced.

    The stream starts with exactly one mutation per replayed op, in the order of
    ``changes.ops``. To resume an attempt of the same round (same tracker marker, so the
    same ops first) that the link cut: ``applied_ops`` ops the target acknowledged are not
    replayed again, and the names of the next ``unsure_ops`` (sent, not acknowledged: they
    may or may not have been applied) are reconciled whole. Without that knowledge (e.g.
    after a restart of the source), ``unsure_ops=len(changes.ops)`` is always right.
    """

    def __init__(
        self,
        changes: ChangeSet,
        source: Path,
        *,
        chunk: int = 1 << 20,
        previous: Touched | None = None,
        applied_ops: int = 0,
        unsure_ops: int = 0,
        dry: bool = False,
    ) -> None:
        if changes.orphans:
            raise UsageError("resync: resolve_names first (orphans left)")
        if not 0 < chunk <= MAX_CHUNK:
            raise UsageError(f"resync: chunk must be in 1..{MAX_CHUNK}, not {chunk}")
        if min(applied_ops, unsure_ops) < 0 or applied_ops + unsure_ops > len(changes.ops):
            raise UsageError(
                f"resync: {applied_ops} applied and {unsure_ops} unsure ops of {len(changes.ops)}"
            )
        if any(not _rel(name) for name in changes.names):
            raise UsageError("resync: the root itself cannot be reconciled (full copy)")
        self._applied, self._unsure = applied_ops, unsure_ops
        self._changes = changes
        self._source = Path(source)
        self._chunk = chunk
        self._previous = previous or Touched()
        self._dry = dry
        self._root = -1
        self._started = False
        self._next_handle = RESYNC_HANDLE_BASE
        self._placed: dict[tuple[int, int], str] = {}  # source inode -> first name sent
        self._links: dict[tuple[int, int], list[str]] | None = None
        self._meta = _PathSet()
        self._data: set[str] = set()
        self._todo: dict[str, FileChanges] = {}
        self._stop = False
        self.stopped = False
        """The stream ended early, at a file boundary (:meth:`request_stop`)."""
        self.reconciled: tuple[str, ...] = ()
        self.files = 0
        self.mutations = 0
        self.data_bytes = 0

    def touched(self) -> Touched:
        """What this round read from the source (pass it to the next round)."""
        return Touched(frozenset(self._data), frozenset(self._meta))

    def request_stop(self) -> None:
        """Cut the round short (a checkpoint of a long resync): once the namespace ops
        and the names reconciled whole are out, at the next boundary between two files
        of the region copies, the files left are skipped and the attributes sent (as at
        the end of any round). :attr:`stopped` says whether it did; :meth:`remaining`
        is what it left for the next round."""
        self._stop = True

    @property
    def files_left(self) -> int:
        """Files whose regions or tails are still to be copied (once the copies began)."""
        return len(self._todo)

    def remaining(self) -> Remaining:
        """The regions and tails of the files a stream that :attr:`stopped` did not
        reach (the names it read are in :meth:`touched`, as for any round). Record them
        again in the tracker (:func:`record_remaining`) before it clears the round's
        marker."""
        return Remaining(dict(self._todo), self._changes.region_size)

    def __iter__(self) -> Iterator[Mutation]:
        if self._started:
            raise UsageError("resync: a ResyncStream is iterated once")
        self._started = True
        self._root = os.open(self._source, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for mutation in self._generate():
                self.mutations += 1
                if mutation.op is Op.WRITE:
                    self.data_bytes += mutation.length
                yield mutation
        finally:
            os.close(self._root)

    # --- the phases ---------------------------------------------------------------------

    def _generate(self) -> Iterator[Mutation]:
        changes, previous, meta = self._changes, self._previous, self._meta
        names = _PathSet(_rel(n) for n in changes.names)
        unsure, unsure_attrs = _PathSet(previous.data), _PathSet(previous.attrs)
        in_flight = range(self._applied, self._applied + self._unsure)
        relink: set[int] = set()
        reattr: set[int] = set()
        files: dict[str, FileChanges] = {}
        for path, file_changes in changes.files.items():
            rel = _rel(path)
            files[rel] = files[rel].union(file_changes) if rel in files else file_changes
        linked: dict[str, FileChanges] = {}  # changes reaching a name through a Link op
        for index, op in enumerate(changes.ops):
            if index >= self._applied:
                yield self._replay(op)
            paths = [_rel(p) for p in op_paths(op)]
            for path in paths:
                meta.add(path)
                meta.add(_parent(path))
            if index in in_flight or any(names.covers(p) or unsure.covers(p) for p in paths):
                for path in paths:  # where the reference applier may see the op fail
                    names.add(path)
            detached = _detached(op)
            if detached is not None:
                # The previous round may have written another file's data or attributes
                # into this name's inode on the target; its other names share it there.
                if unsure.covers(detached[0]):
                    relink.add(detached[1])
                elif unsure_attrs.covers(detached[0]):
                    reattr.add(detached[1])
            if isinstance(op, Link):
                # Changes of the target's inode at ``existing`` (the merged activity log of a
                # crashed primary) reach ``new`` too once the link is replayed there.
                _carry(linked, paths[1], files.get(paths[0]), linked.get(paths[0]))
            if isinstance(op, Rename):
                pairs = _pairs(op)
                names.translate(pairs)
                meta.translate(pairs)
                for path, carried in list(linked.items()):
                    for old, new in pairs:
                        if (target := rename_path(path, old, new)) is not None:
                            _carry(linked, target, carried)
                for moved in unsure.translate(pairs):
                    names.add(moved)
                for moved in unsure_attrs.translate(pairs):
                    meta.add(moved)
        for path, file_changes in linked.items():
            files[path] = files[path].union(file_changes) if path in files else file_changes
        if relink or reattr:
            found = self._scan_inodes(relink | reattr)
            for ino, paths in found.items():
                for path in paths:
                    (names if ino in relink else meta).add(path)
        self.reconciled = tuple(sorted((n for n in names if not names.above(n)), key=_order))
        for name in self.reconciled:
            yield from self._reconcile(name)
        yield from self._copy_files(names, files)
        for path in sorted(meta, key=_order, reverse=True):
            yield from self._attrs(path)

    def _replay(self, op: NsOp) -> Mutation:
        if isinstance(op, Create):
            return Mutation(Op.ENSURE, _abs(_rel(op.path)), mode=stat.S_IFREG, flags=os.O_EXCL)
        if isinstance(op, Mkdir):
            return Mutation(Op.ENSURE, _abs(_rel(op.path)), mode=stat.S_IFDIR)
        if isinstance(op, Mknod):
            path = _abs(_rel(op.path))
            return Mutation(Op.ENSURE, path, mode=op.mode, offset=op.rdev, flags=os.O_EXCL)
        if isinstance(op, Symlink):
            path = _abs(_rel(op.path))
            return Mutation(Op.ENSURE, path, mode=stat.S_IFLNK, target=op.target, flags=os.O_EXCL)
        if isinstance(op, Link):
            return Mutation(Op.RELINK, _abs(_rel(op.existing)), _abs(_rel(op.new)))
        if isinstance(op, Unlink | Rmdir):
            return Mutation(Op.REMOVE, _abs(_rel(op.path)))
        flags = RENAME_EXCHANGE if op.exchange else 0
        return Mutation(Op.MOVE, _abs(_rel(op.old)), _abs(_rel(op.new)), flags=flags)

    def _reconcile(self, rel: str) -> Iterator[Mutation]:
        """Make the target's ``rel`` (recursively) what the source has now."""
        self._meta.add(_parent(rel))
        self._data.add(rel)
        with self._source_at(rel) as at:
            st = lstat_at(*at) if at is not None else None
            if at is None or st is None:
                yield Mutation(Op.REMOVE, _abs(rel))
                return
            yield from self._entry(rel, at[0], at[1], st)

    def _entry(self, rel: str, d: int, name: str, st: os.stat_result) -> Iterator[Mutation]:
        self._meta.add(rel)
        kind = stat.S_IFMT(st.st_mode)
        if kind == stat.S_IFDIR:
            yield Mutation(Op.ENSURE, _abs(rel), mode=stat.S_IFDIR, flags=os.O_EXCL)
            try:
                sub = os.open(name, _DIR_READ, dir_fd=d)
            except OSError as exc:
                if exc.errno in _MISSING:
                    return  # changed since listed: the next round has the op
                raise
            try:
                for child in sorted(os.listdir(sub)):
                    child_st = lstat_at(sub, child)
                    if child_st is not None:
                        yield from self._entry(f"{rel}/{child}", sub, child, child_st)
            finally:
                os.close(sub)
        elif kind == stat.S_IFLNK:
            try:
                target = os.readlink(name, dir_fd=d)
            except OSError as exc:
                if exc.errno not in (*_MISSING, errno.EINVAL):
                    raise
                yield Mutation(Op.REMOVE, _abs(rel))
                return
            yield Mutation(Op.ENSURE, _abs(rel), mode=kind, target=target, flags=os.O_EXCL)
        elif kind == stat.S_IFREG:
            yield from self._whole_file(rel, d, name, st)
        else:
            yield Mutation(Op.ENSURE, _abs(rel), mode=kind, offset=st.st_rdev, flags=os.O_EXCL)

    def _whole_file(self, rel: str, d: int, name: str, st: os.stat_result) -> Iterator[Mutation]:
        first = self._placed.get((st.st_dev, st.st_ino))
        if first is not None:
            yield Mutation(Op.RELINK, _abs(first), _abs(rel))  # a hard link already sent
            return
        fd = self._open_file(d, name)
        if fd is None:
            yield Mutation(Op.REMOVE, _abs(rel))  # changed since listed
            return
        try:
            fst = os.fstat(fd)
            handle = self._handle()
            path = _abs(rel)
            yield Mutation(Op.ENSURE, path, handle=handle, mode=stat.S_IFREG, flags=os.O_EXCL)
            yield from self._copy(fd, handle, path, 0, fst.st_size, punch=False)
            yield Mutation(Op.TRUNCATE, path, handle=handle, length=fst.st_size)
            yield Mutation(Op.RELEASE, path, handle=handle)
        finally:
            os.close(fd)
        if fst.st_nlink > 1:
            key = (fst.st_dev, fst.st_ino)
            self._placed[key] = rel
            for other in self._names_of(key):
                if other != rel:
                    self._meta.add(other)
                    self._meta.add(_parent(other))
                    self._data.add(other)
                    yield Mutation(Op.RELINK, path, _abs(other))

    def _copy_files(self, names: _PathSet, files: dict[str, FileChanges]) -> Iterator[Mutation]:
        """Regions and tails of ``files`` (not reconciled whole), once per inode."""
        groups: dict[tuple[int, int], tuple[list[str], FileChanges]] = {}
        self._todo = {rel: files[rel] for rel in files if not names.covers(rel)}
        for rel in sorted(files):
            changes = files[rel]
            if names.covers(rel):
                continue  # sent whole
            self._meta.add(rel)
            if not rel:  # the directory itself: only its attributes (it is never replaced)
                self._todo.pop(rel, None)
                continue
            self._data.add(rel)
            with self._source_at(rel) as at:
                st = lstat_at(*at) if at is not None else None
                if at is None or st is None:
                    self._meta.add(_parent(rel))
                    yield Mutation(Op.REMOVE, _abs(rel))
                    self._todo.pop(rel, None)
                    continue
                if not stat.S_ISREG(st.st_mode):
                    yield self._ensure_kind(rel, at[0], at[1], st)
                    self._todo.pop(rel, None)
                    continue
            key = (st.st_dev, st.st_ino)
            if key in self._placed or (not changes.regions and changes.tail_from is None):
                self._todo.pop(rel, None)
                continue  # a hard link sent whole, or only attributes changed
            paths, known = groups.get(key, ([], FileChanges()))
            groups[key] = ([*paths, rel], known.union(changes))
        self.files = len(groups)
        for paths, changes in groups.values():
            if self._stop:
                self.stopped = True
                return  # the files left are in remaining()
            yield from self._regions(paths[0], changes)
            for path in paths:
                self._todo.pop(path, None)

    def _ensure_kind(self, rel: str, d: int, name: str, st: os.stat_result) -> Mutation:
        """The entry is not a regular file (any more): only its type is made right."""
        self._meta.add(_parent(rel))
        target = None
        if stat.S_ISLNK(st.st_mode):
            with contextlib.suppress(OSError):
                target = os.readlink(name, dir_fd=d)
        return Mutation(Op.ENSURE, _abs(rel), mode=st.st_mode, offset=st.st_rdev, target=target)

    def _regions(self, rel: str, changes: FileChanges) -> Iterator[Mutation]:
        with self._source_at(rel) as at:
            fd = self._open_file(*at) if at is not None else None
        if fd is None:
            return  # gone since: the next round has the op (and this name in touched)
        try:
            size = os.fstat(fd).st_size
            unit = self._changes.region_size
            tail = None if changes.tail_from is None else changes.tail_from * unit
            cut = size if tail is None else min(tail, size)
            handle = self._handle()
            path = _abs(rel)
            yield Mutation(Op.ENSURE, path, handle=handle, mode=stat.S_IFREG)
            for start, end in _ranges(changes.regions, unit, cut):
                yield from self._copy(fd, handle, path, start, end, punch=True)
            if tail is not None:
                yield Mutation(Op.TRUNCATE, path, handle=handle, length=cut)
                yield from self._copy(fd, handle, path, cut, size, punch=False)
            yield Mutation(Op.TRUNCATE, path, handle=handle, length=size)
            yield Mutation(Op.RELEASE, path, handle=handle)
        finally:
            os.close(fd)

    def _copy(
        self, fd: int, handle: int, path: str, start: int, end: int, *, punch: bool
    ) -> Iterator[Mutation]:
        """WRITEs of the data in ``[start, end)``; holes skipped (PUNCHed with ``punch``)."""
        pos = start
        while pos < end:
            data_at, hole_at = _extent(fd, pos, end)
            if punch and data_at > pos:
                yield Mutation(Op.PUNCH, path, handle=handle, offset=pos, length=data_at - pos)
            offset = data_at
            while offset < hole_at:
                length = min(self._chunk, hole_at - offset)
                data = None
                if not self._dry:
                    data = os.pread(fd, length, offset)
                    if not data:
                        return  # shorter now: the next round has the truncate
                    length = len(data)
                yield Mutation(
                    Op.WRITE, path, handle=handle, offset=offset, length=length, data=data
                )
                offset += length
            pos = hole_at

    def _attrs(self, rel: str) -> Iterator[Mutation]:
        if not rel:
            fd: int | None = os.dup(self._root)
        else:
            with self._source_at(rel) as at:
                fd = None
                if at is not None:
                    with contextlib.suppress(FileNotFoundError):
                        fd = os.open(at[1], os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=at[0])
        if fd is None:
            return
        try:
            st = os.fstat(fd)
            value = None if stat.S_ISLNK(st.st_mode) else pack_xattrs(_xattrs(fd))
        finally:
            os.close(fd)
        yield Mutation(
            Op.SETATTRS,
            _abs(rel),
            mode=st.st_mode,
            uid=st.st_uid,
            gid=st.st_gid,
            atime_ns=st.st_atime_ns,
            mtime_ns=st.st_mtime_ns,
            value=value,
        )

    # --- source helpers ---------------------------------------------------------------

    @contextlib.contextmanager
    def _source_at(self, rel: str) -> Iterator[tuple[int, str] | None]:
        """(descriptor of the parent directory, name) in the source, reached through
        directories only; None when the parent is not such a directory."""
        parts = rel.split("/")
        fd = open_parent(self._root, parts)
        try:
            yield None if fd is None else (fd, parts[-1])
        finally:
            if fd is not None:
                os.close(fd)

    def _open_file(self, d: int, name: str) -> int | None:
        """A read descriptor of the regular file ``name`` (None if it is not one now)."""
        try:
            try:
                fd = os.open(name, _READ | _NOATIME, dir_fd=d)
            except PermissionError:
                fd = os.open(name, _READ, dir_fd=d)  # O_NOATIME needs the owner or CAP_FOWNER
        except OSError as exc:
            if exc.errno in _MISSING:
                return None
            raise
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            return None
        return fd

    def _names_of(self, key: tuple[int, int]) -> list[str]:
        """Every name of a multiply-linked source file (one scan, when first needed)."""
        if self._links is None:
            self._links = {}
            for dirpath, _, filenames in os.walk(self._source):
                for filename in filenames:
                    full = os.path.join(dirpath, filename)
                    try:
                        st = os.lstat(full)
                    except FileNotFoundError:
                        continue
                    if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
                        rel = os.path.relpath(full, self._source)
                        self._links.setdefault((st.st_dev, st.st_ino), []).append(rel)
        return sorted(self._links.get(key, []))

    def _scan_inodes(self, inodes: set[int]) -> dict[int, list[str]]:
        """The names of these source inodes now (one scan)."""
        dev = os.fstat(self._root).st_dev
        found: dict[int, list[str]] = {}
        for dirpath, _, filenames in os.walk(self._source):
            for filename in filenames:
                full = os.path.join(dirpath, filename)
                with contextlib.suppress(FileNotFoundError):
                    st = os.lstat(full)
                    if st.st_ino in inodes and st.st_dev == dev:
                        rel = os.path.relpath(full, self._source)
                        found.setdefault(st.st_ino, []).append(rel)
        return found

    def _handle(self) -> int:
        self._next_handle += 1
        return self._next_handle


def _extent(fd: int, pos: int, end: int) -> tuple[int, int]:
    """(start, end) of the first data extent at or after ``pos``, clipped to ``end``
    (``(end, end)``: only a hole is left)."""
    try:
        data_at = os.lseek(fd, pos, os.SEEK_DATA)
    except OSError as exc:
        if exc.errno == errno.ENXIO:
            return end, end
        if exc.errno in (errno.EINVAL, errno.EOPNOTSUPP):
            return pos, end  # no SEEK_DATA here: all data
        raise
    if data_at >= end:
        return end, end
    try:
        hole_at = os.lseek(fd, data_at, os.SEEK_HOLE)
    except OSError as exc:
        if exc.errno != errno.ENXIO:
            raise
        hole_at = end
    return data_at, min(hole_at, end)


_NO_XATTRS = (errno.ENOTSUP, errno.EOPNOTSUPP)


def _xattrs(fd: int) -> list[tuple[str, bytes]]:
    """The entry's xattrs; none on a file system without them (vfat, NFSv3...)."""
    pinned = f"/proc/self/fd/{fd}"
    out: list[tuple[str, bytes]] = []
    try:
        names = os.listxattr(pinned)
    except OSError as exc:
        if exc.errno in _NO_XATTRS:
            return out
        raise
    for name in sorted(names):
        try:
            out.append((name, os.getxattr(pinned, name)))
        except OSError as exc:
            if exc.errno != errno.ENODATA:
                raise
    return out


def resync_mutations(
    changes: ChangeSet,
    source: Path,
    *,
    chunk: int = 1 << 20,
    previous: Touched | None = None,
) -> Iterator[Mutation]:
    """The mutations of one resync round (see :class:`ResyncStream` for the arguments and
    for what to hand the next round)."""
    return iter(ResyncStream(changes, source, chunk=chunk, previous=previous))


def plan_resync(
    changes: ChangeSet,
    source: Path,
    *,
    chunk: int = 1 << 20,
    previous: Touched | None = None,
) -> Plan:
    """Totals of the round :func:`resync_mutations` would stream now (reads metadata and
    extents only, no data)."""
    stream = ResyncStream(changes, source, chunk=chunk, previous=previous, dry=True)
    for _ in stream:
        pass
    return Plan(
        len(changes.ops), stream.reconciled, stream.files, stream.mutations, stream.data_bytes
    )


def record_remaining(tracker: Tracker, source: Path, remaining: Remaining) -> int:
    """Record again in ``tracker`` (the source's, tracking) what a round cut short left
    (:meth:`ResyncStream.remaining`), under each name's inode now, so that the
    ``clear_upto`` of the round's marker keeps it: one ``write`` hook per run of
    contiguous regions, one ``truncate`` per tail (each waits for the journal: one call
    per file in practice). A name that is gone or now names another file needs nothing
    more: the op that changed it is in the next set and the name in the round's
    :meth:`~ResyncStream.touched`, so the next round reconciles it whole. Returns the
    hooks called."""
    calls = 0
    unit = remaining.region_size
    root = os.open(source, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for rel, changes in sorted(remaining.files.items()):
            parts = rel.split("/")
            fd = open_parent(root, parts) if rel else None
            if fd is None:
                continue
            try:
                st = lstat_at(fd, parts[-1])
            finally:
                os.close(fd)
            if st is None or not stat.S_ISREG(st.st_mode):
                continue
            ref = FileRef(rel, st.st_ino)
            for start, count in _runs(sorted(changes.regions)):
                tracker.write(ref, start * unit, count * unit)
                calls += 1
            if changes.tail_from is not None:
                tracker.truncate(ref, changes.tail_from * unit)
                calls += 1
            if changes.attrs and not changes.regions and changes.tail_from is None:
                tracker.setattr(ref)
                calls += 1
    finally:
        os.close(root)
    return calls


def _runs(regions: list[int]) -> Iterator[tuple[int, int]]:
    """(first, count) of each run of consecutive numbers (sorted input)."""
    start = prev = None
    for r in regions:
        if start is None or prev is None or r != prev + 1:
            if start is not None and prev is not None:
                yield start, prev - start + 1
            start = r
        prev = r
    if start is not None and prev is not None:
        yield start, prev - start + 1
