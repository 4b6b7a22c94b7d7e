"""DurableStore: round trip, atomic replace (crash seam), fsync of file and directory,
corruption detected with fallback to .prev, format migration and refusal, permissions,
thread serialization, and arbitrary JSON contents round-tripping."""

from __future__ import annotations

import json
import os
import re
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict, JsonValue

from hamod.adapters.store import DurableStore, JsonObject, canonical_json
from hamod.errors import AdapterError


class Status(BaseModel):
    model_config = ConfigDict(frozen=True)

    state: str
    up_to_date: bool
    generations: tuple[int, ...] = ()
    term: int = 0


class StatusV1(BaseModel):
    state: str
    uptodate: int


class Blob(BaseModel):
    data: JsonValue


PRIM = Status(state="PRIM", up_to_date=True, generations=(3, 2, 1), term=7)
SECOND = Status(state="SECOND", up_to_date=False, generations=(4, 3), term=8)


def v1_to_v2(body: JsonObject) -> JsonObject:
    return {"state": body["state"], "up_to_date": bool(body.pop("uptodate")), "term": 0}


def store(
    path: Path,
    version: int = 2,
    *,
    notify: Callable[[str], None] | None = None,
    fsync: Callable[[int], None] = os.fsync,
    replace: Callable[[Path, Path], None] = os.replace,
) -> DurableStore[Status]:
    migrations = {1: v1_to_v2} if version >= 2 else {}
    return DurableStore(
        path, Status, version, migrations, notify=notify, fsync=fsync, replace=replace
    )


def flip_byte(path: Path, at: int, mask: int = 0x01) -> None:
    raw = bytearray(path.read_bytes())
    raw[at] ^= mask
    path.write_bytes(bytes(raw))


def test_round_trip_and_absent(tmp_path: Path) -> None:
    s = store(tmp_path / "pg.json")
    assert s.load() is None and s.load_result() is None
    s.save(PRIM)
    assert s.load() == PRIM
    s.save(SECOND)
    result = s.load_result()
    assert result is not None
    assert (result.value, result.source, result.recovered_from, result.migrated_from) == (
        SECOND, tmp_path / "pg.json", None, None,
    )  # fmt: skip
    assert store(tmp_path / "pg.json").load() == SECOND  # a fresh instance reads it too


def test_file_carries_version_and_checksum_and_keeps_previous(tmp_path: Path) -> None:
    path = tmp_path / "pg.json"
    s = store(path)
    s.save(PRIM)
    s.save(SECOND)
    doc = json.loads(path.read_text())
    assert doc["format_version"] == 2 and len(doc["sha256"]) == 64
    assert doc["body"] == SECOND.model_dump(mode="json")
    assert path.read_bytes() == s.encode(SECOND)
    assert json.loads((tmp_path / "pg.json.prev").read_text())["body"]["state"] == "PRIM"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pg.json", "pg.json.prev"]


def test_failed_rename_keeps_old_content_and_cleans_up(tmp_path: Path) -> None:
    path = tmp_path / "pg.json"

    def failing_replace(src: Path, dst: Path) -> None:
        if dst == path:
            raise OSError(5, "Input/output error")
        os.replace(src, dst)

    store(path).save(PRIM)
    with pytest.raises(AdapterError, match=rf"{path}: cannot rename \.pg\.json\.tmp-.* over"):
        store(path, replace=failing_replace).save(SECOND)
    assert store(path).load() == PRIM
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pg.json", "pg.json.prev"]


class Crash(BaseException):
    """The process dies here: nothing after it runs, not even cleanup."""


def test_crash_between_temp_write_and_rename_leaves_old_content(tmp_path: Path) -> None:
    path = tmp_path / "pg.json"
    store(path).save(PRIM)

    def crash_on_main(src: Path, dst: Path) -> None:
        if dst == path:
            assert src.read_bytes() == store(path).encode(SECOND)  # new content fully written
            raise Crash
        os.replace(src, dst)

    with pytest.raises(Crash):
        store(path, replace=crash_on_main).save(SECOND)
    assert store(path).load() == PRIM
    assert any(p.name.startswith(".pg.json.tmp-") for p in tmp_path.iterdir())
    store(path).save(SECOND)  # the next save sweeps the leftover
    assert store(path).load() == SECOND
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pg.json", "pg.json.prev"]


def test_fsync_reaches_the_file_then_the_directory_after_the_rename(tmp_path: Path) -> None:
    path = tmp_path / "pg.json"
    events: list[tuple[str, str]] = []

    def fsync(fd: int) -> None:
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        os.fsync(fd)

    def replace(src: Path, dst: Path) -> None:
        events.append(("replace", str(dst)))
        os.replace(src, dst)

    s = store(path, fsync=fsync, replace=replace)
    s.save(PRIM)
    assert [e[0] for e in events] == ["fsync", "replace", "fsync"]
    assert Path(events[0][1]).name.startswith(".pg.json.tmp-")
    assert events[1:] == [("replace", str(path)), ("fsync", str(tmp_path))]
    events.clear()
    s.save(SECOND)  # now also keeps the previous copy, before replacing the main file
    assert [e for e in events if e[0] == "replace"] == [
        ("replace", str(path) + ".prev"),
        ("replace", str(path)),
    ]
    assert events[-1] == ("fsync", str(tmp_path))


def test_corrupted_file_is_detected_and_previous_copy_used(tmp_path: Path) -> None:
    path = tmp_path / "pg.json"
    notes: list[str] = []
    s = store(path, notify=notes.append)
    s.save(PRIM)
    s.save(SECOND)
    flip_byte(path, path.read_bytes().index(b"SECOND") + 1)  # "SDCOND": still valid JSON
    result = s.load_result()
    assert result is not None and result.value == PRIM
    assert result.source == tmp_path / "pg.json.prev"
    assert result.recovered_from is not None
    assert result.recovered_from.startswith(f"{path}: checksum mismatch (file says ")
    assert notes == [f"status store {path}: {result.recovered_from.split(': ', 1)[1]}; "
                     f"using {path}.prev"]  # fmt: skip
    s.save(SECOND)  # the bad file is replaced, and never becomes the previous copy
    assert s.load() == SECOND
    assert json.loads((tmp_path / "pg.json.prev").read_text())["body"]["state"] == "PRIM"


@pytest.mark.parametrize(
    ("damage", "cause"),
    [
        (lambda p: p.write_bytes(p.read_bytes()[:40]), r"not JSON \(.* at byte \d+\)"),
        (lambda p: p.write_bytes(b""), "empty file"),
        (lambda p: p.write_bytes(b"\xff\xfe{}"), "not UTF-8 at byte 0"),
        (lambda p: p.write_text('{"state": "PRIM"}'), r"not a hamod store document"),
        (lambda p: p.write_text(p.read_text().replace('"format_version":2', '"format_version":3')),
         "checksum mismatch"),
        (lambda p: p.unlink(), "missing"),
    ],
)  # fmt: skip
def test_every_kind_of_damage_falls_back_to_previous(
    tmp_path: Path, damage: Callable[[Path], object], cause: str
) -> None:
    path = tmp_path / "pg.json"
    s = store(path)
    s.save(PRIM)
    s.save(SECOND)
    damage(path)
    result = s.load_result()
    assert result is not None and result.value == PRIM
    assert result.recovered_from is not None
    assert result.recovered_from.startswith(f"{path}: ")
    assert re.search(cause, result.recovered_from)


def test_both_copies_corrupted_is_an_error_naming_the_files(tmp_path: Path) -> None:
    path = tmp_path / "pg.json"
    s = store(path)
    s.save(PRIM)
    s.save(SECOND)
    flip_byte(path, 5)
    flip_byte(tmp_path / "pg.json.prev", 20, 0x40)
    with pytest.raises(AdapterError) as info:
        s.load()
    message = str(info.value)
    assert message.startswith(f"status store {path}: ")
    assert f"previous copy {path}.prev is unusable too: " in message


def test_corrupted_without_previous_copy_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "pg.json"
    store(path).save(PRIM)
    flip_byte(path, 10)
    with pytest.raises(AdapterError, match=rf"{path}: .*; no previous copy pg\.json\.prev"):
        store(path).load()


def test_any_single_bit_flip_is_detected_or_harmless(tmp_path: Path) -> None:
    path = tmp_path / "pg.json"
    store(path).save(PRIM)
    good = path.read_bytes()
    for at in range(len(good)):
        for bit in range(8):
            path.write_bytes(good)
            flip_byte(path, at, 1 << bit)
            try:
                value = store(path).load()
            except AdapterError:
                continue
            assert value == PRIM, (at, bit)


def test_previous_format_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "pg.json"
    old = DurableStore(path, StatusV1, 1)
    old.save(StatusV1(state="SECOND", uptodate=1))
    notes: list[str] = []
    result = store(path, notify=notes.append).load_result()
    assert result is not None
    assert result.value == Status(state="SECOND", up_to_date=True)
    assert (result.migrated_from, result.format_version) == (1, 2)
    assert notes == [f"status store {path}: migrated from format 1 to 2"]


def test_migration_gaps_and_failures_are_clear(tmp_path: Path) -> None:
    path = tmp_path / "pg.json"
    DurableStore(path, StatusV1, 1).save(StatusV1(state="WAIT", uptodate=0))
    with pytest.raises(AdapterError, match="format 1 is too old: no migration from format 1 to 2"):
        DurableStore(path, Status, 3, {2: lambda b: b}).load()

    def broken(body: JsonObject) -> JsonObject:
        raise KeyError("uptodate")

    with pytest.raises(AdapterError, match="migrating format 1 to 2 failed: KeyError"):
        DurableStore(path, Status, 2, {1: broken}).load()
    with pytest.raises(AdapterError, match=r"migrations \[2\] outside 1\.\.1"):
        DurableStore(path, Status, 2, {2: broken})


def test_newer_format_is_refused_even_with_an_older_previous_copy(tmp_path: Path) -> None:
    path = tmp_path / "pg.json"
    store(path, version=2).save(PRIM)
    store(path, version=3).save(SECOND)
    with pytest.raises(AdapterError) as info:
        store(path, version=2).load()
    assert str(info.value) == (
        f"status store {path}: written by a newer hamod: format 3, this hamod reads ≤ 2"
    )


def test_content_that_does_not_fit_the_model_names_the_field(tmp_path: Path) -> None:
    path = tmp_path / "pg.json"
    DurableStore(path, StatusV1, 2).save(StatusV1(state="PRIM", uptodate=1))
    with pytest.raises(AdapterError, match=rf"{path}: content does not fit Status: up_to_date: "):
        store(path).load()


def test_wrong_value_type_and_unwritable_directory(tmp_path: Path) -> None:
    with pytest.raises(AdapterError, match="expected Status, got StatusV1"):
        store(tmp_path / "pg.json").save(StatusV1(state="x", uptodate=0))  # type: ignore[arg-type]
    (tmp_path / "file").write_text("")
    with pytest.raises(AdapterError, match=r"file exists and is not a directory"):
        store(tmp_path / "file" / "sub" / "pg.json").save(PRIM)


def test_permissions_file_0600_new_directories_0700(tmp_path: Path) -> None:
    before = stat.S_IMODE(tmp_path.stat().st_mode)
    old_umask = os.umask(0o022)
    try:
        path = tmp_path / "var" / "lib" / "hamod" / "pg.json"
        store(path).save(PRIM)
        store(path).save(SECOND)
    finally:
        os.umask(old_umask)
    for file in (path, path.with_name("pg.json.prev")):
        assert stat.S_IMODE(file.stat().st_mode) == 0o600
    for directory in (path.parent, path.parent.parent, path.parent.parent.parent):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE(tmp_path.stat().st_mode) == before  # existing directories untouched


def test_concurrent_saves_from_threads_are_serialized(tmp_path: Path) -> None:
    path = tmp_path / "pg.json"
    inside = 0
    overlap: list[int] = []
    guard = threading.Lock()

    def slow_replace(src: Path, dst: Path) -> None:
        nonlocal inside
        with guard:
            inside += 1
            overlap.append(inside)
        time.sleep(0.001)
        os.replace(src, dst)
        with guard:
            inside -= 1

    values = [Status(state="PRIM", up_to_date=True, term=t) for t in range(40)]
    stores = [store(path, replace=slow_replace) for _ in range(4)]  # separate instances
    threads = [threading.Thread(target=stores[i % 4].save, args=(v,)) for i, v in enumerate(values)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert max(overlap) == 1
    assert store(path).load() in values
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pg.json", "pg.json.prev"]


def test_canonical_json_is_sorted_compact_ascii() -> None:
    assert canonical_json({"b": [1, "é"], "a": None}) == b'{"a":null,"b":[1,"\\u00e9"]}'
    with pytest.raises(ValueError):
        canonical_json({"x": float("nan")})


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=20,
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=json_values)
def test_arbitrary_json_contents_round_trip(tmp_path: Path, data: JsonValue) -> None:
    s = DurableStore(tmp_path / "blob.json", Blob, 1)
    s.save(Blob(data=data))
    assert s.load() == Blob(data=data)
