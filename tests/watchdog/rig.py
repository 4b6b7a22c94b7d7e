"""A watchdog under test: the process on a short temporary socket, its log, a module
with a ``stop_prim`` that kills a marker application, and a client."""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from hamod.watchdog.client import WatchdogClient, deadline_in
from hamod.watchdog.messages import Arm, StopEnv, StopSpec, VipRef, encode

STOP_PRIM = textwrap.dedent(
    """\
    #!/bin/sh
    echo "stop_prim args: $*"
    echo "$*" >> "$CALLS"
    [ "$1" = force ] && kill -KILL "$(cat "$APP_PIDFILE")"
    exit 0
    """
)

# A stand-in daemon that only renews (stdlib only, so it starts in milliseconds).
DAEMON_SIM = textwrap.dedent(
    """\
    import json, socket, sys, time
    path, message, ahead, every = sys.argv[1], json.loads(sys.argv[2]), *map(float, sys.argv[3:5])
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    while True:
        message["deadline"] = time.monotonic() + ahead
        try:
            sock.sendto(json.dumps(message).encode(), path)
        except OSError:  # watchdog not listening yet
            pass
        time.sleep(every)
    """
)


def wait_for(check: Callable[[], bool], timeout: float, step: float = 0.01) -> bool:
    """Poll ``check`` until true or ``timeout``; its last value."""
    end = time.monotonic() + timeout
    while True:
        if check():
            return True
        if time.monotonic() >= end:
            return False
        time.sleep(step)


@dataclass
class Rig:
    """One watchdog process and one module ``web`` guarded by it."""

    root: Path
    app: subprocess.Popen[bytes]
    proc: subprocess.Popen[bytes] | None = None
    client: WatchdogClient | None = None

    @property
    def socket(self) -> Path:
        return self.root / "run" / "wd.sock"

    @property
    def log(self) -> Path:
        return self.root / "watchdog.log"

    @property
    def calls(self) -> Path:
        return self.root / "calls"

    @property
    def script_logs(self) -> Path:
        return self.root / "log"

    def start(self, *extra: str) -> WatchdogClient:
        """Start the watchdog; return a client once it answers."""
        argv = [sys.executable, "-m", "hamod.watchdog", "--socket", str(self.socket)]
        argv += ["--log", str(self.log), "--no-harden", "--debug", *extra]
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL)
        self.client = WatchdogClient(self.socket)
        client = self.client
        if not wait_for(lambda: self.socket.exists() and client.ping(), 20.0, 0.02):
            raise AssertionError(f"watchdog did not start; log:\n{self.log_text()}")
        return client

    def stop_spec(self) -> StopSpec:
        env = StopEnv(
            home="/opt/hamod",
            bin="/opt/hamod/bin",
            var=str(self.root / "var"),
            user_var=str(self.root / "var" / "web"),
            user_conf=str(self.root),
            user_vars={"CALLS": str(self.calls), "APP_PIDFILE": str(self.root / "app.pid")},
        )
        bin_dir, log_dir = str(self.root / "bin"), str(self.script_logs)
        return StopSpec(bin_dir=bin_dir, log_dir=log_dir, nice_timeout=5, force_timeout=1, env=env)

    def arm(self, ahead: float, vips: tuple[VipRef, ...] = ()) -> float:
        """Arm ``web`` with a deadline ``ahead`` seconds from now; that deadline."""
        assert self.client is not None
        deadline = deadline_in(ahead)
        assert self.client.arm("web", deadline, vips, self.stop_spec()), self.client.last_error
        return deadline

    def renew(
        self, ahead: float, every: float, during: float, vips: tuple[VipRef, ...] = ()
    ) -> float:
        """Renew as a daemon does; the last deadline sent."""
        end = time.monotonic() + during
        deadline = self.arm(ahead, vips)
        while time.monotonic() < end:
            time.sleep(every)
            deadline = self.arm(ahead, vips)
        return deadline

    def app_alive(self) -> bool:
        return self.app.poll() is None

    def log_text(self) -> str:
        return self.log.read_text() if self.log.exists() else "<no log>"

    def terminate(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(10)


@contextlib.contextmanager
def make_rig() -> Iterator[Rig]:
    """A rig whose processes and files are removed whatever happens."""
    root = Path(tempfile.mkdtemp(prefix="hmwd-"))  # short: AF_UNIX paths are <= 107 bytes
    app = subprocess.Popen(["sleep", "300"], stdin=subprocess.DEVNULL)
    rig = Rig(root, app)
    try:
        (root / "app.pid").write_text(f"{app.pid}\n")
        (root / "bin").mkdir()
        script = root / "bin" / "stop_prim"
        script.write_text(STOP_PRIM)
        script.chmod(0o755)
        yield rig
    finally:
        if rig.client is not None:
            rig.client.close()
        for proc in (rig.proc, rig.app, app):  # a test may replace rig.app
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(10)
        shutil.rmtree(root, ignore_errors=True)


def spawn_daemon_sim(
    rig: Rig, ahead: float, every: float, vips: tuple[VipRef, ...] = ()
) -> subprocess.Popen[bytes]:
    """A process renewing ``web`` like a daemon would, until killed."""
    arm = Arm(module="web", deadline=0.0, vips=vips, stop=rig.stop_spec())
    message = encode(arm).decode()
    argv = [sys.executable, "-I", "-S", "-c", DAEMON_SIM, str(rig.socket), message]
    return subprocess.Popen([*argv, str(ahead), str(every)], stdin=subprocess.DEVNULL)


def alive(pid: int) -> bool:
    """Really running (a zombie is not)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


__all__ = ["Rig", "alive", "make_rig", "spawn_daemon_sim", "wait_for"]
