"""keepalived as a failover benchmark target: VRRPv3 between the lab's nodes.

Each node runs ``keepalived -n -l -D --vrrp -f CONF -p PID -r VRRP_PID -c CHK_PID``
inside the node (its network, mount and PID namespaces, via the lab's ``popen``), as
docs/lab.md and the shared LAB notes describe. Both nodes start in ``BACKUP`` state with
the same priority and ``nopreempt``: the first election picks one master, and a node
that was powered off and booted again rejoins as a backup instead of taking the VIP back
(so every run measures exactly one failover: the one we caused). The master announces
the VIP with ``vrrp_garp_master_repeat`` gratuitous ARPs.

Timers: "default" = ``advert_int 1`` (keepalived's default), "tight" and "equal" =
``advert_int 0.1``.
A backup declares the master dead after 3 × advert_int + skew (skew = (256 - priority) /
256 × advert_int): 3.61 s and 0.36 s at priority 100, counted from the last advert it
received, so the outage of a power-off is between that minus one advert_int and that.

State comes from keepalived's own log (``Entering MASTER STATE``) and the VIP's owner
from the lab (``vip_owners``).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from benchmarks.failover.targets import ClusterSpec, TargetUnavailable, check_timers
from hamod.errors import LabError
from hamod.testing.lab import Lab

__all__ = ["ADVERT_INT", "KeepalivedTarget", "render_config"]

ADVERT_INT = {"default": 1.0, "tight": 0.1, "equal": 0.1}
PRIORITY = 100
GARP_REPEAT = 5
ROUTER_ID = 51
NODE_DIR = "/run/hamod-bench"  # tmpfs inside the node: rewritten at every start
_STATE = re.compile(r"\((\w+)\) Entering (\w+) STATE")


def render_config(
    node: str,
    spec: ClusterSpec,
    advert_int: float,
    *,
    src: str | None = None,
    peers: tuple[str, ...] = (),
) -> str:
    """keepalived.conf for ``node``: unicast to ``peers`` from ``src`` when given, else
    multicast (VRRPv3 to 224.0.0.18) on the service interface."""
    unicast = ""
    if src is not None:
        lines = "".join(f"    {p}\n" for p in peers)
        unicast = f"  unicast_src_ip {src}\n  unicast_peer {{\n{lines}  }}\n"
    return (
        "global_defs {\n"
        f"  router_id {node}\n"
        "  vrrp_version 3\n"
        f"  vrrp_garp_master_repeat {GARP_REPEAT}\n"
        "  vrrp_garp_master_delay 1\n"
        "}\n"
        "vrrp_instance VI_1 {\n"
        "  state BACKUP\n"
        "  nopreempt\n"
        f"  interface {spec.interface}\n"
        f"  virtual_router_id {ROUTER_ID}\n"
        f"  priority {PRIORITY}\n"
        f"  advert_int {advert_int:g}\n"
        f"{unicast}"
        "  virtual_ipaddress {\n"
        f"    {spec.vip}/{spec.prefix} dev {spec.interface}\n"
        "  }\n"
        "}\n"
    )


@dataclass
class _Instance:
    proc: subprocess.Popen[str]
    log: Path
    started: float
    logfile: IO[str]

    def running(self) -> bool:
        return self.proc.poll() is None

    def state(self) -> str | None:
        """The last VRRP state keepalived logged (MASTER, BACKUP, FAULT), None before."""
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return None
        found = _STATE.findall(text)
        return found[-1][1] if found else None

    def tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


class KeepalivedTarget:
    """keepalived 2.x VRRP on every node of the lab (see the module docstring)."""

    name = "keepalived"

    def __init__(self, timers: str = "default", *, mode: str = "unicast") -> None:
        if mode not in ("unicast", "multicast"):
            raise ValueError(f"VRRP mode {mode!r}: use unicast or multicast")
        self.timers = check_timers(timers)
        self.mode = mode
        self.advert_int = ADVERT_INT[timers]
        self._lab: Lab | None = None
        self._spec: ClusterSpec | None = None
        self._logs: Path | None = None
        self._instances: dict[str, _Instance] = {}
        self._starts = 0

    @property
    def settings(self) -> str:
        """``advert_int 1 s, unicast``."""
        return f"advert_int {self.advert_int:g} s, {self.mode}"

    @property
    def master_down(self) -> float:
        """How long a backup waits for adverts before it takes over."""
        return 3 * self.advert_int + (256 - PRIORITY) / 256 * self.advert_int

    @property
    def budget(self) -> float:
        """Detection time plus generous slack for a loaded machine."""
        return self.master_down + 5.0

    def setup(self, lab: Lab, spec: ClusterSpec) -> None:
        """Check keepalived is installed; remember the lab and cluster."""
        binary = shutil.which("keepalived")
        if binary is None:
            raise TargetUnavailable("keepalived is not installed (Debian: apt install keepalived)")
        self._lab, self._spec = lab, spec
        self._logs = lab.state_dir / "bench-keepalived"
        self._logs.mkdir(parents=True, exist_ok=True)

    def start(self) -> None:
        """Start keepalived on every running node where it does not run."""
        lab, spec = self._need()
        for node in spec.nodes:
            inst = self._instances.get(node)
            if inst is not None and inst.running():
                continue
            if inst is not None:
                self._close(node)
            if lab.alive(node):
                self._start_node(node)

    def state(self, node: str) -> str | None:
        """keepalived's last logged state on ``node`` (None: not running or no state)."""
        inst = self._instances.get(node)
        if inst is None or not inst.running():
            return None
        return inst.state()

    def primary(self, timeout: float) -> str:
        """Wait until one node is MASTER holding the VIP and every other running node is
        a BACKUP that has run long enough to have heard adverts; return the master."""
        lab, spec = self._need()
        settle = 2 * self.advert_int + 0.3
        deadline = time.monotonic() + timeout
        last = ""
        while True:
            owners = lab.vip_owners(spec.vip)
            states = {n: self.state(n) for n in spec.nodes if lab.alive(n)}
            now = time.monotonic()
            young = [n for n, i in self._instances.items() if now - i.started < settle]
            if (
                len(owners) == 1
                and states.get(owners[0]) == "MASTER"
                and all(s == "BACKUP" for n, s in states.items() if n != owners[0])
                and not young
            ):
                return owners[0]
            last = f"VIP owners {owners or 'none'}, states {states}"
            if now > deadline:
                logs = "\n".join(f"--- {n}:\n{i.tail()}" for n, i in self._instances.items())
                raise LabError(f"keepalived: no stable master after {timeout:g} s: {last}\n{logs}")
            time.sleep(0.05)

    def teardown(self) -> None:
        """SIGTERM every keepalived (each runs in its own process group), then SIGKILL."""
        for node in list(self._instances):
            self._close(node)

    # -- internals --------------------------------------------------------------------

    def _need(self) -> tuple[Lab, ClusterSpec]:
        if self._lab is None or self._spec is None:
            raise LabError("keepalived target: setup() first")
        return self._lab, self._spec

    def _start_node(self, node: str) -> None:
        lab, spec = self._need()
        assert self._logs is not None
        if self.mode == "unicast":
            src = lab.address(node)
            peers = tuple(lab.address(n) for n in spec.nodes if n != node)
            conf = render_config(node, spec, self.advert_int, src=src, peers=peers)
        else:
            conf = render_config(node, spec, self.advert_int)
        lab.exec(node, f"mkdir -p {NODE_DIR} && cat > {NODE_DIR}/keepalived.conf", input=conf)
        self._starts += 1
        log = self._logs / f"{node}-{self._starts}.log"
        logfile = log.open("w")
        argv = [
            "keepalived",
            "-n",
            "-l",
            "-D",
            "--vrrp",
            "-f",
            f"{NODE_DIR}/keepalived.conf",
            "-p",
            f"{NODE_DIR}/keepalived.pid",
            "-r",
            f"{NODE_DIR}/vrrp.pid",
            "-c",
            f"{NODE_DIR}/checkers.pid",
        ]
        proc = lab.popen(node, argv, stdout=logfile, stderr=subprocess.STDOUT)
        self._instances[node] = _Instance(proc, log, time.monotonic(), logfile)

    def _close(self, node: str) -> None:
        inst = self._instances.pop(node)
        if inst.running():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(inst.proc.pid, signal.SIGTERM)
            try:
                inst.proc.wait(timeout=3.0)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(inst.proc.pid, signal.SIGKILL)
                inst.proc.wait(timeout=3.0)
        else:
            inst.proc.wait()
        inst.logfile.close()
