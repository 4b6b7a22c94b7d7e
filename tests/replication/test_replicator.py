"""The primary's shipper by role, against a real receiver over TLS on loopback."""

from __future__ import annotations

import contextlib
import errno
import os
import threading
import time

import pytest

from hamod.core.actions import Role
from hamod.datapath.mutation import Mutation, Op
from hamod.replication.link import Mode
from hamod.replication.replicator import Replicator
from hamod.replication.testing import RecordingApplier
from tests.replication.conftest import LinkFactory


def mk(i: int) -> Mutation:
    return Mutation(Op.MKDIR, f"/d{i}", mode=0o755)


def replicator(lost: list[str], timeout: float = 1.0) -> Replicator:
    return Replicator([], timeout=timeout, on_link_lost=lost.append)


def test_alone_without_peer_returns_at_once_and_off_refuses() -> None:
    lost: list[str] = []
    r = replicator(lost)
    r.set_role(Role.PRIMARY_ALONE)
    r.shipper(0).ship(mk(1))
    for role in (Role.OFF, Role.SECONDARY):
        r.set_role(role)
        with pytest.raises(OSError) as err:
            r.shipper(0).ship(mk(2))
        assert err.value.errno == errno.EROFS
    assert lost == []


def test_alone_posts_only_once_live(pair: LinkFactory) -> None:
    applier = RecordingApplier()
    _, link = pair(applier)
    r = replicator([])
    r.set_role(Role.PRIMARY_ALONE)
    r.attach(link)
    r.shipper(0).ship(mk(0))  # attached, resync not done: tracked only
    link.post(Mutation(Op.MKDIR, "/1/resync", mode=0o755))  # the last round's data
    r.go_live()
    assert r.live
    r.shipper(1).ship(mk(1))
    link.barrier()
    assert [m.path for m, _ in applier.applied] == ["/1/resync", "/1/d1"]


def test_mirroring_waits_for_the_peer(pair: LinkFactory) -> None:
    applier = RecordingApplier(delay=0.05)
    _, link = pair(applier, mode=Mode.SYNC)
    r = replicator([])
    r.set_role(Role.PRIMARY_MIRRORING)
    r.attach(link)
    r.go_live()
    r.shipper(0).ship(mk(1))
    assert len(applier.applied) == 1  # applied before ship returned


def test_link_lost_while_mirroring_is_reported_once_and_waits_for_alone(
    pair: LinkFactory,
) -> None:
    applier = RecordingApplier()
    _, link = pair(applier, mode=Mode.SYNC, timeout=0.3)
    lost: list[str] = []
    r = replicator(lost, timeout=2.0)
    r.set_role(Role.PRIMARY_MIRRORING)
    r.attach(link)
    r.go_live()
    applier.gate.clear()  # the secondary stops applying
    done: list[float] = []

    def write() -> None:
        r.shipper(0).ship(mk(1))
        done.append(time.monotonic())

    threads = [threading.Thread(target=write) for _ in range(3)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 3
    while not lost and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.2)
    assert len(lost) == 1 and "acknowledgement" in lost[0], lost
    assert done == []  # held: not acknowledged while the core decides
    went_alone = time.monotonic()
    r.set_role(Role.PRIMARY_ALONE)
    for t in threads:
        t.join(3)
    assert len(done) == 3 and min(done) >= went_alone
    applier.gate.set()


def test_held_writes_fail_when_the_core_does_not_go_alone(pair: LinkFactory) -> None:
    applier = RecordingApplier()
    _, link = pair(applier, timeout=0.2)
    lost: list[str] = []
    r = replicator(lost, timeout=0.5)
    r.set_role(Role.PRIMARY_MIRRORING)
    r.attach(link)
    r.go_live()
    link.close()
    started = time.monotonic()
    with pytest.raises(OSError) as err:
        r.shipper(0).ship(mk(1))
    assert err.value.errno == errno.EIO
    assert time.monotonic() - started < 2 * 0.5 + 0.5  # never more than twice the timeout
    assert len(lost) == 1


def test_mirroring_without_any_link_reports_it_once() -> None:
    lost: list[str] = []
    r = replicator(lost, timeout=0.2)
    r.set_role(Role.PRIMARY_MIRRORING)
    r.report_missing("no secondary connected")
    r.report_missing("no secondary connected")
    assert lost == ["no secondary connected"]


def test_on_sync_defers_plain_writes_to_the_next_fsync(pair: LinkFactory) -> None:
    applier = RecordingApplier()
    _, link = pair(applier, mode=Mode.SYNC, timeout=3.0)
    r = Replicator([], timeout=3.0, on_link_lost=lambda why: None, on_sync=True)
    r.set_role(Role.PRIMARY_MIRRORING)
    r.attach(link)
    r.go_live()
    applier.gate.clear()  # the secondary is slow
    write = Mutation(Op.WRITE, "/f", handle=3, offset=0, length=1, data=b"x")
    started = time.monotonic()
    r.shipper(0).ship(write)  # returns without the peer
    assert time.monotonic() - started < 0.5 and applier.applied == []
    fsynced: list[float] = []
    t = threading.Thread(
        target=lambda: (r.shipper(0).ship(Mutation(Op.FSYNC, "/f", handle=3)),
                        fsynced.append(time.monotonic())),
    )  # fmt: skip
    t.start()
    time.sleep(0.3)
    assert fsynced == []  # the fsync waits for the write before it
    applier.gate.set()
    t.join(3)
    assert fsynced and [m.op for m, _ in applier.applied] == [Op.WRITE, Op.FSYNC]
    # O_DSYNC writes are always per-write
    applier.gate.clear()
    done: list[bool] = []
    dsync = Mutation(Op.WRITE, "/f", handle=3, offset=1, length=1, data=b"y", flags=os.O_DSYNC)
    t = threading.Thread(target=lambda: (r.shipper(0).ship(dsync), done.append(True)))
    t.start()
    time.sleep(0.3)
    assert done == []
    applier.gate.set()
    t.join(3)
    assert done == [True]


def test_the_local_fsync_overlaps_the_peers_and_runs_once(pair: LinkFactory) -> None:
    """An fsync's frame is sent before the primary's own flush runs (``meanwhile``), so
    both disks flush at once; the call returns once both are done; in every other role
    the flush still runs, exactly once."""
    applier = RecordingApplier()
    _, link = pair(applier, mode=Mode.SYNC, timeout=3.0)
    r = Replicator([], timeout=3.0, on_link_lost=lambda why: None)
    r.set_role(Role.PRIMARY_MIRRORING)
    r.attach(link)
    r.go_live()
    applier.gate.clear()  # the secondary holds the fsync
    local: list[str] = []
    done: list[bool] = []
    fsync = Mutation(Op.FSYNC, "/f", handle=3)
    t = threading.Thread(
        target=lambda: (r.shipper(0).ship(fsync, lambda: local.append("flush")),
                        done.append(True)),
    )  # fmt: skip
    t.start()
    time.sleep(0.3)
    assert local == ["flush"] and done == []  # ours ran while the peer still works
    applier.gate.set()
    t.join(3)
    assert done == [True] and local == ["flush"]
    assert [m.op for m, _ in applier.applied] == [Op.FSYNC]
    for role in (Role.PRIMARY_ALONE, Role.OFF):
        r.set_role(role)
        with contextlib.suppress(OSError):
            r.shipper(0).ship(fsync, lambda name=role.value: local.append(name))
    assert local == ["flush", Role.PRIMARY_ALONE.value, Role.OFF.value]
