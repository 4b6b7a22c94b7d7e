"""The sending end of the peer link: :class:`PeerLink`, a :class:`~hamod.datapath.mutation.Shipper`.

``ship`` is called by FUSE worker threads (many at once). Under one lock it stamps the
next sequence number and queues the frame on the single multiplexed TLS connection (so
the wire order is the module-wide order of the calls), then waits outside the lock for
the acknowledgement its mode needs:

- ``sync``: APPLIED; DURABLE for FSYNC/FSYNCDIR and O_SYNC/O_DSYNC writes.
- ``semisync``: RECEIVED.
- ``async``: nothing, except when the unacknowledged bytes exceed ``max_lag_bytes``
  (the lag bound); :meth:`PeerLink.lag` reports frames and bytes not yet applied.

No call waits longer than ``timeout``: then the link is *lost* (:class:`LinkLost`), the
connection is closed, and every later call fails fast until :meth:`PeerLink.connect`.
"""

from __future__ import annotations

import enum
import os
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hamod.datapath.mutation import Mutation, Op
from hamod.errors import PeerError
from hamod.replication.conn import FrameConnection
from hamod.replication.frames import (
    Ack,
    Barrier,
    Control,
    Failure,
    Flush,
    Frame,
    Level,
    MutationFrame,
    pack,
)


class Mode(enum.Enum):
    """Replication modes (DESIGN.md, Guarantee 1)."""

    SYNC = "sync"
    SEMISYNC = "semisync"
    ASYNC = "async"


class LinkLost(PeerError):
    """The peer did not acknowledge in time, or the connection broke: hold writes, take
    the lease, go ALONE and track changes (the failover protocol)."""


@dataclass(frozen=True, slots=True)
class Lag:
    """Frames (and their bytes) sent but not yet applied by the peer."""

    frames: int
    bytes: int


_SYNC_FLAGS = os.O_SYNC | os.O_DSYNC


def wanted_level(mode: Mode, mutation: Mutation) -> Level:
    """The acknowledgement ``ship`` waits for (async: the one it asks for, for the lag)."""
    if mode is Mode.SEMISYNC:
        return Level.RECEIVED
    if mode is Mode.SYNC and needs_durable(mutation):
        return Level.DURABLE
    return Level.APPLIED


def needs_durable(mutation: Mutation) -> bool:
    """fsync/fdatasync, and writes through an O_SYNC/O_DSYNC handle."""
    if mutation.op in (Op.FSYNC, Op.FSYNCDIR):
        return True
    return mutation.op is Op.WRITE and bool(mutation.flags & _SYNC_FLAGS)


class PeerLink:
    """Ships mutations to the peer; see the module docstring."""

    wants_data = True

    def __init__(
        self,
        connect: Callable[[], ssl.SSLSocket],
        *,
        mode: Mode,
        timeout: float,
        max_lag_bytes: int = 64 * 1024 * 1024,
        on_control: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.mode = mode
        self._on_control = on_control
        self.timeout = timeout
        self.max_lag_bytes = max_lag_bytes
        self._connect = connect
        self._cv = threading.Condition()
        self._conn: FrameConnection | None = None
        self._seq = 0
        self._acked = {level: 0 for level in Level}
        self._pending: deque[tuple[int, int]] = deque()
        self._pending_bytes = 0
        self._lost: str | None = "not connected"

    # --- connection -----------------------------------------------------------------

    def connect(self) -> None:
        """(Re)connect to the peer; PeerError when it cannot. Sequence numbers go on
        increasing; what was not acknowledged before is for resync to repair."""
        sock = self._connect()
        with self._cv:
            old = self._conn
            self._acked = {level: self._seq for level in Level}
            self._pending.clear()
            self._pending_bytes = 0
            conn = FrameConnection(sock, self._on_frame, lambda why: self._lose(why, conn))
            self._conn = conn
            self._lost = None
        if old is not None:
            old.close("replaced by a new connection")
        conn.start()

    reconnect = connect

    def close(self) -> None:
        self._lose("closed by this node")

    @property
    def lost(self) -> str | None:
        """Why the link is down, or None while it is up."""
        with self._cv:
            return self._lost

    def lag(self) -> Lag:
        with self._cv:
            return Lag(len(self._pending), self._pending_bytes)

    # --- shipping -------------------------------------------------------------------

    def ship(self, mutation: Mutation, meanwhile: Callable[[], None] | None = None) -> None:
        """Send ``mutation`` and wait for its mode's acknowledgement; LinkLost otherwise.
        ``meanwhile`` runs once the frame is sent and before waiting (outside the lock),
        so that the primary's own fsync overlaps the peer's; the link timeout counts from
        its end."""
        level = wanted_level(self.mode, mutation)
        self._send(lambda seq: MutationFrame(seq, level, mutation), level, meanwhile=meanwhile)

    def post(self, mutation: Mutation) -> None:
        """Send ``mutation`` without waiting for any acknowledgement (a primary serving
        ALONE keeps a resynced peer current this way); LinkLost only if the link is down."""
        self._send(lambda seq: MutationFrame(seq, Level.APPLIED, mutation), None)

    def control(self, payload: dict[str, Any], *, wait: bool = True) -> None:
        """Send a session message, ordered with the mutations; with ``wait``, return once
        the peer has processed it (and so everything before it)."""
        self._send(lambda seq: Control(seq, payload), Level.APPLIED if wait else None, wait=wait)

    def barrier(self) -> None:
        """Return once everything shipped before is applied by the peer (any mode)."""
        self._send(Barrier, Level.APPLIED, wait=True)

    def flush(self) -> None:
        """Return once everything shipped before is durable on the peer (any mode)."""
        self._send(Flush, Level.DURABLE, wait=True)

    def _send(
        self,
        make: Callable[[int], Frame],
        level: Level | None,
        *,
        wait: bool = False,
        meanwhile: Callable[[], None] | None = None,
    ) -> None:
        deadline = time.monotonic() + self.timeout
        with self._cv:
            if self._lost is not None or self._conn is None:
                raise LinkLost(f"peer link down: {self._lost}")
            seq = self._seq + 1
            data = pack(make(seq))
            self._seq = seq
            self._pending.append((seq, len(data)))
            self._pending_bytes += len(data)
            self._conn.send(data)
            if level is None:
                return
        if meanwhile is not None:
            meanwhile()
            deadline = time.monotonic() + self.timeout
        with self._cv:
            if self.mode is Mode.ASYNC and not wait:
                done = self._cv.wait_for(
                    lambda: self._lost is not None or self._pending_bytes <= self.max_lag_bytes,
                    max(0.0, deadline - time.monotonic()),
                )
            else:
                done = self._cv.wait_for(
                    lambda: self._lost is not None or self._reached(level, seq),
                    max(0.0, deadline - time.monotonic()),
                )
            if self._lost is not None:
                raise LinkLost(f"peer link lost: {self._lost}")
        if not done:
            why = f"no {level.name.lower()} acknowledgement for frame {seq} within {self.timeout}s"
            self._lose(why)
            raise LinkLost(f"peer link lost: {why}")

    def _reached(self, level: Level, seq: int) -> bool:
        return any(self._acked[lv] >= seq for lv in Level if lv >= level)

    # --- I/O thread callbacks -------------------------------------------------------

    def _on_frame(self, frame: Frame) -> None:
        if isinstance(frame, Control) and self._on_control is not None:
            self._on_control(frame.payload)  # must not block: runs on the I/O thread
            return
        with self._cv:
            match frame:
                case Ack(seq, level) if seq <= self._seq:
                    if seq > self._acked[level]:
                        self._acked[level] = seq
                    if level >= Level.APPLIED:
                        while self._pending and self._pending[0][0] <= seq:
                            self._pending_bytes -= self._pending.popleft()[1]
                    self._cv.notify_all()
                    return
                case Failure(seq, message):
                    why = f"peer could not apply frame {seq}: {message}"
                case _:
                    why = f"unexpected frame from peer: {frame}"
        self._lose(why)

    def _lose(self, why: str, conn: FrameConnection | None = None) -> None:
        with self._cv:
            if conn is not None and conn is not self._conn:
                return  # a replaced connection closing
            if self._lost is None:
                self._lost = why
            current, self._conn = self._conn, None
            self._cv.notify_all()
        if current is not None:
            current.close(why)
