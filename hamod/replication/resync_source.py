"""The source side of a resync, online: the application keeps writing meanwhile.

1. **Sets.** For each directory: the changes the target lacks (``changes_since`` the
   oldest generation of this node's history the target does not have), with names
   resolved, merged with the target's own possibly unacknowledged changes (its activity
   log, sent in its hello). Unknown history, ``fullsync`` or an unfinished full copy →
   full copy.
2. **Full copy** (if needed): a tracker marker, then rsync of each directory underneath
   (``-aHAXS --numeric-ids --delete``, excludes, bandwidth cap) over the cluster's TLS;
   what the application changes meanwhile is tracked and copied by the rounds.
3. **Rounds**: send a set as mutations (read now from the directory underneath), flush
   (durable on the target), ``clear_upto`` (forget what was copied, keep what was
   rewritten meanwhile); then the next set is what changed since. A long round is cut
   short at **checkpoints** (every :data:`CHECKPOINT` bytes at least, between two files,
   while the bytes sent are under the first set's): flush, record again in the tracker
   the files it did not reach, ``clear_upto``; the next round goes on from there. A link
   cut loses only what was sent since the last checkpoint: the next attempt starts from
   what is left.
4. **Last round**, behind one short barrier: new operations wait before their tracking
   hook, those in flight finish, the last (small) set is sent and flushed, the link
   goes live, the operations go on. Without the barrier a live operation could meet a
   target that the round had already brought past it (a rename replayed twice).

Every marker is followed by :meth:`Gate.drain`: an operation that announced its region
before the marker finishes its write before the region is read.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from hamod.core.model import DataHistory, Generation
from hamod.datapath.gate import Gate
from hamod.datapath.mutation import Mutation, Op
from hamod.errors import HamodError, PeerError
from hamod.replication import setwire
from hamod.replication.dpconfig import DpConfig
from hamod.replication.link import PeerLink
from hamod.replication.multidir import tag
from hamod.replication.replicator import Replicator
from hamod.replication.resync_stream import ResyncStream, Touched, record_remaining
from hamod.runtime.codec import decode
from hamod.tracking.replay import resolve_names
from hamod.tracking.tracker import ChangeTracker
from hamod.tracking.types import ChangeSet, Unknown, first_missing, merge

log = logging.getLogger(__name__)

SMALL = 4 << 20
"""A set under this many bytes of regions is sent as the last round."""
MAX_ROUNDS = 8
WINDOW = 16 << 20
"""Bytes posted between two barriers (bounds the memory in flight)."""
CHECKPOINT = 8 << 20
"""Bytes a round sends at least before it may be cut short at a checkpoint."""
CHECKPOINT_SHARE = 0.1
"""At most this share of a resync's time goes to checkpoints (flushes, records)."""
MAX_LEFT = 1024
"""A round with more files left than this is not cut short (each costs a record)."""


class ResyncAborted(HamodError):
    """The resync stopped (link lost, space, cancelled); the reason is the message."""


@dataclass
class Carry:
    """What one resync attempt leaves to the next (kept by the session): what the last
    round read (per directory) and whether it ended before its last round was done."""

    touched: list[Touched | None]
    interrupted: bool = False

    @classmethod
    def fresh(cls, directories: int) -> Carry:
        return cls([None] * directories)


@dataclass
class Stats:
    phase: str = "sets"
    planned: int = 0
    sent: int = 0
    rounds: int = 0
    started: float = 0.0


class ResyncSource:
    """One resync, run by the primary's session thread."""

    def __init__(
        self,
        cfg: DpConfig,
        trackers: list[ChangeTracker],
        replicator: Replicator,
        gate: Gate,
        link: PeerLink,
        history: DataHistory,
        cancel: threading.Event,
        carry: Carry,
    ) -> None:
        self.cfg = cfg
        self.trackers = trackers
        self.replicator = replicator
        self.gate = gate
        self.link = link
        self.history = history
        self.cancel = cancel
        self.carry = carry
        self.stats = Stats(started=time.monotonic())
        self._last_progress = 0.0
        self._window = 0
        self._after_full = False
        self._retry = False
        self._unsure: set[int] = set()  # directories whose next round replays unsure ops
        self._first_planned = 0  # bytes of the first set: checkpoints until sent once
        self._mark = 0  # stats.sent at the last checkpoint (or round start)
        self._not_before = 0.0  # no checkpoint before (monotonic)

    # --- the whole resync ---------------------------------------------------------------

    def run(self, reply: dict[str, Any]) -> None:
        self._retry = self.carry.interrupted  # the last attempt was cut
        self.carry.interrupted = True  # until the last round is done
        self._run(reply)
        self.carry.interrupted = False
        self.carry.touched = [None] * len(self.trackers)

    def _run(self, reply: dict[str, Any]) -> None:
        cur = self.history.current
        peer_cur = _generation(reply.get("current"))
        full = bool(reply.get("full"))
        sets = self._first_sets(peer_cur, reply.get("unacked"))
        if full or any(isinstance(s, Unknown) for s in sets):
            why = (
                "full requested" if full else next(s.reason for s in sets if isinstance(s, Unknown))
            )
            log.info("resync of %s: full copy (%s)", self.cfg.peer, why)
            self._check_space(reply, self._tree_bytes())
            self._full_copy()
            self._after_full = True
            sets = self._next_sets(cur)
        else:
            self._check_space(reply, sum(_bytes(s) for s in sets))
        self.stats.phase = "rounds"
        self._first_planned = sum(_bytes(s) for s in sets)
        rounds = 0
        while rounds < MAX_ROUNDS:
            if self._round(sets, checkpoints=True):
                rounds += 1  # a round cut short at a checkpoint goes on in the next one
            sets = self._next_sets(cur)
            if sum(_bytes(s) for s in sets) < SMALL:
                break
        # The last round behind one short barrier: new operations wait before their
        # hook, those in flight finish, the rest is sent, then the link goes live.
        self.stats.phase = "last round"
        self.gate.hold()
        try:
            sets = self._next_sets(cur)
            self._round(sets)
            self.replicator.go_live()
        finally:
            self.gate.release()
        if not self.replicator.live:
            raise ResyncAborted("peer link lost at the end of the resync")
        self.stats.phase = "done"

    # --- sets ---------------------------------------------------------------------------

    def _first_sets(
        self, peer_cur: Generation | None, unacked: object
    ) -> list[ChangeSet | Unknown]:
        cur = self.history.current
        n = len(self.trackers)
        targets: list[ChangeSet | Unknown | None] = [None] * n
        if isinstance(unacked, list) and len(unacked) == n:
            targets = [setwire.load(x) for x in unacked]
        since = first_missing(self.history, peer_cur)
        out: list[ChangeSet | Unknown] = []
        for i, t in enumerate(self.trackers):
            src: ChangeSet | Unknown
            if cur is None:
                src = Unknown("this node has no data generation")
            elif peer_cur == cur:
                src = t.changes_since(cur) if t.tracking else ChangeSet(t.region_size, 0)
            elif since is None:
                src = Unknown(f"generation {peer_cur} of the peer is not in this node's history")
            else:
                src = t.changes_since(since)
            if isinstance(src, ChangeSet):
                src = resolve_names(src, self.cfg.under(i))
            tgt = targets[i]
            out.append(src if tgt is None else merge(src, tgt))
        self.gate.drain(self.cfg.link_timeout)
        return out

    def _next_sets(self, cur: Generation | None) -> list[ChangeSet | Unknown]:
        out: list[ChangeSet | Unknown] = []
        for i, t in enumerate(self.trackers):
            if cur is None or not t.tracking:
                out.append(ChangeSet(t.region_size, 0))
                continue
            s = t.changes_since(cur)
            out.append(resolve_names(s, self.cfg.under(i)) if isinstance(s, ChangeSet) else s)
        self.gate.drain(self.cfg.link_timeout)
        if any(isinstance(s, Unknown) for s in out):
            raise ResyncAborted("change tracking lost during the resync")
        return out

    # --- copying ------------------------------------------------------------------------

    def _round(self, sets: list[ChangeSet | Unknown], *, checkpoints: bool = False) -> bool:
        """Send one round; what it read is handed to the next round (see
        :class:`~hamod.replication.resync_stream.ResyncStream`). The first round of a
        retry after a cut treats every replayed op as possibly applied already. With
        ``checkpoints`` a long round may be cut short (:meth:`_checkpoint`): False then."""
        self.stats.rounds += 1
        self.stats.planned += sum(_bytes(s) for s in sets)
        self._mark = self.stats.sent
        # After a cut, or after a full copy that read every name while the application
        # wrote, the ops of the first round may have met a target that already has them.
        if (self.stats.rounds == 1 and self._retry) or self._after_full:
            self._unsure = set(range(len(sets)))
        self._after_full = False
        for i, s in enumerate(sets):
            assert isinstance(s, ChangeSet)
            if s.empty:
                self._unsure.discard(i)
                continue
            stream = ResyncStream(
                s,
                self.cfg.under(i),
                previous=self.carry.touched[i],
                unsure_ops=len(s.ops) if i in self._unsure else 0,
            )
            may_stop = checkpoints and self.trackers[i].tracking and bool(s.upto)
            try:
                self._post_all((tag(i, m) for m in stream), stream if may_stop else None)
            finally:
                self.carry.touched[i] = stream.touched()
            self._unsure.discard(i)
            if stream.stopped:
                self._checkpoint(sets, i, stream)
                return False
        self._flush()
        for t, s in zip(self.trackers, sets, strict=True):
            if isinstance(s, ChangeSet) and s.upto and t.tracking:
                t.clear_upto(s.upto)
        return True

    def _checkpoint_due(self, stream: ResyncStream) -> bool:
        return (
            self.stats.sent - self._mark >= CHECKPOINT
            and self.stats.sent < self._first_planned
            and stream.files_left <= MAX_LEFT
            and time.monotonic() >= self._not_before
        )

    def _checkpoint(
        self, sets: list[ChangeSet | Unknown], index: int, stream: ResyncStream
    ) -> None:
        """The round stopped between two files of directory ``index``: make what it sent
        durable on both copies, record again what it did not reach, and forget the rest
        of the round's sets up to ``index`` (the directories after it were not sent: they
        keep everything). The next round goes on from there."""
        t0 = time.monotonic()
        self._flush()
        left = stream.remaining()
        calls = record_remaining(self.trackers[index], self.cfg.under(index), left)
        for t, s in list(zip(self.trackers, sets, strict=True))[: index + 1]:
            if isinstance(s, ChangeSet) and s.upto and t.tracking:
                t.clear_upto(s.upto)
        later = sum(_bytes(s) for s in sets[index + 1 :])
        self.stats.planned -= left.data_bytes + later  # counted again by the next round
        took = time.monotonic() - t0
        self._mark = self.stats.sent
        self._not_before = time.monotonic() + took / CHECKPOINT_SHARE
        log.info(
            "resync of %s: checkpoint after %d bytes: %d files left (%d records), %.2fs",
            self.cfg.peer, self.stats.sent, len(left.files), calls, took,
        )  # fmt: skip

    def _post_all(self, mutations: Iterable[Mutation], stream: ResyncStream | None = None) -> None:
        """Post ``mutations`` (bandwidth cap, a barrier every :data:`WINDOW` bytes);
        with ``stream``, ask it to stop at its next file boundary once a checkpoint is
        due."""
        bw = self.cfg.bandwidth
        for m in mutations:
            if self.cancel.is_set():
                raise ResyncAborted("resync stopped")
            size = len(m.data) if m.data is not None and m.op is Op.WRITE else 0
            self.link.post(m)
            self.stats.sent += size
            self._window += size
            if self._window >= WINDOW:
                self._window = 0
                self.link.barrier()
            if bw and size:
                elapsed = time.monotonic() - self.stats.started
                ahead = self.stats.sent / bw - elapsed
                if ahead > 0:
                    time.sleep(min(ahead, 1.0))
            if stream is not None and self._checkpoint_due(stream):
                stream.request_stop()
                stream = None
            self._progress()

    def _flush(self) -> None:
        """Both copies durable before the tracker forgets what was sent: the target's
        (FLUSH) and this node's own (a crash here must not lose what was cleared)."""
        self.link.flush()
        os.sync()
        self._window = 0

    def _full_copy(self) -> None:
        from hamod.replication.rsync import rsync_push

        cur = self.history.current
        assert cur is not None
        self.stats.phase = "full copy"
        for t in self.trackers:  # a marker: what changes from now on is tracked
            if t.tracking:
                s = t.changes_since(cur)
                if isinstance(s, ChangeSet) and s.upto:
                    t.clear_upto(s.upto)
        self.gate.drain(self.cfg.link_timeout)
        self.link.control({"full_copy": True})
        for i, d in enumerate(self.cfg.directories):
            try:
                result = rsync_push(
                    self.cfg.under(i),
                    str(i),
                    self.cfg.connector(self.cfg.rsync_port),
                    exclude=self.cfg.excludes[i],
                    bwlimit=self.cfg.bandwidth,
                    progress=self._rsync_progress,
                    cancel=self.cancel,
                )
            except HamodError as exc:
                raise ResyncAborted(f"full copy of {d} failed: {exc}") from exc
            self.stats.sent += int(getattr(result, "bytes_sent", 0))

    def _rsync_progress(self, p: Any) -> None:
        frac = float(getattr(p, "fraction", 0.0))
        eta = getattr(p, "eta_seconds", None)
        self._send_progress(0.9 * frac, eta)

    def _progress(self) -> None:
        planned = max(self.stats.planned, 1)
        frac = min(0.99, self.stats.sent / planned)
        elapsed = time.monotonic() - self.stats.started
        rate = self.stats.sent / elapsed if elapsed > 0 else 0.0
        eta = (planned - self.stats.sent) / rate if rate > 0 else None
        self._send_progress(frac, eta)

    def _send_progress(self, frac: float, eta: float | None) -> None:
        now = time.monotonic()
        if now - self._last_progress < 0.5:
            return
        self._last_progress = now
        msg = {"progress": round(frac, 4), "eta": None if eta is None else round(eta, 1),
               "phase": self.stats.phase, "sent": self.stats.sent,
               "planned": self.stats.planned}  # fmt: skip
        self.link.control(msg, wait=False)

    # --- space ------------------------------------------------------------------------

    def _tree_bytes(self) -> int:
        import os

        total = 0
        for i in range(len(self.cfg.directories)):
            for root, _dirs, files in os.walk(self.cfg.under(i)):
                for f in files:
                    with contextlib.suppress(OSError):
                        total += os.lstat(os.path.join(root, f)).st_blocks * 512
        return total

    def _check_space(self, reply: dict[str, Any], need: int) -> None:
        free = reply.get("free")
        if not isinstance(free, list) or not all(isinstance(x, int) for x in free):
            return
        have = sum(free)
        if need > have:
            raise ResyncAborted(
                f"not enough space on {self.cfg.peer}: the resync needs {need} bytes, "
                f"{have} are free"
            )


def _bytes(s: ChangeSet | Unknown) -> int:
    if isinstance(s, Unknown):
        return 0
    return s.region_count() * s.region_size


def _generation(data: object) -> Generation | None:
    if data is None:
        return None
    try:
        return decode(Generation, data)
    except (HamodError, TypeError, ValueError, KeyError) as exc:
        raise PeerError(f"resync: bad generation from the peer: {exc}") from exc
