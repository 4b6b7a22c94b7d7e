"""Module commands of the ``hamod`` command: ``start``, ``stop``, ``forcestop``, ``prim``,
``second``, ``primforce``, ``swap``, ``restart``, ``stopstart`` and the toggles
``failover``, ``boot``, ``checker``, ``errd`` — all ``-m MODULE [-H all|n1,n2]``.

Each returns once the node's core took the command (the transition may still run).
Exit 0: done on every node; 1: refused, failed or unreachable somewhere (one line per
failing node on stderr, ``hamod: <node>: <module>: refused: <reason>``); 2: bad usage.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from hamod.api.models import DEFAULT_SOCKET, Command, CommandRequest, CommandResult
from hamod.cli.client import Client, NodeResult, fan_out, select_nodes
from hamod.errors import HamodError, UsageError

T = TypeVar("T")
ACTIONS = ("start", "stop", "forcestop", "prim", "second", "primforce", "swap", "restart",
           "stopstart", "fullsync")  # fmt: skip
TOGGLES = {"failover": ("on", "off"), "boot": ("on", "off", "auto"), "checker": ("on", "off"),
           "errd": ("on", "off")}  # fmt: skip
HELP = {
    "fullsync": "copy every replicated directory again from the primary (on the secondary)",
    "start": "start the module on this node",
    "stop": "stop the module (stop scripts run; a primary hands over)",
    "forcestop": "stop everything at once",
    "prim": "start as primary (or promote a WAITing node)",
    "second": "start as secondary",
    "primforce": "force a stale node primary (warns, recorded)",
    "swap": "exchange the primary and secondary roles",
    "restart": "restart the application locally (stop then start scripts)",
    "stopstart": "full stop then start (fails over if primary)",
    "failover": "allow (on) or forbid (off) automatic takeover",
    "boot": "start at boot: on, off, auto (if it ran before)",
    "checker": "checkers on/off (maintenance without failover; persisted)",
    "errd": "process checkers on/off (persisted)",
}


def add_target_arguments(parser: argparse.ArgumentParser, module_required: bool = True) -> None:
    parser.add_argument("-m", "--module", required=module_required, metavar="MODULE")
    parser.add_argument("-H", "--hosts", metavar="all|n1,n2", help="run on these nodes (mTLS)")
    parser.add_argument(
        "--socket",
        type=Path,
        default=None,
        metavar="PATH",
        help=f"local API socket (default $HAMOD_SOCKET or {DEFAULT_SOCKET})",
    )
    parser.add_argument("--config-dir", type=Path, default=Path("/etc/hamod"), metavar="DIR",
                        help="where cluster.yaml is (for -H)")  # fmt: skip


def socket_path(args: argparse.Namespace) -> Path:
    if getattr(args, "socket", None):
        return Path(args.socket)
    env = os.environ.get("HAMOD_SOCKET")
    return Path(env) if env else DEFAULT_SOCKET


def local_node_name(config_dir: Path) -> str:
    env = os.environ.get("HAMOD_NODE")
    if env:
        return env
    f = config_dir / "node"
    if f.exists():
        return f.read_text(encoding="utf-8").strip()
    return socket.gethostname().split(".")[0]


def clients(args: argparse.Namespace) -> dict[str, Client]:
    """One client per target node: the local socket without ``-H``; else the local
    socket for this node and mutual TLS for the others."""
    if not args.hosts:
        return {"": Client.local(socket_path(args))}
    from hamod.config import load_cluster

    cluster_file = Path(args.config_dir) / "cluster.yaml"
    if not cluster_file.exists():
        raise UsageError(f"-H: no cluster file {cluster_file}")
    cluster = load_cluster(cluster_file)
    names = select_nodes(args.hosts, [n.name for n in cluster.nodes])
    me = local_node_name(Path(args.config_dir))
    out: dict[str, Client] = {}
    for name in names:
        if name == me:
            out[name] = Client.local(socket_path(args))
            continue
        node = cluster.node(name)
        assert node is not None
        addr = str(next(iter(node.addresses.values())))
        tls = cluster.tls
        out[name] = Client.remote(addr, cluster.api_port, Path(str(tls.ca)), Path(str(tls.cert)),
                                  Path(str(tls.key)), node=name, server_name=name)  # fmt: skip
    return out


async def on_nodes(
    args: argparse.Namespace, call: Callable[[Client], Awaitable[T]]
) -> list[NodeResult[T]]:
    cs = clients(args)
    try:
        results = await fan_out(cs, call)
        fixed: list[NodeResult[T]] = []
        for r in results:
            if r.node == "" and r.error is not None:
                name = await _local_name(cs[""])
                if name:
                    r = NodeResult(name, error=type(r.error)(f"{name}: {r.error}"))
            fixed.append(r)
        return fixed
    finally:
        for c in cs.values():
            await c.aclose()


async def _local_name(c: Client) -> str:
    try:
        return (await c.node()).node
    except HamodError:
        return ""


def report_errors(results: list[NodeResult[Any]]) -> int:
    code = 0
    for r in results:
        if r.error is not None:
            print(f"hamod: {r.error}", file=sys.stderr)
            code = 1
    return code


def register(sub: Any) -> None:
    for name in ACTIONS:
        p = sub.add_parser(name, help=HELP[name], description=HELP[name])
        add_target_arguments(p)
        p.set_defaults(func=_action, command_name=name)
    for name, values in TOGGLES.items():
        p = sub.add_parser(name, help=HELP[name], description=HELP[name])
        p.add_argument("value", choices=values)
        if name == "checker":
            p.add_argument("-c", "--checker", metavar="NAME",
                           help="only this checker (default: every checker but the process "
                           "ones, which `errd` turns on and off)")  # fmt: skip
        add_target_arguments(p)
        p.set_defaults(func=_action, command_name=name)


def command_of(args: argparse.Namespace) -> Command:
    if args.command_name in TOGGLES:
        return Command(f"{args.command_name}_{args.value}")
    return Command(args.command_name)


def _action(args: argparse.Namespace) -> int:
    request = CommandRequest(command=command_of(args), checker=getattr(args, "checker", None))

    async def call(c: Client) -> CommandResult:
        return await c.command(args.module, request)

    results = asyncio.run(on_nodes(args, call))
    for r in results:
        if r.value is not None:
            v = r.value
            done = "done" if v.accepted else "nothing to do"
            print(f"{v.node}: {v.module}: {request.command}: {done}: {v.reason}")
    return report_errors(results)
