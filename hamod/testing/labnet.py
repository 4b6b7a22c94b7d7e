"""The lab's topology, pure: names, addresses, MACs, and the ``ip``/``nft`` scripts building it.

One lab = one switch namespace holding a bridge per network (``net0`` the service network,
``net1`` a second heartbeat network), the nodes ``n1..nN`` plugged into every network, and
the witness (the nodes' router) and the client plugged into the service network only.
Every name starts with ``hamodlab.<lab>.`` (lab names contain no dot, so the prefix of
one lab never matches another's) and each lab owns one /24 per network in 10.202.0.0/16,
chosen by its *slot*, so labs run side by side and teardown is exact.

Nothing here touches the system: :mod:`hamod.testing.labsys` runs what this module writes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from hamod.errors import LabError

PREFIX = "hamodlab"
WITNESS = "witness"
CLIENT = "client"
SWITCH = "sw"
MAX_NODES = 8
MAX_NETWORKS = 4
SLOTS = 64  # 10.202.0.0/16 holds 256 /24s: 64 labs of up to 4 networks
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,23}$")
NFT_TABLE = "hamodlab"
NFT_CHAIN = "faults"

# Host numbers on every /24: the witness is the gateway, nodes start at .11, the client
# is .100, and .200-.250 are never used by the lab (free for virtual IPs).
_WITNESS_HOST = 1
_NODE_BASE = 10
_CLIENT_HOST = 100
_VIP_BASE = 200


def check_name(name: str) -> str:
    """Return ``name`` if it is a valid lab name, else raise :class:`LabError`."""
    if not _NAME.match(name):
        raise LabError(
            f"lab name {name!r} is invalid: use 1-24 characters a-z, 0-9 and '-', "
            "starting with a letter or digit"
        )
    return name


def netns_prefix(name: str) -> str:
    """The prefix of every network namespace of lab ``name``."""
    return f"{PREFIX}.{name}."


@dataclass(frozen=True)
class Topology:
    """The shape of one lab: its name, slot, number of nodes and of networks."""

    name: str
    slot: int
    nodes: int = 2
    networks: int = 2

    def __post_init__(self) -> None:
        check_name(self.name)
        if not 1 <= self.nodes <= MAX_NODES:
            raise LabError(f"nodes={self.nodes}: a lab has 1 to {MAX_NODES} nodes")
        if not 1 <= self.networks <= MAX_NETWORKS:
            raise LabError(f"networks={self.networks}: a lab has 1 to {MAX_NETWORKS} networks")
        if not 0 <= self.slot < SLOTS:
            raise LabError(f"slot={self.slot}: slots are 0 to {SLOTS - 1}")

    # -- names ---------------------------------------------------------------------------

    @property
    def node_names(self) -> tuple[str, ...]:
        """``n1`` .. ``nN``."""
        return tuple(f"n{i}" for i in range(1, self.nodes + 1))

    @property
    def booted(self) -> tuple[str, ...]:
        """Hosts with their own PID 1, files and sshd: the nodes and the witness."""
        return (*self.node_names, WITNESS)

    @property
    def hosts(self) -> tuple[str, ...]:
        """Every host: the nodes, the witness and the client."""
        return (*self.booted, CLIENT)

    @property
    def net_names(self) -> tuple[str, ...]:
        """``net0`` (service) .. ``netK``."""
        return tuple(f"net{i}" for i in range(self.networks))

    def check_host(self, host: str) -> str:
        """Return ``host`` if the lab has it, else raise :class:`LabError`."""
        if host not in self.hosts:
            raise LabError(f"lab {self.name}: no host {host!r} (hosts: {', '.join(self.hosts)})")
        return host

    def net_index(self, net: str) -> int:
        """The index of network ``net`` (``net0`` → 0), or :class:`LabError`."""
        if net not in self.net_names:
            raise LabError(
                f"lab {self.name}: no network {net!r} (networks: {', '.join(self.net_names)})"
            )
        return int(net[3:])

    def netns(self, host: str) -> str:
        """The network namespace of ``host`` (or of the switch, ``sw``)."""
        return f"{netns_prefix(self.name)}{host}"

    @property
    def all_netns(self) -> tuple[str, ...]:
        """Every namespace of the lab, the switch first."""
        return (self.netns(SWITCH), *(self.netns(h) for h in self.hosts))

    def nets_of(self, host: str) -> tuple[int, ...]:
        """The networks ``host`` is plugged into."""
        return tuple(range(self.networks)) if host in self.node_names else (0,)

    @staticmethod
    def port(host: str, net: int) -> str:
        """The switch-side interface of ``host`` on network ``net``."""
        return f"{host}-{net}p"

    @staticmethod
    def iface(net: int) -> str:
        """The host-side interface on network ``net``."""
        return f"eth{net}"

    @staticmethod
    def bridge(net: int) -> str:
        """The bridge of network ``net`` in the switch namespace."""
        return f"br{net}"

    # -- addresses -----------------------------------------------------------------------

    def _host_number(self, host: str) -> int:
        if host == WITNESS:
            return _WITNESS_HOST
        if host == CLIENT:
            return _CLIENT_HOST
        return _NODE_BASE + int(self.check_host(host)[1:])

    def subnet(self, net: int) -> str:
        """The /24 of network ``net``, e.g. ``10.202.4.0/24``."""
        return f"10.202.{self.slot * MAX_NETWORKS + net}.0/24"

    def _prefix3(self, net: int) -> str:
        return f"10.202.{self.slot * MAX_NETWORKS + net}"

    def address(self, host: str, net: int) -> str:
        """The address of ``host`` on network ``net`` (no prefix length)."""
        if net not in self.nets_of(self.check_host(host)):
            raise LabError(f"lab {self.name}: {host} is not on net{net}")
        return f"{self._prefix3(net)}.{self._host_number(host)}"

    def addresses(self, host: str) -> dict[str, str]:
        """``{net name: address}`` of ``host``."""
        return {f"net{i}": self.address(host, i) for i in self.nets_of(host)}

    def free_address(self, net: int = 0, index: int = 0) -> str:
        """An address on ``net`` that the lab never assigns (for virtual IPs)."""
        if not 0 <= index <= 50:
            raise LabError(f"free address index {index}: use 0 to 50")
        return f"{self._prefix3(net)}.{_VIP_BASE + index}"

    def mac(self, host: str, net: int) -> str:
        """A stable MAC for ``host`` on ``net``: a rebooted node keeps it, like a real NIC."""
        return f"02:48:{self.slot:02x}:{self._host_number(host):02x}:{net:02x}:01"

    def port_mac(self, host: str, net: int) -> str:
        """A stable MAC for the switch side of the same cable."""
        return f"02:48:{self.slot:02x}:{self._host_number(host):02x}:{net:02x}:02"

    # -- scripts -------------------------------------------------------------------------

    def switch_script(self) -> list[str]:
        """``ip -batch`` lines, run in the switch namespace, creating the bridges."""
        lines = ["link set lo up"]
        for i in range(self.networks):
            br = self.bridge(i)
            lines += [
                f"link add {br} type bridge stp_state 0 forward_delay 0 mcast_snooping 0",
                f"link set {br} up",
            ]
        return lines

    def plug_script(self, host: str) -> list[str]:
        """``ip -batch`` lines, run in the switch namespace, cabling ``host`` (veth ends
        are created directly in their namespaces: nothing appears in the root one)."""
        lines = []
        for i in self.nets_of(host):
            port = self.port(host, i)
            lines += [
                f"link add {port} address {self.port_mac(host, i)} type veth peer name "
                f"{self.iface(i)} address {self.mac(host, i)} netns {self.netns(host)}",
                f"link set {port} master {self.bridge(i)}",
                f"link set {port} up",
            ]
        return lines

    def unplug_all_script(self, host: str) -> list[str]:
        """``ip -batch`` lines, run in the switch namespace, removing ``host``'s cables."""
        return [f"link del {self.port(host, i)}" for i in self.nets_of(host)]

    def host_script(self, host: str) -> list[str]:
        """``ip -batch`` lines, run in ``host``'s namespace: addresses, links, routes."""
        lines = ["link set lo up"]
        for i in self.nets_of(host):
            lines += [
                f"addr add {self.address(host, i)}/24 dev {self.iface(i)}",
                f"link set {self.iface(i)} up",
            ]
        if host != WITNESS:
            lines.append(f"route add default via {self.address(WITNESS, 0)}")
        return lines

    def nft_setup(self) -> str:
        """The nftables table (bridge family, switch namespace) that holds the faults."""
        return (
            f"add table bridge {NFT_TABLE}\n"
            f"add chain bridge {NFT_TABLE} {NFT_CHAIN} "
            "{ type filter hook forward priority 0; policy accept; }\n"
        )

    def cut_rules(self, a: str, b: str) -> list[str]:
        """nft rules dropping everything between ``a`` and ``b`` on every shared network,
        both directions."""
        shared = sorted(set(self.nets_of(a)) & set(self.nets_of(b)))
        rules = []
        for i in shared:
            pa, pb = self.port(a, i), self.port(b, i)
            rules.append(f'iifname "{pa}" oifname "{pb}" drop')
            rules.append(f'iifname "{pb}" oifname "{pa}" drop')
        return rules

    def loss_rules(self, host: str, percent: int, direction: str) -> list[str]:
        """nft rules dropping ``percent`` % of ``host``'s packets (``out``, ``in`` or
        ``both`` directions, each direction drawn independently)."""
        if percent <= 0:
            return []
        draw = "" if percent >= 100 else f"numgen random mod 100 < {percent} "
        rules = []
        for i in self.nets_of(host):
            port = self.port(host, i)
            if direction in ("out", "both"):
                rules.append(f'iifname "{port}" {draw}drop')
            if direction in ("in", "both"):
                rules.append(f'oifname "{port}" {draw}drop')
        return rules

    def etc_hosts(self) -> str:
        """The ``/etc/hosts`` every booted host gets: ``n1`` is net0, ``n1-net1`` net1..."""
        lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
        for host in self.hosts:
            for i in self.nets_of(host):
                alias = host if i == 0 else f"{host}-net{i}"
                lines.append(f"{self.address(host, i)}\t{alias}")
        return "\n".join(lines) + "\n"
