"""Throwaway network namespaces for adapter tests (not the multi-node lab).

Owns creating, wiring (veth pairs) and deleting small ``hmvt-*`` network namespaces,
and answering "can this machine do that at all" with a precise reason. Names are
``hmvt-<creator pid>-<random>-<role>``, so parallel runs never collide and
:func:`sweep_stale` can remove what a killed run left behind without touching a live
run's namespaces. Needs root and the ``ip`` command (iproute2).

    with ThrowawayNetns() as nets:
        a, b = nets.add("a"), nets.add("b")
        nets.veth(a, "eth0", b, "eth0")
        nets.ip(a, "addr", "add", "10.203.0.1/24", "dev", "eth0")
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from hamod.errors import LabError

PREFIX = "hmvt-"
NETNS_DIR = Path("/run/netns")
_NAME = re.compile(rf"^{PREFIX}(\d+)-[0-9a-f]+-")

__all__ = [
    "PREFIX",
    "LinkedPair",
    "ThrowawayNetns",
    "ipv6_unavailable",
    "linked_pair",
    "netns_unavailable",
    "sweep_stale",
]


def _run(*argv: str) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LabError(f"{' '.join(argv)}: {exc}") from exc
    if done.returncode != 0:
        raise LabError(f"{' '.join(argv)}: exit {done.returncode}: {done.stderr.strip()}")
    return done.stdout


_unavailable: list[str | None] = []


def netns_unavailable() -> str | None:
    """None when namespaces with veth pairs can be made here, else the precise reason."""
    if _unavailable:
        return _unavailable[0]
    reason: str | None = None
    if os.geteuid() != 0:
        reason = f"network namespaces need root (running as uid {os.geteuid()})"
    elif shutil.which("ip") is None:
        reason = "the `ip` command (iproute2) is not installed"
    else:
        try:
            with ThrowawayNetns() as nets:
                nets.veth(nets.add("probe-a"), "eth0", nets.add("probe-b"), "eth0")
        except LabError as exc:
            reason = f"cannot create a network namespace with a veth pair: {exc}"
    _unavailable.append(reason)
    return reason


def sweep_stale() -> list[str]:
    """Delete ``hmvt-*`` namespaces whose creating process is gone; return their names."""
    removed: list[str] = []
    if not NETNS_DIR.is_dir():
        return removed
    for entry in sorted(NETNS_DIR.iterdir()):
        match = _NAME.match(entry.name)
        if match is None:
            continue
        pid = int(match.group(1))
        if pid != os.getpid() and Path(f"/proc/{pid}").exists():
            continue
        _run("ip", "netns", "delete", entry.name)
        removed.append(entry.name)
    return removed


class ThrowawayNetns:
    """A set of namespaces deleted together by :meth:`close` (or leaving the ``with``)."""

    def __init__(self) -> None:
        self._stem = f"{PREFIX}{os.getpid()}-{secrets.token_hex(3)}-"
        self._names: list[str] = []

    def __enter__(self) -> ThrowawayNetns:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def names(self) -> tuple[str, ...]:
        """Namespaces created so far, in creation order."""
        return tuple(self._names)

    def add(self, role: str) -> str:
        """Create the namespace for ``role`` with ``lo`` up and IPv6 DAD off; its name."""
        if not re.fullmatch(r"[a-z0-9-]{1,20}", role):
            raise LabError(f"namespace role {role!r}: use 1-20 of [a-z0-9-]")
        name = self._stem + role
        _run("ip", "netns", "add", name)
        self._names.append(name)
        self.ip(name, "link", "set", "lo", "up")
        self.sysctl(name, "net.ipv6.conf.all.accept_dad", "0")
        self.sysctl(name, "net.ipv6.conf.default.accept_dad", "0")
        return name

    def veth(self, ns_a: str, if_a: str, ns_b: str, if_b: str) -> None:
        """A veth pair ``ns_a:if_a`` <-> ``ns_b:if_b``, both ends up; none in the root ns."""
        peer = ("peer", "name", if_b, "netns", ns_b)
        _run("ip", "link", "add", if_a, "netns", ns_a, "type", "veth", *peer)
        self.ip(ns_a, "link", "set", if_a, "up")
        self.ip(ns_b, "link", "set", if_b, "up")

    def ip(self, ns: str, *args: str) -> str:
        """``ip -n NS ARGS``; its standard output."""
        return _run("ip", "-n", ns, *args)

    def ip_json(self, ns: str, *args: str) -> list[dict[str, Any]]:
        """``ip -j -n NS ARGS`` decoded."""
        out = _run("ip", "-j", "-n", ns, *args).strip()
        decoded: list[dict[str, Any]] = json.loads(out) if out else []
        return decoded

    def sysctl(self, ns: str, key: str, value: str) -> None:
        """Set a sysctl inside ``ns``."""
        _run("ip", "netns", "exec", ns, "sysctl", "-q", "-w", f"{key}={value}")

    def mac(self, ns: str, ifname: str) -> str:
        """The link-layer address of ``ifname`` in ``ns`` (lower case)."""
        links = self.ip_json(ns, "link", "show", "dev", ifname)
        return str(links[0]["address"]).lower()

    def neighbour(self, ns: str, addr: str, ifname: str) -> tuple[str, list[str]] | None:
        """``(lladdr, states)`` of the neighbour entry for ``addr`` on ``ifname``, or None."""
        for entry in self.ip_json(ns, "neigh", "show", "to", addr, "dev", ifname):
            if "lladdr" in entry:
                return str(entry["lladdr"]).lower(), [str(s) for s in entry.get("state", [])]
        return None

    def close(self) -> None:
        """Delete every namespace of this set (idempotent); raise after trying them all."""
        failures: list[str] = []
        while self._names:
            name = self._names.pop()
            if not (NETNS_DIR / name).exists():
                continue
            try:
                _run("ip", "netns", "delete", name)
            except LabError as exc:
                failures.append(str(exc))
        if failures:
            raise LabError("; ".join(failures))


@dataclass(frozen=True)
class LinkedPair:
    """Two namespaces joined by ``eth0`` <-> ``eth0``, with one IPv4 and one IPv6 address
    each (``.1`` / ``::1`` in ``a``, ``.2`` / ``::2`` in ``b``)."""

    a: str
    b: str
    v4_a: str
    v4_b: str
    v6_a: str
    v6_b: str
    ifname: str = "eth0"


def linked_pair(nets: ThrowawayNetns, v4: str = "10.203.0", v6: str = "fd03:203::") -> LinkedPair:
    """Make ``a`` and ``b`` in ``nets``, linked, with ``v4.1/24``, ``v4.2/24``, ``v6 1/64``,
    ``v6 2/64`` (IPv6 only when available)."""
    pair = LinkedPair(nets.add("a"), nets.add("b"), f"{v4}.1", f"{v4}.2", f"{v6}1", f"{v6}2")
    nets.veth(pair.a, pair.ifname, pair.b, pair.ifname)
    for ns, four, six in ((pair.a, pair.v4_a, pair.v6_a), (pair.b, pair.v4_b, pair.v6_b)):
        nets.ip(ns, "addr", "add", f"{four}/24", "dev", pair.ifname)
        if ipv6_unavailable() is None:
            nets.ip(ns, "addr", "add", f"{six}/64", "dev", pair.ifname, "nodad")
    return pair


def ipv6_unavailable() -> str | None:
    """None when IPv6 is enabled in new namespaces, else the precise reason."""
    if not Path("/proc/sys/net/ipv6").is_dir():
        return "the kernel has no IPv6 (/proc/sys/net/ipv6 missing)"
    if Path("/proc/sys/net/ipv6/conf/default/disable_ipv6").read_text().strip() == "1":
        return "IPv6 is disabled (net.ipv6.conf.default.disable_ipv6=1)"
    return None
