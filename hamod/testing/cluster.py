"""A hamod cluster deployed on the namespace lab, exactly as docs/daemon-contract.md says a
real host is set up, without Ansible: the acceptance tests and the benchmarks use it
(``scripts/demo`` and Molecule deploy with the playbooks instead, docs/ansible.md).

::

    with Lab("t", nodes=2) as lab:
        cluster = LabCluster(lab, [ModuleSpec("demo", pulse="100ms", timeout="1s")]).up()
        cluster.hamod("n1", "start", "-m", "demo")
        cluster.wait_state("n1", "demo", "WAIT", timeout=10)
        probe = cluster.probe("demo")
        cluster.power_off("n1")
        cluster.wait_state("n2", "demo", "ALONE", timeout=10)
        print(probe.stop().outage)

What :meth:`LabCluster.up` does on each node (files under ``/etc/hamod``, the contract's
layout): the cluster file built from the lab topology (net0 = service network carrying the
VIPs, net1 = second heartbeat network and replication network, ``net0v6`` = an IPv6
subnet on net0's cables when a module has IPv6 VIPs), the cluster key, the CA and the
node's certificate (made with :mod:`hamod.adapters.pki`), one module file per
:class:`ModuleSpec` and its scripts (:mod:`hamod.testing.cluster_files`: every script
appends ``<script> <args>`` to ``/var/log/hamod-lab/<module>.journal``; ``start_prim``
starts the trivial service of :mod:`hamod.testing.outage`, ``stop_prim`` stops it); then
``hamod witness serve`` on the witness host when the witness is the arbitrator, and
``hamod service start`` on every node.

Helpers: :meth:`~LabCluster.hamod` (the CLI inside a node), :meth:`~LabCluster.state`
(``hamod state -m M --json`` parsed into :class:`~hamod.api.models.ModuleStatus`),
:meth:`~LabCluster.wait_state`, :meth:`~LabCluster.journal`, :meth:`~LabCluster.probe`
(the client's outage probe against a VIP), :class:`VipWatch` (who holds a VIP, sampled
every few ms from /proc, for ordering assertions), :meth:`~LabCluster.power_off` /
:meth:`~LabCluster.boot`, :meth:`~LabCluster.diagnose` (states and log tails for
assertion messages).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hamod.api.models import ModuleStatus, Phase, State
from hamod.errors import LabError
from hamod.testing.cluster_files import (
    ETC,
    JOURNAL_DIR,
    LAB_RUN_DIR,
    SCRIPTS,
    WITNESS_PORT,
    ModuleSpec,
    NodeAddresses,
    Pki,
    make_pki,
    render_cluster,
    render_module,
    render_script,
    service_pidfile,
)
from hamod.testing.lab import Lab
from hamod.testing.outage import Analysis, LiveProbe, analyze

__all__ = [
    "PYTHON",
    "ClusterError",
    "LabCluster",
    "ModuleSpec",
    "Probe",
    "VipWatch",
    "daemon_missing",
]

#: The interpreter that runs hamod inside the nodes (``/usr`` and ``/work`` are shared).
PYTHON = sys.executable
HAMOD = (PYTHON, "-m", "hamod")
WITNESS_DIR = "/etc/hamod/witness"
WITNESS_PIDFILE = f"{LAB_RUN_DIR}/witness.pid"
WITNESS_LOG = "/var/log/hamod/witness.log"
WITNESS_STATE = "/var/lib/hamod/witness.json"
SERVING = frozenset({State.ALONE, State.PRIM, State.SECOND, State.UP})

_WRITER = r"""
import json, os, sys
for path, (mode, text) in json.load(sys.stdin).items():
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.chmod(tmp, int(mode, 8))
    os.replace(tmp, path)
"""


class ClusterError(AssertionError):
    """A cluster expectation failed (a state not reached in time, a CLI error); the
    message carries the states and log tails of every node."""


def _ms(text: str) -> float:
    """``"700ms"``/``"1s"``/``"1.5s"`` → seconds."""
    if text.endswith("ms"):
        return float(text[:-2]) / 1000
    if text.endswith("s"):
        return float(text[:-1])
    if text.endswith("m"):
        return float(text[:-1]) * 60
    raise ValueError(f"duration {text!r}")


class LabCluster:
    """A hamod cluster on ``lab``'s nodes (see the module docstring)."""

    def __init__(
        self,
        lab: Lab,
        modules: Sequence[ModuleSpec] = (ModuleSpec(),),
        *,
        witness: str = "arbitrator",
        name: str = "lab",
        watchdog: bool = True,
    ) -> None:
        if witness not in ("arbitrator", "ping", "none"):
            raise ValueError(f"witness {witness!r}: use arbitrator, ping or none")
        self.lab = lab
        self.modules = {m.name: m for m in modules}
        self.witness = witness
        self.name = name
        self.watchdog = watchdog
        self.ipv6 = any(m.vips6 for m in modules)
        self.vips: dict[str, list[str]] = {}
        v4 = v6 = 0
        for m in modules:
            addrs = []
            for _ in range(m.vips):
                addrs.append(lab.free_address(v4))
                v4 += 1
            for _ in range(m.vips6):
                addrs.append(self.free_address6(v6))
                v6 += 1
            self.vips[m.name] = addrs
        self.pki: Pki | None = None

    # -- topology ------------------------------------------------------------------------

    @property
    def nodes(self) -> tuple[str, ...]:
        """The lab's nodes (all are cluster nodes)."""
        return self.lab.node_names

    def _v6_prefix(self) -> str:
        return f"fd48:0:{self.lab.topo.slot:x}::"

    def address6(self, host: str) -> str:
        """``host``'s IPv6 address on net0 (only configured when a module has IPv6 VIPs):
        the lab's IPv4 host number in the lab's ULA /64."""
        last = self.lab.address(host).rsplit(".", 1)[1]
        return f"{self._v6_prefix()}{last}"

    def free_address6(self, index: int = 0) -> str:
        """An IPv6 address on net0 no host has (for IPv6 VIPs)."""
        return f"{self._v6_prefix()}{200 + index}"

    def subnets(self) -> dict[str, str]:
        """Cluster network name → subnet."""
        topo = self.lab.topo
        out = {f"net{i}": topo.subnet(i) for i in range(topo.networks)}
        if self.ipv6:
            out["net0v6"] = f"{self._v6_prefix()}/64"
        return out

    def node_addresses(self, node: str) -> dict[str, str]:
        """Cluster network name → ``node``'s address."""
        out = dict(self.lab.topo.addresses(node))
        if self.ipv6:
            out["net0v6"] = self.address6(node)
        return out

    def vip(self, module: str = "demo", index: int = 0) -> str:
        """The ``index``-th VIP of ``module`` (IPv4 ones first, then IPv6)."""
        return self.vips[module][index]

    # -- rendering -----------------------------------------------------------------------

    def cluster_file(self) -> str:
        """The cluster file (same on every node)."""
        nodes = [NodeAddresses(n, self.node_addresses(n)) for n in self.nodes]
        return render_cluster(
            self.name, self.subnets(), nodes, self.witness, self.lab.address("witness")
        )

    def module_file(self, module: str, **changes: Any) -> str:
        """The module file of ``module`` (``changes``: fields of :class:`ModuleSpec` to
        override, e.g. ``timeout="2s"`` to make a mismatching node)."""
        spec = self.modules[module]
        if changes:
            spec = _replace(spec, **changes)
        return render_module(spec, self.vips[module])

    def node_files(self, node: str) -> dict[str, tuple[str, str]]:
        """Every file of ``node``: path → (octal mode, text)."""
        if self.pki is None:
            addrs = {n: list(self.node_addresses(n).values()) for n in self.nodes}
            self.pki = make_pki(self.name, addrs)
        files = {
            f"{ETC}/cluster.yaml": ("644", self.cluster_file()),
            f"{ETC}/node": ("644", node + "\n"),
            f"{ETC}/cluster.key": ("600", self.pki.cluster_key),
            f"{ETC}/tls/ca.crt": ("644", self.pki.ca_cert),
            f"{ETC}/tls/node.crt": ("644", self.pki.node_cert[node]),
            f"{ETC}/tls/node.key": ("600", self.pki.node_key[node]),
        }
        for name, spec in self.modules.items():
            files[f"{ETC}/modules/{name}.yaml"] = ("644", self.module_file(name))
            for script in SCRIPTS:
                files[f"{ETC}/modules/{name}/scripts/{script}"] = (
                    "755",
                    render_script(script, spec, PYTHON),
                )
        return files

    # -- deployment ----------------------------------------------------------------------

    def write_files(self, host: str, files: Mapping[str, tuple[str, str]]) -> None:
        """Write ``files`` (path → (mode, text)) inside ``host``, atomically, one exec."""
        self.lab.exec(host, [PYTHON, "-c", _WRITER], input=json.dumps(dict(files)))

    def deploy(self, nodes: Iterable[str] | None = None) -> None:
        """Write the cluster's files on ``nodes`` (default all) and the witness's key."""
        for node in self.nodes if nodes is None else nodes:
            self.write_files(node, self.node_files(node))
        if self.witness == "arbitrator":
            assert self.pki is not None or nodes is not None
            if self.pki is not None:
                key = {f"{WITNESS_DIR}/keys/{self.name}.key": ("600", self.pki.cluster_key)}
                self.write_files("witness", key)

    def configure_network(self, host: str) -> None:
        """Per-boot network setup the lab does not do itself: IPv6 on net0 (when used)."""
        if not self.ipv6:
            return
        addr = self.address6(host)
        self.lab.exec(
            host,
            f"ip -6 addr replace {addr}/64 dev eth0 nodad",
        )

    def up(self) -> LabCluster:
        """Deploy, start the witness (arbitrator) and ``hamod service start`` everywhere."""
        self.deploy()
        for host in ("client", *self.nodes):
            self.configure_network(host)
        if self.witness == "arbitrator":
            self.start_witness()
        for node in self.nodes:
            self.start_service(node)
        return self

    # -- the witness -----------------------------------------------------------------------

    def start_witness(self, timeout: float = 10.0) -> None:
        """``hamod witness serve`` on the witness host, detached (pid file in
        /run/hamod-lab, log in /var/log/hamod/witness.log); returns once it listens."""
        hamod = " ".join(shlex.quote(a) for a in HAMOD)
        inner = (
            f"echo $$ > {WITNESS_PIDFILE}; exec {hamod} witness serve "
            f"--listen 0.0.0.0:{WITNESS_PORT} --keys {WITNESS_DIR}/keys "
            f"--state {WITNESS_STATE} >>{WITNESS_LOG} 2>&1"
        )
        self.lab.exec(
            "witness",
            f"mkdir -p {LAB_RUN_DIR} /var/log/hamod /var/lib/hamod && "
            f"setsid -f sh -c {shlex.quote(inner)} </dev/null >/dev/null 2>&1",
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = self.lab.exec("witness", ["ss", "-Hunl", f"sport = :{WITNESS_PORT}"]).stdout
            if out.strip():
                return
            time.sleep(0.05)
        raise ClusterError(f"the witness did not listen in {timeout} s:\n{self.witness_log()}")

    def witness_pid(self) -> int | None:
        """PID (in the witness's PID namespace) of the arbitrator, None when not running."""
        out = self.lab.exec(
            "witness",
            f"p=$(cat {WITNESS_PIDFILE} 2>/dev/null) && kill -0 $p 2>/dev/null && echo $p",
            check=False,
        ).stdout.strip()
        return int(out) if out else None

    def stop_witness(self, sig: int = signal.SIGTERM) -> None:
        """Stop the arbitrator (``SIGKILL``: a crash) and wait until it is gone."""
        pid = self.witness_pid()
        if pid is None:
            return
        self.lab.exec("witness", ["kill", f"-{int(sig)}", str(pid)], check=False)
        deadline = time.monotonic() + 10
        while self.witness_pid() is not None and time.monotonic() < deadline:
            time.sleep(0.05)

    def restart_witness(self, sig: int = signal.SIGKILL) -> None:
        """Kill the arbitrator and start it again (its grants are durable)."""
        self.stop_witness(sig)
        self.start_witness()

    def witness_log(self, lines: int = 30) -> str:
        """The arbitrator's log tail."""
        return self.lab.exec("witness", f"tail -n {lines} {WITNESS_LOG}", check=False).stdout

    # -- the daemons ---------------------------------------------------------------------

    def start_service(self, node: str, timeout: float = 30.0) -> None:
        """``hamod service start`` in ``node``; returns once ``hamod state`` answers."""
        args = ["service", "start"] + ([] if self.watchdog else ["--no-watchdog"])
        res = self.hamod(node, *args, timeout=timeout)
        if res.returncode != 0:
            raise ClusterError(
                f"{node}: hamod service start: exit {res.returncode}: "
                f"{(res.stderr or res.stdout).strip()}\n{self.daemon_log(node)}"
            )
        deadline = time.monotonic() + timeout
        while True:
            res = self.hamod(node, "state", "--json")
            if res.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise ClusterError(
                    f"{node}: the daemon's API did not answer within {timeout} s: "
                    f"{res.stderr.strip()}\n{self.daemon_log(node)}"
                )
            time.sleep(0.1)

    def stop_service(self, node: str) -> subprocess.CompletedProcess[str]:
        """``hamod service stop`` in ``node`` (stops the modules gracefully first)."""
        return self.hamod(node, "service", "stop", timeout=120)

    def daemon_pid(self, node: str) -> int | None:
        """The daemon's PID in ``node`` (from /run/hamod/daemon.pid), None if not running."""
        return self._pid(node, "/run/hamod/daemon.pid")

    def watchdog_pid(self, node: str) -> int | None:
        """The watchdog's PID in ``node``, None if not running."""
        return self._pid(node, "/run/hamod/watchdog.pid")

    def _pid(self, node: str, pidfile: str) -> int | None:
        out = self.lab.exec(
            node,
            f"read p _ < {pidfile} 2>/dev/null && [ -r /proc/$p/stat ] && "
            f"[ \"$(cut -d' ' -f3 /proc/$p/stat)\" != Z ] && echo $p",
            check=False,
        ).stdout.strip()
        return int(out) if out.isdigit() else None

    def kill_daemon(self, node: str, sig: int = signal.SIGKILL) -> int:
        """Send ``sig`` to the daemon of ``node`` (not the watchdog); returns its PID."""
        pid = self.daemon_pid(node)
        if pid is None:
            raise ClusterError(f"{node}: no daemon runs\n{self.daemon_log(node)}")
        self.lab.exec(node, ["kill", f"-{int(sig)}", str(pid)])
        deadline = time.monotonic() + 10
        while self.daemon_pid(node) == pid and time.monotonic() < deadline:
            time.sleep(0.02)
        return pid

    # -- nodes ---------------------------------------------------------------------------

    def power_off(self, node: str) -> float:
        """Power ``node`` off like a dead machine: every cable out first, then the lab's
        ``kill`` (SIGKILL of PID 1; /run is lost). Returns the monotonic time of the fault
        (the first cable pulled)."""
        fault = time.monotonic()
        for i in self.lab.topo.nets_of(node):
            self.lab.unplug(node, f"net{i}")
        self.lab.kill(node)
        return fault

    def boot(self, node: str, *, service: bool = True) -> None:
        """Boot ``node`` again (files kept), configure its network, and (``service``)
        start hamod on it, as a boot script of a real host would."""
        self.lab.start(node)
        self.configure_network(node)
        if service:
            self.start_service(node)

    # -- the CLI -------------------------------------------------------------------------

    def hamod(
        self, node: str, *args: str, timeout: float = 30.0
    ) -> subprocess.CompletedProcess[str]:
        """Run ``hamod ARGS`` inside ``node``; never raises for a non-zero exit."""
        return self.lab.exec(node, [*HAMOD, *args], check=False, timeout=timeout)

    def must(self, node: str, *args: str, timeout: float = 30.0) -> str:
        """Run ``hamod ARGS`` inside ``node``; :class:`ClusterError` unless it exits 0.
        Returns its standard output."""
        res = self.hamod(node, *args, timeout=timeout)
        if res.returncode != 0:
            module = _module_arg(args)
            raise ClusterError(
                f"{node}: hamod {' '.join(args)}: exit {res.returncode}: "
                f"{(res.stderr or res.stdout).strip()}\n{self.diagnose(module)}"
            )
        return res.stdout

    def state(self, node: str, module: str = "demo") -> ModuleStatus:
        """``hamod state -m MODULE --json`` in ``node``, parsed."""
        res = self.hamod(node, "state", "-m", module, "--json")
        if res.returncode != 0:
            raise ClusterError(
                f"{node}: hamod state -m {module} --json: exit {res.returncode}: "
                f"{(res.stderr or res.stdout).strip()}"
            )
        try:
            data = json.loads(res.stdout)
        except ValueError as exc:
            raise ClusterError(f"{node}: hamod state --json: not JSON: {res.stdout!r}") from exc
        items = data if isinstance(data, list) else [data]
        for item in items:
            status = ModuleStatus.model_validate(item)
            if status.module == module:
                return status
        raise ClusterError(f"{node}: hamod state --json: no module {module}: {res.stdout!r}")

    def try_state(self, node: str, module: str = "demo") -> ModuleStatus | None:
        """:meth:`state`, or None when the node is off or its daemon does not answer."""
        if not self.lab.alive(node):
            return None
        try:
            return self.state(node, module)
        except (ClusterError, LabError):
            return None

    def states(self, module: str = "demo") -> dict[str, ModuleStatus | None]:
        """Every node's status of ``module`` (None: off or not answering)."""
        return {n: self.try_state(n, module) for n in self.nodes}

    def wait_state(
        self,
        node: str,
        module: str,
        state: str | State,
        timeout: float = 30.0,
        *,
        ready: bool | None = None,
        interval: float = 0.05,
    ) -> ModuleStatus:
        """Poll until ``module`` is in ``state`` on ``node`` (and, for ALONE, PRIM,
        SECOND and UP unless ``ready=False``, in phase READY: scripts done); returns the
        status. :class:`ClusterError` with every node's state and logs on timeout."""
        want = State(state)
        need_ready = want in SERVING if ready is None else ready
        deadline = time.monotonic() + timeout
        last: ModuleStatus | None = None
        while True:
            last = self.try_state(node, module)
            if (
                last is not None
                and last.state is want
                and (not need_ready or last.phase is Phase.READY)
            ):
                return last
            if time.monotonic() > deadline:
                shown = "no answer" if last is None else f"{last.state}/{last.phase}"
                raise ClusterError(
                    f"{node}: {module} not {want}{' READY' if need_ready else ''} after "
                    f"{timeout:g} s (last: {shown})\n{self.diagnose(module)}"
                )
            time.sleep(interval)

    def wait_states(
        self, module: str, expected: Mapping[str, str | State], timeout: float = 30.0
    ) -> dict[str, ModuleStatus]:
        """:meth:`wait_state` for every ``node: state`` of ``expected`` (same deadline)."""
        deadline = time.monotonic() + timeout
        out: dict[str, ModuleStatus] = {}
        while True:
            try:
                for node, want in expected.items():
                    left = max(0.0, deadline - time.monotonic())
                    out[node] = self.wait_state(node, module, want, timeout=left)
                # all reached; check again that the earlier ones still hold
                again = {n: self.try_state(n, module) for n in expected}
                if all(s is not None and s.state is State(expected[n]) for n, s in again.items()):
                    return out
            except ClusterError:
                if time.monotonic() > deadline:
                    raise
            if time.monotonic() > deadline:
                raise ClusterError(
                    f"{module}: not {dict(expected)} after {timeout:g} s\n{self.diagnose(module)}"
                )

    def hold_state(
        self, node: str, module: str, state: str | State, seconds: float
    ) -> ModuleStatus:
        """Assert ``module`` stays in ``state`` on ``node`` for ``seconds``."""
        want = State(state)
        end = time.monotonic() + seconds
        last = None
        while True:
            last = self.try_state(node, module)
            if last is None or last.state is not want:
                shown = "no answer" if last is None else f"{last.state}/{last.phase}"
                raise ClusterError(
                    f"{node}: {module} left {want} (now {shown})\n{self.diagnose(module)}"
                )
            if time.monotonic() > end:
                return last
            time.sleep(0.1)

    def command(self, node: str, module: str, command: str, *args: str,
                retry: float = 5.0) -> str:  # fmt: skip
        """``hamod COMMAND -m MODULE ARGS`` in ``node``; a refusal is retried for
        ``retry`` seconds (a command right after a state change may find the module not
        settled yet, e.g. prestart still running), then :class:`ClusterError`."""
        deadline = time.monotonic() + retry
        while True:
            res = self.hamod(node, command, "-m", module, *args)
            if res.returncode == 0:
                return res.stdout + res.stderr
            if res.returncode != 1 or time.monotonic() > deadline:
                raise ClusterError(
                    f"{node}: hamod {command} -m {module} {' '.join(args)}: exit "
                    f"{res.returncode}: {(res.stderr or res.stdout).strip()}\n"
                    f"{self.diagnose(module)}"
                )
            time.sleep(0.2)

    def establish(self, module: str = "demo", primary: str = "n1", timeout: float = 30.0) -> None:
        """The usual first start: ``start`` on ``primary`` (WAIT), ``prim`` there (ALONE),
        then ``start`` on the other node; returns when ``primary`` is PRIM and the other
        SECOND, both READY."""
        (other,) = [n for n in self.modules[module].nodes if n != primary]
        self.command(primary, module, "start")
        self.wait_state(primary, module, State.WAIT, timeout)
        self.command(primary, module, "prim")
        self.wait_state(primary, module, State.ALONE, timeout)
        self.command(other, module, "start")
        self.wait_states(module, {primary: State.PRIM, other: State.SECOND}, timeout)

    # -- observations --------------------------------------------------------------------

    def journal(self, node: str, module: str = "demo") -> list[str]:
        """The scripts that ran on ``node`` for ``module``, in order: ``<script> <args>``
        lines (kept across power-offs; readable while the node is off)."""
        return self.read(node, f"{JOURNAL_DIR}/{module}.journal").splitlines()

    def journal_ts(self, node: str, module: str = "demo") -> list[tuple[float, str]]:
        """:meth:`journal` with each line's time (seconds of the machine's uptime, one
        clock for every node: compare across nodes)."""
        out = []
        for line in self.read(node, f"{JOURNAL_DIR}/{module}.journal.ts").splitlines():
            t, _, rest = line.partition(" ")
            with contextlib.suppress(ValueError):
                out.append((float(t), rest))
        return out

    def service_pid(self, node: str, module: str = "demo") -> int | None:
        """PID of the module's trivial service on ``node`` if it runs (pid file + /proc)."""
        return self._pid(node, service_pidfile(module))

    def _host_path(self, node: str, path: str) -> Path | None:
        """``path`` inside a running ``node``, seen from here (through /proc/PID1/root)."""
        try:
            pid = self.lab.enter_command(node)[2]
        except LabError:
            return None
        return Path(f"/proc/{pid}/root{path}")

    def read(self, node: str, path: str) -> str:
        """A file inside ``node`` ('' when missing). While the node is off, files under
        its overlaid directories (/etc, /var...) are read from the overlay's upper
        directory (what the node wrote; files it never wrote read as missing)."""
        p = self._host_path(node, path)
        if p is None:
            p = self.lab.state_dir / "hosts" / node / "upper" / path.lstrip("/")
        try:
            return p.read_text(errors="replace")
        except OSError:
            return ""

    def module_log(self, node: str, module: str = "demo") -> str:
        """``/var/log/hamod/<module>.log`` of ``node``."""
        return self.read(node, f"/var/log/hamod/{module}.log")

    def daemon_log(self, node: str, lines: int = 30) -> str:
        """Tails of daemon.log and watchdog.log of ``node``."""
        out = []
        for name in ("daemon", "watchdog"):
            text = _quiet(self.read(node, f"/var/log/hamod/{name}.log"))[-lines:]
            out.append(f"--- {node}:/var/log/hamod/{name}.log\n" + "\n".join(text))
        return "\n".join(out)

    def vip_owners(self, module: str = "demo", index: int = 0) -> list[str]:
        """The running nodes holding ``module``'s ``index``-th VIP."""
        return self.lab.vip_owners(self.vip(module, index))

    def vip_owner(self, module: str = "demo", index: int = 0) -> str | None:
        """The node holding ``module``'s VIP (None: nobody; LabError: several)."""
        return self.lab.vip_owner(self.vip(module, index))

    def diagnose(self, module: str | None = None, lines: int = 25) -> str:
        """States, VIP owners, journals and log tails of every node, for failure messages."""
        mods = [module] if module else list(self.modules)
        out = []
        for m in mods:
            for node in self.nodes:
                st = self.try_state(node, m)
                shown = (
                    "off/no answer"
                    if st is None
                    else f"{st.state}/{st.phase} up_to_date={st.up_to_date} term={st.term} "
                    f"peer={st.peer}:{st.peer_state} degraded={st.degraded} "
                    f"reason={st.reason!r}"
                )
                out.append(f"{node} {m}: {shown}")
            with contextlib.suppress(LabError):
                out.append(
                    f"{m} VIPs: "
                    + ", ".join(
                        f"{v} on {self.lab.vip_owners(v) or 'nobody'}" for v in self.vips[m]
                    )
                )
            for node in self.nodes:
                out.append(f"--- {node}: journal {m}: {self.journal(node, m)}")
                tail = _quiet(self.module_log(node, m))[-lines:]
                out.append(f"--- {node}:/var/log/hamod/{m}.log\n" + "\n".join(tail))
                dp = self.read(node, f"/var/log/hamod/{m}/datapath.log").splitlines()[-lines:]
                if dp:
                    out.append(f"--- {node}:/var/log/hamod/{m}/datapath.log\n" + "\n".join(dp))
        for node in self.nodes:
            out.append(self.daemon_log(node, lines=10))
        if self.witness == "arbitrator":
            out.append("--- witness log\n" + self.witness_log(10))
        return "\n".join(out)

    # -- the client ----------------------------------------------------------------------

    def probe(
        self,
        module: str = "demo",
        index: int = 0,
        *,
        timeout: float = 0.05,
        interval: float = 0.01,
    ) -> Probe:
        """Start the outage probe in the client namespace against ``module``'s VIP."""
        addr = self.vip(module, index)
        port = self.modules[module].port
        target = f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"
        return Probe(self.lab, target, timeout=timeout, interval=interval)

    def vip_watch(self, module: str = "demo", index: int = 0) -> VipWatch:
        """Start a :class:`VipWatch` on ``module``'s VIP."""
        return VipWatch(self, self.vip(module, index))

    def timers(self, module: str = "demo") -> tuple[float, float, float]:
        """``(pulse, timeout, lease)`` of ``module`` in seconds (lease defaults to
        timeout / 2, as the daemon derives it)."""
        spec = self.modules[module]
        pulse, timeout = _ms(spec.pulse), _ms(spec.timeout)
        lease = _ms(spec.lease) if spec.lease else timeout / 2
        return pulse, timeout, lease


_ROUTINE = ("[renew_lease]", "[lease_renewed]")


def _quiet(text: str) -> list[str]:
    """Log lines without the routine ones (a lease renewal every pulse)."""
    return [ln for ln in text.splitlines() if not any(r in ln for r in _ROUTINE)]


def daemon_missing() -> str | None:
    """Why the hamod daemon cannot run here yet, or None (for skips with a reason)."""
    import importlib.util

    if importlib.util.find_spec("hamod.runtime.daemon") is None:
        return "the hamod daemon does not exist yet (no hamod.runtime.daemon)"
    res = subprocess.run([*HAMOD, "service", "--help"], capture_output=True, text=True, check=False)
    if res.returncode != 0:
        return f"`hamod service` is not available: {(res.stderr or res.stdout).strip()[:200]}"
    return None


def _module_arg(args: Sequence[str]) -> str | None:
    for i, a in enumerate(args[:-1]):
        if a == "-m":
            return args[i + 1]
    return None


def _replace(spec: ModuleSpec, **changes: Any) -> ModuleSpec:
    from dataclasses import replace

    return replace(spec, **changes)


class Probe(LiveProbe):
    """The outage probe (:mod:`hamod.testing.outage`) running in the lab's client
    namespace; samples arrive live. :meth:`stop` returns the analysis."""

    def wait_answer(self, node: str, timeout: float = 10.0, since: float | None = None,
                    count: int = 5) -> bool:  # fmt: skip
        """Wait until ``node`` answered ``count`` requests started after ``since``."""
        t0 = self.started if since is None else since
        return self.wait_for(
            lambda s: sum(1 for x in s if x.ok and x.node == node and x.mono >= t0) >= count,
            timeout,
        )

    def answered_by(self, since: float | None = None) -> list[str]:
        """Distinct answering nodes since ``since``, in order of first answer."""
        t0 = self.started if since is None else since
        return list(dict.fromkeys(s.node for s in self.samples if s.ok and s.mono >= t0 and s.node))

    def stop(self, window: float = 0.5) -> Analysis:
        """Stop the probe and analyse everything it saw."""
        self.terminate()
        self.close()
        return self.analysis(window=window)

    def analysis(self, *, since: float | None = None, window: float = 0.5) -> Analysis:
        """:func:`hamod.testing.outage.analyze` of the samples (from ``since``)."""
        return analyze(self.samples, since=since, window=window)

    def __enter__(self) -> Probe:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass(frozen=True)
class VipEvent:
    """The set of nodes holding the VIP changed at ``mono``."""

    mono: float
    owners: tuple[str, ...]


class VipWatch:
    """Who holds a VIP, sampled every ``interval`` seconds straight from each node's
    /proc (``net/fib_trie`` for IPv4 local addresses, ``net/if_inet6`` for IPv6): cheap
    enough to run during a failover, precise enough to order "n1 dropped it" before "n2
    added it". :attr:`events` lists the changes."""

    def __init__(self, cluster: LabCluster, addr: str, interval: float = 0.005) -> None:
        self.cluster = cluster
        self.addr = ipaddress.ip_address(addr)
        self.interval = interval
        self.events: list[VipEvent] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _holds(self, node: str) -> bool:
        base = self.cluster._host_path(node, "")
        if base is None:
            return False
        pid = str(base).split("/")[2]
        try:
            if self.addr.version == 4:
                text = Path(f"/proc/{pid}/net/fib_trie").read_text()
                return _fib_local(text, str(self.addr))
            want = self.addr.packed.hex()
            for line in Path(f"/proc/{pid}/net/if_inet6").read_text().splitlines():
                if line.split()[0] == want:
                    return True
        except OSError:
            return False
        return False

    def owners(self) -> tuple[str, ...]:
        """The nodes holding the address now."""
        return tuple(n for n in self.cluster.nodes if self._holds(n))

    def _run(self) -> None:
        last: tuple[str, ...] | None = None
        while not self._stop.is_set():
            now = time.monotonic()
            try:
                owners = self.owners()
            except LabError:  # the lab is gone
                return
            if owners != last:
                self.events.append(VipEvent(now, owners))
                last = owners
            time.sleep(self.interval)

    def stop(self) -> list[VipEvent]:
        """Stop sampling; the changes seen."""
        self._stop.set()
        self._thread.join(timeout=5)
        return list(self.events)

    def max_owners(self) -> int:
        """The most nodes seen holding the address at once."""
        return max((len(e.owners) for e in self.events), default=0)

    def first(self, check: Callable[[tuple[str, ...]], bool], since: float = 0.0) -> float | None:
        """Monotonic time of the first change after ``since`` whose owners satisfy
        ``check``."""
        return next((e.mono for e in self.events if e.mono >= since and check(e.owners)), None)

    def timeline(self) -> str:
        """The changes, readable."""
        t0 = self.events[0].mono if self.events else 0.0
        return ", ".join(f"+{e.mono - t0:.3f}s {list(e.owners)}" for e in self.events)


def _fib_local(text: str, addr: str) -> bool:
    """Whether ``/proc/net/fib_trie`` lists ``addr`` as a local (/32 host LOCAL) address."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.strip().endswith(f"-- {addr}"):
            for nxt in lines[i + 1 : i + 4]:
                if "/32 host LOCAL" in nxt:
                    return True
                if "--" in nxt:
                    break
    return False
