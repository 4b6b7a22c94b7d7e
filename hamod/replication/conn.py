"""One framed TLS connection driven by a single I/O thread.

The thread owns the :class:`ssl.SSLSocket` (non-blocking): OpenSSL objects must not be
read and written from two threads at once, so callers only append bytes to an output
buffer (:meth:`FrameConnection.send`, thread-safe, never blocks) and receive decoded
frames through a callback run on the I/O thread. Many frames queued while the thread
was busy leave in one TLS write: that is the pipelining. The first error (EOF, TLS
alert, bad frame) closes the connection and reports its reason once.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import ssl
import threading
from collections.abc import Callable
from typing import Final

from hamod.errors import PeerError
from hamod.replication.frames import Frame, FrameError, StreamDecoder

_CHUNK: Final = 256 * 1024
_POLL: Final = 1.0


class FrameConnection:
    """Frames in both directions over one TLS socket; see the module docstring."""

    def __init__(
        self,
        sock: ssl.SSLSocket,
        on_frame: Callable[[Frame], None],
        on_close: Callable[[str], None],
        *,
        name: str = "hamod-link",
    ) -> None:
        self._sock = sock
        self._on_frame = on_frame
        self._on_close = on_close
        self._lock = threading.Lock()
        self._out = bytearray()
        self._inflight: bytes | None = None  # a TLS write to retry with the same bytes
        self._closing: str | None = None
        self._after_send: str | None = None
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._woken = False
        self._decoder = StreamDecoder()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._sock.setblocking(False)
        self._thread.start()

    def send(self, data: bytes) -> None:
        """Queue ``data`` for sending (in call order); dropped once closed."""
        with self._lock:
            if self._closing is not None or self._after_send is not None:
                return
            self._out += data
            self._wake()

    def close(self, reason: str) -> None:
        """Close the connection (asynchronously); ``on_close`` gets ``reason``."""
        with self._lock:
            if self._closing is None:
                self._closing = reason
            self._wake()

    def close_after_send(self, reason: str) -> None:
        """Close once everything queued so far is sent (a FAILURE frame must reach the
        peer before the connection ends); nothing queued later is sent."""
        with self._lock:
            if self._closing is None and self._after_send is None:
                self._after_send = reason
            self._wake()

    def join(self, timeout: float) -> None:
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    def _wake(self) -> None:
        if not self._woken:
            self._woken = True
            with contextlib.suppress(OSError):
                os.write(self._wake_w, b"\0")

    def _run(self) -> None:
        reason = "closed"
        try:
            reason = self._loop()
        except (OSError, ValueError) as exc:
            reason = f"connection error: {exc}"
        finally:
            with self._lock:
                self._closing = self._closing or reason
                reason = self._closing
            with contextlib.suppress(OSError):
                self._sock.close()
            for fd in (self._wake_r, self._wake_w):
                with contextlib.suppress(OSError):
                    os.close(fd)
            self._on_close(reason)

    def _loop(self) -> str:
        want_write = False
        while True:
            with self._lock:
                if self._closing is not None:
                    return self._closing
            # Send everything queued until the socket would block: waiting in select
            # with data queued and the socket writable would stall the link.
            while not want_write:
                with self._lock:
                    if self._inflight is None and self._out:
                        self._inflight = bytes(self._out[:_CHUNK])
                        del self._out[:_CHUNK]
                if self._inflight is None:
                    break
                want_write = self._try_send()
            with self._lock:
                if self._after_send is not None and not self._out and self._inflight is None:
                    return self._after_send
            sock = self._sock.fileno()
            writers = [sock] if want_write else []
            readable, writable, _ = select.select([sock, self._wake_r], writers, [], _POLL)
            if self._wake_r in readable:
                # Drain first, then clear: a sender seeing the flag still set has its
                # data queued before the next turn of the loop takes the buffer.
                with contextlib.suppress(BlockingIOError):
                    os.read(self._wake_r, 4096)
                with self._lock:
                    self._woken = False
            if writable:
                want_write = False
            if sock in readable:
                problem = self._read()
                if problem is not None:
                    return problem

    def _try_send(self) -> bool:
        """Send the in-flight chunk; True when the socket must become writable first."""
        assert self._inflight is not None
        try:
            sent = self._sock.send(self._inflight)
        except (ssl.SSLWantWriteError, ssl.SSLWantReadError, BlockingIOError):
            return True
        if sent < len(self._inflight):
            self._inflight = self._inflight[sent:]
            return True
        self._inflight = None
        return False

    def _read(self) -> str | None:
        while True:
            try:
                data = self._sock.recv(_CHUNK)
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
                return None
            except ssl.SSLError as exc:
                return f"TLS error: {exc.reason or exc}"
            if not data:
                return "peer closed the connection"
            for frame in self._decoder.feed(data):
                if isinstance(frame, FrameError):
                    return f"bad frame from peer: {frame.reason}"
                self._on_frame(frame)


def tls_connector(
    ctx: ssl.SSLContext,
    host: str,
    port: int,
    *,
    server_hostname: str | None = None,
    timeout: float = 5.0,
) -> Callable[[], ssl.SSLSocket]:
    """A function opening a TLS connection to the peer (PeerError when it cannot)."""

    def connect() -> ssl.SSLSocket:
        try:
            raw = socket.create_connection((host, port), timeout=timeout)
        except OSError as exc:
            raise PeerError(f"cannot connect to peer {host}:{port}: {exc}") from None
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            return ctx.wrap_socket(raw, server_hostname=server_hostname or host)
        except (OSError, ssl.SSLError) as exc:
            raw.close()
            why = getattr(exc, "reason", None) or exc
            raise PeerError(f"TLS handshake with peer {host}:{port} refused: {why}") from None

    return connect
