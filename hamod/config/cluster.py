"""The cluster file: which nodes exist, their addresses per network, the witness, keys.

One cluster file per cluster, identical on every node::

    cluster: prod
    networks:
      - {name: lan, subnet: 10.0.0.0/24}
      - {name: repl, subnet: 192.168.50.0/24, replication: true}
    nodes:
      - {name: n1, addresses: {lan: 10.0.0.11, repl: 192.168.50.11}}
    witness:
      arbitrator: {address: 10.0.0.5}

This module holds the models and the checks that need only this file
(:func:`cluster_problems`); checks of a module against its cluster live in
:mod:`hamod.config.crosscheck`.
"""

from __future__ import annotations

from collections import Counter
from pathlib import PurePosixPath

from pydantic import Field

from hamod.config.types import (
    AbsPath,
    Address,
    IPAddress,
    IPNetwork,
    Model,
    Name,
    NodeName,
    Port,
    Subnet,
)
from hamod.config.types import Bool as Bool
from hamod.errors import Problem

__all__ = [
    "Arbitrator",
    "ClusterConfig",
    "Network",
    "Node",
    "TlsPaths",
    "Witness",
    "cluster_problems",
]

RESERVED_NODE_NAMES = ("alone", "lastprim", "all", "local")


class Network(Model):
    """One IP network the nodes share; heartbeats can run on each of them."""

    name: Name = Field(description="Name of the network, used by nodes and modules (`lan`).")
    subnet: Subnet = Field(
        description="The network's subnet (`10.0.0.0/24`, `fd00:1::/64`). Every node "
        "address on this network and every virtual IP carried by it must be inside it."
    )
    replication: Bool = Field(
        default=False,
        description='This network carries replication traffic (SafeKit\'s `ident="flow"`). '
        "Exactly one network of the cluster has `replication: true`; a dedicated, "
        "low-latency link is best because synchronous replication waits for it.",
    )


class Node(Model):
    """A server running the hamod daemon."""

    name: NodeName = Field(
        description="Node name, as used in module files (`nodes:`, `defaultprim:`) and on "
        "the command line (`-H n1`). Usually the host name."
    )
    addresses: dict[Name, Address] = Field(
        min_length=1,
        description="The node's address on each network, by network name "
        "(`{lan: 10.0.0.11, repl: 192.168.50.11}`). A node needs an address on every network "
        "its modules use for heartbeats, and mirror nodes one on the replication network.",
    )


class Arbitrator(Model):
    """The `hamod witness` arbitrator on a third host."""

    address: Address = Field(description="Address of the host running `hamod witness`.")
    port: Port = Field(
        default=9011, description="UDP port of the arbitrator (hamod witness serve)."
    )


class Witness(Model):
    """How a node that lost its peer decides whether it may serve (split-brain checker)."""

    ping: tuple[Address, ...] | None = Field(
        default=None,
        min_length=1,
        description="SafeKit style: addresses (usually routers) to ping. A node that has "
        "lost its peer goes ALONE only if it reaches at least one of them, else WAIT. A "
        "pure cut between the nodes while both reach the router can still give two "
        "primaries; prefer the arbitrator.",
    )
    arbitrator: Arbitrator | None = Field(
        default=None,
        description="The `hamod witness` arbitrator: grants terms and leases, so that "
        "there is never more than one primary.",
    )


class TlsPaths(Model):
    """Certificates for the API and the peer links (mutual TLS from the cluster CA)."""

    ca: AbsPath = Field(
        default=PurePosixPath("/etc/hamod/tls/ca.crt"),
        description="The cluster CA certificate (created by `hamod cluster certs`).",
    )
    cert: AbsPath = Field(
        default=PurePosixPath("/etc/hamod/tls/node.crt"),
        description="This node's certificate (same path on every node, different content).",
    )
    key: AbsPath = Field(
        default=PurePosixPath("/etc/hamod/tls/node.key"),
        description="This node's private key (mode 0600, owned by root).",
    )


class ClusterConfig(Model):
    """The cluster file (top-level key `cluster:`)."""

    cluster: Name = Field(description="Name of the cluster; makes a file a cluster file.")
    networks: tuple[Network, ...] = Field(
        min_length=1,
        description="The IP networks between the nodes. Exactly one has `replication: true`.",
    )
    nodes: tuple[Node, ...] = Field(min_length=1, description="Every node of the cluster.")
    witness: Witness | None = Field(
        default=None,
        description="Split-brain witness: `ping:` (router addresses) or `arbitrator:`. "
        "Without a witness, a cut between two healthy nodes makes both primary (SafeKit's "
        "behaviour without a split-brain checker).",
    )
    key: AbsPath = Field(
        default=PurePosixPath("/etc/hamod/cluster.key"),
        description="Cluster key signing heartbeats (created by `hamod cluster keygen`).",
    )
    tls: TlsPaths = Field(default_factory=TlsPaths, description="TLS material.")
    api_port: Port = Field(
        default=9010,
        description="TCP port of the REST API between nodes (SafeKit's 9010).",
    )
    heartbeat_port: Port = Field(
        default=9012,
        description="UDP port of the heartbeats, on every heartbeat network.",
    )

    def node(self, name: str) -> Node | None:
        """The node called ``name``, if any."""
        return next((n for n in self.nodes if n.name == name), None)

    def network(self, name: str) -> Network | None:
        """The network called ``name``, if any."""
        return next((n for n in self.networks if n.name == name), None)

    @property
    def replication_network(self) -> Network:
        """The network carrying replication (exactly one in a valid file)."""
        return next(n for n in self.networks if n.replication)


def _duplicates(items: list[str]) -> set[str]:
    return {item for item, count in Counter(items).items() if count > 1}


def cluster_problems(cfg: ClusterConfig) -> list[Problem]:
    """Every cross-field problem of a cluster file that parsed."""
    problems: list[Problem] = []
    net_names = [n.name for n in cfg.networks]
    for i, net in enumerate(cfg.networks):
        if net.name in _duplicates(net_names) and net_names.index(net.name) != i:
            problems.append(
                Problem(f"networks[{i}].name", "duplicate network name", repr(net.name))
            )
        for j, other in enumerate(cfg.networks[:i]):
            if net.subnet.version == other.subnet.version and net.subnet.overlaps(other.subnet):
                problems.append(
                    Problem(
                        f"networks[{i}].subnet",
                        f"overlaps the subnet of network '{other.name}' (networks[{j}])",
                        repr(str(net.subnet)),
                    )
                )
    flagged = [i for i, n in enumerate(cfg.networks) if n.replication]
    if not flagged:
        problems.append(Problem("networks", "no network has 'replication: true'; mark exactly one"))
    for i in flagged[1:]:
        problems.append(
            Problem(
                f"networks[{i}].replication",
                f"only one network may carry replication; "
                f"'{cfg.networks[flagged[0]].name}' already does",
            )
        )

    subnets: dict[str, IPNetwork] = {}
    for net in cfg.networks:
        subnets.setdefault(net.name, net.subnet)
    node_names = [n.name for n in cfg.nodes]
    seen_addr: dict[IPAddress, str] = {}
    for i, node in enumerate(cfg.nodes):
        if node.name in _duplicates(node_names) and node_names.index(node.name) != i:
            problems.append(Problem(f"nodes[{i}].name", "duplicate node name", repr(node.name)))
        if node.name.lower() in RESERVED_NODE_NAMES:
            problems.append(
                Problem(f"nodes[{i}].name", "reserved word, not a node name", repr(node.name))
            )
        for net_name, addr in node.addresses.items():
            path = f"nodes[{i}].addresses.{net_name}"
            subnet = subnets.get(net_name)
            if subnet is None:
                problems.append(
                    Problem(path, f"unknown network; networks are {_names(list(subnets))}")
                )
            elif addr not in subnet:
                problems.append(
                    Problem(
                        path, f"not in the subnet {subnet} of network '{net_name}'", repr(str(addr))
                    )
                )
            if addr in seen_addr:
                problems.append(
                    Problem(path, f"address already used by {seen_addr[addr]}", repr(str(addr)))
                )
            else:
                seen_addr[addr] = f"node '{node.name}'"

    if cfg.witness is not None:
        problems.extend(_witness_problems(cfg.witness, seen_addr))
    return problems


def _witness_problems(witness: Witness, node_addrs: dict[IPAddress, str]) -> list[Problem]:
    problems: list[Problem] = []
    if witness.ping is not None and witness.arbitrator is not None:
        problems.append(Problem("witness", "choose one witness: 'ping' or 'arbitrator', not both"))
    if witness.ping is None and witness.arbitrator is None:
        problems.append(
            Problem("witness", "empty witness; give 'ping' or 'arbitrator', or remove 'witness'")
        )
    for i, addr in enumerate(witness.ping or ()):
        if addr in node_addrs:
            problems.append(
                Problem(
                    f"witness.ping[{i}]",
                    f"is the address of {node_addrs[addr]}; a witness must be a third host",
                    repr(str(addr)),
                )
            )
        if addr in (witness.ping or ())[:i]:
            problems.append(Problem(f"witness.ping[{i}]", "duplicate address", repr(str(addr))))
    if witness.arbitrator is not None and witness.arbitrator.address in node_addrs:
        problems.append(
            Problem(
                "witness.arbitrator.address",
                f"is the address of {node_addrs[witness.arbitrator.address]}; "
                "the arbitrator must run on a third host",
                repr(str(witness.arbitrator.address)),
            )
        )
    return problems


def _names(names: list[str]) -> str:
    return ", ".join(f"'{n}'" for n in names)
