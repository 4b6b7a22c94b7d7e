"""The manifest of a directory tree: one :class:`Entry` per name, in :func:`path_key` order.

Owns reading a tree for ``verify``, never following a symlink: every name is reached
from a descriptor of its directory (``*at`` calls, ``O_NOFOLLOW``), so a directory
replaced by a symlink while the walk runs is never crossed. Writes may continue meanwhile:
a name that vanishes or changes type between two calls is described as it is found, or
left out when gone (the comparison re-checks what differs).

Content: each ``region_size`` region of a regular file has its blake2b-16 digest; a
region that ``SEEK_DATA`` shows to be a hole is not read (its digest is that of zeros),
so a large sparse file costs what its data costs. Files are opened ``O_NOATIME``.

Memory: the open directories of the current path and their sorted listings, plus the
first name of each inode with several links (to give ``Entry.link``). With ``paths=``
only those names are described; if one of them has several links, the tree is walked
once more, names only, to find its first name.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path

from hamod.errors import AdapterError, UsageError
from hamod.tracking.types import DEFAULT_REGION_SIZE
from hamod.verify.entry import Entry, Kind, check_path, path_key
from hamod.verify.exclude import Excluder
from hamod.verify.reading import CHUNK, GONE, Gone, digests, xattrs

__all__ = ["manifest"]

_KINDS = {
    stat.S_IFREG: Kind.FILE,
    stat.S_IFDIR: Kind.DIR,
    stat.S_IFLNK: Kind.SYMLINK,
    stat.S_IFIFO: Kind.FIFO,
    stat.S_IFSOCK: Kind.SOCKET,
    stat.S_IFCHR: Kind.CHR,
    stat.S_IFBLK: Kind.BLK,
}
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_PATH_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class _Changed(Exception):
    """The name changed type while being described."""


def _join(parent: str, name: str) -> str:
    return f"/{name}" if parent == "/" else f"{parent}/{name}"


class _Reader:
    """Describes names of one tree; keeps the hard-link map of a full walk."""

    def __init__(self, region_size: int, excluder: Excluder, *, names_only: bool = False) -> None:
        self.region_size = region_size
        self.excluder = excluder
        self.names_only = names_only  # no content, no xattrs: for the hard-link walk
        self.links: dict[tuple[int, int], str] = {}  # inode -> its first name seen
        self.inodes: dict[str, tuple[int, int]] = {}  # name -> inode, files with links
        self.buffer = memoryview(bytearray(min(region_size, CHUNK)))

    def describe(self, dir_fd: int, name: str, path: str) -> tuple[Entry, int | None] | None:
        """The entry of ``name`` in ``dir_fd`` (and, for a directory, a descriptor of it
        that the caller closes), or None when it is excluded or gone."""
        try:
            for _ in range(3):  # a name changing type under us is looked at again
                try:
                    return self._describe(dir_fd, name, path)
                except _Changed:
                    continue
        except Gone:
            pass
        return None

    def _describe(self, dir_fd: int, name: str, path: str) -> tuple[Entry, int | None] | None:
        """Like :meth:`describe`; _Changed when the name changed type meanwhile."""
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except OSError as exc:
            if exc.errno in GONE:
                return None
            raise AdapterError(f"verify: stat {_where(dir_fd, name)}: {exc.strerror}") from None
        kind = _KINDS.get(stat.S_IFMT(st.st_mode))
        if kind is None or (self.excluder and self.excluder.matches(path, kind is Kind.DIR)):
            return None
        if kind is Kind.DIR:
            found = self._dir(dir_fd, name, path)
            if found is None:
                raise _Changed
            return found
        entry = (
            self._file(dir_fd, name, path)
            if kind is Kind.FILE
            else self._other(dir_fd, name, path, kind, st)
        )
        if entry is None:
            raise _Changed
        return entry, None

    def root(self, fd: int) -> Entry:
        return self._entry("/", Kind.DIR, os.fstat(fd), xattrs=xattrs(fd, "/"))

    def _open(self, dir_fd: int, name: str, flags: int) -> int | None:
        """An fd, or None when the name is now of another type; Gone when gone."""
        try:
            try:
                return os.open(name, flags | os.O_NOATIME, dir_fd=dir_fd)
            except PermissionError:
                return os.open(name, flags, dir_fd=dir_fd)  # O_NOATIME needs ownership
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                return None
            if exc.errno in GONE:
                raise Gone from None
            raise AdapterError(f"verify: open {_where(dir_fd, name)}: {exc.strerror}") from None

    def _file(self, dir_fd: int, name: str, path: str) -> Entry | None:
        fd = self._open(dir_fd, name, _FILE_FLAGS)
        if fd is None:
            return None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                return None
            link = None
            if st.st_nlink > 1:
                inode = (st.st_dev, st.st_ino)
                self.inodes[path] = inode
                first = self.links.setdefault(inode, path)
                link = None if first == path else first
            if self.names_only:
                return self._entry(path, Kind.FILE, st, xattrs=(), link=link)
            return self._entry(
                path,
                Kind.FILE,
                st,
                xattrs=xattrs(fd, path),
                link=link,
                digests=digests(fd, st.st_size, self.region_size, self.buffer, path),
            )
        finally:
            os.close(fd)

    def _dir(self, dir_fd: int, name: str, path: str) -> tuple[Entry, int] | None:
        fd = self._open(dir_fd, name, _DIR_FLAGS)
        if fd is None:
            return None
        try:
            found = () if self.names_only else xattrs(fd, path)
            entry = self._entry(path, Kind.DIR, os.fstat(fd), xattrs=found)
        except BaseException:
            os.close(fd)
            raise
        return entry, fd

    def _other(
        self, dir_fd: int, name: str, path: str, kind: Kind, st: os.stat_result
    ) -> Entry | None:
        target = None
        if kind is Kind.SYMLINK:
            try:
                target = os.readlink(name, dir_fd=dir_fd)
            except OSError as exc:
                if exc.errno == errno.EINVAL:
                    return None  # no longer a symlink
                if exc.errno in GONE:
                    raise Gone from None
                raise AdapterError(f"verify: readlink {path}: {exc.strerror}") from None
        found = () if self.names_only else xattrs(f"/proc/self/fd/{dir_fd}/{name}", path)
        return self._entry(path, kind, st, xattrs=found, target=target)

    def _entry(
        self,
        path: str,
        kind: Kind,
        st: os.stat_result,
        *,
        xattrs: tuple[tuple[str, str], ...],
        target: str | None = None,
        link: str | None = None,
        digests: bytes = b"",
    ) -> Entry:
        is_file = kind is Kind.FILE
        return Entry(
            path=path,
            kind=kind,
            mode=stat.S_IMODE(st.st_mode),
            uid=st.st_uid,
            gid=st.st_gid,
            size=st.st_size if is_file else None,
            rdev=st.st_rdev if kind in (Kind.CHR, Kind.BLK) else None,
            target=target,
            mtime_ns=st.st_mtime_ns if is_file else None,
            xattrs=xattrs,
            link=link,
            region_size=self.region_size if is_file else None,
            digests=digests,
        )


def _where(dir_fd: int, name: str) -> str:
    """The path of ``name`` in ``dir_fd``, for an error message."""
    try:
        return os.path.join(os.readlink(f"/proc/self/fd/{dir_fd}"), name)
    except OSError:
        return name


def _open_root(root: Path) -> int:
    try:
        return os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise AdapterError(f"verify: cannot open directory {root}: {exc.strerror}") from None


def _listing(fd: int) -> list[str]:
    try:
        return sorted(os.listdir(fd))
    except OSError as exc:
        if exc.errno in GONE:
            return []
        raise AdapterError(f"verify: list {_where(fd, '')}: {exc.strerror}") from None


def _walk(reader: _Reader, root_fd: int) -> Iterator[Entry]:
    """Every name, depth first, each directory's names sorted: :func:`path_key` order."""
    yield reader.root(root_fd)
    stack: list[tuple[int, str, Iterator[str]]] = [(root_fd, "/", iter(_listing(root_fd)))]
    try:
        while stack:
            dir_fd, dir_path, names = stack[-1]
            name = next(names, None)
            if name is None:
                stack.pop()
                if dir_fd != root_fd:
                    os.close(dir_fd)
                continue
            path = _join(dir_path, name)
            found = reader.describe(dir_fd, name, path)
            if found is None:
                continue
            entry, sub_fd = found
            if sub_fd is not None:
                stack.append((sub_fd, path, iter(_listing(sub_fd))))
            yield entry
    finally:
        for dir_fd, _, _ in stack:
            if dir_fd != root_fd:
                os.close(dir_fd)


def _parent_fd(root_fd: int, path: str) -> int | None:
    """An O_PATH descriptor of the directory holding ``path``, reached without
    following symlinks, or None if it does not exist as such."""
    fd = os.dup(root_fd)
    try:
        for part in path.split("/")[1:-1]:
            nxt = os.open(part, _PATH_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = nxt
    except OSError as exc:
        os.close(fd)
        if exc.errno in GONE:
            return None
        raise AdapterError(f"verify: open directory of {path}: {exc.strerror}") from None
    return fd


def _some(reader: _Reader, root_fd: int, paths: Iterable[str]) -> Iterator[Entry]:
    found: list[Entry] = []
    for path in sorted(set(paths), key=path_key):
        if path == "/":
            found.append(reader.root(root_fd))
            continue
        if reader.excluder.below_excluded(path):
            continue
        parent = _parent_fd(root_fd, path)
        if parent is None:
            continue
        try:
            got = reader.describe(parent, path.rsplit("/", 1)[1], path)
        finally:
            os.close(parent)
        if got is not None:
            entry, sub_fd = got
            if sub_fd is not None:
                os.close(sub_fd)
            found.append(entry)
    if reader.inodes:
        found = _fix_links(reader, root_fd, found)
    yield from found


def _fix_links(reader: _Reader, root_fd: int, found: list[Entry]) -> list[Entry]:
    """Set ``link`` of the found files with several links to the first name of their
    inode in the whole tree (a names-only walk that stops once all are seen)."""
    wanted = set(reader.inodes.values())
    walker = _Reader(reader.region_size, reader.excluder, names_only=True)
    for _ in _walk(walker, root_fd):
        if wanted <= walker.links.keys():
            break
    out = []
    for e in found:
        inode = reader.inodes.get(e.path)
        if inode is not None:
            head = walker.links.get(inode, e.path)
            e = replace(e, link=None if head == e.path else head)
        out.append(e)
    return out


def manifest(
    root: Path,
    *,
    region_size: int = DEFAULT_REGION_SIZE,
    exclude: Sequence[str] = (),
    paths: Iterable[str] | None = None,
) -> Iterator[Entry]:
    """The entries of the tree under ``root`` (the root itself is ``/``), sorted by
    :func:`path_key`, excluded names (and what is below them) left out.

    ``paths`` restricts the manifest to those names (manifest paths, in any order; a
    name that does not exist gives no entry). ``root`` itself may be a symlink (e.g.
    ``/proc/self/fd/N``): it is followed, nothing below it is. Raises
    :class:`UsageError` for bad arguments, :class:`AdapterError` for I/O errors other
    than a name vanishing.
    """
    if not isinstance(region_size, int) or region_size <= 0:
        raise UsageError(f"region_size: expected a positive integer (got {region_size!r})")
    excluder = Excluder(exclude)
    wanted = None if paths is None else [check_path(p) for p in paths]
    return _manifest(Path(root), region_size, excluder, wanted)


def _manifest(
    root: Path, region_size: int, excluder: Excluder, paths: list[str] | None
) -> Iterator[Entry]:
    root_fd = _open_root(root)
    try:
        reader = _Reader(region_size, excluder)
        if paths is None:
            yield from _walk(reader, root_fd)
        else:
            yield from _some(reader, root_fd, paths)
    finally:
        os.close(root_fd)
