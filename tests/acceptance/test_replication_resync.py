"""Acceptance of issue #4, scenario 5: **delta resync**.

1. ``test_delta_resync_after_secondary_outage``: the module ``demo`` replicates
   ``/srv/data`` with 256 KiB regions, on the nodes' plain overlays (the scenario is
   about what crosses the wire and what is read, not about durability: no LazyFS). A data
   set is written and mirrored; then, during heavy writes (random 64 KiB overwrites, many
   times over, of a fixed "hot" set of regions, see ``writers churn``), the secondary is
   powered off; the writes go on ALONE; it boots again and is resynchronized while a
   writer keeps appending. The bytes the resync sent (the primary's ``resync of n2 done:
   N rounds, M bytes``) and the I/O of the data-path processes (``/proc/PID/io``:
   ``wchar`` = bytes written to files and sockets, ``rchar`` = bytes read) on both nodes
   stay within 1.2 × the regions changed while it was away, far below the data set and
   the bytes written meanwhile; no full copy ran (no ``full copy`` on the primary, no
   ``rsync into root`` on the secondary); it ends in sync and ``hamod verify`` is clean.

   Measured windows: on the primary, from just before the secondary boots until it is in
   sync; on the secondary, its new data-path process from its start until in sync, minus
   what the first data-path process of that node had done by the time the pair was first
   in sync with no data (the cost of starting one: Python imports, configuration, an
   empty first copy), reported too.

2. ``test_old_primary_converges_after_crash_with_names_in_flight``: on LazyFS (as in
   test_replication_durability), writers doing creates, renames (also over existing
   files and across directories), unlinks, truncates, mkdir/rmdir and unsynced writes
   run on the primary, which is powered off while they are in flight; the survivor goes
   on with its own name operations, then the old primary boots, is resynchronized as
   SECOND (its possibly unacknowledged changes, lost or not, copied back from the
   survivor) while the survivor keeps writing, and ``hamod verify`` is clean. CI: 2
   crashes (one per node), soak: 20.
"""

from __future__ import annotations

import json
import random
import re
import subprocess
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest

from hamod.api.models import State
from hamod.testing.cluster import PYTHON, LabCluster, ModuleSpec
from hamod.testing.replication import wait_in_sync
from hamod.testing.writers import RECORD_SIZE, WriterProc, regions_of
from tests.acceptance.test_replication_durability import (
    boot,
    lazy_env,
    start_cluster,
    verify,
)
from tests.conftest import Scale

pytestmark = pytest.mark.lab

MakeCluster = Callable[..., LabCluster]

WAIT = 60.0
M = "demo"
DATA = "/srv/data"
REGION = 256 << 10
SEED = 5005
PIDFILE = f"/run/hamod/dp/{M}/datapath.pid"
DPLOG = f"/var/log/hamod/{M}/datapath.log"
RATIO = 1.2

SPEC = ModuleSpec(
    timeout="2s",
    extra={
        "replication": {
            "directories": [{"path": DATA}],
            "link_timeout": "3s",
            "region_size": "256KiB",
        }
    },
)


def dp_io(c: LabCluster, node: str) -> dict[str, int]:
    """``/proc/PID/io`` of the module's data-path process on ``node``."""
    out = c.lab.exec(node, f"cat /proc/$(cut -d' ' -f1 {PIDFILE})/io").stdout
    return {k: int(v) for k, v in (ln.split(": ") for ln in out.splitlines())}


def dp_log(c: LabCluster, node: str) -> list[str]:
    return c.read(node, DPLOG).splitlines()


def writer(c: LabCluster, node: str, name: str, *args: str) -> WriterProc:
    proc = c.lab.popen(
        node,
        [PYTHON, "-m", "hamod.testing.writers", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    return WriterProc(name, proc)


def run_writer(c: LabCluster, node: str, *args: str, timeout: float = 300) -> dict[str, Any]:
    """Run a writer to its end; its JSON summary."""
    out = c.lab.exec(node, [PYTHON, "-m", "hamod.testing.writers", *args], timeout=timeout)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("j ")]
    assert lines, out.stdout + out.stderr
    summary: dict[str, Any] = json.loads(lines[-1][2:])
    return summary


def log_seconds(lines: list[str], start: str, end: str) -> float | None:
    """Seconds between the first line containing ``start`` and the next containing
    ``end`` (datapath.log timestamps)."""

    def ts(line: str) -> datetime:
        return datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")

    t0 = None
    for ln in lines:
        if t0 is None and start in ln:
            t0 = ts(ln)
        elif t0 is not None and end in ln:
            return (ts(ln) - t0).total_seconds()
    return None


def mib(n: float) -> str:
    return f"{n / (1 << 20):.1f} MiB"


def test_delta_resync_after_secondary_outage(make_cluster: MakeCluster, scale: Scale) -> None:
    """Secondary powered off during heavy writes, then back: only the changed regions
    travel and are read (≤ 1.2 × them, on both nodes), no full copy, in sync while a
    writer keeps writing, verify clean."""
    files, file_mib = scale.pick(6, 16), scale.pick(8, 16)
    hot, writes = scale.pick(32, 128), scale.pick(400, 4000)
    c = make_cluster(SPEC)
    c.establish(M, "n1")
    wait_in_sync(c, "n1", "n2")
    start2 = dp_io(c, "n2")  # what starting a data path costs (imports, config, empty copy)
    filled = run_writer(
        c, "n1", "fill", f"{DATA}/set", "--files", str(files), "--file-size", f"{file_mib}M"
    )
    wait_in_sync(c, "n1", "n2")
    time.sleep(2)  # settled: every write of the data set is durable on n2 (fsynced)
    trickle = writer(
        c, "n1", "trickle", "append", f"{DATA}/trickle.rec", "--sync", "none",
        "--pace", "0.02", "--until-eof",
    )  # fmt: skip
    assert trickle.wait_acks(10, WAIT), trickle.tail()
    churn_args = [
        "churn", f"{DATA}/set", "--files", str(files), "--file-size", f"{file_mib}M",
        "--writes", str(writes), "--write-size", "64K", "--hot", str(hot),
        "--region-size", str(REGION), "--seed", str(SEED), "--pace", "0.005",
    ]  # fmt: skip
    churn = writer(c, "n1", "churn", *churn_args)
    time.sleep(0.3)  # heavy writes under way
    first_away = len(trickle.acked)
    c.power_off("n2")
    c.wait_state("n1", M, State.ALONE, WAIT)
    churn.join(300)
    assert churn.summary is not None and churn.error is None, churn.tail()
    assert trickle.error is None, trickle.tail()

    before = dp_io(c, "n1")
    lines_before = len(dp_log(c, "n1"))
    lines2_before = len(dp_log(c, "n2"))  # read from its disk while it is off
    c.boot("n2")
    took = wait_in_sync(c, "n1", "n2")
    after = dp_io(c, "n1")
    io2 = dp_io(c, "n2")
    last_away = len(trickle.acked)
    assert trickle.wait_acks(last_away + 10, WAIT), trickle.tail()  # still writing, mirrored
    trickle.stop()
    assert trickle.error is None, trickle.tail()
    diff = verify(c, "n1")
    assert diff is None, diff

    # what changed while n2 was away (or not in sync): the churned regions (each hot
    # region is rewritten many times after the power-off) and the trickle's tail
    regions = {(f"c{f:02d}", r) for f, r in churn.summary["regions"]}
    regions |= {
        ("trickle", r)
        for r in regions_of(
            first_away * RECORD_SIZE, (last_away - first_away + 1) * RECORD_SIZE, REGION
        )
    }
    changed = len(regions) * REGION
    budget = RATIO * changed
    new1 = dp_log(c, "n1")[lines_before:]
    log2 = dp_log(c, "n2")[lines2_before:]
    done = [ln for ln in new1 if "resync of n2 done" in ln]
    m = re.search(r"done: (\d+) rounds, (\d+) bytes", done[-1]) if done else None
    assert m is not None, "\n".join(new1)
    rounds, sent = int(m.group(1)), int(m.group(2))
    sent1 = after["wchar"] - before["wchar"]
    read1 = after["rchar"] - before["rchar"]
    read2 = io2["rchar"] - start2["rchar"]
    wrote2 = io2["wchar"] - start2["wchar"]
    resync_s = log_seconds(log2, "event resync_progress", "event resync_done")
    figures = (
        f"data set {mib(filled['bytes'])}, written while away "
        f"{mib(churn.summary['bytes'])} ({churn.summary['writes']} writes), changed "
        f"regions {len(regions)} x 256 KiB = {mib(changed)} (budget {mib(budget)}); "
        f"resync: {rounds} rounds, {mib(sent)} sent (datapath.log); primary data path: "
        f"wchar {mib(sent1)}, rchar {mib(read1)}; secondary data path: rchar {mib(read2)} "
        f"(raw {mib(io2['rchar'])}, start cost {mib(start2['rchar'])}), wchar "
        f"{mib(wrote2)} (raw {mib(io2['wchar'])}); boot to in sync {took:.1f}s, resync "
        f"{resync_s}s"
    )
    print(figures)
    assert not any("full copy" in ln for ln in new1), "\n".join(new1)
    assert not any("rsync into root" in ln for ln in log2), "\n".join(log2[-50:])
    over = [
        f"{what} {mib(v)} > {mib(budget)}"
        for what, v in (
            ("bytes sent by the resync", sent),
            ("primary data path wchar", sent1),
            ("primary data path rchar", read1),
            ("secondary data path rchar", read2),
            ("secondary data path wchar", wrote2),
        )
        if v > budget
    ]
    assert not over, f"{'; '.join(over)}\n{figures}\n" + "\n".join(new1[-20:])


def test_old_primary_converges_after_crash_with_names_in_flight(
    make_cluster: MakeCluster, scale: Scale, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The primary crashes with name operations and unsynced writes in flight (LazyFS:
    what it never synced is lost); after its resync as SECOND both copies are equal.
    Alternating nodes (CI 2 crashes, soak 20)."""
    crashes = scale.pick(2, 20)
    rng = random.Random(SEED)
    lazy_env(monkeypatch)
    c = make_cluster(SPEC, start=False)
    start_cluster(c)
    c.establish(M, "n1")
    wait_in_sync(c, "n1", "n2")
    primary, other = "n1", "n2"
    for crash in range(crashes):
        where = f"crash {crash} ({primary})"
        ws = [
            writer(c, primary, f"names{i}", "names", f"{DATA}/t{i}", "--seed",
                   str(rng.randrange(1 << 30)), "--until-eof")
            for i in range(2)
        ]  # fmt: skip
        for w in ws:
            assert w.wait_acks(50, WAIT), f"{where}: {w.name}: {w.tail()}"
        time.sleep(rng.uniform(0.0, 1.0))
        c.power_off(primary)
        for w in ws:
            w.join(30)
        inflight = [w.inflight for w in ws]
        assert any(inflight), f"{where}: nothing in flight: " + "; ".join(w.tail() for w in ws)
        c.wait_state(other, M, State.ALONE, WAIT)
        # the survivor changes names too, before and during the resync of the old primary
        ws = [
            writer(c, other, f"names{i}", "names", f"{DATA}/t{i}", "--seed",
                   str(rng.randrange(1 << 30)), "--until-eof", "--pace", "0.01")
            for i in range(2)
        ]  # fmt: skip
        for w in ws:
            assert w.wait_acks(30, WAIT), f"{where}: {w.name} on {other}: {w.tail()}"
        boot(c, primary)
        took = wait_in_sync(c, other, primary)
        for w in ws:
            w.stop()
            assert w.error is None, f"{where}: {w.name} on {other}: {w.tail()}"
        diff = verify(c, other)
        done = [ln for ln in dp_log(c, other) if "resync of" in ln and "done" in ln]
        assert diff is None, f"{where}: {done[-1:]}\n{diff}\n{c.diagnose(M)}"
        print(f"{where}: in flight {inflight}; back in sync in {took:.1f}s; {done[-1:]}")
        primary, other = other, primary


def test_resync_after_idle_secondary_outage(make_cluster: MakeCluster) -> None:
    """The secondary is powered off while the application is idle, and comes back: it
    is resynchronized without waiting for a write, and since nothing changed while it
    was away, the resync sends no data."""
    c = make_cluster(SPEC)
    c.establish(M, "n1")
    wait_in_sync(c, "n1", "n2")
    run_writer(c, "n1", "fill", f"{DATA}/set", "--files", "2", "--file-size", "4M")
    wait_in_sync(c, "n1", "n2")
    time.sleep(5)  # idle: nothing in flight on the link
    c.power_off("n2")
    c.wait_state("n1", M, State.ALONE, WAIT)
    lines_before = len(dp_log(c, "n1"))
    c.boot("n2")
    took = wait_in_sync(c, "n1", "n2", 30)  # no write meanwhile
    new1 = dp_log(c, "n1")[lines_before:]
    done = [ln for ln in new1 if "resync of n2 done" in ln]
    m = re.search(r"done: (\d+) rounds, (\d+) bytes", done[-1]) if done else None
    assert m is not None, "\n".join(new1)
    print(f"idle outage: in sync {took:.1f}s after boot; {done[-1]}")
    assert int(m.group(2)) == 0, f"nothing changed while n2 was away, yet: {done[-1]}"
    diff = verify(c, "n1")
    assert diff is None, diff
