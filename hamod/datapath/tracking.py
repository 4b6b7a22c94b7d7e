"""The change-tracking port of the data path: hooks called *before* each local operation.

:class:`Tracker` is what the FUSE operations call on the directory underneath, before
doing each mutating operation (write-ahead): a change never reaches the disk, let alone
a peer's acknowledgement, without its record. :class:`hamod.tracking.tracker.ChangeTracker`
implements it; :class:`NoTracker` (the default) does nothing and costs nothing: the
operations test ``LayerBase._tracks`` once and skip the inode look-ups entirely.

Paths handed to the tracker are relative to the replicated directory, without a leading
``/`` (``"d/f"``; the directory itself is ``""``), like
:func:`hamod.tracking.replay.resolve_names` produces them. Each hook returns the
operation's number, which the data path ships as ``Mutation.track``; a hook that raises
:class:`~hamod.errors.AdapterError` (the journal cannot be written) fails the
application's call with ``EIO`` and nothing is done locally.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from hamod.tracking.types import FileRef, NsOp

__all__ = ["NoTracker", "Tracker"]


@runtime_checkable
class Tracker(Protocol):
    """The hooks of :class:`~hamod.tracking.tracker.ChangeTracker` the data path calls.

    Each is called from libfuse's worker threads before the operation and returns once
    its record (if one was needed) is durable.
    """

    def write(self, ref: FileRef, offset: int, length: int) -> int:
        """write, pwrite, fallocate (every mode), shared mmap writeback."""
        ...

    def truncate(self, ref: FileRef, size: int) -> int:
        """truncate, ftruncate, ``O_TRUNC`` open of an existing regular file."""
        ...

    def setattr(self, ref: FileRef) -> int:
        """chmod, chown, utimens, setxattr, removexattr."""
        ...

    def namespace(self, op: NsOp) -> int:
        """create (that creates), mkdir, mknod, symlink, link, unlink, rmdir, rename."""
        ...

    def failed(self, op: NsOp) -> None:
        """The namespace operation announced by :meth:`namespace` then failed."""
        ...


class NoTracker:
    """No change tracking (the default): every hook returns 0 and records nothing."""

    def write(self, ref: FileRef, offset: int, length: int) -> int:
        return 0

    def truncate(self, ref: FileRef, size: int) -> int:
        return 0

    def setattr(self, ref: FileRef) -> int:
        return 0

    def namespace(self, op: NsOp) -> int:
        return 0

    def failed(self, op: NsOp) -> None:
        return None
