"""What the data-path process of one module needs, derived from the configuration files.

Built by the daemon's adapter and by the process itself (``hamod datapath run``) from the
same files, so both agree on sockets and paths.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hamod.adapters import pki
from hamod.config.cluster import ClusterConfig
from hamod.config.module import ModuleConfig
from hamod.errors import ConfigError, Problem
from hamod.replication.conn import tls_connector
from hamod.replication.link import Mode
from hamod.runtime.paths import Paths


@dataclass(frozen=True)
class DpConfig:
    module: str
    node: str
    peer: str
    directories: tuple[Path, ...]
    excludes: tuple[tuple[str, ...], ...]
    mode: Mode
    durability: str
    link_timeout: float
    bandwidth: int | None
    region_size: int
    my_address: str
    peer_address: str
    port: int
    ca: Path
    cert: Path
    key: Path
    run: Path
    var: Path
    log: Path

    @property
    def rsync_port(self) -> int:
        return self.port + 1

    @property
    def control_socket(self) -> Path:
        return self.run / "control.sock"

    @property
    def pid_file(self) -> Path:
        return self.run / "datapath.pid"

    @property
    def log_file(self) -> Path:
        return self.log / "datapath.log"

    def under(self, index: int) -> Path:
        return self.run / "under" / str(index)

    def tracking_dir(self, index: int) -> Path:
        return self.var / "tracking" / str(index)

    @property
    def full_pending(self) -> Path:
        """Present while a full copy into this node is unfinished (its data is partial)."""
        return self.var / "full-copy-pending"

    def aside_root(self, index: int) -> Path:
        d = self.directories[index]
        return d.parent / f".hamod-aside-{d.name}"

    def server_context(self) -> ssl.SSLContext:
        return pki.server_context(self.ca, self.cert, self.key)

    def connector(self, port: int) -> Callable[[], ssl.SSLSocket]:
        ctx = pki.client_context(self.ca, self.cert, self.key)
        return tls_connector(ctx, self.peer_address, port, server_hostname=self.peer_address)


def dp_config(module: ModuleConfig, cluster: ClusterConfig, node: str, paths: Paths) -> DpConfig:
    """The data-path configuration of ``module`` on ``node``; ConfigError if it has no
    replicated directory or no peer on the replication network."""
    rep = module.replication
    if rep is None or not rep.directories:
        raise ConfigError(module.module, [Problem("replication", "no replicated directory")])
    peers = [n for n in module.nodes if n != node]
    net = cluster.replication_network.name
    me_node, peer_node = cluster.node(node), cluster.node(peers[0]) if peers else None
    if me_node is None or peer_node is None:
        raise ConfigError(module.module, [Problem("nodes", f"{node} and a peer are needed")])
    mine, theirs = me_node.addresses.get(net), peer_node.addresses.get(net)
    if mine is None or theirs is None:
        raise ConfigError(
            module.module,
            [Problem(f"nodes.{net}", "both nodes need an address on the replication network")],
        )
    run = paths.run / "dp" / module.module
    return DpConfig(
        module=module.module,
        node=node,
        peer=peers[0],
        directories=tuple(Path(str(d.path)) for d in rep.directories),
        excludes=tuple(tuple(d.exclude) for d in rep.directories),
        mode=Mode(rep.mode),
        durability=rep.durability,
        link_timeout=float(rep.link_timeout),
        bandwidth=None if rep.bandwidth is None else int(rep.bandwidth),
        region_size=int(rep.region_size),
        my_address=str(mine),
        peer_address=str(theirs),
        port=int(rep.port),
        ca=Path(str(cluster.tls.ca)),
        cert=Path(str(cluster.tls.cert)),
        key=Path(str(cluster.tls.key)),
        run=run,
        var=paths.var / module.module / "datapath",
        log=paths.log / module.module,
    )
