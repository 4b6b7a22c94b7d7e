"""Fixtures of the API tests: the app over a FakeBackend, and a throw-away PKI (two CAs,
server and client certificates) made by hamod's own ``hamod.adapters.pki``."""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from hamod.adapters import pki as pki_mod
from hamod.api.app import create_app
from hamod.testing.fake_backend import FakeBackend


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def backend() -> FakeBackend:
    return FakeBackend()


@pytest.fixture
async def http(backend: FakeBackend) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(backend))
    async with httpx.AsyncClient(transport=transport, base_url="http://hamod") as client:
        yield client


@dataclass(frozen=True)
class Issuer:
    path: Path  # the CA certificate


@dataclass(frozen=True)
class Identity:
    cert: Path
    key: Path


def make_ca(directory: Path, cluster: str) -> tuple[pki_mod.CertAuthority, Issuer]:
    """A CA made by hamod's own PKI (what `hamod cluster certs` creates)."""
    ca = pki_mod.create_ca(cluster, days=1)
    pki_mod.write_files(pki_mod.ca_files(ca, directory / cluster), force=False)
    return ca, Issuer(pki_mod.ca_paths(directory / cluster)[0])


def issue(ca: pki_mod.CertAuthority, directory: Path, node: str, ips: list[str]) -> Identity:
    """A node certificate from ``ca`` naming ``node`` (DNS SAN) and ``ips`` (IP SANs)."""
    creds = pki_mod.issue_node_cert(ca, node, [ipaddress.ip_address(i) for i in ips], days=1)
    out = directory / cluster_dir(ca)
    pki_mod.write_files(pki_mod.node_files(creds, out), force=False)
    cert, key = pki_mod.node_paths(out, node)
    return Identity(cert, key)


def cluster_dir(ca: pki_mod.CertAuthority) -> str:
    return pki_mod.cluster_of(ca.cert)


@dataclass(frozen=True)
class Pki:
    ca: Issuer
    other_ca: Issuer
    server: Identity  # n1: IP SAN 127.0.0.1, DNS SAN n1
    client: Identity  # n2, from the cluster CA
    stranger: Identity  # from another CA
    wrong_server: Identity  # cluster CA, but names 10.9.9.9 only


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    (ca, ca_file), (other, other_file) = make_ca(d, "cluster"), make_ca(d, "other")
    return Pki(
        ca=ca_file,
        other_ca=other_file,
        server=issue(ca, d, "n1", ["127.0.0.1"]),
        client=issue(ca, d, "n2", ["127.0.0.2"]),
        stranger=issue(other, d, "mallory", ["127.0.0.3"]),
        wrong_server=issue(ca, d, "n9", ["10.9.9.9"]),
    )
