"""Cost bound of tracking: one durable record for the first change of a region (or name)
after a sync point, nothing for later ones; group commit; and never a hook returning
(the write going ahead) before its record is durable."""

from __future__ import annotations

import threading
import time

from hamod.core.model import Generation
from hamod.tracking import ChangeTracker, Create, FileRef, LazyStorage, Rename
from hamod.tracking.journal import JOURNAL
from hamod.tracking.records import Kind, decode_frames

R = 4096
GEN = Generation("a", 1, 1)
F = FileRef("f", 11)


def _tracker(storage: LazyStorage | None = None) -> tuple[ChangeTracker, LazyStorage]:
    storage = storage or LazyStorage()
    return ChangeTracker(storage=storage, region_size=R), storage


def _durable_records(storage: LazyStorage) -> list[tuple[Kind, tuple[int, ...]]]:
    data = storage.durable(JOURNAL) or b""
    return [(r.kind, r.ints) for r in decode_frames(data).records]


def test_n_writes_to_one_region_pay_one_record() -> None:
    tracker, storage = _tracker()
    tracker.begin(GEN)
    before = tracker.stats()
    for i in range(1000):
        tracker.write(F, (i * 7) % (R - 3), 3)
    after = tracker.stats()
    assert after.records - before.records == 1
    assert after.syncs - before.syncs == 1
    assert storage.unsynced(JOURNAL) == 0


def test_k_distinct_regions_pay_k_records_and_each_is_durable_on_return() -> None:
    tracker, storage = _tracker()
    tracker.begin(GEN)
    base = tracker.stats().records
    for k in range(50):
        tracker.write(F, k * R + 10, 100)
        assert storage.unsynced(JOURNAL) == 0
        regions = {ints[2] for kind, ints in _durable_records(storage) if kind is Kind.REGION}
        assert k in regions  # the record is durable before the write may proceed
    for k in range(50):
        tracker.write(F, k * R, R)  # again: free
    assert tracker.stats().records - base == 50


def test_one_write_over_many_regions_is_one_sync() -> None:
    tracker, _ = _tracker()
    tracker.begin(GEN)
    before = tracker.stats()
    tracker.write(F, R - 1, 3 * R)  # touches regions 0..3
    after = tracker.stats()
    assert (after.records - before.records, after.syncs - before.syncs) == (4, 1)


def test_a_sync_point_rearms_every_region() -> None:
    tracker, _ = _tracker()
    tracker.begin(GEN)
    tracker.write(F, 0, 1)
    first = tracker.changes_since(GEN)
    before = tracker.stats().records
    tracker.write(F, 0, 1)
    tracker.write(F, 0, 1)
    assert tracker.stats().records - before == 1
    tracker.clear_upto(first.upto)  # type: ignore[union-attr]
    after = tracker.changes_since(GEN)
    assert after.files["f"].regions == {0}  # type: ignore[union-attr]  # rewritten: kept


def test_truncate_pays_only_when_it_lowers_the_tail() -> None:
    tracker, _ = _tracker()
    tracker.begin(GEN)
    base = tracker.stats().records
    tracker.truncate(F, 10 * R)
    tracker.truncate(F, 12 * R)
    tracker.truncate(F, 10 * R + 5)
    assert tracker.stats().records - base == 1
    tracker.truncate(F, 3 * R)
    assert tracker.stats().records - base == 2
    assert tracker.changes_since(GEN).files["f"].tail_from == 3  # type: ignore[union-attr]


def test_namespace_ops_each_pay_one_record_while_tracking() -> None:
    tracker, _ = _tracker()
    tracker.begin(GEN)
    base = tracker.stats().records
    for i in range(5):
        tracker.namespace(Create(f"t{i}"))
        tracker.namespace(Rename(f"t{i}", "final"))
    assert tracker.stats().records - base == 10


def test_activity_log_hot_once_then_free_cools_then_pays_again() -> None:
    tracker, _ = _tracker()
    tracker.mirror()
    base = tracker.stats().records
    w = 0
    for _ in range(100):
        tracker.write(F, 0, 10)
        w = tracker.namespace(Rename("tmp", "final"))
    assert tracker.stats().records - base == 2  # one HOT region, one hot-names op
    assert tracker.sync_point(w, force=True) == 3  # region, tmp, final
    assert tracker.unacknowledged().empty  # type: ignore[union-attr]
    tracker.write(F, 0, 10)
    assert tracker.stats().records - base == 4  # the COOL record, then HOT again


def test_cooling_waits_for_a_batch_and_never_cools_a_newer_write() -> None:
    tracker = ChangeTracker(storage=LazyStorage(), region_size=R, cool_batch=4)
    tracker.mirror()
    acked = tracker.write(F, 0, 1)
    assert tracker.sync_point(acked) == 0  # one eligible item: below the batch
    for k in range(1, 4):
        acked = tracker.write(F, k * R, 1)
    tracker.write(FileRef("g", 12), 0, 1)  # not acknowledged yet
    assert tracker.sync_point(acked) == 4  # regions 0..3 of f
    left = tracker.unacknowledged()
    assert set(left.files) == {"g"}  # type: ignore[union-attr]


def test_group_commit_batches_concurrent_writers_and_acks_none_early() -> None:
    storage = LazyStorage()
    tracker, _ = _tracker(storage)
    tracker.begin(GEN)
    storage.on_sync.append(lambda: time.sleep(0.002))  # a slow disk makes batches form
    problems: list[str] = []

    def writer(n: int) -> None:
        for k in range(20):
            region = n * 100 + k
            tracker.write(F, region * R, 1)
            durable = {i[2] for kind, i in _durable_records(storage) if kind is Kind.REGION}
            if region not in durable:
                problems.append(f"region {region} acknowledged before durable")

    before = tracker.stats()
    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    after = tracker.stats()
    assert not problems
    assert after.records - before.records == 80
    assert after.syncs - before.syncs < 80
