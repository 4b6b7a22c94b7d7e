"""What :class:`hamod.testing.cluster.LabCluster` writes onto a lab's nodes, as text:
the cluster file, module files, user scripts, keys and certificates (docs/daemon-contract.md).

Pure rendering (no lab, no I/O) so it is unit-testable; the deployment itself is in
:mod:`hamod.testing.cluster`.

Conventions of the lab deployment:

- networks: ``net0`` (service network: clients, VIPs, heartbeats) and ``net1`` (second
  heartbeat network, replication), plus ``net0v6`` (an IPv6 subnet on the same cables as
  net0) when IPv6 is asked for; heartbeats run on net0 and net1 only.
- every user script appends ``<script> <args>`` to ``/var/log/hamod-lab/<module>.journal``
  on its node (``/var`` is kept across power-offs); ``start_prim`` starts the trivial
  service of :mod:`hamod.testing.outage` (answers the node's name) detached, waits until
  it listens and exits 0; ``stop_prim`` stops it (SIGTERM, or SIGKILL on the ``force``
  call). The service's pid file is in ``/run/hamod-lab`` (lost at power-off, like the
  process).
"""

from __future__ import annotations

import secrets
import shlex
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import yaml

from hamod.adapters import pki

__all__ = [
    "JOURNAL_DIR",
    "LAB_RUN_DIR",
    "SCRIPTS",
    "ModuleSpec",
    "NodeAddresses",
    "Pki",
    "make_pki",
    "render_cluster",
    "render_module",
    "render_script",
    "service_pidfile",
]

ETC = "/etc/hamod"
JOURNAL_DIR = "/var/log/hamod-lab"
LAB_RUN_DIR = "/run/hamod-lab"
SCRIPTS = ("prestart", "start_prim", "stop_prim", "start_second", "stop_second", "poststop")
WITNESS_PORT = 9011


@dataclass(frozen=True)
class ModuleSpec:
    """A mirror module of the lab cluster.

    ``vips``/``vips6``: how many IPv4 / IPv6 virtual IPs (addresses are picked by the
    cluster from ``lab.free_address``). ``port``: the trivial service's TCP port.
    ``service``: whether start_prim/stop_prim start/stop the trivial service (False:
    they only journal, for a harness that runs the service on every node itself).
    ``extra``: more top-level keys of the module file (merged last)."""

    name: str = "demo"
    port: int = 7070
    pulse: str = "100ms"
    timeout: str = "1s"
    lease: str | None = None
    vips: int = 1
    vips6: int = 0
    failover: bool = True
    defaultprim: str = "alone"
    boot: str | None = None
    nodes: tuple[str, str] = ("n1", "n2")
    heartbeat_networks: tuple[str, ...] = ("net0", "net1")
    service: bool = True
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class NodeAddresses:
    """A node's name and its address per cluster network."""

    name: str
    addresses: Mapping[str, str]


def render_cluster(
    name: str,
    subnets: Mapping[str, str],
    nodes: Sequence[NodeAddresses],
    witness: str,
    witness_address: str,
) -> str:
    """The cluster file. ``subnets``: network name → subnet (``net1`` carries
    replication); ``witness``: ``arbitrator``, ``ping`` or ``none``."""
    doc: dict[str, Any] = {
        "cluster": name,
        "networks": [
            {"name": n, "subnet": s, **({"replication": True} if n == "net1" else {})}
            for n, s in subnets.items()
        ],
        "nodes": [{"name": n.name, "addresses": dict(n.addresses)} for n in nodes],
    }
    if witness == "arbitrator":
        doc["witness"] = {"arbitrator": {"address": witness_address, "port": WITNESS_PORT}}
    elif witness == "ping":
        doc["witness"] = {"ping": [witness_address]}
    elif witness != "none":
        raise ValueError(f"witness {witness!r}: use arbitrator, ping or none")
    return "# hamod lab cluster (hamod.testing.cluster)\n" + yaml.safe_dump(
        doc, sort_keys=False, default_flow_style=None
    )


def render_module(spec: ModuleSpec, vips: Sequence[str]) -> str:
    """The module file of ``spec`` with these virtual IPs."""
    heartbeat: dict[str, Any] = {"pulse": spec.pulse, "timeout": spec.timeout}
    if spec.lease is not None:
        heartbeat["lease"] = spec.lease
    heartbeat["networks"] = list(spec.heartbeat_networks)
    doc: dict[str, Any] = {
        "module": spec.name,
        "mode": "mirror",
        "nodes": list(spec.nodes),
        "heartbeat": heartbeat,
        "vips": [{"addr": v} for v in vips],
        "failover": spec.failover,
        "defaultprim": spec.defaultprim,
    }
    if spec.boot is not None:
        doc["boot"] = spec.boot
    doc.update(spec.extra)
    return "# hamod lab module (hamod.testing.cluster)\n" + yaml.safe_dump(
        doc, sort_keys=False, default_flow_style=None
    )


def service_pidfile(module: str) -> str:
    """Pid file of the module's trivial service on a node."""
    return f"{LAB_RUN_DIR}/{module}.service.pid"


def render_script(script: str, spec: ModuleSpec, python: str | None = None) -> str:
    """One user script (``/bin/sh``) of ``spec``: journal line, then for ``start_prim``
    / ``stop_prim`` start / stop the trivial service."""
    py = shlex.quote(python or sys.executable)
    m = spec.name
    journal = f"{JOURNAL_DIR}/{m}.journal"
    pidf = service_pidfile(m)
    out = f"{LAB_RUN_DIR}/{m}.service.out"
    host = "::" if spec.vips6 else "0.0.0.0"
    lines = [
        "#!/bin/sh",
        f"# {script} of the lab module {m} (hamod.testing.cluster): journal, trivial service",
        f"mkdir -p {JOURNAL_DIR} {LAB_RUN_DIR}",
        f'echo "{script} $*" >> {journal}',
        # the same line with the machine's uptime (one clock for every node): ordering
        # across nodes
        f'read up _ < /proc/uptime; echo "$up {script} $*" >> {journal}.ts',
    ]
    if not spec.service:
        pass
    elif script == "start_prim":
        lines += [
            f'if [ -f {pidf} ] && kill -0 "$(cat {pidf})" 2>/dev/null; then',
            "  exit 0  # already serving",
            "fi",
            f": > {out}",
            f"setsid {py} -m hamod.testing.outage serve --port {spec.port} --host {host} "
            f"</dev/null >>{out} 2>&1 &",
            f"echo $! > {pidf}",
            "i=0",
            "while [ $i -lt 200 ]; do",
            f"  grep -q listening {out} 2>/dev/null && exit 0",
            "  sleep 0.025; i=$((i+1))",
            "done",
            f'echo "service did not start:"; cat {out}; exit 1',
        ]
    elif script == "stop_prim":
        lines += [
            f"[ -f {pidf} ] || exit 0",
            f"pid=$(cat {pidf})",
            'if [ "$1" = force ]; then sig=KILL; else sig=TERM; fi',
            'kill -s $sig "$pid" 2>/dev/null',
            # alive = /proc/PID/stat readable and not a zombie (state Z), read once: a
            # reaped process between two reads would look alive with an empty state
            "alive() { st=$(cut -d' ' -f3 /proc/$pid/stat 2>/dev/null); "
            '[ -n "$st" ] && [ "$st" != Z ]; }',
            "i=0",
            "while [ $i -lt 200 ] && alive; do",
            "  sleep 0.025; i=$((i+1))",
            "done",
            "if alive; then",
            '  echo "service $pid still runs"; exit 1',
            "fi",
            f"rm -f {pidf}",
        ]
    lines.append("exit 0")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Pki:
    """The cluster key (hex line) and PEM texts: CA certificate, per-node cert and key."""

    cluster_key: str
    ca_cert: str
    node_cert: Mapping[str, str]
    node_key: Mapping[str, str]


def make_pki(cluster: str, nodes: Mapping[str, Sequence[str]], days: int = 30) -> Pki:
    """A new cluster key, CA and node certificates (SANs: node name and addresses), made
    with :mod:`hamod.adapters.pki` in memory."""
    key = secrets.token_bytes(pki.CLUSTER_KEY_BYTES).hex() + "\n"
    ca = pki.create_ca(cluster, days=days)
    (ca_crt,) = [f for f in pki.ca_files(ca, Path("/x")) if f.path.name == "ca.crt"]
    certs: dict[str, str] = {}
    keys: dict[str, str] = {}
    for node, addrs in nodes.items():
        creds = pki.issue_node_cert(ca, node, [ip_address(a) for a in addrs], days=days)
        for f in pki.node_files(creds, Path("/x")):
            (certs if f.path.name == "node.crt" else keys)[node] = f.content.decode()
    return Pki(key, ca_crt.content.decode(), certs, keys)
