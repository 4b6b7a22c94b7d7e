"""A change tracker whose hooks enter the data path's :class:`~hamod.datapath.gate.Gate`
(the hook is where an operation is announced; the bridge leaves the gate when the FUSE
call is over)."""

from __future__ import annotations

from hamod.datapath.gate import Gate
from hamod.tracking.tracker import ChangeTracker
from hamod.tracking.types import FileRef, NsOp


class GatedTracker:
    """A :class:`~hamod.datapath.tracking.Tracker` that enters the gate before the
    inner tracker's hook (the hook is where an operation is announced)."""

    def __init__(self, inner: ChangeTracker, gate: Gate) -> None:
        self._inner = inner
        self._gate = gate

    def write(self, ref: FileRef, offset: int, length: int) -> int:
        self._gate.enter()
        return self._inner.write(ref, offset, length)

    def truncate(self, ref: FileRef, size: int) -> int:
        self._gate.enter()
        return self._inner.truncate(ref, size)

    def setattr(self, ref: FileRef) -> int:
        self._gate.enter()
        return self._inner.setattr(ref)

    def namespace(self, op: NsOp) -> int:
        self._gate.enter()
        return self._inner.namespace(op)

    def failed(self, op: NsOp) -> None:
        self._inner.failed(op)
