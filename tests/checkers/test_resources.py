"""The resource store: atomic file-per-resource values."""

from __future__ import annotations

from pathlib import Path

import pytest

from hamod.checkers.resources import ResourceStore
from hamod.errors import AdapterError, UsageError


def test_set_get_and_names(tmp_path: Path) -> None:
    store = ResourceStore(tmp_path / "res")
    assert store.get("custom.db") is None
    assert store.names() == ()
    store.set("custom.db", "up")
    store.set("custom.db", "down")
    assert store.get("custom.db") == "down"
    assert store.names() == ("custom.db",)
    assert [p.name for p in (tmp_path / "res").iterdir()] == ["custom.db"]


@pytest.mark.parametrize("name", ["", "../x", "a/b", ".hidden", "a..b"])
def test_bad_names_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(UsageError, match="bad resource name"):
        ResourceStore(tmp_path).set(name, "up")


def test_bad_values(tmp_path: Path) -> None:
    store = ResourceStore(tmp_path)
    with pytest.raises(UsageError, match="expected up or down"):
        store.set("custom.x", "sideways")
    (tmp_path / "custom.x").write_text("garbage\n")
    with pytest.raises(AdapterError, match="not up or down"):
        store.get("custom.x")
