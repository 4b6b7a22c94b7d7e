"""``hamod verify -m MOD``: compare both copies of a module's replicated directories.

The local daemon compares its copy with the peer's, online (``POST .../verify``): every
difference is printed with its path (and offset for content), then a summary per
directory. Exit status 0 when both copies are equal, 1 when they differ or the
comparison failed, 2 on bad input.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from hamod.cli.client import Client
from hamod.cli.module_cmd import socket_path


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "verify",
        help="compare both copies of a module's replicated directories",
        description="Compare this node's copy of every replicated directory of the module "
        "with the peer's, online (names, types, sizes, modes, owners, xattrs and ACLs, "
        "hard links, content by region). Differences are re-checked after a replication "
        "barrier, so writes in flight are not reported. Exit 1 if any difference.",
    )
    parser.add_argument("-m", "--module", required=True, metavar="MODULE")
    parser.add_argument("--socket", default=None, metavar="PATH", help="local API socket")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    return asyncio.run(_verify(args))


async def _verify(args: argparse.Namespace) -> int:
    ok = False
    async with Client.local(socket_path(args)) as client:
        async for msg in client.verify(args.module):
            if "progress" in msg:
                if not args.quiet and sys.stderr.isatty():
                    print(f"\r{msg['dir']}: {msg['progress']} names compared", end="",
                          file=sys.stderr)  # fmt: skip
            elif "difference" in msg:
                print(msg.get("text", msg["difference"]))
            elif "error" in msg:
                print(f"hamod: verify of {msg.get('dir')}: {msg['error']}", file=sys.stderr)
            elif "report" in msg:
                rep = msg["report"]
                if not args.quiet and sys.stderr.isatty():
                    print(file=sys.stderr)
                n = len(rep.get("differences", []))
                state = "equal" if n == 0 else f"{n} difference(s)"
                print(f"{msg['dir']}: {state} ({rep.get('entries', 0)} names, "
                      f"{rep.get('bytes_hashed', 0)} bytes hashed)")  # fmt: skip
            elif msg.get("done"):
                ok = bool(msg.get("ok"))
    return 0 if ok else 1
