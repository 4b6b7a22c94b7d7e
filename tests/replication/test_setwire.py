"""A target's own changes as JSON: round trip, and every bad field refused by name."""

from __future__ import annotations

from typing import Any

import pytest

from hamod.errors import PeerError
from hamod.replication import setwire
from hamod.tracking.types import ChangeSet, Create, FileChanges, Rename, Unknown


def test_round_trip_keeps_what_merge_uses() -> None:
    cs = ChangeSet(
        1 << 20,
        42,
        ops=(Create("new"), Rename("a", "b")),
        names=frozenset({"gone"}),
        files={"f": FileChanges(frozenset({0, 3}), 5, True), "g": FileChanges()},
    )
    back = setwire.load(setwire.dump(cs))
    assert isinstance(back, ChangeSet)
    assert back.names == {"gone", "new", "a", "b"}  # op names are reconciled whole
    assert back.files == cs.files and back.region_size == cs.region_size and not back.ops
    assert setwire.load(setwire.dump(Unknown("journal damaged"))) == Unknown("journal damaged")
    assert setwire.load(setwire.dump(None)) is None


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ([], "not an object"),
        ({"unknown": 3}, "unknown"),
        ({"region_size": 1000, "names": [], "files": {}}, "region_size"),
        ({"region_size": True, "names": [], "files": {}}, "region_size"),
        ({"region_size": 4096, "files": {}}, "names or files"),
        ({"region_size": 4096, "names": ["/abs"], "files": {}}, "names"),
        ({"region_size": 4096, "names": ["a/../../etc"], "files": {}}, "names"),
        ({"region_size": 4096, "names": ["a\0b"], "files": {}}, "names"),
        ({"region_size": 4096, "names": [], "files": {"f": [[1], None]}}, "files['f']"),
        ({"region_size": 4096, "names": [], "files": {"f": [[-1], None, False]}}, "regions"),
        ({"region_size": 4096, "names": [], "files": {"f": [[1], "x", False]}}, "tail"),
        ({"region_size": 4096, "names": [], "files": {"f": [[1], None, 1]}}, "files['f']"),
    ],
)
def test_bad_sets_are_refused_naming_the_field(data: Any, field: str) -> None:
    with pytest.raises(PeerError) as err:
        setwire.load(data)
    assert field in str(err.value)
