"""The no-systemd launcher: start the watchdog and the daemon detached (new session,
output to their log files, pid files in the run directory), tell whether they run
(``/proc/PID/stat``: alive, not a zombie, same start time as recorded — never
``kill -0``, which a recycled pid would fool), and stop them (SIGTERM, then SIGKILL).

Pid file content: ``PID STARTTIME`` (STARTTIME: field 22 of ``/proc/PID/stat``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path


def _stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time) of ``pid``, None if there is no such process."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    rest = raw[raw.rindex(")") + 2 :].split()
    return rest[0], int(rest[19])


def alive(pid: int, starttime: int | None = None) -> bool:
    """``pid`` runs (not a zombie) and, if given, started at ``starttime``."""
    st = _stat(pid)
    if st is None or st[0] in ("Z", "X"):
        return False
    return starttime is None or st[1] == starttime


@dataclass(frozen=True)
class PidFile:
    path: Path

    def read(self) -> tuple[int, int] | None:
        try:
            pid, start = self.path.read_text().split()
            return int(pid), int(start)
        except (OSError, ValueError):
            return None

    def running(self) -> int | None:
        """The pid if the recorded process still runs."""
        rec = self.read()
        if rec is not None and alive(*rec):
            return rec[0]
        return None

    def write(self, pid: int) -> None:
        st = _stat(pid)
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.path.write_text(f"{pid} {st[1] if st else 0}\n")

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


def spawn(argv: list[str], log: Path, pidfile: PidFile) -> int:
    """Start ``argv`` detached (setsid), output appended to ``log``; record its pid."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out, open(os.devnull, "rb") as null:
        proc = subprocess.Popen(argv, stdin=null, stdout=out, stderr=out, start_new_session=True,
                                close_fds=True)  # fmt: skip
    pidfile.write(proc.pid)
    return proc.pid


def terminate(pidfile: PidFile, grace: float = 10.0) -> bool:
    """SIGTERM the recorded process, SIGKILL after ``grace``; True if it was running."""
    rec = pidfile.read()
    if rec is None or not alive(*rec):
        pidfile.clear()
        return False
    pid, start = rec
    os.kill(pid, signal.SIGTERM)
    end = time.monotonic() + grace
    while time.monotonic() < end and alive(pid, start):
        time.sleep(0.05)
    if alive(pid, start):
        os.kill(pid, signal.SIGKILL)
    pidfile.clear()
    return True


def hamod_argv(*args: str) -> list[str]:
    """``python -m hamod ARGS`` with this interpreter (the venv's)."""
    return [sys.executable, "-m", "hamod", *args]
