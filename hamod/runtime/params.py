"""From the validated configuration to what the runtime needs per module: the core's
:class:`~hamod.core.model.Params`, the node's identity, and the module files to run.

A farm module is refused here (load balancing comes with the farm). Replicated
modules on one node must not share replication ports.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path

from hamod.config import ClusterConfig, ModuleConfig, config_hash, load_cluster, load_module
from hamod.core.model import Mode, Params, Witness
from hamod.errors import ConfigError, Problem, UsageError
from hamod.proto import PROTOCOL_VERSION
from hamod.runtime.paths import Paths

#: The heartbeat carries at most 16 bytes of the config hash (32 hex digits).
HASH_HEX = 32


def witness_kind(cluster: ClusterConfig) -> Witness:
    """The cluster's split-brain witness as the core knows it."""
    w = cluster.witness
    if w is None:
        return Witness.NONE
    if w.arbitrator is not None:
        return Witness.ARBITRATOR
    return Witness.PING if w.ping else Witness.NONE


def lease_margin(lease: float, pulse: float) -> float:
    """How long before the lease ends a primary stops serving unrenewed: a pulse (the
    renewal period), at least a tenth of the lease, at most half of it."""
    return min(lease / 2, max(pulse, lease * 0.1))


def params_for(module: ModuleConfig, cluster: ClusterConfig, node: str) -> Params:
    """The core's parameters of ``module`` on ``node``."""
    peers = [n for n in module.nodes if n != node]
    hb = module.heartbeat
    lease = float(hb.effective_lease)
    return Params(
        node=node,
        peer=peers[0] if module.mode == "mirror" and peers else "",
        mode=Mode(module.mode),
        # Up-to-date tracking for every mirror module, replicated directories or not: the
        # first start WAITs for `prim`, a SECOND restarted alone WAITs (acceptance 1, 8).
        replicated=module.mode == "mirror",
        failover=module.failover,
        defaultprim=module.defaultprim,
        maxloop=module.maxloop,
        loop_interval=float(module.loop_interval),
        pulse=float(hb.pulse),
        timeout=float(hb.timeout),
        lease=lease,
        lease_margin=lease_margin(lease, float(hb.pulse)),
        witness=witness_kind(cluster),
        config_hash=config_hash(module, cluster)[:HASH_HEX],
        protocol_version=PROTOCOL_VERSION,
    )


def heartbeat_networks(module: ModuleConfig, cluster: ClusterConfig) -> tuple[str, ...]:
    """The networks the module's heartbeats run on (all the cluster's by default)."""
    if module.heartbeat.networks:
        return tuple(module.heartbeat.networks)
    return tuple(n.name for n in cluster.networks)


def node_name(paths: Paths, explicit: str | None, cluster: ClusterConfig) -> str:
    """This node's name: ``--node``, else ``/etc/hamod/node``, else the host name; it must
    be a node of the cluster file."""
    name = explicit
    if not name and paths.node_file.exists():
        name = paths.node_file.read_text(encoding="utf-8").strip()
    if not name:
        name = socket.gethostname().split(".")[0]
    if cluster.node(name) is None:
        known = ", ".join(n.name for n in cluster.nodes)
        raise UsageError(f"this node is {name!r}, not a node of the cluster file (known: {known})")
    return name


@dataclass(frozen=True)
class Loaded:
    """The configuration the daemon runs: the cluster and this node's modules."""

    cluster: ClusterConfig
    node: str
    modules: tuple[ModuleConfig, ...]
    files: dict[str, Path]


def check_supported(module: ModuleConfig, source: Path) -> None:
    """Refuse what this daemon cannot run yet, naming the field."""
    if module.mode != "mirror":
        raise ConfigError(str(source), [Problem("mode", "farm modules are not run yet")])


def load_all(paths: Paths, node: str | None = None) -> Loaded:
    """Load the cluster file and every module file listing this node."""
    if not paths.cluster_file.exists():
        raise UsageError(f"{paths.cluster_file}: no cluster file")
    cluster = load_cluster(paths.cluster_file)
    me = node_name(paths, node, cluster)
    modules: list[ModuleConfig] = []
    files: dict[str, Path] = {}
    for path in sorted(paths.modules_dir.glob("*.yaml")) if paths.modules_dir.is_dir() else []:
        mod = load_module(path, cluster)
        if me not in mod.nodes:
            continue
        check_supported(mod, path)
        if mod.module in files:
            raise UsageError(
                f"{path}: module {mod.module!r} already defined in {files[mod.module]}"
            )
        modules.append(mod)
        files[mod.module] = path
    check_ports(modules, files, cluster)
    return Loaded(cluster, me, tuple(modules), files)


def check_ports(
    modules: list[ModuleConfig], files: dict[str, Path], cluster: ClusterConfig
) -> None:
    """Each replicated module needs its own two TCP ports (link, full copies), apart
    from the API's."""
    taken: dict[int, str] = {cluster.api_port: "the API (api_port)"}
    for mod in modules:
        rep = mod.replication
        if rep is None or not rep.directories:
            continue
        for port in (int(rep.port), int(rep.port) + 1):
            if port in taken:
                raise ConfigError(
                    str(files[mod.module]),
                    [Problem("replication.port", f"port {port} is already used by {taken[port]}")],
                )
            taken[port] = f"module {mod.module}"
