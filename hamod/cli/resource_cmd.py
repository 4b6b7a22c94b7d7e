"""``hamod get -r RESOURCE -m MODULE`` and ``hamod set -r RESOURCE -v up|down -m MODULE``.

Resources are what checkers publish and read: every checker's health is the read-only
resource ``<type>.<name>`` (``interface.intf-eth0``, ``http.web``), and a custom checker
without a program reads ``custom.<name>``, which a script sets with ``hamod set``
(SafeKit's ``safekit set -r``). ``get`` prints the value (``up``, ``down``, ``unknown``)
and exits 0 when up, 1 otherwise; an unknown resource is a usage error (2) naming those
that exist.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from hamod.api.models import Command, CommandRequest, CommandResult, ModuleStatus
from hamod.cli.client import Client
from hamod.cli.module_cmd import add_target_arguments, on_nodes, report_errors
from hamod.errors import UsageError


def register(sub: Any) -> None:
    g = sub.add_parser("get", help="a resource's value (checker health, custom.<name>)")
    g.add_argument("-r", "--resource", required=True, metavar="RESOURCE")
    add_target_arguments(g)
    g.set_defaults(func=_get)
    s = sub.add_parser("set", help="set a custom.<name> resource (custom checkers read it)")
    s.add_argument("-r", "--resource", required=True, metavar="RESOURCE")
    s.add_argument("-v", "--value", required=True, choices=("up", "down"))
    add_target_arguments(s)
    s.set_defaults(func=_set)


def _get(args: argparse.Namespace) -> int:
    async def call(c: Client) -> ModuleStatus:
        return await c.module(args.module)

    results = asyncio.run(on_nodes(args, call))
    code = report_errors(results)
    many = len(results) > 1
    for r in results:
        if r.value is None:
            continue
        values = r.value.resources
        if args.resource not in values:
            known = ", ".join(sorted(values)) or "none"
            raise UsageError(f"resource: {r.value.node}: no resource {args.resource!r} in "
                             f"module {args.module} (resources: {known})")  # fmt: skip
        value = values[args.resource]
        print(f"{r.value.node}: {value}" if many else value)
        if value != "up":
            code = 1
    return code


def _set(args: argparse.Namespace) -> int:
    request = CommandRequest(command=Command.SET_RESOURCE, resource=args.resource, value=args.value)

    async def call(c: Client) -> CommandResult:
        return await c.command(args.module, request)

    results = asyncio.run(on_nodes(args, call))
    for r in results:
        if r.value is not None:
            print(f"{r.value.node}: {r.value.module}: {r.value.reason}")
    return report_errors(results)
