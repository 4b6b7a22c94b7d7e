"""hamod.adapters.pki: generated material completes a real mutual-TLS handshake; foreign,
expired and wrongly named certificates are refused; files are written atomically with
exact modes, and never clobbered without force."""

from __future__ import annotations

import ipaddress
import os
import socket
import ssl
import stat
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hamod.adapters import pki
from hamod.errors import AdapterError, UsageError

N1 = [ipaddress.ip_address("10.0.0.1"), ipaddress.ip_address("fd00::1")]
N2 = [ipaddress.ip_address("10.0.0.2")]


@dataclass(frozen=True)
class Tls:
    """Paths of one CA and its node files."""

    root: Path

    def ca(self) -> Path:
        return pki.ca_paths(self.root)[0]

    def node(self, name: str) -> tuple[Path, Path]:
        return pki.node_paths(self.root, name)

    def server(self, name: str, ca: Path | None = None) -> ssl.SSLContext:
        return pki.server_context(ca or self.ca(), *self.node(name))

    def client(self, name: str, ca: Path | None = None) -> ssl.SSLContext:
        return pki.client_context(ca or self.ca(), *self.node(name))


def make_cluster(root: Path, cluster: str = "prod", now: datetime | None = None) -> Tls:
    ca = pki.create_ca(cluster, days=30, now=now)
    files = pki.ca_files(ca, root)
    for name, addrs in (("n1", N1), ("n2", N2)):
        files += pki.node_files(pki.issue_node_cert(ca, name, addrs, days=10, now=now), root)
    pki.write_files(files, force=False)
    return Tls(root)


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    return make_cluster(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def foreign(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    return make_cluster(tmp_path_factory.mktemp("foreign"), cluster="prod")


@dataclass
class Outcome:
    server_error: BaseException | None = None
    client_error: BaseException | None = None
    reply: bytes = b""
    client_seen_by_server: object = None


def handshake(server: ssl.SSLContext, client: ssl.SSLContext, hostname: str) -> Outcome:
    """A real TLS session over a connected socket pair; the server echoes upper-cased."""
    a, b = socket.socketpair()
    a.settimeout(10)
    b.settimeout(10)
    out = Outcome()

    def serve() -> None:
        try:
            with server.wrap_socket(a, server_side=True) as s:
                out.client_seen_by_server = s.getpeercert()
                s.sendall(s.recv(5).upper())
        except (OSError, ssl.SSLError) as exc:
            out.server_error = exc

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with client.wrap_socket(b, server_hostname=hostname) as c:
            c.sendall(b"hello")
            out.reply = c.recv(5)
    except (OSError, ssl.SSLError) as exc:
        out.client_error = exc
    thread.join(10)
    assert not thread.is_alive()
    return out


# --- mutual TLS ----------------------------------------------------------------------


@pytest.mark.parametrize("hostname", ["n1", "10.0.0.1", "fd00::1"])
def test_mutual_tls_handshake_between_two_nodes(tls: Tls, hostname: str) -> None:
    out = handshake(tls.server("n1"), tls.client("n2"), hostname)
    assert (out.server_error, out.client_error, out.reply) == (None, None, b"HELLO")
    seen = out.client_seen_by_server
    assert isinstance(seen, dict)
    assert seen["subjectAltName"] == (("DNS", "n2"), ("IP Address", "10.0.0.2"))


def test_a_client_certificate_from_another_ca_is_refused(tls: Tls, foreign: Tls) -> None:
    intruder = pki.client_context(tls.ca(), *foreign.node("n2"))  # trusts us, foreign cert
    out = handshake(tls.server("n1"), intruder, "n1")
    assert isinstance(out.server_error, ssl.SSLError)
    assert "certificate verify failed" in str(out.server_error)
    assert out.reply == b""


def test_a_client_without_certificate_is_refused(tls: Tls) -> None:
    anonymous = ssl.create_default_context(cafile=tls.ca())
    out = handshake(tls.server("n1"), anonymous, "n1")
    assert isinstance(out.server_error, ssl.SSLError)
    assert "peer did not return a certificate" in str(out.server_error)
    assert out.reply == b""


def test_a_server_certificate_from_another_ca_is_refused(tls: Tls, foreign: Tls) -> None:
    impostor = pki.server_context(foreign.ca(), *foreign.node("n1"))
    out = handshake(impostor, tls.client("n2"), "n1")
    assert isinstance(out.client_error, ssl.SSLCertVerificationError)
    # Same CA name ("prod") but another key: OpenSSL finds no issuer whose key signed it.
    assert out.client_error.verify_message in (
        "unable to get local issuer certificate",
        "self-signed certificate in certificate chain",
        "certificate signature failure",
    )
    assert out.reply == b""


@pytest.mark.parametrize(
    ("hostname", "message"),
    [("n3", "Hostname mismatch"), ("10.0.0.2", "IP address mismatch")],
)
def test_a_server_reached_by_another_name_is_refused(tls: Tls, hostname: str, message: str) -> None:
    out = handshake(tls.server("n1"), tls.client("n2"), hostname)
    assert isinstance(out.client_error, ssl.SSLCertVerificationError)
    assert message in out.client_error.verify_message


def test_an_expired_server_certificate_is_refused(tmp_path: Path, tls: Tls) -> None:
    old = make_cluster(tmp_path, now=datetime.now(UTC) - timedelta(days=100))
    expired = pki.server_context(old.ca(), *old.node("n1"))
    out = handshake(expired, old.client("n2"), "n1")
    assert isinstance(out.client_error, ssl.SSLCertVerificationError)
    assert out.client_error.verify_message == "certificate has expired"


def test_contexts_name_the_unreadable_file(tmp_path: Path, tls: Tls) -> None:
    missing = tmp_path / "nope.crt"
    with pytest.raises(AdapterError, match=f"cannot load CA certificate {missing}: "):
        pki.server_context(missing, *tls.node("n1"))
    crt, _ = tls.node("n1")
    _, other_key = tls.node("n2")
    with pytest.raises(AdapterError, match=f"cannot load certificate {crt} with key {other_key}"):
        pki.client_context(tls.ca(), crt, other_key)


# --- verify_chain --------------------------------------------------------------------


def test_verify_chain(tls: Tls, foreign: Tls) -> None:
    ca = pki.load_certificate(tls.ca())
    n1 = pki.load_certificate(tls.node("n1")[0])
    pki.verify_chain(n1, ca)
    stranger = pki.load_certificate(foreign.node("n1")[0])
    # Same subject names (both clusters are "prod"), different key: the signature decides.
    with pytest.raises(AdapterError, match="certificate of n1 does not verify against the CA"):
        pki.verify_chain(stranger, ca)
    with pytest.raises(AdapterError, match=r"certificate of n1 expired on \d{4}-\d\d-\d\d"):
        pki.verify_chain(n1, ca, now=datetime.now(UTC) + timedelta(days=11))
    with pytest.raises(AdapterError, match="the CA certificate is not valid before"):
        pki.verify_chain(n1, ca, now=datetime.now(UTC) - timedelta(days=1))
    other = pki.create_ca("dev", days=1)
    with pytest.raises(AdapterError, match="issued by 'CN=hamod prod CA,OU=prod,O=hamod', not by"):
        pki.verify_chain(n1, other.cert)


def test_issue_one_more_node_from_a_loaded_ca(tls: Tls) -> None:
    ca = pki.load_ca(tls.root)
    creds = pki.issue_node_cert(ca, "n3", [ipaddress.ip_address("10.0.0.3")], days=100_000)
    pki.verify_chain(creds.cert, ca.cert)
    assert creds.cert.not_valid_after_utc == ca.cert.not_valid_after_utc  # clamped
    assert pki.cluster_of(creds.cert) == "prod"


def test_load_ca_refuses_a_key_of_another_ca(tmp_path: Path, tls: Tls, foreign: Tls) -> None:
    (tmp_path / "ca.crt").write_bytes(tls.ca().read_bytes())
    (tmp_path / "ca.key").write_bytes(pki.ca_paths(foreign.root)[1].read_bytes())
    with pytest.raises(AdapterError, match=r"CA key .*ca.key does not match the certificate"):
        pki.load_ca(tmp_path)
    (tmp_path / "ca.key").write_text("junk")
    with pytest.raises(AdapterError, match=r"ca.key is not a PEM private key"):
        pki.load_ca(tmp_path)


def test_names_are_checked() -> None:
    with pytest.raises(UsageError, match="'Prod' is not a valid name"):
        pki.create_ca("Prod", days=1)
    ca = pki.create_ca("prod", days=1)
    with pytest.raises(UsageError, match="'n_1' is not a valid node name"):
        pki.issue_node_cert(ca, "n_1", [], days=1)


# --- files and the cluster key -------------------------------------------------------


@pytest.fixture(params=[0o022, 0o077, 0o000], ids=lambda m: f"umask{m:03o}")
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_modes_are_exact_whatever_the_umask(tmp_path: Path, umask: int) -> None:
    key = pki.write_cluster_key(tmp_path)
    tls = make_cluster(tmp_path / "tls")
    assert mode(key) == 0o600
    assert (mode(tls.ca()), mode(pki.ca_paths(tls.root)[1])) == (0o644, 0o600)
    assert [mode(p) for p in tls.node("n1")] == [0o644, 0o600]
    assert not [p for p in tmp_path.rglob(".*.tmp")]


def test_cluster_key_round_trip_and_refusals(tmp_path: Path) -> None:
    path = pki.write_cluster_key(tmp_path)
    key = pki.read_cluster_key(path)
    assert len(key) == 32 and path.read_text() == key.hex() + "\n"
    with pytest.raises(UsageError, match=f"^refusing to overwrite {path} \\(use --force"):
        pki.write_cluster_key(tmp_path)
    assert pki.read_cluster_key(path) == key
    pki.write_cluster_key(tmp_path, force=True)
    assert pki.read_cluster_key(path) != key
    path.chmod(0o640)
    with pytest.raises(AdapterError, match=r"readable by others \(mode 0640\); chmod 600 it"):
        pki.read_cluster_key(path)
    path.chmod(0o600)
    path.write_text("abcd\n")
    with pytest.raises(AdapterError, match="must hold 64 hex digits"):
        pki.read_cluster_key(path)
    with pytest.raises(AdapterError, match="No such file or directory"):
        pki.read_cluster_key(tmp_path / "missing.key")


def test_nothing_is_written_when_one_target_exists(tmp_path: Path) -> None:
    taken = tmp_path / "b"
    taken.write_bytes(b"mine")
    files = [pki.OutFile(tmp_path / n, b"new", 0o600) for n in ("a", "b", "c")]
    with pytest.raises(UsageError, match=f"refusing to overwrite {taken} \\(use --force"):
        pki.write_files(files, force=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"] and taken.read_bytes() == b"mine"
    pki.write_files(files, force=True)
    assert [(tmp_path / n).read_bytes() for n in "abc"] == [b"new"] * 3


def test_io_failures_are_adapter_errors_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(AdapterError, match=r"cannot write .*file/sub/cluster.key: Not a directory"):
        pki.write_cluster_key(tmp_path / "file" / "sub")
