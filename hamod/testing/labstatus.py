"""What a lab looks like right now: frozen dataclasses, JSON and a human rendering."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class NetworkStatus:
    """One network of the lab: a bridge in the switch namespace."""

    name: str
    role: str  # "service" (net0) or "heartbeat"
    subnet: str
    bridge: str


@dataclass(frozen=True)
class HostStatus:
    """One host: its namespace, PID 1 (None for the client, or when powered off),
    whether it runs, its addresses and which of its cables are plugged."""

    name: str
    role: str  # "node", "witness" or "client"
    netns: str
    pid: int | None
    alive: bool
    addresses: dict[str, str]
    plugged: dict[str, bool]


@dataclass(frozen=True)
class LabStatus:
    """The whole lab: topology, hosts, and the fault rules in force."""

    name: str
    slot: int
    state_dir: str
    switch_netns: str
    networks: tuple[NetworkStatus, ...]
    hosts: tuple[HostStatus, ...]
    faults: tuple[str, ...]
    ssh_config: str
    inventory: str

    def host(self, name: str) -> HostStatus:
        """The status of host ``name`` (KeyError when absent)."""
        for h in self.hosts:
            if h.name == name:
                return h
        raise KeyError(name)

    def to_json(self) -> str:
        """The status as indented JSON."""
        return json.dumps(asdict(self), indent=2)

    def render(self) -> str:
        """A short human description: one line per network, host and fault."""
        lines = [f"lab {self.name} (state {self.state_dir}, switch {self.switch_netns})"]
        for net in self.networks:
            lines.append(f"  {net.name:<6} {net.role:<9} {net.subnet:<16} bridge {net.bridge}")
        for h in self.hosts:
            if h.role == "client":
                state = "namespace"
            else:
                state = f"up pid {h.pid}" if h.alive else "POWERED OFF"
            nets = "  ".join(
                f"{n}={a}{'' if h.plugged.get(n, False) else ' (unplugged)'}"
                for n, a in h.addresses.items()
            )
            lines.append(f"  {h.name:<8} {h.role:<8} {state:<16} {nets}")
        for rule in self.faults:
            lines.append(f"  fault: {rule}")
        return "\n".join(lines)
