"""hamod as a failover benchmark target (a placeholder until the daemon exists).

The timer presets are fixed now so the comparison is decided before the numbers exist:
"default" = heartbeat pulse 700 ms, timeout 30 s (hamod's defaults); "tight" = pulse
100 ms, timeout 1 s. :meth:`HamodTarget.setup` raises :class:`TargetUnavailable` until
the daemon exists, and the benchmark reports the column as "unavailable: <reason>".

Wiring it later (a few lines each, mirroring :mod:`benchmarks.failover.keepalived`):

- ``setup``: drop the availability check; render a mirror module with one VIP
  (``spec.vip/spec.prefix`` on ``spec.interface``), heartbeats on net0 and net1
  (``lab.address(node, "net1")``), ``heartbeat.pulse``/``heartbeat.timeout`` from
  :data:`TIMERS`, the witness at ``lab.address("witness")``, and the cluster PKI.
- ``start``: on every running node without a daemon, write the config into the node
  (``lab.exec(node, "cat > ...", input=...)``) and ``lab.popen(node, [sys.executable, "-m",
  "hamod", ...])`` with its log in ``lab.state_dir``.
- ``primary``: poll the daemons' status (CLI/API) until one node is primary holding the
  VIP (``lab.vip_owners``) and the other is a synchronised standby.
- ``teardown``: SIGTERM the daemons' process groups.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from benchmarks.failover.targets import ClusterSpec, TargetUnavailable, check_timers
from hamod.testing.lab import Lab

__all__ = ["DAEMON_MODULE", "TIMERS", "HamodTarget", "HamodTimers"]

DAEMON_MODULE = "hamod.runtime.daemon"


@dataclass(frozen=True)
class HamodTimers:
    """Heartbeat timers of one preset (seconds)."""

    pulse: float
    timeout: float


TIMERS = {"default": HamodTimers(0.7, 30.0), "tight": HamodTimers(0.1, 1.0)}


def daemon_missing() -> str | None:
    """Why the hamod target cannot run yet, or None once the daemon module exists."""
    if importlib.util.find_spec(DAEMON_MODULE) is None:
        return (
            f"the hamod daemon does not exist yet (no {DAEMON_MODULE}); "
            "this column arrives with the daemon"
        )
    return None


class HamodTarget:
    """hamod's daemon on every node (not wired yet: see the module docstring)."""

    name = "hamod"

    def __init__(self, timers: str = "default") -> None:
        self.timers = check_timers(timers)
        self.heartbeat = TIMERS[timers]

    @property
    def settings(self) -> str:
        """``pulse 700 ms, timeout 30 s``."""
        return f"pulse {self.heartbeat.pulse * 1000:g} ms, timeout {self.heartbeat.timeout:g} s"

    @property
    def budget(self) -> float:
        """Detection (the heartbeat timeout) plus slack for a loaded machine."""
        return self.heartbeat.timeout + 5.0

    def setup(self, lab: Lab, spec: ClusterSpec) -> None:
        """Raise :class:`TargetUnavailable` (the daemon or this target's wiring is missing)."""
        reason = daemon_missing()
        if reason is None:
            reason = (
                f"{DAEMON_MODULE} exists but the benchmark's hamod target is not wired yet "
                "(implement HamodTarget.setup/start/primary/teardown in "
                "benchmarks/failover/hamod_target.py)"
            )
        raise TargetUnavailable(reason)

    def start(self) -> None:
        """Start the daemon on every running node without one (not wired yet)."""
        raise TargetUnavailable("hamod target: not wired yet")

    def primary(self, timeout: float) -> str:
        """The primary node (not wired yet)."""
        raise TargetUnavailable("hamod target: not wired yet")

    def teardown(self) -> None:
        """Nothing was started."""
