"""Full copy with rsync over the authenticated link: a real rsync client and server on
loopback, trees compared entry by entry (type, mode, owner, size, content, times, xattrs
and ACLs, hard-link groups, sparseness), refusals, bandwidth cap, progress, files_from,
cancel, exit code 24, and keeping divergent data aside. Runs as root."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import socket
import ssl
import stat
import struct
import subprocess
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import psutil
import pytest

from hamod.errors import PeerError, UsageError
from hamod.replication.conn import tls_connector
from hamod.replication.rsync import (
    Progress,
    RsyncCancelled,
    RsyncError,
    RsyncServer,
    keep_aside,
    parse_progress,
    push_args,
    rsync_push,
)
from hamod.replication.rsync_proto import (
    MAX_REQUEST,
    RequestError,
    check_server_args,
    encode_request,
    parse_reply,
)
from tests.replication.conftest import Cluster

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (owners, xattrs, mount)")

EXCLUDE = ("*.tmp", "/pg_stat_tmp/", "cache/**")
MiB = 1024 * 1024

# --- helpers -------------------------------------------------------------------------


@pytest.fixture
def server(cluster: Cluster, tmp_path: Path) -> Iterator[RsyncServer]:
    dst = tmp_path / "dst"
    dst.mkdir()
    with RsyncServer(cluster.server(), roots={"data": dst}) as srv:
        yield srv


def connector(cluster: Cluster, srv: RsyncServer) -> Callable[[], ssl.SSLSocket]:
    return tls_connector(cluster.client(), *srv.address)


def acl(user: int) -> bytes:
    """A POSIX access ACL (kernel xattr format): u::rw-, u:<user>:r--, g::r--, m::r--, o::---."""
    undefined = 0xFFFFFFFF
    entries = [(0x01, 6, undefined), (0x02, 4, user), (0x04, 4, undefined)]
    entries += [(0x10, 4, undefined), (0x20, 0, undefined)]
    return struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *e) for e in entries)


def write(path: Path, data: bytes, mtime: int = 1_600_000_000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.utime(path, (mtime, mtime))
    return path


def make_source(src: Path) -> None:
    """Every kind of entry rsync -aHAXS must carry, plus excluded ones."""
    write(src / "plain.txt", b"hello\n")
    write(src / "empty", b"")
    write(src / "random.bin", os.urandom(300_000))
    sparse = src / "sparse.img"
    with sparse.open("wb") as f:
        f.truncate(8 * MiB)
        f.seek(4 * MiB)
        f.write(b"middle" * 1000)
    write(src / "sub" / "deep" / "a.dat", b"linked content")
    os.link(src / "sub" / "deep" / "a.dat", src / "sub" / "a-link")
    os.link(src / "sub" / "deep" / "a.dat", src / "third-link")
    os.symlink("deep/a.dat", src / "sub" / "rel-link")
    os.symlink("/nonexistent/target", src / "dangling")
    os.symlink("sub", src / "dir-link")
    os.mkfifo(src / "fifo")
    owned = write(src / "owned", b"setuid and foreign owner")
    os.chown(owned, 1234, 5678)
    os.chmod(owned, 0o4750)
    private = src / "private"
    private.mkdir(mode=0o700)
    os.chown(private, 4321, 4321)
    write(private / "inside", b"x")
    os.setxattr(src / "plain.txt", "user.hamod", b"value")
    os.setxattr(src / "sub", "user.dir-attr", b"on a directory")
    with_acl = write(src / "acl.txt", b"acl")
    os.chmod(with_acl, 0o640)
    os.setxattr(with_acl, "system.posix_acl_access", acl(1234))
    write(src / "scratch.tmp", b"excluded")
    write(src / "pg_stat_tmp" / "stats", b"excluded dir")
    write(src / "sub" / "pg_stat_tmp" / "kept", b"not anchored here: copied")
    write(src / "cache" / "x" / "y.bin", b"excluded by **")
    for d in (src / "sub" / "deep", src / "sub", src / "private"):
        os.utime(d, (1_500_000_000, 1_500_000_000))


def excluded(rel: str) -> bool:
    name = rel.rsplit("/", 1)[-1]
    return (
        name.endswith(".tmp")
        or rel == "pg_stat_tmp"
        or rel.startswith("pg_stat_tmp/")
        or rel.startswith("cache/")
    )


def snapshot(root: Path) -> tuple[dict[str, tuple[object, ...]], set[frozenset[str]]]:
    """Every entry (but excluded ones) with what -aHAXS preserves, and hard-link groups."""
    entries: dict[str, tuple[object, ...]] = {}
    links: dict[tuple[int, int], set[str]] = defaultdict(set)
    paths = ["."]
    for dirpath, dirs, files in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        paths += [os.path.normpath(os.path.join(rel, n)) for n in dirs + files]
    for rel in paths:
        if excluded(rel):
            continue
        path = root / rel
        st = os.lstat(path)
        kind = stat.S_IFMT(st.st_mode)
        content: object = None
        if stat.S_ISREG(st.st_mode):
            content = hashlib.sha256(path.read_bytes()).hexdigest()
            if st.st_nlink > 1:
                links[(st.st_dev, st.st_ino)].add(rel)
        elif stat.S_ISLNK(st.st_mode):
            content = os.readlink(path)
        xattrs = tuple(
            sorted(
                (n, os.getxattr(path, n, follow_symlinks=False))
                for n in os.listxattr(path, follow_symlinks=False)
            )
        )
        size = None if stat.S_ISDIR(st.st_mode) else st.st_size
        entries[rel] = (kind, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, size)
        entries[rel] += (st.st_mtime_ns, content, xattrs, st.st_rdev)
    return entries, {frozenset(group) for group in links.values()}


def assert_same_tree(src: Path, dst: Path) -> None:
    want, want_links = snapshot(src)
    got, got_links = snapshot(dst)
    assert sorted(got) == sorted(want)
    for rel, entry in want.items():
        assert got[rel] == entry, rel
    assert got_links == want_links
    assert want_links, "the source has hard links"


# --- the copy ------------------------------------------------------------------------


def test_push_reproduces_the_tree_and_honours_excludes(
    cluster: Cluster, server: RsyncServer, tmp_path: Path
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    make_source(src)
    # On the target before the copy: stale entries (deleted), a file with other content
    # (replaced) and excluded ones (kept: --delete spares excluded files).
    write(dst / "stale" / "old" / "file", b"stale")
    write(dst / "plain.txt", b"divergent content, same name")
    write(dst / "target-only.tmp", b"excluded, kept")
    write(dst / "pg_stat_tmp" / "target", b"excluded dir, kept")

    result = rsync_push(src, "data", connector(cluster, server), exclude=EXCLUDE)

    assert result.returncode == 0
    assert result.files_transferred >= 8
    assert result.bytes_sent > 300_000
    assert_same_tree(src, dst)
    assert not (dst / "stale").exists()
    assert not (dst / "scratch.tmp").exists()
    assert list((dst / "cache").iterdir()) == [], "cache/** excludes the content, not the dir"
    assert not (dst / "pg_stat_tmp" / "stats").exists()
    assert (dst / "target-only.tmp").read_bytes() == b"excluded, kept"
    assert (dst / "pg_stat_tmp" / "target").exists()
    assert (dst / "sub" / "pg_stat_tmp" / "kept").exists()
    sparse = os.stat(dst / "sparse.img")
    assert sparse.st_size == 8 * MiB and sparse.st_blocks * 512 < MiB, "holes kept"
    assert server.sessions == 1 and server.refused == 0 and server.rejected == 0

    again = rsync_push(src, "data", connector(cluster, server), exclude=EXCLUDE)
    assert again.files_transferred == 0
    assert again.bytes_sent < 100_000


def test_vanished_source_files_are_a_success(
    cluster: Cluster, server: RsyncServer, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    write(src / "a-first.bin", os.urandom(MiB // 2))
    write(src / "m-second.bin", os.urandom(MiB // 2))
    write(src / "z-vanishes", b"listed, then gone before rsync opens it")
    gone = threading.Event()

    def on_progress(p: Progress) -> None:
        # The whole list is built first (--no-inc-recursive), then files go in name
        # order, each opened when rsync gets to it; two 512 KiB files at 1 MiB/s take
        # about a second: the first report comes before rsync opens z-vanishes.
        if not gone.is_set():
            (src / "z-vanishes").unlink()
            gone.set()

    result = rsync_push(src, "data", connector(cluster, server), bwlimit=MiB, progress=on_progress)
    assert gone.is_set()
    assert result.returncode == 24
    assert (tmp_path / "dst" / "m-second.bin").stat().st_size == MiB // 2
    assert not (tmp_path / "dst" / "z-vanishes").exists()


def test_bandwidth_cap_and_progress(cluster: Cluster, server: RsyncServer, tmp_path: Path) -> None:
    src = tmp_path / "src"
    write(src / "f1.bin", os.urandom(2 * MiB))
    write(src / "f2.bin", os.urandom(2 * MiB))
    reports: list[Progress] = []

    result = rsync_push(
        src, "data", connector(cluster, server), bwlimit=2 * MiB, progress=reports.append
    )
    assert result.seconds >= 1.5, f"4 MiB at 2 MiB/s took {result.seconds:.2f} s"
    assert result.bytes_sent >= 4 * MiB
    fractions = [r.fraction for r in reports]
    assert len(reports) >= 3 and fractions == sorted(fractions) and fractions[-1] == 1.0
    assert reports[-1].bytes_done == 4 * MiB
    moving = [r for r in reports if 0 < r.fraction < 1]
    assert moving, reports
    assert all(r.rate > 0 for r in moving)
    assert any(r.eta_seconds is not None and r.eta_seconds > 0 for r in moving), moving
    assert all(r.rate < 4 * MiB for r in moving), "rate under the cap (with rsync's burst)"


def test_without_cap_the_same_copy_is_fast(
    cluster: Cluster, server: RsyncServer, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    write(src / "f1.bin", os.urandom(4 * MiB))
    result = rsync_push(src, "data", connector(cluster, server))
    assert result.seconds < 1.5


def test_files_from_copies_and_deletes_only_listed_paths(
    cluster: Cluster, server: RsyncServer, tmp_path: Path
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    write(src / "dir" / "gone", b"to be removed")
    write(src / "dir" / "stays", b"stays")
    write(src / "old-name", b"renamed")
    write(src / "unlisted", b"version 1")
    rsync_push(src, "data", connector(cluster, server))

    (src / "dir" / "gone").unlink()
    (src / "old-name").rename(src / "new-name")
    write(src / "unlisted", b"version 2, not listed")
    write(src / "newdir" / "nested" / "file", b"a listed directory is copied whole")
    write(src / "with\nnewline", b"any name")

    result = rsync_push(
        src,
        "data",
        connector(cluster, server),
        files_from=["dir/gone", "old-name", "new-name", "newdir", "with\nnewline"],
    )
    assert result.returncode == 0
    assert not (dst / "dir" / "gone").exists()
    assert (dst / "dir" / "stays").read_bytes() == b"stays"
    assert not (dst / "old-name").exists()
    assert (dst / "new-name").read_bytes() == b"renamed"
    assert (dst / "newdir" / "nested" / "file").exists()
    assert (dst / "with\nnewline").read_bytes() == b"any name"
    assert (dst / "unlisted").read_bytes() == b"version 1"


def test_cancel_kills_rsync_on_both_sides(
    cluster: Cluster, server: RsyncServer, tmp_path: Path
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    write(src / "big.bin", os.urandom(8 * MiB))
    cancel = threading.Event()

    def on_progress(p: Progress) -> None:
        if p.bytes_done > 0:
            cancel.set()

    threading.Timer(0.5, cancel.set).start()  # in case no progress line comes first
    started = time.monotonic()
    with pytest.raises(RsyncCancelled, match="cancelled"):
        rsync_push(
            src,
            "data",
            connector(cluster, server),
            bwlimit=MiB,
            progress=on_progress,
            cancel=cancel,
        )
    assert time.monotonic() - started < 5
    deadline = time.monotonic() + 10
    while server.active and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.active == 0
    children = [p.name() for p in psutil.Process().children(recursive=True)]
    assert "rsync" not in children, children
    assert not (dst / "big.bin").exists()
    assert list(dst.iterdir()) == [], "the receiver removed its temporary file"


def test_a_failing_progress_callback_stops_the_copy(
    cluster: Cluster, server: RsyncServer, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    write(src / "big.bin", os.urandom(4 * MiB))

    def broken(p: Progress) -> None:
        raise RuntimeError("callback bug")

    with pytest.raises(RuntimeError, match="callback bug"):
        rsync_push(src, "data", connector(cluster, server), bwlimit=MiB, progress=broken)
    deadline = time.monotonic() + 10
    while server.active and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.active == 0
    assert "rsync" not in [p.name() for p in psutil.Process().children(recursive=True)]


# --- refusals ------------------------------------------------------------------------


def test_client_from_another_ca_is_refused_and_nothing_written(
    cluster: Cluster, foreign: Cluster, server: RsyncServer, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    write(src / "file", b"must not arrive")
    with pytest.raises(PeerError):
        rsync_push(src, "data", tls_connector(foreign.client(), *server.address))
    # the client may see the refusal (TLS 1.3 alert) before the server's thread counts it
    deadline = time.monotonic() + 5
    while server.rejected == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.rejected == 1 and server.sessions == 0
    assert list((tmp_path / "dst").iterdir()) == []


def test_server_from_another_ca_is_refused(
    cluster: Cluster, foreign: Cluster, tmp_path: Path
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    write(src / "file", b"must not leave")
    dst.mkdir()
    with RsyncServer(foreign.server(), roots={"data": dst}) as srv:
        with pytest.raises(PeerError, match="refused"):
            rsync_push(src, "data", tls_connector(cluster.client(), *srv.address))
        assert srv.sessions == 0
    assert list(dst.iterdir()) == []


def raw_request(cluster: Cluster, srv: RsyncServer, data: bytes) -> str | None:
    """Send ``data`` as the request; the server's refusal (None: accepted)."""
    tls = tls_connector(cluster.client(), *srv.address)()
    with contextlib.closing(tls):
        tls.sendall(data)
        tls.settimeout(5)
        reply = b""
        while not reply.endswith(b"\n"):
            chunk = tls.recv(4096)
            assert chunk, f"no reply line, got {reply!r}"
            reply += chunk
    return parse_reply(reply.rstrip(b"\n"))


PUSH = ["--server", "-lHogDtpAXrSe.LsfxCIvu", "--delete", "--numeric-ids", ".", "."]


@pytest.mark.parametrize(
    ("request_line", "reason"),
    [
        (encode_request("nope", PUSH), "unknown root 'nope'"),
        (
            encode_request("data", ["--server", "--sender", "-logDtpre.iLsfxCIvu", ".", "."]),
            "--sender refused",
        ),
        (encode_request("data", [*PUSH[:-1], "../x"]), "must not contain '..'"),
        (encode_request("data", [*PUSH[:-1], "sub/../../x"]), "must not contain '..'"),
        (encode_request("data", [*PUSH[:-1], "/etc"]), "relative path in the root"),
        (
            encode_request("data", ["--server", "--rsync-path=/bin/sh", ".", "."]),
            "'--rsync-path=/bin/sh' is not accepted",
        ),
        (encode_request("data", ["--server", "-e", "sh", ".", "."]), "'-e' is not accepted"),
        (encode_request("data", ["--server", "--inplace", ".", "."]), "'--inplace' is not"),
        (encode_request("data", ["--server", "--log-file=/etc/x", ".", "."]), "--log-file"),
        (encode_request("data", ["--server", "--temp-dir=/tmp", ".", "."]), "--temp-dir"),
        (encode_request("data", ["--server", "-slogDtpre.iLsfxCIvu", ".", "."]), "'s'"),
        (encode_request("data", ["--server", "-Klogtpr", ".", "."]), "'K'"),
        (encode_request("data", ["-lHogDtpAXr", ".", "."]), 'must be "--server"'),
        (encode_request("data", ["--server", "-lr", ".", "x", "y"]), "exactly one destination"),
        (b"not json\n", "not a JSON line"),
        (b'{"v":1,"root":"data","args":[],"extra":1}\n', "exactly"),
        (b'{"v":2,"root":"data","args":[]}\n', "unsupported request version"),
        (b"x" * (MAX_REQUEST + 10), f"line longer than {MAX_REQUEST} bytes"),
    ],
)
def test_bad_requests_are_refused_and_logged(
    cluster: Cluster,
    server: RsyncServer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    request_line: bytes,
    reason: str,
) -> None:
    with caplog.at_level(logging.WARNING, logger="hamod.replication.rsync_server"):
        refusal = raw_request(cluster, server, request_line)
        deadline = time.monotonic() + 5
        while server.refused == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert refusal is not None and reason in refusal, refusal
    assert server.refused == 1 and server.sessions == 0
    assert any("refused" in r.getMessage() and reason in r.getMessage() for r in caplog.records)
    assert list((tmp_path / "dst").iterdir()) == []


def test_a_silent_client_is_dropped(cluster: Cluster, tmp_path: Path) -> None:
    (tmp_path / "dst").mkdir()
    with RsyncServer(
        cluster.server(), roots={"data": tmp_path / "dst"}, request_timeout=0.3
    ) as srv:
        tls = tls_connector(cluster.client(), *srv.address)()
        with contextlib.closing(tls):
            tls.settimeout(5)
            reply = tls.recv(4096)
        assert b"no complete line" in reply
        assert srv.refused == 1


# --- failures ------------------------------------------------------------------------


@pytest.fixture
def tiny_root(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs: a copy into it fails with ENOSPC."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tiny", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_rsync_failure_raises_with_exit_code_and_stderr(
    cluster: Cluster, tiny_root: Path, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    write(src / "too-big.bin", os.urandom(3 * MiB))
    with (
        RsyncServer(cluster.server(), roots={"tiny": tiny_root}) as srv,
        pytest.raises(RsyncError) as info,
    ):
        rsync_push(src, "tiny", tls_connector(cluster.client(), *srv.address))
    assert info.value.returncode not in (0, 24, None)
    assert "No space left on device" in info.value.stderr
    assert "No space left on device" in str(info.value), "the cause is in the message"
    assert f"exit code {info.value.returncode}" in str(info.value)


def test_unreachable_peer_raises_peer_error(tmp_path: Path, cluster: Cluster) -> None:
    src = tmp_path / "src"
    write(src / "f", b"x")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(PeerError, match="cannot connect"):
        rsync_push(src, "data", tls_connector(cluster.client(), "127.0.0.1", port))


def test_bad_arguments_are_refused_before_running_rsync(tmp_path: Path) -> None:
    def never() -> ssl.SSLSocket:
        raise AssertionError("must not connect")

    with pytest.raises(UsageError, match="not a directory"):
        rsync_push(tmp_path / "missing", "data", never)
    with pytest.raises(UsageError, match="root name"):
        rsync_push(tmp_path, "../x", never)
    for listed in ("/etc/passwd", "a/../../b", "nul\0byte", ""):
        with pytest.raises(UsageError, match="files_from"):
            rsync_push(tmp_path, "data", never, files_from=[listed])
    with pytest.raises(UsageError, match="bwlimit"):
        rsync_push(tmp_path, "data", never, bwlimit=0)


# --- keeping divergent data aside ----------------------------------------------------


def test_keep_aside_survives_a_full_copy_over_the_original(
    cluster: Cluster, server: RsyncServer, tmp_path: Path
) -> None:
    src, dst, aside = tmp_path / "src", tmp_path / "dst", tmp_path / "aside"
    write(dst / "divergent", b"written during the split brain")
    write(dst / "only-here" / "file", b"only on this node")
    write(src / "divergent", b"the survivor's version")

    kept = keep_aside(dst, aside, now=datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC))
    assert kept == aside / "20240501T120000Z"
    assert os.stat(kept / "divergent").st_ino == os.stat(dst / "divergent").st_ino, "hard link"

    rsync_push(src, "data", connector(cluster, server))
    assert (dst / "divergent").read_bytes() == b"the survivor's version"
    assert not (dst / "only-here").exists()
    assert (kept / "divergent").read_bytes() == b"written during the split brain"
    assert (kept / "only-here" / "file").read_bytes() == b"only on this node"

    again = keep_aside(dst, aside, now=datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC))
    assert again == aside / "20240501T120000Z-2"


@pytest.fixture
def other_fs(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "otherfs"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "aside", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_keep_aside_copies_across_file_systems(tmp_path: Path, other_fs: Path) -> None:
    data = tmp_path / "data"
    write(data / "sub" / "file", b"content")
    os.symlink("sub/file", data / "link")
    kept = keep_aside(data, other_fs / "aside")
    assert kept.parent == other_fs / "aside"
    assert (kept / "sub" / "file").read_bytes() == b"content"
    assert os.readlink(kept / "link") == "sub/file"
    assert os.stat(kept / "sub" / "file").st_mtime == 1_600_000_000
    (data / "sub" / "file").write_bytes(b"changed")
    assert (kept / "sub" / "file").read_bytes() == b"content"


def test_keep_aside_refuses_a_root_inside_the_directory(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="outside"):
        keep_aside(tmp_path, tmp_path / "aside")


# --- pure pieces ---------------------------------------------------------------------


def test_parse_progress_lines() -> None:
    moving = parse_progress("        1081346  36%    1.01MB/s    0:00:01  ")
    assert moving is not None
    assert moving.bytes_done == 1081346 and moving.fraction == 0.36
    assert moving.rate == pytest.approx(1.01 * MiB) and moving.eta_seconds == 1.0
    end_of_file = parse_progress("  2000000  50%  1000.00kB/s    0:00:09 (xfr#1, to-chk=1/3)")
    assert end_of_file is not None and end_of_file.eta_seconds == pytest.approx(1.953, rel=0.01)
    done = parse_progress("        3000002 100%  953.67MB/s    0:00:00 (xfr#2, to-chk=0/4)")
    assert done is not None and done.fraction == 1.0 and done.eta_seconds == 0.0
    unknown = parse_progress("   0   0%    0.00kB/s    0:00:00  ")
    assert unknown is not None and unknown.eta_seconds is None
    assert parse_progress("Number of files: 4 (reg: 2, dir: 2)") is None
    assert parse_progress("   12  5%  1.00GB/s  ??:??:??") is not None


def test_push_args() -> None:
    args = push_args(exclude=["*.tmp"], bwlimit=1500, delete=True, files_from=True)
    assert args[:5] == [
        "-aHAXS",
        "--numeric-ids",
        "--modify-window=-1",
        "--no-inc-recursive",
        "--no-h",
    ]
    assert "--bwlimit=2" in args and "--exclude=*.tmp" in args
    assert "--delete-missing-args" in args and "--recursive" in args
    assert "--ignore-missing-args" in push_args(delete=False, files_from=True)
    assert "--bwlimit=1" in push_args(bwlimit=1)
    with pytest.raises(UsageError):
        push_args(exclude=["bad\npattern"])


def test_check_server_args_accepts_what_rsync_sends() -> None:
    sent = [
        "--server",
        "-lHogDtpAXrRSe.iLsfxCIvu",
        "--timeout=300",
        "--bwlimit=2048",
        "--delete",
        "--delete-missing-args",
        "--numeric-ids",
        "--info=STATS2",
        ".",
        "sub/dir",
    ]
    assert check_server_args(sent) == sent
    with pytest.raises(RequestError):
        check_server_args(["--server", "--bwlimit=$(reboot)", ".", "."])
    with pytest.raises(RequestError):
        check_server_args(["--server", "-lHog", ".", ".", "extra"])


def test_server_stopping_mid_copy_fails_the_push(cluster: Cluster, tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    write(src / "big.bin", os.urandom(8 * MiB))
    dst.mkdir()
    srv = RsyncServer(cluster.server(), roots={"data": dst})
    srv.start()
    threading.Timer(0.5, srv.close).start()
    started = time.monotonic()
    with pytest.raises(RsyncError, match="did not report its end") as info:
        rsync_push(src, "data", tls_connector(cluster.client(), *srv.address), bwlimit=MiB)
    assert time.monotonic() - started < 5
    assert info.value.returncode not in (0, 24, None)
    assert not (dst / "big.bin").exists()


def test_push_reads_the_directory_underneath_a_mount(
    cluster: Cluster, server: RsyncServer, tmp_path: Path
) -> None:
    """The data path opens the directory before mounting over it; the copy reads that
    descriptor's directory through /proc, not what the mount shows."""
    data = tmp_path / "data"
    write(data / "underneath", b"the real data")
    fd = os.open(data, os.O_RDONLY | os.O_DIRECTORY)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "over", str(data)], check=True)
    try:
        write(data / "on-the-mount", b"what applications see")
        rsync_push(Path(f"/proc/{os.getpid()}/fd/{fd}"), "data", connector(cluster, server))
    finally:
        subprocess.run(["umount", "-l", str(data)], check=False)
        os.close(fd)
    dst = tmp_path / "dst"
    assert sorted(p.name for p in dst.iterdir()) == ["underneath"]
    assert (dst / "underneath").read_bytes() == b"the real data"
