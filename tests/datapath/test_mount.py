"""Mount safety and lifecycle: refusal naming the holders, clean unmount, abort, read-only."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hamod.datapath.mount import abort, holders, is_mounted, mountinfo, unmount
from tests.datapath.conftest import Server, fuse_available

pytestmark = pytest.mark.lab


@pytest.fixture
def directory() -> Iterator[Path]:
    reason = fuse_available()
    if reason:
        pytest.skip(reason)
    with tempfile.TemporaryDirectory(prefix="hamod-dp-") as d:
        yield Path(d)


def _tree(root: Path) -> dict[str, tuple[int, int, bytes]]:
    out = {}
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        out[str(p.relative_to(root))] = (
            st.st_ino,
            st.st_mode,
            p.read_bytes() if p.is_file() else b"",
        )
    return out


def test_mount_refused_naming_the_process_holding_a_file(directory: Path) -> None:
    (directory / "busy").write_text("x")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"f = open({str(directory / 'busy')!r}); import time; time.sleep(60)",
        ]
    )
    try:
        deadline = time.monotonic() + 10
        while not any(h.pid == holder.pid for h in holders(directory)):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        run = subprocess.run(
            [sys.executable, "-m", "hamod.datapath", "mount", str(directory)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert run.returncode == 2
        assert f"pid {holder.pid} (python" in run.stderr
        assert "busy" in run.stderr and "refusing to mount" in run.stderr
        assert not is_mounted(directory)
    finally:
        holder.kill()
        holder.wait()


def test_mount_refused_for_a_cwd_under_the_directory(directory: Path) -> None:
    sub = directory / "sub"
    sub.mkdir()
    holder = subprocess.Popen(["sleep", "60"], cwd=sub)
    try:
        time.sleep(0.2)
        found = [h for h in holders(directory) if h.pid == holder.pid]
        assert found and found[0].what == "cwd" and found[0].name == "sleep"
    finally:
        holder.kill()
        holder.wait()


def test_unmount_leaves_the_directory_identical(directory: Path) -> None:
    (directory / "a").write_bytes(b"data")
    (directory / "d").mkdir()
    (directory / "d" / "b").write_bytes(b"more")
    ino = directory.stat().st_ino
    before = _tree(directory)
    server = Server(directory)
    try:
        assert mountinfo(directory) is not None
        assert (directory / "d" / "b").read_bytes() == b"more"
        assert {p: v[0] for p, v in _tree(directory).items()} == {
            p: v[0] for p, v in before.items()
        }
        (directory / "new").write_bytes(b"through the mount")
    finally:
        server.stop()
    assert directory.stat().st_ino == ino
    after = _tree(directory)
    assert after.pop("new")[2] == b"through the mount"
    assert after == before


def test_read_only_mode_refuses_writes_with_erofs(directory: Path) -> None:
    (directory / "a").write_bytes(b"visible")
    server = Server(directory, "--read-only")
    try:
        assert (directory / "a").read_bytes() == b"visible"
        for action in (
            lambda: (directory / "a").write_bytes(b"no"),
            lambda: (directory / "b").write_bytes(b"no"),
            lambda: (directory / "d").mkdir(),
            lambda: (directory / "a").unlink(),
            lambda: os.chmod(directory / "a", 0o600),
            lambda: os.setxattr(directory / "a", "user.x", b"1"),
        ):
            with pytest.raises(OSError) as exc:
                action()
            assert exc.value.errno == errno.EROFS
    finally:
        server.stop()
    assert (directory / "a").read_bytes() == b"visible"


def _ls_errno(directory: Path, timeout: float) -> int:
    run = subprocess.run(
        ["ls", str(directory)], capture_output=True, text=True, timeout=timeout, check=False
    )
    assert run.returncode != 0, run.stdout
    return run.returncode


def test_abort_of_a_hung_server_gives_errors_not_a_hang(directory: Path) -> None:
    (directory / "f").write_text("x")
    server = Server(directory)
    try:
        os.kill(server.proc.pid, signal.SIGSTOP)  # the server hangs
        reader = subprocess.Popen(
            ["cat", str(directory / "f")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        time.sleep(0.5)
        assert reader.poll() is None  # blocked on the hung mount
        abort(directory)
        _, err = reader.communicate(timeout=5)  # released with an error, quickly
        assert reader.returncode != 0 and "connection abort" in err  # ECONNABORTED
        start = time.monotonic()
        with pytest.raises(OSError) as exc:
            os.listdir(directory)
        assert exc.value.errno == errno.ENOTCONN
        assert time.monotonic() - start < 2
    finally:
        os.kill(server.proc.pid, signal.SIGKILL)
        server.proc.wait(timeout=10)
        unmount(directory)
        server.stop()
    assert (directory / "f").read_text() == "x"


def test_killed_server_then_abort_then_unmount(directory: Path) -> None:
    server = Server(directory)
    try:
        server.proc.kill()
        server.proc.wait(timeout=10)
        abort(directory)
        start = time.monotonic()
        _ls_errno(directory, timeout=5)
        assert time.monotonic() - start < 2
    finally:
        unmount(directory)
        server.stop()
    assert not is_mounted(directory)
