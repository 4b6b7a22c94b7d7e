"""Settings of the heartbeat transport: this node's and its peers' endpoints on each
heartbeat network, the cluster identity and key, the timings, and the per-network status
the transport reports. Validated on construction (:class:`~hamod.errors.AdapterError`
names the network and the value), so the transport never starts half-configured.

The runtime builds a :class:`HeartbeatConfig` from the cluster file (addresses per
network) and the modules' ``heartbeat:`` sections (pulse, timeout, networks).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

from hamod.errors import AdapterError
from hamod.proto.auth import MIN_KEY_BYTES

__all__ = ["DEFAULT_PORT", "Endpoint", "HeartbeatConfig", "HeartbeatNetwork", "NetworkStatus"]

#: UDP port of heartbeats, next to the API (9010/tcp) and the arbitrator (9011/tcp).
DEFAULT_PORT: Final = 9012


@dataclass(frozen=True)
class Endpoint:
    """An IP address (literal; IPv6 link-local may carry ``%iface``) and a UDP port."""

    host: str
    port: int = DEFAULT_PORT

    def __post_init__(self) -> None:
        try:
            ipaddress.ip_address(self.host)
        except ValueError:
            raise AdapterError(f"{self.host!r} is not an IP address") from None
        if not 0 < self.port < 65536:
            raise AdapterError(f"port {self.port} outside 1-65535")

    @property
    def version(self) -> int:
        return ipaddress.ip_address(self.host).version

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if self.version == 6 else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class HeartbeatNetwork:
    """One heartbeat network: this node's endpoint on it and each peer's."""

    name: str
    local: Endpoint
    peers: Mapping[str, Endpoint] = field(hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "peers", MappingProxyType(dict(self.peers)))
        if not self.peers:
            raise AdapterError(f"heartbeat network {self.name}: no peer address")
        for node, end in self.peers.items():
            if end.version != self.local.version:
                raise AdapterError(
                    f"heartbeat network {self.name}: peer {node} at {end} is IPv{end.version}, "
                    f"this node's address {self.local.host} is IPv{self.local.version}"
                )


@dataclass(frozen=True)
class HeartbeatConfig:
    """What the transport needs: who we are, the key, the networks, the timings (s)."""

    cluster: str
    node: str
    key: bytes = field(repr=False)
    networks: tuple[HeartbeatNetwork, ...]
    pulse: float = 0.7
    timeout: float = 30.0

    def __post_init__(self) -> None:
        names = [n.name for n in self.networks]
        if not names or len(set(names)) != len(names):
            raise AdapterError(f"heartbeat networks must be one or more, unique: {names}")
        if len(self.key) < MIN_KEY_BYTES:
            raise AdapterError(f"cluster key must be at least {MIN_KEY_BYTES} bytes")
        if not 0 < self.pulse < self.timeout:
            raise AdapterError(f"need 0 < pulse < timeout, got {self.pulse}, {self.timeout}")
        for net in self.networks:
            if self.node in net.peers:
                raise AdapterError(f"heartbeat network {net.name}: {self.node} is this node")

    def peer_networks(self) -> dict[str, tuple[str, ...]]:
        """Per peer, the networks it is reached on."""
        out: dict[str, list[str]] = {}
        for net in self.networks:
            for node in net.peers:
                out.setdefault(node, []).append(net.name)
        return {node: tuple(nets) for node, nets in out.items()}


@dataclass(frozen=True)
class NetworkStatus:
    """A network's sending side: bound or not, muted, current errors (None = fine)."""

    name: str
    bound: bool
    muted: bool
    bind_error: str | None
    send_errors: tuple[tuple[str, str], ...]
