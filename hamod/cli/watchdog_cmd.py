"""``hamod watchdog run [--socket PATH] [--pid PID] [--log FILE]`` and
``hamod watchdog ping [--socket PATH]``.

``run`` starts the per-node watchdog in the foreground (the same as
``python -m hamod.watchdog``); it runs until SIGTERM. ``ping`` exits 0 when a watchdog
listens on the socket, 1 otherwise. See docs/watchdog.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from hamod.watchdog.client import WatchdogClient
from hamod.watchdog.main import add_run_arguments, run
from hamod.watchdog.server import DEFAULT_SOCKET


def register(sub: Any) -> None:
    """Add ``watchdog`` and its subcommands to the ``hamod`` parser."""
    parser: argparse.ArgumentParser = sub.add_parser(
        "watchdog", help="run or check the per-node watchdog"
    )
    parser.set_defaults(func=lambda args: _usage(parser))
    commands = parser.add_subparsers(dest="watchdog_command", metavar="SUBCOMMAND")

    run_parser = commands.add_parser(
        "run",
        help="run the watchdog in the foreground (until SIGTERM)",
        description="Fence this node's primary modules when the daemon stops renewing: "
        "remove their VIPs, then run stop_prim force.",
    )
    add_run_arguments(run_parser)
    run_parser.set_defaults(func=run)

    ping = commands.add_parser("ping", help="exit 0 if a watchdog listens on the socket")
    ping.add_argument("--socket", type=Path, default=DEFAULT_SOCKET, metavar="PATH")
    ping.set_defaults(func=_ping)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _ping(args: argparse.Namespace) -> int:
    with WatchdogClient(args.socket) as client:
        if client.ping():
            print(f"watchdog listening on {args.socket}")
            return 0
        print(client.last_error, file=sys.stderr)
        return 1
