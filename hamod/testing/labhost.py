"""Booting and powering off one lab host (a node or the witness).

A host is ``ip netns exec NS unshare --mount --uts --ipc --pid --fork ... lab_init.sh``:
``unshare`` (the *launcher*) waits for its child, the host's PID 1. The lab records both
PIDs with their start times, so liveness survives PID reuse and another process can
attach. Power-off is SIGKILL of PID 1: the kernel kills the whole PID namespace, and the
mount namespace (overlays, tmpfs) dies with it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from hamod.errors import LabError
from hamod.testing import labsys
from hamod.testing.labnet import WITNESS, Topology

INIT_SCRIPT = Path(__file__).with_name("lab_init.sh")
REAPER = Path(__file__).with_name("labnode.py")
BOOT_TIMEOUT_S = 15.0
_SSH_LISTEN = ":0016 00000000:0000 0A "  # local port 22, state LISTEN in /proc/net/tcp


@dataclass(frozen=True)
class Boot:
    """A running host: its launcher (``unshare``) and PID 1, with start times."""

    launcher: int
    pid: int
    start: int


def host_dir(state: Path, host: str) -> Path:
    """The host's state directory (overlay upper and work dirs, boot files, boot.log)."""
    return state / "hosts" / host


#: Directories a host covers with a fresh tmpfs: anything of hamod's living there must be
#: carried over into the host (a checkout in /tmp, as CI may use, would vanish otherwise).
COVERED = (Path("/tmp"), Path("/run"))


def kept_paths() -> tuple[Path, ...]:
    """The checkout (package and its venv) when it lives in a directory a host covers."""
    candidates = {Path(__file__).resolve().parents[2], Path(sys.prefix).resolve()}
    inside = sorted(p for p in candidates if any(p.is_relative_to(c) for c in COVERED))
    return tuple(p for p in inside if not any(p != q and p.is_relative_to(q) for q in inside))


def spawn(topo: Topology, state: Path, host: str) -> subprocess.Popen[bytes]:
    """Start the host's init in its (existing, cabled) network namespace."""
    hdir = host_dir(state, host)
    hdir.mkdir(parents=True, exist_ok=True)
    env = {
        "PATH": labsys.PATH_ENV,
        "HOME": "/root",
        "LANG": "C.UTF-8",
        "HAMOD_LAB_HOST": host,
        "HAMOD_LAB_DIR": str(hdir),
        "HAMOD_LAB_PYTHON": sys.executable,
        "HAMOD_LAB_REAPER": str(REAPER),
        "HAMOD_LAB_FORWARD": "1" if host == WITNESS else "0",
        "HAMOD_LAB_KEEP": ":".join(str(p) for p in kept_paths()),
    }
    cmd = [
        "ip", "netns", "exec", topo.netns(host),
        "unshare", "--mount", "--uts", "--ipc", "--pid", "--fork",
        "--propagation", "private", "--mount-proc",
        "/bin/sh", str(INIT_SCRIPT),
    ]  # fmt: skip
    with open(hdir / "boot.log", "ab") as log:
        return subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd="/",
            start_new_session=True,
        )


def _log_tail(state: Path, host: str) -> str:
    try:
        lines = (host_dir(state, host) / "boot.log").read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return "(no boot.log)"
    return " | ".join(lines[-5:]) or "(empty boot.log)"


def _listening(pid: int) -> bool:
    try:
        return _SSH_LISTEN in Path(f"/proc/{pid}/net/tcp").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False


def wait_booted(
    state: Path, procs: dict[str, subprocess.Popen[bytes]], timeout: float = BOOT_TIMEOUT_S
) -> dict[str, Boot]:
    """Wait until every host's sshd listens; return their PIDs. On a failed boot, raise
    :class:`LabError` with the end of that host's boot.log."""
    deadline = time.monotonic() + timeout
    pids: dict[str, int] = {}
    booted: dict[str, Boot] = {}
    while len(booted) < len(procs):
        for host, proc in procs.items():
            if host in booted:
                continue
            if proc.poll() is not None:
                raise LabError(
                    f"{host} failed to boot (exit status {proc.returncode}): "
                    f"{_log_tail(state, host)}"
                )
            if host not in pids:
                kids = labsys.children(proc.pid)
                if not kids:
                    continue
                pids[host] = kids[0]
            pid = pids[host]
            stat = labsys.proc_stat(pid)
            if stat is not None and _listening(pid):
                booted[host] = Boot(launcher=proc.pid, pid=pid, start=stat[1])
        if len(booted) == len(procs):
            break
        if time.monotonic() > deadline:
            late = sorted(set(procs) - set(booted))
            raise LabError(
                f"{', '.join(late)} did not boot within {timeout} s (sshd not listening): "
                + "; ".join(f"{h}: {_log_tail(state, h)}" for h in late)
            )
        time.sleep(0.005)
    return booted


def power_off(boot: Boot | None, proc: subprocess.Popen[bytes] | None) -> None:
    """SIGKILL the host's PID 1 and wait until its namespace is empty (PID 1 gone or a
    zombie: the kernel empties the namespace before PID 1 becomes a zombie). Reap the
    launcher when this process started it."""
    if boot is not None and labsys.is_alive(boot.pid, boot.start):
        with contextlib.suppress(ProcessLookupError):
            os.kill(boot.pid, signal.SIGKILL)
        deadline = time.monotonic() + 5.0
        while labsys.is_alive(boot.pid, boot.start):
            if time.monotonic() > deadline:
                raise LabError(f"PID {boot.pid} survived SIGKILL for 5 s")
            time.sleep(0.002)
    if proc is not None:
        try:
            proc.wait(timeout=5.0)
        except subprocess.TimeoutExpired as exc:
            raise LabError(f"launcher {proc.pid} did not exit after its PID 1 died") from exc
