"""I/O errors of the disk underneath, reported to the data-path process.

An operation that fails with EIO on the directory underneath means the primary's disk
is failing: the module must fail over (DESIGN: "EIO on the primary's disk → failover").
The bridge calls :func:`report` for every operation answered EIO; errors the data path
raises itself on purpose (a write held while the peer link is lost and the module stops)
are marked with :func:`own_eio` and not reported. The process sets :data:`hook`; reports
are limited to one per ``interval`` seconds.
"""

from __future__ import annotations

import errno
import threading
import time
from collections.abc import Callable

hook: Callable[[str], None] | None = None
"""Called (from a FUSE thread) with a description of the failed operation."""
interval = 5.0

_tls = threading.local()
_lock = threading.Lock()
_last = 0.0


def own_eio(message: str) -> OSError:
    """An EIO the data path answers on purpose (not a disk failure)."""
    _tls.own = True
    return OSError(errno.EIO, message)


def report(operation: str) -> None:
    """The operation just answered EIO."""
    global _last
    if getattr(_tls, "own", False):
        _tls.own = False
        return
    h = hook
    if h is None:
        return
    with _lock:
        now = time.monotonic()
        if now - _last < interval:
            return
        _last = now
    h(f"I/O error underneath the mount ({operation})")
