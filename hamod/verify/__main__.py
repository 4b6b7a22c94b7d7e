"""``python -m hamod.verify A B``: compare two local trees as ``verify`` compares the two
copies of a module (A plays this node, B the peer). Prints every difference and a
summary; exit status 0 when equal, 1 when they differ, 2 on a usage or I/O error."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from hamod.errors import HamodError
from hamod.tracking.types import DEFAULT_REGION_SIZE
from hamod.verify.exclude import Excluder
from hamod.verify.manifest import manifest
from hamod.verify.online import exit_code, format_report, verify

_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def _region_size(text: str) -> int:
    """BYTES with an optional K, M or G suffix (powers of 1024)."""
    unit = text[-1:].lower() if text[-1:].isalpha() else ""
    digits = text[: len(text) - len(unit)]
    if unit not in _UNITS or not digits.isdigit() or int(digits) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a positive size (e.g. 1M)")
    return int(digits) * _UNITS[unit]


def _rounds(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r}: expected a count (0 or more)")
    return int(text)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m hamod.verify",
        description="Compare two directory trees as 'hamod verify' compares both copies "
        "of a module: A plays this node, B the peer ('missing on peer' = in A, not in B).",
    )
    p.add_argument("a", metavar="A", help="the first tree (this node's copy)")
    p.add_argument("b", metavar="B", help="the second tree (the peer's copy)")
    p.add_argument(
        "--region-size",
        type=_region_size,
        default=DEFAULT_REGION_SIZE,
        metavar="BYTES",
        help="content is compared by regions of this size (default 1M)",
    )
    p.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="PATTERN",
        help="lsyncd/rsync-style exclude pattern, repeatable (e.g. '*.tmp', '/pg_stat_tmp/')",
    )
    p.add_argument(
        "--rounds",
        type=_rounds,
        default=3,
        metavar="N",
        help="re-check what differs up to N times; only what persists is reported (default 3)",
    )
    p.add_argument("--mtime", action="store_true", help="also compare regular file mtimes")
    p.add_argument("--progress", action="store_true", help="show names compared on stderr")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    for label, value in (("A", args.a), ("B", args.b)):
        if not os.path.isdir(value):
            parser.error(f"argument {label}: {value}: not a directory")
    try:
        Excluder(args.exclude)
    except HamodError as exc:
        parser.error(f"argument --exclude: {exc}")

    def progress(n: int) -> None:
        print(f"\r{n} names compared", end="", file=sys.stderr, flush=True)

    try:
        report = verify(
            lambda paths: manifest(
                Path(args.a), region_size=args.region_size, exclude=args.exclude, paths=paths
            ),
            lambda paths: manifest(
                Path(args.b), region_size=args.region_size, exclude=args.exclude, paths=paths
            ),
            rounds=args.rounds,
            progress=progress if args.progress else None,
            mtime=args.mtime,
        )
    except HamodError as exc:
        print(f"python -m hamod.verify: error: {exc}", file=sys.stderr)
        return 2
    if args.progress:
        print(file=sys.stderr)
    for line in format_report(report):
        print(line)
    return exit_code(report)


if __name__ == "__main__":
    sys.exit(main())
