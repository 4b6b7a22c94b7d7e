"""One module, several replicated directories, one ordered link.

A module's mutations travel on a single link so that Guarantee 1's module-wide order
holds across its directories (data and WAL in two directories). On the wire a path is
prefixed with the index of its directory in the module file: ``/0/base/1`` is
``/base/1`` in the first directory, ``/1`` the root of the second. Handles (the data
path's file descriptors, unique in its process) map to their directory from the
OPEN/CREATE that bound them. :func:`tag` adds the prefix on the primary,
:class:`ModuleApplier` removes it on the secondary and dispatches to one
:class:`~hamod.replication.receiver.Applier` per directory.
"""

from __future__ import annotations

import errno
from collections.abc import Sequence
from dataclasses import replace

from hamod.datapath.mutation import Mutation, Op
from hamod.replication.receiver import Applier


def prefix(index: int, path: str | None) -> str | None:
    """``path`` of directory ``index`` as carried on the wire."""
    if path is None:
        return None
    return f"/{index}" if path == "/" else f"/{index}{path}"


def tag(index: int, m: Mutation) -> Mutation:
    """The mutation with its paths prefixed by its directory's index."""
    return replace(m, path=prefix(index, m.path), path2=prefix(index, m.path2))


def split(path: str) -> tuple[int, str]:
    """``/3/a/b`` -> ``(3, "/a/b")``; OSError(EINVAL) for a path without a valid index."""
    head, _, rest = path[1:].partition("/")
    if not path.startswith("/") or not head.isdigit() or len(head) > 4:
        raise OSError(errno.EINVAL, f"path without a directory index: {path!r}")
    return int(head), "/" + rest


class ModuleApplier:
    """Dispatches each mutation to the applier of its directory."""

    def __init__(self, appliers: Sequence[Applier]) -> None:
        self._appliers = tuple(appliers)
        self._handles: dict[int, int] = {}

    def _index(self, m: Mutation) -> int:
        if m.path is not None:
            index, _ = split(m.path)
        elif m.handle is not None and m.handle in self._handles:
            index = self._handles[m.handle]
        else:
            raise OSError(errno.EBADF, f"{m}: unknown handle")
        if not 0 <= index < len(self._appliers):
            raise OSError(errno.EINVAL, f"{m}: no directory {index} in this module")
        return index

    def apply(self, mutation: Mutation, *, durable: bool) -> None:
        if mutation.path is None and mutation.handle not in self._handles:
            # A file without a name here (unlinked while open on the primary, or opened
            # before this session): nothing of it is visible on this copy.
            return
        index = self._index(mutation)
        if mutation.path2 is not None and split(mutation.path2)[0] != index:
            raise OSError(errno.EXDEV, f"{mutation}: across directories")
        local = replace(
            mutation,
            path=None if mutation.path is None else split(mutation.path)[1],
            path2=None if mutation.path2 is None else split(mutation.path2)[1],
        )
        if mutation.handle is not None:
            if mutation.op in (Op.OPEN, Op.CREATE):
                self._handles[mutation.handle] = index
            elif mutation.op is Op.RELEASE:
                self._handles.pop(mutation.handle, None)
        self._appliers[index].apply(local, durable=durable)

    def flush(self) -> None:
        for a in self._appliers:
            a.flush()

    def close(self) -> None:
        for a in self._appliers:
            close = getattr(a, "close", None)
            if close is not None:
                close()
