"""compare(): a tree and its rsync copy are equal; each fault injected in the copy is
reported exactly, with its path (and offset for content); the merge's order checks; the
text of every kind of difference."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from hamod.errors import PeerError, UsageError
from hamod.verify import Difference, Entry, Field, Kind, compare, manifest, verify
from tests.verify.trees import (
    BIG,
    RS,
    acl_with,
    build,
    flip_byte,
    require_root_and_xattrs,
    rsync,
    write,
)


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path, bool]:
    require_root_and_xattrs(tmp_path)
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    device = build(a)
    rsync(a, b)
    return a, b, device


def diff(a: Path, b: Path, *, mtime: bool = False) -> list[Difference]:
    return compare(manifest(a, region_size=RS), manifest(b, region_size=RS), mtime=mtime)


def test_a_tree_and_its_rsync_copy_are_equal(pair: tuple[Path, Path, bool]) -> None:
    a, b, _ = pair
    assert diff(a, b) == []
    assert diff(a, b, mtime=True) == []  # rsync -a keeps file mtimes


def _replace_by_copy(path: Path) -> None:
    """Split a hard link: the name becomes a separate file with the same everything."""
    tmp = path.with_name(path.name + ".split")
    shutil.copy2(path, tmp)
    st = os.stat(path)
    os.chown(tmp, st.st_uid, st.st_gid)
    if "system.posix_acl_access" not in os.listxattr(path):
        os.removexattr(tmp, "system.posix_acl_access")  # inherited from /dir's default ACL
    os.chmod(tmp, st.st_mode & 0o7777)
    os.replace(tmp, path)


def _file_to_dir(path: Path) -> None:
    st = os.stat(path)
    path.unlink()
    path.mkdir(mode=0o777)
    os.chmod(path, st.st_mode & 0o7777)


def _retarget(path: Path, target: str) -> None:
    path.unlink()
    os.symlink(target, path)


# (fault applied to the copy, expected (path, field, name, offset), text of the line)
Fault = tuple[Callable[[Path], object], tuple[str, Field, str | None, int | None], str]

FAULTS: dict[str, Fault] = {
    "content in region 2 of 3": (
        lambda b: flip_byte(b / BIG.lstrip("/"), 2 * RS + 17),
        (BIG, Field.CONTENT, None, 2 * RS),
        f"{BIG}: content differs at offset {2 * RS} (region 2)",
    ),
    "content in a hole": (
        lambda b: flip_byte(b / BIG.lstrip("/"), RS + 5),
        (BIG, Field.CONTENT, None, RS),
        f"{BIG}: content differs at offset {RS} (region 1)",
    ),
    "mode": (
        lambda b: os.chmod(b / "data/private", 0o640),
        ("/data/private", Field.MODE, None, None),
        "/data/private: mode 0600 != 0640",
    ),
    "suid bit": (
        lambda b: os.chmod(b / "data/suid", 0o755),
        ("/data/suid", Field.MODE, None, None),
        "/data/suid: mode 4755 != 0755",
    ),
    "owner": (
        lambda b: os.chown(b / "data/small", 4321, -1),
        ("/data/small", Field.OWNER, None, None),
        "/data/small: owner 0 != 4321",
    ),
    "group of a symlink": (
        lambda b: os.chown(b / "dangling", -1, 42, follow_symlinks=False),
        ("/dangling", Field.GROUP, None, None),
        "/dangling: group 5678 != 42",
    ),
    "xattr value": (
        lambda b: os.setxattr(b / "data/small", "user.k", b"changed"),
        ("/data/small", Field.XATTR, "user.k", None),
        "/data/small: xattr user.k differs",
    ),
    "xattr removed": (
        lambda b: os.removexattr(b / "data/small", "trusted.t"),
        ("/data/small", Field.XATTR, "trusted.t", None),
        "/data/small: xattr trusted.t missing on peer",
    ),
    "xattr added on a directory": (
        lambda b: os.setxattr(b / "dir", "user.new", b"1"),
        ("/dir", Field.XATTR, "user.new", None),
        "/dir: xattr user.new extra on peer",
    ),
    "access ACL": (
        lambda b: os.setxattr(b / "data/acl", "system.posix_acl_access", acl_with(4)),
        ("/data/acl", Field.ACL, "system.posix_acl_access", None),
        "/data/acl: access ACL differs",
    ),
    "default ACL removed": (
        lambda b: os.removexattr(b / "dir", "system.posix_acl_default"),
        ("/dir", Field.ACL, "system.posix_acl_default", None),
        "/dir: default ACL missing on peer",
    ),
    "extra file": (
        lambda b: write(b / "dir" / "new", b"x"),
        ("/dir/new", Field.EXTRA, None, None),
        "/dir/new: extra on peer",
    ),
    "missing file": (
        lambda b: (b / "data" / "empty").unlink(),
        ("/data/empty", Field.MISSING, None, None),
        "/data/empty: missing on peer",
    ),
    "split hard link": (
        lambda b: _replace_by_copy(b / "dir" / "hl2"),
        ("/dir/hl2", Field.LINK, None, None),
        "/dir/hl2: hard links differ: same inode as /data/hl1 here, its own inode on peer",
    ),
    "joined hard link": (
        lambda b: os.replace(_link_tmp(b / "data" / "hl1", b / "data" / "twin"), b / "data/twin"),
        ("/data/twin", Field.LINK, None, None),
        "/data/twin: hard links differ: its own inode here, same inode as /data/hl1 on peer",
    ),
    "symlink target": (
        lambda b: _retarget(b / "link", "data/empty"),
        ("/link", Field.TARGET, None, None),
        "/link: symlink target 'data/small' != 'data/empty'",
    ),
    "type file to dir": (
        lambda b: _file_to_dir(b / "data" / "private"),
        ("/data/private", Field.TYPE, None, None),
        "/data/private: type file != dir",
    ),
    "size": (
        lambda b: os.truncate(b / "data" / "small", 10),
        ("/data/small", Field.SIZE, None, None),
        "/data/small: size 5 != 10",
    ),
}


def _link_tmp(existing: Path, name: Path) -> Path:
    tmp = name.with_name(name.name + ".ln")
    os.link(existing, tmp)
    return tmp


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_each_fault_is_reported_exactly(pair: tuple[Path, Path, bool], fault: str) -> None:
    a, b, _ = pair
    inject, (path, field, name, offset), line = FAULTS[fault]
    inject(b)
    found = diff(a, b)
    assert [(d.path, d.field, d.name, d.offset) for d in found] == [(path, field, name, offset)]
    assert str(found[0]) == line
    # the other way round, the same difference seen from the peer
    back = compare(manifest(b, region_size=RS), manifest(a, region_size=RS))
    assert [(d.path, d.name, d.offset) for d in back] == [(path, name, offset)]


def test_device_numbers(pair: tuple[Path, Path, bool]) -> None:
    a, b, device = pair
    if not device:
        pytest.skip("mknod of a character device is not allowed here")
    os.unlink(b / "null")
    os.mknod(b / "null", 0o20600, os.makedev(1, 5))
    assert [str(d) for d in diff(a, b)] == ["/null: device 1:3 != 1:5"]


def test_a_missing_directory_reports_its_whole_subtree(pair: tuple[Path, Path, bool]) -> None:
    a, b, _ = pair
    shutil.rmtree(b / "dir" / "sub")
    assert [str(d) for d in diff(a, b)] == [
        "/dir/sub: missing on peer",
        "/dir/sub/deep: missing on peer",
        "/dir/sub/deep/leaf: missing on peer",
    ]


def test_every_differing_region_is_reported(pair: tuple[Path, Path, bool]) -> None:
    a, b, _ = pair
    flip_byte(b / BIG.lstrip("/"), 0)
    flip_byte(b / BIG.lstrip("/"), 2 * RS)
    assert [(d.offset, d.region) for d in diff(a, b)] == [(0, 0), (2 * RS, 2)]


def test_mtime_is_compared_only_when_asked(pair: tuple[Path, Path, bool]) -> None:
    a, b, _ = pair
    os.utime(b / "data" / "small", ns=(0, 1_500_000_000_123_456_789))
    assert diff(a, b) == []
    (d,) = diff(a, b, mtime=True)
    assert d.field is Field.MTIME and d.path == "/data/small"
    assert str(d).endswith("!= 1500000000.123456789")


def _e(path: str, kind: Kind = Kind.DIR) -> Entry:
    return Entry(path=path, kind=kind, mode=0o755, uid=0, gid=0)


def test_streams_out_of_order_are_refused() -> None:
    good = [_e("/"), _e("/a"), _e("/a/b"), _e("/a.b")]
    assert compare(good, good) == []
    bad = [_e("/"), _e("/a.b"), _e("/a")]
    with pytest.raises(PeerError, match=re.escape("peer manifest out of order: '/a' after '/a.b'")):
        compare(good, bad)
    with pytest.raises(UsageError, match="local manifest out of order"):
        compare([_e("/"), _e("/"), _e("/a")], good)


def test_region_sizes_must_agree() -> None:
    f1 = Entry("/f", Kind.FILE, 0o644, 0, 0, size=4, region_size=4, digests=b"\1" * 16)
    f2 = Entry("/f", Kind.FILE, 0o644, 0, 0, size=4, region_size=2, digests=b"\2" * 32)
    with pytest.raises(PeerError, match="region sizes differ"):
        compare([f1], [f2])


def test_a_shorter_last_region_is_left_to_the_size_difference() -> None:
    d1, d2 = b"\1" * 16, b"\2" * 16
    x = Entry("/f", Kind.FILE, 0o644, 0, 0, size=6, region_size=4, digests=d1 + d1)
    y = Entry("/f", Kind.FILE, 0o644, 0, 0, size=7, region_size=4, digests=d2 + d2)
    found = compare([x], [y])
    assert [(d.field, d.offset) for d in found] == [(Field.SIZE, None), (Field.CONTENT, 0)]


def test_differences_round_trip_through_json(pair: tuple[Path, Path, bool]) -> None:
    a, b, _ = pair
    for inject, _, _ in FAULTS.values():
        with contextlib.suppress(OSError):  # faults on one name may conflict; most apply
            inject(b)
    found = diff(a, b)
    assert len(found) > 10
    assert {d.field for d in found} >= {Field.CONTENT, Field.MODE, Field.XATTR, Field.LINK}
    for d in found:
        assert Difference.from_json(d.to_json()) == d
    # online verify on the same trees: every difference persists through the re-checks
    # (which describe only the differing paths, hard-link heads found by a names walk)
    report = verify(
        lambda p: manifest(a, region_size=RS, paths=p),
        lambda p: manifest(b, region_size=RS, paths=p),
    )
    assert report.differences == tuple(found) and report.rounds == 3
    with pytest.raises(PeerError, match="'field'"):
        Difference.from_json({"path": "/x", "field": "colour"})
    with pytest.raises(PeerError, match="'offset'"):
        Difference.from_json({"path": "/x", "field": "content", "offset": "1"})
