"""Record writers run inside lab nodes, and the checks of what they leave behind (the
durability and resync acceptance tests of issue #4).

A writer is ``python -m hamod.testing.writers KIND ...`` started inside a node (through
``lab.popen``). It reports on stdout, one line per event, written at once, so the test on
the host knows what was acknowledged even when the node is powered off mid-write:

- ``r N``: resumed: the file(s) held N intact records in order; the next one is N;
- ``s N``: record N started (its write is about to be issued);
- ``a N``: record N acknowledged (its write, and its sync if any, returned);
- ``x N ERROR``: the writer stopped on an error while writing record N;
- ``j {...}``: a JSON summary (``churn``, ``fill``, ``names``);
- ``d N``: done (stdin closed with ``--until-eof``, or ``--count`` reached): N records
  acknowledged by this run.

``names`` adds what it did after the number (``a 12 rename d1/f3 d2/r9``). With
``--until-eof`` a writer reads its stdin between two records: a line ``p SECONDS`` sets
its pace (:meth:`WriterProc.pace`), end of file stops it after the record in progress
(:meth:`WriterProc.stop`).

Kinds:

- ``append FILE --sync fsync|fdatasync|dsync|none``: appends fixed-size records ``0, 1,
  2...`` (resuming after the intact prefix of the file, a torn tail cut off), each
  followed by ``fsync``/``fdatasync``, written with ``O_DSYNC``, or not synced at all
  (``none``: with ``durability: per-write`` the write returns once replicated).
- ``twodir DATA LOG``: record N to DATA, sync, then a log record naming it (the SHA-256
  of data record N) to LOG, sync, then acknowledged: a log record without its data
  record on a survivor breaks the cross-directory order.
- ``churn DIR``: random overwrites of a fixed "hot" set of regions of ``fill``'s files;
  the summary gives the regions touched and the bytes written.
- ``fill DIR``: the files ``churn`` writes (random content, fsynced).
- ``names DIR``: creates, writes, renames (across directories too, and over existing
  files), unlinks, truncates, mkdirs and rmdirs, mostly without syncing, until stdin
  closes.
- ``lazyfs BACKING MOUNT [--xattrs none|empty]``: starts :mod:`hamod.testing.lazyfs`
  detached inside the node (so it dies with the node: its unsynced tree is lost at
  power-off) and waits until it is mounted; ``--xattrs empty`` (the default) answers
  "no xattr" where LazyFS fails with EOPNOTSUPP (``lazyfs-serve`` is the server).
  :data:`SYNC_SHIM` makes ``os.sync()`` persist it too.

Records (``size`` bytes, default 256): ``magic(4) | number u64 BE | body | sha256`` of
everything before it; the body of a data record is derived from its number, the body
of a log record is the SHA-256 of its data record. Record N sits at offset ``N * size``.

Host side: :func:`check_append` and :func:`check_twodir` list what is wrong with the
files a writer left (acknowledged records missing or damaged, records out of order, log
ahead of data); :class:`WriterProc` reads a writer's stdout in a thread.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import hashlib
import json
import os
import random
import re
import select
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "MAGIC_DATA",
    "MAGIC_LOG",
    "RECORD_SIZE",
    "SYNC_SHIM",
    "Scan",
    "WriterProc",
    "check_append",
    "check_twodir",
    "main",
    "number",
    "record",
    "regions_of",
    "scan",
]

RECORD_SIZE = 256
MAGIC_DATA = b"HRD1"
MAGIC_LOG = b"HRL1"
_HEAD = 12  # magic + number
_SUM = 32
SYNCS = ("fsync", "fdatasync", "dsync", "none")


# --- records -----------------------------------------------------------------------


def _filler(n: int, room: int) -> bytes:
    seed = hashlib.sha256(b"hamod-record-%d" % n).digest()
    return (seed * (room // len(seed) + 1))[:room]


def record(n: int, size: int = RECORD_SIZE, magic: bytes = MAGIC_DATA, body: bytes = b"") -> bytes:
    """Record ``n``: ``size`` bytes; ``body`` (padded with zeros) or a filler derived
    from ``n``."""
    room = size - _HEAD - _SUM
    if room < len(body) or room < 8 or len(magic) != 4:
        raise ValueError(f"record size {size} too small")
    head = magic + struct.pack(">Q", n)
    x = head + (body.ljust(room, b"\0") if body else _filler(n, room))
    return x + hashlib.sha256(x).digest()


def log_record(n: int, size: int = RECORD_SIZE) -> bytes:
    """The log record of ``n``: names data record ``n`` by its SHA-256."""
    return record(n, size, MAGIC_LOG, hashlib.sha256(record(n, size)).digest())


def number(chunk: bytes, magic: bytes = MAGIC_DATA) -> int | None:
    """The number of an intact record, None when ``chunk`` is not one."""
    if len(chunk) < _HEAD + _SUM + 8 or chunk[:4] != magic:
        return None
    if hashlib.sha256(chunk[:-_SUM]).digest() != chunk[-_SUM:]:
        return None
    n: int = struct.unpack(">Q", chunk[4:_HEAD])[0]
    return n


@dataclass
class Scan:
    """What a record file holds: records ``0 .. intact-1`` intact at their places;
    ``misplaced`` (position, number) of intact records at another place; ``beyond``
    positions after the prefix holding their own intact record (after a damaged one)."""

    intact: int = 0
    length: int = 0
    misplaced: list[tuple[int, int]] = field(default_factory=list)
    beyond: list[int] = field(default_factory=list)


def scan(data: bytes, size: int = RECORD_SIZE, magic: bytes = MAGIC_DATA) -> Scan:
    """See :class:`Scan`."""
    out = Scan(length=len(data))
    prefix = True
    for pos in range(len(data) // size):
        n = number(data[pos * size : (pos + 1) * size], magic)
        if prefix and n == pos:
            out.intact = pos + 1
            continue
        prefix = False
        if n is None:
            continue
        if n != pos:
            out.misplaced.append((pos, n))
        else:
            out.beyond.append(pos)
    return out


def _ranges(numbers: Iterable[int]) -> str:
    xs = sorted(numbers)
    parts: list[str] = []
    i = 0
    while i < len(xs):
        j = i
        while j + 1 < len(xs) and xs[j + 1] == xs[j] + 1:
            j += 1
        parts.append(str(xs[i]) if i == j else f"{xs[i]}-{xs[j]}")
        i = j + 1
    shown = ", ".join(parts[:8])
    return shown + (f" (+{len(parts) - 8} more ranges)" if len(parts) > 8 else "")


def _read(path: Path | str) -> bytes | None:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        return None


def _order_problems(name: str, s: Scan) -> list[str]:
    out = []
    if s.misplaced:
        shown = ", ".join(f"#{n} at {p}" for p, n in s.misplaced[:5])
        out.append(f"{name}: {len(s.misplaced)} records out of order ({shown})")
    if s.beyond:
        out.append(
            f"{name}: damaged record at {s.intact} followed by intact records at "
            f"{_ranges(s.beyond)}"
        )
    return out


def check_append(path: Path | str, acked: Iterable[int], size: int = RECORD_SIZE) -> list[str]:
    """What is wrong with the file of an ``append`` writer: acknowledged records missing
    or damaged, records out of order. Empty when all is well."""
    acked = set(acked)
    data = _read(path)
    if data is None:
        return [f"{path}: missing ({len(acked)} acknowledged records)"] if acked else []
    s = scan(data, size)
    out = _order_problems(str(path), s)
    lost = [n for n in acked if n >= s.intact]
    if lost:
        out.append(
            f"{path}: {len(lost)} acknowledged records missing or damaged: {_ranges(lost)} "
            f"(intact prefix {s.intact} records, file {s.length} bytes)"
        )
    return out


def check_twodir(
    data_path: Path | str, log_path: Path | str, acked: Iterable[int], size: int = RECORD_SIZE
) -> list[str]:
    """What is wrong with the files of a ``twodir`` writer: the log ahead of the data
    (a log record whose data record is missing: cross-directory order broken), a log
    record naming other data, acknowledged records missing or damaged in either."""
    acked = set(acked)
    d, lg = _read(data_path), _read(log_path)
    sd = scan(d or b"", size)
    sl = scan(lg or b"", size, MAGIC_LOG)
    out = _order_problems(str(data_path), sd) + _order_problems(str(log_path), sl)
    if sl.intact > sd.intact:
        out.append(
            f"order across directories broken: {log_path} holds log records up to "
            f"{sl.intact - 1} but {data_path} only data records 0-{sd.intact - 1}"
        )
    for n in range(min(sl.intact, sd.intact)):
        assert lg is not None
        if lg[n * size : (n + 1) * size] != log_record(n, size):
            out.append(f"{log_path}: log record {n} does not name data record {n}")
            break
    lost = [n for n in acked if n >= min(sd.intact, sl.intact)]
    if lost:
        out.append(
            f"{data_path} + {log_path}: {len(lost)} acknowledged records missing or "
            f"damaged: {_ranges(lost)} (intact: data {sd.intact}, log {sl.intact})"
        )
    return out


def regions_of(offset: int, length: int, region_size: int) -> range:
    """The regions a write of ``length`` bytes at ``offset`` touches."""
    if length <= 0:
        return range(0)
    return range(offset // region_size, (offset + length - 1) // region_size + 1)


# --- host side: a running writer ------------------------------------------------------


class WriterProc:
    """A writer running in a node (``proc`` from ``lab.popen(..., stdin=PIPE,
    stdout=PIPE)``): its stdout read in a thread. ``acked``: numbers acknowledged;
    ``inflight``: the number started and not acknowledged when the output ended."""

    def __init__(self, name: str, proc: subprocess.Popen[str]) -> None:
        self.name = name
        self.proc = proc
        self.lines: list[str] = []
        self.acked: set[int] = set()
        self.started: set[int] = set()
        self.resumed: int | None = None
        self.summary: dict[str, Any] | None = None
        self.error: str | None = None
        self.done = threading.Event()
        self._cv = threading.Condition()
        self._thread = threading.Thread(target=self._read, name=f"writer-{name}", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        try:
            for line in self.proc.stdout:
                self._line(line.rstrip("\n"))
        except (OSError, ValueError):
            pass
        finally:
            with self._cv:
                self.done.set()
                self._cv.notify_all()

    def _line(self, line: str) -> None:
        kind, _, rest = line.partition(" ")
        first = rest.split(" ", 1)[0]
        with self._cv:
            self.lines.append(line)
            if kind in ("s", "a", "r") and first.isdigit():
                n = int(first)
                if kind == "s":
                    self.started.add(n)
                elif kind == "a":
                    self.acked.add(n)
                else:
                    self.resumed = n
            elif kind == "j":
                with contextlib.suppress(ValueError):
                    self.summary = json.loads(rest)
            elif kind == "x":
                self.error = rest
            self._cv.notify_all()

    @property
    def inflight(self) -> list[int]:
        """Numbers started and never acknowledged."""
        with self._cv:
            return sorted(self.started - self.acked)

    def wait(self, check: Callable[[WriterProc], bool], timeout: float) -> bool:
        """Wait until ``check(self)`` holds (True) or the output ended or ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._cv:
            while not check(self):
                left = deadline - time.monotonic()
                if left <= 0 or self.done.is_set():
                    return check(self)
                self._cv.wait(min(left, 0.2))
        return True

    def wait_acks(self, count: int, timeout: float) -> bool:
        """Wait until ``count`` records were acknowledged by this run."""
        return self.wait(lambda w: len(w.acked) >= count, timeout)

    def pace(self, seconds: float) -> None:
        """Seconds between two records from now on (an ``--until-eof`` writer)."""
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError, ValueError):
                self.proc.stdin.write(f"p {seconds}\n")
                self.proc.stdin.flush()

    def stop(self, timeout: float = 60.0) -> None:
        """Close stdin (an ``--until-eof`` writer finishes its record and exits) and wait
        for the end of its output."""
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        self.join(timeout)

    def join(self, timeout: float = 30.0) -> None:
        """Wait for the end of the output (the node powered off, or the writer done)."""
        self.done.wait(timeout)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)

    def kill(self) -> None:
        """Kill the local end (nsenter and what it runs in its process group)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, 9)
        self.join(10)

    def tail(self, lines: int = 6) -> str:
        with self._cv:
            return " | ".join(self.lines[-lines:])


# --- node side: the writers -------------------------------------------------------


class _Out:
    """stdout, one event per line, written at once (``os.write``)."""

    def __call__(self, line: str) -> None:
        data = (line + "\n").encode()
        while data:
            data = data[os.write(1, data) :]


class _Control:
    """Pace and stop. With ``until_eof`` stdin is polled between records: a line ``p
    SECONDS`` sets the pace (seconds between two records), end of file stops; ``count``
    records also stop."""

    def __init__(self, until_eof: bool, count: int | None, pace: float) -> None:
        self.until_eof = until_eof
        self.count = count
        self.pace = pace
        self.done = 0
        self._buf = b""

    def stop(self) -> bool:
        if self.count is not None and self.done >= self.count:
            return True
        if not self.until_eof:
            return False
        while select.select([0], [], [], 0)[0]:
            data = os.read(0, 4096)
            if not data:
                return True
            self._buf += data
            *lines, self._buf = self._buf.split(b"\n")
            for line in lines:
                cmd, _, arg = line.decode().partition(" ")
                if cmd == "p":
                    self.pace = float(arg)
        return False

    def next(self) -> None:
        """One record done: count it and wait the pace."""
        self.done += 1
        if self.pace:
            time.sleep(self.pace)


def _open(path: str, sync: str) -> int:
    flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | (os.O_DSYNC if sync == "dsync" else 0)
    return os.open(path, flags, 0o644)


def _sync(fd: int, sync: str) -> None:
    if sync == "fsync":
        os.fsync(fd)
    elif sync == "fdatasync":
        os.fdatasync(fd)


def _read_all(fd: int) -> bytes:
    size = os.fstat(fd).st_size
    parts = []
    pos = 0
    while pos < size:
        chunk = os.pread(fd, min(1 << 20, size - pos), pos)
        if not chunk:
            break
        parts.append(chunk)
        pos += len(chunk)
    return b"".join(parts)


def _pwrite(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        view, offset = view[n:], offset + n


def _cut(fd: int, length: int, sync: str) -> None:
    if os.fstat(fd).st_size != length:
        os.ftruncate(fd, length)
        _sync(fd, "fsync" if sync == "dsync" else sync)


def _run_records(out: _Out, ctl: _Control, first: int, write: Callable[[int], None]) -> int:
    n = first
    try:
        while not ctl.stop():
            out(f"s {n}")
            write(n)
            out(f"a {n}")
            n += 1
            ctl.next()
    except OSError as exc:
        out(f"x {n} {exc}")
        return 1
    out(f"d {n - first}")
    return 0


def append(path: str, sync: str, size: int, ctl: _Control) -> int:
    out = _Out()
    fd = _open(path, sync)
    k = scan(_read_all(fd), size).intact
    _cut(fd, k * size, sync)
    out(f"r {k}")

    def write(n: int) -> None:
        _pwrite(fd, record(n, size), n * size)
        _sync(fd, sync)

    return _run_records(out, ctl, k, write)


def twodir(data: str, logf: str, sync: str, size: int, ctl: _Control) -> int:
    out = _Out()
    fd, fl = _open(data, sync), _open(logf, sync)
    k = min(scan(_read_all(fd), size).intact, scan(_read_all(fl), size, MAGIC_LOG).intact)
    _cut(fl, k * size, sync)  # the log first: never a log record without its data
    _cut(fd, k * size, sync)
    out(f"r {k}")

    def write(n: int) -> None:
        _pwrite(fd, record(n, size), n * size)
        _sync(fd, sync)
        _pwrite(fl, log_record(n, size), n * size)
        _sync(fl, sync)

    return _run_records(out, ctl, k, write)


def fill(directory: str, files: int, file_size: int, seed: int) -> int:
    rng = random.Random(seed)
    os.makedirs(directory, exist_ok=True)
    total = 0
    for i in range(files):
        fd = os.open(os.path.join(directory, f"c{i:02d}.dat"), os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            pos = 0
            while pos < file_size:
                n = min(1 << 20, file_size - pos)
                _pwrite(fd, rng.randbytes(n), pos)
                pos += n
            os.fsync(fd)
        finally:
            os.close(fd)
        total += file_size
    _Out()("j " + json.dumps({"bytes": total, "files": files}))
    return 0


def churn(
    directory: str,
    *,
    files: int,
    file_size: int,
    writes: int,
    write_size: int,
    hot: int,
    region_size: int,
    seed: int,
    pace: float,
) -> int:
    """``writes`` overwrites of ``write_size`` bytes, aligned, inside ``hot`` regions
    drawn once (by ``seed``) among the regions of the ``files`` files."""
    rng = random.Random(seed)
    per_file = file_size // region_size
    every = [(f, r) for f in range(files) for r in range(per_file)]
    chosen = rng.sample(every, min(hot, len(every)))
    slots = max(1, region_size // write_size)
    fds = [
        os.open(os.path.join(directory, f"c{i:02d}.dat"), os.O_WRONLY | os.O_CLOEXEC)
        for i in range(files)
    ]
    touched: set[tuple[int, int]] = set()
    total = 0
    out = _Out()
    t0 = time.monotonic()
    try:
        for _ in range(writes):
            f, r = rng.choice(chosen)
            off = r * region_size + rng.randrange(slots) * write_size
            length = min(write_size, file_size - off)
            _pwrite(fds[f], rng.randbytes(length), off)
            total += length
            touched.update((f, x) for x in regions_of(off, length, region_size))
            if pace:
                time.sleep(pace)
    except OSError as exc:
        out(f"x {total} {exc}")
        return 1
    finally:
        for fd in fds:
            os.close(fd)
    summary = {
        "bytes": total,
        "writes": writes,
        "seconds": round(time.monotonic() - t0, 3),
        "regions": sorted([f, r] for f, r in touched),
    }
    out("j " + json.dumps(summary))
    return 0


@dataclass
class _Tree:
    """The names writer's view of its directory."""

    root: str
    rng: random.Random
    files: list[str] = field(default_factory=list)
    dirs: list[str] = field(default_factory=lambda: [""])
    serial: int = 0

    def path(self, rel: str) -> str:
        return os.path.join(self.root, rel)

    def new_name(self, prefix: str) -> str:
        self.serial += 1
        d = self.rng.choice(self.dirs)
        return os.path.join(d, f"{prefix}{self.serial}")


def _names_step(t: _Tree) -> str:
    """One random name or data operation; returns its description."""
    rng = t.rng
    choices = ["create", "create", "write", "write", "rename", "unlink", "mkdir", "rmdir"]
    choices += ["truncate", "fsync", "over"]
    op = rng.choice(choices)
    if op in ("write", "rename", "unlink", "truncate", "fsync", "over") and not t.files:
        op = "create"
    if op == "create":
        rel = t.new_name("f")
        data = rng.randbytes(rng.randrange(1, 64 << 10))
        with open(t.path(rel), "xb") as f:
            f.write(data)
        t.files.append(rel)
        return f"create {rel} {len(data)}"
    if op in ("write", "fsync"):
        rel = rng.choice(t.files)
        fd = os.open(t.path(rel), os.O_WRONLY)
        try:
            size = os.fstat(fd).st_size
            off = rng.randrange(0, size + 1)
            data = rng.randbytes(rng.randrange(1, 32 << 10))
            _pwrite(fd, data, off)
            if op == "fsync":
                os.fsync(fd)
        finally:
            os.close(fd)
        return f"{op} {rel} {off}+{len(data)}"
    if op == "truncate":
        rel = rng.choice(t.files)
        size = rng.randrange(0, 48 << 10)
        os.truncate(t.path(rel), size)
        return f"truncate {rel} {size}"
    if op == "rename":
        old = rng.choice(t.files)
        new = t.new_name("r")
        os.rename(t.path(old), t.path(new))
        t.files[t.files.index(old)] = new
        return f"rename {old} {new}"
    if op == "over":
        old = rng.choice(t.files)
        victim = rng.choice(t.files)
        if old == victim:
            return "noop"
        os.rename(t.path(old), t.path(victim))
        t.files.remove(old)
        return f"rename-over {old} {victim}"
    if op == "unlink":
        rel = rng.choice(t.files)
        os.unlink(t.path(rel))
        t.files.remove(rel)
        return f"unlink {rel}"
    if op == "mkdir":
        rel = t.new_name("d")
        os.mkdir(t.path(rel))
        t.dirs.append(rel)
        return f"mkdir {rel}"
    # rmdir: an empty directory other than the root
    empty = [d for d in t.dirs if d and not any(x.startswith(d + "/") for x in t.files + t.dirs)]
    if not empty:
        return "noop"
    rel = rng.choice(empty)
    os.rmdir(t.path(rel))
    t.dirs.remove(rel)
    return f"rmdir {rel}"


def _load_tree(root: str, rng: random.Random) -> _Tree:
    t = _Tree(root, rng)
    os.makedirs(root, exist_ok=True)
    for base, dirs, files in os.walk(root):
        rel = os.path.relpath(base, root)
        rel = "" if rel == "." else rel
        t.dirs += [os.path.join(rel, d) for d in dirs]
        t.files += [os.path.join(rel, f) for f in files]
    t.dirs = sorted(set(t.dirs))
    t.files.sort()
    numbers = [int(m.group(1)) for x in t.files + t.dirs if (m := re.search(r"(\d+)$", x))]
    t.serial = max(numbers, default=0)
    return t


def names(directory: str, seed: int, ctl: _Control) -> int:
    out = _Out()
    tree = _load_tree(directory, random.Random(seed))
    out(f"r {len(tree.files)}")
    n = 0
    try:
        while not ctl.stop():
            out(f"s {n}")
            what = _names_step(tree)
            out(f"a {n} {what}")
            n += 1
            ctl.next()
    except OSError as exc:
        out(f"x {n} {exc}")
        return 1
    out("j " + json.dumps({"ops": n, "files": len(tree.files), "dirs": len(tree.dirs)}))
    out(f"d {n}")
    return 0


def lazyfs(backing: str, mountpoint: str, log: str, timeout: float, xattrs: str) -> int:
    """Start LazyFS on ``mountpoint`` detached (own session, output to ``log``) and wait
    until it is mounted and its control socket is there. ``xattrs``: ``none`` (LazyFS
    as it is: every xattr call fails with EOPNOTSUPP) or ``empty`` (names are listed as
    none and read as absent: a file system where no file has an xattr)."""
    from hamod.datapath.mount import mountinfo
    from hamod.testing.lazyfs import FSNAME, control_path

    os.makedirs(os.path.dirname(log), exist_ok=True)
    cmd = [sys.executable, "-m", "hamod.testing.writers", "lazyfs-serve", backing, mountpoint]
    with open(log, "ab") as f:
        proc = subprocess.Popen(
            [*cmd, "--xattrs", xattrs],
            stdin=subprocess.DEVNULL,
            stdout=f,
            stderr=f,
            start_new_session=True,
        )
    deadline = time.monotonic() + timeout
    while True:
        info = mountinfo(mountpoint)
        if (
            info is not None
            and info.source.startswith(FSNAME)
            and control_path(mountpoint).exists()
        ):
            print(f"lazyfs {proc.pid} on {mountpoint}")
            proc.returncode = 0  # detached on purpose: no "still running" warning
            return 0
        if proc.poll() is not None or time.monotonic() > deadline:
            print(f"lazyfs did not mount on {mountpoint}: {Path(log).read_text()[-2000:]}")
            return 1
        time.sleep(0.02)


def lazyfs_serve(backing: str, mountpoint: str, xattrs: str) -> int:
    """``python -m hamod.testing.lazyfs serve``, with ``xattrs=empty`` answering
    ``listxattr`` with no name and ``getxattr`` with ENODATA instead of EOPNOTSUPP."""
    import mfusepy

    from hamod.testing import lazyfs as lz
    from hamod.testing.lazyfs_ops import LazyOps

    class EmptyXattrs(LazyOps):
        def listxattr(self, path: str) -> list[str]:
            return []

        def getxattr(self, path: str, name: str, position: int = 0) -> bytes:
            raise mfusepy.FuseOSError(errno.ENODATA)

    if xattrs == "empty":
        setattr(lz, "LazyOps", EmptyXattrs)  # noqa: B010 (serve() builds its LazyOps)
    lz.serve(backing, mountpoint)
    return 0


SYNC_SHIM = """\
# sitecustomize of a lab node under LazyFS (hamod.testing.writers.SYNC_SHIM): FUSE never
# sees sync(2), so os.sync() in the node's Python processes also persists every LazyFS
# mount listed in HAMOD_LAZYFS_MOUNTS (what sync(2) does on a real file system).
import os as _os

_sync = _os.sync


def _lazy_sync():
    _sync()
    for mount in filter(None, _os.environ.get("HAMOD_LAZYFS_MOUNTS", "").split(":")):
        try:
            from hamod.testing.lazyfs import request

            request(mount, "sync")
        except Exception:
            pass


_os.sync = _lazy_sync
"""
"""A ``sitecustomize.py`` for the nodes of a LazyFS test (put its directory on
``PYTHONPATH``, name the mounts in ``HAMOD_LAZYFS_MOUNTS``): ``os.sync()`` called by
hamod (the secondary's flush) persists LazyFS too, as sync(2) persists a real file
system. ``syncfs(2)`` and a ``sync`` from C are not seen."""


# --- command line -----------------------------------------------------------------


def _size(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    if text and text[-1].upper() in units:
        return int(text[:-1]) * units[text[-1].upper()]
    return int(text)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m hamod.testing.writers")
    sub = p.add_subparsers(dest="kind", required=True)

    def common(s: argparse.ArgumentParser) -> None:
        s.add_argument("--pace", type=float, default=0.0, help="seconds between two records")
        s.add_argument("--count", type=int, default=None, help="stop after N records")
        s.add_argument(
            "--until-eof",
            action="store_true",
            help="read stdin between records: 'p SECONDS' sets the pace, end of file stops",
        )

    a = sub.add_parser("append", help="append numbered, checksummed records")
    a.add_argument("file")
    a.add_argument("--sync", choices=SYNCS, default="fsync")
    a.add_argument("--size", type=int, default=RECORD_SIZE)
    common(a)
    t = sub.add_parser("twodir", help="data record, then its log record in another directory")
    t.add_argument("data")
    t.add_argument("log")
    t.add_argument("--sync", choices=SYNCS, default="fsync")
    t.add_argument("--size", type=int, default=RECORD_SIZE)
    common(t)
    f = sub.add_parser("fill", help="the files churn writes")
    f.add_argument("dir")
    f.add_argument("--files", type=int, default=8)
    f.add_argument("--file-size", type=_size, default=8 << 20)
    f.add_argument("--seed", type=int, default=0)
    c = sub.add_parser("churn", help="random overwrites of a hot set of regions")
    c.add_argument("dir")
    c.add_argument("--files", type=int, default=8)
    c.add_argument("--file-size", type=_size, default=8 << 20)
    c.add_argument("--writes", type=int, default=1000)
    c.add_argument("--write-size", type=_size, default=64 << 10)
    c.add_argument("--hot", type=int, default=48, help="how many regions are rewritten")
    c.add_argument("--region-size", type=_size, default=1 << 20)
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--pace", type=float, default=0.0)
    n = sub.add_parser("names", help="random name and data operations")
    n.add_argument("dir")
    n.add_argument("--seed", type=int, default=0)
    common(n)
    z = sub.add_parser("lazyfs", help="mount LazyFS detached and wait for it")
    z.add_argument("backing")
    z.add_argument("mount")
    z.add_argument("--log", default="/var/log/hamod-lab/lazyfs.log")
    z.add_argument("--timeout", type=float, default=30.0)
    z.add_argument("--xattrs", choices=("none", "empty"), default="empty")
    zs = sub.add_parser("lazyfs-serve", help="serve LazyFS in the foreground")
    zs.add_argument("backing")
    zs.add_argument("mount")
    zs.add_argument("--xattrs", choices=("none", "empty"), default="empty")
    return p


def _control(args: argparse.Namespace) -> _Control:
    return _Control(args.until_eof, args.count, args.pace)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.kind == "append":
        return append(args.file, args.sync, args.size, _control(args))
    if args.kind == "twodir":
        return twodir(args.data, args.log, args.sync, args.size, _control(args))
    if args.kind == "fill":
        return fill(args.dir, args.files, args.file_size, args.seed)
    if args.kind == "churn":
        return churn(
            args.dir,
            files=args.files,
            file_size=args.file_size,
            writes=args.writes,
            write_size=args.write_size,
            hot=args.hot,
            region_size=args.region_size,
            seed=args.seed,
            pace=args.pace,
        )
    if args.kind == "names":
        return names(args.dir, args.seed, _control(args))
    if args.kind == "lazyfs-serve":
        return lazyfs_serve(args.backing, args.mount, args.xattrs)
    return lazyfs(args.backing, args.mount, args.log, args.timeout, args.xattrs)


if __name__ == "__main__":
    sys.exit(main())
