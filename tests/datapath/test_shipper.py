"""The replication seam: the Shipper sees every mutation, in order, and nothing for reads.

The file system runs in a thread of the test process with the ``Recording`` shipper
(hamod.datapath.testing), so the recorded mutations can be inspected directly.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections.abc import Iterator

import pytest

from hamod.datapath.mount import serve, unmount, wait_mounted
from hamod.datapath.mutation import Mutation, Op
from hamod.datapath.testing import Recording
from tests.datapath.conftest import fuse_available

pytestmark = pytest.mark.lab


@pytest.fixture
def recorded() -> Iterator[tuple[str, Recording]]:
    reason = fuse_available()
    if reason:
        pytest.skip(reason)
    rec = Recording()
    umask = os.umask(0o022)
    with tempfile.TemporaryDirectory(prefix="hamod-dp-") as d:
        thread = threading.Thread(target=serve, args=(d, rec), daemon=True)
        thread.start()
        try:
            wait_mounted(d)
            yield d, rec
        finally:
            unmount(d)
            thread.join(timeout=10)
            os.umask(umask)
            assert not thread.is_alive()


def _wait_release(rec: Recording) -> None:
    """The kernel sends RELEASE after close() returned: wait for it."""
    deadline = time.monotonic() + 5
    while not rec.mutations or rec.mutations[-1].op is not Op.RELEASE:
        assert time.monotonic() < deadline
        time.sleep(0.01)


def _essential(m: Mutation) -> tuple[object, ...]:
    return (m.op, m.path, m.path2, m.offset, m.length, m.data)


def test_every_mutation_in_order_and_none_for_reads(recorded: tuple[str, Recording]) -> None:
    d, rec = recorded
    f = os.path.join(d, "f")
    fd = os.open(f, os.O_CREAT | os.O_WRONLY, 0o644)
    os.pwrite(fd, b"abc", 0)
    os.pwrite(fd, b"Z", 1 << 33)
    os.fsync(fd)
    os.close(fd)
    os.mkdir(os.path.join(d, "dir"), 0o755)
    os.rename(f, os.path.join(d, "dir", "g"))
    os.link(os.path.join(d, "dir", "g"), os.path.join(d, "h"))
    os.symlink("dir/g", os.path.join(d, "s"))
    os.chmod(os.path.join(d, "h"), 0o600)
    os.chown(os.path.join(d, "h"), 65534, -1)
    os.utime(os.path.join(d, "h"), ns=(1, 2))
    os.setxattr(os.path.join(d, "h"), "user.k", b"v")
    os.removexattr(os.path.join(d, "h"), "user.k")
    os.truncate(os.path.join(d, "h"), 1)
    os.unlink(os.path.join(d, "h"))
    os.unlink(os.path.join(d, "s"))
    os.unlink(os.path.join(d, "dir", "g"))
    os.rmdir(os.path.join(d, "dir"))
    got = rec.mutations
    create = got[0]
    assert (create.op, create.path, create.mode & 0o777) == (Op.CREATE, "/f", 0o644)
    fh = create.handle
    assert [_essential(m) for m in got[1:]] == [
        (Op.WRITE, "/f", None, 0, 3, b"abc"),
        (Op.WRITE, "/f", None, 1 << 33, 1, b"Z"),
        (Op.FSYNC, "/f", None, 0, 0, None),
        (Op.RELEASE, "/f", None, 0, 0, None),
        (Op.MKDIR, "/dir", None, 0, 0, None),
        (Op.RENAME, "/f", "/dir/g", 0, 0, None),
        (Op.LINK, "/dir/g", "/h", 0, 0, None),
        (Op.SYMLINK, "/s", None, 0, 0, None),
        (Op.CHMOD, "/h", None, 0, 0, None),
        (Op.CHOWN, "/h", None, 0, 0, None),
        (Op.UTIMENS, "/h", None, 0, 0, None),
        (Op.SETXATTR, "/h", None, 0, 0, None),
        (Op.REMOVEXATTR, "/h", None, 0, 0, None),
        (Op.TRUNCATE, "/h", None, 0, 1, None),
        (Op.UNLINK, "/h", None, 0, 0, None),
        (Op.UNLINK, "/s", None, 0, 0, None),
        (Op.UNLINK, "/dir/g", None, 0, 0, None),
        (Op.RMDIR, "/dir", None, 0, 0, None),
    ]
    assert all(m.handle == fh for m in got[1:5])
    assert got[11].atime_ns == 1 and got[11].mtime_ns == 2
    assert got[10].uid == 65534 and got[10].gid == -1
    assert got[8].target == "dir/g"

    rec.clear()  # reads, lookups, listings, xattr reads: nothing shipped
    os.mkdir(os.path.join(d, "r"))
    with open(os.path.join(d, "r", "x"), "wb") as w:
        w.write(b"payload")
    _wait_release(rec)
    rec.clear()
    for _ in range(3):
        with open(os.path.join(d, "r", "x"), "rb") as r:
            assert r.read() == b"payload"
        os.stat(os.path.join(d, "r", "x"))
        os.listdir(os.path.join(d, "r"))
        os.listxattr(os.path.join(d, "r", "x"))
        os.statvfs(d)
    assert rec.mutations == []


def test_unlinked_open_file_is_shipped_by_handle(recorded: tuple[str, Recording]) -> None:
    d, rec = recorded
    fd = os.open(os.path.join(d, "u"), os.O_CREAT | os.O_RDWR, 0o644)
    os.unlink(os.path.join(d, "u"))
    os.pwrite(fd, b"late", 0)
    assert os.fstat(fd).st_size == 4
    os.fchmod(fd, 0o600)
    os.close(fd)
    _wait_release(rec)
    assert os.listdir(d) == []
    ops = [(m.op, m.path) for m in rec.mutations]
    assert ops[1:] == [
        (Op.UNLINK, "/u"),
        (Op.WRITE, None),
        (Op.CHMOD, None),
        (Op.RELEASE, None),
    ]
    assert {m.handle for m in rec.mutations if m.op in (Op.WRITE, Op.RELEASE)} == {
        rec.mutations[0].handle
    }
