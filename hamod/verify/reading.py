"""Reading one name for a manifest: region digests of a file's content, and the digests
of its extended attributes.

Owns the system calls on open files: ``SEEK_DATA`` to skip holes (a region with no data
has the digest of zeros, computed once per length, not read), ``preadv`` into one reused
buffer, ``listxattr``/``getxattr`` without following a final symlink. A name vanishing
meanwhile raises :class:`Gone`; other I/O errors raise :class:`AdapterError` naming the
path in the tree.
"""

from __future__ import annotations

import errno
import hashlib
import os
from functools import lru_cache

from hamod.errors import AdapterError
from hamod.verify.entry import DIGEST_SIZE

__all__ = ["CHUNK", "GONE", "Gone", "digests", "xattrs", "zero_digest"]

CHUNK = 1 << 20  # largest read, and the buffer's size
GONE = frozenset((errno.ENOENT, errno.ENOTDIR, errno.ELOOP, errno.ESTALE))
_NO_XATTRS = frozenset((errno.ENOTSUP, errno.EOPNOTSUPP))


class Gone(Exception):
    """The name vanished (or a directory on its path did) while being read."""


@lru_cache(maxsize=8)
def zero_digest(length: int) -> bytes:
    """The digest of ``length`` zero bytes (a region that is a hole)."""
    h = hashlib.blake2b(digest_size=DIGEST_SIZE)
    zeros = memoryview(bytes(min(length, CHUNK)))
    while length:
        n = min(length, len(zeros))
        h.update(zeros[:n])
        length -= n
    return h.digest()


def digests(fd: int, size: int, region_size: int, buffer: memoryview, path: str) -> bytes:
    """The concatenated digests of the ``size`` first bytes of ``fd``, by region (a
    file that shrinks meanwhile gives the digest of what was read)."""
    out = bytearray()
    next_data = -1  # where the last SEEK_DATA found data (valid until passed)
    for offset in range(0, size, region_size):
        length = min(region_size, size - offset)
        if next_data < offset:
            try:
                next_data = os.lseek(fd, offset, os.SEEK_DATA)
            except OSError as exc:
                if exc.errno != errno.ENXIO:
                    raise AdapterError(f"verify: seek {path}: {exc.strerror}") from None
                next_data = size  # no data after offset: holes to the end
        if next_data >= offset + length:
            out += zero_digest(length)
            continue
        h = hashlib.blake2b(digest_size=DIGEST_SIZE)
        pos, end = offset, offset + length
        while pos < end:
            want = buffer[: min(len(buffer), end - pos)]
            try:
                got = os.preadv(fd, [want], pos)
            except OSError as exc:
                raise AdapterError(f"verify: read {path}: {exc.strerror}") from None
            if got == 0:
                break  # the file shrank meanwhile
            h.update(want[:got])
            pos += got
        out += h.digest()
    return bytes(out)


def _get(target: int | str, name: str | None) -> list[str] | bytes:
    if isinstance(target, int):  # an fd: follow_symlinks must stay at its default
        return os.listxattr(target) if name is None else os.getxattr(target, name)
    if name is None:
        return os.listxattr(target, follow_symlinks=False)
    return os.getxattr(target, name, follow_symlinks=False)


def xattrs(target: int | str, path: str) -> tuple[tuple[str, str], ...]:
    """(name, sha256 hex of the value) of every extended attribute, sorted, of an open
    file (``int``) or of the name ``target`` (its last component not followed); ``path``
    is the name in the tree, for errors."""
    try:
        names = _get(target, None)
    except OSError as exc:
        if exc.errno in _NO_XATTRS:
            return ()
        if exc.errno in GONE:
            raise Gone from None
        raise AdapterError(f"verify: listxattr {path}: {exc.strerror}") from None
    out = []
    for name in names:
        assert isinstance(name, str)
        try:
            value = _get(target, name)
        except OSError as exc:
            if exc.errno == errno.ENODATA:
                continue  # removed meanwhile
            if exc.errno in GONE:
                raise Gone from None
            raise AdapterError(f"verify: getxattr {path} {name}: {exc.strerror}") from None
        assert isinstance(value, bytes)
        out.append((name, hashlib.sha256(value).hexdigest()))
    return tuple(sorted(out))
