"""The receiving end of the peer link: :class:`PeerReceiver` and the :class:`Applier` port.

The receiver accepts TLS connections (mutual auth with the cluster CA; a peer without a
certificate from it is refused and counted in ``rejected``), checks that sequence
numbers strictly increase, acknowledges RECEIVED at once when the sender asked for it,
and hands frames in order to one apply thread, which acknowledges APPLIED (or DURABLE
when asked, after the applier made the operation durable). An applier error is sent
back as a FAILURE frame and nothing more is applied on that connection: the secondary
leaves the mirror. A new connection replaces the previous one.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import queue
import socket
import ssl
import threading
from collections.abc import Callable
from typing import Any, Protocol

from hamod.datapath.mutation import Mutation
from hamod.errors import HamodError
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

log = logging.getLogger(__name__)


class Applier(Protocol):
    """Redoes mutations on the secondary's copy, in order."""

    def apply(self, mutation: Mutation, *, durable: bool) -> None:
        """Apply ``mutation``; with ``durable``, also make its effect durable (fsync).
        Raises OSError when it cannot."""

    def flush(self) -> None:
        """Make everything applied so far durable."""


Reply = Callable[[dict[str, Any]], None]


class Controller(Protocol):
    """The session's control messages (handshake, resync), on the secondary."""

    def control(self, payload: dict[str, Any], reply: Reply) -> None:
        """A CONTROL frame, in order with the mutations (apply thread). ``reply`` sends a
        CONTROL frame back. Raising OSError fails the session like an apply error."""

    def closed(self, reason: str) -> None:
        """The session ended (I/O thread or apply thread)."""


class _Session:
    """One accepted connection: in-order apply thread and acknowledgements."""

    def __init__(
        self,
        sock: ssl.SSLSocket,
        applier: Applier,
        name: str,
        controller: Controller | None = None,
    ) -> None:
        self._applier = applier
        self._controller = controller
        self._reply_seq = 0
        self._reply_lock = threading.Lock()
        self._broken = False
        self._queue: queue.SimpleQueue[Frame | None] = queue.SimpleQueue()
        self._last_seq = 0
        self._conn = FrameConnection(sock, self._on_frame, self._on_close, name=f"{name}-io")
        self._worker = threading.Thread(target=self._apply_loop, name=f"{name}-apply", daemon=True)
        self.closed = threading.Event()

    def start(self) -> None:
        self._worker.start()
        self._conn.start()

    def close(self, reason: str) -> None:
        self._conn.close(reason)
        self._queue.put(None)

    def join(self, timeout: float) -> None:
        self._conn.join(timeout)
        self._worker.join(timeout)

    def _on_frame(self, frame: Frame) -> None:  # I/O thread
        seq = frame.seq
        if self._broken:
            return  # after a protocol error nothing more is applied
        if isinstance(frame, Ack | Failure) or seq <= self._last_seq:
            self._broken = True
            why = f"protocol error: unexpected {type(frame).__name__} seq {seq}"
            log.warning("replication peer: %s; closing", why)
            self._queue.put(None)
            self._conn.close(why)
            return
        self._last_seq = seq
        if isinstance(frame, MutationFrame) and frame.want is Level.RECEIVED:
            self._conn.send(pack(Ack(seq, Level.RECEIVED)))
        self._queue.put(frame)

    def _on_close(self, reason: str) -> None:
        log.info("replication connection closed: %s", reason)
        self._queue.put(None)
        self.closed.set()
        if self._controller is not None:
            self._controller.closed(reason)

    def reply(self, payload: dict[str, Any]) -> None:
        with self._reply_lock:
            self._reply_seq += 1
            self._conn.send(pack(Control(self._reply_seq, payload)))

    def _apply_loop(self) -> None:
        while (frame := self._queue.get()) is not None:
            try:
                level = self._apply(frame)
            except (OSError, HamodError) as exc:
                log.error("cannot apply frame %d: %s; leaving the mirror", frame.seq, exc)
                self._broken = True
                self._conn.send(pack(Failure(frame.seq, str(exc))))
                self._conn.close_after_send(f"could not apply frame {frame.seq}: {exc}")
                return
            self._conn.send(pack(Ack(frame.seq, level)))

    def _apply(self, frame: Frame) -> Level:
        if isinstance(frame, MutationFrame):
            durable = frame.want is Level.DURABLE
            self._applier.apply(frame.mutation, durable=durable)
            return Level.DURABLE if durable else Level.APPLIED
        if isinstance(frame, Flush):
            self._applier.flush()
            return Level.DURABLE
        if isinstance(frame, Control):
            if self._controller is None:
                raise OSError(errno.EPROTO, "control message without a controller")
            self._controller.control(frame.payload, self.reply)
            return Level.APPLIED
        assert isinstance(frame, Barrier)
        return Level.APPLIED


class PeerReceiver:
    """Listens on ``host:port`` (0: any free port, see ``address``) and applies frames."""

    def __init__(
        self,
        ctx: ssl.SSLContext,
        applier: Applier,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        handshake_timeout: float = 5.0,
        controller: Controller | None = None,
    ) -> None:
        self._ctx = ctx
        self._controller = controller
        self._applier = applier
        self._handshake_timeout = handshake_timeout
        self._listener = socket.create_server((host, port))
        self._listener.settimeout(0.2)
        self.address: tuple[str, int] = self._listener.getsockname()[:2]
        self.rejected = 0
        self.sessions = 0
        self._stop = threading.Event()
        self._session: _Session | None = None
        self._thread = threading.Thread(target=self._accept_loop, name="hamod-recv", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        if self._session is not None:
            self._session.close("receiver stopped")
            self._session.join(5)
        self._listener.close()

    def drop_session(self, reason: str) -> None:
        """Close the current connection (the sender reconnects and says hello again)."""
        session = self._session
        if session is not None:
            session.close(reason)

    def __enter__(self) -> PeerReceiver:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                raw, peer = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            sock = self._handshake(raw, peer)
            if sock is None:
                continue
            if self._session is not None:
                self._session.close("replaced by a new connection")
                self._session.join(5)
            self.sessions += 1
            self._session = _Session(
                sock, self._applier, f"hamod-recv{self.sessions}", self._controller
            )
            self._session.start()

    def _handshake(self, raw: socket.socket, peer: object) -> ssl.SSLSocket | None:
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        raw.settimeout(self._handshake_timeout)
        try:
            return self._ctx.wrap_socket(raw, server_side=True)
        except (OSError, ssl.SSLError) as exc:
            self.rejected += 1
            log.warning("replication peer %s refused: %s", peer, exc)
            with contextlib.suppress(OSError):
                raw.close()
            return None
