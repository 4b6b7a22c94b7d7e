"""The primary's shipper: what happens to each mutation, by data-path role.

One :class:`Replicator` per module; each replicated directory's FUSE mount gets a
:class:`DirShipper` (its index in the module) that forwards to it, so the module's
mutations share one order and one link.

=====================  ===================================================================
role                   ``ship(mutation)``
=====================  ===================================================================
PRIMARY_MIRRORING      sent on the live link and waited for per the mode (durability
                       ``on-sync``: a plain write is posted without waiting; fsync,
                       fdatasync and close wait, and so cover every write before them;
                       O_SYNC/O_DSYNC/O_DIRECT writes always wait); when the link is
                       lost (or was never there), the loss is reported once and the call
                       waits for the core's decision: ALONE → returns (the change is in
                       the activity log, folded into the tracked changes), anything else
                       → EIO. Never longer than twice the link timeout.
PRIMARY_HOLD           waits the same way (lease renewal in progress).
PRIMARY_ALONE          returns at once (the tracker recorded the change before the
                       operation); if a resynced peer follows (the link is live),
                       posted on its link too, without waiting.
OFF / SECONDARY        EROFS (no read-write mount exists then).
=====================  ===================================================================
"""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence

from hamod.core.actions import Role
from hamod.datapath.faults import own_eio
from hamod.datapath.mutation import Mutation, Op
from hamod.replication.link import LinkLost, PeerLink
from hamod.replication.multidir import tag
from hamod.tracking.tracker import ChangeTracker

log = logging.getLogger(__name__)
_MISSING = object()


class Replicator:
    """See the module docstring. ``on_link_lost(reason)`` is called (once per link, from
    a FUSE or session thread) when the mirror link is lost while MIRRORING."""

    def __init__(
        self,
        trackers: Sequence[ChangeTracker],
        *,
        timeout: float,
        on_link_lost: Callable[[str], None],
        on_sync: bool = False,
    ) -> None:
        self.trackers = tuple(trackers)
        self.on_sync = on_sync
        self.timeout = timeout
        self._on_link_lost = on_link_lost
        self._cv = threading.Condition()
        self._role = Role.OFF
        self._link: PeerLink | None = None
        self._live = False
        self._reported: object | None = None  # the link whose loss was reported

    # --- state ------------------------------------------------------------------------

    @property
    def role(self) -> Role:
        with self._cv:
            return self._role

    @property
    def live(self) -> bool:
        with self._cv:
            return self._live and self._link is not None

    def set_role(self, role: Role) -> None:
        with self._cv:
            self._role = role
            self._cv.notify_all()

    def attach(self, link: PeerLink) -> None:
        """A session with the secondary: not live until :meth:`go_live`."""
        with self._cv:
            self._link, self._live = link, False
            self._reported = None
            self._cv.notify_all()

    def go_live(self) -> None:
        """From now on every mutation is posted (ALONE) or shipped (MIRRORING) on the
        attached link (the resync brought the peer up to here)."""
        with self._cv:
            if self._link is None:
                return
            self._live = True
            self._cv.notify_all()

    def detach(self, link: PeerLink, reason: str) -> None:
        with self._cv:
            self._detach(link, reason)

    def _detach(self, link: PeerLink, reason: str) -> None:
        if self._link is not link:
            return
        self._link, self._live = None, False
        self._cv.notify_all()
        report = self._role in (Role.PRIMARY_MIRRORING, Role.PRIMARY_HOLD)
        if report and self._reported is not link:
            self._reported = link
            threading.Thread(target=self._on_link_lost, args=(reason,), daemon=True).start()

    def report_missing(self, reason: str) -> None:
        """MIRRORING without any link for too long: report it as a loss (once)."""
        with self._cv:
            if self._link is not None or self._role is not Role.PRIMARY_MIRRORING:
                return
            if self._reported is _MISSING:
                return
            self._reported = _MISSING
        self._on_link_lost(reason)

    def barrier(self) -> bool:
        """Wait until the peer applied everything shipped so far (``verify`` settles
        with it); False when no live link."""
        with self._cv:
            link = self._link if self._live else None
        if link is None:
            return False
        try:
            link.barrier()
        except LinkLost as exc:
            self.detach(link, str(exc))
            return False
        return True

    # --- the shipper ------------------------------------------------------------------

    def shipper(self, index: int) -> DirShipper:
        return DirShipper(self, index)

    def ship(self, index: int, m: Mutation, meanwhile: Callable[[], None] | None = None) -> None:
        """Ship ``m`` per the role (module docstring). ``meanwhile`` (the local fsync of
        an fsync) runs exactly once: while the peer acknowledges when the mutation waits
        on the live link, else before returning."""
        pending = [meanwhile] if meanwhile is not None else []

        def local() -> None:
            while pending:
                pending.pop()()

        try:
            self._ship(index, m, local)
        finally:
            local()

    def _ship(self, index: int, m: Mutation, meanwhile: Callable[[], None]) -> None:
        tagged = tag(index, m)
        deadline = time.monotonic() + 2 * self.timeout
        while True:
            with self._cv:
                role, link, live = self._role, self._link, self._live
                if role is Role.PRIMARY_ALONE:
                    if link is None:
                        return
                    if not live:
                        return
                    try:
                        link.post(tagged)
                    except LinkLost as exc:
                        self._detach(link, str(exc))
                    return
                if role not in (Role.PRIMARY_MIRRORING, Role.PRIMARY_HOLD):
                    raise OSError(errno.EROFS, "not primary")
                if role is Role.PRIMARY_MIRRORING and link is not None and live:
                    pass  # ship outside the lock
                else:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise own_eio("peer link lost and the module is not ALONE")
                    self._cv.wait(min(left, 0.5))
                    continue
            try:
                if self.on_sync and _deferrable(m):
                    link.post(tagged)
                else:
                    link.ship(tagged, meanwhile)
                return
            except LinkLost as exc:
                self.detach(link, str(exc))


_PER_WRITE_FLAGS = os.O_SYNC | os.O_DSYNC | os.O_DIRECT


def _deferrable(m: Mutation) -> bool:
    """In ``on-sync``: a write that need not be on the peer before it returns (the next
    fsync, fdatasync or close of the file waits for it)."""
    return m.op is Op.WRITE and not m.flags & _PER_WRITE_FLAGS


class DirShipper:
    """The :class:`~hamod.datapath.mutation.Shipper` of directory ``index``."""

    wants_data = True

    def __init__(self, replicator: Replicator, index: int) -> None:
        self._r = replicator
        self._index = index

    def ship(self, mutation: Mutation, meanwhile: Callable[[], None] | None = None) -> None:
        self._r.ship(self._index, mutation, meanwhile)
