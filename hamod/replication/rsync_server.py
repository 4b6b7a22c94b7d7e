"""The receiving end of a full copy: :class:`RsyncServer` runs ``rsync --server`` for an
authenticated peer, inside one of its named roots.

Per connection (one thread each): TLS 1.3 handshake with mutual authentication from the
cluster CA (a peer without a cluster certificate is refused, counted in ``rejected`` and
logged), one request line (:mod:`hamod.replication.rsync_proto`), strict validation
(known root; the arguments of a push that writes only inside the root), then
``rsync --server ...`` with the root's real path as its working directory and the TLS
stream relayed to its stdin and stdout (:class:`~hamod.replication.rsync_relay.Relay`).
A bad request gets one error line, is logged, counted in ``refused`` and closed: no
rsync runs, nothing is written.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from hamod.errors import AdapterError, PeerError
from hamod.replication.rsync_proto import (
    MAX_REQUEST,
    RequestError,
    check_root_name,
    check_server_args,
    encode_reply,
    parse_request,
)
from hamod.replication.rsync_relay import (
    Relay,
    close_tls,
    exit_frame,
    read_line,
    send_line,
    shutdown_socket,
)

log = logging.getLogger(__name__)

_ENV: Final = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}
_STDERR_TAIL: Final = 4096
_F_SETPIPE_SZ: Final = getattr(fcntl, "F_SETPIPE_SZ", 1031)
_PIPE_SIZE: Final = 1024 * 1024


class _Session:
    """One accepted connection, run on its own thread."""

    def __init__(self, server: RsyncServer, raw: socket.socket, peer: str) -> None:
        self.server = server
        self.raw = raw
        self.tls: ssl.SSLSocket | None = None
        self.peer = peer
        self.proc: subprocess.Popen[bytes] | None = None
        self.relay: Relay | None = None
        self.thread = threading.Thread(target=self.run, name=f"hamod-rsyncd-{peer}", daemon=True)

    def stop(self) -> None:
        if self.relay is not None:
            self.relay.stop("server stopped")
        shutdown_socket(self.tls if self.tls is not None else self.raw)
        proc = self.proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)

    def run(self) -> None:
        try:
            self._run()
        except Exception:  # a session must never take the server down
            log.exception("rsync session with %s failed", self.peer)
        finally:
            self.server._forget(self)

    def _run(self) -> None:
        tls = self.server._handshake(self.raw, self.peer)
        if tls is None:
            return
        self.tls = tls
        who = f"{_node_of(tls)} ({self.peer})"
        try:
            try:
                line, rest = read_line(tls, limit=MAX_REQUEST, timeout=self.server.request_timeout)
                root, args, path = self.server._check(line)
            except (PeerError, RequestError) as exc:
                self.server._refuse(tls, who, str(exc))
                return
            self._serve(tls, who, root, args, path, rest)
        finally:
            close_tls(tls)

    def _serve(
        self, tls: ssl.SSLSocket, who: str, root: str, args: list[str], path: Path, rest: bytes
    ) -> None:
        stdin_r, stdin_w = os.pipe()
        with contextlib.suppress(OSError):  # fewer, larger writes into rsync
            fcntl.fcntl(stdin_w, _F_SETPIPE_SZ, _PIPE_SIZE)
        try:
            proc = subprocess.Popen(
                [self.server.rsync, *args],
                cwd=path,
                stdin=stdin_r,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=_ENV,
                start_new_session=True,
            )
        except OSError as exc:
            os.close(stdin_w)
            self.server._refuse(tls, who, f"cannot start rsync in root {root!r}: {exc}")
            return
        finally:
            os.close(stdin_r)
        self.proc = proc
        assert proc.stdout is not None and proc.stderr is not None
        tail = bytearray()

        def keep(data: bytes) -> None:
            tail.extend(data)
            del tail[:-_STDERR_TAIL]

        self.server._count("sessions")
        log.info("rsync into root %r (%s) for %s: %s", root, path, who, " ".join(args))
        # The relay owns stdin_w and closes it when the peer's direction is finished.
        self.relay = Relay(
            tls,
            proc.stdout.fileno(),
            stdin_w,
            side="server",
            initial=rest,
            errfd=proc.stderr.fileno(),
            on_stderr=keep,
        )
        try:
            send_line(tls, encode_reply(None), timeout=self.server.request_timeout)
        except PeerError as exc:
            self.relay.stop(str(exc))
        if self.server._closing:
            self.relay.stop("server stopped")
        problem = self.relay.run()
        try:
            code = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            code = proc.wait()
        proc.stdout.close()
        proc.stderr.close()
        if problem is None:
            with contextlib.suppress(PeerError):
                send_line(tls, exit_frame(code), timeout=self.server.request_timeout)
        message = tail.decode("utf-8", "replace").strip()
        if code == 0 and problem is None:
            log.info("rsync into root %r for %s done", root, who)
        else:
            log.warning(
                "rsync into root %r for %s ended with exit code %s%s%s",
                root,
                who,
                code,
                f"; link: {problem}" if problem else "",
                f"; rsync said: {message}" if message else "",
            )


class RsyncServer:
    """Receives full copies into ``roots`` (name -> directory); see the module docstring.

    ``port`` 0 picks a free port (see ``address``). ``rsync`` is the program to run;
    ``max_sessions`` concurrent copies are served, more are refused.
    """

    def __init__(
        self,
        ctx: ssl.SSLContext,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        roots: Mapping[str, Path],
        rsync: str = "rsync",
        handshake_timeout: float = 5.0,
        request_timeout: float = 10.0,
        max_sessions: int = 4,
    ) -> None:
        program = shutil.which(rsync)
        if program is None:
            raise AdapterError(f"rsync program {rsync!r} not found; install the rsync package")
        for name in roots:
            try:
                check_root_name(name)
            except ValueError as exc:
                raise AdapterError(str(exc)) from None
        self.rsync = program
        self.roots = {name: Path(os.path.realpath(path)) for name, path in roots.items()}
        self.handshake_timeout = handshake_timeout
        self.request_timeout = request_timeout
        self.max_sessions = max_sessions
        self.rejected = 0  # TLS handshakes refused
        self.refused = 0  # requests refused
        self.sessions = 0  # rsync runs started
        self._ctx = ctx
        try:
            self._listener = socket.create_server((host, port))
        except OSError as exc:
            raise AdapterError(f"cannot listen for rsync on {host}:{port}: {exc}") from None
        self._listener.settimeout(0.2)
        self.address: tuple[str, int] = self._listener.getsockname()[:2]
        self._lock = threading.Lock()
        self._active: set[_Session] = set()
        self._closing = False
        self._thread = threading.Thread(target=self._accept_loop, name="hamod-rsyncd", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        """Stop accepting, end running copies (their rsync is killed), wait for them."""
        self._closing = True
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes accept() at once
        if self._thread.is_alive():
            self._thread.join(5)
        self._listener.close()
        with self._lock:
            active = list(self._active)
        for session in active:
            session.stop()
        for session in active:
            session.thread.join(10)

    def __enter__(self) -> RsyncServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def active(self) -> int:
        """Connections being served now."""
        with self._lock:
            return len(self._active)

    def _accept_loop(self) -> None:
        while not self._closing:
            try:
                raw, addr = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            peer = f"{addr[0]}:{addr[1]}"
            session = _Session(self, raw, peer)
            with self._lock:
                if len(self._active) < self.max_sessions:
                    self._active.add(session)
                    session.thread.start()
                    continue
            log.warning(
                "rsync connection from %s refused: %d copies running", peer, len(self._active)
            )
            self._count("refused")
            raw.close()

    def _count(self, counter: str) -> None:
        with self._lock:
            setattr(self, counter, getattr(self, counter) + 1)

    def _forget(self, session: _Session) -> None:
        with self._lock:
            self._active.discard(session)
        with contextlib.suppress(OSError):
            session.raw.close()

    def _handshake(self, raw: socket.socket, peer: str) -> ssl.SSLSocket | None:
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        _keepalive(raw)
        raw.settimeout(self.handshake_timeout)
        try:
            return self._ctx.wrap_socket(raw, server_side=True)
        except (OSError, ssl.SSLError) as exc:
            self._count("rejected")
            log.warning("rsync peer %s refused: %s", peer, exc)
            return None

    def _check(self, line: bytes) -> tuple[str, list[str], Path]:
        root, args = parse_request(line)
        path = self.roots.get(root)
        if path is None:
            raise RequestError(f"unknown root {root!r}")
        check_server_args(args)
        if not path.is_dir():
            raise RequestError(f"root {root!r} is not a directory on this node ({path})")
        return root, args, path

    def _refuse(self, tls: ssl.SSLSocket, who: str, reason: str) -> None:
        self._count("refused")
        log.warning("rsync request from %s refused: %s", who, reason)
        with contextlib.suppress(PeerError):
            send_line(tls, encode_reply(reason), timeout=2.0)
        _discard_input(tls, limit=1 << 20, timeout=0.5)


def _node_of(tls: ssl.SSLSocket) -> str:
    """The common name of the peer's certificate (its node name), or '?'."""
    cert = tls.getpeercert() or {}
    for rdn in cert.get("subject", ()):
        for attr in rdn:
            if attr[0] == "commonName":
                return str(attr[1])
    return "?"


def _discard_input(tls: ssl.SSLSocket, *, limit: int, timeout: float) -> None:
    """Read and drop what the client still sends (up to ``limit`` bytes, ``timeout``
    seconds) so that closing does not reset the connection before it read the reply."""
    deadline = time.monotonic() + timeout
    with contextlib.suppress(OSError, ssl.SSLError):
        while limit > 0 and (left := deadline - time.monotonic()) > 0:
            tls.settimeout(left)
            chunk = tls.recv(65536)
            if not chunk:
                return
            limit -= len(chunk)


def _keepalive(sock: socket.socket) -> None:
    """Notice a vanished peer within about a minute and a half."""
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 30)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 10)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 6)
