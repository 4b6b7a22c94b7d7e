"""Acceptance of issue #4, scenario 4: **no acknowledged write is lost** when the primary
loses power, again and again, alternating nodes.

The module ``demo`` replicates two directories, ``/srv/data`` and ``/srv/wal`` (``sync``
mode, ``per-write`` durability: the defaults). On each node ``/srv`` is covered by LazyFS
(:mod:`hamod.testing.lazyfs`), mounted inside the node before hamod starts, and again at
every boot; the replicated directories are inside it (not mount points themselves), so the
data path binds them underneath and covers them as usual. A node that is powered off
therefore loses every byte it never fsynced, as a real machine does (the lab's nodes
otherwise share one page cache). LazyFS runs inside the node, so the node's power-off
(cables out, then SIGKILL of its PID namespace) kills it and its unsynced tree with it;
the survivor's LazyFS is untouched.

Two adaptations of LazyFS, both in :mod:`hamod.testing.writers`:

- ``xattrs=empty``: LazyFS as it is fails every xattr call with EOPNOTSUPP, and the
  resync then fails (``test_resync_on_a_file_system_without_xattrs`` pins that bug); here
  it answers "no xattr" instead, as a file system where no file has one.
- FUSE never sees sync(2): a ``sitecustomize`` in the nodes' Python processes makes
  ``os.sync()`` (the secondary's flush) persist LazyFS as well (:data:`SYNC_SHIM`).

Four writers run at once on the primary, each appending numbered, checksummed records
and printing ``s N`` before and ``a N`` after each one on its stdout, read on the host
(outside the node, so it survives the power-off). They write slowly (every 20 ms: the
two vCPUs also run two FUSE layers per node) but at full speed from a random moment
before each power-off on:

- ``fsync``: fsync after each record; ``dsync``: the file opened ``O_DSYNC``;
- ``perwrite``: no sync at all (``per-write`` acknowledges a write once replicated);
- ``twodir``: record N to ``/srv/data``, fdatasync, then a log record naming it to
  ``/srv/wal``, fdatasync: a log record without its data record breaks the order across
  the two directories.

Each cycle: the writers run on the primary; it is powered off at a random (seeded)
moment, with writes in flight (checked: a writer had started a record it never saw
acknowledged); the survivor must hold every record ever acknowledged, intact and in
order, in both directories. Then (failback) the writers resume on the survivor while
the old primary boots (LazyFS first, then hamod) and is resynchronized as SECOND; once it
is in sync the writers stop, both copies must hold every acknowledged record and
``hamod verify -m demo`` must be clean. The next cycle powers off the other node.
"""

from __future__ import annotations

import os
import random
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from hamod.api.models import State
from hamod.testing.cluster import PYTHON, LabCluster, ModuleSpec
from hamod.testing.replication import wait_in_sync
from hamod.testing.writers import SYNC_SHIM, WriterProc, check_append, check_twodir
from tests.conftest import Scale

pytestmark = pytest.mark.lab

MakeCluster = Callable[..., LabCluster]

WAIT = 60.0
M = "demo"
DATA = "/srv/data"
WAL = "/srv/wal"
SHIM_DIR = "/opt/hamod-lazyfs"
SEED = 4004
SLOW = 0.02
"""Seconds between two records of a writer, but in the second before a power-off (full
speed then: a write is in flight when the power goes)."""

SPEC = ModuleSpec(
    timeout="2s",
    extra={
        "replication": {
            "directories": [{"path": DATA}, {"path": WAL}],
            "link_timeout": "3s",
            "region_size": "256KiB",
        }
    },
)

#: writer name -> arguments of ``python -m hamod.testing.writers``
WRITERS: dict[str, list[str]] = {
    "fsync": ["append", f"{DATA}/fsync.rec", "--sync", "fsync"],
    "dsync": ["append", f"{DATA}/dsync.rec", "--sync", "dsync"],
    "perwrite": ["append", f"{DATA}/perwrite.rec", "--sync", "none"],
    "twodir": ["twodir", f"{DATA}/twodir.dat", f"{WAL}/twodir.log", "--sync", "fdatasync"],
}


def lazy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Processes started in the nodes from now on load :data:`SYNC_SHIM`."""
    old = [p for p in os.environ.get("PYTHONPATH", "").split(":") if p]
    monkeypatch.setenv("PYTHONPATH", ":".join([SHIM_DIR, *old]))
    monkeypatch.setenv("HAMOD_LAZYFS_MOUNTS", "/srv")


def mount_lazyfs(c: LabCluster, node: str, xattrs: str = "empty") -> None:
    """LazyFS over the node's /srv (the replicated directories are made first, on the
    node's disk, so they exist durably)."""
    c.lab.exec(node, f"mkdir -p {DATA} {WAL}")
    argv = [PYTHON, "-m", "hamod.testing.writers", "lazyfs", "/srv", "/srv", "--xattrs", xattrs]
    c.lab.exec(node, argv)


def start_cluster(c: LabCluster, xattrs: str = "empty") -> None:
    """What ``LabCluster.up`` does after deploying, with LazyFS mounted before hamod."""
    for node in c.nodes:
        c.write_files(node, {f"{SHIM_DIR}/sitecustomize.py": ("644", SYNC_SHIM)})
        mount_lazyfs(c, node, xattrs)
    c.start_witness()
    for node in c.nodes:
        c.start_service(node)


def boot(c: LabCluster, node: str, xattrs: str = "empty") -> None:
    """Boot ``node``: LazyFS (showing what was synced before the power-off), then hamod
    (the module was running: it starts, pairs as SECOND and resyncs)."""
    c.boot(node, service=False)
    mount_lazyfs(c, node, xattrs)
    c.start_service(node)


def start_writers(c: LabCluster, node: str) -> dict[str, WriterProc]:
    out = {}
    for name, args in WRITERS.items():
        proc = c.lab.popen(
            node,
            [PYTHON, "-m", "hamod.testing.writers", *args, "--until-eof", "--pace", str(SLOW)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        out[name] = WriterProc(name, proc)
    return out


def host(c: LabCluster, node: str, path: str) -> Path:
    p = c._host_path(node, path)
    assert p is not None, f"{node} is off"
    return p


def problems(c: LabCluster, node: str, acked: dict[str, set[int]]) -> list[str]:
    """What ``node``'s copy (read through its mount) lacks of the acknowledged records."""
    out: list[str] = []
    for name, args in WRITERS.items():
        if args[0] == "append":
            out += check_append(host(c, node, args[1]), acked[name])
        else:
            out += check_twodir(host(c, node, args[1]), host(c, node, args[2]), acked[name])
    return [f"{node}: {p}" for p in out]


def verify(c: LabCluster, node: str) -> str | None:
    """``hamod verify -m demo`` on ``node``: None when clean, else its output."""
    res = c.hamod(node, "verify", "-m", M, "-q", timeout=120)
    if res.returncode == 0:
        return None
    return f"hamod verify -m {M} on {node}: exit {res.returncode}\n{res.stdout}{res.stderr}"


def resync_line(c: LabCluster, node: str) -> str:
    """The last ``resync of ... done`` line of ``node``'s data-path log."""
    lines = c.read(node, f"/var/log/hamod/{M}/datapath.log").splitlines()
    done = [ln for ln in lines if "resync of" in ln and "done" in ln]
    return done[-1].split(": ", 1)[-1] if done else "no resync done"


def test_no_acknowledged_write_lost_across_power_offs(
    make_cluster: MakeCluster, scale: Scale, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Primary powered off at random moments with writes in flight, alternating nodes
    (CI 5 cycles, soak 50): every acknowledged record survives on the survivor, intact,
    in order, in both directories; after every failback both copies hold them and verify
    equal."""
    cycles = scale.pick(5, 50)
    rng = random.Random(SEED)
    lazy_env(monkeypatch)
    c = make_cluster(SPEC, start=False)
    start_cluster(c)
    c.establish(M, "n1")
    wait_in_sync(c, "n1", "n2")
    acked: dict[str, set[int]] = {name: set() for name in WRITERS}
    primary, other = "n1", "n2"
    writers = start_writers(c, primary)
    for cycle in range(cycles):
        where = f"cycle {cycle} ({primary} powered off)"
        for w in writers.values():
            assert w.wait_acks(20, WAIT), f"{where}: {w.name} stalled: {w.tail()}"
        for w in writers.values():
            w.pace(0)
        time.sleep(rng.uniform(0.2, 1.2))
        c.power_off(primary)
        for w in writers.values():
            w.join(30)
            acked[w.name] |= w.acked
        inflight = {n: w.inflight for n, w in writers.items()}
        assert any(inflight.values()), f"{where}: no write in flight: " + "; ".join(
            f"{w.name}: {w.tail()}" for w in writers.values()
        )
        c.wait_state(other, M, State.ALONE, WAIT)
        lost = problems(c, other, acked)
        assert not lost, f"{where}: the survivor lacks acknowledged records:\n" + "\n".join(lost)

        # failback: the writers go on on the survivor while the old primary boots and
        # is resynchronized
        writers = start_writers(c, other)
        for w in writers.values():
            assert w.wait_acks(5, WAIT), f"{where}: {w.name} stalled on {other}: {w.tail()}"
        boot(c, primary)
        took = wait_in_sync(c, other, primary)
        for w in writers.values():
            w.stop()
            assert w.error is None and w.lines and w.lines[-1].startswith("d "), (
                f"{where}: {w.name} did not end cleanly on {other}: {w.tail()}"
            )
            acked[w.name] |= w.acked
        bad = problems(c, other, acked) + problems(c, primary, acked)
        diff = verify(c, other)
        assert not bad and diff is None, (
            f"{where}: after the failback ({resync_line(c, other)}):\n"
            + "\n".join(bad + ([diff] if diff else []))
            + f"\n{c.diagnose(M)}"
        )
        shown = ", ".join(f"{n}={v[-1] if v else '-'}" for n, v in inflight.items())
        print(f"{where}: in flight {shown}; back in sync in {took:.1f}s "
              f"({resync_line(c, other)})", flush=True)  # fmt: skip
        primary, other = other, primary
        writers = start_writers(c, primary)
    for w in writers.values():
        w.stop()
    print("acknowledged records: " + ", ".join(f"{n}={len(v)}" for n, v in acked.items()))


def test_resync_on_a_file_system_without_xattrs(
    make_cluster: MakeCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The replicated directories on a file system without extended attributes (LazyFS
    as it is: every xattr call fails with EOPNOTSUPP, as on vfat or NFSv3): a failover
    and a failback still end in sync and verify clean (``verify`` already reads such a
    file system as "no xattr"; the resync must too)."""
    lazy_env(monkeypatch)
    c = make_cluster(SPEC, start=False)
    start_cluster(c, xattrs="none")
    c.establish(M, "n1")
    wait_in_sync(c, "n1", "n2")
    ws = start_writers(c, "n1")
    for w in ws.values():
        assert w.wait_acks(20, WAIT), f"{w.name} stalled: {w.tail()}"
        w.pace(0)
    time.sleep(0.5)
    c.power_off("n1")
    acked = {}
    for w in ws.values():
        w.join(30)
        acked[w.name] = w.acked
    c.wait_state("n2", M, State.ALONE, WAIT)
    assert not problems(c, "n2", acked)
    boot(c, "n1", xattrs="none")
    wait_in_sync(c, "n2", "n1", 30)
    diff = verify(c, "n2")
    assert diff is None, diff
