"""Fixtures: a cluster CA with two nodes (and a foreign one) made by hamod's own PKI,
a receiver on 127.0.0.1 and links to it."""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hamod.adapters import pki
from hamod.replication.conn import tls_connector
from hamod.replication.link import Mode, PeerLink
from hamod.replication.receiver import Applier, PeerReceiver

LOCAL = [ipaddress.ip_address("127.0.0.1")]


@dataclass(frozen=True)
class Cluster:
    root: Path

    def server(self, node: str = "n2") -> ssl.SSLContext:
        return pki.server_context(pki.ca_paths(self.root)[0], *pki.node_paths(self.root, node))

    def client(self, node: str = "n1") -> ssl.SSLContext:
        return pki.client_context(pki.ca_paths(self.root)[0], *pki.node_paths(self.root, node))


def make_cluster(root: Path, name: str) -> Cluster:
    ca = pki.create_ca(name, days=1)
    files = pki.ca_files(ca, root)
    for node in ("n1", "n2"):
        files += pki.node_files(pki.issue_node_cert(ca, node, LOCAL, days=1), root)
    pki.write_files(files, force=False)
    return Cluster(root)


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Cluster:
    return make_cluster(tmp_path_factory.mktemp("tls"), "prod")


@pytest.fixture(scope="session")
def foreign(tmp_path_factory: pytest.TempPathFactory) -> Cluster:
    return make_cluster(tmp_path_factory.mktemp("tls-foreign"), "other")


LinkFactory = Callable[..., tuple[PeerReceiver, PeerLink]]


@pytest.fixture
def pair(cluster: Cluster) -> Iterator[LinkFactory]:
    """``pair(applier, mode=..., timeout=...)``: a started receiver and a connected link."""
    made: list[tuple[PeerReceiver, PeerLink]] = []

    def make(
        applier: Applier, mode: Mode = Mode.SYNC, timeout: float = 2.0
    ) -> tuple[PeerReceiver, PeerLink]:
        receiver = PeerReceiver(cluster.server(), applier)
        receiver.start()
        host, port = receiver.address
        link = PeerLink(tls_connector(cluster.client(), host, port), mode=mode, timeout=timeout)
        link.connect()
        made.append((receiver, link))
        return receiver, link

    yield make
    for receiver, link in made:
        link.close()
        receiver.close()
