"""manifest(): what each kind of name yields, order, holes, hard links, paths=, exclude,
symlinks never followed, and the JSON form (round trip, validation of a peer's lines)."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hamod.errors import AdapterError, PeerError, UsageError
from hamod.verify import Entry, Kind, compare, manifest, path_key
from tests.verify.trees import BIG, BIG_SIZE, RS, UTF8_BAD, build, require_root_and_xattrs, rsync

SOAK = os.environ.get("HAMOD_SOAK") == "1"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    require_root_and_xattrs(tmp_path)
    root = tmp_path / "a"
    root.mkdir()
    build(root)
    return root


def entries(root: Path, **kw: object) -> dict[str, Entry]:
    return {e.path: e for e in manifest(root, region_size=RS, **kw)}  # type: ignore[arg-type]


def test_every_kind_of_name(tree: Path) -> None:
    m = entries(tree)
    assert m["/"].kind is Kind.DIR
    assert m["/data/small"].kind is Kind.FILE and m["/data/small"].size == 5
    assert m["/dir"].kind is Kind.DIR and m["/dir"].size is None
    assert m["/link"].kind is Kind.SYMLINK and m["/link"].target == "data/small"
    assert m["/dangling"].target == "nowhere" and m["/dangling"].uid == 1234
    assert m["/fifo"].kind is Kind.FIFO
    assert m["/sock"].kind is Kind.SOCKET
    if "/null" in m:
        assert m["/null"].kind is Kind.CHR and m["/null"].rdev == os.makedev(1, 3)
    assert m["/data/suid"].mode == 0o4755
    assert m["/dir/sub"].mode == 0o2775
    assert m["/tmp"].mode == 0o1777
    assert (m["/data/owned"].uid, m["/data/owned"].gid) == (1234, 5678)
    names = [n for n, _ in m["/data/small"].xattrs]
    assert names == ["trusted.t", "user.k"]
    assert dict(m["/data/small"].xattrs)["user.k"] == hashlib.sha256(b"v").hexdigest()
    assert "system.posix_acl_access" in dict(m["/data/acl"].xattrs)
    assert "system.posix_acl_default" in dict(m["/dir"].xattrs)
    assert f"/data/{UTF8_BAD}" in m
    # timestamps: regular files only
    assert m["/data/small"].mtime_ns == os.lstat(tree / "data/small").st_mtime_ns
    assert m["/link"].mtime_ns is None and m["/dir"].mtime_ns is None


def test_order_is_path_key_order_and_deterministic(tree: Path) -> None:
    (tree / "a.b").mkdir()
    (tree / "a").mkdir()
    (tree / "a" / "z").touch()
    paths = [e.path for e in manifest(tree)]
    assert paths == sorted(paths, key=path_key)
    assert paths.index("/a/z") < paths.index("/a.b")  # a directory then its subtree
    assert paths == [e.path for e in manifest(tree)]


def test_region_digests_equal_those_of_the_bytes_read(tree: Path) -> None:
    e = entries(tree)[BIG]
    data = (tree / BIG.lstrip("/")).read_bytes()
    assert e.size == BIG_SIZE == len(data) and e.region_size == RS and e.regions == 3
    for i in range(3):
        want = hashlib.blake2b(data[i * RS : (i + 1) * RS], digest_size=16).digest()
        assert e.digest(i) == want
    assert e.digest(1) == hashlib.blake2b(bytes(RS), digest_size=16).digest()  # the hole
    assert entries(tree)["/data/empty"].digests == b""


def _rchar() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


def test_holes_are_not_read(tmp_path: Path) -> None:
    f = tmp_path / "sparse"
    with f.open("wb") as out:
        out.truncate(1 << 30)
        out.seek(700 << 20)
        out.write(b"x")
    before = _rchar()
    (e,) = manifest(tmp_path, paths=["/sparse"])
    read = _rchar() - before
    assert e.regions == 1024
    assert read < 4 << 20, f"{read} bytes read for one data region of a 1 GiB sparse file"
    data_region = e.digest(700)
    assert data_region != e.digest(0) == e.digest(1023)


def test_hard_links_name_the_first_name_of_their_inode(tree: Path) -> None:
    m = entries(tree)
    assert m["/data/hl1"].link is None  # the first name in manifest order
    assert m["/data/hl3"].link == "/data/hl1"
    assert m["/dir/hl2"].link == "/data/hl1"
    assert m["/data/twin"].link is None


def test_paths_gives_the_same_entries_as_the_full_walk(tree: Path) -> None:
    full = entries(tree)
    wanted = ["/dir/hl2", "/", "/link", "/dir/sub/deep/leaf", BIG, "/nope", "/link/x", "/fifo"]
    some = list(manifest(tree, region_size=RS, paths=wanted))
    assert [e.path for e in some] == sorted(
        (p for p in wanted if p in full), key=path_key
    )  # missing names and names through a symlink give nothing
    for e in some:
        assert e == full[e.path]
    # the hard link's first name is found even though it was not asked for
    assert next(e for e in some if e.path == "/dir/hl2").link == "/data/hl1"


def test_symlinks_are_never_followed(tree: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"x")
    os.symlink(outside, tree / "escape")
    m = entries(tree)
    assert m["/escape"].kind is Kind.SYMLINK
    assert not any(p.startswith("/escape/") for p in m)
    assert list(manifest(tree, paths=["/escape/secret"])) == []


def test_exclude_leaves_out_names_and_what_is_below_them(tree: Path) -> None:
    (tree / "x.tmp").touch()
    (tree / "dir" / "y.tmp").touch()
    m = entries(tree, exclude=["*.tmp", "/dir/sub/", "hl?"])
    assert "/x.tmp" not in m and "/dir/y.tmp" not in m
    assert "/dir/sub" not in m and "/dir/sub/deep/leaf" not in m
    assert "/dir" in m and "/data/small" in m
    assert "/data/hl1" not in m and "/dir/hl2" not in m
    some = list(
        manifest(
            tree, paths=["/dir/sub/deep/leaf", "/x.tmp", "/dir"], exclude=["*.tmp", "/dir/sub/"]
        )
    )
    assert [e.path for e in some] == ["/dir"]


def test_bad_arguments(tree: Path) -> None:
    with pytest.raises(UsageError, match="region_size"):
        manifest(tree, region_size=0)
    with pytest.raises(UsageError, match=r"'\.\.' component"):
        manifest(tree, paths=["/data/../etc"])
    with pytest.raises(UsageError, match="not an absolute path"):
        manifest(tree, paths=["data"])
    with pytest.raises(UsageError, match="exclude pattern"):
        manifest(tree, exclude=[""])
    with pytest.raises(AdapterError, match="cannot open directory"):
        list(manifest(tree / "data" / "small"))


def test_json_lines_round_trip(tree: Path) -> None:
    for e in manifest(tree, region_size=RS):
        line = e.to_line()
        assert line.endswith(b"\n") and line.isascii()
        assert Entry.from_line(line) == e


GOOD = {"path": "/f", "type": "file", "mode": 0o644, "uid": 0, "gid": 0, "size": 3,
        "region_size": 2, "digests": "00" * 32}  # fmt: skip


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"path": "f"}, "'path'"),
        ({"path": "/a/../b"}, "'path'"),
        ({"type": "door"}, "'type'"),
        ({"mode": 0o10000}, "'mode'"),
        ({"mode": "644"}, "'mode'"),
        ({"uid": -1}, "'uid'"),
        ({"gid": True}, "'gid'"),
        ({"size": None}, "'size': required"),
        ({"digests": "zz"}, "'digests': expected hex"),
        ({"digests": "00" * 16}, "'digests': expected one digest per region"),
        ({"region_size": 0}, "'region_size'"),
        ({"target": "x"}, "'target': not allowed"),
        ({"rdev": 1}, "'rdev': not allowed"),
        ({"xattrs": [["user.a"]]}, "'xattrs'"),
        ({"xattrs": [["user.a", "1"], ["user.a", "2"]]}, "'xattrs': a name is listed twice"),
        ({"link": "nope"}, "'link'"),
        ({"colour": "red"}, "'colour': unknown field"),
    ],
)
def test_from_json_names_what_is_wrong(change: dict[str, object], message: str) -> None:
    obj = {**GOOD, **change}
    obj = {k: v for k, v in obj.items() if v is not None}
    with pytest.raises(PeerError, match=message):
        Entry.from_json(obj)


def test_from_json_accepts_good_and_rejects_garbage() -> None:
    assert Entry.from_json(GOOD).regions == 2
    with pytest.raises(PeerError, match="not JSON"):
        Entry.from_line(b"{")
    with pytest.raises(PeerError, match="expected an object"):
        Entry.from_json([1])
    d = {"path": "/d", "type": "dir", "mode": 0o755, "uid": 0, "gid": 0}
    with pytest.raises(PeerError, match="'mtime_ns': not allowed"):
        Entry.from_json({**d, "mtime_ns": 1})
    with pytest.raises(PeerError, match="'link': not allowed"):
        Entry.from_json({**d, "link": "/x"})


# --- property: a tree compared with itself, and with its rsync copy, is clean ----------

NAMES = st.text(
    alphabet=st.characters(blacklist_characters="/\0", blacklist_categories=("Cs",)),
    min_size=1,
    max_size=6,
).filter(lambda n: n not in (".", "..") and len(os.fsencode(n)) < 200)
CONTENT = st.tuples(st.binary(max_size=300), st.integers(0, 5 * 512))  # data, offset
NODES = st.recursive(
    st.one_of(
        CONTENT.map(lambda c: ("file", c)),
        NAMES.map(lambda t: ("symlink", t)),
    ),
    lambda children: st.dictionaries(NAMES, children, max_size=4).map(lambda d: ("dir", d)),
    max_leaves=12,
)


def _make(root: Path, node: tuple[str, object], files: list[Path]) -> None:
    kind, value = node
    if kind == "file":
        data, offset = value  # type: ignore[misc]
        fd = os.open(root, os.O_WRONLY | os.O_CREAT, 0o640)
        os.pwrite(fd, data, offset)
        os.close(fd)
        files.append(root)
    elif kind == "symlink":
        os.symlink(str(value), root)
    else:
        root.mkdir(exist_ok=True)
        for name, child in value.items():  # type: ignore[attr-defined]
            _make(root / name, child, files)


@settings(
    max_examples=300 if SOAK else 30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    tree=st.dictionaries(NAMES, NODES, max_size=5),
    links=st.lists(st.tuples(st.integers(0, 50), NAMES), max_size=3),
    xattrs=st.lists(st.tuples(st.integers(0, 50), NAMES, st.binary(max_size=20)), max_size=3),
)
def test_property_a_tree_equals_itself_and_its_rsync_copy(
    tmp_path: Path,
    tree: dict[str, tuple[str, object]],
    links: list[tuple[int, str]],
    xattrs: list[tuple[int, str, bytes]],
) -> None:
    require_root_and_xattrs(tmp_path)
    with tempfile.TemporaryDirectory(dir=tmp_path) as scratch:
        a, b = Path(scratch) / "a", Path(scratch) / "b"
        files: list[Path] = []
        _make(a, ("dir", tree), files)
        for i, name in links:
            if files and not (a / f"L{name}").exists():
                os.link(files[i % len(files)], a / f"L{name}")
        for i, name, value in xattrs:
            if files:
                os.setxattr(files[i % len(files)], f"user.{name}", value)
        assert compare(manifest(a, region_size=512), manifest(a, region_size=512)) == []
        rsync(a, b)
        diffs = compare(manifest(a, region_size=512), manifest(b, region_size=512), mtime=True)
        assert diffs == []
        for e in manifest(a, region_size=512):
            assert Entry.from_line(e.to_line()) == e
