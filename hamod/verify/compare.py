"""Comparison of two manifests: every difference, named, with its path (and offset).

Owns the merge of two streams sorted by :func:`path_key` (this node's, "local", and the
peer's, "remote"): memory is what the differences take, not what the trees take. The
kinds of difference are the members of :class:`Field`; ``str()`` of a
:class:`Difference` is the line an operator reads, e.g. ``/db/x: content differs at
offset 1048576 (region 1)``.

What is compared: type; permission bits (with suid/sgid/sticky); owner and group;
extended attributes of every namespace, ACLs named apart; for regular files size,
content region by region and hard-link structure; symlink targets; device numbers. Not
compared: timestamps unless ``mtime=True`` (then regular file mtimes, in ns) — the
replication applies writes on the peer with the peer's own clock, so only a copy made by
rsync ``-a`` (``fullsync``) keeps them equal; never a directory's mtime (every change
inside it moves it) nor a symlink's (rsync does not copy it below the second); sizes and
link counts of directories (file-system details); atime and ctime (reading and every
change move them).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum

from hamod.errors import PeerError, UsageError
from hamod.verify.entry import ACL_NAMES, Entry, Kind, path_key

__all__ = ["Comparison", "Difference", "Field", "compare"]


class Field(StrEnum):
    """The kind of a difference."""

    MISSING = "missing"  # on the peer
    EXTRA = "extra"  # on the peer
    TYPE = "type"
    MODE = "mode"
    OWNER = "owner"
    GROUP = "group"
    SIZE = "size"
    CONTENT = "content"
    LINK = "link"
    TARGET = "target"
    DEVICE = "device"
    MTIME = "mtime"
    XATTR = "xattr"
    ACL = "acl"


_ORDER = {f: i for i, f in enumerate(Field)}
_ORDER[Field.ACL] = _ORDER[Field.XATTR]  # both in attribute-name order, as compared


def _nothing(value: str | None, what: str) -> str:
    return what if value is None else f"same inode as {value}"


@dataclass(frozen=True)
class Difference:
    """One difference between this node's copy (``local``) and the peer's (``remote``).

    ``local``/``remote`` are the values as shown (None: absent on that side). ``name``
    is the attribute of an ``xattr``/``acl`` difference; ``offset`` and ``region`` say
    where a ``content`` difference is (the region's first byte and its index).
    """

    path: str
    field: Field
    local: str | None = None
    remote: str | None = None
    offset: int | None = None
    region: int | None = None
    name: str | None = None

    @property
    def key(self) -> tuple[str, str, str, int]:
        """What identifies this difference across re-checks."""
        return (
            self.path,
            self.field.value,
            self.name or "",
            -1 if self.offset is None else self.offset,
        )

    def sort_key(self) -> tuple[tuple[str, ...], int, str, int]:
        return (path_key(self.path), _ORDER[self.field], self.name or "", self.offset or 0)

    def __str__(self) -> str:
        return f"{self.path}: {self.what()}"

    def what(self) -> str:
        """The description without the path."""
        f, here, there = self.field, self.local, self.remote
        if f is Field.MISSING:
            return "missing on peer"
        if f is Field.EXTRA:
            return "extra on peer"
        if f is Field.CONTENT:
            return f"content differs at offset {self.offset} (region {self.region})"
        if f in (Field.XATTR, Field.ACL):
            label = f"xattr {self.name}"
            if f is Field.ACL:
                label = "access ACL" if self.name == ACL_NAMES[0] else "default ACL"
            if here is None:
                return f"{label} extra on peer"
            if there is None:
                return f"{label} missing on peer"
            return f"{label} differs"
        if f is Field.LINK:
            return (
                f"hard links differ: {_nothing(here, 'its own inode')} here, "
                f"{_nothing(there, 'its own inode')} on peer"
            )
        label = {Field.TARGET: "symlink target", Field.DEVICE: "device"}.get(f, f.value)
        return f"{label} {here} != {there}"

    def to_json(self) -> dict[str, object]:
        """A JSON-able dict (None fields left out)."""
        out: dict[str, object] = {"path": self.path, "field": self.field.value}
        for key in ("local", "remote", "offset", "region", "name"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out

    @classmethod
    def from_json(cls, obj: object) -> Difference:
        """The difference of a :meth:`to_json` dict (:class:`PeerError` if malformed)."""
        if not isinstance(obj, dict):
            raise PeerError("difference: expected an object")
        try:
            field = Field(str(obj.get("field")))
        except ValueError:
            raise PeerError(f"difference: field 'field': unknown {obj.get('field')!r}") from None
        return cls(
            path=_text(obj, "path", required=True) or "",
            field=field,
            local=_text(obj, "local"),
            remote=_text(obj, "remote"),
            offset=_int(obj, "offset"),
            region=_int(obj, "region"),
            name=_text(obj, "name"),
        )


def _text(obj: dict[str, object], key: str, required: bool = False) -> str | None:
    value = obj.get(key)
    if (value is not None or required) and not isinstance(value, str):
        raise PeerError(f"difference: field {key!r}: expected a string (got {value!r})")
    return value


def _int(obj: dict[str, object], key: str) -> int | None:
    value = obj.get(key)
    if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
        raise PeerError(f"difference: field {key!r}: expected an integer (got {value!r})")
    return value


def _mode(m: int) -> str:
    return f"{m:04o}"


def _device(rdev: int | None) -> str:
    return "-" if rdev is None else f"{os.major(rdev)}:{os.minor(rdev)}"


def _ns(ns: int | None) -> str:
    return "-" if ns is None else f"{ns // 10**9}.{ns % 10**9:09d}"


def _ordered(entries: Iterable[Entry], side: str) -> Iterator[tuple[tuple[str, ...], Entry]]:
    """(key, entry), checking the stream is strictly increasing."""
    last: tuple[str, ...] | None = None
    last_path = ""
    for e in entries:
        key = path_key(e.path)
        if last is not None and key <= last:
            msg = f"{side} manifest out of order: {e.path!r} after {last_path!r}"
            raise PeerError(msg) if side == "peer" else UsageError(msg)
        last, last_path = key, e.path
        yield key, e


class Comparison:
    """One comparison of two manifests, with its counters: ``entries`` (names seen on
    either side) and ``bytes_hashed`` (file bytes covered by digests, both sides)."""

    PROGRESS_EVERY = 1000

    def __init__(self, *, mtime: bool = False, progress: Callable[[int], None] | None = None):
        self.mtime = mtime
        self.progress = progress
        self.entries = 0
        self.bytes_hashed = 0

    def _count(self, e: Entry | None) -> None:
        if e is not None and e.size is not None:
            self.bytes_hashed += e.size

    def differences(self, local: Iterable[Entry], remote: Iterable[Entry]) -> Iterator[Difference]:
        """Every difference, in manifest order."""
        a, b = _ordered(local, "local"), _ordered(remote, "peer")
        x, y = next(a, None), next(b, None)
        while x is not None or y is not None:
            if y is None or (x is not None and x[0] < y[0]):
                assert x is not None
                self._count(x[1])
                yield Difference(x[1].path, Field.MISSING, local=x[1].kind.value)
                x = next(a, None)
            elif x is None or y[0] < x[0]:
                self._count(y[1])
                yield Difference(y[1].path, Field.EXTRA, remote=y[1].kind.value)
                y = next(b, None)
            else:
                self._count(x[1])
                self._count(y[1])
                yield from self.entry(x[1], y[1])
                x, y = next(a, None), next(b, None)
            self.entries += 1
            if self.progress is not None and self.entries % self.PROGRESS_EVERY == 0:
                self.progress(self.entries)
        if self.progress is not None:
            self.progress(self.entries)

    def entry(self, x: Entry, y: Entry) -> Iterator[Difference]:
        """The differences between two entries of the same path."""
        p = x.path
        if x.kind is not y.kind:
            yield Difference(p, Field.TYPE, x.kind.value, y.kind.value)
            return
        if x.mode != y.mode:
            yield Difference(p, Field.MODE, _mode(x.mode), _mode(y.mode))
        if x.uid != y.uid:
            yield Difference(p, Field.OWNER, str(x.uid), str(y.uid))
        if x.gid != y.gid:
            yield Difference(p, Field.GROUP, str(x.gid), str(y.gid))
        if x.kind is Kind.FILE:
            if x.size != y.size:
                yield Difference(p, Field.SIZE, str(x.size), str(y.size))
            yield from _content(x, y)
            if x.link != y.link:
                yield Difference(p, Field.LINK, x.link, y.link)
        if x.target != y.target:
            yield Difference(p, Field.TARGET, repr(x.target), repr(y.target))
        if x.rdev != y.rdev:
            yield Difference(p, Field.DEVICE, _device(x.rdev), _device(y.rdev))
        if self.mtime and x.mtime_ns != y.mtime_ns:
            yield Difference(p, Field.MTIME, _ns(x.mtime_ns), _ns(y.mtime_ns))
        if x.xattrs != y.xattrs:
            yield from _xattrs(p, dict(x.xattrs), dict(y.xattrs))


def _content(x: Entry, y: Entry) -> Iterator[Difference]:
    """Differing regions that both sides have whole (or equally short, at the end); a
    region cut by a size difference is covered by that difference."""
    if x.digests == y.digests:
        return
    rs = x.region_size
    if rs != y.region_size:
        raise PeerError(f"{x.path}: region sizes differ ({rs} here, {y.region_size} on peer)")
    assert rs is not None and x.size is not None and y.size is not None
    for i in range(min(x.regions, y.regions)):
        offset = i * rs
        if min(rs, x.size - offset) != min(rs, y.size - offset):
            break
        dx, dy = x.digest(i), y.digest(i)
        if dx != dy:
            yield Difference(x.path, Field.CONTENT, dx.hex(), dy.hex(), offset=offset, region=i)


def _xattrs(path: str, x: dict[str, str], y: dict[str, str]) -> Iterator[Difference]:
    for name in sorted(x.keys() | y.keys()):
        here, there = x.get(name), y.get(name)
        if here != there:
            field = Field.ACL if name in ACL_NAMES else Field.XATTR
            yield Difference(path, field, here, there, name=name)


def compare(
    local: Iterable[Entry], remote: Iterable[Entry], *, mtime: bool = False
) -> list[Difference]:
    """Every difference between two manifests sorted by :func:`path_key` (``local`` is
    this node's, ``remote`` the peer's), in manifest order. ``mtime`` also compares the
    mtimes of regular files. An unsorted stream raises (:class:`PeerError`
    for the peer's, :class:`UsageError` for the local one)."""
    return list(Comparison(mtime=mtime).differences(local, remote))
