"""The watchdog process: its socket, its event loop, its signals and its log lines.

Owns the I/O around :class:`~hamod.watchdog.state.WatchState`: receiving datagrams
(with the sender's credentials, root only), sleeping until the earliest deadline,
starting :class:`~hamod.watchdog.fence.Fencer` tasks for expired modules, following the
daemon's pid, and exiting cleanly on SIGTERM/SIGINT. One thread, one asyncio loop.

SIGTERM/SIGINT: exit at once, leaving the application, the VIPs and every armed module
as they are. While a module is being fenced, its current attempt is finished first
(the peer may already be taking over) and not retried; a second signal abandons it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import stat
import struct
import time
from pathlib import Path

from hamod.errors import AdapterError
from hamod.watchdog.fence import Fencer, FenceResult
from hamod.watchdog.messages import MAX_DATAGRAM, PROTOCOL_VERSION, Ping, encode
from hamod.watchdog.pidwatch import DaemonWatch
from hamod.watchdog.state import MAX_AHEAD, FenceJob, Note, WatchState

__all__ = ["DEFAULT_SOCKET", "Watchdog", "bind_socket"]

DEFAULT_SOCKET = Path("/run/hamod/watchdog.sock")
_UCRED = struct.Struct("iII")  # struct ucred: pid, uid, gid
_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def bind_socket(path: Path) -> socket.socket:
    """The watchdog's datagram socket bound at ``path`` (0600), non-blocking, receiving
    its senders' credentials. Creates the directory (0700) when missing; refuses a
    directory others may write to, and a path where a live watchdog already listens."""
    parent = path.parent
    try:
        parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = parent.stat()
    except OSError as exc:
        raise AdapterError(f"watchdog socket directory {parent}: {exc.strerror}") from exc
    if info.st_mode & 0o022 or info.st_uid not in (0, os.geteuid()):
        raise AdapterError(
            f"watchdog socket directory {parent} must be owned by root and writable by "
            f"no one else (mode {stat.S_IMODE(info.st_mode):04o}; 0700 advised)"
        )
    if path.is_symlink() or path.exists():
        if not stat.S_ISSOCK(path.lstat().st_mode):
            raise AdapterError(f"{path} exists and is not a socket; remove it")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK)
        try:
            probe.sendto(encode(Ping()), str(path))
        except ConnectionRefusedError:
            path.unlink()  # left by a watchdog that died
        except OSError:
            pass  # unusable: bind below reports it
        else:
            raise AdapterError(f"another watchdog already listens on {path}")
        finally:
            probe.close()
    sock = socket.socket(
        socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC
    )
    old_umask = os.umask(0o177)
    try:
        sock.bind(str(path))
        os.chmod(path, 0o600)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    except OSError as exc:
        sock.close()
        raise AdapterError(f"cannot listen on {path}: {exc.strerror or exc}") from exc
    finally:
        os.umask(old_umask)
    return sock


def _credentials(ancillary: list[tuple[int, int, bytes]]) -> tuple[int | None, int | None]:
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
            pid, uid, _gid = _UCRED.unpack(data[: _UCRED.size])
            return pid, uid
    return None, None


class Watchdog:
    """One watchdog listening on ``socket_path``; :meth:`serve` runs it until signalled."""

    def __init__(
        self,
        socket_path: Path,
        log: logging.Logger,
        *,
        daemon_pid: int | None = None,
        fencer: Fencer | None = None,
        max_ahead: float = MAX_AHEAD,
    ) -> None:
        self.socket_path = Path(socket_path)
        self.state = WatchState(max_ahead)
        self._log = log
        self._daemon_pid = daemon_pid
        self._fencer = fencer or Fencer(log)
        self._tasks: dict[str, asyncio.Task[FenceResult]] = {}
        self._wake = asyncio.Event()
        self._signals = 0
        self._sock: socket.socket | None = None
        self._euid = os.geteuid()

    @property
    def stopping(self) -> bool:
        return self._signals > 0

    async def serve(self) -> int:
        """Run until SIGTERM/SIGINT; 0. :class:`AdapterError` if the socket cannot be made."""
        loop = asyncio.get_running_loop()
        sock = self._sock = bind_socket(self.socket_path)
        inode = os.stat(self.socket_path).st_ino
        watch: DaemonWatch | None = None
        try:
            loop.add_reader(sock.fileno(), self._readable)
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self._terminate, sig)
            loop.add_signal_handler(signal.SIGHUP, self._hangup)
            how = "no daemon pid given"
            if self._daemon_pid is not None:
                watch = DaemonWatch(self._daemon_pid, self._daemon_gone)
                watch.start()
                how = f"daemon pid {self._daemon_pid} followed by {watch.mode}"
            self._log.info(
                "listening on %s (pid %d, protocol %d, %s)",
                self.socket_path,
                os.getpid(),
                PROTOCOL_VERSION,
                how,
            )
            await self._run()
        finally:
            if watch is not None:
                watch.close()
            loop.remove_reader(sock.fileno())
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
            sock.close()
            with contextlib.suppress(OSError):
                if os.stat(self.socket_path).st_ino == inode:
                    self.socket_path.unlink()
        counters = self.state.counters
        self._log.info(
            "exiting; left as they are: %s (%d datagrams, %d bad, %d fencings)",
            self._describe() or "no armed module",
            counters.received,
            counters.bad,
            counters.fences,
        )
        return 0

    async def _run(self) -> None:
        while not (self.stopping and not self._tasks):
            self._wake.clear()
            timeout: float | None = None
            if not self.stopping:
                for job in self.state.due(time.monotonic()):
                    self._start_fence(job)
                deadline = self.state.next_deadline()
                if deadline is not None:
                    timeout = max(0.0, deadline - time.monotonic())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    # -- events ----------------------------------------------------------------------

    def _note(self, note: Note | None) -> None:
        if note is not None:
            self._log.log(_LEVELS[note.level], "%s", note.text)

    def _readable(self) -> None:
        sock = self._sock
        if sock is None:
            return
        for _ in range(256):  # bounded, so fencing and timers are never starved
            try:
                data, ancillary, flags, _ = sock.recvmsg(
                    MAX_DATAGRAM + 1, socket.CMSG_SPACE(_UCRED.size)
                )
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                self._log.error("receiving on %s: %s", self.socket_path, exc)
                break
            try:
                pid, uid = _credentials(ancillary)
                if flags & socket.MSG_TRUNC or len(data) > MAX_DATAGRAM:
                    note = self.state.refuse(f"datagram larger than {MAX_DATAGRAM} bytes", pid)
                elif uid is not None and uid not in (0, self._euid):
                    note = self.state.refuse(f"sender uid {uid} is not root", pid)
                else:
                    note = self.state.receive(data, time.monotonic(), pid)
                self._note(note)
            except Exception as exc:  # a message must never take the watchdog down
                self._log.error("handling a datagram: %s: %s", type(exc).__name__, exc)
        self._wake.set()

    def _start_fence(self, job: FenceJob) -> None:
        vips = ", ".join(v.addr for v in job.arm.vips) or "none"
        self._log.warning(
            "module %s: deadline passed %.3fs ago, no renewal for %.3fs: fencing "
            "(remove VIPs: %s; then stop_prim force)",
            job.module,
            job.late,
            job.silent,
            vips,
        )
        task = asyncio.get_running_loop().create_task(
            self._fencer.fence(job, lambda: not self.stopping)
        )
        self._tasks[job.module] = task
        task.add_done_callback(lambda done: self._fence_done(job.module, done))

    def _fence_done(self, module: str, task: asyncio.Task[FenceResult]) -> None:
        self._tasks.pop(module, None)
        complete = False
        if task.cancelled():
            self._log.error("module %s: fencing abandoned (second signal)", module)
        elif (exc := task.exception()) is not None:
            self._log.error("module %s: fencing crashed: %s: %s", module, type(exc).__name__, exc)
        else:
            result = task.result()
            complete = result.complete
            left = f"; VIPs left: {', '.join(result.vips_left)}" if result.vips_left else ""
            self._log.warning(
                "module %s: fencing %s in %.3fs (%d attempt(s))%s",
                module,
                "complete" if complete else "INCOMPLETE",
                result.duration,
                result.attempts,
                left,
            )
        self._note(self.state.fenced(module, time.monotonic(), complete))
        self._wake.set()

    def _describe(self) -> str:
        now = time.monotonic()
        parts = []
        for name, watch in sorted(self.state.watches.items()):
            if watch.phase == "armed":
                parts.append(f"{name} (armed, deadline in {watch.arm.deadline - now:.3f}s)")
            else:
                parts.append(f"{name} ({watch.phase})")
        return ", ".join(parts)

    def _daemon_gone(self, reason: str) -> None:
        self._log.warning(
            "daemon pid %s %s; armed modules: %s; waiting for their deadlines "
            "(a daemon restarted in time re-arms them and nothing is touched)",
            self._daemon_pid,
            reason,
            self._describe() or "none",
        )

    def _terminate(self, sig: signal.Signals) -> None:
        self._signals += 1
        if self._signals == 1 and self._tasks:
            self._log.warning(
                "%s while fencing %s: finishing the current attempt, no retry "
                "(send it again to abandon)",
                sig.name,
                ", ".join(sorted(self._tasks)),
            )
        elif self._signals == 1:
            self._log.info("%s: exiting without touching anything", sig.name)
        else:
            self._log.warning(
                "%s again: abandoning fencing of %s",
                sig.name,
                ", ".join(sorted(self._tasks)) or "nothing",
            )
            for task in self._tasks.values():
                task.cancel()
        self._wake.set()

    def _hangup(self) -> None:
        self._log.info("SIGHUP: nothing to reload (the log file is reopened when rotated)")
