"""Test doubles of the data path's ports: :class:`Recording` keeps every mutation in order.

It lives in the package (like the other fakes in ``hamod/testing/``) so the replication
and runtime tests can use it without patching.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from hamod.datapath.mutation import Mutation, Op


class Recording:
    """A shipper that records every mutation it is given, in order (thread-safe)."""

    wants_data = True

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[Mutation] = []

    def ship(self, mutation: Mutation, meanwhile: Callable[[], None] | None = None) -> None:
        if meanwhile is not None:
            meanwhile()
        with self._lock:
            self._items.append(mutation)

    @property
    def mutations(self) -> list[Mutation]:
        """A copy of everything recorded so far."""
        with self._lock:
            return list(self._items)

    def ops(self) -> list[Op]:
        """Just the kinds, in order."""
        return [m.op for m in self.mutations]

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
