"""``hamod config check FILE...`` and ``hamod config schema cluster|module``.

``check`` reads the files and writes nothing. Each file is a cluster file (top-level
``cluster:``) or a module file (top-level ``module:``); modules are checked against the
cluster file given on the same command line (at most one; without one they are checked
alone and a note says so on stderr). Output: one ``FILE: ok`` line per valid file, one
``FILE: path: message`` line per problem; exit 0 when every file is valid, 2 otherwise.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from hamod.config import run_check
from hamod.config.jsonschema import schema_text


def register(sub: Any) -> None:
    """Add ``config`` and its subcommands to the ``hamod`` parser."""
    parser: argparse.ArgumentParser = sub.add_parser(
        "config", help="check configuration files, print their JSON Schema"
    )
    parser.set_defaults(func=lambda args: _usage(parser))
    commands = parser.add_subparsers(dest="config_command", metavar="SUBCOMMAND")

    check = commands.add_parser(
        "check",
        help="validate cluster and module files (writes nothing)",
        description="Validate a cluster file and module files. Modules are checked against "
        "the cluster file given with them. Exit 0 if all are valid, 2 otherwise.",
    )
    check.add_argument("files", nargs="+", metavar="FILE", help="cluster or module file")
    check.set_defaults(func=_check)

    schema = commands.add_parser("schema", help="print the JSON Schema of a file kind")
    schema.add_argument("kind", choices=("cluster", "module"))
    schema.set_defaults(func=_schema)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _check(args: argparse.Namespace) -> int:
    result = run_check(args.files)
    for note in result.notes:
        print(note, file=sys.stderr)
    failed = False
    for path, problems in result.problems.items():
        if not problems:
            print(f"{path}: ok")
        for problem in problems:
            failed = True
            print(f"{path}: {problem}")
    return 2 if failed else 0


def _schema(args: argparse.Namespace) -> int:
    sys.stdout.write(schema_text(args.kind))
    return 0
