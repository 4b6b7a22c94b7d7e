"""Starting the watchdog process: options, log, hardening, exit codes.

Shared by ``python -m hamod.watchdog [options]`` and ``hamod watchdog run [options]``.
Hardening (best effort, each failure logged): ``oom_score_adj`` -1000 so the OOM killer
never picks the watchdog, and ``mlockall(MCL_CURRENT)`` so what is loaded at start
cannot be swapped out and make a deadline late.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import ctypes.util
import logging
import logging.handlers
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from hamod.errors import AdapterError
from hamod.watchdog.server import DEFAULT_SOCKET, Watchdog

__all__ = ["add_run_arguments", "main", "run"]

_MCL_CURRENT = 1


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The watchdog's options, on ``parser``."""
    parser.add_argument(
        "--socket",
        type=Path,
        default=DEFAULT_SOCKET,
        metavar="PATH",
        help=f"datagram socket to listen on (default {DEFAULT_SOCKET})",
    )
    parser.add_argument(
        "--pid",
        type=int,
        metavar="PID",
        help="the daemon's pid: log when it exits (deadlines still decide)",
    )
    parser.add_argument(
        "--log", type=Path, metavar="FILE", help="append the log to FILE (default stderr)"
    )
    parser.add_argument("--debug", action="store_true", help="also log every renewal")
    parser.add_argument(
        "--no-harden",
        action="store_true",
        help="skip oom_score_adj and mlockall (tests, unprivileged runs)",
    )


def _logger(log_file: Path | None, debug: bool) -> logging.Logger:
    log = logging.getLogger("hamod.watchdog")
    log.propagate = False
    for old in list(log.handlers):
        log.removeHandler(old)
    handler: logging.Handler
    if log_file is None:
        handler = logging.StreamHandler(sys.stderr)
    else:
        # Reopens the file when logrotate moved it away.
        handler = logging.handlers.WatchedFileHandler(log_file, encoding="utf-8")
    handler.setFormatter(
        logging.Formatter(f"%(asctime)s hamod-watchdog[{os.getpid()}] %(levelname)s %(message)s")
    )
    log.addHandler(handler)
    log.setLevel(logging.DEBUG if debug else logging.INFO)
    return log


def _harden(log: logging.Logger) -> None:
    try:
        Path("/proc/self/oom_score_adj").write_text("-1000\n")
    except OSError as exc:
        log.warning("cannot protect the watchdog from the OOM killer: %s", exc.strerror)
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6", use_errno=True)
        if libc.mlockall(_MCL_CURRENT) != 0:
            err = ctypes.get_errno()
            log.warning("cannot lock the watchdog in memory: %s", os.strerror(err))
    except OSError as exc:
        log.warning("cannot lock the watchdog in memory: %s", exc)


def run(args: argparse.Namespace) -> int:
    """Run the watchdog with parsed ``args``; the exit code (1: could not start)."""
    try:
        log = _logger(args.log, args.debug)
    except OSError as exc:
        print(f"hamod watchdog: cannot open log {args.log}: {exc.strerror}", file=sys.stderr)
        return 1
    if args.pid is not None and args.pid <= 0:
        log.error("--pid must be a positive process id, got %d", args.pid)
        return 2
    if not args.no_harden:
        _harden(log)
    watchdog = Watchdog(args.socket, log, daemon_pid=args.pid)
    try:
        return asyncio.run(watchdog.serve())
    except AdapterError as exc:
        log.error("cannot start: %s", exc)
        return 1


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m hamod.watchdog``."""
    parser = argparse.ArgumentParser(
        prog="python -m hamod.watchdog",
        description="hamod's per-node watchdog: fences a primary whose daemon stopped "
        "renewing (removes its VIPs, then runs stop_prim force).",
    )
    add_run_arguments(parser)
    return run(parser.parse_args(argv))
