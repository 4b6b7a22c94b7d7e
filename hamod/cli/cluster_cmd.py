"""``hamod cluster keygen`` and ``hamod cluster certs``: create the cluster key that signs
heartbeats, and the cluster CA with one mutual-TLS certificate per node
(see :mod:`hamod.adapters.pki` for the file layout)."""

from __future__ import annotations

import argparse
import ipaddress
import sys
from pathlib import Path
from typing import Any, Final

from hamod.adapters import pki
from hamod.errors import UsageError

DEFAULT_KEY_DIR: Final = Path("/etc/hamod")
DEFAULT_TLS_DIR: Final = Path("/etc/hamod/tls")
DEFAULT_DAYS: Final = 3650


def register(sub: Any) -> None:
    """Add ``cluster keygen`` and ``cluster certs`` to the ``hamod`` subparsers."""
    parser: argparse.ArgumentParser = sub.add_parser(
        "cluster", help="create the cluster key, CA and node certificates"
    )
    parser.set_defaults(func=lambda args: _usage(parser))
    commands = parser.add_subparsers(dest="cluster_command", metavar="COMMAND")

    keygen = commands.add_parser(
        "keygen",
        help="create the cluster key that signs heartbeats",
        description="Create DIR/cluster.key: 32 random bytes as 64 hex digits, mode 0600. "
        "Copy the same file to every node.",
    )
    keygen.add_argument(
        "--out",
        metavar="DIR",
        type=Path,
        default=DEFAULT_KEY_DIR,
        help=f"directory of the key file (default {DEFAULT_KEY_DIR})",
    )
    keygen.add_argument("--force", action="store_true", help="replace an existing key")
    keygen.set_defaults(func=keygen_command)

    certs = commands.add_parser(
        "certs",
        help="create the cluster CA and one certificate per node",
        description="Create DIR/ca.crt, DIR/ca.key and DIR/NODE/node.{crt,key} for each node "
        "(EC P-256; SANs: node name and addresses; TLS server and client use). "
        "Copy DIR/NODE/node.* and DIR/ca.crt to /etc/hamod/tls/ on that node; keep ca.key "
        "off the nodes.",
    )
    certs.add_argument("--cluster-name", metavar="NAME", required=True, help="cluster name")
    certs.add_argument(
        "--nodes",
        metavar="SPEC",
        required=True,
        help="NAME=ADDRESS[+ADDRESS...],... e.g. n1=10.0.0.1,n2=10.0.0.2 "
        "(a node named twice gets both addresses)",
    )
    certs.add_argument(
        "--out",
        metavar="DIR",
        type=Path,
        default=DEFAULT_TLS_DIR,
        help=f"output directory (default {DEFAULT_TLS_DIR})",
    )
    certs.add_argument(
        "--days",
        metavar="N",
        default=str(DEFAULT_DAYS),
        help=f"validity in days (default {DEFAULT_DAYS})",
    )
    certs.add_argument(
        "--reuse-ca",
        action="store_true",
        help="issue the node certificates from the CA already in DIR",
    )
    certs.add_argument("--force", action="store_true", help="replace existing files")
    certs.set_defaults(func=certs_command)


def keygen_command(args: argparse.Namespace) -> int:
    """``hamod cluster keygen``."""
    path = pki.write_cluster_key(args.out, force=args.force)
    print(f"wrote {path} (mode 0600); copy it to every node of the cluster")
    return 0


def certs_command(args: argparse.Namespace) -> int:
    """``hamod cluster certs``."""
    cluster = pki.check_cluster_name(args.cluster_name)
    nodes = parse_nodes(args.nodes)
    days = parse_days(args.days)
    out: Path = args.out
    files: list[pki.OutFile] = []
    if args.reuse_ca:
        ca = pki.load_ca(out)
        if pki.cluster_of(ca.cert) != cluster:
            raise UsageError(
                f"--cluster-name: {cluster!r} differs from the cluster "
                f"{pki.cluster_of(ca.cert)!r} of the CA in {pki.ca_paths(out)[0]}"
            )
    else:
        ca = pki.create_ca(cluster, days=days)
        files += pki.ca_files(ca, out)
    for node, addresses in nodes.items():
        files += pki.node_files(pki.issue_node_cert(ca, node, addresses, days=days), out)
    pki.write_files(files, force=args.force)
    for f in files:
        print(f"wrote {f.path} (mode {f.mode:04o})")
    return 0


def parse_nodes(spec: str) -> dict[str, list[pki.IPAddress]]:
    """``n1=10.0.0.1+fd00::1,n2=10.0.0.2`` → node → addresses (UsageError if invalid)."""
    nodes: dict[str, list[pki.IPAddress]] = {}
    owner: dict[pki.IPAddress, str] = {}
    for item in spec.split(","):
        item = item.strip()
        if not item:
            raise UsageError(f"--nodes: empty entry in {spec!r}")
        name, sep, addrs = item.partition("=")
        name = name.strip()
        if not sep or not addrs.strip():
            raise UsageError(f"--nodes: {item!r} has no address; write NAME=ADDRESS[+ADDRESS...]")
        pki.check_node_name(name)
        for text in addrs.split("+"):
            try:
                addr = ipaddress.ip_address(text.strip())
            except ValueError:
                raise UsageError(
                    f"--nodes: {text.strip()!r} is not an IP address (node {name})"
                ) from None
            if addr in owner and owner[addr] != name:
                raise UsageError(f"--nodes: address {addr} given to both {owner[addr]} and {name}")
            owner[addr] = name
            if addr not in nodes.setdefault(name, []):
                nodes[name].append(addr)
    return nodes


def parse_days(text: str) -> int:
    """``--days`` as a whole number of days (UsageError if not 1..36500)."""
    days = int(text) if text.strip().isdigit() else 0
    if not 1 <= days <= pki.MAX_DAYS:
        raise UsageError(f"--days: expected a whole number from 1 to {pki.MAX_DAYS}, got {text!r}")
    return days


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2
