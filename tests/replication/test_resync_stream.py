"""The resync stream: random changes on a source tree watched by a ChangeTracker (and,
after a primary's crash, unacknowledged changes of the target tracked by its activity
log), streamed by ``resync_mutations`` through frames into a DirectoryApplier on the
target, make the target equal to the source; the WRITE payload never exceeds the data of
the changed regions (plus what the set says to reconcile whole). Also online rounds while
the "application" keeps changing the source, and a round interrupted then resumed."""

from __future__ import annotations

import ctypes
import os
import random
import stat
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

from hamod.core.model import Generation
from hamod.datapath.mutation import Mutation, Op
from hamod.replication.applier import DirectoryApplier
from hamod.replication.frames import Level, MutationFrame, StreamDecoder, pack
from hamod.replication.resync_apply import RENAME_EXCHANGE
from hamod.replication.resync_stream import (
    ResyncStream,
    Touched,
    plan_resync,
    resync_mutations,
)
from hamod.tracking import (
    ChangeSet,
    ChangeTracker,
    FileChanges,
    LazyStorage,
    Link,
    Mkdir,
    Mknod,
    Rename,
    merge,
)
from hamod.tracking.replay import resolve_names
from tests.tracking.watched import Watched, copy_tree

REGION = 4096
GEN = Generation("b", 2, 1)
NAMES = ["a", "b", "c", "d"]
_LIBC = ctypes.CDLL(None, use_errno=True)
_LIBC.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (chown, mknod)")


# --- the data path stand-in, with the operations Watched lacks --------------------------


class App(Watched):
    """The application through the data path: hook first, then the operation."""

    def removexattr(self, rel: str, name: str) -> None:
        self.tracker.setattr(self.ref(rel))
        os.removexattr(self.p(rel), name)

    def chown(self, rel: str, uid: int, gid: int) -> None:
        self.tracker.setattr(self.ref(rel))
        os.chown(self.p(rel), uid, gid, follow_symlinks=False)

    def touch(self, rel: str, ns: int) -> None:
        self.tracker.setattr(self.ref(rel))
        os.utime(self.p(rel), ns=(ns, ns), follow_symlinks=False)

    def acl(self, rel: str, other_uid: int) -> None:
        self.tracker.setattr(self.ref(rel))
        os.setxattr(self.p(rel), "system.posix_acl_access", _acl(other_uid))

    def punch(self, rel: str, offset: int, length: int) -> None:
        self.tracker.write(self.ref(rel), offset, length)
        fd = os.open(self.p(rel), os.O_WRONLY)
        try:
            assert _LIBC.fallocate(fd, 3, offset, length) == 0, os.strerror(ctypes.get_errno())
        finally:
            os.close(fd)

    def mkfifo(self, rel: str) -> None:
        self._ns(Mknod(rel, stat.S_IFIFO | 0o640), lambda: os.mkfifo(self.p(rel), 0o640))

    def exchange(self, a: str, b: str) -> None:
        def swap() -> None:
            rc = _LIBC.renameat2(
                -100, os.fsencode(self.p(a)), -100, os.fsencode(self.p(b)), RENAME_EXCHANGE
            )
            if rc:
                raise OSError(ctypes.get_errno(), "renameat2")

        self._ns(Rename(a, b, True), swap)

    def rmtree(self, rel: str) -> None:
        """``rm -r``: one unlink or rmdir per entry, children first."""
        for dirpath, dirnames, filenames in os.walk(self.p(rel), topdown=False):
            here = os.path.relpath(dirpath, self.root)
            for name in filenames + [d for d in dirnames if os.path.islink(Path(dirpath, d))]:
                self.unlink(f"{here}/{name}")
            self.rmdir(here)


def _acl(uid: int) -> bytes:
    """A POSIX access ACL (xattr form): u::rw-, u:<uid>:r--, g::r--, m::rw-, o::---."""
    entries = [(1, 6, 0xFFFFFFFF), (2, 4, uid), (4, 4, 0xFFFFFFFF), (0x10, 6, 0xFFFFFFFF)]
    entries.append((0x20, 0, 0xFFFFFFFF))
    return struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *e) for e in entries)


def _entries(root: Path) -> tuple[list[str], list[str], list[str]]:
    """(regular files, real directories, every entry) below ``root``, relative, sorted."""
    files: list[str] = []
    dirs: list[str] = []
    every: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            rel = os.path.relpath(os.path.join(dirpath, name), root)
            every.append(rel)
            mode = os.lstat(root / rel).st_mode
            if stat.S_ISREG(mode):
                files.append(rel)
            elif stat.S_ISDIR(mode):
                dirs.append(rel)
    return sorted(files), sorted(dirs), sorted(every)


def _make_base(root: Path, rng: random.Random) -> None:
    root.mkdir()
    (root / "d").mkdir()
    (root / "d" / "e").mkdir()
    for i in range(rng.randint(1, 5)):
        where = rng.choice(["", "d/", "d/e/"]) if i else ""
        size = rng.choice([0, 100, REGION, 3 * REGION + 100, 40 * REGION])
        (root / f"{where}f{i}").write_bytes(rng.randbytes(size))
    if rng.random() < 0.5:
        os.link(root / "f0", root / "d" / "h0")
    os.symlink("f0", root / "s0")
    os.setxattr(root / "f0", "user.keep", b"1")


def random_op(app: App, rng: random.Random) -> None:
    """One random operation on the application's tree."""
    files, dirs, every = _entries(app.root)
    parent = rng.choice(["", *(d + "/" for d in dirs)])
    fresh = parent + rng.choice(NAMES)
    free = not os.path.lexists(app.p(fresh))
    kind = rng.choice(
        ["write"] * 4
        + ["punch", "truncate", "extend", "create", "mkdir", "symlink", "relink_symlink"]
        + ["link", "unlink", "rmdir", "rmtree", "rename", "rename", "exchange", "to_dir"]
        + ["chmod", "chown", "touch", "xattr", "rmxattr", "acl", "mkfifo"]
    )
    some_file = rng.choice(files) if files else None
    if kind == "write" and some_file:
        offset, size = rng.randint(0, 6 * REGION), rng.randint(1, 2 * REGION)
        app.write(some_file, offset, bytes([rng.randint(0, 255)]) * size)
    elif kind == "punch" and some_file:
        app.punch(some_file, rng.randint(0, 4 * REGION), rng.randint(1, 2 * REGION))
    elif kind == "truncate" and some_file:
        app.truncate(some_file, rng.randint(0, 4 * REGION))
    elif kind == "extend" and some_file:
        app.truncate(some_file, os.lstat(app.p(some_file)).st_size + rng.randint(1, 3 * REGION))
    elif kind == "create" and free:
        app.create(fresh)
    elif kind == "mkdir" and free:
        app.mkdir(fresh)
    elif kind == "mkfifo" and free:
        app.mkfifo(fresh)
    elif kind == "symlink" and free:
        app.symlink(fresh, rng.choice(["a", "../x", "d/f0", "/etc"]))
    elif kind == "relink_symlink":
        links = [e for e in every if os.path.islink(app.p(e))]
        if links:
            victim = rng.choice(links)
            app.unlink(victim)
            app.symlink(victim, rng.choice(["elsewhere", "d", "f1"]))
    elif kind == "link" and free and some_file:
        app.link(some_file, fresh)
    elif kind == "unlink":
        victims = [e for e in every if e not in dirs]
        if victims:
            app.unlink(rng.choice(victims))
    elif kind == "rmdir" and dirs:
        empty = [d for d in dirs if not os.listdir(app.p(d))]
        if empty:
            app.rmdir(rng.choice(empty))
    elif kind == "rmtree" and dirs:
        app.rmtree(rng.choice(dirs))
    elif kind == "rename" and every:
        old = rng.choice(every)
        if fresh == old or fresh.startswith(old + "/"):
            return
        target = app.p(fresh)
        if os.path.lexists(target) and (target.is_dir() or app.p(old).is_dir()):
            return  # keep to renames the kernel accepts
        app.rename(old, fresh)
    elif kind == "exchange" and len(every) > 1:
        a, b = rng.sample(every, 2)
        if not (a.startswith(b + "/") or b.startswith(a + "/")):
            app.exchange(a, b)
    elif kind == "to_dir" and some_file:
        app.unlink(some_file)
        app.mkdir(some_file)
    elif kind == "chmod" and some_file:
        app.chmod(some_file, rng.choice([0o600, 0o640, 0o4755, 0o2750]))
    elif kind == "chown" and every:
        app.chown(rng.choice(every), rng.choice([0, 1000, 1001]), rng.choice([0, 100]))
    elif kind == "touch" and every:
        app.touch(rng.choice(every), rng.randint(1, 2**40) * 1000 + rng.randint(0, 999))
    elif kind == "xattr" and some_file:
        app.setxattr(some_file, rng.choice(["user.a", "user.b"]), rng.randbytes(3))
    elif kind == "rmxattr" and some_file:
        present = os.listxattr(app.p(some_file))
        user = [n for n in present if n.startswith("user.")]
        if user:
            app.removexattr(some_file, rng.choice(user))
    elif kind == "acl" and (dirs or files):
        app.acl(rng.choice(dirs + files), rng.choice([1000, 1001]))


# --- comparing trees ------------------------------------------------------------------


def snapshot(root: Path) -> dict[str, object]:
    """Type, mode, owner, size, mtime (ns), content, symlink target, xattrs (ACLs) of every
    entry (the root included), and the hard-link groups."""
    out: dict[str, object] = {}
    groups: dict[int, list[str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in ["", *dirnames, *filenames]:
            if not name and dirpath != str(root):
                continue
            full = Path(dirpath, name) if name else root
            rel = os.path.relpath(full, root)
            st = os.lstat(full)
            item: tuple[object, ...] = (st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns)
            if stat.S_ISLNK(st.st_mode):
                item += (os.readlink(full),)
            else:
                xattrs = sorted((n, os.getxattr(full, n)) for n in os.listxattr(full))
                item += (tuple(xattrs),)
            if stat.S_ISREG(st.st_mode):
                item += (st.st_size, full.read_bytes())
                groups.setdefault(st.st_ino, []).append(rel)
            out[rel] = item
    out["<links>"] = sorted(sorted(g) for g in groups.values() if len(g) > 1)
    return out


def _differences(a: dict[str, object], b: dict[str, object]) -> list[str]:
    return [
        f"{k}: {a.get(k)!r:.200} != {b.get(k)!r:.200}"
        for k in sorted(a.keys() | b.keys())
        if a.get(k) != b.get(k)
    ]


def assert_same(target: Path, source: Path, context: str) -> None:
    diff = _differences(snapshot(target), snapshot(source))
    assert not diff, f"{context}: target differs:\n" + "\n".join(diff[:10])


# --- applying a stream ------------------------------------------------------------------


@dataclass
class Sent:
    mutations: int = 0
    data: int = 0
    wire: int = 0
    ops: frozenset[Op] = frozenset()


def through_frames(
    mutations: Iterable[Mutation],
    applier: DirectoryApplier,
    between: Callable[[], None] | None = None,
) -> Sent:
    """Pack every mutation in a frame, decode it back, apply it; count what was sent."""
    sent = Sent()
    kinds: set[Op] = set()
    decoder = StreamDecoder()
    for seq, mutation in enumerate(mutations, 1):
        raw = pack(MutationFrame(seq, Level.APPLIED, mutation))
        (frame,) = decoder.feed(raw)
        assert isinstance(frame, MutationFrame), frame
        assert frame.mutation == mutation
        applier.apply(frame.mutation, durable=False)
        sent.mutations += 1
        sent.wire += len(raw)
        kinds.add(mutation.op)
        if mutation.op is Op.WRITE:
            sent.data += len(mutation.data or b"")
        if between is not None:
            between()
    sent.ops = frozenset(kinds)
    return sent


def _through_links(changes: ChangeSet) -> dict[str, FileChanges]:
    """``files`` plus the changes a Link op gives its new name (then carried by renames):
    the target's own changes to an inode (a crashed primary's log) show through every
    name the replayed links give it."""
    files = dict(changes.files)
    carried: dict[str, FileChanges] = {}
    for op in changes.ops:
        if isinstance(op, Link):
            for found in (files.get(op.existing), carried.get(op.existing)):
                if found is not None:
                    known = carried.get(op.new)
                    carried[op.new] = known.union(found) if known else found
        elif isinstance(op, Rename):
            pairs = [(op.old, op.new), (op.new, op.old)] if op.exchange else [(op.old, op.new)]
            for path, fc in list(carried.items()):
                for old, new in pairs:
                    if path == old or path.startswith(old + "/"):
                        moved = new + path[len(old) :]
                        carried[moved] = carried[moved].union(fc) if moved in carried else fc
    for path, fc in carried.items():
        files[path] = files[path].union(fc) if path in files else fc
    return files


def data_bound(changes: ChangeSet, source: Path, reconciled: Iterable[str]) -> int:
    """Bytes of source data the set says may differ: changed regions and tails (per inode,
    clipped to the file's size) plus the regular files below the names reconciled whole."""
    unit = changes.region_size
    per_inode: dict[int, tuple[int, FileChanges]] = {}
    for path, fc in _through_links(changes).items():
        try:
            st = os.lstat(source / path)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode):
            known = per_inode.get(st.st_ino, (st.st_size, FileChanges()))[1]
            per_inode[st.st_ino] = (st.st_size, known.union(fc))
    total = 0
    for size, fc in per_inode.values():
        covered = {r for r in fc.regions if r * unit < size}
        if fc.tail_from is not None:
            covered |= set(range(fc.tail_from, (size + unit - 1) // unit))
        total += sum(min((r + 1) * unit, size) - r * unit for r in covered)
    seen: set[int] = set()
    for name in reconciled:
        full = source / name
        if not os.path.lexists(full):
            continue
        walk = [(str(full), [], [])] if not full.is_dir() or full.is_symlink() else os.walk(full)
        for dirpath, _, filenames in walk:
            for f in filenames or [""]:
                st = os.lstat(os.path.join(dirpath, f) if f else dirpath)
                if stat.S_ISREG(st.st_mode) and st.st_ino not in seen:
                    seen.add(st.st_ino)
                    total += st.st_size
    return total


def _soak(scale: object) -> bool:
    return bool(getattr(scale, "soak", False))


def _tracker() -> ChangeTracker:
    return ChangeTracker(storage=LazyStorage(), region_size=REGION)


def _trees(tmp: Path, rng: random.Random) -> tuple[Path, Path]:
    source, target = tmp / "src", tmp / "dst"
    _make_base(source, rng)
    copy_tree(source, target)
    return source, target


# --- the scenarios --------------------------------------------------------------------


def test_random_alone_periods_and_crashed_primaries(tmp_path: Path, scale: object) -> None:
    """Survivor ALONE with random changes; half the time the target is a crashed primary
    with unacknowledged changes of its own (activity log, merged)."""
    seeds = range(600 if _soak(scale) else 60)
    totals = [0, 0]
    for seed in seeds:
        rng = random.Random(seed)
        tmp = tmp_path / str(seed)
        tmp.mkdir()
        source, target = _trees(tmp, rng)
        crashed = seed % 2 == 1
        unacked = None
        if crashed:
            p_tracker = _tracker()
            p_tracker.mirror()
            p = App(target, p_tracker)
            for _ in range(rng.randint(1, 12)):
                random_op(p, rng)
            unacked = resolve_names(p_tracker.unacknowledged(), target)  # type: ignore[arg-type]
        tracker = _tracker()
        tracker.begin(GEN)
        app = App(source, tracker)
        for _ in range(rng.randint(1, 30)):
            random_op(app, rng)
        theirs = tracker.changes_since(GEN)
        assert isinstance(theirs, ChangeSet)
        changes = resolve_names(theirs, source)
        if unacked is not None:
            merged = merge(changes, unacked)
            assert isinstance(merged, ChangeSet)
            changes = merged
        plan = plan_resync(changes, source, chunk=REGION)
        stream = ResyncStream(changes, source, chunk=REGION)
        applier = DirectoryApplier(target)
        try:
            sent = through_frames(stream, applier)
        finally:
            applier.close()
        assert_same(target, source, f"seed {seed}")
        bound = data_bound(changes, source, stream.reconciled)
        assert sent.data <= bound, f"seed {seed}: sent {sent.data} > changed data {bound}"
        assert (plan.data_bytes, plan.mutations) == (sent.data, sent.mutations), f"seed {seed}"
        totals[0] += sent.data
        totals[1] += bound
    assert totals[0] <= totals[1]


def test_online_rounds_converge_while_the_application_writes(tmp_path: Path, scale: object) -> None:
    """Rounds streamed while the application keeps changing the source (between any two
    mutations), each round handing ``touched()`` to the next; the final round, with the
    application held, leaves the target equal to the source."""
    for seed in range(300 if _soak(scale) else 30):
        rng = random.Random(1000 + seed)
        tmp = tmp_path / str(seed)
        tmp.mkdir()
        source, target = _trees(tmp, rng)
        tracker = _tracker()
        tracker.begin(GEN)
        app = App(source, tracker)
        for _ in range(rng.randint(1, 20)):
            random_op(app, rng)
        previous: Touched | None = None
        applier = DirectoryApplier(target)
        rate = rng.choice([0.05, 0.2, 0.5])

        def meanwhile(app: App = app, rng: random.Random = rng, rate: float = rate) -> None:
            if rng.random() < rate:
                random_op(app, rng)

        try:
            for last in [False] * rng.randint(1, 4) + [True]:
                changes = tracker.changes_since(GEN)
                assert isinstance(changes, ChangeSet)
                stream = ResyncStream(resolve_names(changes, source), source, previous=previous)
                through_frames(stream, applier, None if last else meanwhile)
                tracker.clear_upto(changes.upto)
                previous = stream.touched()
        finally:
            applier.close()
        assert_same(target, source, f"seed {1000 + seed}")


def test_an_interrupted_round_resumes_from_the_acknowledged_ops(
    tmp_path: Path, scale: object
) -> None:
    """The link drops after ``k`` mutations of which only the first ``a`` were
    acknowledged; the retry skips the acknowledged ops and reconciles the names of the
    ones in flight (they may or may not have been applied)."""
    for seed in range(400 if _soak(scale) else 40):
        rng = random.Random(2000 + seed)
        tmp = tmp_path / str(seed)
        tmp.mkdir()
        source, target = _trees(tmp, rng)
        tracker = _tracker()
        tracker.begin(GEN)
        app = App(source, tracker)
        for _ in range(rng.randint(1, 25)):
            random_op(app, rng)
        changes = tracker.changes_since(GEN)
        assert isinstance(changes, ChangeSet)
        changes = resolve_names(changes, source)
        first = ResyncStream(changes, source)
        produced = list(first)
        sent_upto = rng.randint(0, len(produced))
        acked = rng.randint(0, sent_upto)
        applied = rng.randint(acked, sent_upto)  # frames in flight: some arrived, some not
        applier = DirectoryApplier(target)
        try:
            through_frames(produced[:applied], applier)
            n_ops = len(changes.ops)
            retry = ResyncStream(
                changes,
                source,
                previous=first.touched(),
                applied_ops=min(acked, n_ops),
                unsure_ops=min(sent_upto, n_ops) - min(acked, n_ops),
            )
            through_frames(retry, applier)
        finally:
            applier.close()
        assert_same(target, source, f"seed {2000 + seed} ({acked}/{applied}/{sent_upto})")


def _alone(source: Path) -> tuple[ChangeTracker, App]:
    tracker = _tracker()
    tracker.begin(GEN)
    return tracker, App(source, tracker)


def _resync(tracker: ChangeTracker, source: Path, target: Path) -> tuple[Sent, ChangeSet]:
    changes = tracker.changes_since(GEN)
    assert isinstance(changes, ChangeSet)
    changes = resolve_names(changes, source)
    applier = DirectoryApplier(target)
    try:
        sent = through_frames(resync_mutations(changes, source), applier)
    finally:
        applier.close()
    assert_same(target, source, "after the resync")
    return sent, changes


def _pair(tmp_path: Path, build: Callable[[Path], None]) -> tuple[Path, Path]:
    source, target = tmp_path / "src", tmp_path / "dst"
    source.mkdir()
    build(source)
    copy_tree(source, target)
    return source, target


def test_renaming_a_big_file_copies_no_data(tmp_path: Path) -> None:
    source, target = _pair(tmp_path, lambda s: (s / "big").write_bytes(os.urandom(8 << 20)))
    tracker, app = _alone(source)
    app.mkdir("archive")
    app.rename("big", "archive/big.1")
    sent, _ = _resync(tracker, source, target)
    assert sent.data == 0
    assert sent.mutations < 10


def test_a_truncated_then_extended_file_gets_its_hole_back(tmp_path: Path) -> None:
    source, target = _pair(tmp_path, lambda s: (s / "f").write_bytes(b"x" * 64 * REGION))
    tracker, app = _alone(source)
    app.truncate("f", REGION + 10)
    app.truncate("f", 200 * REGION)  # a hole from REGION + 10 on
    app.write("f", 100 * REGION, b"y" * REGION)
    sent, _ = _resync(tracker, source, target)
    assert sent.data == 2 * REGION  # the tail from region 1: 2 data blocks, no hole
    assert os.stat(target / "f").st_blocks * 512 < 8 * REGION  # still sparse


def test_a_punched_region_is_a_hole_on_the_target(tmp_path: Path) -> None:
    source, target = _pair(tmp_path, lambda s: (s / "f").write_bytes(b"x" * 16 * REGION))
    tracker, app = _alone(source)
    app.punch("f", 4 * REGION, 8 * REGION)
    sent, _ = _resync(tracker, source, target)
    assert sent.data == 0 and Op.PUNCH in sent.ops
    assert os.stat(target / "f").st_blocks * 512 <= 9 * REGION


def test_deleting_a_tree_replacing_a_file_and_changing_a_symlink(tmp_path: Path) -> None:
    def build(s: Path) -> None:
        (s / "t" / "u").mkdir(parents=True)
        for i in range(5):
            (s / "t" / f"f{i}").write_bytes(b"t" * 1000)
            (s / "t" / "u" / f"g{i}").write_bytes(b"u" * 1000)
        (s / "file").write_bytes(b"was a file")
        os.symlink("t", s / "link")

    source, target = _pair(tmp_path, build)
    tracker, app = _alone(source)
    app.rmtree("t")
    app.unlink("file")
    app.mkdir("file")
    app.unlink("link")
    app.symlink("link", "elsewhere")
    sent, _ = _resync(tracker, source, target)
    assert sent.data == 0


def test_xattr_removal_acl_and_times_of_symlinks_and_directories(tmp_path: Path) -> None:
    def build(s: Path) -> None:
        (s / "f").write_bytes(b"f")
        os.setxattr(s / "f", "user.gone", b"1")
        os.setxattr(s / "f", "user.kept", b"2")
        (s / "dir").mkdir()
        os.symlink("f", s / "l")

    source, target = _pair(tmp_path, build)
    tracker, app = _alone(source)
    app.removexattr("f", "user.gone")
    app.acl("dir", 1234)
    app.touch("l", 1_234_567_890_123_456_789)
    app.touch("dir", 987_654_321_123_456_789)
    app.chown("f", 1000, 100)
    app.chmod("f", 0o4750)
    sent, _ = _resync(tracker, source, target)
    assert sent.data == 0
    assert "user.gone" not in os.listxattr(target / "f")


def test_hard_links_end_as_one_inode(tmp_path: Path) -> None:
    def build(s: Path) -> None:
        (s / "d").mkdir()
        (s / "a").write_bytes(b"a" * 3 * REGION)
        os.link(s / "a", s / "d" / "b")

    source, target = _pair(tmp_path, build)
    tracker, app = _alone(source)
    app.write("d/b", REGION, b"z" * 10)  # through one name: every name has the change
    app.link("a", "c")
    app.create("n")
    app.write("n", 0, b"new" * 100)
    app.link("n", "d/m")
    sent, _ = _resync(tracker, source, target)
    assert sent.data == REGION + 300  # the changed region once, not once per name
    assert os.stat(target / "a").st_ino == os.stat(target / "d" / "b").st_ino
    assert os.stat(target / "a").st_ino == os.stat(target / "c").st_ino


def test_a_reconciled_hard_linked_file_is_sent_once_and_relinked(tmp_path: Path) -> None:
    """The target (a crashed primary) replaced one name of a linked pair on its own; the
    merged set reconciles that name: the data is sent once and both names end linked."""

    def build(s: Path) -> None:
        (s / "a").write_bytes(b"a" * 2 * REGION)
        os.link(s / "a", s / "b")

    source, target = _pair(tmp_path, build)
    p_tracker = _tracker()
    p_tracker.mirror()
    p = App(target, p_tracker)
    p.unlink("b")
    p.create("b")
    p.write("b", 0, b"diverged")
    unacked = resolve_names(p_tracker.unacknowledged(), target)  # type: ignore[arg-type]
    tracker, app = _alone(source)
    app.write("a", 0, b"q")
    theirs = tracker.changes_since(GEN)
    assert isinstance(theirs, ChangeSet)
    merged = merge(resolve_names(theirs, source), unacked)
    assert isinstance(merged, ChangeSet)
    applier = DirectoryApplier(target)
    try:
        sent = through_frames(resync_mutations(merged, source), applier)
    finally:
        applier.close()
    assert_same(target, source, "crashed primary")
    assert sent.data == 2 * REGION
    assert os.stat(target / "a").st_ino == os.stat(target / "b").st_ino


def test_every_resync_op_survives_the_frames_and_any_target_state(tmp_path: Path) -> None:
    """Each new op applied on a target where its names hold anything (absent, a file, a
    directory with content, a symlink to outside the tree, under a missing parent)
    neither fails nor escapes the target directory."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim").write_bytes(b"keep me")
    target = tmp_path / "t"

    def fill() -> None:
        if target.exists():
            for dirpath, _, _ in os.walk(target):
                os.chmod(dirpath, 0o755)
            import shutil

            shutil.rmtree(target)
        target.mkdir()
        (target / "file").write_bytes(b"content")
        (target / "dir" / "sub").mkdir(parents=True)
        (target / "dir" / "sub" / "x").write_bytes(b"x")
        os.symlink(str(outside), target / "escape")
        os.symlink(str(outside / "victim"), target / "vlink")

    names = [
        "/file",
        "/dir",
        "/dir/sub",
        "/escape",
        "/escape/victim",
        "/vlink",
        "/none",
        "/none/deeper",
        "/file/under",
    ]
    kinds = [stat.S_IFREG, stat.S_IFDIR, stat.S_IFLNK, stat.S_IFIFO]
    mutations: list[Mutation] = []
    for a in names:
        mutations.append(Mutation(Op.REMOVE, a))
        mutations.append(
            Mutation(
                Op.SETATTRS,
                a,
                mode=stat.S_IFREG | 0o777,
                uid=1,
                gid=1,
                atime_ns=5,
                mtime_ns=5,
                value=b"",
            )
        )
        for kind in kinds:
            for flags in (0, os.O_EXCL, os.O_TRUNC):
                mutations.append(Mutation(Op.ENSURE, a, mode=kind, flags=flags, target="zz"))
        for b in names:
            mutations.append(Mutation(Op.MOVE, a, b))
            mutations.append(Mutation(Op.MOVE, a, b, flags=RENAME_EXCHANGE))
            mutations.append(Mutation(Op.RELINK, a, b))
    handle = 1 << 50
    for a in names:
        mutations += [
            Mutation(Op.ENSURE, a, handle=handle, mode=stat.S_IFREG),
            Mutation(Op.WRITE, a, handle=handle, offset=3, length=2, data=b"zz"),
            Mutation(Op.PUNCH, a, handle=handle, offset=0, length=2),
            Mutation(Op.TRUNCATE, a, handle=handle, length=100),
            Mutation(Op.RELEASE, a, handle=handle),
        ]
    for m in mutations:
        fill()
        applier = DirectoryApplier(target)
        try:
            through_frames([m], applier)
        finally:
            applier.close()
        assert (outside / "victim").read_bytes() == b"keep me", m
        assert os.lstat(outside / "victim").st_mode & 0o777 != 0o777, m
        assert sorted(os.listdir(outside)) == ["victim"], m


def test_frames_carry_every_new_op() -> None:
    new = [Op.REMOVE, Op.ENSURE, Op.RELINK, Op.MOVE, Op.PUNCH, Op.SETATTRS]
    decoder = StreamDecoder()
    for i, op in enumerate(new, 1):
        m = Mutation(
            op,
            "/a/b",
            "/c",
            handle=(1 << 48) + i,
            offset=7,
            length=9,
            mode=0o100644,
            flags=os.O_EXCL,
            uid=3,
            gid=4,
            atime_ns=5,
            mtime_ns=6,
            value=b"v",
            target="t",
        )
        (frame,) = decoder.feed(pack(MutationFrame(i, Level.APPLIED, m)))
        assert isinstance(frame, MutationFrame) and frame.mutation == m


def test_a_resync_handle_never_reaches_an_unrelated_file(tmp_path: Path) -> None:
    """An ENSURE that finds no directory leaves its handle unbound (even one a previous,
    aborted stream bound): the writes through it do nothing."""
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "f").write_bytes(b"old")
    applier = DirectoryApplier(tmp_path / "t")
    h = (1 << 48) + 1
    try:
        applier.apply(Mutation(Op.ENSURE, "/f", handle=h, mode=stat.S_IFREG), durable=False)
        applier.apply(Mutation(Op.ENSURE, "/no/f", handle=h, mode=stat.S_IFREG), durable=False)
        applier.apply(Mutation(Op.WRITE, "/no/f", handle=h, length=3, data=b"new"), durable=True)
        applier.apply(Mutation(Op.TRUNCATE, "/no/f", handle=h, length=0), durable=True)
    finally:
        applier.close()
    assert (tmp_path / "t" / "f").read_bytes() == b"old"
    assert not (tmp_path / "t" / "no").exists()


def test_absent_names_and_errors_of_the_source_are_not_fatal(tmp_path: Path) -> None:
    """A set naming things the source no longer has: removed on the target."""
    source, target = _pair(tmp_path, lambda s: (s / "keep").write_bytes(b"k"))
    (target / "gone").write_bytes(b"stale")
    (target / "gone-dir").mkdir()
    changes = ChangeSet(
        REGION,
        0,
        names=frozenset({"gone", "gone-dir/x"}),
        files={"gone-file": FileChanges(frozenset({0}))},
    )
    (target / "gone-file").write_bytes(b"stale")
    applier = DirectoryApplier(target)
    try:
        through_frames(resync_mutations(changes, source), applier)
    finally:
        applier.close()
    assert sorted(os.listdir(target)) == ["gone-dir", "keep"]


# --- each rule of the stream, on the smallest scenario that needs it -------------------


def _round(
    tracker: ChangeTracker,
    source: Path,
    applier: DirectoryApplier,
    previous: Touched | None = None,
    race: tuple[Callable[[Mutation], bool], Callable[[], None]] | None = None,
) -> Touched:
    """One online round; ``race``: (after which mutation, what the application does)."""
    changes = tracker.changes_since(GEN)
    assert isinstance(changes, ChangeSet)
    stream = ResyncStream(resolve_names(changes, source), source, previous=previous)
    for m in stream:
        applier.apply(m, durable=False)
        if race is not None and race[0](m):
            race[1]()
            race = None
    assert race is None, "the race never ran"
    tracker.clear_upto(changes.upto)
    return stream.touched()


def _online(
    tmp_path: Path,
    build: Callable[[Path], None],
    alone: Callable[[App], None],
    after: Callable[[Mutation], bool],
    meanwhile: Callable[[App], None],
) -> tuple[Path, Path]:
    source, target = _pair(tmp_path, build)
    tracker, app = _alone(source)
    alone(app)
    applier = DirectoryApplier(target)
    try:
        touched = _round(tracker, source, applier, race=(after, lambda: meanwhile(app)))
        _round(tracker, source, applier, previous=touched)
    finally:
        applier.close()
    return source, target


def _ensure_of(path: str) -> Callable[[Mutation], bool]:
    return lambda m: m.op is Op.ENSURE and m.path == path


def _two_files(s: Path) -> None:
    (s / "a").write_bytes(b"a" * 4 * REGION)
    (s / "p").write_bytes(b"p" * 4 * REGION)


def test_a_file_replaced_while_the_round_reads_it_is_reconciled_next_round(
    tmp_path: Path,
) -> None:
    """Round 1 reads the new ``p`` (created after its marker) into the target's old
    ``p``; round 2 replays the rename of the old one to ``q``: ``q`` is reconciled."""

    def meanwhile(app: App) -> None:
        app.rename("p", "q")
        app.create("p")
        app.write("p", 0, b"new" * 100)

    def alone(app: App) -> None:
        app.write("a", 0, b"A")
        app.write("p", 0, b"P")

    source, target = _online(tmp_path, _two_files, alone, _ensure_of("/a"), meanwhile)
    assert_same(target, source, "replaced while read")


def test_a_directory_renamed_before_the_round_reads_its_file(tmp_path: Path) -> None:
    """Round 1 finds ``d/p`` gone (``d`` renamed to ``e`` after the marker) and removes it
    on the target; round 2 replays the rename and reconciles ``e/p``, whose change the
    first round's ``clear_upto`` forgot."""

    def build(s: Path) -> None:
        (s / "a").write_bytes(b"a" * REGION)
        (s / "d").mkdir()
        (s / "d" / "p").write_bytes(b"p" * 4 * REGION)

    def alone(app: App) -> None:
        app.write("a", 0, b"A")
        app.write("d/p", REGION, b"changed")

    source, target = _online(
        tmp_path, build, alone, _ensure_of("/a"), lambda app: app.rename("d", "e")
    )
    assert_same(target, source, "directory renamed while read")


def test_the_other_links_of_a_replaced_name_are_repaired(tmp_path: Path) -> None:
    """``c`` and ``d`` are links of one file; round 1 copies its region through ``c``
    after ``x`` replaced ``c``: the target's file (``d`` too) got ``x``'s data. Round 2
    reconciles ``c`` (the op touched it) and ``d`` (the other link of what it held)."""

    def build(s: Path) -> None:
        (s / "a").write_bytes(b"a" * REGION)
        (s / "c").write_bytes(b"c" * 2 * REGION)
        os.link(s / "c", s / "d")
        (s / "x").write_bytes(b"x" * 2 * REGION)

    def alone(app: App) -> None:
        app.write("a", 0, b"A")
        app.write("c", 0, b"C")

    source, target = _online(
        tmp_path, build, alone, _ensure_of("/a"), lambda app: app.rename("x", "c")
    )
    assert_same(target, source, "link replaced while read")


def test_ops_in_flight_when_the_link_dropped_are_reconciled(tmp_path: Path) -> None:
    """The target applied ``ENSURE p`` and ``MOVE q p`` but acknowledged neither: replayed
    again they would empty ``p`` (``q`` is gone); as unsure ops their names are
    reconciled instead."""
    source, target = _pair(tmp_path, lambda s: (s / "q").write_bytes(b"q" * 3 * REGION))
    tracker, app = _alone(source)
    app.create("p")
    app.rename("q", "p")
    changes = tracker.changes_since(GEN)
    assert isinstance(changes, ChangeSet)
    changes = resolve_names(changes, source)
    applier = DirectoryApplier(target)
    try:
        through_frames(list(ResyncStream(changes, source))[:2], applier)
        retry = ResyncStream(changes, source, unsure_ops=2)
        through_frames(retry, applier)
    finally:
        applier.close()
    assert_same(target, source, "in flight")
    assert retry.reconciled == ("p", "q")


def _crashed_primary(
    tmp_path: Path,
    build: Callable[[Path], None],
    primary: Callable[[App], None],
    survivor: Callable[[App], None],
) -> tuple[Path, Path, Sent]:
    source, target = _pair(tmp_path, build)
    p_tracker = _tracker()
    p_tracker.mirror()
    primary(App(target, p_tracker))
    unacked = resolve_names(p_tracker.unacknowledged(), target)  # type: ignore[arg-type]
    tracker, app = _alone(source)
    survivor(app)
    theirs = tracker.changes_since(GEN)
    assert isinstance(theirs, ChangeSet)
    merged = merge(resolve_names(theirs, source), unacked)
    assert isinstance(merged, ChangeSet)
    applier = DirectoryApplier(target)
    try:
        sent = through_frames(resync_mutations(merged, source), applier)
    finally:
        applier.close()
    return source, target, sent


def test_unacknowledged_writes_reach_the_names_a_link_gives_their_file(tmp_path: Path) -> None:
    """The crashed primary wrote region 1 of ``f``; the survivor linked ``f`` as ``g`` and
    unlinked ``f``: the region is copied to ``g`` (the set only names ``f``)."""

    def survivor(app: App) -> None:
        app.link("f", "g")
        app.unlink("f")

    source, target, sent = _crashed_primary(
        tmp_path,
        lambda s: (s / "f").write_bytes(b"f" * 3 * REGION),
        lambda p: p.write("f", REGION, b"unacknowledged"),
        survivor,
    )
    assert_same(target, source, "write reached through a link")
    assert sent.data == REGION


def test_a_name_linked_from_a_diverged_name_is_followed_through_renames(
    tmp_path: Path,
) -> None:
    """The crashed primary replaced ``e``; the survivor linked ``e`` as ``d/n``, renamed
    ``d`` to ``d2`` and unlinked ``e``: ``d2/n`` (not only ``d/n``) is reconciled."""

    def build(s: Path) -> None:
        (s / "e").write_bytes(b"e" * 3 * REGION)
        (s / "d").mkdir()

    def primary(p: App) -> None:
        p.unlink("e")
        p.create("e")
        p.write("e", 0, b"diverged")

    def survivor(app: App) -> None:
        app.link("e", "d/n")
        app.rename("d", "d2")
        app.unlink("e")

    source, target, _ = _crashed_primary(tmp_path, build, primary, survivor)
    assert_same(target, source, "link of a diverged name")


def test_a_rename_inside_a_directory_the_last_round_copied_whole(tmp_path: Path) -> None:
    """Round 1 copies ``d`` whole after ``d/y`` was renamed to ``d/z`` and a new ``d/y``
    created; replaying that rename in round 2 would put the new ``y`` at ``z``: both
    names are reconciled (their op is under a name the last round read whole)."""

    def build(s: Path) -> None:
        (s / "a").write_bytes(b"a" * REGION)
        (s / "d").mkdir()
        (s / "d" / "y").write_bytes(b"y" * 2 * REGION)

    def alone(app: App) -> None:
        for name in ("a", "d"):  # to be reconciled whole (as after a failed op)
            app.tracker.failed(Mkdir(name))

    def meanwhile(app: App) -> None:
        app.rename("d/y", "d/z")
        app.create("d/y")
        app.write("d/y", 0, b"new y")

    source, target = _online(tmp_path, build, alone, _ensure_of("/a"), meanwhile)
    assert_same(target, source, "rename inside a directory copied whole")


def test_move_between_two_links_of_one_file_removes_the_old_name(tmp_path: Path) -> None:
    """A target whose ``a`` and ``b`` are one inode (the source's were not, or a retry):
    MOVE a b must leave only ``b``, as the rename did on the source."""
    (tmp_path / "a").write_bytes(b"x")
    os.link(tmp_path / "a", tmp_path / "b")
    applier = DirectoryApplier(tmp_path)
    try:
        applier.apply(Mutation(Op.MOVE, "/a", "/b"), durable=True)
    finally:
        applier.close()
    assert sorted(os.listdir(tmp_path)) == ["b"]


def test_a_file_under_a_name_reconciled_whole_is_sent_once(tmp_path: Path) -> None:
    def build(s: Path) -> None:
        (s / "d").mkdir()
        (s / "d" / "f").write_bytes(b"f" * 3 * REGION)

    source, target = _pair(tmp_path, build)
    tracker, app = _alone(source)
    app.write("d/f", REGION, b"changed")
    tracker.failed(Mkdir("d"))  # "d" is reconciled whole
    sent, _ = _resync(tracker, source, target)
    assert sent.data == 3 * REGION


@pytest.mark.parametrize(
    ("mutation", "before", "after"),
    [
        (Mutation(Op.MOVE, "/a", "/no/b"), ["a"], []),
        (Mutation(Op.MOVE, "/a", "/dir"), ["a", "dir/x"], ["dir"]),
        (Mutation(Op.MOVE, "/gone", "/a"), ["a"], ["a"]),
        (Mutation(Op.MOVE, "/a", "/b", flags=RENAME_EXCHANGE), ["a"], ["b"]),
        (Mutation(Op.RELINK, "/gone", "/a"), ["a"], []),
        (Mutation(Op.RELINK, "/a", "/dir"), ["a", "dir/x"], ["a", "dir"]),
        (Mutation(Op.ENSURE, "/dir", mode=stat.S_IFDIR), ["dir/x"], ["dir", "dir/x"]),
        (Mutation(Op.ENSURE, "/dir", mode=stat.S_IFDIR, flags=os.O_EXCL), ["dir/x"], ["dir"]),
        (Mutation(Op.ENSURE, "/dir", mode=stat.S_IFREG), ["dir/x"], ["dir"]),
        (Mutation(Op.ENSURE, "/a/b", mode=stat.S_IFREG), ["a"], ["a"]),
        (Mutation(Op.REMOVE, "/dir"), ["a", "dir/x"], ["a"]),
        (Mutation(Op.REMOVE, "/gone/x"), ["a"], ["a"]),
    ],
)
def test_resync_op_semantics(
    tmp_path: Path, mutation: Mutation, before: list[str], after: list[str]
) -> None:
    for name in before:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    applier = DirectoryApplier(tmp_path)
    try:
        applier.apply(mutation, durable=True)
    finally:
        applier.close()
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == after
