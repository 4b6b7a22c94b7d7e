"""A sequence of operations run natively on one directory and shipped over a real TLS
link to a :class:`DirectoryApplier` on another produces an identical tree."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from hamod.datapath.mutation import OMIT, Mutation, Op
from hamod.replication.applier import DirectoryApplier
from hamod.replication.link import Mode
from tests.replication.conftest import LinkFactory


def run_natively(root: Path) -> list[Mutation]:
    """Do the operations on ``root``; return the mutations a FUSE layer would ship."""
    out: list[Mutation] = []
    d = os.open(root, os.O_RDONLY | os.O_DIRECTORY)

    def do(m: Mutation) -> None:
        out.append(m)

    os.mkdir("sub", 0o750, dir_fd=d)
    do(Mutation(Op.MKDIR, "/sub", mode=0o750))
    fd = os.open("sub/a.tmp", os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o640, dir_fd=d)
    do(Mutation(Op.CREATE, "/sub/a.tmp", handle=10, mode=0o100640, flags=os.O_WRONLY | os.O_EXCL))
    for i in range(4):
        data = bytes([65 + i]) * 8192
        os.pwrite(fd, data, i * 8192)
        do(Mutation(Op.WRITE, "/sub/a.tmp", handle=10, offset=i * 8192, length=8192, data=data))
    os.pwrite(fd, b"tail", 1 << 20)  # sparse hole
    do(Mutation(Op.WRITE, "/sub/a.tmp", handle=10, offset=1 << 20, length=4, data=b"tail"))
    os.fsync(fd)
    do(Mutation(Op.FSYNC, "/sub/a.tmp", handle=10))
    os.close(fd)
    do(Mutation(Op.RELEASE, "/sub/a.tmp", handle=10))
    os.rename("sub/a.tmp", "a", src_dir_fd=d, dst_dir_fd=d)
    do(Mutation(Op.RENAME, "/sub/a.tmp", path2="/a"))
    os.link("a", "sub/hard", src_dir_fd=d, dst_dir_fd=d)
    do(Mutation(Op.LINK, "/a", path2="/sub/hard"))
    os.symlink("../a", "sub/sym", dir_fd=d)
    do(Mutation(Op.SYMLINK, "/sub/sym", target="../a"))
    fd = os.open("b", os.O_CREAT | os.O_WRONLY, 0o600, dir_fd=d)
    do(Mutation(Op.CREATE, "/b", handle=11, mode=0o100600, flags=os.O_WRONLY))
    os.write(fd, b"gone soon")
    do(Mutation(Op.WRITE, "/b", handle=11, offset=0, length=9, data=b"gone soon"))
    os.close(fd)
    do(Mutation(Op.RELEASE, "/b", handle=11))
    os.unlink("b", dir_fd=d)
    do(Mutation(Op.UNLINK, "/b"))
    os.truncate(root / "a", 5000)
    do(Mutation(Op.TRUNCATE, "/a", length=5000))
    os.chmod("a", 0o604, dir_fd=d)
    do(Mutation(Op.CHMOD, "/a", mode=0o100604))
    os.setxattr(root / "a", "user.color", b"blue")
    do(Mutation(Op.SETXATTR, "/a", name="user.color", value=b"blue"))
    os.utime("a", ns=(1_000_000_000, 2_000_000_000), dir_fd=d)
    do(Mutation(Op.UTIMENS, "/a", atime_ns=1_000_000_000, mtime_ns=2_000_000_000))
    os.mkdir("empty", 0o755, dir_fd=d)
    do(Mutation(Op.MKDIR, "/empty", mode=0o755))
    os.rmdir("empty", dir_fd=d)
    do(Mutation(Op.RMDIR, "/empty"))
    os.utime("sub", ns=(3_000_000_000, os.stat("sub", dir_fd=d).st_mtime_ns), dir_fd=d)
    do(Mutation(Op.UTIMENS, "/sub", atime_ns=3_000_000_000, mtime_ns=OMIT))
    os.close(d)
    return out


def snapshot(root: Path) -> dict[str, tuple[object, ...]]:
    """Names, types, modes, sizes, content, link targets, xattrs, hard-link groups."""
    tree: dict[str, tuple[object, ...]] = {}
    inodes: dict[int, str] = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        rel = str(path.relative_to(root))
        if stat.S_ISLNK(st.st_mode):
            tree[rel] = ("link", os.readlink(path))
            continue
        if stat.S_ISDIR(st.st_mode):
            tree[rel] = ("dir", st.st_mode)
            continue
        first = inodes.setdefault(st.st_ino, rel)
        xattrs = {n: os.getxattr(path, n) for n in os.listxattr(path)}
        tree[rel] = (
            "file",
            st.st_mode,
            st.st_size,
            st.st_mtime_ns,
            path.read_bytes(),
            xattrs,
            first,
        )
    return tree


def test_the_replica_tree_equals_the_native_one(pair: LinkFactory, tmp_path: Path) -> None:
    native, replica = tmp_path / "native", tmp_path / "replica"
    native.mkdir()
    replica.mkdir()
    mutations = run_natively(native)
    applier = DirectoryApplier(replica)
    _, link = pair(applier, Mode.SYNC)
    for m in mutations:
        link.ship(m)
    link.flush()
    # (before listing: reading a directory updates its atime under relatime)
    assert (replica / "sub").stat().st_atime_ns == 3_000_000_000
    assert snapshot(replica) == snapshot(native)
    applier.close()


def test_rename_flags_use_renameat2(tmp_path: Path) -> None:
    (tmp_path / "x").write_bytes(b"x")
    (tmp_path / "y").write_bytes(b"y")
    applier = DirectoryApplier(tmp_path)
    applier.apply(Mutation(Op.RENAME, "/x", path2="/y", flags=2), durable=False)  # EXCHANGE
    assert (tmp_path / "x").read_bytes() == b"y"
    try:
        applier.apply(Mutation(Op.RENAME, "/x", path2="/y", flags=1), durable=True)  # NOREPLACE
    except FileExistsError:
        pass
    else:
        raise AssertionError("RENAME_NOREPLACE replaced an existing file")
    applier.close()


def test_paths_escaping_the_directory_are_refused(tmp_path: Path) -> None:
    applier = DirectoryApplier(tmp_path)
    for bad in ("/../x", "/a/../../x", "/", None):
        try:
            applier.apply(Mutation(Op.MKDIR, bad, mode=0o755), durable=False)
        except OSError:
            continue
        raise AssertionError(f"{bad!r} was accepted")
    applier.close()


def test_fallocate_keeps_its_mode(tmp_path: Path) -> None:
    """A punched hole (and zero range) on the primary is a hole on the secondary too,
    not an allocation of the range."""
    punch = 0x01 | 0x02  # FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE
    zero = 0x10  # FALLOC_FL_ZERO_RANGE
    app = DirectoryApplier(tmp_path)
    try:
        app.apply(Mutation(Op.CREATE, "/f", handle=3, mode=0o100644, flags=os.O_WRONLY),
                  durable=False)  # fmt: skip
        data = b"x" * (64 << 10)
        app.apply(Mutation(Op.WRITE, "/f", handle=3, offset=0, length=len(data), data=data),
                  durable=False)  # fmt: skip
        app.apply(Mutation(Op.FALLOCATE, "/f", handle=3, mode=punch, offset=4096, length=8192),
                  durable=False)  # fmt: skip
        app.apply(Mutation(Op.FALLOCATE, "/f", handle=3, mode=zero, offset=32768, length=4096),
                  durable=False)  # fmt: skip
        app.apply(Mutation(Op.RELEASE, "/f", handle=3), durable=False)
    finally:
        app.close()
    content = (tmp_path / "f").read_bytes()
    want = bytearray(data)
    want[4096:12288] = bytes(8192)
    want[32768:36864] = bytes(4096)
    assert content == bytes(want)
    fd = os.open(tmp_path / "f", os.O_RDONLY)
    try:
        assert os.lseek(fd, 4096, os.SEEK_HOLE) == 4096  # a real hole
    finally:
        os.close(fd)


def test_link_to_a_symlink_links_the_symlink_and_odirect_is_not_kept(tmp_path: Path) -> None:
    """A hard link of a (dangling) symlink is a link of the symlink itself, as on the
    primary; a file the primary opened O_DIRECT is written through the page cache here
    (unaligned frames from the primary would fail with EINVAL otherwise)."""
    app = DirectoryApplier(tmp_path)
    try:
        app.apply(Mutation(Op.SYMLINK, "/s", target="nowhere"), durable=False)
        app.apply(Mutation(Op.LINK, "/s", path2="/t"), durable=False)
        flags = os.O_WRONLY | os.O_DIRECT
        app.apply(Mutation(Op.CREATE, "/d", handle=4, mode=0o100644, flags=flags),
                  durable=False)  # fmt: skip
        app.apply(Mutation(Op.WRITE, "/d", handle=4, offset=3, length=5, data=b"hello",
                           flags=flags), durable=True)  # fmt: skip
        app.apply(Mutation(Op.RELEASE, "/d", handle=4), durable=False)
    finally:
        app.close()
    st_s, st_t = os.lstat(tmp_path / "s"), os.lstat(tmp_path / "t")
    assert stat.S_ISLNK(st_t.st_mode) and st_s.st_ino == st_t.st_ino
    assert (tmp_path / "d").read_bytes() == b"\0\0\0hello"
