"""Noticing that the daemon process is gone (``--pid``), for the log only.

Owns following one process: a pidfd (readable once the process has exited, zombie or
reaped, and immune to pid reuse) when the kernel offers it, else polling
``/proc/PID/stat``. ``kill -0`` is not used: it succeeds on a zombie. The watchdog
still waits for the deadline after the daemon is gone: a daemon restarted in time
re-arms and nothing is touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DaemonWatch", "ProcStat", "proc_stat"]

POLL = 0.5


@dataclass(frozen=True)
class ProcStat:
    """The fields of ``/proc/PID/stat`` the watch needs."""

    state: str  # R, S, D, Z (zombie), X (dead)...
    starttime: int  # clock ticks after boot; tells a reused pid apart

    @property
    def exited(self) -> bool:
        return self.state in ("Z", "X", "x")


def proc_stat(pid: int, proc: Path = Path("/proc")) -> ProcStat | None:
    """The process's state, or None when there is no such process."""
    try:
        text = (proc / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    except OSError:
        return None
    # "pid (comm) S ppid ...": comm may hold spaces and parentheses; cut at the last ')'.
    fields = text[text.rfind(")") + 2 :].split()
    try:
        return ProcStat(state=fields[0], starttime=int(fields[19]))
    except (IndexError, ValueError):
        return None


class DaemonWatch:
    """Calls ``on_gone(reason)`` once when process ``pid`` exits (or is absent at start)."""

    def __init__(
        self,
        pid: int,
        on_gone: Callable[[str], None],
        poll: float = POLL,
        *,
        use_pidfd: bool = True,
    ) -> None:
        self.pid = pid
        self._use_pidfd = use_pidfd
        self._on_gone = on_gone
        self._poll = poll
        self._fd: int | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._start: ProcStat | None = None
        self._done = False
        self.mode = "none"

    def start(self) -> None:
        """Begin watching (call from the running event loop)."""
        loop = asyncio.get_running_loop()
        self._start = proc_stat(self.pid)
        if self._start is None:
            self._gone("does not exist")
            return
        if self._start.exited:
            self._gone("has exited (zombie, not yet reaped by its parent)")
            return
        try:
            if not self._use_pidfd:
                raise OSError("pidfd not wanted")
            self._fd = os.pidfd_open(self.pid)
        except (OSError, AttributeError):  # kernel < 5.3
            self.mode = "/proc polling"
            self._timer = loop.call_later(self._poll, self._check)
            return
        self.mode = "pidfd"
        loop.add_reader(self._fd, self._fired)

    def _fired(self) -> None:
        stat = proc_stat(self.pid)
        how = "exited (zombie, not yet reaped)" if stat is not None else "exited"
        self._gone(how)

    def _check(self) -> None:
        stat = proc_stat(self.pid)
        if stat is None:
            self._gone("exited")
        elif self._start is not None and stat.starttime != self._start.starttime:
            self._gone("exited (its pid now belongs to another process)")
        elif stat.exited:
            self._gone("exited (zombie, not yet reaped)")
        else:
            self._timer = asyncio.get_running_loop().call_later(self._poll, self._check)

    def _gone(self, reason: str) -> None:
        self.close()
        if not self._done:
            self._done = True
            self._on_gone(reason)

    def close(self) -> None:
        """Stop watching (idempotent)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._fd is not None:
            fd, self._fd = self._fd, None
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(fd)
            os.close(fd)
