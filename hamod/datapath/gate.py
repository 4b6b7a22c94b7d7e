"""Which operations are between their tracking hook and their reply.

A resync round takes a marker in the change tracker (``changes_since``) and then reads
the regions it names. An operation that recorded its region *before* the marker but
writes it to disk *after* the read would be forgotten by ``clear_upto``: its region is
neither copied fresh nor recorded again. So after the marker the resync waits until
every operation that entered before it has finished (:meth:`Gate.drain`).

An operation enters in its tracking hook (:class:`GatedTracker`) and leaves when the
FUSE call returns or fails (the data path's bridge calls :func:`leave_any` after every
operation; a thread runs one operation at a time). Cost: two uncontended lock
acquisitions per mutating operation.
"""

from __future__ import annotations

import threading
import time

_entered = threading.local()


def leave_any() -> None:
    """The FUSE call of this thread is over: leave the gate it entered, if any (called
    by the bridge after every operation)."""
    gate = getattr(_entered, "gate", None)
    if gate is not None:
        _entered.gate = None
        gate.leave()


class Gate:
    """Counts operations in flight per epoch; :meth:`drain` starts a new epoch and waits
    for the older ones to empty."""

    def __init__(self) -> None:
        self._cv = threading.Condition()
        self._epoch = 0
        self._counts: dict[int, int] = {0: 0}
        self._tls = threading.local()
        self._held = False

    def enter(self) -> None:
        if getattr(self._tls, "epoch", None) is not None:
            return  # one operation may call several hooks (rename over a file)
        with self._cv:
            while self._held:
                self._cv.wait()
            epoch = self._epoch
            self._counts[epoch] += 1
        self._tls.epoch = epoch
        _entered.gate = self

    def leave(self) -> None:
        epoch = getattr(self._tls, "epoch", None)
        if epoch is None:
            return
        self._tls.epoch = None
        with self._cv:
            self._counts[epoch] -= 1
            if self._counts[epoch] == 0 and epoch != self._epoch:
                del self._counts[epoch]
                self._cv.notify_all()

    def drain(self, timeout: float) -> bool:
        """Wait until every operation that entered before this call has left; False if
        some are still in flight after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._cv:
            old = self._epoch
            self._epoch += 1
            self._counts[self._epoch] = 0
            for e in [e for e, n in self._counts.items() if e <= old and n == 0]:
                del self._counts[e]
            return self._cv.wait_for(
                lambda: not any(e <= old for e in self._counts),
                max(0.0, deadline - time.monotonic()),
            )

    def hold(self) -> None:
        """New operations wait before their hook until :meth:`release` (the last resync
        round's short barrier); operations in flight go on (see :meth:`drain`)."""
        with self._cv:
            self._held = True

    def release(self) -> None:
        with self._cv:
            self._held = False
            self._cv.notify_all()

    @property
    def in_flight(self) -> int:
        with self._cv:
            return sum(self._counts.values())
