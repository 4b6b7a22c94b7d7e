"""LazyFS mounted: unsynced changes vanish on power-off, synced ones survive, faults bite."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hamod.datapath.mount import is_mounted
from hamod.testing.lazyfs import LazyFS
from tests.lazyfs.conftest import Lazy, fuse_missing

pytestmark = pytest.mark.lab


def crash(lz: Lazy) -> None:
    """Power off and remount: the mount now shows only what was synced."""
    lz.fs.power_off()
    lz.fs.remount()


def write(path: Path, data: bytes, sync: str = "") -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
        if sync == "fsync":
            os.fsync(fd)
        elif sync == "fdatasync":
            os.fdatasync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def test_unsynced_write_is_lost_and_the_mount_fails_until_remounted(lazy: Lazy) -> None:
    write(lazy.mnt / "old", b"new\n")
    assert (lazy.mnt / "old").read_bytes() == b"new\n"
    assert (lazy.backing / "old").read_bytes() == b"old\n"
    lazy.fs.power_off()
    for call in (lambda: os.listdir(lazy.mnt), lambda: (lazy.mnt / "old").read_bytes()):
        with pytest.raises(OSError) as exc:
            call()
        assert exc.value.errno == errno.EIO
    lazy.fs.remount()
    assert (lazy.mnt / "old").read_bytes() == b"old\n"


@pytest.mark.parametrize("sync", ["fsync", "fdatasync"])
def test_synced_write_survives(lazy: Lazy, sync: str) -> None:
    write(lazy.mnt / "old", b"new\n", sync)
    write(lazy.mnt / "fresh", b"fresh\n", sync)  # a file's fsync persists its name too
    crash(lazy)
    assert (lazy.mnt / "old").read_bytes() == b"new\n"
    assert (lazy.mnt / "fresh").read_bytes() == b"fresh\n"


def test_new_name_needs_a_directory_fsync(lazy: Lazy) -> None:
    write(lazy.mnt / "sub" / "named", b"data\n")
    write(lazy.mnt / "sub" / "unnamed", b"data\n")
    (lazy.mnt / "newdir").mkdir()
    fsync_dir(lazy.mnt / "sub")  # after both creates: both names persist...
    crash(lazy)
    assert sorted(os.listdir(lazy.mnt / "sub")) == ["kept", "named", "unnamed"]
    assert (lazy.mnt / "sub" / "named").read_bytes() == b""  # ...but not their data
    assert not (lazy.mnt / "newdir").exists()  # the root was never fsynced
    write(lazy.mnt / "sub" / "later", b"x")
    crash(lazy)
    assert not (lazy.mnt / "sub" / "later").exists()


def test_unlink_and_rename_need_a_directory_fsync(lazy: Lazy) -> None:
    (lazy.mnt / "sub" / "kept").unlink()
    os.rename(lazy.mnt / "old", lazy.mnt / "renamed")
    crash(lazy)
    assert (lazy.mnt / "sub" / "kept").exists()
    assert sorted(os.listdir(lazy.mnt)) == ["old", "sub"]
    (lazy.mnt / "sub" / "kept").unlink()
    os.rename(lazy.mnt / "old", lazy.mnt / "renamed")
    fsync_dir(lazy.mnt / "sub")
    fsync_dir(lazy.mnt)
    crash(lazy)
    assert os.listdir(lazy.mnt / "sub") == []
    assert (lazy.mnt / "renamed").read_bytes() == b"old\n"
    assert not (lazy.mnt / "old").exists()


def test_reads_see_buffered_writes_and_truncates(lazy: Lazy) -> None:
    path = lazy.mnt / "old"
    fd = os.open(path, os.O_RDWR)
    try:
        os.pwrite(fd, b"X", 1)
        assert os.pread(fd, 10, 0) == b"oXd\n"
        os.ftruncate(fd, 2)
        assert os.fstat(fd).st_size == 2
        assert path.read_bytes() == b"oX"
        os.truncate(path, 6)
        assert path.read_bytes() == b"oX\0\0\0\0"
    finally:
        os.close(fd)
    assert (lazy.backing / "old").read_bytes() == b"old\n"


def test_injected_eio_on_write_and_fsync(lazy: Lazy) -> None:
    lazy.fs.inject("eio-write", "sub/*", 1)
    lazy.fs.inject("eio-fsync", "old", 1)
    fd = os.open(lazy.mnt / "sub" / "kept", os.O_WRONLY)
    try:
        with pytest.raises(OSError) as exc:
            os.write(fd, b"x")
        assert exc.value.errno == errno.EIO
        assert os.write(fd, b"x") == 1  # only the next one
    finally:
        os.close(fd)
    fd = os.open(lazy.mnt / "old", os.O_WRONLY)
    try:
        os.write(fd, b"N")
        with pytest.raises(OSError) as exc:
            os.fsync(fd)
        assert exc.value.errno == errno.EIO
        assert (lazy.backing / "old").read_bytes() == b"old\n"
        os.fsync(fd)
        assert (lazy.backing / "old").read_bytes() == b"Nld\n"
    finally:
        os.close(fd)


def test_injected_enospc_after_a_byte_budget(lazy: Lazy) -> None:
    lazy.fs.inject("enospc", "*.dat", 10)
    fd = os.open(lazy.mnt / "f.dat", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        assert os.write(fd, b"a" * 8) == 8
        assert os.write(fd, b"b" * 8) == 2  # short write up to the budget
        with pytest.raises(OSError) as exc:
            os.write(fd, b"c")
        assert exc.value.errno == errno.ENOSPC
        write(lazy.mnt / "other", b"fine")  # other paths are unaffected
        lazy.fs.clear_faults()
        assert os.write(fd, b"c") == 1
    finally:
        os.close(fd)


# -- the harness catches a real durability bug ----------------------------------------


def buggy_status(path: Path, text: str) -> None:
    path.write_text(text)  # no fsync: sits in the page cache


def fixed_status(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(tmp, text.encode(), "fsync")
    os.rename(tmp, path)
    fsync_dir(path.parent)


def test_harness_catches_a_status_file_never_fsynced(lazy: Lazy) -> None:
    status = lazy.mnt / "status"
    fixed_status(status, "term=1")
    buggy_status(status, "term=2")
    assert status.read_text() == "term=2"  # without LazyFS this would survive a kill
    crash(lazy)
    assert status.read_text() == "term=1"  # the update is lost: the bug is caught
    fixed_status(status, "term=2")
    crash(lazy)
    assert status.read_text() == "term=2"
    assert sorted(os.listdir(lazy.mnt)) == ["old", "status", "sub"]


# -- control and lifecycle ------------------------------------------------------------


def test_cli_poweroff_and_clean_unmount_persists(lazy: Lazy) -> None:
    write(lazy.mnt / "old", b"lost")
    run = subprocess.run(
        [sys.executable, "-m", "hamod.testing.lazyfs", "poweroff", str(lazy.mnt)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    with pytest.raises(OSError):
        os.listdir(lazy.mnt)
    lazy.fs.remount()
    assert (lazy.mnt / "old").read_bytes() == b"old\n"
    (lazy.mnt / "deep" / "er").mkdir(parents=True)
    write(lazy.mnt / "deep" / "er" / "f", b"kept")
    lazy.fs.unmount(sync=True)  # a clean shutdown writes everything back
    assert (lazy.backing / "deep" / "er" / "f").read_bytes() == b"kept"
    lazy.fs.mount()


def test_mount_over_the_backing_directory_itself(tmp_path: Path) -> None:
    reason = fuse_missing()
    if reason:
        pytest.skip(reason)
    (tmp_path / "a").write_text("a")
    with LazyFS(tmp_path) as fs:
        assert is_mounted(tmp_path)
        write(tmp_path / "a", b"b", "fsync")
        write(tmp_path / "c", b"c")
        fs.power_off()
        fs.remount()
        assert sorted(os.listdir(tmp_path)) == ["a"]
        assert (tmp_path / "a").read_text() == "b"
    assert not is_mounted(tmp_path)
    assert sorted(os.listdir(tmp_path)) == ["a"]


def test_new_nodes_belong_to_the_caller_and_permissions_apply(lazy: Lazy) -> None:
    os.chmod(lazy.mnt / "sub", 0o777)
    os.chmod(lazy.mnt / "old", 0o600)
    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    script = "import sys; open(sys.argv[1], 'w').write('x')"
    run = subprocess.run(
        [*nobody, sys.executable, "-c", script, str(lazy.mnt / "sub" / "mine")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    st = os.stat(lazy.mnt / "sub" / "mine")
    assert (st.st_uid, st.st_gid) == (65534, 65534)
    run = subprocess.run(
        [*nobody, "cat", str(lazy.mnt / "old")], capture_output=True, text=True, check=False
    )
    assert "Permission denied" in run.stderr
    fsync_dir(lazy.mnt / "sub")
    assert (lazy.backing / "sub" / "mine").stat().st_uid == 65534


def test_files_held_open_across_power_off_do_not_block_the_remount(lazy: Lazy) -> None:
    fd = os.open(lazy.mnt / "old", os.O_RDWR)
    try:
        os.write(fd, b"X")
        started = time.monotonic()
        crash(lazy)
        assert time.monotonic() - started < 5
        with pytest.raises(OSError):
            os.write(fd, b"Y")  # the old handle belongs to the dead mount
    finally:
        with contextlib.suppress(OSError):  # ENOTCONN: its connection was aborted
            os.close(fd)
    assert (lazy.mnt / "old").read_bytes() == b"old\n"
