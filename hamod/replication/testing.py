"""Fakes of the replication ports, shipped with the package (tests and the simulator)."""

from __future__ import annotations

import threading

from hamod.datapath.mutation import Mutation


class RecordingApplier:
    """An :class:`~hamod.replication.receiver.Applier` that records what it is given.

    ``delay`` (seconds) slows every apply; while ``gate`` is cleared, applying blocks.
    """

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.gate = threading.Event()
        self.gate.set()
        self.applied: list[tuple[Mutation, bool]] = []
        self.flushes = 0
        self.changed = threading.Condition()

    def apply(self, mutation: Mutation, *, durable: bool) -> None:
        self.gate.wait()
        if self.delay:
            threading.Event().wait(self.delay)
        with self.changed:
            self.applied.append((mutation, durable))
            self.changed.notify_all()

    def flush(self) -> None:
        with self.changed:
            self.flushes += 1
            self.changed.notify_all()

    def wait_for(self, count: int, timeout: float) -> bool:
        """True once ``count`` mutations were applied (within ``timeout`` seconds)."""
        with self.changed:
            return self.changed.wait_for(lambda: len(self.applied) >= count, timeout)
