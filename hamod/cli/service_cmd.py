"""``hamod service start|stop|status|restart``: the no-systemd way to run the watchdog
and the daemon (real hosts use the ``hamod.service`` / ``hamod-watchdog.service`` units).

``start``: the watchdog, then the daemon, detached, unless already running (idempotent).
``start``, ``stop`` and ``restart`` hold a lock (``<run>/service.lock``, flock): a start at
boot and one from a playbook cannot both spawn a daemon.
``stop``: ``hamod stop`` of every running module (scripts run), then SIGTERM to the
daemon and the watchdog. ``status``: both pids and whether they run (exit 0 when both
do — or the daemon alone with ``--no-watchdog``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import sys
import time
from collections.abc import Iterator
from typing import Any

from hamod.api.models import Command, CommandRequest, State
from hamod.cli.client import Client
from hamod.cli.daemon_cmd import add_dir_arguments, paths_of
from hamod.errors import HamodError
from hamod.runtime.paths import Paths
from hamod.runtime.service import PidFile, hamod_argv, spawn, terminate


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "service", help="start/stop the daemon and watchdog without systemd"
    )
    parser.add_argument("action", choices=("start", "stop", "status", "restart"))
    parser.add_argument("--node", metavar="NAME")
    parser.add_argument("--no-watchdog", action="store_true")
    add_dir_arguments(parser)
    parser.set_defaults(func=_service)


def _dir_args(args: argparse.Namespace) -> list[str]:
    return ["--config-dir", str(args.config_dir), "--state-dir", str(args.state_dir),
            "--log-dir", str(args.log_dir), "--run-dir", str(args.run_dir)]  # fmt: skip


def start(args: argparse.Namespace, paths: Paths) -> None:
    wd, dm = PidFile(paths.watchdog_pid), PidFile(paths.daemon_pid)
    if not args.no_watchdog and wd.running() is None:
        pid = spawn(hamod_argv("watchdog", "run", "--socket", str(paths.watchdog_socket)),
                    paths.watchdog_log, wd)  # fmt: skip
        print(f"watchdog started (pid {pid})")
        for _ in range(50):
            if paths.watchdog_socket.exists():
                break
            time.sleep(0.1)
    if dm.running() is None:
        extra = ["--node", args.node] if args.node else []
        extra += ["--no-watchdog"] if args.no_watchdog else []
        pid = spawn(hamod_argv("daemon", *_dir_args(args), *extra), paths.daemon_log, dm)
        print(f"daemon started (pid {pid})")
        for _ in range(100):
            if paths.api_socket.exists():
                break
            time.sleep(0.1)
    else:
        print(f"daemon already running (pid {dm.running()})")


async def _stop_modules(paths: Paths) -> None:
    try:
        async with Client.local(paths.api_socket, timeout=5.0) as c:
            for m in await c.modules():
                if m.state is not State.STOP:
                    await c.command(m.module, CommandRequest(command=Command.STOP))
            for _ in range(600):
                if all(m.state is State.STOP for m in await c.modules()):
                    return
                await asyncio.sleep(0.1)
    except HamodError as exc:
        print(f"hamod: {exc}", file=sys.stderr)


def stop(paths: Paths) -> None:
    if PidFile(paths.daemon_pid).running() is not None or paths.api_socket.exists():
        asyncio.run(_stop_modules(paths))  # under systemd too (no pid file there)
    if terminate(PidFile(paths.daemon_pid)):
        print("daemon stopped")
    if terminate(PidFile(paths.watchdog_pid)):
        print("watchdog stopped")


@contextlib.contextmanager
def service_lock(paths: Paths, timeout: float = 120.0) -> Iterator[None]:
    """One ``hamod service start|stop|restart`` at a time on this host."""
    paths.run.mkdir(parents=True, exist_ok=True)
    with paths.service_lock.open("a") as f:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise HamodError(
                        f"{paths.service_lock}: another hamod service command holds it"
                    ) from None
                time.sleep(0.1)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _service(args: argparse.Namespace) -> int:
    paths = paths_of(args)
    if args.action in ("start", "stop", "restart"):
        with service_lock(paths):
            if args.action in ("stop", "restart"):
                stop(paths)
            if args.action in ("start", "restart"):
                start(args, paths)
        return 0
    if args.action == "status":
        d = PidFile(paths.daemon_pid).running()
        w = PidFile(paths.watchdog_pid).running()
        print(f"daemon: {f'running (pid {d})' if d else 'not running'}")
        print(f"watchdog: {f'running (pid {w})' if w else 'not running'}")
        return 0 if d and (w or args.no_watchdog) else 1
    return 0
