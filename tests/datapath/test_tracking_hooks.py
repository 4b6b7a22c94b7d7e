"""The data path calls the change tracker's hooks before each operation underneath.

End to end: a mount with a real :class:`ChangeTracker` (tracking mode) over a seeded
tree, a copy of that tree taken before, scripted and seeded random operations through
the mount; then ``changes_since`` + ``resolve_names`` + ``apply_changes`` must make the
copy equal to the mounted directory. With a spy tracker: which hook each operation calls
(and that it runs before the operation: the file underneath has not changed yet), and a
tracker that fails makes the call fail with EIO with nothing done. Activity-log mode:
``unacknowledged()`` covers every write since the last sync point, also after a reopen.

The file system runs in a thread of the test process (like test_shipper).
"""

from __future__ import annotations

import contextlib
import errno
import mmap
import os
import random
import shutil
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hamod.core.model import Generation
from hamod.datapath import libc
from hamod.datapath.mount import (
    FUSE_CONNECTIONS,
    ensure_fusectl,
    mountinfo,
    serve,
    unmount,
    wait_mounted,
)
from hamod.datapath.mutation import Op, Shipper
from hamod.datapath.testing import Recording
from hamod.datapath.tracking import NoTracker, Tracker
from hamod.errors import AdapterError
from hamod.tracking.replay import apply_changes, resolve_names
from hamod.tracking.tracker import ChangeTracker
from hamod.tracking.types import (
    ChangeSet,
    Create,
    FileRef,
    Link,
    Mkdir,
    Mknod,
    NsOp,
    Rename,
    Rmdir,
    Symlink,
    Unlink,
)
from tests.conftest import Scale
from tests.datapath.conftest import fuse_available
from tests.datapath.harness import World, snapshot

pytestmark = pytest.mark.lab

REGION = 64 << 10
GEN = Generation("n1", 3, 7)
BIG = 4 << 20


class Mount:
    """The data path served in a thread of this process over ``directory``.

    ``stop`` unmounts; if the server then keeps running, a copy of the mount lives on in
    another mount namespace (a concurrent ``unshare --propagation private``, such as the
    namespace lab's nodes): the FUSE connection is aborted so the server's loop ends.
    """

    def __init__(
        self, directory: str, tracker: Tracker | None, shipper: Shipper | None = None
    ) -> None:
        self.directory = directory
        self.thread = threading.Thread(
            target=serve, args=(directory, shipper), kwargs={"tracker": tracker}, daemon=True
        )
        self.thread.start()
        wait_mounted(directory)
        info = mountinfo(directory)
        assert info is not None
        self.connection = info.connection

    def stop(self) -> None:
        unmount(self.directory)
        self.thread.join(timeout=5)
        if self.thread.is_alive():
            ensure_fusectl()
            with contextlib.suppress(FileNotFoundError):
                (FUSE_CONNECTIONS / str(self.connection) / "abort").write_text("1")
            self.thread.join(timeout=10)
        assert not self.thread.is_alive()


@pytest.fixture
def base() -> Iterator[Path]:
    reason = fuse_available()
    if reason:
        pytest.skip(reason)
    umask = os.umask(0o022)
    top = Path(tempfile.mkdtemp(prefix="hamod-track-", dir="/var/tmp"))
    try:
        for sub in ("src", "copy", "state"):
            (top / sub).mkdir()
        yield top
    finally:
        os.umask(umask)
        shutil.rmtree(top, ignore_errors=True)


def _seed(root: Path) -> None:
    """The tree both sides share before the mount."""
    rnd = random.Random(42)
    (root / "a").write_bytes(b"alpha" * 100)
    (root / "b").write_bytes(b"bravo" * 3000)
    (root / "big").write_bytes(rnd.randbytes(BIG))
    (root / "hl1").write_bytes(rnd.randbytes(200_000))
    os.link(root / "hl1", root / "hl2")  # never looked up through the mount below
    (root / "d1" / "d2").mkdir(parents=True)
    (root / "d2").mkdir()
    (root / "d1" / "a").write_bytes(b"d1a" * 5000)
    (root / "d1" / "d2" / "a").write_bytes(b"deep")
    (root / "d2" / "x").write_bytes(b"x" * 70_000)
    os.symlink("a", root / "s")
    os.setxattr(root / "a", "user.k", b"v0")
    os.chown(root / "d2" / "x", 65534, 65534)


def _clone(src: Path, dst: Path) -> None:
    shutil.rmtree(dst)
    subprocess.run(["cp", "-a", str(src), str(dst)], check=True)
    assert snapshot(str(src)) == snapshot(str(dst))


def _resync(tracker: ChangeTracker, src: Path, copy: Path) -> int:
    """Apply what the tracker says changed; the copy must then equal the source."""
    changes = tracker.changes_since(GEN)
    assert isinstance(changes, ChangeSet), changes
    changes = resolve_names(changes, src)
    applied = apply_changes(changes, source=src, target=copy)
    assert snapshot(str(src)) == snapshot(str(copy)), applied
    return applied.bytes_copied


@pytest.fixture
def tracked(base: Path) -> Iterator[tuple[Path, Path, ChangeTracker, Mount]]:
    src, copy = base / "src", base / "copy"
    _seed(src)
    _clone(src, copy)
    tracker = ChangeTracker(base / "state", region_size=REGION)
    tracker.begin(GEN)
    mount = Mount(str(src), tracker)
    try:
        yield src, copy, tracker, mount
    finally:
        with contextlib.suppress(Exception):
            mount.stop()
        tracker.close()


def _run(steps: list[tuple[Any, ...]], world: World) -> None:
    for step in steps:
        with contextlib.suppress(KeyError):  # a handle that is not open: skipped
            world.run(step)  # errors are part of the game (the outcome is an errno name)


def test_scripted_sequence_resyncs_the_copy(
    tracked: tuple[Path, Path, ChangeTracker, Mount],
) -> None:
    src, copy, tracker, mount = tracked
    w = World(str(src))
    _run(
        [
            ("open", "big", "big", os.O_RDWR),
            *[("pwrite", "big", off, b"W" * 5000) for off in (0, 70_000, REGION - 10, 3 << 20)],
            ("pwrite", "big", BIG - 3, b"tail-extends"),
            ("fallocate", "big", libc.FALLOC_FL_PUNCH_HOLE | libc.FALLOC_FL_KEEP_SIZE, 2 << 20, 9),
            ("open", "n", "new", os.O_RDWR | os.O_CREAT | os.O_EXCL),
            ("pwrite", "n", 1 << 32, b"far"),
            ("ftruncate", "n", 100_000),
            ("truncate", "b", 7),
            ("open", "t", "d1/a", os.O_WRONLY | os.O_TRUNC),
            ("write", "t", b"after-trunc"),
            ("mkdir", "d3"),
            ("rename", "new", "d3/new"),
            ("rename", "a", "b"),  # over an existing file
            ("rename", "d1", "d2", libc.RENAME_EXCHANGE),
            ("rename", "d2/a", "s", libc.RENAME_EXCHANGE),  # file <-> symlink
            ("link", "d3/new", "d3/new2"),
            ("unlink", "d3/new"),
            ("pwrite", "n", 10, b"through-the-other-link"),
            ("link", "d3/new2", "d3/new3"),
            ("rename", "d3/new2", "d3/new3"),  # two links of one inode: a no-op
            ("symlink", "../big", "d3/sym"),
            ("symlink", "nowhere", "dangling"),
            ("mknod_fifo", "d3/fifo"),
            ("chmod", "big", 0o600),
            ("chown", "d3/new3", 65534, 100),
            ("chown", "dangling", 65534, -1),
            ("utime", "b", 10**9, 2 * 10**9),
            ("setxattr", "big", "user.one", b"1"),
            ("setxattr", "d3", "user.dir", b"2"),
            ("removexattr", "b", "user.k"),  # came with the rename a -> b
            ("open", "u2", "d2/d2/a", os.O_RDWR),  # d1 and d2 were exchanged
            ("unlink", "d2/d2/a"),  # unlinked while open (libfuse hides it) ...
            ("pwrite", "u2", 0, b"written after unlink"),  # ... then written
            ("open", "h", "hl1", os.O_RDWR),
            ("unlink", "hl1"),  # hl2 still links it, and was never looked up
            ("pwrite", "h", 1000, b"via the unlinked name"),
            ("ftruncate", "h", 150_000),
            ("open", "v", "d3/new3", os.O_RDWR),
            ("create_over", "v"),
            ("rmdir", "d2"),  # ENOTEMPTY
            ("rmdir", "d2/d2"),
            ("mmap_write", "big", 5 * REGION + 3, b"mapped"),
        ],
        _World(w),
    )
    w.close_all()
    mount.stop()
    assert not (src / "hl1").exists() and (src / "hl2").read_bytes()[1000:1021] == (
        b"via the unlinked name"
    )
    copied = _resync(tracker, src, copy)
    assert copied < BIG, f"copied {copied} bytes: the changes should be much smaller"


class _World(World):
    """World plus two steps of the scripted sequence."""

    def __init__(self, inner: World) -> None:
        super().__init__(inner.root)
        self.fds = inner.fds

    def do_create_over(self, h: str) -> None:
        """Rename a new file over the name of the open file ``h`` (libfuse hides it)."""
        os.close(os.open(self.p("tmp"), os.O_CREAT | os.O_WRONLY, 0o640))
        os.rename(self.p("tmp"), self.p("d3/new3"))
        os.pwrite(self.fds[h], b"old inode, nameless now", 0)

    def do_mmap_write(self, h: str, off: int, data: bytes) -> None:
        """In a forked child: a page fault holds this process's GIL, which the file
        system's threads (serving that fault) need. (Not a subprocess: its vfork'ed
        child would close the other handles, a FLUSH nobody serves while we wait.)"""
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            code = 1
            try:
                with mmap.mmap(self.fds[h], off + len(data), mmap.MAP_SHARED) as m:
                    m[off : off + len(data)] = data
                    m.flush()
                code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert status == 0


NAMES = ["a", "b", "big", "hl1", "hl2", "d1/a", "d1/b", "d1/d2/a", "d2/x", "d2/y", "s"]
DIRS = ["d1", "d1/d2", "d2", "d3", "d3/d4"]
HANDLES = ["h1", "h2", "h3"]


def _random_steps(rnd: random.Random, count: int) -> Iterator[tuple[Any, ...]]:
    def name() -> str:
        return rnd.choice(NAMES + DIRS if rnd.random() < 0.15 else NAMES)

    def offset() -> int:
        return rnd.choice(
            [
                rnd.randrange(0, 6 << 20),
                rnd.randrange(0, 16) * REGION + rnd.choice([-1, 0, 1, 4000]),
                rnd.randrange(0, 256),
                (8 << 20) + rnd.randrange(0, 1 << 20),  # sparse (the resync reads the
            ]  # tail of a truncated file whole: no GiB offsets here)
        )

    for _ in range(count):
        h = rnd.choice(HANDLES)
        r = rnd.random()
        if r < 0.12:
            flags = os.O_RDWR | os.O_CREAT
            flags |= os.O_TRUNC if rnd.random() < 0.2 else 0
            flags |= os.O_APPEND if rnd.random() < 0.1 else 0
            yield ("close", h)
            yield ("open", h, name(), flags)
        elif r < 0.40:
            off = max(offset(), 0)
            yield ("pwrite", h, off, bytes([rnd.randrange(1, 256)]) * rnd.randrange(1, 9000))
        elif r < 0.45:
            yield ("write", h, b"seq" * rnd.randrange(1, 3000))
        elif r < 0.50:
            yield ("ftruncate", h, rnd.randrange(0, 5 << 20))
        elif r < 0.53:
            yield ("truncate", name(), rnd.randrange(0, 5 << 20))
        elif r < 0.56:
            mode = rnd.choice([0, libc.FALLOC_FL_PUNCH_HOLE | libc.FALLOC_FL_KEEP_SIZE])
            yield ("fallocate", h, mode, rnd.randrange(0, 5 << 20), rnd.randrange(1, 300_000))
        elif r < 0.61:
            yield ("mkdir", rnd.choice(DIRS))
        elif r < 0.64:
            yield ("rmdir", rnd.choice(DIRS))
        elif r < 0.70:
            yield ("unlink", name())
        elif r < 0.79:
            flags = rnd.choice([0, 0, 0, libc.RENAME_NOREPLACE, libc.RENAME_EXCHANGE])
            yield ("rename", name(), name(), flags)
        elif r < 0.84:
            yield ("link", name(), name())
        elif r < 0.87:
            yield ("symlink", rnd.choice([*NAMES, "../big", "nowhere"]), name())
        elif r < 0.88:
            yield ("mknod_fifo", name())
        elif r < 0.91:
            yield ("chmod", name(), rnd.choice([0o600, 0o644, 0o755, 0o4755, 0o1777]))
        elif r < 0.93:
            yield ("chown", name(), rnd.choice([0, 65534, -1]), rnd.choice([0, 100, -1]))
        elif r < 0.95:
            t = rnd.randrange(0, 2**40)
            yield ("utime", name(), t, t)
        elif r < 0.98:
            yield ("setxattr", name(), rnd.choice(["user.x", "user.y"]), rnd.randbytes(8))
        else:
            yield ("removexattr", name(), rnd.choice(["user.x", "user.k"]))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_sequence_resyncs_the_copy(
    tracked: tuple[Path, Path, ChangeTracker, Mount], seed: int, scale: Scale
) -> None:
    src, copy, tracker, mount = tracked
    w = World(str(src))
    steps = list(_random_steps(random.Random(seed), scale.pick(ci=400, soak=5000)))
    _run(steps, w)
    w.close_all()
    mount.stop()
    _resync(tracker, src, copy)


# --- hook placement, with a spy tracker -----------------------------------------------


class Spy:
    """A tracker recording each hook call with what the directory underneath held then
    (through a descriptor opened before the mount); ``fail`` makes every hook raise."""

    def __init__(self, under: str) -> None:
        self.under = under
        self.calls: list[tuple[Any, ...]] = []
        self.fail = False
        self._n = 0
        self._lock = threading.Lock()

    def _p(self, path: str) -> str:
        return f"{self.under}/{path}" if path else self.under

    def _record(self, *call: Any) -> int:
        if self.fail:
            raise AdapterError("journal cannot be written (spy)")
        with self._lock:
            self._n += 1
            self.calls.append(call)
            return self._n

    def write(self, ref: FileRef, offset: int, length: int) -> int:
        with open(self._p(ref.path), "rb") as f:
            seen = os.pread(f.fileno(), length, offset)
        return self._record("write", ref, offset, length, seen)

    def truncate(self, ref: FileRef, size: int) -> int:
        return self._record("truncate", ref, size, os.lstat(self._p(ref.path)).st_size)

    def setattr(self, ref: FileRef) -> int:
        return self._record("setattr", ref, stat.S_IMODE(os.lstat(self._p(ref.path)).st_mode))

    def namespace(self, op: NsOp) -> int:
        paths = (op.old, op.new) if isinstance(op, Rename) else (getattr(op, "path", None),)
        if isinstance(op, Link):
            paths = (op.existing, op.new)
        return self._record("ns", op, tuple(os.path.lexists(self._p(p)) for p in paths if p))

    def failed(self, op: NsOp) -> None:
        if self.fail:
            raise AdapterError("journal cannot be written (spy)")
        with self._lock:
            self.calls.append(("failed", op))


@pytest.fixture
def spied(base: Path) -> Iterator[tuple[Path, Spy, Recording, Mount]]:
    src = base / "src"
    _seed(src)
    under = os.open(src, os.O_PATH | os.O_DIRECTORY)
    spy = Spy(f"/proc/self/fd/{under}")
    rec = Recording()
    mount = Mount(str(src), spy, rec)
    try:
        yield src, spy, rec, mount
    finally:
        with contextlib.suppress(Exception):
            mount.stop()
        os.close(under)


def _wait_release(rec: Recording, count: int) -> None:
    deadline = time.monotonic() + 5
    while sum(m.op is Op.RELEASE for m in rec.mutations) < count:
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_each_operation_calls_its_hook_before(spied: tuple[Path, Spy, Recording, Mount]) -> None:
    d, spy, rec, _ = spied
    ino = {n: os.lstat(d / n).st_ino for n in ("a", "b", "big", "d1/a", "hl1")}
    big_10 = (d / "big").read_bytes()[10:13]
    hl2_0 = (d / "hl2").read_bytes()[:4]

    fd = os.open(d / "f", os.O_CREAT | os.O_RDWR, 0o644)
    ino["f"] = os.fstat(fd).st_ino
    os.pwrite(fd, b"abc", 0)
    os.ftruncate(fd, 1)
    os.close(fd)
    fd = os.open(d / "big", os.O_RDWR)
    os.pwrite(fd, b"NEW", 10)
    libc.fallocate(fd, 0, BIG, 100)
    os.fchmod(fd, 0o600)
    os.close(fd)
    os.close(os.open(d / "b", os.O_WRONLY | os.O_TRUNC))
    os.close(os.open(d / "a", os.O_WRONLY | os.O_CREAT, 0o644))  # exists: no Create
    os.truncate(d / "d1/a", 5)
    os.mkdir(d / "dir")
    os.rename(d / "f", d / "dir/g")
    os.link(d / "dir/g", d / "h")
    os.rename(d / "dir/g", d / "h")  # two links of one inode: not reported
    exchange = libc.RENAME_EXCHANGE
    libc.renameat2(libc.AT_FDCWD, str(d / "dir/g"), libc.AT_FDCWD, str(d / "h"), exchange)
    os.rename(d / "a", d / "h")  # over h: f's inode keeps its dir/g link
    libc.renameat2(libc.AT_FDCWD, str(d / "h"), libc.AT_FDCWD, str(d / "b"), exchange)
    os.symlink("dir/g", d / "sl")
    os.mkfifo(d / "p", 0o600)
    os.chmod(d / "b", 0o640)  # b holds a's inode now
    os.chown(d / "b", 65534, -1)
    os.utime(d / "b", ns=(1, 2))
    os.setxattr(d / "b", "user.q", b"v")
    os.removexattr(d / "b", "user.q")
    os.unlink(d / "dir/g")
    with pytest.raises(OSError) as err:
        os.rmdir(d / "d1")  # refused before announcing
    assert err.value.errno == errno.ENOTEMPTY
    with pytest.raises(OSError) as err:
        os.rename(d / "dir", d / "d1")  # announced, then failed
    assert err.value.errno == errno.ENOTEMPTY
    os.rmdir(d / "dir")
    fd = os.open(d / "d1/a", os.O_RDWR)  # unlinked while open: an Unlink, and no write
    os.unlink(d / "d1/a")  # hook after it (the inode has no name left)
    os.pwrite(fd, b"late", 0)
    os.close(fd)
    fd = os.open(d / "hl1", os.O_RDWR)  # unlinked while its other link hl2 remains:
    os.unlink(d / "hl1")  # a later write is tracked under hl2
    os.pwrite(fd, b"late", 0)
    os.close(fd)
    _wait_release(rec, 6)

    a = FileRef("b", ino["a"])
    assert spy.calls == [
        # (hook, argument, what the directory underneath held when it was called)
        ("ns", Create("f"), (False,)),
        ("write", FileRef("f", ino["f"]), 0, 3, b""),
        ("truncate", FileRef("f", ino["f"]), 1, 3),
        ("write", FileRef("big", ino["big"]), 10, 3, big_10),
        ("write", FileRef("big", ino["big"]), BIG, 100, b""),
        ("setattr", FileRef("big", ino["big"]), 0o644),
        ("truncate", FileRef("b", ino["b"]), 0, 15000),
        ("truncate", FileRef("d1/a", ino["d1/a"]), 5, 15000),
        ("ns", Mkdir("dir"), (False,)),
        ("ns", Rename("f", "dir/g"), (True, False)),
        ("ns", Link("dir/g", "h", ino["f"]), (True, False)),
        ("ns", Rename("a", "h", False, ino["f"], 1), (True, True)),
        ("ns", Rename("h", "b", True), (True, True)),
        ("ns", Symlink("sl", "dir/g"), (False,)),
        ("ns", Mknod("p", stat.S_IFIFO | 0o600, 0), (False,)),
        ("setattr", a, 0o644),
        ("setattr", a, 0o640),
        ("setattr", a, 0o640),
        ("setattr", a, 0o640),
        ("setattr", a, 0o640),
        ("ns", Unlink("dir/g", ino["f"], 0), (True,)),
        ("ns", Rename("dir", "d1"), (True, True)),
        ("failed", Rename("dir", "d1")),
        ("ns", Rmdir("dir"), (True,)),
        ("ns", Unlink("d1/a", ino["d1/a"], 0), (True,)),
        ("ns", Unlink("hl1", ino["hl1"], 1), (True,)),
        ("write", FileRef("hl2", ino["hl1"]), 0, 4, hl2_0),
    ]
    assert (d / "hl2").read_bytes()[:4] == b"late"
    # every mutation done carries its hook's number, in order; the others none
    numbered = [m for m in rec.mutations if m.track]
    assert len(numbered) == len(spy.calls) - 2  # not the failed rename, nor failed()
    assert [m.track for m in numbered] == sorted(m.track for m in numbered)
    assert all(m.track == 0 for m in rec.mutations if m.op in (Op.RELEASE, Op.FSYNC))


def test_a_failing_tracker_fails_the_call_with_eio_and_changes_nothing(
    spied: tuple[Path, Spy, Recording, Mount],
) -> None:
    d, spy, rec, mount = spied
    os.mkdir(d / "empty")
    fd = os.open(d / "big", os.O_RDWR)
    kept = os.open(d / "a", os.O_RDWR)
    before = snapshot(str(d))
    shipped = len(rec.mutations)
    spy.fail = True
    exchange = libc.RENAME_EXCHANGE
    calls: list[Any] = [
        lambda: os.pwrite(fd, b"X" * 10, 0),
        lambda: os.pwrite(fd, b"X", BIG + 5),
        lambda: os.ftruncate(fd, 1),
        lambda: libc.fallocate(fd, libc.FALLOC_FL_PUNCH_HOLE | libc.FALLOC_FL_KEEP_SIZE, 0, 9),
        lambda: os.truncate(d / "b", 0),
        lambda: os.open(d / "b", os.O_WRONLY | os.O_TRUNC),
        lambda: os.open(d / "new", os.O_WRONLY | os.O_CREAT, 0o644),
        lambda: os.mkdir(d / "nd"),
        lambda: os.mkfifo(d / "fifo"),
        lambda: os.symlink("a", d / "sl"),
        lambda: os.link(d / "a", d / "a2"),
        lambda: os.unlink(d / "b"),
        lambda: os.unlink(d / "a"),  # open: libfuse hides it, which is our unlink
        lambda: os.rmdir(d / "empty"),
        lambda: os.rename(d / "b", d / "z"),
        lambda: os.rename(d / "b", d / "d2/x"),
        lambda: libc.renameat2(libc.AT_FDCWD, str(d / "b"), libc.AT_FDCWD, str(d / "s"), exchange),
        lambda: os.chmod(d / "b", 0o600),
        lambda: os.chown(d / "b", 65534, 65534),
        lambda: os.utime(d / "b", ns=(5, 5)),
        lambda: os.setxattr(d / "b", "user.n", b"v"),
        lambda: os.removexattr(d / "a", "user.k"),
        lambda: os.fchmod(kept, 0o600),
    ]
    for i, call in enumerate(calls):
        with pytest.raises(OSError) as err:
            call()
        assert err.value.errno == errno.EIO, f"call {i}: {err.value}"
    spy.fail = False
    assert len(rec.mutations) == shipped  # nothing was done, so nothing shipped
    os.close(fd)
    os.close(kept)
    mount.stop()
    assert snapshot(str(d)) == before


def test_activity_log_covers_every_unacknowledged_write(base: Path) -> None:
    src = base / "src"
    _seed(src)
    tracker = ChangeTracker(base / "state", region_size=REGION)
    tracker.mirror()
    rec = Recording()
    mount = Mount(str(src), tracker, rec)
    rnd = random.Random(5)
    try:

        def write_some(count: int) -> set[tuple[str, int]]:
            touched: set[tuple[str, int]] = set()
            for _ in range(count):
                name = rnd.choice(["big", "b", "d1/a", "n"])
                off, size = rnd.randrange(0, 6 << 20), rnd.randrange(1, 200_000)
                fd = os.open(src / name, os.O_RDWR | os.O_CREAT, 0o644)
                os.pwrite(fd, b"w" * size, off)
                os.close(fd)
                touched |= {(name, r) for r in range(off // REGION, (off + size - 1) // REGION + 1)}
            return touched

        def regions(changes: ChangeSet | Any) -> set[tuple[str, int]]:
            assert isinstance(changes, ChangeSet), changes
            assert not changes.orphans
            return {(p, r) for p, c in changes.files.items() for r in c.regions}

        first = write_some(40)
        log = tracker.unacknowledged()
        assert isinstance(log, ChangeSet)
        assert first <= regions(log)
        assert "n" in log.names  # created: a hot name
        writes = [m for m in rec.mutations if m.op is Op.WRITE]
        assert all(m.track > 0 for m in writes)
        # the peer acknowledges everything shipped so far: it all cools
        assert tracker.sync_point(max(m.track for m in rec.mutations), force=True) > 0
        assert regions(tracker.unacknowledged()) == set()
        second = write_some(15)
        assert regions(tracker.unacknowledged()) == second  # exactly: no write missed
    finally:
        mount.stop()
        tracker.close()
    reopened = ChangeTracker(base / "state", region_size=REGION)  # after a crash, too
    try:
        assert regions(reopened.unacknowledged()) == second
    finally:
        reopened.close()


def test_trackers_satisfy_the_port() -> None:
    assert isinstance(NoTracker(), Tracker)
    with tempfile.TemporaryDirectory() as d:
        real = ChangeTracker(d)
        try:
            assert isinstance(real, Tracker)
        finally:
            real.close()
    none = NoTracker()
    ref = FileRef("f", 1)
    assert (none.write(ref, 0, 1), none.truncate(ref, 0), none.setattr(ref)) == (0, 0, 0)
    assert none.namespace(Create("f")) == 0
    none.failed(Create("f"))
