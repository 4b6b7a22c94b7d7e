"""hamod as a failover benchmark target: the real daemon on the lab's nodes.

The cluster is deployed by :class:`hamod.testing.cluster.LabCluster` exactly as the
acceptance tests deploy it (docs/daemon-contract.md): the cluster file from the lab
topology (heartbeats on net0 and net1), the cluster key and certificates, the arbitrator
witness on the lab's witness host (``hamod witness serve``), and ``hamod service start``
on each node. One mirror module, ``bench``, carries the harness's VIP
(``spec.vip``/24 on eth0, i.e. ``lab.free_address(0)``). The harness runs the trivial
service on both nodes itself (as for keepalived), so the module's scripts only journal:
the outage measured is the VIP's failover, like keepalived's.

Timer presets, fixed before the numbers existed: "default" = heartbeat pulse 700 ms,
timeout 30 s (hamod's defaults, SafeKit's); "tight" = pulse 100 ms, timeout 1 s. The lease
is the default, timeout / 2. "equal" = pulse 100 ms, timeout 360 ms, lease 250 ms: the
same detection time as keepalived at advert_int 0.1 (3 × advert_int + skew = 0.36 s),
so the two columns differ only by what each does after detecting the loss.

- ``setup``: check the daemon exists (else :class:`TargetUnavailable`), render the files.
- ``start``: first call: deploy, start the witness and the daemons, then the module's first
  start (``start`` + ``prim`` on n1, ``start`` on n2). Later calls (after the harness
  booted a powered-off node again): ``hamod service start`` on every running node without
  a daemon; the module comes back by itself (``boot`` auto: it was running before the
  power-off), else it is started with ``hamod start``.
- ``primary``: poll ``hamod state`` until one node is PRIM (READY) holding the VIP and
  the other SECOND (READY); return the PRIM.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from benchmarks.failover.targets import ClusterSpec, TargetUnavailable, check_timers
from hamod.api.models import Phase, State
from hamod.errors import LabError
from hamod.testing.cluster import ClusterError, LabCluster, ModuleSpec, daemon_missing
from hamod.testing.lab import Lab

__all__ = ["MODULE", "TIMERS", "HamodTarget", "HamodTimers"]

MODULE = "bench"


@dataclass(frozen=True)
class HamodTimers:
    """Heartbeat timers of one preset (seconds)."""

    pulse: float
    timeout: float
    lease: float | None = None  # None: the default (timeout / 2)

    @property
    def pulse_text(self) -> str:
        """``700ms``: the pulse as a module-file duration."""
        return f"{round(self.pulse * 1000)}ms"

    @property
    def timeout_text(self) -> str:
        """``30000ms``: the timeout as a module-file duration."""
        return f"{round(self.timeout * 1000)}ms"

    @property
    def lease_text(self) -> str | None:
        """``250ms`` or None (the module file's default)."""
        return None if self.lease is None else f"{round(self.lease * 1000)}ms"


TIMERS = {
    "default": HamodTimers(0.7, 30.0),
    "tight": HamodTimers(0.1, 1.0),
    "equal": HamodTimers(0.1, 0.36, 0.25),
}


class HamodTarget:
    """hamod's daemon on every node (see the module docstring)."""

    name = "hamod"

    def __init__(self, timers: str = "default") -> None:
        self.timers = check_timers(timers)
        self.heartbeat = TIMERS[timers]
        self._cluster: LabCluster | None = None
        self._started = False

    @property
    def settings(self) -> str:
        """``pulse 700 ms, timeout 30 s``."""
        return f"pulse {self.heartbeat.pulse * 1000:g} ms, timeout {self.heartbeat.timeout:g} s"

    @property
    def budget(self) -> float:
        """Detection (the heartbeat timeout) plus slack for a loaded machine."""
        return self.heartbeat.timeout + 5.0

    def setup(self, lab: Lab, spec: ClusterSpec) -> None:
        """Check the daemon exists; prepare the cluster (files are written by start)."""
        reason = daemon_missing()
        if reason is not None:
            raise TargetUnavailable(reason)
        module = ModuleSpec(
            MODULE,
            port=spec.port,
            nodes=(spec.nodes[0], spec.nodes[1]),
            service=False,
            pulse=self.heartbeat.pulse_text,
            timeout=self.heartbeat.timeout_text,
            lease=self.heartbeat.lease_text,
        )
        cluster = LabCluster(lab, [module], witness="arbitrator")
        if cluster.vip(MODULE) != spec.vip or spec.interface != "eth0" or spec.prefix != 24:
            raise TargetUnavailable(
                f"hamod target: the harness's VIP {spec.vip}/{spec.prefix} on "
                f"{spec.interface} is not the lab cluster's {cluster.vip(MODULE)}/24 on eth0"
            )
        self._cluster = cluster

    def _need(self) -> LabCluster:
        if self._cluster is None:
            raise LabError("hamod target: setup() first")
        return self._cluster

    def start(self) -> None:
        """Start hamod where it does not run (the first time: deploy and first start).
        A failure is a LabError (the harness reports the series as an error)."""
        try:
            self._start()
        except ClusterError as exc:
            raise LabError(str(exc)) from exc

    def _start(self) -> None:
        c = self._need()
        if not self._started:
            c.up()
            c.establish(MODULE, c.modules[MODULE].nodes[0], timeout=60.0)
            self._started = True
            return
        for node in c.nodes:
            if not c.lab.alive(node) or c.daemon_pid(node) is not None:
                continue
            c.configure_network(node)
            c.start_service(node)
            st = c.try_state(node, MODULE)
            if st is not None and st.state is State.STOP:
                c.command(node, MODULE, "start")

    def primary(self, timeout: float) -> str:
        """Wait until one node is PRIM holding the VIP and the other SECOND, both READY."""
        c = self._need()
        deadline = time.monotonic() + timeout
        last = ""
        while True:
            states = {n: c.try_state(n, MODULE) for n in c.nodes}
            owners = c.vip_owners(MODULE)
            prims = [
                n
                for n, s in states.items()
                if s is not None and s.state is State.PRIM and s.phase is Phase.READY
            ]
            seconds = [
                n
                for n, s in states.items()
                if s is not None and s.state is State.SECOND and s.phase is Phase.READY
            ]
            if len(prims) == 1 and owners == prims and len(seconds) == len(c.nodes) - 1:
                return prims[0]
            last = (
                ", ".join(
                    f"{n} {'off' if s is None else f'{s.state}/{s.phase}'}"
                    for n, s in states.items()
                )
                + f"; VIP on {owners or 'nobody'}"
            )
            if time.monotonic() > deadline:
                raise LabError(
                    f"hamod: no stable primary after {timeout:g} s: {last}\n{c.diagnose(MODULE)}"
                )
            time.sleep(0.1)

    def teardown(self) -> None:
        """Nothing to do: the harness removes the lab, which kills every daemon."""
