"""Fault injection for :class:`hamod.testing.lab.Lab`: cables, partitions, isolation,
packet loss, and healing — all at the switch (nftables ``bridge`` family rules per port
pair in the switch namespace, link state of the switch ports), so hosts see real faults.
"""

from __future__ import annotations

from collections.abc import Sequence

from hamod.errors import LabError
from hamod.testing import labsys
from hamod.testing.labnet import CLIENT, NFT_CHAIN, NFT_TABLE, SWITCH, Topology


class LabFaults:
    """The fault methods of a lab (a mixin: the lab provides ``topo`` and ``alive``)."""

    name: str

    @property
    def topo(self) -> Topology:
        """The lab's topology."""
        raise NotImplementedError

    def alive(self, host: str) -> bool:
        """Whether ``host`` runs."""
        raise NotImplementedError

    def unplug(self, host: str, net: str) -> None:
        """Pull ``host``'s cable on ``net`` at the switch (the host sees NO-CARRIER)."""
        self._set_port(host, net, "down")

    def plug(self, host: str, net: str) -> None:
        """Plug ``host``'s cable on ``net`` back."""
        self._set_port(host, net, "up")

    def isolate(self, host: str, from_: Sequence[str] | None = None) -> None:
        """Cut ``host`` from the hosts in ``from_`` (default: every other host) on every
        network, both directions; its links stay up (a fault beyond its NIC)."""
        others = [h for h in self.topo.hosts if h != host] if from_ is None else list(from_)
        self.topo.check_host(host)
        rules = []
        for other in others:
            if self.topo.check_host(other) == host:
                raise LabError(f"cannot isolate {host} from itself")
            rules += self.topo.cut_rules(host, other)
        self._add_rules(rules)

    def partition(self, a: str | Sequence[str], b: str | Sequence[str]) -> None:
        """Cut every host of ``a`` from every host of ``b`` on all networks (both
        directions), while everyone still reaches the witness and the client: with
        ``partition("n1", "n2")`` both nodes are alive and see the witness, not each other."""
        side_a, side_b = _hosts(a), _hosts(b)
        if set(side_a) & set(side_b):
            raise LabError(f"partition sides overlap: {sorted(set(side_a) & set(side_b))}")
        self._add_rules(
            [
                rule
                for x in side_a
                for y in side_b
                for rule in self.topo.cut_rules(self.topo.check_host(x), self.topo.check_host(y))
            ]
        )

    def loss(self, host: str, percent: int, direction: str = "both") -> None:
        """Drop ``percent`` % of ``host``'s packets at the switch: ``out`` (what it sends),
        ``in`` (what it receives) or ``both`` (each direction drawn independently, so a
        ping round trip loses about 1-(1-p)² of its packets)."""
        if not 0 <= percent <= 100:
            raise LabError(f"loss percent {percent}: use 0 to 100")
        if direction not in ("out", "in", "both"):
            raise LabError(f"loss direction {direction!r}: use 'out', 'in' or 'both'")
        self._add_rules(self.topo.loss_rules(self.topo.check_host(host), percent, direction))

    def heal(self) -> None:
        """Remove every partition, isolation and loss, and plug back every cable of the
        hosts that are not powered off."""
        topo = self.topo
        sw = topo.netns(SWITCH)
        labsys.nft(sw, f"flush chain bridge {NFT_TABLE} {NFT_CHAIN}\n", what="heal")
        ports = [
            f"link set {topo.port(h, i)} up"
            for h in topo.hosts
            if h == CLIENT or self.alive(h)
            for i in topo.nets_of(h)
        ]
        labsys.ip_batch(sw, ports, what="replug")

    def faults(self) -> list[str]:
        """The fault rules in force in the switch (nft syntax)."""
        out = labsys.run(
            ["ip", "netns", "exec", self.topo.netns(SWITCH), "nft", "list", "chain", "bridge",
             NFT_TABLE, NFT_CHAIN]
        )  # fmt: skip
        return [
            line.strip()
            for line in out.splitlines()
            if line.strip().startswith(("iifname", "oifname"))
        ]

    def _set_port(self, host: str, net: str, state: str) -> None:
        topo = self.topo
        i = topo.net_index(net)
        if i not in topo.nets_of(topo.check_host(host)):
            raise LabError(f"lab {self.name}: {host} is not on {net}")
        if host != CLIENT and not self.alive(host):
            raise LabError(f"lab {self.name}: {host} is powered off (start it first)")
        labsys.ip_batch(topo.netns(SWITCH), [f"link set {topo.port(host, i)} {state}"], net)

    def _add_rules(self, rules: list[str]) -> None:
        script = "".join(f"add rule bridge {NFT_TABLE} {NFT_CHAIN} {r}\n" for r in rules)
        if script:
            labsys.nft(self.topo.netns(SWITCH), script, what="add fault rules")


def _hosts(side: str | Sequence[str]) -> list[str]:
    return [side] if isinstance(side, str) else list(side)
