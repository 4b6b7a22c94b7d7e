"""The change tracker of one mirror module on one node: what the data path calls.

Owns the hot path (is this region already recorded?), the choice of records, the
activity log's cooling, and the markers of a resync. Durability is the journal's
(:mod:`hamod.tracking.journal`); what records mean is the state's.

Every data-path hook is called **before** the operation is done on the directory
underneath and returns once the operation's record (if one was needed) is durable, so no
change can reach the disk, let alone be acknowledged, without its record. Two modes:

- **tracking** (after ``begin(generation)``: ALONE, or the source of a resync): the first
  write to a region after a sync point (``begin``, a ``changes_since`` marker, a restart)
  pays one record; later writes pay nothing. Namespace ops are each recorded, in order.
- **activity log** (after ``mirror()``: live mirroring): a region or name becomes *hot*
  with one record before the first write to it; ``sync_point(upto)`` says the peer has
  every write numbered ``<= upto`` durably, which makes hot items older than that
  eligible to cool; they are removed in batches (one record, never waited for: losing it
  only leaves the items hot). ``begin`` folds the hot set into the tracked changes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hamod.core.model import Generation
from hamod.errors import AdapterError, UsageError
from hamod.tracking.journal import Journal, compact, recover
from hamod.tracking.records import HEADER_SIZE, Kind, Record, encode
from hamod.tracking.state import AL, COOL_ATTR, COOL_REGION, COOL_TAIL, TRACKED, encode_op
from hamod.tracking.storage import OsStorage, Storage
from hamod.tracking.types import (
    DEFAULT_REGION_SIZE,
    ChangeSet,
    FileRef,
    Link,
    NsOp,
    Unknown,
    Unlink,
    op_paths,
)

__all__ = ["ChangeTracker", "Stats"]

Key = tuple[int, int, int] | str  # (what, ino, region) of a file item, or a name
_Pending = tuple[Kind, tuple[int, ...], tuple[str, ...]]


@dataclass
class _Queue:
    """Records one hook needs, and the keys they arm."""

    pending: list[_Pending] = field(default_factory=list)
    keys: list[Key] = field(default_factory=list)


@dataclass(frozen=True)
class Stats:
    records: int  # records appended since open
    syncs: int  # journal syncs since open (group commit: one per batch)
    compactions: int
    journal_bytes: int
    tracked_files: int
    hot_items: int  # activity-log items (regions, tails, attrs, names)


class ChangeTracker:
    """Tracking of one module's directories; see the module docstring.

    ``directory`` holds the files (or pass ``storage``, the seam); ``compact_bytes``: the
    journal size past which :meth:`maybe_compact` compacts; ``cool_batch``: how many
    acknowledged hot items make a cooling batch.
    """

    def __init__(
        self,
        directory: Path | str | None = None,
        *,
        storage: Storage | None = None,
        region_size: int = DEFAULT_REGION_SIZE,
        compact_bytes: int = 8 << 20,
        cool_batch: int = 64,
        notify: Callable[[str], None] | None = None,
    ) -> None:
        if region_size < 512 or region_size & (region_size - 1):
            raise UsageError(f"region size {region_size}: must be a power of two >= 512")
        if storage is None:
            if directory is None:
                raise UsageError("ChangeTracker needs a directory or a storage")
            storage = OsStorage(directory)
        self._storage = storage
        self._where = str(directory or "(storage)")
        self._lock = threading.Lock()
        try:
            found = recover(storage, region_size)
        except OSError as exc:
            raise AdapterError(f"change tracking {self._where}: {exc.strerror or exc}") from None
        self._state = found.state
        self._shift = self._state.region_size.bit_length() - 1
        self._journal = Journal(found.journal, found.journal_length, self._where)
        self.notes = found.notes
        for line in found.notes:
            if notify is not None:
                notify(f"change tracking {self._where}: {line}")
        self._armed: dict[Key, int] = {}  # recorded since the last sync point -> ticket
        self._hot_last: dict[Key, int] = {}  # activity log: item -> last write number
        self._wseq = 0
        self._marker = 0
        self._compact_bytes = compact_bytes
        self._cool_batch = cool_batch
        self._compactions = 0
        self._prior_records = 0
        self._prior_syncs = 0

    # --- state ----------------------------------------------------------------------

    @property
    def region_size(self) -> int:
        return self._state.region_size

    @property
    def tracking(self) -> bool:
        return self._state.tracking

    @property
    def generations(self) -> tuple[Generation, ...]:
        return tuple(self._state.generations)

    @property
    def last_number(self) -> int:
        """The number of the last operation announced (for ``sync_point``)."""
        with self._lock:
            return self._wseq

    def stats(self) -> Stats:
        with self._lock:
            al = self._state.al
            hot = sum(
                len(e.regions) + (e.tail is not None) + (e.attrs is not None)
                for e in al.files.values()
            )
            return Stats(
                self._prior_records + self._journal.appended_records,
                self._prior_syncs + self._journal.syncs,
                self._compactions,
                self._journal.written,
                len(self._state.tracked.files),
                hot + len(al.names),
            )

    # --- appending ------------------------------------------------------------------

    def _append(self, pending: Sequence[_Pending]) -> int:
        """Append records (caller holds the lock); apply them; return the ticket."""
        seq = self._state.last_seq
        records = [Record(k, seq + i, ints, strs) for i, (k, ints, strs) in enumerate(pending, 1)]
        ticket = self._journal.append(b"".join(map(encode, records)), len(records))
        for record in records:
            self._state.apply(record)
        return ticket

    def _durable(self, pending: Sequence[_Pending], *, rearm: bool = False) -> None:
        """Append ``pending`` and wait until durable; ``rearm``: a sync point."""
        with self._lock:
            if rearm:
                self._armed.clear()
                self._hot_last.clear()
            journal, ticket = self._journal, self._append(pending)
        journal.wait(ticket)

    def _item(
        self, key: tuple[int, int, int], value: int, ref: FileRef, queue: _Queue, w: int
    ) -> int:
        """Ticket of the item ``key`` of ``ref`` when recorded; else queue its record."""
        side = TRACKED if self._state.tracking else AL
        if side == AL:
            self._hot_last[key] = w
        ticket = self._armed.get(key)
        what, ino, _ = key
        if ticket is not None:  # recorded since the sync point, and still there (not
            # cooled, cleared, or dropped with an unlinked inode whose number came back)
            entry = self._state.side(side).files.get(ino)
            if entry is not None and ref.path in entry.paths:
                if what == COOL_REGION and value in entry.regions:
                    return ticket
                if what == COOL_TAIL and entry.tail is not None and entry.tail[0] <= value:
                    return ticket
                if what == COOL_ATTR and entry.attrs is not None:
                    return ticket
        kind = (Kind.REGION, Kind.TAIL, Kind.ATTR)[what]
        ints = (side, ino) if what == COOL_ATTR else (side, ino, value)
        queue.pending.append((kind, ints, (ref.path,)))
        queue.keys.append(key)
        return 0

    def _finish(self, queue: _Queue, need: int) -> None:
        """(Lock held.) Append what is queued, arm its keys; then wait, lock released."""
        journal = self._journal
        if queue.pending:
            ticket = self._append(queue.pending)
            for key in queue.keys:
                self._armed[key] = ticket
            need = max(need, ticket)
        self._lock.release()
        try:
            if need > journal.durable:
                journal.wait(need)
        finally:
            self._lock.acquire()

    # --- data-path hooks (call before the operation; they return once it is durable) --

    def write(self, ref: FileRef, offset: int, length: int) -> int:
        """Bytes ``[offset, offset+length)`` of ``ref`` are about to change (write,
        fallocate/punch, shared mmap). Returns the write's number (for ``sync_point``)."""
        shift = self._shift
        with self._lock:
            self._wseq += 1
            w = self._wseq
            if length <= 0:
                return w
            queue, need = _Queue(), 0
            for region in range(offset >> shift, ((offset + length - 1) >> shift) + 1):
                ticket = self._item((COOL_REGION, ref.ino, region), region, ref, queue, w)
                need = max(need, ticket)
            self._finish(queue, need)
            return w

    def truncate(self, ref: FileRef, size: int) -> int:
        """``ref`` is about to be truncated (or extended) to ``size`` bytes."""
        with self._lock:
            self._wseq += 1
            w, tail = self._wseq, size >> self._shift
            queue = _Queue()
            self._finish(queue, self._item((COOL_TAIL, ref.ino, 0), tail, ref, queue, w))
            return w

    def setattr(self, ref: FileRef) -> int:
        """chmod, chown, utimens, setxattr/removexattr (ACLs) on ``ref`` are about to happen."""
        with self._lock:
            self._wseq += 1
            w = self._wseq
            queue = _Queue()
            self._finish(queue, self._item((COOL_ATTR, ref.ino, 0), 0, ref, queue, w))
            return w

    def namespace(self, op: NsOp) -> int:
        """A namespace operation is about to be done (create, mkdir, mknod, symlink, link,
        unlink, rmdir, rename)."""
        with self._lock:
            self._wseq += 1
            w = self._wseq
            ints, strs = encode_op(op)
            if self._state.tracking:
                self._finish(_Queue([(Kind.OP, (TRACKED, *ints), strs)]), 0)
                return w
            names = op_paths(op)
            al = self._state.al
            need, record = 0, False
            for name in names:
                self._hot_last[name] = w
                ticket = self._armed.get(name)
                record = record or ticket is None or name not in al.names or al.touches(name)
                need = max(need, ticket or 0)
            if isinstance(op, Unlink | Link) and op.ino in al.files:
                record = True
            queue = _Queue([(Kind.OP, (AL, *ints), strs)], list(names)) if record else _Queue()
            self._finish(queue, need)
            return w

    def failed(self, op: NsOp) -> None:
        """The operation announced by :meth:`namespace` failed: its names are reconciled
        whole by the resync (what the tracker assumed about them may be wrong)."""
        with self._lock:
            side = TRACKED if self._state.tracking else AL
            names = op_paths(op)
            if side == AL:
                for name in names:
                    self._hot_last[name] = self._wseq
        self._durable([(Kind.NAMES, (side,), names)])

    # --- activity log -------------------------------------------------------------------

    def sync_point(self, upto: int, *, force: bool = False) -> int:
        """The peer has durably applied every operation numbered ``<= upto``. Hot items
        not touched since then cool, in batches of ``cool_batch`` (or now with ``force``).
        Returns how many items cooled."""
        with self._lock:
            if self._state.tracking:
                return 0
            last = self._hot_last.get
            items: list[int] = []
            for ino, entry in self._state.al.files.items():
                keys = [(COOL_REGION, ino, r) for r in entry.regions]
                keys += [(COOL_TAIL, ino, 0)] if entry.tail is not None else []
                keys += [(COOL_ATTR, ino, 0)] if entry.attrs is not None else []
                for key in keys:
                    if last(key, 0) <= upto:
                        items += key
            names = [n for n in self._state.al.names if last(n, 0) <= upto]
            count = len(items) // 3 + len(names)
            if count == 0 or (count < self._cool_batch and not force):
                return 0
            self._append([(Kind.COOL, tuple(items), tuple(names))])  # not waited for
            for i in range(0, len(items), 3):
                key = (items[i], items[i + 1], items[i + 2])
                self._armed.pop(key, None)
                self._hot_last.pop(key, None)
            for name in names:
                self._armed.pop(name, None)
                self._hot_last.pop(name, None)
        self.maybe_compact()
        return count

    # --- generations and resync -----------------------------------------------------

    def begin(self, generation: Generation) -> None:
        """Going ALONE in ``generation``: track changes (the hot set is folded in)."""
        g = generation
        self._durable([(Kind.BEGIN, (g.term, g.seq, int(g.forced)), (g.node,))], rearm=True)

    def mirror(self) -> None:
        """Live mirroring resumed: writes go to the activity log."""
        self._durable([(Kind.MIRROR, (), ())], rearm=True)

    def changes_since(self, generation: Generation) -> ChangeSet | Unknown:
        """Everything changed in ``generation`` (the oldest one the peer lacks, see
        :func:`~hamod.tracking.types.first_missing`) and after; a sync point: the next
        write to any region records again, so ``clear_upto(result.upto)`` is exact."""
        with self._lock:
            state = self._state
            if state.lost is not None:
                return Unknown(state.lost)
            if generation not in state.generations:
                known = ", ".join(map(str, state.generations)) or "none"
                return Unknown(f"generation {generation} not tracked here (tracked: {known})")
            self._armed.clear()
            self._marker = state.last_seq
            return state.change_set(TRACKED, state.last_seq)

    def unacknowledged(self) -> ChangeSet | Unknown:
        """The activity log: what this node may have changed without the peer's
        acknowledgement (after a crash as primary); ``names`` are reconciled whole."""
        with self._lock:
            if self._state.lost is not None:
                return Unknown(self._state.lost)
            self._marker = self._state.last_seq
            return self._state.change_set(AL, self._state.last_seq)

    def clear_upto(self, upto: int) -> None:
        """A resync applied a change set taken at marker ``upto``: forget what it copied."""
        if upto > self._marker:
            raise UsageError(f"clear_upto({upto}): no change set was taken at that point")
        self._durable([(Kind.CLEAR, (upto,), ())])
        self.maybe_compact()

    def lose(self, reason: str) -> None:
        """Declare the history unknown (changes_since answers Unknown until ``reset``)."""
        self._durable([(Kind.LOST, (), (reason,))])

    def reset(self) -> None:
        """A full copy is starting/done: forget every change and a lost history."""
        self._durable([(Kind.RESET, (), ())], rearm=True)

    # --- compaction -----------------------------------------------------------------

    def maybe_compact(self) -> bool:
        if self._journal.written < self._compact_bytes:
            return False
        self.compact()
        return True

    def compact(self) -> None:
        """Snapshot the state and start an empty journal (writers wait meanwhile)."""
        with self._lock:
            old = self._journal
            old.flush()
            try:
                out = compact(self._storage, self._state)
            except OSError as exc:
                raise AdapterError(f"change tracking {self._where}: compaction: {exc}") from None
            self._prior_records += old.appended_records
            self._prior_syncs += old.syncs
            old.close()
            self._journal = Journal(out, HEADER_SIZE, self._where)
            self._armed = {k: 0 for k in self._armed}  # everything is durable now
            self._compactions += 1

    def close(self) -> None:
        with self._lock:
            self._journal.flush()
            self._journal.close()
