"""Fixtures of the LazyFS tests: ``lazy`` mounts a LazyFS from ``backing`` on ``mnt``."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hamod.datapath.mount import is_mounted
from hamod.testing.lazyfs import LazyFS


def fuse_missing() -> str | None:
    """Why LazyFS cannot mount here, or None."""
    if os.geteuid() != 0:
        return "LazyFS mounts need root"
    if not os.path.exists("/dev/fuse"):
        return "no /dev/fuse"
    if shutil.which("fusermount3") is None:
        return "fusermount3 not installed (Debian fuse3)"
    return None


@dataclass
class Lazy:
    fs: LazyFS
    backing: Path
    mnt: Path


@pytest.fixture
def lazy() -> Iterator[Lazy]:
    reason = fuse_missing()
    if reason:
        pytest.skip(reason)
    # Not under pytest's tmp_path: its parents are 0700 and some tests run as nobody.
    base = Path(tempfile.mkdtemp(prefix="hamod-lazyfs-test-", dir="/tmp"))
    base.chmod(0o755)
    backing, mnt = base / "backing", base / "mnt"
    backing.mkdir()
    mnt.mkdir()
    (backing / "old").write_text("old\n")
    (backing / "sub").mkdir()
    (backing / "sub" / "kept").write_text("kept\n")
    fs = LazyFS(backing, mnt)
    fs.mount()
    try:
        yield Lazy(fs, backing, mnt)
    finally:
        fs.unmount()
        assert not is_mounted(mnt)
        shutil.rmtree(base, ignore_errors=True)
