"""Crash recovery: a crash at every step of a sequence (the fake keeps unsynced bytes and
names apart and drops them, or keeps a torn prefix) never loses an acknowledged change;
torn records are ignored and later appends stay visible; compaction is crash-safe; an
unknown history is reported, never guessed."""

from __future__ import annotations

import contextlib
import random
from dataclasses import dataclass, field

import pytest

from hamod.core.model import Generation
from hamod.tracking import (
    ChangeSet,
    ChangeTracker,
    Create,
    FileRef,
    LazyStorage,
    Rename,
    SimulatedCrash,
    Unknown,
)
from hamod.tracking.journal import JOURNAL, SNAPSHOT

R = 4096
GEN = Generation("a", 3, 1)


@dataclass
class Acked:
    """What the scenario was told is durable (hooks that returned)."""

    tracked: set[tuple[str, int]] = field(default_factory=set)
    ops: list[object] = field(default_factory=list)
    hot: set[tuple[str, int]] = field(default_factory=set)
    hot_names: set[str] = field(default_factory=set)


def _scenario(t: ChangeTracker, acked: Acked) -> None:
    f, g = FileRef("f", 1), FileRef("g", 2)
    t.begin(GEN)
    for region in (0, 1, 1, 2, 0, 5):
        t.write(f, region * R, 10)
        acked.tracked.add(("f", region))
    for op in (Create("g"), Rename("g", "g2"), Create("g")):
        t.namespace(op)
        acked.ops.append(op)
    t.write(g, 3 * R, 2 * R)
    acked.tracked |= {("g", 3), ("g", 4)}
    t.compact()
    t.write(f, 9 * R, 1)
    acked.tracked.add(("f", 9))
    marker = t.changes_since(GEN)
    assert isinstance(marker, ChangeSet)
    t.write(f, 0, 1)  # after the marker: must survive the clear
    acked.tracked, acked.ops = {("f", 0)}, []  # the peer has the rest: no longer needed
    t.clear_upto(marker.upto)
    t.write(f, 11 * R, 1)
    acked.tracked.add(("f", 11))
    t.mirror()
    for region in range(4):
        w = t.write(g, region * R, 1)
        acked.hot.add(("g", region))
    t.namespace(Create("n1"))
    acked.hot_names.add("n1")
    acked.hot -= {("g", r) for r in range(4)}  # the peer has them (not n1): may cool
    t.sync_point(w, force=True)
    t.write(g, 7 * R, 1)
    acked.hot.add(("g", 7))
    t.compact()
    t.write(f, 2 * R, 1)
    acked.hot.add(("f", 2))


def _check(t: ChangeTracker, acked: Acked, where: str) -> None:
    tracked = t.changes_since(GEN) if acked.tracked or acked.ops else None
    if tracked is not None:
        assert isinstance(tracked, ChangeSet), f"{where}: {tracked}"
        have = {(p, r) for p, c in tracked.files.items() for r in c.regions}
        assert acked.tracked <= have, f"{where}: lost {acked.tracked - have}"
        assert list(tracked.ops[: len(acked.ops)]) == acked.ops, where
    al = t.unacknowledged()
    assert isinstance(al, ChangeSet)
    have = {(p, r) for p, c in al.files.items() for r in c.regions}
    assert acked.hot <= have, f"{where}: activity log lost {acked.hot - have}"
    assert acked.hot_names <= al.names, where


def test_no_acknowledged_change_is_lost_whatever_step_the_crash_hits() -> None:
    probe = LazyStorage()
    _scenario(ChangeTracker(storage=probe, region_size=R), Acked())
    total = probe.steps
    rng = random.Random(7)
    for crash_at in range(1, total + 2):
        for torn in (False, True):
            storage = LazyStorage()
            acked = Acked()
            storage.crash_at = crash_at
            with contextlib.suppress(SimulatedCrash):
                _scenario(ChangeTracker(storage=storage, region_size=R), acked)
            storage.crash(rng if torn else None)
            reopened = ChangeTracker(storage=storage, region_size=R)
            _check(reopened, acked, f"crash at step {crash_at} (torn={torn})")
            reopened.write(FileRef("z", 9), 0, 1)  # and it keeps working after recovery
            storage.crash()  # a second power-off right after recovery
            _check(ChangeTracker(storage=storage, region_size=R), acked, f"again {crash_at}")


def test_a_torn_record_is_ignored_and_later_records_stay_visible() -> None:
    storage = LazyStorage()
    t = ChangeTracker(storage=storage, region_size=R)
    t.begin(GEN)
    t.write(FileRef("f", 1), 0, 1)
    journal = storage.open_append(JOURNAL)
    journal.write(b"\x30\x00\x00\x00garbage-that-is-not-a-record")
    journal.sync()  # even a synced torn tail: it can only be a never-acknowledged record
    t2 = ChangeTracker(storage=storage, region_size=R)
    assert any("checksum" in n or "torn" in n for n in t2.notes)
    t2.write(FileRef("f", 1), 5 * R, 1)
    storage.crash()
    t3 = ChangeTracker(storage=storage, region_size=R)
    changes = t3.changes_since(GEN)
    assert isinstance(changes, ChangeSet)
    assert changes.files["f"].regions == {0, 5}


def test_auto_compaction_bounds_the_journal() -> None:
    storage = LazyStorage()
    t = ChangeTracker(storage=storage, region_size=R, compact_bytes=4096)
    t.mirror()
    for i in range(300):
        w = t.write(FileRef("f", 1), (i % 20) * R, 1)
        t.sync_point(w, force=True)
    assert t.stats().compactions > 0
    assert len(storage.read(JOURNAL) or b"") < 4096 + 200


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        ("snapshot", "snapshot damaged"),
        ("journal-header", "journal damaged"),
        ("journal-missing", "journal missing"),
        ("snapshot-missing", "snapshot missing"),
    ],
)
def test_unknown_history_is_reported(damage: str, reason: str) -> None:
    storage = LazyStorage()
    t = ChangeTracker(storage=storage, region_size=R)
    t.begin(GEN)
    t.write(FileRef("f", 1), 0, 1)
    t.compact()
    t.write(FileRef("f", 1), R, 1)
    if damage == "snapshot":
        storage.corrupt(SNAPSHOT, 30)
    elif damage == "journal-header":
        storage.corrupt(JOURNAL, 2)
    else:
        storage.remove(JOURNAL if damage == "journal-missing" else SNAPSHOT)
        storage.sync_dir()
    t2 = ChangeTracker(storage=storage, region_size=R)
    result = t2.changes_since(GEN)
    assert isinstance(result, Unknown) and reason in result.reason
    assert isinstance(t2.unacknowledged(), Unknown)
    storage.crash()
    t3 = ChangeTracker(storage=storage, region_size=R)  # still unknown after a restart
    assert isinstance(t3.changes_since(GEN), Unknown)
    t3.reset()  # a full copy is made: history starts again
    t3.begin(Generation("a", 4, 1))
    assert isinstance(t3.changes_since(Generation("a", 4, 1)), ChangeSet)


def test_unknown_generation_and_explicit_loss() -> None:
    t = ChangeTracker(storage=LazyStorage(), region_size=R)
    t.begin(GEN)
    other = Generation("b", 9, 9)
    result = t.changes_since(other)
    assert isinstance(result, Unknown) and "not tracked here" in result.reason
    t.lose("data path restarted without tracking")
    result = t.changes_since(GEN)
    assert isinstance(result, Unknown) and "without tracking" in result.reason
