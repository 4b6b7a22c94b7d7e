"""The in-memory state of change tracking, rebuilt from records: pure, no I/O.

Owns what the records mean. The tracker applies each record to this state when it
appends it, and recovery applies the same records read back (after a snapshot), so the
recovered state is, by construction, the state at the last durable record.

Two sides of the same shape: ``tracked`` (changes while ALONE: file regions, truncated
tails, attributes, ordered namespace ops, names to reconcile) and ``al`` (the activity
log while mirroring: what may have been written without the peer's acknowledgement; no
ops, only hot names). Every item remembers the seq of the record that last marked it, so
``clear_upto(marker)`` drops exactly what a resync copied.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hamod.core.model import Generation
from hamod.tracking.records import Kind, Record
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

__all__ = ["AL", "TRACKED", "FileEntry", "Side", "TrackState", "decode_op", "encode_op"]

TRACKED, AL = 0, 1
COOL_REGION, COOL_TAIL, COOL_ATTR = 0, 1, 2


def encode_op(op: NsOp) -> tuple[tuple[int, ...], tuple[str, ...]]:
    if isinstance(op, Create):
        return (1,), (op.path,)
    if isinstance(op, Mkdir):
        return (2,), (op.path,)
    if isinstance(op, Mknod):
        return (3, op.mode, op.rdev), (op.path,)
    if isinstance(op, Symlink):
        return (4,), (op.path, op.target)
    if isinstance(op, Link):
        return (5, op.ino), (op.existing, op.new)
    if isinstance(op, Unlink):
        return (6, op.ino, op.remaining), (op.path,)
    if isinstance(op, Rmdir):
        return (7,), (op.path,)
    return (8, int(op.exchange), op.replaced_ino, op.replaced_remaining), (op.old, op.new)


def decode_op(ints: tuple[int, ...], strs: tuple[str, ...]) -> NsOp:
    code = ints[0]
    if code == 1:
        return Create(strs[0])
    if code == 2:
        return Mkdir(strs[0])
    if code == 3:
        return Mknod(strs[0], ints[1], ints[2])
    if code == 4:
        return Symlink(strs[0], strs[1])
    if code == 5:
        return Link(strs[0], strs[1], ints[1])
    if code == 6:
        return Unlink(strs[0], ints[1], ints[2])
    if code == 7:
        return Rmdir(strs[0])
    if code == 8:
        return Rename(strs[0], strs[1], bool(ints[1]), ints[2], ints[3])
    raise ValueError(f"unknown namespace opcode {code}")


def _parents(path: str) -> list[str]:
    parts = path.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


@dataclass
class FileEntry:
    """One file (inode) with changes: its known names and what changed, with seqs."""

    paths: set[str] = field(default_factory=set)
    regions: dict[int, int] = field(default_factory=dict)  # region -> seq
    tail: tuple[int, int] | None = None  # (from region, seq)
    attrs: int | None = None  # seq

    @property
    def empty(self) -> bool:
        return not self.regions and self.tail is None and self.attrs is None

    def changes(self) -> FileChanges:
        tail = None if self.tail is None else self.tail[0]
        return FileChanges(frozenset(self.regions), tail, self.attrs is not None)


class Side:
    """Files by inode, their names, names to reconcile, and (tracked side) ops."""

    def __init__(self) -> None:
        self.files: dict[int, FileEntry] = {}
        self.path_ino: dict[str, int] = {}
        self.names: dict[str, int] = {}
        self.ops: list[tuple[int, NsOp]] = []
        self._below: dict[str, int] = {}  # directory -> tracked paths below it

    def _bind(self, path: str, ino: int) -> None:
        if path not in self.path_ino:
            for parent in _parents(path):
                self._below[parent] = self._below.get(parent, 0) + 1
        self.path_ino[path] = ino

    def _unbind(self, path: str) -> int | None:
        ino = self.path_ino.pop(path, None)
        if ino is not None:
            for parent in _parents(path):
                count = self._below[parent] - 1
                if count:
                    self._below[parent] = count
                else:
                    del self._below[parent]
        return ino

    @property
    def empty(self) -> bool:
        return not (self.files or self.names or self.ops)

    def touches(self, path: str) -> bool:
        """Whether ``path`` is, or holds, a tracked file name."""
        return path in self.path_ino or path in self._below

    def entry(self, ino: int, path: str) -> FileEntry:
        entry = self.files.get(ino)
        if entry is None:
            entry = self.files[ino] = FileEntry()
        if path not in entry.paths:
            other = self.path_ino.get(path)
            if other is not None and other != ino and other in self.files:
                self.files[other].paths.discard(path)  # the name now holds another inode
            entry.paths.add(path)
            self._bind(path, ino)
        return entry

    def _drop(self, ino: int) -> None:
        entry = self.files.pop(ino)
        for path in entry.paths:
            if self.path_ino.get(path) == ino:
                self._unbind(path)

    def _remove_name(self, path: str, ino: int, remaining: int) -> None:
        """Inode ``ino`` (0: none known) lost the name ``path``; ``remaining`` links left."""
        known = self._unbind(path)
        if known is not None and known != ino and known in self.files:
            self.files[known].paths.discard(path)  # stale: the name held another inode
        entry = self.files.get(ino) if ino else None
        if entry is None:
            return
        entry.paths.discard(path)
        if remaining == 0:
            self._drop(ino)
        # else other links keep it alive: an orphan if none of its names is known

    def _move(self, mapping: dict[str, str]) -> None:
        """Rename tracked paths and names: ``mapping`` old path -> new path."""
        moved: dict[str, int] = {}
        for old, new in mapping.items():
            ino = self._unbind(old)
            if ino is not None:
                moved[new] = ino
        for new, ino in moved.items():
            self._bind(new, ino)
        for old, new in mapping.items():
            ino = moved.get(new)
            if ino is not None and ino in self.files:
                paths = self.files[ino].paths
                paths.discard(old)
                paths.add(new)

    def _renames(self, pairs: tuple[tuple[str, str], ...]) -> dict[str, str]:
        mapping: dict[str, str] = {}
        if not any(old in self._below for old, _ in pairs):  # no tracked path below
            return {old: new for old, new in pairs if old in self.path_ino}
        for path in self.path_ino:
            for old, new in pairs:
                target = rename_path(path, old, new)
                if target is not None:
                    mapping[path] = target
                    break
        return mapping

    def apply_op(self, op: NsOp, seq: int, keep_op: bool) -> None:
        """The effect of ``op`` on tracked paths; kept for replay (tracked) or its names
        made hot (activity log)."""
        if isinstance(op, Link):
            if op.ino in self.files:
                self.entry(op.ino, op.new)
        elif isinstance(op, Unlink):
            self._remove_name(op.path, op.ino, op.remaining)
        elif isinstance(op, Rmdir):
            known = self.path_ino.get(op.path)
            self._remove_name(op.path, known or 0, 0)
        elif isinstance(op, Rename):
            pairs = ((op.old, op.new), (op.new, op.old)) if op.exchange else ((op.old, op.new),)
            if not op.exchange:
                known = self.path_ino.get(op.new)
                self._remove_name(op.new, op.replaced_ino or known or 0, op.replaced_remaining)
            self._move(self._renames(pairs))
            extra = {
                q
                for name in self.names
                for a, b in pairs
                if (q := rename_path(name, a, b)) is not None
            }
            for name in extra:
                self.names.setdefault(name, seq)
        else:  # Create, Mkdir, Mknod, Symlink: a new object at path
            self._remove_name(op.path, 0, 0)
        if keep_op:
            self.ops.append((seq, op))
        else:
            for path in op_paths(op):
                self.names[path] = seq

    def drop(self, upto: int) -> None:
        """Forget every item last marked at or before ``upto``."""
        self.ops = [(s, op) for s, op in self.ops if s > upto]
        self.names = {n: s for n, s in self.names.items() if s > upto}
        for ino, entry in list(self.files.items()):
            entry.regions = {r: s for r, s in entry.regions.items() if s > upto}
            if entry.tail is not None and entry.tail[1] <= upto:
                entry.tail = None
            if entry.attrs is not None and entry.attrs <= upto:
                entry.attrs = None
            if entry.empty:
                self._drop(ino)

    def cool(self, items: tuple[int, ...], names: tuple[str, ...]) -> None:
        for i in range(0, len(items) - 2, 3):
            what, ino, region = items[i : i + 3]
            entry = self.files.get(ino)
            if entry is None:
                continue
            if what == COOL_REGION:
                entry.regions.pop(region, None)
            elif what == COOL_TAIL:
                entry.tail = None
            else:
                entry.attrs = None
            if entry.empty:
                self._drop(ino)
        for name in names:
            self.names.pop(name, None)

    def absorb(self, other: Side, seq: int) -> None:
        """Take every item of ``other`` (the activity log folded into tracking)."""
        for ino, src in other.files.items():
            dst = self.files.setdefault(ino, FileEntry())
            for path in src.paths:
                self.entry(ino, path)
            for region in src.regions:
                dst.regions[region] = seq
            if src.tail is not None:
                low = src.tail[0] if dst.tail is None else min(dst.tail[0], src.tail[0])
                dst.tail = (low, seq)
            if src.attrs is not None:
                dst.attrs = seq
        for name in other.names:
            self.names[name] = seq

    def changes(self) -> tuple[dict[str, FileChanges], dict[int, FileChanges]]:
        files: dict[str, FileChanges] = {}
        orphans: dict[int, FileChanges] = {}
        for ino, entry in self.files.items():
            if entry.paths:
                files[min(entry.paths)] = entry.changes()
            else:
                orphans[ino] = entry.changes()
        return files, orphans


@dataclass
class TrackState:
    """Everything tracked for one module on one node."""

    region_size: int
    last_seq: int = 0
    tracking: bool = False
    lost: str | None = None
    generations: list[Generation] = field(default_factory=list)
    tracked: Side = field(default_factory=Side)
    al: Side = field(default_factory=Side)

    def side(self, which: int) -> Side:
        return self.al if which == AL else self.tracked

    def apply(self, rec: Record) -> None:
        self.last_seq = rec.seq
        kind, ints, strs = rec.kind, rec.ints, rec.strs
        if kind is Kind.BEGIN:
            gen = Generation(strs[0], ints[0], ints[1], bool(ints[2]))
            if gen in self.generations:
                return
            if not self.tracking and self.tracked.empty:
                self.generations = []
            self.generations.append(gen)
            self.tracking = True
            self.tracked.absorb(self.al, rec.seq)
            self.al = Side()
        elif kind is Kind.MIRROR:
            self.tracking = False
        elif kind is Kind.REGION:
            self.side(ints[0]).entry(ints[1], strs[0]).regions[ints[2]] = rec.seq
        elif kind is Kind.TAIL:
            entry = self.side(ints[0]).entry(ints[1], strs[0])
            low = ints[2] if entry.tail is None else min(entry.tail[0], ints[2])
            entry.tail = (low, rec.seq)
        elif kind is Kind.ATTR:
            self.side(ints[0]).entry(ints[1], strs[0]).attrs = rec.seq
        elif kind is Kind.OP:
            side = ints[0]
            self.side(side).apply_op(decode_op(ints[1:], strs), rec.seq, side == TRACKED)
        elif kind is Kind.NAMES:
            for name in strs:
                self.side(ints[0]).names[name] = rec.seq
        elif kind is Kind.COOL:
            self.al.cool(ints, strs)
        elif kind is Kind.CLEAR:
            self.tracked.drop(ints[0])
            self.al.drop(ints[0])
        elif kind is Kind.LOST:
            self.lost = strs[0]
        elif kind is Kind.RESET:
            self.tracking, self.lost, self.generations = False, None, []
            self.tracked, self.al = Side(), Side()
        else:
            raise ValueError(f"record kind {kind.name} does not belong in a journal")

    def change_set(self, side: int, upto: int) -> ChangeSet:
        chosen = self.side(side)
        files, orphans = chosen.changes()
        return ChangeSet(
            self.region_size,
            upto,
            tuple(self.generations) if side == TRACKED else (),
            tuple(op for _, op in chosen.ops),
            frozenset(chosen.names),
            files,
            orphans,
        )
