"""One name of a verified tree (:class:`Entry`), its order, and its JSON form.

Owns what is compared about a name and how it travels: a peer streams its manifest over
the API as JSON lines (:meth:`Entry.to_line` / :meth:`Entry.from_line`), and the receiver
validates every field, naming it, before comparing (:class:`PeerError` otherwise).

Paths are relative to the verified directory with a leading ``/`` (the directory itself
is ``/``). A name that is not UTF-8 is carried as Python carries it (``os.fsdecode``,
lone surrogates), which JSON keeps only with ``ensure_ascii`` (what ``to_line`` does).
Manifests are sorted by :func:`path_key` (component by component, so a directory is
followed by its whole subtree): both sides and the comparison use that one order.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from hamod.errors import PeerError, UsageError

__all__ = ["DIGEST_SIZE", "Entry", "Kind", "check_path", "path_key"]

DIGEST_SIZE = 16  # bytes of one region's blake2b digest
ACL_NAMES = ("system.posix_acl_access", "system.posix_acl_default")


class Kind(StrEnum):
    """The type of a name."""

    FILE = "file"
    DIR = "dir"
    SYMLINK = "symlink"
    FIFO = "fifo"
    SOCKET = "socket"
    CHR = "chr"
    BLK = "blk"


def path_key(path: str) -> tuple[str, ...]:
    """The sort key of a manifest path: its components (``/`` is ``()``)."""
    return tuple(path.split("/")[1:]) if path != "/" else ()


def check_path(path: str) -> str:
    """``path`` if it is a manifest path (``/`` or ``/a/b``: no empty, ``.`` or ``..``
    component, no NUL), else :class:`UsageError` naming it."""
    if not isinstance(path, str) or not path.startswith("/") or "\0" in path:
        raise UsageError(f"path {path!r}: not an absolute path inside the tree")
    if path != "/" and any(c in ("", ".", "..") for c in path.split("/")[1:]):
        raise UsageError(f"path {path!r}: empty, '.' or '..' component")
    return path


@dataclass(frozen=True, slots=True)
class Entry:
    """What is compared about one name.

    ``mode`` is the permission bits with suid/sgid/sticky; ``size``, ``region_size`` and
    ``digests`` (the concatenated blake2b-16 digests of each region) are set for regular
    files only, ``target`` for symlinks, ``rdev`` for devices, ``mtime_ns`` for regular
    files. ``xattrs`` are (name, sha256 hex of the value), sorted, ACLs
    included. ``link`` is set on a regular file that has another name in the tree earlier
    in manifest order: that first name (so equal ``link`` fields on both sides mean equal
    hard-link structure).
    """

    path: str
    kind: Kind
    mode: int
    uid: int
    gid: int
    size: int | None = None
    rdev: int | None = None
    target: str | None = None
    mtime_ns: int | None = None
    xattrs: tuple[tuple[str, str], ...] = ()
    link: str | None = None
    region_size: int | None = None
    digests: bytes = b""

    @property
    def regions(self) -> int:
        """Number of region digests."""
        return len(self.digests) // DIGEST_SIZE

    def digest(self, region: int) -> bytes:
        """The digest of one region."""
        return self.digests[region * DIGEST_SIZE : (region + 1) * DIGEST_SIZE]

    def to_json(self) -> dict[str, object]:
        """A JSON-able dict; absent fields are left out. May hold lone surrogates (names
        that are not UTF-8): serialize with ``ensure_ascii=True``, as :meth:`to_line`."""
        out: dict[str, object] = {
            "path": self.path,
            "type": self.kind.value,
            "mode": self.mode,
            "uid": self.uid,
            "gid": self.gid,
        }
        for key in ("size", "rdev", "target", "mtime_ns", "link", "region_size"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        if self.xattrs:
            out["xattrs"] = [[n, h] for n, h in self.xattrs]
        if self.kind is Kind.FILE:
            out["digests"] = self.digests.hex()
        return out

    def to_line(self) -> bytes:
        """One JSON line (ASCII, ends with a newline)."""
        return json.dumps(self.to_json(), separators=(",", ":")).encode("ascii") + b"\n"

    @classmethod
    def from_line(cls, line: bytes | str) -> Entry:
        """The entry of one JSON line; :class:`PeerError` naming what is wrong."""
        try:
            obj = json.loads(line)
        except (ValueError, UnicodeDecodeError) as exc:
            raise PeerError(f"manifest line is not JSON: {exc}") from None
        return cls.from_json(obj)

    @classmethod
    def from_json(cls, obj: object) -> Entry:
        """The entry of a :meth:`to_json` dict, every field validated (:class:`PeerError`
        naming the path and field otherwise)."""
        if not isinstance(obj, dict):
            raise PeerError(f"manifest entry: expected an object, got {type(obj).__name__}")
        return _Reader(obj).entry()


_FIELDS = frozenset(
    (
        "path",
        "type",
        "mode",
        "uid",
        "gid",
        "size",
        "rdev",
        "target",
        "mtime_ns",
        "xattrs",
        "link",
        "region_size",
        "digests",
    )
)


class _Reader:
    """Validates one JSON object into an :class:`Entry`."""

    def __init__(self, obj: dict[str, Any]) -> None:
        self.obj = obj
        self.where = "manifest entry"

    def fail(self, key: str, what: str) -> PeerError:
        return PeerError(f"{self.where}: field {key!r}: {what} (got {self.obj.get(key)!r})")

    def text(self, key: str, required: bool = False) -> str | None:
        value = self.obj.get(key)
        if value is None and not required:
            return None
        if not isinstance(value, str):
            raise self.fail(key, "expected a string")
        return value

    def path(self, key: str, required: bool = False) -> str | None:
        value = self.text(key, required)
        if value is not None:
            try:
                check_path(value)
            except UsageError as exc:
                raise self.fail(key, str(exc)) from None
        return value

    def integer(self, key: str, required: bool = False, top: int = 1 << 64) -> int | None:
        value = self.obj.get(key)
        if value is None and not required:
            return None
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < top:
            raise self.fail(key, f"expected an integer in [0, {top})")
        return value

    def entry(self) -> Entry:
        path = self.path("path", required=True)
        assert path is not None
        self.where = f"manifest entry {path!r}"
        unknown = sorted(set(self.obj) - _FIELDS)
        if unknown:
            raise self.fail(unknown[0], "unknown field")
        try:
            kind = Kind(str(self.obj.get("type")))
        except ValueError:
            raise self.fail("type", f"expected one of {', '.join(k.value for k in Kind)}") from None
        mode = self.integer("mode", True, 0o10000)
        uid, gid = self.integer("uid", True, 1 << 32), self.integer("gid", True, 1 << 32)
        assert mode is not None and uid is not None and gid is not None
        entry = Entry(
            path=path,
            kind=kind,
            mode=mode,
            uid=uid,
            gid=gid,
            size=self.integer("size"),
            rdev=self.integer("rdev"),
            target=self.text("target"),
            mtime_ns=self.integer("mtime_ns", top=1 << 63),
            xattrs=self.xattrs(),
            link=self.path("link"),
            region_size=self.integer("region_size"),
            digests=self.digests(),
        )
        self.check_kind(entry)
        return entry

    def xattrs(self) -> tuple[tuple[str, str], ...]:
        value = self.obj.get("xattrs", [])
        ok = isinstance(value, list) and all(
            isinstance(p, list) and len(p) == 2 and all(isinstance(s, str) for s in p)
            for p in value
        )
        if not ok:
            raise self.fail("xattrs", "expected a list of [name, sha256 hex] pairs")
        pairs = tuple(sorted((str(n), str(h)) for n, h in value))
        if len({n for n, _ in pairs}) != len(pairs):
            raise self.fail("xattrs", "a name is listed twice")
        return pairs

    def digests(self) -> bytes:
        value = self.text("digests")
        if value is None:
            return b""
        try:
            raw = bytes.fromhex(value)
        except ValueError:
            raise self.fail("digests", "expected hex digits") from None
        if len(raw) % DIGEST_SIZE:
            raise self.fail("digests", f"expected a multiple of {DIGEST_SIZE} bytes")
        return raw

    def check_kind(self, e: Entry) -> None:
        is_file = e.kind is Kind.FILE
        for key, present, wanted in (
            ("size", e.size is not None, is_file),
            ("region_size", e.region_size is not None, is_file),
            ("digests", "digests" in self.obj, is_file),
            ("target", e.target is not None, e.kind is Kind.SYMLINK),
            ("rdev", e.rdev is not None, e.kind in (Kind.CHR, Kind.BLK)),
        ):
            if present != wanted:
                raise self.fail(key, "required" if wanted else f"not allowed for a {e.kind}")
        for key, present, allowed in (
            ("mtime_ns", e.mtime_ns is not None, is_file),
            ("link", e.link is not None, is_file),
        ):
            if present and not allowed:
                raise self.fail(key, f"not allowed for a {e.kind}")
        if is_file:
            assert e.size is not None and e.region_size is not None
            if e.region_size == 0:
                raise self.fail("region_size", "expected a positive integer")
            if e.regions != -(-e.size // e.region_size):
                raise self.fail("digests", "expected one digest per region of the size")
