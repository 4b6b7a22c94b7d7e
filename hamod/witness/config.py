"""What ``hamod witness serve`` is given: the cluster keys (a directory holding one
``<cluster>.key`` file per cluster served, each written by ``hamod cluster keygen``) and
the listen address (``ADDR``, ``ADDR:PORT``, ``[V6ADDR]:PORT``; port 9011 by default).

Bad input raises :class:`UsageError` naming it; an unreadable key :class:`AdapterError`.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from hamod.adapters.pki import CLUSTER_RE, read_cluster_key
from hamod.errors import UsageError
from hamod.proto.witness import DEFAULT_PORT

KEY_SUFFIX: Final = ".key"


@dataclass(frozen=True)
class ListenAddress:
    """An IP literal and a UDP port (0: any free port)."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_listen(text: str, default_port: int = DEFAULT_PORT) -> ListenAddress:
    """``0.0.0.0``, ``10.0.0.9:9011``, ``::``, ``fd00::9``, ``[fd00::9]:9011``."""
    host, port_text = text, None
    if text.startswith("["):
        end = text.find("]")
        rest = text[end + 1 :] if end > 0 else "?"
        if rest and not rest.startswith(":"):
            raise UsageError(f"--listen: {text!r} is not ADDR, ADDR:PORT or [ADDR]:PORT")
        host, port_text = text[1:end], rest[1:] if rest else None
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        raise UsageError(
            f"--listen: {host!r} is not an IP address (give ADDR, ADDR:PORT or [ADDR]:PORT)"
        ) from None
    port = default_port
    if port_text is not None:
        if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
            raise UsageError(f"--listen: port {port_text!r} is not a number in 0..65535")
        port = int(port_text)
    return ListenAddress(str(addr), port)


def load_keys(directory: Path) -> dict[str, bytes]:
    """Cluster name → cluster key, from every ``<cluster>.key`` in ``directory``."""
    if not directory.is_dir():
        raise UsageError(f"--keys: {directory} is not a directory")
    keys: dict[str, bytes] = {}
    for path in sorted(directory.glob(f"*{KEY_SUFFIX}")):
        cluster = path.name[: -len(KEY_SUFFIX)]
        if not CLUSTER_RE.fullmatch(cluster):
            raise UsageError(
                f"--keys: {path.name}: {cluster!r} is not a cluster name "
                "(1-32 lowercase letters, digits, '_' or '-', starting with a letter)"
            )
        keys[cluster] = read_cluster_key(path)
    if not keys:
        raise UsageError(
            f"--keys: no <cluster>{KEY_SUFFIX} file in {directory} "
            "(copy each cluster's cluster.key there as <cluster>.key, mode 0600)"
        )
    return keys
