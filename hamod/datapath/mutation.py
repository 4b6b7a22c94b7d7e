"""The replication seam: one record per mutating operation, and the port it goes to.

:class:`Mutation` is what the FUSE layer hands to a :class:`Shipper` *after* the local
operation succeeded and *before* the kernel gets its reply. Reads, lookups, getattr and
directory listings never produce one. The replication increment will implement
``Shipper`` with the peer link (ordering, sync/semisync/async) and change tracking.

Identity of a file: ``path`` is the path inside the replicated directory (leading ``/``)
at the moment of the operation, as libfuse tracks it across renames. Operations made
through an open handle also carry ``handle`` (the data-path's file descriptor number,
unique while open): ``OPEN`` binds a handle to a path when a file is opened for writing,
``RELEASE`` ends it. A file unlinked while open has ``path=None`` and is addressed by its
handle alone (it may still have another hard link).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


class Op(enum.Enum):
    """Kinds of mutating operations."""

    CREATE = "create"  # path, mode, flags, uid, gid, handle
    OPEN = "open"  # path, flags, handle: opened for writing (O_TRUNC included in flags)
    RELEASE = "release"  # handle closed (only for handles opened for writing)
    MKNOD = "mknod"  # path, mode, rdev (in offset), uid, gid
    MKDIR = "mkdir"  # path, mode, uid, gid
    SYMLINK = "symlink"  # path (the new link), target, uid, gid
    LINK = "link"  # path (existing), path2 (new name)
    UNLINK = "unlink"  # path
    RMDIR = "rmdir"  # path
    RENAME = "rename"  # path -> path2, flags (RENAME_NOREPLACE / RENAME_EXCHANGE)
    CHMOD = "chmod"  # path or handle, mode
    CHOWN = "chown"  # path or handle, uid, gid (-1 = unchanged)
    UTIMENS = "utimens"  # path or handle, atime_ns, mtime_ns (None = now, OMIT = unchanged)
    TRUNCATE = "truncate"  # path or handle, length
    WRITE = "write"  # handle (+ path), offset, length, data, flags (open flags)
    FALLOCATE = "fallocate"  # handle, mode (FALLOC_FL_*), offset, length
    SETXATTR = "setxattr"  # path, name, value, flags (XATTR_CREATE / XATTR_REPLACE)
    REMOVEXATTR = "removexattr"  # path, name
    FSYNC = "fsync"  # handle, flags=1 for fdatasync
    FSYNCDIR = "fsyncdir"  # path of the directory, flags=1 for datasync
    # Resync only (never produced by the FUSE layer); new kinds are appended here, the
    # wire carries the index in this enum.
    REMOVE = "remove"  # path: remove whatever is there (recursively); absent is fine
    # The resync ops below never follow a symlink of the target and never fail because of
    # what the target has at their names: under a missing or non-directory parent they do
    # nothing (a reconcile of that parent follows). See docs/replication.md "Resync stream".
    ENSURE = "ensure"  # path, mode (only S_IFMT matters), flags, target, offset=rdev, handle:
    # make path an entry of that type: an existing one is kept (symlink: same target; node:
    # same rdev) unless flags has O_EXCL (always a new one), anything else there is removed
    # first; created 0600/0700 (SETATTRS sets the rest). O_TRUNC empties a kept regular
    # file. A handle (regular file only) is bound to it, or unbound when nothing was done.
    RELINK = "relink"  # path -> path2: path2 becomes another name of the non-directory at
    # path (whatever else is at path2 is removed first; path2 is only removed when path is
    # absent or a directory)
    MOVE = "move"  # path -> path2, flags 0 or RENAME_EXCHANGE: rename, replacing whatever
    # is at path2 (a rename between two names of one inode removes path); path absent:
    # nothing; path2's parent not a directory: path is removed. EXCHANGE with only one of
    # the names present moves it to the other name
    PUNCH = "punch"  # handle (+ path), offset, length: a hole (reads zeros), size unchanged
    SETATTRS = "setattrs"  # path, mode (type + permissions), uid, gid, atime_ns, mtime_ns,
    # value: the complete xattr set (resync_apply.pack_xattrs) or None to leave xattrs; a
    # no-op unless the entry at path has that type; symlinks get owner and times only


OMIT = -2
"""``atime_ns``/``mtime_ns`` value meaning "leave unchanged" (UTIME_OMIT)."""


@dataclass(frozen=True, slots=True)
class Mutation:
    """One mutating operation, as applied locally; everything a replica needs to redo it."""

    op: Op
    path: str | None
    path2: str | None = None
    handle: int | None = None
    offset: int = 0
    length: int = 0
    data: bytes | None = None
    mode: int = 0
    flags: int = 0
    uid: int = -1
    gid: int = -1
    atime_ns: int | None = None
    mtime_ns: int | None = None
    name: str | None = None
    value: bytes | None = None
    target: str | None = None
    track: int = 0
    """The change tracker's number for this operation (local only, never on the wire):
    the replicator turns durable acknowledgements into ``sync_point`` calls with it."""

    def __str__(self) -> str:
        parts = [self.op.value, repr(self.path)]
        if self.path2 is not None:
            parts.append(f"-> {self.path2!r}")
        if self.handle is not None:
            parts.append(f"fh={self.handle}")
        if self.op in (Op.WRITE, Op.FALLOCATE, Op.TRUNCATE):
            parts.append(f"off={self.offset} len={self.length}")
        return " ".join(parts)


@runtime_checkable
class Shipper(Protocol):
    """Where mutations go, in the order they took effect locally.

    ``ship`` is called from libfuse's worker threads, after the local operation and
    before the reply to the kernel; it blocks the application's call for as long as it
    takes (the replication mode decides how long). Raising ``OSError`` fails the
    application's call with that errno (the local effect stays: the replication layer
    must then leave the mirror and track the change). ``wants_data`` False lets the
    file system skip copying write payloads.
    """

    wants_data: bool

    def ship(self, mutation: Mutation, meanwhile: Callable[[], None] | None = None) -> None:
        """``meanwhile``, when given, is the local part of the operation (an fsync's own
        flush): the shipper runs it exactly once, while the peer works if it can."""
        ...


class LocalOnly:
    """The default shipper: no peer, nothing to do (the module runs ALONE)."""

    wants_data = False

    def ship(self, mutation: Mutation, meanwhile: Callable[[], None] | None = None) -> None:
        if meanwhile is not None:
            meanwhile()
