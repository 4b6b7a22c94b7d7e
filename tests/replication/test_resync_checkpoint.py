"""A long resync round cut short at checkpoints (``ResyncStream.request_stop``,
``record_remaining``), and a resync that resumes after a link cut from its last
checkpoint instead of from zero (``ResyncSource`` with a fake link); also the
replicated directory's own attributes changed while ALONE (the stream must not try to
replace the directory itself).

Helpers (the application on a watched tree, frames, tree comparison) come from
``test_resync_stream``.
"""

from __future__ import annotations

import os
import random
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from hamod.core.model import DataHistory, Generation
from hamod.datapath.gate import Gate
from hamod.datapath.mutation import Mutation, Op
from hamod.replication import resync_source
from hamod.replication.applier import DirectoryApplier
from hamod.replication.link import LinkLost
from hamod.replication.multidir import ModuleApplier
from hamod.replication.resync_source import Carry, ResyncSource
from hamod.replication.resync_stream import ResyncStream, Touched, record_remaining
from hamod.runtime.codec import encode
from hamod.tracking import ChangeSet, ChangeTracker, LazyStorage
from hamod.tracking.replay import resolve_names
from hamod.tracking.types import FileRef
from tests.replication.test_resync_stream import (
    GEN,
    REGION,
    App,
    _trees,
    assert_same,
    random_op,
    through_frames,
)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (chown, mknod)")


def _set(tracker: ChangeTracker, source: Path) -> ChangeSet:
    changes = tracker.changes_since(GEN)
    assert isinstance(changes, ChangeSet)
    return resolve_names(changes, source)


def _files(source: Path, app: App, count: int, regions: int) -> int:
    """``count`` new files of ``regions`` regions each under ``set/``, written while
    ALONE; their bytes."""
    app.mkdir("set")
    for i in range(count):
        app.create(f"set/f{i}")
        app.write(f"set/f{i}", 0, bytes([i + 1]) * (regions * REGION))
    return count * regions * REGION


def test_the_directory_itself_changed_only_gets_its_attributes(tmp_path: Path) -> None:
    """chmod/utime of the replicated directory while ALONE: the set names it (``""``);
    the stream only sets its attributes (before: REMOVE "/", which every target refuses,
    so the resync failed forever)."""
    rng = random.Random(1)
    source, target = _trees(tmp_path, rng)
    tracker = ChangeTracker(storage=LazyStorage(), region_size=REGION)
    tracker.begin(GEN)
    app = App(source, tracker)
    tracker.setattr(FileRef("", os.lstat(source).st_ino))
    os.chmod(source, 0o750)
    app.touch("", 1_700_000_000_123_456_789)
    changes = _set(tracker, source)
    assert "" in changes.files
    mutations = list(ResyncStream(changes, source))
    assert not [m for m in mutations if m.op is Op.REMOVE], mutations
    applier = DirectoryApplier(target)
    try:
        through_frames(mutations, applier)
    finally:
        applier.close()
    assert_same(target, source, "root attributes")


def test_a_round_cut_short_leaves_exactly_the_files_it_did_not_reach(tmp_path: Path) -> None:
    """Stopped after two of six files: the rest is recorded again, the round's marker
    cleared; the next set holds only the four files left (no op, nothing sent twice) and
    the next round makes the target equal."""
    rng = random.Random(2)
    source, target = _trees(tmp_path, rng)
    tracker = ChangeTracker(storage=LazyStorage(), region_size=REGION)
    tracker.begin(GEN)
    app = App(source, tracker)
    data = _files(source, app, 6, 4)
    changes = _set(tracker, source)
    stream = ResyncStream(changes, source)
    applier = DirectoryApplier(target)
    sent = 0
    try:
        for m in stream:
            applier.apply(m, durable=False)
            sent += len(m.data or b"") if m.op is Op.WRITE else 0
            if m.op is Op.RELEASE and m.path == "/set/f1":
                stream.request_stop()
        assert stream.stopped
        left = stream.remaining()
        assert sorted(left.files) == [f"set/f{i}" for i in range(2, 6)]
        assert left.data_bytes == 4 * 4 * REGION
        assert record_remaining(tracker, source, left) == 4
        tracker.clear_upto(changes.upto)
        rest = _set(tracker, source)
        assert rest.ops == () and sorted(rest.files) == sorted(left.files)
        assert all(fc.regions == frozenset(range(4)) for fc in rest.files.values())
        second = ResyncStream(rest, source, previous=stream.touched())
        for m in second:
            applier.apply(m, durable=False)
            sent += len(m.data or b"") if m.op is Op.WRITE else 0
    finally:
        applier.close()
    assert_same(target, source, "after the checkpoint")
    assert sent == data


def test_rounds_cut_short_converge_while_the_application_writes(
    tmp_path: Path, scale: object
) -> None:
    """Random ALONE periods, then rounds cut short at random points (each: the files
    left recorded again, the marker cleared, ``touched()`` handed on) while the
    application keeps changing the source between any two mutations; a last round with
    the application held leaves the target equal to the source."""
    for seed in range(300 if getattr(scale, "soak", False) else 40):
        rng = random.Random(7000 + seed)
        tmp = tmp_path / str(seed)
        tmp.mkdir()
        source, target = _trees(tmp, rng)
        tracker = ChangeTracker(storage=LazyStorage(), region_size=REGION)
        tracker.begin(GEN)
        app = App(source, tracker)
        for _ in range(rng.randint(1, 20)):
            random_op(app, rng)
        if rng.random() < 0.3:
            _files(source, app, rng.randint(1, 5), rng.randint(1, 3))
        previous: Touched | None = None
        applier = DirectoryApplier(target)
        rate = rng.choice([0.0, 0.05, 0.3])
        try:
            for last in [False] * rng.randint(1, 5) + [True]:
                changes = _set(tracker, source)
                stream = ResyncStream(changes, source, previous=previous)
                stop_after = None if last else rng.randint(0, 40)
                for n, m in enumerate(stream):
                    applier.apply(m, durable=False)
                    if stop_after is not None and n >= stop_after:
                        stream.request_stop()
                    if not last and rng.random() < rate:
                        random_op(app, rng)
                if stream.stopped:
                    record_remaining(tracker, source, stream.remaining())
                tracker.clear_upto(changes.upto)
                previous = stream.touched()
        finally:
            applier.close()
        assert_same(target, source, f"seed {7000 + seed}")


# --- the source of a resync, resumed after a cut -----------------------------------------


class FakeLink:
    """The peer link of a resync: mutations applied to the target at once; cut (LinkLost)
    once ``cut_at`` bytes of data were posted."""

    def __init__(self, applier: ModuleApplier, cut_at: int | None = None) -> None:
        self.applier = applier
        self.cut_at = cut_at
        self.sent = 0

    def post(self, m: Mutation) -> None:
        if self.cut_at is not None and self.sent >= self.cut_at:
            raise LinkLost("cut")
        self.applier.apply(m, durable=False)
        self.sent += len(m.data or b"") if m.op is Op.WRITE else 0

    def barrier(self) -> None:
        return None

    def flush(self) -> None:
        self.applier.flush()

    def control(self, msg: dict[str, Any], wait: bool = True) -> None:
        return None


class FakeReplicator:
    live = False

    def go_live(self) -> None:
        self.live = True


def test_a_resync_cut_resumes_from_its_last_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A resync of 48 files is cut after half of them; the next attempt (same session,
    same carry) sends what the checkpoints had not yet made durable, not everything
    again, and the target ends equal."""
    monkeypatch.setattr(resync_source, "CHECKPOINT", 8 * REGION)
    monkeypatch.setattr(resync_source, "CHECKPOINT_SHARE", 1e9)  # spaced by bytes only
    monkeypatch.setattr(resync_source, "SMALL", 4 * REGION)  # the last round: small
    monkeypatch.setattr(os, "sync", lambda: None)  # the checkpoints flush: no machine sync
    rng = random.Random(3)
    source, target = _trees(tmp_path, rng)
    tracker = ChangeTracker(storage=LazyStorage(), region_size=REGION)
    old = Generation("a", 1, 1)
    tracker.begin(GEN)
    app = App(source, tracker)
    data = _files(source, app, 48, 4)
    cfg = SimpleNamespace(
        under=lambda i: source, bandwidth=None, link_timeout=1.0, peer="n2",
        directories=[source], excludes=[[]],
    )  # fmt: skip
    history = DataHistory(GEN, (old,))
    carry = Carry.fresh(1)
    reply = {"want": "resync", "full": False, "current": encode(old)}
    applier = ModuleApplier([DirectoryApplier(target)])
    sent = []
    try:
        for cut_at in (data // 2, None):
            link = FakeLink(applier, cut_at)
            src = ResyncSource(
                cfg, [tracker], FakeReplicator(), Gate(), link,  # type: ignore[arg-type]
                history, threading.Event(), carry,
            )  # fmt: skip
            if cut_at is not None:
                with pytest.raises(LinkLost):
                    src.run(reply)
                assert carry.interrupted
            else:
                src.run(reply)
            sent.append(link.sent)
    finally:
        applier.close()
    assert_same(target, source, "after the resumed resync")
    assert sent[0] >= data // 2
    # resumed: the second attempt sends what the first did not make durable (at most one
    # checkpoint's worth twice), not the whole data set again
    assert sent[1] <= data - sent[0] + 12 * REGION, (sent, data)
