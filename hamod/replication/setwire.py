"""A resync target's own changes, as JSON for the session handshake.

The target of a resync sends what it may have changed on its own (its activity log
after a crash as primary) so the source copies those names and regions back. Only what
:func:`hamod.tracking.types.merge` uses of a target set travels: names (its ops' names
included: they are reconciled whole), files with regions, tail and attributes. Peer
input: every field is checked, a bad one raises :class:`~hamod.errors.PeerError`.
"""

from __future__ import annotations

from typing import Any

from hamod.errors import PeerError
from hamod.tracking.types import ChangeSet, FileChanges, Unknown, op_paths

MAX_ITEMS = 1_000_000


def dump(changes: ChangeSet | Unknown | None) -> dict[str, Any] | None:
    if changes is None:
        return None
    if isinstance(changes, Unknown):
        return {"unknown": changes.reason}
    names = set(changes.names)
    for op in changes.ops:
        names.update(op_paths(op))
    return {
        "region_size": changes.region_size,
        "names": sorted(names),
        "files": {p: [sorted(c.regions), c.tail_from, c.attrs] for p, c in changes.files.items()},
    }


def _path(value: object, where: str) -> str:
    """A tracker name: relative to the directory, ``""`` for its root, no ``..``."""
    if (
        not isinstance(value, str)
        or value.startswith("/")
        or "\0" in value
        or ".." in value.split("/")
        or len(value) > 4096
    ):
        raise PeerError(f"resync set: {where}: not a path inside the directory")
    return value


def _int(value: object, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise PeerError(f"resync set: {where}: not a non-negative integer")
    return value


def load(data: object) -> ChangeSet | Unknown | None:
    """The set sent by a target; PeerError naming the bad field."""
    if data is None:
        return None
    if not isinstance(data, dict):
        raise PeerError("resync set: not an object")
    if "unknown" in data:
        reason = data["unknown"]
        if not isinstance(reason, str):
            raise PeerError("resync set: unknown: not a string")
        return Unknown(reason)
    size = _int(data.get("region_size"), "region_size")
    if size < 4096 or size & (size - 1):
        raise PeerError("resync set: region_size: not a power of two >= 4096")
    names = data.get("names")
    files = data.get("files")
    if not isinstance(names, list) or not isinstance(files, dict):
        raise PeerError("resync set: names or files missing")
    if len(names) + len(files) > MAX_ITEMS:
        raise PeerError("resync set: too many items")
    out: dict[str, FileChanges] = {}
    for p, entry in files.items():
        path = _path(p, "files")
        if not isinstance(entry, list) or len(entry) != 3:
            raise PeerError(f"resync set: files[{path!r}]: not [regions, tail, attrs]")
        regions, tail, attrs = entry
        if not isinstance(regions, list) or not isinstance(attrs, bool):
            raise PeerError(f"resync set: files[{path!r}]: bad regions or attrs")
        out[path] = FileChanges(
            frozenset(_int(r, f"files[{path!r}].regions") for r in regions),
            None if tail is None else _int(tail, f"files[{path!r}].tail"),
            attrs,
        )
    return ChangeSet(size, 0, names=frozenset(_path(n, "names") for n in names), files=out)
