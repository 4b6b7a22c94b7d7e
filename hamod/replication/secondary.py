"""The secondary's side of a replication session (the target of a resync).

:class:`TargetSide` runs, while the role is SECONDARY, the link's receiver (mutations
applied underneath the read-only mount, by a :class:`~hamod.replication.multidir.ModuleApplier`),
the rsync endpoint of full copies, and the session's control messages:

- ``hello`` from the primary → the answer says what this node needs: a resync (``full``
  or incremental, with its own possibly unacknowledged changes — its activity log — for
  the source to copy back) or just live mirroring. Before a full copy over divergent
  data the current content is kept aside (hard-link snapshot next to the directory), and
  a durable flag says the copy is unfinished (a later attempt is full again).
- ``progress`` / ``resync_failed`` / ``resync_done`` / ``mirroring`` → events for the
  daemon (ResyncProgress, ResyncFailed, ResyncDone, MirrorUp).

``mirroring`` (the primary's barrier arrived: this copy mirrors the primary's
generation) is said once per session, so it is also kept as :attr:`TargetSide.mirroring`
— the primary's generation (None from a primary that did not say it) and since when —
until the session ends (a new hello, the connection closed, the role left): the
process's ``status`` answers it to a daemon that (re)connects after the event was sent.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from hamod.core.model import Generation
from hamod.errors import HamodError
from hamod.replication import setwire
from hamod.replication.applier import DirectoryApplier
from hamod.replication.dpconfig import DpConfig
from hamod.replication.multidir import ModuleApplier
from hamod.replication.receiver import PeerReceiver, Reply
from hamod.runtime.codec import decode, encode
from hamod.tracking.tracker import ChangeTracker
from hamod.tracking.types import Unknown

log = logging.getLogger(__name__)

Emit = Callable[..., None]


class TargetSide:
    """Receiver, rsync endpoint and session controller of a SECONDARY."""

    def __init__(self, cfg: DpConfig, trackers: list[ChangeTracker], emit: Emit) -> None:
        self.cfg = cfg
        self.trackers = trackers
        self.emit = emit
        self._lock = threading.Lock()
        self._want: dict[str, Any] | None = None  # the resync the core asked for
        self._resyncing = False
        self._receiver: PeerReceiver | None = None
        self._rsync: Any = None
        self._applier: ModuleApplier | None = None
        self.progress: dict[str, Any] = {}
        #: Where the resync the core asked for stands — ``none``, ``wanted``, ``running``,
        #: ``done``, ``failed`` (``cause``) — for a daemon that restarted meanwhile.
        self.outcome = "none"
        self.cause = ""
        #: The current session mirrors the primary: ``{"generation": <the primary's
        #: current generation, JSON, or None>, "since": <epoch seconds>}``, else None.
        self.mirroring: dict[str, Any] | None = None

    # --- lifecycle --------------------------------------------------------------------

    def start(self) -> None:
        if self._receiver is not None:
            return
        from hamod.replication.rsync import RsyncServer

        ctx = self.cfg.server_context()
        self._applier = ModuleApplier(
            [DirectoryApplier(self.cfg.under(i)) for i in range(len(self.cfg.directories))]
        )
        self._receiver = PeerReceiver(
            ctx, self._applier, host=self.cfg.my_address, port=self.cfg.port, controller=self
        )
        self._receiver.start()
        roots = {str(i): self.cfg.under(i) for i in range(len(self.cfg.directories))}
        self._rsync = RsyncServer(ctx, host=self.cfg.my_address, port=self.cfg.rsync_port,
                                  roots=roots)  # fmt: skip
        start = getattr(self._rsync, "start", None)
        if start is not None:
            start()

    def stop(self) -> None:
        receiver, self._receiver = self._receiver, None
        rsync, self._rsync = self._rsync, None
        if receiver is not None:
            receiver.close()
        if rsync is not None:
            rsync.close()
        if self._applier is not None:
            self._applier.close()
            self._applier = None
        with self._lock:
            self._resyncing = False
            self.mirroring = None

    @property
    def running(self) -> bool:
        return self._receiver is not None

    def want_resync(self, full: bool, keep_aside: bool, current: Any) -> None:
        """The core asks for a resync: the next hello gets it. A session already past
        its hello (live) is closed so that the primary says hello again."""
        with self._lock:
            self._want = {"full": full, "keep_aside": keep_aside, "current": current}
            resyncing = self._resyncing
            if not resyncing:
                self.outcome, self.cause = "wanted", ""
        if not resyncing and self._receiver is not None:
            self._receiver.drop_session("resync requested")

    def cancel_resync(self) -> None:
        with self._lock:
            self._want = None
            resyncing, self._resyncing = self._resyncing, False
            self.outcome, self.cause = "none", ""
        if resyncing and self._receiver is not None:
            self._receiver.drop_session("resync stopped")

    # --- Controller -------------------------------------------------------------------

    def control(self, payload: dict[str, Any], reply: Reply) -> None:
        if "hello" in payload:
            self._hello(payload, reply)
        elif "progress" in payload:
            keys = ("progress", "eta", "phase", "sent", "planned")
            self.progress = {k: payload.get(k) for k in keys}
            frac = payload.get("progress")
            if isinstance(frac, int | float):
                eta, sent, planned = payload.get("eta"), payload.get("sent"), payload.get("planned")
                self.emit(
                    "resync_progress",
                    fraction=max(0.0, min(1.0, float(frac))),
                    eta=eta if isinstance(eta, int | float) and eta >= 0 else None,
                    phase=str(payload.get("phase"))[:40],
                    sent=sent if isinstance(sent, int) and sent >= 0 else 0,
                    planned=planned if isinstance(planned, int) and planned >= 0 else 0,
                )
        elif "resync_failed" in payload:
            cause = str(payload["resync_failed"])[:500]
            with self._lock:
                self._resyncing = False
                self.outcome, self.cause = "failed", cause
            self.emit("resync_failed", cause=cause)
        elif "resync_done" in payload:
            self._done()
        elif "mirroring" in payload:
            self._mirroring(payload.get("generation"))
        elif "full_copy" in payload:
            self.progress = {"phase": "full copy"}
        else:
            raise OSError(f"unknown control message {sorted(payload)[:3]}")

    def closed(self, reason: str) -> None:
        cause = f"peer link closed during resync: {reason}"
        with self._lock:
            was, self._resyncing = self._resyncing, False
            if was:
                self.outcome, self.cause = "failed", cause
            self.mirroring = None
        if was:
            self.emit("resync_failed", cause=cause)

    def _mirroring(self, generation: Any) -> None:
        """The primary's barrier arrived (this session mirrors it): kept, and said."""
        gen: Generation | None = None
        if generation is not None:
            try:
                gen = decode(Generation, generation, "mirroring.generation")
            except (ValueError, TypeError) as exc:  # (TypeError: a field missing)
                raise OSError(f"bad mirroring message: generation: {exc}") from None
        rec = {"generation": encode(gen), "since": round(time.time(), 3)}
        with self._lock:
            self.mirroring = rec
        self.emit("mirroring", **rec)

    def _hello(self, payload: dict[str, Any], reply: Reply) -> None:
        if payload.get("module") != self.cfg.module:
            raise OSError(f"hello for module {payload.get('module')!r}, this is {self.cfg.module}")
        with self._lock:
            self.mirroring = None
        self.emit("session")  # a new session: not mirroring until the primary says so
        with self._lock:
            want = self._want
            self._resyncing = want is not None
            if want is not None:
                self.outcome, self.cause = "running", ""
        if want is None:
            reply({"want": "live"})
            return
        full = bool(want["full"]) or self.cfg.full_pending.exists()
        if full:
            if want["keep_aside"]:
                self._keep_aside()
            self._flag_full()
        unacked: list[dict[str, Any] | None] = []
        for i, t in enumerate(self.trackers):
            s = t.unacknowledged()
            if not isinstance(s, Unknown):
                from hamod.tracking.replay import resolve_names

                s = resolve_names(s, self.cfg.under(i))
            unacked.append(setwire.dump(s))
        free = [_free_bytes(self.cfg.under(i)) for i in range(len(self.cfg.directories))]
        reply({"want": "resync", "full": full, "current": want["current"],
               "unacked": unacked, "free": free})  # fmt: skip

    def _keep_aside(self) -> None:
        from hamod.replication.rsync import keep_aside

        for i in range(len(self.cfg.directories)):
            try:
                where = keep_aside(self.cfg.under(i), self.cfg.aside_root(i))
            except HamodError as exc:
                raise OSError(f"cannot keep the divergent data aside: {exc}") from exc
            self.emit("log", level="W", message=f"divergent data of {self.cfg.directories[i]} "
                      f"kept aside in {where}")  # fmt: skip

    def _flag_full(self) -> None:
        f = self.cfg.full_pending
        f.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(f, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        dfd = os.open(f.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    def _done(self) -> None:
        if self._applier is not None:
            self._applier.flush()
        self.cfg.full_pending.unlink(missing_ok=True)
        for t in self.trackers:
            t.reset()
        with self._lock:
            self._resyncing = False
            self._want = None
            self.outcome, self.cause = "done", ""
        self.progress = {}
        self.emit("resync_done")


def _free_bytes(path: os.PathLike[str]) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize
