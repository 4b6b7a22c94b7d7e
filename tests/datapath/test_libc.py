"""The libc calls Python lacks (:mod:`hamod.datapath.libc`): errors carry their errno."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from hamod.datapath import libc


def test_syncfs_flushes_and_reports_errors(tmp_path: Path) -> None:
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        (tmp_path / "f").write_bytes(b"x" * 4096)
        libc.syncfs(fd)  # a healthy file system: no error
    finally:
        os.close(fd)
    with pytest.raises(OSError) as err:
        libc.syncfs(fd)  # closed: the error is raised, not swallowed as sync(2) would
    assert err.value.errno == errno.EBADF and "syncfs" in str(err.value)
