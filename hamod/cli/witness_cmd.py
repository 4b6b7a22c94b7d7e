"""``hamod witness serve`` (the arbitrator, in the foreground) and ``hamod witness status``
(the grants in a state file, offline, as JSON).

``serve --listen ADDR[:PORT] --keys DIR --state FILE``: one ``<cluster>.key`` per cluster
served in DIR; grants in FILE (created if missing). Logs to stderr; prints
``hamod witness: listening on ADDR:PORT ...`` once ready. SIGTERM/SIGINT stop it (exit
0), SIGHUP re-reads the keys directory, SIGUSR1 prints the live status (JSON) on stdout.
Bad input (missing keys directory, bad listen address) exits 2 with one line.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hamod.errors import HamodError, UsageError
from hamod.proto.witness import DEFAULT_PORT
from hamod.witness.config import load_keys, parse_listen
from hamod.witness.server import WitnessServer, status_json, status_of
from hamod.witness.state import FileGrantStore


def register(sub: Any) -> None:
    """Add ``witness`` and its subcommands to the ``hamod`` parser."""
    parser: argparse.ArgumentParser = sub.add_parser(
        "witness", help="the arbitrator witness for a third host (terms and leases)"
    )
    parser.set_defaults(func=lambda args: _usage(parser))
    commands = parser.add_subparsers(dest="witness_command", metavar="SUBCOMMAND")

    serve = commands.add_parser(
        "serve",
        help="run the arbitrator in the foreground",
        description="Run the arbitrator: grant terms and leases to the nodes of every "
        f"cluster whose key is in --keys, over UDP (default port {DEFAULT_PORT}).",
    )
    serve.add_argument(
        "--listen",
        default=f"0.0.0.0:{DEFAULT_PORT}",
        metavar="ADDR[:PORT]",
        help="address to listen on: ADDR, ADDR:PORT or [V6ADDR]:PORT; '::' is IPv4 and "
        f"IPv6 (default 0.0.0.0:{DEFAULT_PORT})",
    )
    serve.add_argument(
        "--keys", required=True, type=Path, metavar="DIR", help="directory of <cluster>.key files"
    )
    serve.add_argument(
        "--state", required=True, type=Path, metavar="FILE", help="durable grants file"
    )
    serve.add_argument("-v", "--verbose", action="store_true", help="log dropped datagrams too")
    serve.set_defaults(func=_serve)

    status = commands.add_parser(
        "status",
        help="print the grants of a state file (JSON)",
        description="Print every (cluster, module) of a state file as JSON: term, holder, "
        "lease, released. The remaining lease is null offline: after a restart every "
        "unreleased lease stays live for one more lease length.",
    )
    status.add_argument("--state", required=True, type=Path, metavar="FILE")
    status.set_defaults(func=_status)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _status(args: argparse.Namespace) -> int:
    path: Path = args.state
    if not path.exists() and not path.with_name(path.name + ".prev").exists():
        raise UsageError(f"--state: {path} does not exist")
    st = FileGrantStore(path).load()
    print(status_json(status_of(st, None) if st is not None else ()))
    return 0


def _serve(args: argparse.Namespace) -> int:
    listen = parse_listen(args.listen)
    keys = load_keys(args.keys)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    store = FileGrantStore(args.state, notify=lambda line: logging.warning("witness: %s", line))
    server = WitnessServer(keys, store)
    return asyncio.run(_run(server, listen.host, listen.port, args.keys))


async def _run(server: WitnessServer, host: str, port: int, keys_dir: Path) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    def reload() -> None:
        try:
            server.reload_keys(load_keys(keys_dir))
        except HamodError as exc:
            logging.error("witness: keys not reloaded, keeping the old ones: %s", exc)

    loop.add_signal_handler(signal.SIGHUP, reload)
    loop.add_signal_handler(signal.SIGUSR1, lambda: print(status_json(server.status()), flush=True))
    bound_host, bound_port = await server.start(host, port)
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    clusters = ", ".join(server.clusters)
    print(f"hamod witness: listening on {shown}:{bound_port} (UDP) for {clusters}", flush=True)
    try:
        await stop.wait()
    finally:
        server.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``hamod witness ARGS`` on its own (``python -m hamod.cli.witness_cmd ARGS``), with
    the exit codes of ``hamod``: 0 ok, 1 failure, 2 bad input."""
    parser = argparse.ArgumentParser(prog="hamod")
    register(parser.add_subparsers(dest="command", metavar="COMMAND"))
    args = parser.parse_args(["witness", *(sys.argv[1:] if argv is None else argv)])
    try:
        code: int = args.func(args)
    except UsageError as exc:
        print(f"hamod: {exc}", file=sys.stderr)
        return 2
    except HamodError as exc:
        print(f"hamod: {exc}", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
