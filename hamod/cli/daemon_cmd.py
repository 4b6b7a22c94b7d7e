"""``hamod daemon``: run the cluster daemon in the foreground (systemd's ``ExecStart``,
or detached by ``hamod service start``)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from hamod.runtime.paths import Paths


def add_dir_arguments(parser: argparse.ArgumentParser) -> None:
    """``--config-dir``, ``--state-dir``, ``--log-dir``, ``--run-dir`` (tests, labs)."""
    d = Paths()
    parser.add_argument("--config-dir", type=Path, default=d.etc, metavar="DIR",
                        help=f"cluster.yaml, modules/ (default {d.etc})")  # fmt: skip
    parser.add_argument("--state-dir", type=Path, default=d.var, metavar="DIR",
                        help=f"durable status (default {d.var})")  # fmt: skip
    parser.add_argument("--log-dir", type=Path, default=d.log, metavar="DIR",
                        help=f"logs (default {d.log})")  # fmt: skip
    parser.add_argument("--run-dir", type=Path, default=d.run, metavar="DIR",
                        help=f"sockets, pid files, resume markers (default {d.run})")  # fmt: skip


def paths_of(args: argparse.Namespace) -> Paths:
    return Paths(args.config_dir, args.state_dir, args.log_dir, args.run_dir)


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "daemon",
        help="run the cluster daemon in the foreground",
        description="Run every module of this node: heartbeats, witness, VIPs, scripts, "
        "API. SIGTERM/SIGINT stop the daemon and leave applications and VIPs as they are.",
    )
    parser.add_argument("--node", metavar="NAME", help="this node's name (default: "
                        "/etc/hamod/node, else the host name)")  # fmt: skip
    add_dir_arguments(parser)
    parser.add_argument("--no-watchdog", action="store_true", help="do not arm the watchdog")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from hamod.runtime.daemon import run
    from hamod.runtime.logs import setup_logging

    setup_logging(args.verbose)
    return run(paths_of(args), args.node, watchdog=not args.no_watchdog)
