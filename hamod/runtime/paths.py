"""Where the daemon keeps its files (one :class:`Paths` value, overridable for tests).

=====================================  ==================================================
``/etc/hamod/cluster.yaml``            the cluster file
``/etc/hamod/modules/<m>.yaml``        one module file per module
``/etc/hamod/node``                    this node's name (``--node`` first; else this
                                       file; else the host name)
``/var/lib/hamod/<m>/status.json``     the module's durable status (core ``Durable``)
``/var/lib/hamod/<m>/toggles.json``    runtime toggles: ``boot`` and whether it ran
``/var/log/hamod/<m>.log``             one line per transition (and action), with reason
``/var/log/hamod/<m>/scripts/``        one log per script run
``/var/log/hamod/daemon.log``          the daemon's own log (no-systemd launcher)
``/run/hamod/api.sock``                the local API (root only)
``/run/hamod/watchdog.sock``           the watchdog
``/run/hamod/daemon.pid``, ``watchdog.pid``   the no-systemd launcher's pid files
``/run/hamod/resume/<m>.json``         resume marker: the running state (tmpfs: gone at
                                       reboot, which is how a reboot is told apart)
=====================================  ==================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Paths:
    """Every path of the daemon, from four roots (``--config-dir``, ``--state-dir``,
    ``--log-dir``, ``--run-dir``)."""

    etc: Path = Path("/etc/hamod")
    var: Path = Path("/var/lib/hamod")
    log: Path = Path("/var/log/hamod")
    run: Path = Path("/run/hamod")

    @classmethod
    def under(cls, root: Path) -> Paths:
        """Every root below ``root`` (tests, labs): ``root/etc``, ``root/var``..."""
        return cls(root / "etc", root / "var", root / "log", root / "run")

    @property
    def cluster_file(self) -> Path:
        return self.etc / "cluster.yaml"

    @property
    def modules_dir(self) -> Path:
        return self.etc / "modules"

    @property
    def node_file(self) -> Path:
        return self.etc / "node"

    def module_var(self, module: str) -> Path:
        return self.var / module

    def status_file(self, module: str) -> Path:
        return self.var / module / "status.json"

    def toggles_file(self, module: str) -> Path:
        return self.var / module / "toggles.json"

    def script_runs_file(self, module: str) -> Path:
        """The last successful run of each start script (``process`` checkers)."""
        return self.var / module / "script-runs.json"

    def resources_dir(self, module: str) -> Path:
        """Resources set by ``hamod set -r`` (one file each)."""
        return self.var / module / "resources"

    def module_log_dir(self, module: str) -> Path:
        return self.log / module

    def module_log(self, module: str) -> Path:
        return self.log / f"{module}.log"

    def script_log_dir(self, module: str) -> Path:
        return self.log / module / "scripts"

    @property
    def daemon_log(self) -> Path:
        return self.log / "daemon.log"

    @property
    def watchdog_log(self) -> Path:
        return self.log / "watchdog.log"

    @property
    def api_socket(self) -> Path:
        return self.run / "api.sock"

    @property
    def watchdog_socket(self) -> Path:
        return self.run / "watchdog.sock"

    @property
    def daemon_pid(self) -> Path:
        return self.run / "daemon.pid"

    @property
    def watchdog_pid(self) -> Path:
        return self.run / "watchdog.pid"

    @property
    def service_lock(self) -> Path:
        """Held by ``hamod service start|stop|restart``: one at a time (boot vs playbook)."""
        return self.run / "service.lock"

    def resume_marker(self, module: str) -> Path:
        return self.run / "resume" / f"{module}.json"
