"""Entry point of the ``hamod`` command: builds the argument parser from the command
modules and maps errors to exit codes (0 ok, 1 failure, 2 bad input)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from hamod import __version__
from hamod.cli import (
    cluster_cmd,
    config_cmd,
    daemon_cmd,
    datapath_cmd,
    module_cmd,
    resource_cmd,
    service_cmd,
    state_cmd,
    verify_cmd,
    watchdog_cmd,
    witness_cmd,
)
from hamod.errors import ConfigError, HamodError, UsageError

#: Command modules; each has ``register(subparsers)`` setting ``func`` on its parsers.
COMMANDS = (
    config_cmd,
    cluster_cmd,
    watchdog_cmd,
    witness_cmd,
    daemon_cmd,
    datapath_cmd,
    service_cmd,
    module_cmd,
    resource_cmd,
    state_cmd,
    verify_cmd,
)


def build_parser() -> argparse.ArgumentParser:
    """The full ``hamod`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="hamod", description="High availability for any Linux application."
    )
    parser.add_argument("--version", action="version", version=f"hamod {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMANDS:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``hamod`` with ``argv``; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        code: int = func(args)
    except (ConfigError, UsageError) as exc:
        print(f"hamod: {exc}", file=sys.stderr)
        return 2
    except HamodError as exc:
        print(f"hamod: {exc}", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
