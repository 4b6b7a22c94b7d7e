"""The primary's side of a replication session: connect, hello, resync, live, mirroring.

While this node is primary and its peer announces SECOND, :class:`PrimarySession`
keeps one session with the peer's data path: it connects (mutual TLS), says hello, and
does what the answer asks — a resync (:mod:`hamod.replication.resync_source`) or
nothing — then the link goes live (every mutation shipped on it). When the core asks
for PRIMARY_MIRRORING it switches the trackers to the activity log, waits for a
barrier, and tells the secondary (``mirroring``: the secondary reports MirrorUp). A lost
link is reported (MIRRORING: the core holds writes, renews the lease alone) and the
session starts again once the peer is back as SECOND.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from hamod.core.actions import Role
from hamod.core.model import DataHistory
from hamod.datapath.gate import Gate
from hamod.errors import HamodError, PeerError
from hamod.replication.dpconfig import DpConfig
from hamod.replication.link import LinkLost, PeerLink
from hamod.replication.replicator import Replicator
from hamod.replication.resync_source import Carry, ResyncSource
from hamod.runtime.codec import encode
from hamod.tracking.tracker import ChangeTracker

log = logging.getLogger(__name__)

PRIMARY = (Role.PRIMARY_MIRRORING, Role.PRIMARY_HOLD, Role.PRIMARY_ALONE)
SYNC_POINT_EVERY = 1.0
"""Seconds between two sync points of the activity log while mirroring."""


class PrimarySession:
    """See the module docstring; one thread, started once, stopped with :meth:`stop`."""

    def __init__(
        self,
        cfg: DpConfig,
        trackers: list[ChangeTracker],
        replicator: Replicator,
        gate: Gate,
        history: Callable[[], DataHistory],
        emit: Callable[..., None],
    ) -> None:
        self.cfg = cfg
        self.trackers = trackers
        self.replicator = replicator
        self.gate = gate
        self.history = history
        self.emit = emit
        self._cv = threading.Condition()
        self._peer_second = False
        self._stop = threading.Event()
        self._cancel = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="hamod-session", daemon=True)
        self.status: dict[str, Any] = {"link": "down"}
        self._resync: ResyncSource | None = None
        self._carry = Carry.fresh(len(cfg.directories))

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._cancel.set()
        self.wake()
        self._thread.join(10)

    def wake(self) -> None:
        with self._cv:
            self._cv.notify_all()

    def peer_second(self, value: bool) -> None:
        with self._cv:
            self._peer_second = value
            self._cv.notify_all()

    # --- the loop ---------------------------------------------------------------------

    def _ready(self) -> bool:
        return self._peer_second and self.replicator.role in PRIMARY

    def _loop(self) -> None:
        since = time.monotonic()
        while not self._stop.is_set():
            with self._cv:
                self._cv.wait_for(lambda: self._stop.is_set() or self._ready(), 0.5)
            if self._stop.is_set():
                return
            if not self._ready():
                if (
                    self.replicator.role is Role.PRIMARY_MIRRORING
                    and time.monotonic() - since > self.cfg.link_timeout
                ):
                    self.replicator.report_missing("no secondary connected")
                continue
            try:
                self._session()
            except (HamodError, OSError) as exc:
                log.warning("replication session with %s: %s", self.cfg.peer, exc)
                self.status = {"link": "down", "error": str(exc)}
            since = time.monotonic()
            self._stop.wait(1.0)

    def _session(self) -> None:
        replies: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
        link = PeerLink(
            self.cfg.connector(self.cfg.port),
            mode=self.cfg.mode,
            timeout=self.cfg.link_timeout,
            on_control=replies.put,
        )
        link.connect()
        self.status = {"link": "connected"}
        self.replicator.attach(link)
        try:
            self._run(link, replies)
        except LinkLost as exc:
            self.replicator.detach(link, str(exc))
            raise
        except HamodError as exc:
            with contextlib.suppress(LinkLost):
                link.control({"resync_failed": str(exc)}, wait=False)
            self.replicator.detach(link, str(exc))
            link.close()
            raise

    def _run(self, link: PeerLink, replies: queue.SimpleQueue[dict[str, Any]]) -> None:
        link.control({"hello": 1, "module": self.cfg.module, "node": self.cfg.node})
        try:
            reply = replies.get(timeout=self.cfg.link_timeout)
        except queue.Empty:
            raise PeerError("no answer to hello") from None
        if reply.get("want") == "resync":
            self._cancel.clear()
            self.status = {"link": "resync"}
            src = ResyncSource(self.cfg, self.trackers, self.replicator, self.gate, link,
                               self.history(), self._cancel, self._carry)  # fmt: skip
            self._resync = src
            try:
                src.run(reply)
            finally:
                self._resync = None
            link.control({"resync_done": True})
            log.info("resync of %s done: %d rounds, %d bytes", self.cfg.peer, src.stats.rounds,
                     src.stats.sent)  # fmt: skip
        else:
            self.replicator.go_live()
        self.status = {"link": "live"}
        announced = False
        last_sync = time.monotonic()
        while not self._stop.is_set():
            if link.lost is not None:
                raise LinkLost(link.lost)
            if not self.replicator.live:
                raise LinkLost("link no longer live")
            role = self.replicator.role
            if role not in PRIMARY:
                link.close()
                self.replicator.detach(link, "no longer primary")
                return
            if role is Role.PRIMARY_MIRRORING and not announced:
                for t in self.trackers:
                    t.mirror()
                link.barrier()
                # with the generation it mirrors: the secondary keeps it for a daemon
                # that reconnects later (a secondary of the previous version ignores it)
                cur = self.history().current
                link.control({"mirroring": True, "generation": encode(cur)})
                announced = True
                self.status = {"link": "mirroring"}
                last_sync = time.monotonic()
            elif announced and time.monotonic() - last_sync >= SYNC_POINT_EVERY:
                self._sync_point(link)
                last_sync = time.monotonic()
            with self._cv:
                self._cv.wait(0.2)

    def _sync_point(self, link: PeerLink) -> None:
        """Let the activity log cool: every operation announced before now that has
        finished (the gate drained) and is durable on both copies (the peer's FLUSH;
        ``sync`` here: this node's own writes may never have been fsynced) is
        acknowledged for good: its region or name need not be copied back after a
        crash of either node."""
        upto = [t.last_number for t in self.trackers]
        if not self.gate.drain(self.cfg.link_timeout):
            return
        link.flush()
        os.sync()
        for t, n in zip(self.trackers, upto, strict=True):
            t.sync_point(n, force=True)

    def resync_status(self) -> dict[str, Any] | None:
        src = self._resync
        if src is None:
            return None
        s = src.stats
        return {"phase": s.phase, "planned": s.planned, "sent": s.sent, "rounds": s.rounds}
