"""The systems under test of the replication benchmark, each on a fresh 2-node lab.

- ``baseline``: a plain directory in n1 (``/srv/plain``: the node's overlay on the
  machine's disk), not replicated.
- ``limit``: the physical limit of this topology. A replicated write lands on both nodes'
  disks, and here both nodes share one disk: the same job runs at the same time in n1's
  and in n2's plain directory (two fio processes, one per node), and each process's rate
  is reported (the mean of the two) — what one copy can get while the other copy is
  written too.
- ``glusterfs``: GlusterFS replica 2 (bricks on both nodes, on the replication network
  net1) through its FUSE client mounted in n1 (``/srv/gluster``), as shared/LAB.md sets
  it up. Not measured, with the reason, when its Debian packages are not installed.
- ``hamod``: a hamod cluster (:class:`~hamod.testing.cluster.LabCluster`, the acceptance
  tests' deployment) with a module ``demo`` replicating ``/srv/data`` in one mode /
  durability; n1 PRIM, n2 SECOND and up to date before anything is measured; fio runs
  in n1 on ``/srv/data`` (the FUSE mount).
"""

from __future__ import annotations

import contextlib
import shutil
import time
from dataclasses import dataclass, field

from hamod.api.models import State
from hamod.errors import LabError
from hamod.testing.cluster import ClusterError, LabCluster, ModuleSpec, daemon_missing
from hamod.testing.lab import Lab

__all__ = [
    "DATA",
    "HAMOD_MODES",
    "MODULE",
    "GlusterUnavailable",
    "HamodCluster",
    "gluster_missing",
    "gluster_up",
]

MODULE = "demo"
DATA = "/srv/data"
PLAIN = "/srv/plain"
GLUSTER = "/srv/gluster"
DP_PID = f"/run/hamod/dp/{MODULE}/datapath.pid"
DP_LOG = f"/var/log/hamod/{MODULE}/datapath.log"
UNDER = f"/run/hamod/dp/{MODULE}/under/0"

#: target name → (mode, durability).
HAMOD_MODES: dict[str, tuple[str, str]] = {
    "hamod sync/on-sync": ("sync", "on-sync"),
    "hamod sync/per-write": ("sync", "per-write"),
    "hamod semisync/per-write": ("semisync", "per-write"),
}


class GlusterUnavailable(Exception):
    """GlusterFS cannot be measured here (the reason is the message)."""


def gluster_missing() -> str | None:
    """Why GlusterFS cannot run here, or None."""
    missing = [b for b in ("glusterd", "gluster", "mount.glusterfs") if shutil.which(b) is None]
    if missing:
        return (
            f"GlusterFS is not installed ({', '.join(missing)} missing; "
            "apt-get install glusterfs-server glusterfs-client)"
        )
    return None


def gluster_up(lab: Lab, timeout: float = 90.0) -> str:
    """glusterd on n1 and n2, a replica-2 volume ``bench`` with a brick on each node
    (net1 addresses), mounted with the FUSE client in n1 at /srv/gluster. Returns the
    version. :class:`GlusterUnavailable` when any step fails."""
    reason = gluster_missing()
    if reason:
        raise GlusterUnavailable(reason)
    a1, a2 = lab.address("n1", "net1"), lab.address("n2", "net1")
    deadline = time.monotonic() + timeout

    def run(node: str, cmd: str) -> str:
        left = max(deadline - time.monotonic(), 1.0)
        res = lab.exec(node, cmd, check=False, timeout=left)
        if res.returncode != 0:
            raise GlusterUnavailable(f"{node}: {cmd}: {(res.stderr or res.stdout).strip()}")
        return res.stdout

    try:
        for node in ("n1", "n2"):
            run(node, "mkdir -p /var/lib/glusterd /var/log/glusterfs /srv/brick && glusterd")
        for _ in range(100):  # glusterd listens a moment after it forks
            if lab.exec("n2", "ss -Htln 'sport = :24007'", check=False).stdout.strip():
                break
            time.sleep(0.1)
        run("n1", f"gluster --mode=script peer probe {a2}")
        while "Peer in Cluster (Connected)" not in run("n1", "gluster --mode=script peer status"):
            if time.monotonic() > deadline:
                raise GlusterUnavailable("the peers did not connect")
            time.sleep(0.3)
        run(
            "n1",
            f"gluster --mode=script volume create bench replica 2 "
            f"{a1}:/srv/brick/b {a2}:/srv/brick/b force",
        )
        run("n1", "gluster --mode=script volume start bench")
        run("n1", f"mkdir -p {GLUSTER} && mount -t glusterfs {a1}:/bench {GLUSTER}")
        if "fuse.glusterfs" not in run("n1", f"grep ' {GLUSTER} ' /proc/mounts || true"):
            raise GlusterUnavailable("the volume is not mounted")
        return run("n1", "glusterfs --version | head -1").strip()
    except LabError as exc:
        raise GlusterUnavailable(str(exc)) from exc


@dataclass
class HamodCluster:
    """A hamod cluster on ``lab`` in one replication mode (see the module docstring)."""

    lab: Lab
    mode: str
    durability: str
    cluster: LabCluster = field(init=False)

    def __post_init__(self) -> None:
        spec = ModuleSpec(
            MODULE,
            timeout="2s",
            extra={
                "replication": {
                    "directories": [{"path": DATA}],
                    "mode": self.mode,
                    "durability": self.durability,
                }
            },
        )
        self.cluster = LabCluster(self.lab, [spec], witness="arbitrator")

    @staticmethod
    def missing() -> str | None:
        """Why hamod cannot run (no daemon), or None."""
        return daemon_missing()

    def up(self, timeout: float = 90.0) -> None:
        """Deploy, start the daemons, first start (n1 PRIM, n2 SECOND), wait in sync."""
        self.cluster.up()
        self.cluster.establish(MODULE, "n1", timeout=timeout)
        self.wait_in_sync("n1", "n2", timeout)

    def wait_in_sync(self, primary: str, secondary: str, timeout: float) -> float:
        """Wait until ``primary`` is PRIM and ``secondary`` SECOND, up to date, with no
        resync running; returns the monotonic time it was first seen so.
        :class:`ClusterError` (with the diagnosis) after ``timeout``."""
        c = self.cluster
        deadline = time.monotonic() + timeout
        while True:
            p, s = c.try_state(primary, MODULE), c.try_state(secondary, MODULE)
            if (
                p is not None
                and s is not None
                and p.state is State.PRIM
                and s.state is State.SECOND
                and s.up_to_date
                and s.resync is None
            ):
                return time.monotonic()
            if time.monotonic() > deadline:
                shown = {
                    n: (None if st is None else f"{st.state} up_to_date={st.up_to_date} "
                        f"resync={st.resync}")
                    for n, st in ((primary, p), (secondary, s))
                }  # fmt: skip
                raise ClusterError(
                    f"{secondary} not in sync with {primary} after {timeout:g} s: {shown}\n"
                    f"{c.diagnose(MODULE)}"
                )
            time.sleep(0.1)

    def in_sync(self, primary: str = "n1", secondary: str = "n2") -> str | None:
        """None when ``primary`` is PRIM and ``secondary`` SECOND up to date; else what
        is seen."""
        c = self.cluster
        p, s = c.try_state(primary, MODULE), c.try_state(secondary, MODULE)
        if p is None or s is None:
            return f"{primary}: {p and p.state}, {secondary}: {s and s.state}"
        if p.state is State.PRIM and s.state is State.SECOND and s.up_to_date:
            return None
        return (
            f"{primary} {p.state}, {secondary} {s.state} up_to_date={s.up_to_date} "
            f"reason={s.reason!r}"
        )

    def dp_pid(self, node: str) -> int | None:
        """The data-path process's PID inside ``node`` (None if none)."""
        text = self.cluster.read(node, DP_PID).split()
        return int(text[0]) if text and text[0].isdigit() else None

    def dp_log(self, node: str) -> str:
        """The data-path process's log inside ``node``."""
        return self.cluster.read(node, DP_LOG)

    def diagnose(self) -> str:
        """States and log tails (for error messages)."""
        with contextlib.suppress(Exception):
            return self.cluster.diagnose(MODULE)
        return "(no diagnosis)"
