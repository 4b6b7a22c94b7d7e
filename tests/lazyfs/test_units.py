"""LazyFS's model without a mount: the operations called directly on real files."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from hamod.testing.lazyfs_ops import LazyOps
from hamod.testing.lazyfs_state import Dirty, Faults


def _ops(tmp_path: Path) -> tuple[LazyOps, Path, Path]:
    down, up = tmp_path / "down", tmp_path / "up"
    down.mkdir()
    up.mkdir()
    return LazyOps(str(down), str(up)), down, up


def _write(ops: LazyOps, path: str, data: bytes, *, sync: bool) -> None:
    fh = ops.create(path, 0o644, os.O_WRONLY)
    try:
        ops.write(path, data, 0, fh)
        if sync:
            ops.fsync(path, 0, fh)
    finally:
        ops.release(path, fh)


def test_only_fsync_reaches_the_backing_directory(tmp_path: Path) -> None:
    ops, down, _ = _ops(tmp_path)
    _write(ops, "/lazy", b"1", sync=False)
    _write(ops, "/synced", b"2", sync=True)
    assert sorted(os.listdir(down)) == ["synced"]
    assert (down / "synced").read_bytes() == b"2"


def test_fsyncdir_persists_names_renames_and_removals(tmp_path: Path) -> None:
    ops, down, _ = _ops(tmp_path)
    _write(ops, "/a", b"A", sync=True)
    _write(ops, "/gone", b"G", sync=True)
    ops.mkdir("/d", 0o755)
    _write(ops, "/d/new", b"N", sync=False)
    ops.rename("/a", "/b")
    ops.unlink("/gone")
    assert sorted(os.listdir(down)) == ["a", "gone"]
    ops.fsyncdir("/", 0, 0)
    assert sorted(os.listdir(down)) == ["b", "d"]
    assert (down / "b").read_bytes() == b"A"
    assert os.listdir(down / "d") == []  # d's own entries need d's fsync
    ops.fsyncdir("/d", 0, 0)
    assert (down / "d" / "new").read_bytes() == b""  # the name, not the data


def test_renamed_directory_keeps_its_durable_children(tmp_path: Path) -> None:
    ops, down, _ = _ops(tmp_path)
    ops.mkdir("/d", 0o755)
    _write(ops, "/d/f", b"F", sync=True)
    ops.rename("/d", "/e")
    _write(ops, "/e/g", b"G", sync=True)
    assert sorted(os.listdir(down)) == ["e"]
    assert sorted(os.listdir(down / "e")) == ["f", "g"]


def test_power_off_fails_every_call_with_eio(tmp_path: Path) -> None:
    ops, _, _ = _ops(tmp_path)
    ops.power_off()
    with pytest.raises(OSError) as exc:
        ops.getattr("/")
    assert exc.value.errno == errno.EIO


def test_faults_count_down_and_match_globs() -> None:
    faults = Faults()
    faults.arm("eio-write", "data/*.log", 2)
    faults.check("eio-write", "/data/x.dat")
    for _ in range(2):
        with pytest.raises(OSError) as exc:
            faults.check("eio-write", "/data/x.log")
        assert exc.value.errno == errno.EIO
    faults.check("eio-write", "/data/x.log")
    faults.arm("enospc", "*", 10)
    assert faults.budget("/f", 8) == 8
    assert faults.budget("/f", 8) == 2
    with pytest.raises(OSError) as exc:
        faults.budget("/f", 1)
    assert exc.value.errno == errno.ENOSPC
    faults.clear()
    assert faults.budget("/f", 1) == 1
    with pytest.raises(ValueError):
        faults.arm("bogus", "*", 1)


def test_dirty_ranges_merge_and_fall_back_to_the_whole_file(tmp_path: Path) -> None:
    dirty = Dirty()
    fd = os.open(tmp_path / "f", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        ino = os.fstat(dirty.opened(fd)).st_ino
        for off, size in ((10, 5), (0, 4), (12, 10), (40, 1)):
            dirty.wrote(fd, off, size)
        assert dirty.take(ino) == [(0, 4), (10, 12), (40, 1)]
        assert dirty.take(ino) == []
        dirty.wrote(fd, 0, 1)
        dirty.everything(ino)
        assert dirty.take(ino) is None
    finally:
        dirty.closed(fd)
        os.close(fd)


def test_fsync_copies_only_dirty_ranges_but_all_after_truncate(tmp_path: Path) -> None:
    ops, down, _ = _ops(tmp_path)
    _write(ops, "/f", b"a" * 100, sync=True)
    fh = ops.open("/f", os.O_RDWR)
    try:
        ops.write("/f", b"B", 50, fh)
        ops.fsync("/f", 1, fh)
        assert (down / "f").read_bytes() == b"a" * 50 + b"B" + b"a" * 49
        ops.truncate("/f", 10, fh)
        ops.truncate("/f", 20, fh)
        ops.fsync("/f", 1, fh)
        assert (down / "f").read_bytes() == b"a" * 10 + b"\0" * 10
    finally:
        ops.release("/f", fh)


def test_a_recreated_durable_name_gets_the_whole_content(tmp_path: Path) -> None:
    ops, down, _ = _ops(tmp_path)
    ops.mkdir("/d", 0o755)
    _write(ops, "/f", b"content", sync=True)
    ops.rename("/f", "/d/f")
    ops.fsyncdir("/", 0, 0)  # f leaves the root; d/ is new and empty durably
    assert os.listdir(down / "d") == []
    fh = ops.open("/d/f", os.O_RDONLY)
    try:
        ops.fsync("/d/f", 0, fh)
    finally:
        ops.release("/d/f", fh)
    assert (down / "d" / "f").read_bytes() == b"content"
