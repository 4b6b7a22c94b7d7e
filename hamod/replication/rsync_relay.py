"""Byte relay between a TLS connection and rsync, and the transport's line I/O.

:class:`Relay` copies both ways between an :class:`ssl.SSLSocket` and rsync's
descriptors on the calling thread. One thread owns the TLS object, as in
:mod:`hamod.replication.conn`: OpenSSL objects must not be read and written from two
threads at once. Buffers are bounded in both directions, so a slow side throttles the
other (back-pressure) instead of growing memory.

Like SSH, the transport carries the server's standard error and exit status besides
its output: client -> server bytes are rsync's stream as is; server -> client bytes are
frames, a header ``kind u8 | length u32`` (big-endian) then ``length`` bytes:

===== =========================================================================
kind  payload
===== =========================================================================
0     rsync's standard output (the protocol stream), for the client's rsync
1     rsync's standard error (messages a remote shell would show)
2     the server rsync's exit status, ``i32``; the last frame
===== =========================================================================

The relay ends on the ``"server"`` side when rsync closed its output and error and all
of it was sent; on the ``"client"`` side when the peer closed the connection and
everything was written to rsync (or, after :meth:`Relay.finish`, when the local rsync
closed its output and all of it was sent). The descriptor towards the local rsync is
closed once its direction is finished: that is how rsync learns the other side is gone.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import ssl
import struct
import time
from collections.abc import Callable
from typing import Final, Literal

from hamod.errors import PeerError

DATA: Final = 0
STDERR: Final = 1
EXIT: Final = 2
HEADER: Final = struct.Struct(">BI")
MAX_FRAME: Final = 1024 * 1024
_CHUNK: Final = 256 * 1024
_LIMIT: Final = 4 * 1024 * 1024
_WANT: Final = (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError)


def frame(kind: int, payload: bytes) -> bytes:
    """One server -> client frame."""
    return HEADER.pack(kind, len(payload)) + payload


def exit_frame(code: int) -> bytes:
    return frame(EXIT, struct.pack(">i", code))


class Relay:
    """See the module docstring.

    ``rfd``: what the local rsync writes (its output); ``wfd``: what it reads (owned by
    the relay, closed when that direction ends); ``errfd`` (server): its standard error.
    ``initial``: peer bytes already read after the request or reply line.
    ``on_stderr`` gets rsync's standard error (server: the local one, also sent; client:
    the peer's), ``on_exit`` (client) the peer rsync's exit status.
    """

    def __init__(
        self,
        tls: ssl.SSLSocket,
        rfd: int,
        wfd: int,
        *,
        side: Literal["server", "client"],
        initial: bytes = b"",
        errfd: int | None = None,
        on_stderr: Callable[[bytes], None] | None = None,
        on_exit: Callable[[int], None] | None = None,
    ) -> None:
        self._tls = tls
        self._side = side
        self._sources = [rfd] if errfd is None else [rfd, errfd]
        self._err = errfd
        self._wfd: int | None = wfd
        self._until_local = side == "server"
        self._on_stderr = on_stderr
        self._on_exit = on_exit
        self._raw = bytearray(initial if side == "client" else b"")  # frames to decode
        self._down = bytearray(initial if side == "server" else b"")  # peer -> local rsync
        self._up = bytearray()  # local -> peer
        self._inflight: bytes | None = None  # a TLS write to retry with the same bytes
        self._open = set(self._sources)  # local sources not at EOF
        self._down_eof = False
        self._stop: str | None = None
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)

    def finish(self) -> None:
        """From another thread: end once the local rsync's output is all sent (it
        exited); the peer's remaining bytes are dropped."""
        self._until_local = True
        self._wake()

    def stop(self, reason: str) -> None:
        """From another thread: end now, dropping what is buffered."""
        self._stop = reason
        self._wake()

    def run(self) -> str | None:
        """Relay until done; None when it ended as asked, else the reason it broke."""
        try:
            return self._loop()
        except ssl.SSLError as exc:
            return f"TLS error: {exc.reason or exc}"
        except OSError as exc:
            return f"connection error: {exc}"
        finally:
            self._close_local_writer()
            for fd in (self._wake_r, self._wake_w):
                with contextlib.suppress(OSError):
                    os.close(fd)

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"\0")

    def _close_local_writer(self) -> None:
        if self._wfd is not None:
            with contextlib.suppress(OSError):
                os.close(self._wfd)
            self._wfd = None

    def _loop(self) -> str | None:
        tls = self._tls
        tls.setblocking(False)
        for fd in self._sources:
            os.set_blocking(fd, False)
        if self._wfd is not None:
            os.set_blocking(self._wfd, False)
        tls_fd = tls.fileno()
        while True:
            if self._stop is not None:
                return self._stop
            problem = self._decode()
            if problem is not None:
                return problem
            tls_blocked = self._flush_up()
            local_blocked = self._flush_down()
            if self._down_eof and not self._down:
                self._close_local_writer()
            if self._done():
                return None
            events: dict[int, int] = {self._wake_r: select.POLLIN}
            if len(self._up) < _LIMIT:
                for fd in self._open:
                    events[fd] = select.POLLIN
            can_read_tls = not self._down_eof and len(self._down) + len(self._raw) < _LIMIT
            if can_read_tls:
                events[tls_fd] = select.POLLIN
            if tls_blocked:
                events[tls_fd] = events.get(tls_fd, 0) | select.POLLOUT
            if local_blocked and self._wfd is not None:
                events[self._wfd] = events.get(self._wfd, 0) | select.POLLOUT
            poller = select.poll()
            for fd, mask in events.items():
                poller.register(fd, mask)
            timeout = 0 if can_read_tls and tls.pending() else None
            ready = {fd for fd, _ in poller.poll(timeout)}
            if self._wake_r in ready:
                with contextlib.suppress(BlockingIOError):
                    os.read(self._wake_r, 4096)
            for fd in self._sources:
                if fd in ready and fd in self._open:
                    self._read_local(fd)
            if can_read_tls and (tls_fd in ready or tls.pending()):
                self._read_tls()

    def _done(self) -> bool:
        if self._until_local:
            return not self._open and not self._up and self._inflight is None
        return self._down_eof and not self._down

    def _read_local(self, fd: int) -> None:
        while len(self._up) < _LIMIT:
            try:
                data = os.read(fd, _CHUNK)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self._open.discard(fd)
                return
            if self._side == "client":
                self._up += data
            elif fd == self._err:
                self._up += frame(STDERR, data)
                if self._on_stderr is not None:
                    self._on_stderr(data)
            else:
                self._up += frame(DATA, data)

    def _read_tls(self) -> None:
        while len(self._down) + len(self._raw) < _LIMIT:
            try:
                data = self._tls.recv(_CHUNK)
            except _WANT:
                return
            if not data:
                self._down_eof = True
                return
            if self._wfd is None and self._side == "server":
                continue  # the local rsync is gone: drop
            if self._side == "server":
                self._down += data
            else:
                self._raw += data

    def _decode(self) -> str | None:
        """Client: move complete frames from ``_raw`` to their destinations."""
        raw = self._raw
        while len(raw) >= HEADER.size:
            kind, length = HEADER.unpack_from(raw)
            if kind not in (DATA, STDERR, EXIT) or length > MAX_FRAME:
                return f"bad frame from the rsync server (kind {kind}, length {length})"
            if len(raw) < HEADER.size + length:
                break
            payload = bytes(raw[HEADER.size : HEADER.size + length])
            del raw[: HEADER.size + length]
            if kind == DATA:
                if self._wfd is not None:
                    self._down += payload
            elif kind == STDERR:
                if self._on_stderr is not None:
                    self._on_stderr(payload)
            elif len(payload) == 4 and self._on_exit is not None:
                self._on_exit(struct.unpack(">i", payload)[0])
        if self._down_eof and raw:
            return "the rsync server's stream ended inside a frame"
        return None

    def _flush_up(self) -> bool:
        """Send buffered local data; True when TLS must become writable first."""
        while self._inflight is not None or self._up:
            if self._inflight is None:
                with memoryview(self._up) as view, view[:_CHUNK] as part:
                    self._inflight = bytes(part)
                del self._up[: len(self._inflight)]
            try:
                sent = self._tls.send(self._inflight)
            except _WANT:
                return True
            self._inflight = self._inflight[sent:] or None
        return False

    def _flush_down(self) -> bool:
        """Write buffered peer data to the local rsync; True when it is full."""
        while self._down and self._wfd is not None:
            try:
                with memoryview(self._down) as view, view[:_CHUNK] as part:
                    written = os.write(self._wfd, part)
            except BlockingIOError:
                return True
            except OSError:  # the local rsync is gone (EPIPE): drop what it missed
                self._down.clear()
                self._close_local_writer()
                return False
            del self._down[:written]
        return False


def send_line(tls: ssl.SSLSocket, data: bytes, *, timeout: float) -> None:
    """Send ``data`` (blocking, at most ``timeout`` seconds); PeerError when it cannot."""
    tls.settimeout(timeout)
    try:
        tls.sendall(data)
    except (OSError, ssl.SSLError) as exc:
        raise PeerError(f"cannot send to the peer: {exc}") from None


def read_line(tls: ssl.SSLSocket, *, limit: int, timeout: float) -> tuple[bytes, bytes]:
    """(one line without its newline, the bytes read after it). PeerError when the peer
    closes first, stays silent for ``timeout`` seconds in all, or sends more than
    ``limit`` bytes (newline included) without a newline."""
    deadline = time.monotonic() + timeout
    data = bytearray()
    while b"\n" not in data:
        if len(data) >= limit:
            raise PeerError(f"line longer than {limit} bytes")
        left = deadline - time.monotonic()
        if left <= 0:
            raise PeerError(f"no complete line within {timeout:g} s")
        tls.settimeout(left)
        try:
            chunk = tls.recv(min(16384, limit + 1 - len(data)))
        except TimeoutError:
            raise PeerError(f"no complete line within {timeout:g} s") from None
        except (OSError, ssl.SSLError) as exc:
            raise PeerError(f"connection error: {exc}") from None
        if not chunk:
            raise PeerError("the peer closed the connection")
        data += chunk
    line, _, rest = bytes(data).partition(b"\n")
    if len(line) + 1 > limit:
        raise PeerError(f"line longer than {limit} bytes")
    return line, rest


def close_tls(tls: ssl.SSLSocket) -> None:
    """Send TLS close_notify if possible (without waiting for the peer's) and close."""
    with contextlib.suppress(OSError, ValueError, ssl.SSLError):
        tls.setblocking(False)
        tls.unwrap()
    with contextlib.suppress(OSError):
        tls.close()


def shutdown_socket(sock: socket.socket) -> None:
    """Wake any thread blocked on ``sock`` (both directions shut, descriptor kept)."""
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
