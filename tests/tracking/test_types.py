"""Pure parts: merge of two sides' change sets, first_missing, the record codec (round
trip, torn frames), the snapshot round trip, and input validation."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hamod.core.model import DataHistory, Generation
from hamod.errors import UsageError
from hamod.tracking import (
    ChangeSet,
    ChangeTracker,
    Create,
    FileChanges,
    FileRef,
    LazyStorage,
    Link,
    Rename,
    Unknown,
    Unlink,
    first_missing,
    merge,
)
from hamod.tracking.records import Kind, Record, decode_frames, encode

G1, G2, G3 = Generation("a", 1, 1), Generation("b", 2, 1), Generation("b", 3, 2)


def test_merge_unions_files_and_carries_the_targets_names_through_renames() -> None:
    source = ChangeSet(
        4096,
        10,
        (G2,),
        (Rename("dir", "moved"), Create("new")),
        frozenset(),
        {"moved/x": FileChanges(frozenset({1}))},
    )
    target = ChangeSet(
        4096,
        3,
        (),
        (),
        frozenset({"dir/created-unacked"}),
        {"dir/x": FileChanges(frozenset({7}), tail_from=9), "other": FileChanges(attrs=True)},
    )
    both = merge(source, target)
    assert isinstance(both, ChangeSet)
    assert both.ops == source.ops and both.upto == 10
    assert {"dir/created-unacked", "moved/created-unacked"} <= both.names
    assert both.files["moved/x"] == FileChanges(frozenset({1, 7}), tail_from=9)
    assert both.files["other"].attrs


def test_merge_turns_the_targets_ops_into_names_and_rescales_regions() -> None:
    source = ChangeSet(8192, 1, files={"f": FileChanges(frozenset({1}))})
    target = ChangeSet(
        4096,
        1,
        ops=(Unlink("gone", 5, 0), Link("a", "b", 6)),
        files={"f": FileChanges(frozenset({5}))},
    )
    both = merge(source, target)
    assert isinstance(both, ChangeSet)
    assert both.region_size == 8192
    assert both.names == {"gone", "a", "b"}
    assert both.files["f"].regions == {1, 2}


def test_merge_unknown_and_orphans() -> None:
    known = ChangeSet(4096, 1)
    assert merge(Unknown("x"), known) == Unknown("x")
    assert merge(known, Unknown("y")) == Unknown("y")
    with pytest.raises(UsageError, match="orphans"):
        merge(ChangeSet(4096, 1, orphans={3: FileChanges(attrs=True)}), known)


def test_first_missing() -> None:
    mine = DataHistory(G3, (G2, G1))
    assert first_missing(mine, G1) == G2
    assert first_missing(mine, G2) == G3
    assert first_missing(mine, G3) is None  # the peer is not behind
    assert first_missing(mine, Generation("z", 9, 9)) is None  # unknown: full copy


texts = st.text(st.characters(blacklist_categories=["Cs"]), max_size=20)


@given(
    kind=st.sampled_from(list(Kind)),
    seq=st.integers(0, 2**63 - 1),
    ints=st.lists(st.integers(-(2**63), 2**63 - 1), max_size=6),
    strs=st.lists(texts, max_size=3),
)
def test_records_round_trip_and_any_truncation_is_detected(
    kind: Kind, seq: int, ints: list[int], strs: list[str]
) -> None:
    record = Record(kind, seq, tuple(ints), tuple(strs))
    frame = encode(record)
    decoded = decode_frames(frame, 0)
    assert decoded.records == (record,) and decoded.problem is None
    for cut in range(len(frame)):
        partial = decode_frames(frame[:cut], 0)
        assert partial.records == () and (cut == 0 or partial.problem)


def test_paths_that_are_not_utf8_round_trip() -> None:
    name = b"caf\xe9".decode("utf-8", "surrogateescape")
    record = Record(Kind.REGION, 1, (0, 1, 2), (name,))
    assert decode_frames(encode(record), 0).records == (record,)


def test_snapshot_round_trip_keeps_every_item_and_its_seq() -> None:
    storage = LazyStorage()
    t = ChangeTracker(storage=storage, region_size=4096)
    t.mirror()
    t.write(FileRef("hot", 9), 0, 1)
    t.namespace(Create("hotname"))
    t.begin(G1)
    t.write(FileRef("f", 1), 4096 * 3, 10)
    t.truncate(FileRef("f", 1), 100)
    t.setattr(FileRef("d", 2))
    t.namespace(Rename("f", "g"))
    t.namespace(Link("g", "h", 1))
    before = (t.changes_since(G1), t.unacknowledged())
    t.compact()
    storage.crash()
    t2 = ChangeTracker(storage=storage, region_size=4096)
    after = (t2.changes_since(G1), t2.unacknowledged())
    assert after == before
    assert isinstance(after[0], ChangeSet)
    assert after[0].files["g"] == FileChanges(frozenset({3}), tail_from=0)
    assert "hotname" in after[0].names  # the activity log was folded in by begin


def test_bad_region_size_is_refused() -> None:
    with pytest.raises(UsageError, match="power of two"):
        ChangeTracker(storage=LazyStorage(), region_size=3000)
