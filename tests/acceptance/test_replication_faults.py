"""Acceptance of replication under faults (issue #4, scenarios 6 and 7): split brain kept
aside, the data-path process killed on the primary, the daemon killed with replication
active. Every scenario ends with both copies compared.

Helpers (writers, the view underneath the mount) come from ``test_replication``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from hamod.api.models import Phase, State
from hamod.testing.cluster import LabCluster, ModuleSpec
from hamod.testing.replication import datapath_log, wait_in_sync
from tests.acceptance.test_replication import (
    DATA,
    UNDER,
    missing,
    mounts,
    verify_trees,
    write,
)

pytestmark = pytest.mark.lab

WAIT = 60.0
M = "demo"
MakeCluster = Callable[..., LabCluster]


def spec(**kw: str) -> ModuleSpec:
    return ModuleSpec(
        M,
        pulse=kw.get("pulse", "200ms"),
        timeout=kw.get("timeout", "3s"),
        extra={"replication": {"directories": [{"path": DATA}], "link_timeout": "3s"}},
    )


def dp_pid(c: LabCluster, node: str) -> int | None:
    text = c.read(node, f"/run/hamod/dp/{M}/datapath.pid").strip()
    return int(text) if text.isdigit() else None


def test_06_split_brain_is_refused_then_kept_aside(make_cluster: MakeCluster) -> None:
    """Both primary while cut (router-ping witness), both write → on reconnection the
    split brain is reported, nothing is resynced automatically; ``prim`` on the node to
    keep → the other side is resynced from it and its own writes are kept aside."""
    c = make_cluster(spec(), witness="ping")
    c.establish(M, "n1")
    wait_in_sync(c, "n1", "n2")
    common = write(c, "n1", 0, 20)
    c.lab.partition("n1", "n2")
    c.wait_state("n1", M, State.ALONE, WAIT)
    c.wait_state("n2", M, State.ALONE, WAIT)
    only1 = write(c, "n1", 100, 10)
    only2 = write(c, "n2", 200, 10)
    c.lab.heal()
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        sts = [c.try_state(n, M) for n in c.nodes]
        if any(s is not None and s.split_brain for s in sts) and len(c.vip_owners()) == 1:
            break
        time.sleep(0.2)
    else:
        raise AssertionError("split brain not reported\n" + c.diagnose(M))
    (keeper,) = c.vip_owners()
    (other,) = [n for n in c.nodes if n != keeper]
    kept, lost = (only1, only2) if keeper == "n1" else (only2, only1)
    # no automatic resync: the other side still has its own writes, not the keeper's
    c.hold_state(other, M, State.WAIT, 3.0)
    assert missing(c, other, DATA, lost) == []
    assert missing(c, other, DATA, kept) == kept
    c.command(keeper, M, "prim")
    wait_in_sync(c, keeper, other)
    assert missing(c, other, UNDER, common + kept) == []
    verify_trees(c, keeper, other)
    # the other side's divergent writes are kept aside, next to the directory
    aside = c.lab.exec(other, "ls -d /srv/.hamod-aside-data/*/ 2>/dev/null || true").stdout.split()
    assert aside, c.diagnose(M)
    assert missing(c, other, aside[-1].rstrip("/"), lost) == [], aside


def test_07_datapath_killed_on_the_primary_fails_over(make_cluster: MakeCluster) -> None:
    """The primary's data-path process dies → its FUSE connection is gone (applications
    get errors, not a hang), the module fails over; the survivor has every acknowledged
    write; the old primary comes back as SECOND in sync."""
    c = make_cluster(spec())
    c.establish(M, "n1")
    wait_in_sync(c, "n1", "n2")
    acked = write(c, "n1", 0, 50)
    pid = dp_pid(c, "n1")
    assert pid is not None
    c.lab.exec("n1", ["kill", "-9", str(pid)])
    # n2 takes over: ALONE, and PRIM as soon as n1 is back as SECOND (which can be
    # quicker than one poll of ALONE)
    deadline = time.monotonic() + WAIT
    while not (
        (st := c.try_state("n2", M)) is not None
        and st.state in (State.ALONE, State.PRIM)
        and st.ready
        and c.vip_owners() == ["n2"]
    ):
        assert time.monotonic() < deadline, "n2 did not take over\n" + c.diagnose(M)
        time.sleep(0.05)
    assert missing(c, "n2", DATA, acked) == []
    wait_in_sync(c, "n2", "n1")
    verify_trees(c, "n1", "n2")


def test_07_daemon_killed_leaves_mount_and_replication(make_cluster: MakeCluster) -> None:
    """SIGKILL of the primary's daemon: the data-path process, its mount and the link are
    untouched (writes go on being replicated while the daemon is away); the restarted
    daemon resumes on the same term."""
    c = make_cluster(spec(timeout="12s"))  # the restart must fit in the lease (6 s)
    c.establish(M, "n1")
    wait_in_sync(c, "n1", "n2")
    term = c.state("n1", M).term
    pid = dp_pid(c, "n1")
    c.kill_daemon("n1")
    assert dp_pid(c, "n1") == pid and "fuse.hamod" in mounts(c, "n1")
    acked = write(c, "n1", 0, 30)  # while no daemon runs
    assert missing(c, "n2", UNDER, acked) == []
    c.start_service("n1")
    st = c.wait_state("n1", M, State.PRIM, WAIT)
    assert st.term == term and dp_pid(c, "n1") == pid
    acked += write(c, "n1", 30, 10)
    assert missing(c, "n2", UNDER, acked) == []
    verify_trees(c, "n1", "n2")


def test_swap_with_replication_and_the_arbitrator(make_cluster: MakeCluster) -> None:
    """``swap`` with replicated directories and the arbitrator: the new primary's term
    request may reach the witness before the old primary's release (its data path takes
    a while to become secondary); it is asked again at the next pulse instead of leaving
    both nodes SECOND. Twice, there and back; every write survives, copies equal."""
    c = make_cluster(spec(timeout="2s"))
    c.establish(M, "n1")
    wait_in_sync(c, "n1", "n2")
    acked = write(c, "n1", 0, 20)
    for old, new in (("n1", "n2"), ("n2", "n1")):
        # accepted at once: the previous swap's demoted node shows SECOND, Ready and up
        # to date (wait_in_sync) only once the new primary mirrored it (its hand-over over)
        c.command(old, M, "swap", retry=0.0)
        c.wait_states(M, {new: State.PRIM, old: State.SECOND}, WAIT)
        assert c.vip_owners() == [new]
        wait_in_sync(c, new, old)
        acked += write(c, new, len(acked), 10)
        assert missing(c, old, UNDER, acked) == []
    verify_trees(c, "n1", "n2")


def test_swap_then_the_demoted_nodes_daemon_restarts(make_cluster: MakeCluster) -> None:
    """After a swap the demoted node awaits the new primary's barrier; its daemon is
    killed meanwhile, so the data path's ``mirroring`` (said once per replication
    session) reaches no daemon. The restarted daemon learns it from the data path: the
    node is SECOND, Ready, up to date, on the new term within seconds — the link up,
    no new session — and a swap back is accepted at once.

    n2's daemon is frozen (SIGSTOP, shorter than the timeout) across the swap so that it
    takes over, and its data path mirrors n1, only once n1's daemon is dead."""
    c = make_cluster(spec(timeout="12s"))  # n1's daemon away must not look like a loss
    c.establish(M, "n1")
    wait_in_sync(c, "n1", "n2")
    acked = write(c, "n1", 0, 10)
    log_from = len(datapath_log(c, "n1"))
    n2 = c.daemon_pid("n2")
    assert n2 is not None
    c.lab.exec("n2", ["kill", "-STOP", str(n2)])
    try:
        c.command("n1", M, "swap", retry=0.0)
        c.wait_state("n1", M, State.SECOND, WAIT, ready=False)
        time.sleep(0.3)  # its hand-over announced, its lease released
        c.kill_daemon("n1")
    finally:
        c.lab.exec("n2", ["kill", "-CONT", str(n2)])
    killed_at = len(datapath_log(c, "n1"))
    prim = c.wait_state("n2", M, State.PRIM, WAIT)
    deadline = time.monotonic() + WAIT
    while "event mirroring" not in (text := datapath_log(c, "n1"))[log_from:]:
        assert time.monotonic() < deadline, "n2 never mirrored n1\n" + c.diagnose(M)
        time.sleep(0.1)
    assert "event mirroring" not in text[log_from:killed_at], (
        "n2 mirrored n1 before its daemon was killed: the scenario did not happen"
    )
    sessions = text.count("event session")
    c.start_service("n1")
    took = wait_in_sync(c, "n2", "n1", timeout=10.0)
    assert took < 5.0, f"n1 took {took:.1f} s to show SECOND Ready and up to date"
    st, now = c.state("n1", M), c.state("n2", M)
    link_up = datapath_log(c, "n1").count("event session") == sessions
    assert link_up and st.term == now.term == prim.term and st.phase is Phase.READY, (
        f"new session: {not link_up}; n1 term {st.term}, n2 term {prim.term} then "
        f"{now.term}\n{c.diagnose(M)}"
    )
    acked += write(c, "n2", len(acked), 10)
    assert missing(c, "n1", UNDER, acked) == []
    c.command("n2", M, "swap", retry=0.0)  # n1's hand-over is over: accepted
    c.wait_states(M, {"n1": State.PRIM, "n2": State.SECOND}, WAIT)
    wait_in_sync(c, "n1", "n2")
    verify_trees(c, "n1", "n2")
