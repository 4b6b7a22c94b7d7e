"""Serving the REST API inside the daemon's asyncio loop with uvicorn, on

1. a root-only Unix socket (file mode 0600 in a 0700 directory owned by the daemon's
   user, default ``/run/hamod/api.sock``) for the local ``hamod`` command;
2. TCP with mutual TLS (TLS 1.3; client certificates required, from the cluster CA)
   between nodes;
3. optionally plain TCP for the read-only health app (load balancers' ``ready`` check).

Sockets are bound here, not by uvicorn, so errors are precise and uvicorn's own socket
handling (mode 0666, ``sys.exit`` on bind errors, signal handlers) never applies. A
stale socket file (no one listening) is replaced atomically; a live one or anything that
is not a socket is refused. :func:`start_unix`/:func:`start_tls` return a running
:class:`ApiServer`; :meth:`ApiServer.stop` stops it gracefully. Failures raise
:class:`~hamod.errors.AdapterError` naming the path or address.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import socket
import ssl
import stat
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import uvicorn
from starlette.types import ASGIApp

from hamod.api.models import DEFAULT_SOCKET
from hamod.errors import AdapterError

SOCKET_MODE: Final = 0o600
DIR_MODE: Final = 0o700
STARTUP_TIMEOUT: Final = 10.0


@dataclass(frozen=True)
class TlsFiles:
    """PEM files of this node's identity and the cluster CA."""

    ca: Path
    cert: Path
    key: Path


def server_context(tls: TlsFiles) -> ssl.SSLContext:
    """TLS 1.3 server context requiring a client certificate issued by the cluster CA."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.verify_mode = ssl.CERT_REQUIRED
    try:
        ctx.load_cert_chain(tls.cert, tls.key)
        ctx.load_verify_locations(cafile=tls.ca)
    except (OSError, ssl.SSLError) as exc:
        raise AdapterError(f"TLS files {tls.cert}, {tls.key}, {tls.ca}: {_reason(exc)}") from exc
    return ctx


class _Server(uvicorn.Server):
    """uvicorn without signal handling: the daemon owns the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class ApiServer:
    """One running listener: uvicorn serving ``app`` on an already bound socket."""

    def __init__(
        self,
        server: uvicorn.Server,
        sock: socket.socket,
        where: str,
        unix: tuple[Path, int] | None = None,
    ) -> None:
        self._server = server
        self._sock = sock
        self.where = where
        self._task: asyncio.Task[None] | None = None
        self._unix = unix  # socket file and its inode, removed on stop if still ours

    @property
    def address(self) -> tuple[str, int] | str:
        """Bound address: ``(host, port)`` for TCP (the real port if 0 was asked), a path."""
        name = self._sock.getsockname()
        if isinstance(name, str):
            return name
        return str(name[0]), int(name[1])

    async def _start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"hamod-api {self.where}")
        deadline = asyncio.get_running_loop().time() + STARTUP_TIMEOUT
        while not self._server.started:
            if self._task.done():
                self._task.result()  # raises the startup error
                raise AdapterError(f"API on {self.where}: stopped during startup")
            if asyncio.get_running_loop().time() > deadline:
                await self.stop()
                raise AdapterError(f"API on {self.where}: not started after {STARTUP_TIMEOUT}s")
            await asyncio.sleep(0.01)

    async def _run(self) -> None:
        try:
            await self._server.serve(sockets=[self._sock])
        except SystemExit as exc:  # uvicorn exits the process on startup failure
            raise AdapterError(f"API on {self.where}: startup failed") from exc

    async def stop(self, grace: float = 5.0) -> None:
        """Stop accepting, let requests in progress finish for ``grace`` seconds, then
        cancel the rest (followed logs never end by themselves). Idempotent."""
        self._server.should_exit = True
        task = self._task
        if task is not None and not task.done():
            done, _ = await asyncio.wait({task}, timeout=grace + 1.0)
            if not done:
                self._server.force_exit = True
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._sock.close()
        if self._unix is not None:
            path, inode = self._unix
            with contextlib.suppress(FileNotFoundError):
                if path.lstat().st_ino == inode:
                    path.unlink()
            self._unix = None


def _config(app: ASGIApp, grace: float, ctx: ssl.SSLContext | None = None) -> uvicorn.Config:
    factory = None if ctx is None else (lambda _config, _default: ctx)
    return uvicorn.Config(
        app,
        lifespan="off",
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=int(grace) or 1,
        ssl_context_factory=factory,
    )


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError):
        return str(exc.reason or exc).lower().replace("_", " ")
    if isinstance(exc, OSError) and exc.errno is not None:
        return os.strerror(exc.errno).lower()
    return str(exc)


def _prepare_dir(directory: Path) -> None:
    """Create the socket's directory 0700, or check an existing one is ours and fix it."""
    try:
        directory.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        info = directory.lstat()
    except OSError as exc:
        raise AdapterError(f"{directory}: {_reason(exc)}") from exc
    if not stat.S_ISDIR(info.st_mode):
        raise AdapterError(f"{directory}: not a directory")
    if info.st_uid != os.geteuid():
        raise AdapterError(f"{directory}: owned by uid {info.st_uid}, not by this process")
    if stat.S_IMODE(info.st_mode) != DIR_MODE:
        os.chmod(directory, DIR_MODE)


def _check_stale(path: Path) -> None:
    """Refuse if ``path`` is something other than a socket nobody listens on."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(info.st_mode):
        raise AdapterError(f"{path}: exists and is not a socket; not replacing it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(str(path))
    except OSError as exc:
        if exc.errno not in (errno.ECONNREFUSED, errno.ENOENT):
            raise AdapterError(f"{path}: cannot tell if in use: {_reason(exc)}") from exc
        return  # stale
    finally:
        probe.close()
    raise AdapterError(f"{path}: another process is serving on it (is hamod already running?)")


def bind_unix(path: Path) -> tuple[socket.socket, int]:
    """A listening Unix socket at ``path`` (mode 0600, directory 0700), replacing a stale
    file atomically: bound under a temporary name, then renamed over it. Returns the
    socket and the inode of its file."""
    _prepare_dir(path.parent)
    _check_stale(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(tmp))
        os.chmod(tmp, SOCKET_MODE)
        sock.listen(128)
        os.rename(tmp, path)
        inode = path.lstat().st_ino
    except OSError as exc:
        sock.close()
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise AdapterError(f"{path}: cannot listen: {_reason(exc)}") from exc
    return sock, inode


def bind_tcp(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (IPv4 or IPv6 literal; port 0 = any)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise AdapterError(f"cannot listen on {host}:{port}: {_reason(exc)}") from exc
    sock.setblocking(False)
    return sock


async def _launch(api: ApiServer) -> ApiServer:
    try:
        await api._start()
    except BaseException:
        await api.stop(grace=0)
        raise
    return api


async def start_unix(app: ASGIApp, path: Path = DEFAULT_SOCKET, grace: float = 5.0) -> ApiServer:
    """Serve ``app`` on the root-only Unix socket ``path``; returns once it accepts."""
    sock, inode = bind_unix(path)
    sock.setblocking(False)
    api = ApiServer(_Server(_config(app, grace)), sock, str(path), unix=(path, inode))
    return await _launch(api)


async def start_tls(
    app: ASGIApp, host: str, port: int, tls: TlsFiles, grace: float = 5.0
) -> ApiServer:
    """Serve ``app`` on ``host:port`` with mutual TLS; returns once it accepts."""
    ctx = server_context(tls)
    sock = bind_tcp(host, port)
    api = ApiServer(_Server(_config(app, grace, ctx)), sock, f"{host}:{port}")
    return await _launch(api)


async def start_tcp(app: ASGIApp, host: str, port: int, grace: float = 5.0) -> ApiServer:
    """Serve ``app`` on ``host:port`` without TLS. Only for
    :func:`hamod.api.app.create_health_app` (load balancers' health checks)."""
    sock = bind_tcp(host, port)
    api = ApiServer(_Server(_config(app, grace)), sock, f"{host}:{port}")
    return await _launch(api)
