"""Acceptance of issue #4, scenario 7 (faults), the part on disks and resyncs: disk full
on the secondary, EIO on the primary's disk, the peer link cut during a resync, a daemon
killed during a resync. Real network namespaces, real daemons, real FUSE; every scenario
asserts its precondition and ends with both copies compared (``hamod verify`` inside a
node and ``python -m hamod.verify`` over the two trees underneath the mounts) and every
acknowledged record checked on both nodes.

1. ``test_disk_full_on_the_secondary``: the secondary's ``/srv`` is a small tmpfs (a
   real file system, its own size and free space) holding the replicated directory and a
   "ballast" file outside it; while the application appends fsynced records on the
   primary, the secondary's disk fills up: its applier fails with ENOSPC, it leaves the
   mirror, the primary goes ALONE and keeps acknowledging writes (tracked). The resync
   attempts fail (the space check or ENOSPC) until the ballast is removed (an admin
   frees space); then the secondary is resynchronized by delta (no full copy, far less
   than the data set) and ends SECOND in sync.
2. ``test_eio_on_the_primary_disk``: LazyFS under each node's ``/srv`` (as in
   test_replication_durability); EIO is injected on the primary's writes (or fsyncs)
   under the replicated directory while the application appends records: the data path
   reports it, the module fails over to the secondary, which holds every acknowledged
   record and goes on serving; the old primary comes back (stopstart) and ends SECOND in
   sync once the fault is cleared. While its disk fails writes it cannot be resynchronized
   (asserted); while only its fsyncs fail it can (the resync does not fsync what it
   writes, and the target's flush is sync(2), which reports no error: printed, not
   asserted).
3. ``test_link_cut_during_resync``: a large delta resync (the secondary stopped while the
   primary wrote the data set; ``replication.bandwidth`` caps the resync so it lasts
   seconds; the replicated directory's own mode is changed too) is cut by unplugging the
   replication network (net1; the heartbeats go on on net0) once 70 % of it has been
   copied, long enough for the session to fail; after the cable is back the resync
   resumes from its last checkpoint (``checkpoint after N bytes`` in the primary's
   data-path log) rather than from zero: the resync that completes (``resync of n2
   done: ... bytes``) sends only what was left after that checkpoint (+ 1 MiB), less than
   the data set; the bytes the primary's data path wrote (``wchar`` in ``/proc/PID/io``:
   the link) and read stay under 1.5 × the data set (a restart from zero: 1.7 × at
   least); no full copy.
4. ``test_daemon_killed_during_resync``: the same resync, and the daemon (not the
   data-path process) of the primary or of the secondary is SIGKILLed halfway through
   and restarted at once: the data-path processes are untouched, the resync goes on (the
   primary's daemon) or is failed by the restarted secondary's daemon and resumes from
   its last checkpoint after the back-off (same figures).

Sizes shrink in the default (CI) run and grow with ``--soak`` (``scale``).
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from hamod.api.models import State
from hamod.testing.cluster import PYTHON, LabCluster, ModuleSpec
from hamod.testing.replication import (
    DATA,
    WAIT,
    M,
    datapath_io,
    datapath_pid,
    free_bytes,
    hamod_verify,
    lazyfs_control,
    log_lines,
    replicated_spec,
    resyncs_done,
    tree_differences,
    under,
    wait_in_sync,
    wait_resync_sent,
)
from hamod.testing.writers import WriterProc, check_append
from tests.acceptance.test_replication_durability import lazy_env, start_cluster
from tests.conftest import Scale

pytestmark = pytest.mark.lab

MakeCluster = Callable[..., LabCluster]
MIB = 1 << 20


# --- helpers ---------------------------------------------------------------------------


def writer(c: LabCluster, node: str, name: str, *args: str) -> WriterProc:
    """``python -m hamod.testing.writers ARGS`` in ``node``, in the background."""
    proc = c.lab.popen(
        node,
        [PYTHON, "-m", "hamod.testing.writers", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    return WriterProc(name, proc)


def fill(c: LabCluster, node: str, sub: str, files: int, size: int, seed: int = 7) -> int:
    """``files`` files of ``size`` random bytes (fsynced) under ``DATA/sub``; the bytes."""
    argv = [PYTHON, "-m", "hamod.testing.writers", "fill", f"{DATA}/{sub}",
            "--files", str(files), "--file-size", str(size), "--seed", str(seed)]  # fmt: skip
    c.lab.exec(node, argv, timeout=600)
    return files * size


def verify_clean(c: LabCluster, a: str, b: str) -> None:
    """Both copies equal: ``hamod verify`` inside ``a`` and the two trees underneath the
    mounts compared from the host."""
    run = hamod_verify(c, a)
    assert run.returncode == 0, f"{run}\n{c.diagnose(M)}"
    diff = tree_differences(under(c, a), under(c, b))
    assert not diff, "\n".join(diff[:20])


def acked_problems(c: LabCluster, node: str, rel: str, acked: set[int], size: int) -> list[str]:
    """What ``node``'s copy underneath its mount lacks of the acknowledged records."""
    return [f"{node}: {p}" for p in check_append(under(c, node, rel), acked, size)]


def mib(n: float) -> str:
    return f"{n / MIB:.1f} MiB"


# --- 1: disk full on the secondary ------------------------------------------------------

REC = 64 << 10
"""Record size of the application's writer in scenarios 1 and 2."""


def test_disk_full_on_the_secondary(make_cluster: MakeCluster, scale: Scale) -> None:
    """The secondary's disk fills up while the primary writes: it leaves the mirror, the
    primary goes ALONE and keeps acknowledging writes; once space is freed the secondary
    is resynchronized by delta and ends SECOND in sync, with every acknowledged record."""
    files, size = 4, scale.pick(8, 32) * MIB
    room = 2 * MIB  # left free on the secondary's disk
    c = make_cluster(replicated_spec(), start=False)
    # n2's /srv: a small file system of its own (not the node's overlay)
    fs_size = files * size + 64 * MIB
    c.lab.exec("n2", f"mount -t tmpfs -o size={fs_size},mode=755 hamod-small /srv && "
               f"mkdir -p {DATA}")  # fmt: skip
    c.start_witness()
    for node in c.nodes:
        c.start_service(node)
    c.establish(M, "n1")
    wait_in_sync(c, "n1", "n2")
    data = fill(c, "n1", "set", files, size)
    wait_in_sync(c, "n1", "n2")
    free = free_bytes(c, "n2", DATA)
    c.lab.exec("n2", f"fallocate -l {free - room} /srv/ballast")
    assert free_bytes(c, "n2", DATA) <= room + MIB, free_bytes(c, "n2", DATA)
    assert free_bytes(c, "n1", DATA) > 64 * MIB
    lines1 = len(log_lines(c, "n1"))

    app = writer(c, "n1", "app", "append", f"{DATA}/app.rec", "--sync", "fsync",
                 "--size", str(REC), "--pace", "0.05", "--until-eof")  # fmt: skip
    # precondition: mirrored until the disk is full (room / REC = 32 records fit)
    assert app.wait_acks(4, WAIT), app.tail()
    assert c.state("n1", M).state is State.PRIM, c.diagnose(M)
    c.wait_state("n1", M, State.ALONE, WAIT)
    alone_at = len(app.acked)
    assert alone_at * REC > room // 2, f"ALONE after {alone_at} records: {app.tail()}"
    # the primary keeps serving writes while the secondary's disk is full
    assert app.wait_acks(alone_at + 40, WAIT), app.tail()
    st2 = c.state("n2", M)
    assert not (st2.state is State.SECOND and st2.up_to_date and st2.resync is None), st2
    c.hold_state("n1", M, State.ALONE, 4.0)  # no resync can finish while it is full
    # the cause is named: the secondary's applier failed with ENOSPC, then the resyncs
    # are refused for lack of space
    new1 = log_lines(c, "n1")[lines1:]
    enospc = [ln for ln in new1 if "No space left on device" in ln]
    refused = [ln for ln in new1 if "not enough space on n2" in ln]
    assert enospc and refused, "\n".join(new1[-20:])

    # space freed: the secondary is resynchronized while the application writes
    lines1 = len(log_lines(c, "n1"))
    c.lab.exec("n2", "rm /srv/ballast")
    took = wait_in_sync(c, "n1", "n2", 120)
    n = len(app.acked)
    assert app.wait_acks(n + 10, WAIT), app.tail()  # mirrored again
    app.stop()
    assert app.error is None, app.tail()
    new1 = log_lines(c, "n1")[lines1:]
    done = resyncs_done(new1)
    print(f"disk full on n2: ALONE after {alone_at} records of 64 KiB, {len(app.acked)} "
          f"acknowledged; in sync {took:.1f}s after space was freed; resyncs {done}; "
          f"{enospc[0].split(': ', 1)[-1]}")  # fmt: skip
    # by delta: not the data set (untouched meanwhile), at most what was appended
    assert done and not any("full copy" in ln for ln in new1), "\n".join(new1[-30:])
    appended = len(app.acked) * REC
    assert done[-1].sent <= min(data, appended + 2 * MIB), (done, data, appended)
    bad = [p for node in c.nodes for p in acked_problems(c, node, "app.rec", app.acked, REC)]
    assert not bad, "\n".join(bad)
    verify_clean(c, "n1", "n2")


# --- 2: EIO on the primary's disk -----------------------------------------------------


def wait_serving(c: LabCluster, node: str, timeout: float = WAIT) -> State:
    """Wait until ``node`` serves the application (ALONE or PRIM, READY)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = c.try_state(node, M)
        if st is not None and st.ready:
            return st.state
        time.sleep(0.1)
    raise AssertionError(f"{node} does not serve {M}\n{c.diagnose(M)}")


@pytest.mark.parametrize("kind", ["eio-write", "eio-fsync"])
def test_eio_on_the_primary_disk(
    make_cluster: MakeCluster, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """The primary's disk answers EIO (LazyFS) under the replicated directory: the module
    fails over; the survivor holds every acknowledged record and serves; the old primary
    returns as SECOND in sync once its disk works again."""
    lazy_env(monkeypatch)
    c = make_cluster(replicated_spec(), start=False)
    start_cluster(c)
    c.establish(M, "n1")
    wait_in_sync(c, "n1", "n2")
    rec = f"{DATA}/app.rec"
    app = writer(c, "n1", "app", "append", rec, "--sync", "fsync", "--size", str(REC),
                 "--pace", "0.01", "--until-eof")  # fmt: skip
    assert app.wait_acks(30, WAIT), app.tail()
    assert c.state("n1", M).state is State.PRIM and c.state("n2", M).state is State.SECOND
    lines1 = len(log_lines(c, "n1", f"/var/log/hamod/{M}.log"))
    lazyfs_control(c, "n1", "inject", kind, "data/*", str(1 << 30))
    app.join(WAIT)
    assert app.error is not None and "Input/output error" in app.error, app.tail()
    acked = set(app.acked)
    serving = wait_serving(c, "n2")  # ALONE, or PRIM once n1 is back (see below)
    assert c.state("n1", M).state not in (State.ALONE, State.PRIM), c.diagnose(M)
    log1 = log_lines(c, "n1", f"/var/log/hamod/{M}.log")[lines1:]
    assert any("data path failed" in ln for ln in log1), "\n".join(log1[-30:])
    bad = acked_problems(c, "n2", "app.rec", acked, REC)
    assert not bad, "the survivor lacks acknowledged records:\n" + "\n".join(bad)
    # the application goes on on the survivor (resuming after the records it finds)
    app2 = writer(c, "n2", "app2", "append", rec, "--sync", "fsync", "--size", str(REC),
                  "--pace", "0.02", "--until-eof")  # fmt: skip
    assert app2.wait_acks(20, WAIT), app2.tail()
    time.sleep(5.0)
    st1 = c.state("n1", M)
    faulty_in_sync = st1.state is State.SECOND and st1.resync is None and st1.up_to_date
    if kind == "eio-write":
        # the old primary cannot be resynchronized while its disk fails writes
        assert not faulty_in_sync, st1
    # eio-fsync: the resync never fsyncs what it wrote on the target, and the target's
    # flush is sync(2), which reports no error: the old primary comes back in sync with
    # its fsyncs still failing (reported, not asserted)
    lazyfs_control(c, "n1", "clear")
    took = wait_in_sync(c, "n2", "n1", 120)
    n = len(app2.acked)
    assert app2.wait_acks(n + 10, WAIT), app2.tail()
    app2.stop()
    assert app2.error is None, app2.tail()
    acked |= app2.acked
    print(f"{kind} on n1: {len(app.acked)} records acknowledged before the fault "
          f"({app.error}), failover to n2 ({serving.value}), {len(app2.acked)} more there; "
          f"n1 SECOND in sync while its disk failed: {faulty_in_sync}; in sync {took:.1f}s "
          f"after the fault was cleared")  # fmt: skip
    bad = [p for node in c.nodes for p in acked_problems(c, node, "app.rec", acked, REC)]
    assert not bad, "\n".join(bad)
    verify_clean(c, "n2", "n1")


# --- 3 and 4: a large resync, interrupted -------------------------------------------------


def resync_spec(bandwidth: str, timeout: str = "2s") -> ModuleSpec:
    spec = replicated_spec(bandwidth=bandwidth)
    return ModuleSpec(spec.name, timeout=timeout, extra=spec.extra)


def start_large_resync(c: LabCluster, scale: Scale) -> tuple[int, int, dict[str, int]]:
    """PRIM/SECOND in sync, then the secondary n2 stopped, the data set written on n1
    (ALONE), n2 started: a delta resync of the whole data set is under way. Returns the
    data set's bytes, the length of n1's data-path log and its data path's I/O counters
    before the resync."""
    files, size = scale.pick(12, 48), scale.pick(4, 8) * MIB
    c.establish(M, "n1")
    wait_in_sync(c, "n1", "n2")
    c.command("n2", M, "stop")
    c.wait_state("n2", M, State.STOP, WAIT)
    c.wait_state("n1", M, State.ALONE, WAIT)
    data = fill(c, "n1", "set", files, size)
    c.lab.exec("n1", f"chmod 0755 {DATA} && sync")  # the directory itself changed too
    lines1 = len(log_lines(c, "n1"))
    io1 = datapath_io(c, "n1")
    c.command("n2", M, "start")
    return data, lines1, io1


@dataclass
class Fault:
    """The moment of a fault during the resync: n1's data-path log length then, and the
    bytes the target reported copied."""

    lines: int
    copied: int


def fault_now(c: LabCluster, copied: int) -> Fault:
    """Just before the fault is injected."""
    return Fault(len(log_lines(c, "n1")), copied)


_CHECKPOINT = re.compile(r"checkpoint after (\d+) bytes")


def resumed_from(lines: list[str]) -> int:
    """Bytes of the data set that attempts of the resync which then failed had made
    durable (the last ``checkpoint after N bytes`` of each, added up): where the next
    attempt may resume from."""
    total = last = 0
    for ln in lines:
        if (m := _CHECKPOINT.search(ln)) is not None:
            last = int(m.group(1))
        elif "replication session with n2" in ln:
            total, last = total + last, 0
        elif "resync of n2 done" in ln:
            last = 0
    return total


def resync_figures(
    c: LabCluster, data: int, lines1: int, io1: dict[str, int], fault: Fault
) -> tuple[str, list[str], bool]:
    """What the resyncs sent since ``lines1``/``io1`` (in sync now), readable; what is
    over budget; whether a session failed after the fault.

    Budget: no full copy; the primary data path's bytes written (``wchar``: the link) and
    read stay under 1.5 × the data set; if the fault cut the resync, the attempt that
    completed sent at most what the failed ones had not made durable at a checkpoint
    (+ 1 MiB), and less than the data set (a restart from zero sends all of it)."""
    log1 = log_lines(c, "n1")
    new1 = log1[lines1:]
    done = resyncs_done(new1)
    io = datapath_io(c, "n1")
    wchar, rchar = io["wchar"] - io1["wchar"], io["rchar"] - io1["rchar"]
    failed = [ln for ln in log1[fault.lines :] if "replication session with n2" in ln]
    durable = resumed_from(new1)
    shown = (
        f"data set {mib(data)}, fault after {mib(fault.copied)} copied; completed resyncs "
        f"{[(d.rounds, d.sent) for d in done]}, {len(failed)} session(s) failed after the "
        f"fault, resumed from {mib(durable)} (checkpoints); primary data path wchar "
        f"{mib(wchar)} ({wchar / data:.2f} x the data set), rchar {mib(rchar)}"
    )
    over = [
        f"{what} {mib(v)} > 1.5 x the data set"
        for what, v in (("primary data path wchar", wchar), ("primary data path rchar", rchar))
        if v > 1.5 * data
    ]
    if failed:
        if not done or done[-1].sent >= data:
            over.append(f"the resync that completed started again from zero: {done[-1:]}")
        elif done[-1].sent > data - durable + MIB:
            over.append(
                f"the resync that completed sent {mib(done[-1].sent)}, more than the "
                f"{mib(data - durable)} left after the last checkpoints"
            )
    full = [ln for ln in new1 if "full copy" in ln]
    if full:
        over.append(f"a full copy ran: {full[0]}")
    return shown, over, bool(failed)


def test_link_cut_during_resync(make_cluster: MakeCluster, scale: Scale) -> None:
    """The replication network is unplugged halfway through a large delta resync, long
    enough for the session to fail; after it is back the resync resumes where it was:
    in sync, verify clean, and the bytes sent stay well below twice the data set."""
    c = make_cluster(resync_spec(f"{scale.pick(8, 32)}MiB"))
    data, lines1, io1 = start_large_resync(c, scale)
    fault = fault_now(c, wait_resync_sent(c, "n2", data * 7 // 10))
    c.lab.unplug("n2", "net1")
    # the session fails (link timeout 3 s); heartbeats on net0 go on: no failover
    deadline = time.monotonic() + WAIT
    while not any("replication session with n2" in ln for ln in log_lines(c, "n1")[fault.lines :]):
        if time.monotonic() > deadline:
            raise AssertionError("the resync went on while net1 was unplugged\n" + c.diagnose(M))
        time.sleep(0.2)
    assert c.state("n1", M).state is State.ALONE, c.diagnose(M)
    time.sleep(1.0)
    c.lab.plug("n2", "net1")
    took = wait_in_sync(c, "n1", "n2", 120)
    shown, over, failed = resync_figures(c, data, lines1, io1, fault)
    print(f"link cut during resync: {shown}; in sync {took:.1f}s after the cable was back")
    assert failed
    verify_clean(c, "n1", "n2")
    assert not over, f"{'; '.join(over)}\n{shown}\n" + "\n".join(log_lines(c, "n1")[lines1:][-30:])


@pytest.mark.parametrize("node", ["n1", "n2"])
def test_daemon_killed_during_resync(make_cluster: MakeCluster, scale: Scale, node: str) -> None:
    """The daemon of the primary (n1) or of the secondary (n2) is SIGKILLed halfway
    through a large delta resync and restarted at once: the data-path processes are
    untouched, the resync goes on or resumes where it was (bytes sent well below twice
    the data set), in sync, verify clean. Neither daemon declares the resync failed:
    the restarted one asks the data path what became of it."""
    # timeout 10 s: the primary's restart must fit in its lease (5 s)
    c = make_cluster(resync_spec(f"{scale.pick(4, 32)}MiB", timeout="10s"))
    data, lines1, io1 = start_large_resync(c, scale)
    copied = wait_resync_sent(c, "n2", data // 2)
    pids = {n: datapath_pid(c, n) for n in c.nodes}
    scripts = len(c.journal(node))
    fault = fault_now(c, copied)
    c.kill_daemon(node)
    c.start_service(node)
    took = wait_in_sync(c, "n1", "n2", 120)
    assert {n: datapath_pid(c, n) for n in c.nodes} == pids, "a data-path process restarted"
    shown, over, failed = resync_figures(c, data, lines1, io1, fault)
    how = "cut and resumed" if failed else "went on"
    print(
        f"daemon of {node} killed during resync: the resync {how}: {shown}; in sync "
        f"{took:.1f}s after; scripts run on {node} since: {c.journal(node)[scripts:]}"
    )
    verify_clean(c, "n1", "n2")
    assert not over, f"{'; '.join(over)}\n{shown}\n" + "\n".join(log_lines(c, "n1")[lines1:][-30:])
    # the resync went on in the data path (no failure, no stop/start of the secondary)
    assert not failed, shown
    assert c.journal(node)[scripts:] == [], c.diagnose(M)
