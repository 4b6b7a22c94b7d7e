"""Probes of this node's own resources, blocking (run them in a worker thread).

- processes: psutil, by exact name (``comm``) or a regular expression searched in the
  command line (the name when the command line is empty), counted against
  ``atleast``/``atmax``; zombies do not count; or the processes a start script's last
  run left running (its session and run marker), optionally filtered the same way;
- interfaces: link state by netlink (admin up, carrier, operstate) in the daemon's own
  network namespace (``/sys/class/net`` would show the namespace sysfs was mounted in).
"""

from __future__ import annotations

import errno
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import psutil

from hamod.adapters.scripts import run_processes
from hamod.checkers.result import Probe
from hamod.config.checkers import ProcessChecker

__all__ = [
    "LinkState",
    "count_processes",
    "count_run_processes",
    "interface_probe",
    "netlink_state",
    "process_probe",
    "run_process_probe",
]

_IFF_UP: Final = 0x1
_DOWN_OPERSTATES: Final = frozenset({"down", "lowerlayerdown", "notpresent"})


def count_processes(name: str | None, regex: str | None) -> int:
    """How many live processes match ``name`` (exact comm) or ``regex`` (cmdline)."""
    pattern = re.compile(regex) if regex is not None else None
    count = 0
    for proc in psutil.process_iter(["name", "cmdline", "status"]):
        info = proc.info
        if info.get("status") == psutil.STATUS_ZOMBIE:
            continue
        pname = info.get("name") or ""
        if pattern is None:
            count += pname == name
            continue
        cmdline = info.get("cmdline") or []
        text = " ".join(cmdline) if cmdline else pname
        count += pattern.search(text) is not None
    return count


def _matches(proc: psutil.Process, name: str | None, pattern: re.Pattern[str] | None) -> bool:
    pname = proc.name()
    if pattern is None:
        return name is None or pname == name
    cmdline = proc.cmdline()
    return pattern.search(" ".join(cmdline) if cmdline else pname) is not None


def count_run_processes(run_id: str, session: int, name: str | None, regex: str | None) -> int:
    """How many live processes a script run left (its session, or its ``HAMOD_RUN_ID``
    marker), matching ``name``/``regex`` when given."""
    pattern = re.compile(regex) if regex is not None else None
    count = 0
    for proc in run_processes(run_id, session):
        try:
            count += _matches(proc, name, pattern)
        except (psutil.Error, OSError):
            continue
    return count


def run_process_probe(cfg: ProcessChecker, run_id: str, session: int) -> Probe:
    """:func:`process_probe` over the processes a script run left running."""
    what = f"{cfg.script}'s processes"
    if cfg.process is not None or cfg.regex is not None:
        what += f" ({cfg.process or '/' + str(cfg.regex) + '/'})"
    return _bounds(cfg, what, count_run_processes(run_id, session, cfg.process, cfg.regex))


def process_probe(cfg: ProcessChecker) -> Probe:
    """Up when between ``atleast`` and ``atmax`` matching processes run."""
    what = f"process {cfg.process}" if cfg.process is not None else f"processes /{cfg.regex}/"
    return _bounds(cfg, what, count_processes(cfg.process, cfg.regex))


def _bounds(cfg: ProcessChecker, what: str, n: int) -> Probe:
    if n < cfg.atleast:
        return Probe.down(f"{what}: {n} running, at least {cfg.atleast} required")
    if cfg.atmax is not None and n > cfg.atmax:
        return Probe.down(f"{what}: {n} running, at most {cfg.atmax} allowed")
    return Probe.up(f"{what}: {n} running")


@dataclass(frozen=True)
class LinkState:
    """What the interface probe reads of a link."""

    admin_up: bool
    carrier: bool
    operstate: str


def netlink_state(interface: str) -> LinkState | None:
    """The link ``interface`` of this thread's network namespace, by netlink (None: no
    such interface)."""
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        try:
            links = ipr.get_links(ifname=interface)
        except Exception as exc:  # pyroute2 raises NetlinkError(19) for a missing name
            if getattr(exc, "code", None) == errno.ENODEV:
                return None
            raise
        if not links:
            return None
        link = links[0]
        return LinkState(
            admin_up=bool(link["flags"] & _IFF_UP),
            carrier=link.get_attr("IFLA_CARRIER") == 1,
            operstate=str(link.get_attr("IFLA_OPERSTATE") or "unknown").lower(),
        )


def interface_probe(
    interface: str, read: Callable[[str], LinkState | None] = netlink_state
) -> Probe:
    """Up when ``interface`` exists, is administratively up and has carrier."""
    st = read(interface)
    if st is None:
        return Probe.down(f"interface {interface}: no such interface")
    if not st.admin_up:
        return Probe.down(f"interface {interface}: administratively down")
    if not st.carrier:
        return Probe.down(f"interface {interface}: no carrier (operstate {st.operstate})")
    if st.operstate in _DOWN_OPERSTATES:
        return Probe.down(f"interface {interface}: operstate {st.operstate}")
    return Probe.up(f"interface {interface}: carrier, operstate {st.operstate}")
