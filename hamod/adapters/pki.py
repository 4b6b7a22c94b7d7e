"""The cluster's secrets on disk: the cluster key that signs heartbeats, and the cluster
CA with one certificate per node for mutual TLS between nodes (REST API, peer links).

- Cluster key: 32 random bytes, stored as one line of 64 hex digits (so it survives
  ansible-vault, templates and copy/paste), mode 0600.
- CA and node keys: EC P-256 (ECDSA-SHA256), which Python's ``ssl`` supports for mutual
  TLS everywhere. Node certificates carry the node name (DNS SAN) and its addresses (IP
  SANs), serverAuth + clientAuth. Layout under the output directory: ``ca.crt``,
  ``ca.key``, ``<node>/node.crt``, ``<node>/node.key`` — the node files go to
  ``/etc/hamod/tls/node.{crt,key}`` on that node.
- Files are written atomically with exact modes (keys 0600, certificates 0644); nothing
  is written when any target exists and ``force`` is not given.

Refusals caused by the caller's input raise :class:`~hamod.errors.UsageError`; failing
I/O and unusable material raise :class:`~hamod.errors.AdapterError`, naming the file.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import secrets
import ssl
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from hamod.errors import AdapterError, UsageError

CLUSTER_KEY_BYTES: Final = 32
CLUSTER_KEY_FILE: Final = "cluster.key"
KEY_MODE: Final = 0o600
CERT_MODE: Final = 0o644
DIR_MODE: Final = 0o755
CLOCK_SKEW: Final = timedelta(hours=1)
MAX_DAYS: Final = 36_500
NODE_RE: Final = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
CLUSTER_RE: Final = re.compile(r"[a-z][a-z0-9_-]{0,31}")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class CertAuthority:
    """The cluster CA: its certificate and private key."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class NodeCredentials:
    """One node's certificate and private key."""

    node: str
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class OutFile:
    """A file to write: path, content, mode."""

    path: Path
    content: bytes
    mode: int


def ca_paths(directory: Path) -> tuple[Path, Path]:
    """(certificate, key) of the CA under ``directory``."""
    return directory / "ca.crt", directory / "ca.key"


def node_paths(directory: Path, node: str) -> tuple[Path, Path]:
    """(certificate, key) of ``node`` under ``directory``."""
    return directory / node / "node.crt", directory / node / "node.key"


# --- cluster key ---------------------------------------------------------------------


def write_cluster_key(directory: Path, *, force: bool = False) -> Path:
    """Create ``directory/cluster.key`` with a new random key; returns its path."""
    path = directory / CLUSTER_KEY_FILE
    key = secrets.token_bytes(CLUSTER_KEY_BYTES)
    write_files([OutFile(path, key.hex().encode() + b"\n", KEY_MODE)], force=force)
    return path


def read_cluster_key(path: Path) -> bytes:
    """The cluster key in ``path``; refuses a file others can read."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        text = path.read_text("ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise AdapterError(f"cannot read cluster key {path}: {_why(exc)}") from None
    if mode & 0o077:
        raise AdapterError(
            f"cluster key {path} is readable by others (mode {mode:04o}); chmod 600 it"
        )
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != CLUSTER_KEY_BYTES:
        raise AdapterError(
            f"cluster key {path} must hold {2 * CLUSTER_KEY_BYTES} hex digits "
            "(create it with `hamod cluster keygen`)"
        )
    return key


# --- certificates --------------------------------------------------------------------


def check_cluster_name(name: str) -> str:
    """``name`` if it is a valid cluster name, else UsageError."""
    if not CLUSTER_RE.fullmatch(name):
        raise UsageError(
            f"--cluster-name: {name!r} is not a valid name; use 1-32 lowercase letters, "
            "digits, '_' or '-', starting with a letter"
        )
    return name


def check_node_name(name: str) -> str:
    """``name`` if it is a valid node (host) name, else UsageError."""
    if not NODE_RE.fullmatch(name):
        raise UsageError(
            f"--nodes: {name!r} is not a valid node name; use a host name: letters, digits and '-'"
        )
    return name


def create_ca(cluster: str, *, days: int, now: datetime | None = None) -> CertAuthority:
    """A new self-signed CA for ``cluster``, valid ``days`` from ``now``."""
    check_cluster_name(cluster)
    now = now or datetime.now(UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    name = _subject(f"hamod {cluster} CA", cluster)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), False)
        .sign(key, hashes.SHA256())
    )
    return CertAuthority(cert, key)


def issue_node_cert(
    ca: CertAuthority,
    node: str,
    addresses: Sequence[IPAddress],
    *,
    days: int,
    now: datetime | None = None,
) -> NodeCredentials:
    """A certificate for ``node`` (DNS SAN) and its ``addresses`` (IP SANs) from ``ca``,
    valid ``days`` from ``now`` but never past the CA's own expiry."""
    check_node_name(node)
    now = now or datetime.now(UTC)
    cluster = cluster_of(ca.cert)
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = [x509.DNSName(node)]
    sans += [x509.IPAddress(a) for a in addresses]
    ca_ski = ca.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (
        x509.CertificateBuilder()
        .subject_name(_subject(node, cluster))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(min(now + timedelta(days=days), ca.cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), False
        )
        .sign(ca.key, hashes.SHA256())
    )
    return NodeCredentials(node, cert, key)


def verify_chain(
    cert: x509.Certificate, ca: x509.Certificate, *, now: datetime | None = None
) -> None:
    """Check that ``cert`` is a valid node certificate of ``ca`` at ``now`` (signature,
    validity, usage for both TLS client and server); AdapterError saying why not."""
    who = _common_name(cert)
    now = now or datetime.now(UTC)
    for c, what in ((ca, "the CA certificate"), (cert, f"certificate of {who}")):
        if now < c.not_valid_before_utc:
            raise AdapterError(f"{what} is not valid before {c.not_valid_before_utc:%Y-%m-%d}")
        if now > c.not_valid_after_utc:
            raise AdapterError(f"{what} expired on {c.not_valid_after_utc:%Y-%m-%d}")
    if cert.issuer != ca.subject:
        raise AdapterError(
            f"certificate of {who} was issued by {cert.issuer.rfc4514_string()!r}, "
            f"not by this CA ({ca.subject.rfc4514_string()!r})"
        )
    try:
        verifier = PolicyBuilder().store(Store([ca])).time(now).build_client_verifier()
        verifier.verify(cert, [])
    except (VerificationError, ValueError) as exc:
        raise AdapterError(f"certificate of {who} does not verify against the CA: {exc}") from None
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        eku = x509.ExtendedKeyUsage([])
    if ExtendedKeyUsageOID.SERVER_AUTH not in eku:
        raise AdapterError(f"certificate of {who} is not usable by a TLS server (no serverAuth)")


def ca_files(ca: CertAuthority, directory: Path) -> list[OutFile]:
    """The files of the CA under ``directory``."""
    crt, key = ca_paths(directory)
    return [OutFile(crt, _pem(ca.cert), CERT_MODE), OutFile(key, _key_pem(ca.key), KEY_MODE)]


def node_files(creds: NodeCredentials, directory: Path) -> list[OutFile]:
    """The files of one node under ``directory``."""
    crt, key = node_paths(directory, creds.node)
    return [OutFile(crt, _pem(creds.cert), CERT_MODE), OutFile(key, _key_pem(creds.key), KEY_MODE)]


def load_ca(directory: Path) -> CertAuthority:
    """The CA stored under ``directory`` by :func:`ca_files`."""
    crt_path, key_path = ca_paths(directory)
    cert = load_certificate(crt_path)
    data = _read(key_path, "CA key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise AdapterError(f"CA key {key_path} is not a PEM private key: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise AdapterError(f"CA key {key_path} is not an EC key")
    if key.public_key() != cert.public_key():
        raise AdapterError(f"CA key {key_path} does not match the certificate {crt_path}")
    return CertAuthority(cert, key)


def load_certificate(path: Path) -> x509.Certificate:
    """The PEM certificate in ``path``."""
    try:
        return x509.load_pem_x509_certificate(_read(path, "certificate"))
    except ValueError as exc:
        raise AdapterError(f"certificate {path} is not a PEM certificate: {exc}") from None


# --- TLS contexts --------------------------------------------------------------------


def server_context(ca: Path, cert: Path, key: Path) -> ssl.SSLContext:
    """TLS 1.3 server context requiring a client certificate from the cluster CA."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.verify_mode = ssl.CERT_REQUIRED
    return _load_context(ctx, ca, cert, key)


def client_context(ca: Path, cert: Path, key: Path) -> ssl.SSLContext:
    """TLS 1.3 client context presenting this node's certificate and checking the server's
    against the cluster CA and the name or address it is reached by."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED + check_hostname
    return _load_context(ctx, ca, cert, key)


def _load_context(ctx: ssl.SSLContext, ca: Path, cert: Path, key: Path) -> ssl.SSLContext:
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.verify_flags |= ssl.VERIFY_X509_STRICT
    try:
        ctx.load_verify_locations(cafile=ca)
    except (OSError, ssl.SSLError) as exc:
        raise AdapterError(f"cannot load CA certificate {ca}: {_why(exc)}") from None
    try:
        ctx.load_cert_chain(certfile=cert, keyfile=key)
    except (OSError, ssl.SSLError) as exc:
        raise AdapterError(f"cannot load certificate {cert} with key {key}: {_why(exc)}") from None
    return ctx


# --- files ---------------------------------------------------------------------------


def write_files(files: Sequence[OutFile], *, force: bool) -> None:
    """Write every file atomically with its exact mode. Without ``force``, nothing is
    written if any of them exists (UsageError naming it)."""
    if not force:
        existing = [f.path for f in files if os.path.lexists(f.path)]
        if existing:
            more = f" and {len(existing) - 1} other file(s)" if len(existing) > 1 else ""
            raise UsageError(f"refusing to overwrite {existing[0]}{more} (use --force to replace)")
    for f in files:
        _write_atomic(f, force=force)


def _write_atomic(f: OutFile, *, force: bool) -> None:
    tmp = f.path.with_name(f".{f.path.name}.{secrets.token_hex(4)}.tmp")
    created = False
    try:
        f.path.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, f.mode)
        created = True
        try:
            os.fchmod(fd, f.mode)
            data = memoryview(f.content)
            while data:
                data = data[os.write(fd, data) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        if force:
            os.replace(tmp, f.path)
            created = False
        else:
            os.link(tmp, f.path)  # fails if the file appeared meanwhile: never clobber
    except FileExistsError:
        raise UsageError(f"refusing to overwrite {f.path} (use --force to replace)") from None
    except OSError as exc:
        raise AdapterError(f"cannot write {f.path}: {_why(exc)}") from None
    finally:
        if created:
            with contextlib.suppress(OSError):
                tmp.unlink()


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise AdapterError(f"cannot read {what} {path}: {_why(exc)}") from None


def _why(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


# --- x509 helpers --------------------------------------------------------------------


def _subject(common_name: str, cluster: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "hamod"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, cluster),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _attr(name: x509.Name, oid: x509.ObjectIdentifier) -> str:
    values = name.get_attributes_for_oid(oid)
    value = values[0].value if values else ""
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


def _common_name(cert: x509.Certificate) -> str:
    return _attr(cert.subject, NameOID.COMMON_NAME) or cert.subject.rfc4514_string()


def cluster_of(ca: x509.Certificate) -> str:
    """The cluster name recorded in a hamod certificate (its OU)."""
    return _attr(ca.subject, NameOID.ORGANIZATIONAL_UNIT_NAME)


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
