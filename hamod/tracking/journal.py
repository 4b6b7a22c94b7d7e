"""Durability of change tracking: the append-only journal with group commit, the
compaction snapshot, and recovery (snapshot + journal replay).

Owns the files ``journal`` and ``snapshot`` of one tracking directory (and their
``.tmp`` companions) through a :class:`~hamod.tracking.storage.Storage`.

- :class:`Journal`: ``append`` returns a ticket (the journal's length after the record);
  ``wait(ticket)`` returns once that length is durable. Concurrent waiters share one
  sync (group commit): whoever finds no sync running does one for everyone.
- :func:`compact`: write ``snapshot.tmp`` (synced), rename it over ``snapshot``, sync the
  directory; then the same for a fresh ``journal`` whose header says which seq it starts
  at. Every crash point leaves a snapshot plus a journal whose records past the snapshot
  are complete (records at or before the snapshot's seq are skipped on replay).
- :func:`recover`: load the snapshot, replay the journal's valid prefix, cut the journal
  there (so that new records are never hidden behind a torn one) and sync it. History
  that cannot be trusted (a damaged snapshot, a missing journal, a gap in seqs) yields a
  state marked ``lost``: the caller's resync becomes a full copy.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from hamod.core.model import Generation
from hamod.errors import AdapterError
from hamod.tracking.records import (
    HEADER_SIZE,
    JOURNAL_MAGIC,
    SNAPSHOT_MAGIC,
    Kind,
    Record,
    decode_frames,
    encode,
    header,
    read_header,
)
from hamod.tracking.state import AL, TRACKED, FileEntry, TrackState, decode_op, encode_op
from hamod.tracking.storage import Appender, Storage

__all__ = ["JOURNAL", "SNAPSHOT", "Journal", "Recovered", "compact", "recover"]

JOURNAL = "journal"
SNAPSHOT = "snapshot"
TMP = ".tmp"


class Journal:
    """The open journal: appends (under the caller's lock) and group-committed syncs."""

    def __init__(self, out: Appender, length: int, where: str) -> None:
        self._out = out
        self._where = where
        self._cv = threading.Condition()
        self._flushing = False
        self._failed: str | None = None
        self.written = length
        self.durable = length  # read without the lock by the hot path: monotonic int
        self.appended_records = 0
        self.syncs = 0

    def _check(self) -> None:
        if self._failed is not None:
            raise AdapterError(f"change tracking {self._where}: {self._failed}")

    def append(self, data: bytes, count: int = 1) -> int:
        self._check()
        try:
            self._out.write(data)
        except OSError as exc:
            self._failed = f"journal write failed: {exc.strerror or exc}"
            raise AdapterError(f"change tracking {self._where}: {self._failed}") from None
        with self._cv:
            self.written += len(data)
            self.appended_records += count
            return self.written

    def wait(self, ticket: int) -> None:
        """Return once the journal is durable up to ``ticket`` (raise if it never can)."""
        with self._cv:
            while self.durable < ticket:
                self._check()
                if self._flushing:
                    self._cv.wait()
                    continue
                self._flushing, target, error = True, self.written, None
                self._cv.release()
                try:
                    self._out.sync()
                except OSError as exc:
                    error = f"journal sync failed: {exc.strerror or exc}"
                finally:
                    self._cv.acquire()
                    self._flushing = False
                    self._cv.notify_all()
                if error is not None:  # after a failed fsync nothing is known: stop
                    self._failed = error
                    self._check()
                self.durable = max(self.durable, target)
                self.syncs += 1

    def flush(self) -> None:
        self.wait(self.written)

    def close(self) -> None:
        self._out.close()


def _snapshot_records(state: TrackState) -> list[Record]:
    out = [
        Record(Kind.S_GEN, 0, (g.term, g.seq, int(g.forced)), (g.node,)) for g in state.generations
    ]
    for which in (TRACKED, AL):
        side = state.side(which)
        for ino, entry in side.files.items():
            tail, tail_seq = entry.tail if entry.tail is not None else (-1, -1)
            attrs = -1 if entry.attrs is None else entry.attrs
            ints = [which, ino, tail, tail_seq, attrs]
            for region, seq in entry.regions.items():
                ints += (region, seq)
            out.append(Record(Kind.S_FILE, 0, tuple(ints), tuple(sorted(entry.paths))))
        out += [Record(Kind.S_NAME, s, (which,), (n,)) for n, s in side.names.items()]
        for seq, op in side.ops:
            ints_op, strs = encode_op(op)
            out.append(Record(Kind.S_OP, seq, (which, *ints_op), strs))
    lost = () if state.lost is None else (state.lost,)
    out.append(Record(Kind.S_META, state.last_seq, (int(state.tracking), len(out)), lost))
    return out


def _load_snapshot(data: bytes) -> TrackState:
    """The state a snapshot holds; ValueError saying why when it is not intact."""
    head = read_header(data, SNAPSHOT_MAGIC)
    if isinstance(head, str):
        raise ValueError(head)
    decoded = decode_frames(data)
    if decoded.problem is not None:
        raise ValueError(decoded.problem)
    records = decoded.records
    if (
        not records
        or records[-1].kind is not Kind.S_META
        or records[-1].ints[1] != len(records) - 1
    ):
        raise ValueError("truncated (no end record)")
    state = TrackState(head.region_size)
    for rec in records[:-1]:
        if rec.kind is Kind.S_GEN:
            term, seq, forced = rec.ints
            state.generations.append(Generation(rec.strs[0], term, seq, bool(forced)))
        elif rec.kind is Kind.S_FILE:
            which, ino, tail, tail_seq, attrs, *pairs = rec.ints
            side = state.side(which)
            entry = side.files[ino] = FileEntry()
            for path in rec.strs:
                side.entry(ino, path)
            entry.regions = dict(zip(pairs[::2], pairs[1::2], strict=True))
            entry.tail = None if tail < 0 else (tail, tail_seq)
            entry.attrs = None if attrs < 0 else attrs
        elif rec.kind is Kind.S_NAME:
            state.side(rec.ints[0]).names[rec.strs[0]] = rec.seq
        elif rec.kind is Kind.S_OP:
            state.side(rec.ints[0]).ops.append((rec.seq, decode_op(rec.ints[1:], rec.strs)))
        else:
            raise ValueError(f"unexpected {rec.kind.name} record")
    meta = records[-1]
    state.last_seq, state.tracking = meta.seq, bool(meta.ints[0])
    state.lost = meta.strs[0] if meta.strs else None
    return state


def _replace(storage: Storage, name: str, data: bytes) -> None:
    storage.create(name + TMP, data)
    storage.replace(name + TMP, name)
    storage.sync_dir()


def compact(storage: Storage, state: TrackState) -> Appender:
    """Make ``state`` the snapshot and start an empty journal after it (see module doc);
    the caller has made every appended record durable and holds its lock."""
    body = b"".join(encode(r) for r in _snapshot_records(state))
    _replace(storage, SNAPSHOT, header(SNAPSHOT_MAGIC, state.region_size) + body)
    _replace(storage, JOURNAL, header(JOURNAL_MAGIC, state.region_size, state.last_seq + 1))
    return storage.open_append(JOURNAL)


@dataclass(frozen=True)
class Recovered:
    state: TrackState
    journal: Appender
    journal_length: int
    notes: tuple[str, ...]  # what recovery noticed (torn tail ignored, history lost...)


def _lost(storage: Storage, region_size: int, reason: str, notes: list[str]) -> Recovered:
    state = TrackState(region_size, lost=reason)
    notes.append(f"history lost: {reason}")
    return Recovered(state, compact(storage, state), HEADER_SIZE, tuple(notes))


def recover(storage: Storage, region_size: int) -> Recovered:
    """Rebuild the state from the files in ``storage`` (creating them when absent)."""
    notes: list[str] = []
    snap, data = storage.read(SNAPSHOT), storage.read(JOURNAL)
    state = TrackState(region_size)
    if snap is not None:
        try:
            state = _load_snapshot(snap)
        except ValueError as exc:
            return _lost(storage, region_size, f"snapshot damaged: {exc}", notes)
    if data is None:
        if snap is None:
            _replace(storage, JOURNAL, header(JOURNAL_MAGIC, region_size, 1))  # fresh
            return Recovered(state, storage.open_append(JOURNAL), HEADER_SIZE, ())
        return _lost(storage, state.region_size, "journal missing", notes)
    head = read_header(data, JOURNAL_MAGIC)
    if isinstance(head, str):
        return _lost(storage, state.region_size, f"journal damaged: {head}", notes)
    if head.region_size != state.region_size and snap is not None:
        return _lost(storage, state.region_size, "journal and snapshot disagree", notes)
    state.region_size = head.region_size
    if head.base > state.last_seq + 1:
        what = "snapshot missing" if snap is None else "snapshot older than journal"
        return _lost(
            storage, state.region_size, f"{what} (journal starts at seq {head.base})", notes
        )
    decoded = decode_frames(data)
    end = HEADER_SIZE
    start = state.last_seq
    for rec, rec_end in zip(decoded.records, decoded.ends, strict=True):
        if rec.seq <= start:
            end = rec_end
            continue
        if rec.seq != state.last_seq + 1:
            reason = f"journal seq {rec.seq} follows {state.last_seq}"
            return _lost(storage, state.region_size, reason, notes)
        try:
            state.apply(rec)
        except (ValueError, IndexError, KeyError) as exc:
            return _lost(storage, state.region_size, f"bad record seq {rec.seq}: {exc}", notes)
        end = rec_end
    if decoded.problem is not None:
        notes.append(f"journal: {decoded.problem}; ignored {len(data) - end} unsynced bytes")
    out = storage.open_append(JOURNAL)
    if end < len(data):
        out.truncate(end)
        out.sync()
    return Recovered(state, out, end, tuple(notes))
