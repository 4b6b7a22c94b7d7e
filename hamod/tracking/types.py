"""Value types of change tracking: what the data path reports, and what a resync gets.

Owns the vocabulary shared by the tracker, its journal and the resync, and the pure
functions on it (:func:`merge`, :func:`first_missing`); no I/O.

Identity of files. A resync works on two different trees whose only common namespace is
the *path*, so every change is finally expressed by path: regions of a path, namespace
operations replayed by path. Inside one node the tracker also keys files by their local
*inode number* (``ino``, given by the data path with each file operation): it ties the
several names of a hard-linked file together, so a write through one name followed by
the unlink of that name (or a rename over it) is not lost when other names keep the file
alive. Renames are applied to the tracked paths as they happen (a directory rename moves
every tracked path below it), so a path in a :class:`ChangeSet` is the file's name at the
time the set is taken.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from hamod.core.model import DataHistory, Generation
from hamod.errors import UsageError

__all__ = [
    "DEFAULT_REGION_SIZE",
    "ChangeSet",
    "Create",
    "FileChanges",
    "FileRef",
    "Link",
    "Mkdir",
    "Mknod",
    "NsOp",
    "Rename",
    "Rmdir",
    "Symlink",
    "Unknown",
    "Unlink",
    "first_missing",
    "merge",
    "op_paths",
    "rename_path",
]

DEFAULT_REGION_SIZE = 1 << 20


@dataclass(frozen=True)
class FileRef:
    """A file as the data path sees it at the time of an operation: one of its names and
    its inode number in the directory underneath the mount."""

    path: str
    ino: int


# --- namespace operations (inputs from the data path, and the replay of a ChangeSet) --


@dataclass(frozen=True)
class Create:
    """A new regular file ``path`` (an O_CREAT open that created it)."""

    path: str


@dataclass(frozen=True)
class Mkdir:
    path: str


@dataclass(frozen=True)
class Mknod:
    """A FIFO, socket or device node; ``mode`` includes the file type bits."""

    path: str
    mode: int
    rdev: int = 0


@dataclass(frozen=True)
class Symlink:
    path: str
    target: str


@dataclass(frozen=True)
class Link:
    """A hard link ``new`` to the file ``existing`` (inode ``ino``)."""

    existing: str
    new: str
    ino: int


@dataclass(frozen=True)
class Unlink:
    """``path`` (inode ``ino``) removed; ``remaining`` = the links the inode still has."""

    path: str
    ino: int
    remaining: int = 0


@dataclass(frozen=True)
class Rmdir:
    path: str


@dataclass(frozen=True)
class Rename:
    """``old`` renamed to ``new``; ``exchange`` for RENAME_EXCHANGE. When a non-directory
    ``new`` was replaced, ``replaced_ino``/``replaced_remaining`` describe it (0 if none)."""

    old: str
    new: str
    exchange: bool = False
    replaced_ino: int = 0
    replaced_remaining: int = 0


NsOp = Create | Mkdir | Mknod | Symlink | Link | Unlink | Rmdir | Rename


def op_paths(op: NsOp) -> tuple[str, ...]:
    """Every name ``op`` creates, removes or changes."""
    if isinstance(op, Link):
        return (op.existing, op.new)
    if isinstance(op, Rename):
        return (op.old, op.new)
    return (op.path,)


def rename_path(path: str, old: str, new: str) -> str | None:
    """``path`` after ``old`` was renamed to ``new`` (None when not at or under ``old``)."""
    if path == old:
        return new
    if path.startswith(old + "/"):
        return new + path[len(old) :]
    return None


# --- what a resync gets ---------------------------------------------------------------


@dataclass(frozen=True)
class FileChanges:
    """What may differ in one file: whole regions, everything from region ``tail_from``
    to the end (a truncate), its attributes (mode, owner, times, xattrs, size)."""

    regions: frozenset[int] = frozenset()
    tail_from: int | None = None
    attrs: bool = False

    def union(self, other: FileChanges) -> FileChanges:
        tails = [t for t in (self.tail_from, other.tail_from) if t is not None]
        return FileChanges(
            self.regions | other.regions, min(tails) if tails else None, self.attrs or other.attrs
        )

    def rescaled(self, factor: int) -> FileChanges:
        """The same changes counted in regions ``factor`` times larger."""
        tail = None if self.tail_from is None else self.tail_from // factor
        return FileChanges(frozenset(r // factor for r in self.regions), tail, self.attrs)


@dataclass(frozen=True)
class ChangeSet:
    """What a resync must copy.

    Apply in this order: replay ``ops`` in order (an op whose precondition fails on the
    target adds its names to the reconcile set); reconcile every name of ``names`` (and of
    failed ops): make the target's entry at that path, recursively, equal to the source's
    (copied whole, or removed); then copy, for every path of ``files``, its regions (and
    from ``tail_from`` to the end), set its size, and copy attributes of ``files``, of
    created names and of the parents of every op. ``orphans`` are files (by local inode
    number) that lost every known name while other, untracked hard links keep them:
    :func:`hamod.tracking.replay.resolve_names` finds their names on the node that
    tracked them. ``upto`` is the marker to pass to ``clear_upto`` once applied.
    """

    region_size: int
    upto: int
    generations: tuple[Generation, ...] = ()
    ops: tuple[NsOp, ...] = ()
    names: frozenset[str] = frozenset()
    files: Mapping[str, FileChanges] = field(default_factory=dict)
    orphans: Mapping[int, FileChanges] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not (self.ops or self.names or self.files or self.orphans)

    def region_count(self) -> int:
        """Whole regions to copy (tails excluded: their length depends on the file)."""
        return sum(len(c.regions) for c in self.files.values())


@dataclass(frozen=True)
class Unknown:
    """The history needed is not (or no longer) known: the caller must do a full copy."""

    reason: str


def first_missing(mine: DataHistory, peer_current: Generation | None) -> Generation | None:
    """The oldest of my generations the peer does not have: the argument of
    ``changes_since`` (None when the peer's generation is not in my history)."""
    if mine.current is None or peer_current is None:
        return None
    chain = (mine.current, *mine.history)  # newest first
    if peer_current not in chain:
        return None
    index = chain.index(peer_current)
    return None if index == 0 else chain[index - 1]


def _translate(paths: Iterable[str], ops: Iterable[NsOp]) -> set[str]:
    """Where ``paths`` of the target end up when ``ops`` are replayed on it (a path a
    rename moves keeps its old name too: conservative, both are reconciled; a hard link
    made to a path adds its new name)."""
    out = set(paths)
    for op in ops:
        if isinstance(op, Link):
            if op.existing in out:
                out.add(op.new)  # the same file under another name: it differs there too
            continue
        if not isinstance(op, Rename):
            continue
        moved: set[str] = set()
        for p in out:
            for a, b in (
                ((op.old, op.new), (op.new, op.old)) if op.exchange else ((op.old, op.new),)
            ):
                q = rename_path(p, a, b)
                if q is not None:
                    moved.add(q)
        out |= moved
    return out


def merge(source: ChangeSet | Unknown, target: ChangeSet | Unknown) -> ChangeSet | Unknown:
    """The union of both sides' changes, to apply from the source's tree to the target's.

    ``source``: the sync source's tracked changes (replayable ops). ``target``: what the
    target may have changed on its own (its activity log after a crash, or its tracked
    changes): its names, and the names of its ops, are reconciled whole; its file paths
    are carried through the source's renames. Region sizes may differ (the result uses
    the larger). Orphans must be resolved on their own node first.
    """
    if isinstance(source, Unknown):
        return source
    if isinstance(target, Unknown):
        return target
    if source.orphans or target.orphans:
        raise UsageError("merge: resolve orphans on their own node first (resolve_names)")
    size = max(source.region_size, target.region_size)
    for side in (source, target):
        if size % side.region_size:
            raise UsageError(f"merge: region sizes {side.region_size} and {size} do not nest")
    names = set(source.names) | _translate(
        [*target.names, *(p for op in target.ops for p in op_paths(op))], source.ops
    )
    files: dict[str, FileChanges] = {
        p: c.rescaled(size // source.region_size) for p, c in source.files.items()
    }
    for path, changes in target.files.items():
        scaled = changes.rescaled(size // target.region_size)
        for p in _translate([path], source.ops):
            files[p] = files[p].union(scaled) if p in files else scaled
    return ChangeSet(
        size,
        source.upto,
        source.generations,
        source.ops,
        frozenset(names),
        files,
    )
