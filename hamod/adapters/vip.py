"""Virtual IP addresses on this node: add, remove, list and clean up hamod's VIPs.

Owns the netlink side of the VIP (pyroute2), inside one network namespace (a name under
``/run/netns``, or None for the current one). Announcing the VIP to the network is
:mod:`hamod.adapters.announce`'s job. Decides nothing: every operation is an idempotent
``ensure_*`` that returns whether it changed anything.

hamod's VIPs are marked with ``IFA_PROTO`` = :data:`HAMOD_ADDR_PROTO` (IPv4 and IPv6;
Linux >= 6.1), and IPv4 ones also carry the label ``<ifname>:hamod`` when it fits, so
``ip addr`` shows them and :meth:`VipManager.cleanup` finds leftovers after a crash. An
address equal to a VIP but configured by someone else (no mark) is never adopted nor
removed: that is an error naming it. IPv6 VIPs are added with ``IFA_F_NODAD`` so they
are usable at once.

Calls are blocking (a netlink round trip, about a millisecond; opening a namespace's
socket forks once). From asyncio, call them with ``asyncio.to_thread``.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from pathlib import Path
from types import GeneratorType, TracebackType
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from hamod.errors import AdapterError

__all__ = ["AUTO", "HAMOD_ADDR_PROTO", "IPAddress", "Vip", "VipManager", "parse_address"]

HAMOD_ADDR_PROTO = 0x68
"""``IFA_PROTO`` value marking the addresses hamod added (``ip -d addr`` shows ``proto 104``)."""

AUTO = "auto"
IFA_F_NODAD = 0x02
LABEL_SUFFIX = ":hamod"
IFNAMSIZ = 16

IPAddress = IPv4Address | IPv6Address


def parse_address(addr: IPAddress | str) -> IPAddress:
    """``addr`` as an address object; :class:`AdapterError` naming it when invalid."""
    if isinstance(addr, IPv4Address | IPv6Address):
        return addr
    try:
        return ipaddress.ip_address(addr)
    except ValueError as exc:
        raise AdapterError(f"VIP {addr!r}: not an IPv4 or IPv6 address") from exc


@dataclass(frozen=True)
class Vip:
    """A VIP as configured on an interface."""

    addr: IPAddress
    prefixlen: int
    interface: str

    def __str__(self) -> str:
        return f"{self.addr}/{self.prefixlen} on {self.interface}"


@dataclass(frozen=True)
class _Addr:
    """One address as the kernel reports it."""

    addr: IPAddress
    prefixlen: int
    index: int
    ifname: str
    ours: bool

    @property
    def network(self) -> IPv4Network | IPv6Network:
        return ipaddress.ip_network(f"{self.addr}/{self.prefixlen}", strict=False)

    def vip(self) -> Vip:
        return Vip(self.addr, self.prefixlen, self.ifname)


class VipManager:
    """The VIPs of one network namespace. Use as a context manager or call :meth:`close`."""

    def __init__(self, netns: str | None = None) -> None:
        self._netns = netns
        self._ipr: Any = None
        self._lock = threading.Lock()

    def __enter__(self) -> VipManager:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def netns(self) -> str | None:
        return self._netns

    def close(self) -> None:
        """Release the netlink socket (idempotent; the next call reopens it)."""
        with self._lock:
            if self._ipr is not None:
                ipr, self._ipr = self._ipr, None
                ipr.close()

    # -- queries ---------------------------------------------------------------------

    def find(self, addr: IPAddress | str) -> Vip | None:
        """Where ``addr`` is configured (by hamod or not), or None."""
        vip = parse_address(addr)
        for item in self._addresses(f"look up VIP {vip}"):
            if item.addr == vip:
                return item.vip()
        return None

    def is_present(self, addr: IPAddress | str) -> bool:
        """Whether ``addr`` is configured on any interface of the namespace."""
        return self.find(addr) is not None

    def owned_vips(self) -> tuple[Vip, ...]:
        """Every address carrying hamod's mark, sorted."""
        owned = [a.vip() for a in self._addresses("list hamod's VIPs") if a.ours]
        return tuple(sorted(owned, key=lambda v: (v.addr.version, v.addr, v.interface)))

    def resolve_interface(self, addr: IPAddress | str) -> tuple[str, int]:
        """The interface holding an address (not a hamod VIP) whose subnet contains
        ``addr``, with that subnet's prefix length; the longest prefix wins."""
        vip = parse_address(addr)
        return self._subnet_of(vip, self._addresses(f"choose an interface for VIP {vip}"))

    # -- side effects ----------------------------------------------------------------

    def ensure_present(
        self, addr: IPAddress | str, prefixlen: int | None = None, interface: str = AUTO
    ) -> bool:
        """Make ``addr/prefixlen`` a hamod VIP on ``interface``; True if anything changed.

        ``interface="auto"``: the interface carrying an address in the VIP's subnet.
        ``prefixlen=None``: that subnet's prefix length. A hamod VIP with the same address
        elsewhere (other interface or prefix) is moved; a foreign one is an error.
        """
        vip = parse_address(addr)
        what = f"VIP {vip}"
        addrs = self._addresses(f"add {what}")
        if interface == AUTO or prefixlen is None:
            found_if, found_len = self._subnet_of(vip, addrs, interface)
            interface = found_if if interface == AUTO else interface
            prefixlen = found_len if prefixlen is None else prefixlen
        if not 0 < prefixlen <= vip.max_prefixlen:
            raise AdapterError(f"{what}: prefix length {prefixlen} out of 1..{vip.max_prefixlen}")
        index = self._index(interface, what)
        same = [a for a in addrs if a.addr == vip]
        foreign = [a for a in same if not a.ours]
        if foreign:
            raise AdapterError(
                f"{what}: already configured as {foreign[0].vip()} without hamod's mark "
                f"(added by hand or by another tool?); remove it"
            )
        if any(a.index == index and a.prefixlen == prefixlen for a in same):
            return False
        for stale in same:
            self._delete(stale, f"move {what} away from {stale.ifname}")
        self._add(vip, prefixlen, index, interface)
        return True

    def ensure_absent(self, addr: IPAddress | str) -> bool:
        """Remove hamod's VIP ``addr`` from every interface; True if anything changed."""
        vip = parse_address(addr)
        same = [a for a in self._addresses(f"remove VIP {vip}") if a.addr == vip]
        foreign = [a for a in same if not a.ours]
        if foreign:
            raise AdapterError(
                f"VIP {vip}: configured as {foreign[0].vip()} without hamod's mark; "
                f"refusing to remove an address hamod did not add"
            )
        for item in same:
            self._delete(item, f"remove VIP {item.vip()}")
        return bool(same)

    def cleanup(self, known_vips: Iterable[IPAddress | str]) -> tuple[Vip, ...]:
        """Remove every hamod VIP not in ``known_vips`` (leftovers of a crash or an old
        configuration); return what was removed."""
        keep = {parse_address(a) for a in known_vips}
        removed: list[Vip] = []
        for item in self._addresses("clean up hamod's VIPs"):
            if item.ours and item.addr not in keep:
                self._delete(item, f"remove unexpected VIP {item.vip()}")
                removed.append(item.vip())
        return tuple(removed)

    # -- netlink ---------------------------------------------------------------------

    def _where(self) -> str:
        return f"netns {self._netns}" if self._netns else "the current netns"

    def _fail(self, doing: str, exc: BaseException) -> AdapterError:
        if isinstance(exc, NetlinkError):
            code = int(exc.code)
            reason = f"{os.strerror(code)} ({errno.errorcode.get(code, code)})"
        elif isinstance(exc, OSError):
            reason = exc.strerror or str(exc)
        else:
            reason = f"{type(exc).__name__}: {exc}"
        return AdapterError(f"cannot {doing} in {self._where()}: {reason}")

    def _call(self, doing: str, method: str, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            try:
                if self._ipr is None:
                    if self._netns is not None and not (Path("/run/netns") / self._netns).exists():
                        raise AdapterError(
                            f"cannot {doing}: network namespace {self._netns!r} does not exist"
                        )
                    self._ipr = IPRoute(netns=self._netns, flags=0) if self._netns else IPRoute()
                result = getattr(self._ipr, method)(*args, **kwargs)
                # Materialize lazy answers so netlink errors surface here, under the lock.
                return tuple(result) if isinstance(result, GeneratorType) else result
            except AdapterError:
                raise
            except (NetlinkError, OSError) as exc:
                raise self._fail(doing, exc) from exc

    def _addresses(self, doing: str) -> list[_Addr]:
        names = {
            int(link["index"]): str(link.get("IFLA_IFNAME"))
            for link in self._call(doing, "get_links")
        }
        found: list[_Addr] = []
        for msg in self._call(doing, "get_addr"):
            raw = msg.get("IFA_LOCAL") or msg.get("IFA_ADDRESS")
            if raw is None:
                continue
            index = int(msg["index"])
            found.append(
                _Addr(
                    addr=ipaddress.ip_address(str(raw).split("%")[0]),
                    prefixlen=int(msg["prefixlen"]),
                    index=index,
                    ifname=names.get(index, f"if{index}"),
                    ours=msg.get("IFA_PROTO") == HAMOD_ADDR_PROTO,
                )
            )
        return found

    def _subnet_of(
        self, vip: IPAddress, addrs: list[_Addr], interface: str = AUTO
    ) -> tuple[str, int]:
        matches = [
            a
            for a in addrs
            if not a.ours
            and a.addr.version == vip.version
            and a.addr != vip
            and vip in a.network
            and interface in (AUTO, a.ifname)
        ]
        if not matches:
            on = "any interface" if interface == AUTO else f"interface {interface}"
            raise AdapterError(
                f"VIP {vip}: no address of {on} in {self._where()} has a subnet "
                f"containing it; configure the node's own address in that subnet first "
                f"or name the interface and prefix length"
            )
        best = max(a.prefixlen for a in matches)
        winners = sorted({a.ifname for a in matches if a.prefixlen == best})
        if len(winners) > 1:
            raise AdapterError(
                f"VIP {vip}: several interfaces hold its subnet /{best} "
                f"({', '.join(winners)}); name the interface"
            )
        return winners[0], best

    def _index(self, interface: str, what: str) -> int:
        if not interface or len(interface) >= IFNAMSIZ or "/" in interface:
            raise AdapterError(f"{what}: invalid interface name {interface!r}")
        found = self._call(f"look up interface {interface}", "link_lookup", ifname=interface)
        if not found:
            raise AdapterError(f"{what}: interface {interface!r} not found in {self._where()}")
        return int(found[0])

    def _add(self, vip: IPAddress, prefixlen: int, index: int, interface: str) -> None:
        extra: dict[str, Any] = {}
        if vip.version == 6:
            extra["flags"] = IFA_F_NODAD
        elif len(interface) + len(LABEL_SUFFIX) < IFNAMSIZ:
            extra["label"] = interface + LABEL_SUFFIX
        self._call(
            f"add VIP {vip}/{prefixlen} on {interface}",
            "addr",
            "add",
            index=index,
            address=str(vip),
            prefixlen=prefixlen,
            proto=HAMOD_ADDR_PROTO,
            **extra,
        )

    def _delete(self, item: _Addr, doing: str) -> None:
        try:
            self._call(
                doing,
                "addr",
                "del",
                index=item.index,
                address=str(item.addr),
                prefixlen=item.prefixlen,
            )
        except AdapterError as exc:
            # Removed concurrently (by the kernel with its interface, or by a peer call):
            # the goal is reached.
            if isinstance(exc.__cause__, NetlinkError) and exc.__cause__.code in (
                errno.EADDRNOTAVAIL,
                errno.ENODEV,
            ):
                return
            raise
