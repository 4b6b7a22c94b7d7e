"""Fixtures of the data-path tests: a mount over a tmp directory in a background process.

``mounted`` (function scope) and ``module_mount`` yield ``(mount_dir, native_dir)``: two
sibling directories on the same file system, the first under a hamod data-path mount
served by ``python -m hamod.datapath mount``. The mount is always unmounted (lazily if
needed) and the server process reaped.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from hamod.datapath.mount import is_mounted, mountinfo, unmount, wait_mounted


def fuse_available() -> str | None:
    """Why FUSE mounts cannot run here, or None."""
    if os.geteuid() != 0:
        return "data-path mount tests need root"
    if not os.path.exists("/dev/fuse"):
        return "no /dev/fuse"
    if not any(os.access(os.path.join(d, "fusermount3"), os.X_OK) for d in ("/usr/bin", "/bin")):
        return "fusermount3 not installed (Debian fuse3)"
    return None


class Server:
    """A data-path process serving one directory."""

    def __init__(self, directory: Path, *extra: str) -> None:
        self.directory = directory
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hamod.datapath", "mount", str(directory), *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_mounted(directory, timeout=15)
        except Exception:
            self.stop()
            raise

    def stop(self) -> str:
        if mountinfo(self.directory) is not None:
            try:
                unmount(self.directory)
            except Exception:
                subprocess.run(["umount", "-l", str(self.directory)], check=False)
        try:
            out, _ = self.proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate(timeout=5)
        assert not is_mounted(self.directory)
        return out.decode(errors="replace")


def _pair(*extra: str) -> Iterator[tuple[str, str]]:
    reason = fuse_available()
    if reason:
        pytest.skip(reason)
    # Not under pytest's tmp_path: its parents are 0700 and some steps run as nobody.
    base = Path(tempfile.mkdtemp(prefix="hamod-dp-", dir="/tmp"))
    base.chmod(0o755)
    m, n = base / "mnt", base / "native"
    m.mkdir(mode=0o777)
    n.mkdir(mode=0o777)
    m.chmod(0o777)
    n.chmod(0o777)
    server = Server(m, *extra)
    try:
        yield str(m), str(n)
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def mounted() -> Iterator[tuple[str, str]]:
    yield from _pair()


@pytest.fixture(scope="module")
def module_mount() -> Iterator[tuple[str, str]]:
    yield from _pair()
