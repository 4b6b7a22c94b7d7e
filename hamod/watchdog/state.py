"""What the watchdog knows and decides, without I/O or clock: which modules are armed,
which deadlines passed, what a received datagram changes.

Owns the per-module phases and the message counters. Time is an input (``now``, in
CLOCK_MONOTONIC seconds); the server does the I/O and logs the returned notes.

    ARMED --deadline passed--> FENCING --fencing done--> FENCED
      ^  \\--disarm--> (forgotten)         |                |
      |                                    |                |
      +------- arm (renews the deadline) --+--(queued)------+

An ``arm`` or ``disarm`` received while fencing is kept and applied once fencing ends:
a fence that started always completes (the peer may already be taking over).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Literal

from hamod.errors import UsageError
from hamod.watchdog.messages import Arm, Disarm, Ping, decode

__all__ = ["Counters", "FenceJob", "Note", "Phase", "Watch", "WatchState"]

MAX_AHEAD = 3600.0
"""An ``arm`` whose deadline is further ahead than this (seconds) is refused as a bug."""
_LOUD_BAD = 20  # the first bad messages are each logged; then one in _BAD_EVERY
_BAD_EVERY = 100


class Phase(enum.StrEnum):
    """Where one module stands."""

    ARMED = "armed"  # primary here; fenced if its deadline passes
    FENCING = "fencing"  # deadline passed: VIPs being removed, stop_prim running
    FENCED = "fenced"  # fenced; waits for a new arm


@dataclass(frozen=True)
class Note:
    """One line for the watchdog's log."""

    level: Literal["debug", "info", "warning", "error"]
    text: str


@dataclass(frozen=True)
class Watch:
    """One module's state: the arm in force and its phase."""

    arm: Arm
    phase: Phase
    received: float  # when ``arm`` was received
    sender: int | None  # pid that sent it, when known
    after: Arm | Disarm | None = None  # received while fencing, applied when done


@dataclass(frozen=True)
class FenceJob:
    """Fence ``module`` as ``arm`` describes; ``late``: seconds past the deadline when
    noticed, ``silent``: seconds since the last renewal."""

    module: str
    arm: Arm
    late: float
    silent: float


@dataclass(frozen=True)
class Counters:
    """Datagrams seen since start, by kind."""

    received: int = 0
    arms: int = 0
    disarms: int = 0
    pings: int = 0
    bad: int = 0
    fences: int = 0


class WatchState:
    """The modules this watchdog guards. Mutated only through its methods."""

    def __init__(self, max_ahead: float = MAX_AHEAD) -> None:
        self._watches: dict[str, Watch] = {}
        self._counters = Counters()
        self._max_ahead = max_ahead

    @property
    def watches(self) -> Mapping[str, Watch]:
        """Current watches by module (read-only view)."""
        return MappingProxyType(self._watches)

    @property
    def counters(self) -> Counters:
        return self._counters

    def _count(self, **deltas: int) -> None:
        values = {k: getattr(self._counters, k) + v for k, v in deltas.items()}
        self._counters = replace(self._counters, **values)

    # -- input -----------------------------------------------------------------------

    def receive(self, data: bytes, now: float, sender: int | None = None) -> Note | None:
        """Decode and apply one datagram; a bad one is counted and changes nothing."""
        self._count(received=1)
        try:
            message = decode(data)
        except UsageError as exc:
            return self.refuse(str(exc), sender)
        return self.apply(message, now, sender)

    def refuse(self, reason: str, sender: int | None = None) -> Note | None:
        """Count a bad datagram; a note for the first ones, then one in a hundred."""
        self._count(bad=1)
        bad = self._counters.bad
        origin = f" from pid {sender}" if sender is not None else ""
        if bad <= _LOUD_BAD:
            tail = " (further bad messages: one in 100 logged)" if bad == _LOUD_BAD else ""
            return Note("warning", f"ignored bad message #{bad}{origin}: {reason}{tail}")
        if bad % _BAD_EVERY == 0:
            return Note("warning", f"ignored bad message #{bad}{origin} (latest: {reason})")
        return None

    def apply(self, message: Arm | Disarm | Ping, now: float, sender: int | None) -> Note | None:
        """Apply a valid message received at ``now``."""
        if isinstance(message, Ping):
            self._count(pings=1)
            return None
        if isinstance(message, Disarm):
            self._count(disarms=1)
            return self._disarm(message)
        ahead = message.deadline - now
        if ahead > self._max_ahead:
            return self.refuse(
                f"module {message.module}: deadline {ahead:.0f}s ahead, more than "
                f"{self._max_ahead:.0f}s (a bug in the sender?)",
                sender,
            )
        self._count(arms=1)
        return self._arm(message, now, sender)

    def _arm(self, arm: Arm, now: float, sender: int | None) -> Note | None:
        name = arm.module
        old = self._watches.get(name)
        if old is not None and old.phase is Phase.FENCING:
            self._watches[name] = replace(old, after=arm)
            return Note("warning", f"module {name}: arm received while fencing; applied after")
        self._watches[name] = Watch(arm, Phase.ARMED, now, sender)
        ahead = arm.deadline - now
        if ahead < 0:
            return Note("warning", f"module {name}: armed with a deadline {-ahead:.3f}s past")
        if old is None or old.phase is Phase.FENCED:
            again = "re-armed after fencing" if old is not None else "armed"
            vips = ", ".join(v.addr for v in arm.vips) or "no VIP"
            return Note("info", f"module {name}: {again}: deadline in {ahead:.3f}s, {vips}")
        if sender is not None and old.sender is not None and sender != old.sender:
            return Note(
                "info",
                f"module {name}: renewals now come from pid {sender} (was {old.sender}), "
                f"{now - old.received:.3f}s after the previous one",
            )
        return Note("debug", f"module {name}: renewed, deadline in {ahead:.3f}s")

    def _disarm(self, disarm: Disarm) -> Note:
        name = disarm.module
        old = self._watches.get(name)
        if old is None:
            return Note("debug", f"module {name}: disarm of a module not armed")
        if old.phase is Phase.FENCING:
            self._watches[name] = replace(old, after=disarm)
            return Note("info", f"module {name}: disarm received while fencing; applied after")
        del self._watches[name]
        return Note("info", f"module {name}: disarmed (was {old.phase})")

    # -- time ------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """The earliest deadline among armed modules, or None."""
        armed = [w.arm.deadline for w in self._watches.values() if w.phase is Phase.ARMED]
        return min(armed, default=None)

    def due(self, now: float) -> tuple[FenceJob, ...]:
        """Armed modules whose deadline passed at ``now``; they become FENCING."""
        jobs: list[FenceJob] = []
        for name, watch in sorted(self._watches.items()):
            if watch.phase is Phase.ARMED and watch.arm.deadline <= now:
                self._watches[name] = replace(watch, phase=Phase.FENCING, after=None)
                jobs.append(
                    FenceJob(name, watch.arm, now - watch.arm.deadline, now - watch.received)
                )
        if jobs:
            self._count(fences=len(jobs))
        return tuple(jobs)

    def fenced(self, module: str, now: float, complete: bool) -> Note:
        """Fencing of ``module`` ended (``complete``: everything was done)."""
        watch = self._watches.get(module)
        if watch is None or watch.phase is not Phase.FENCING:
            return Note("error", f"module {module}: fencing ended but it was not fencing")
        how = "fenced" if complete else "fencing abandoned (incomplete)"
        after = watch.after
        if isinstance(after, Arm):
            self._watches[module] = Watch(after, Phase.ARMED, now, watch.sender)
            return Note("info", f"module {module}: {how}; re-armed by the arm received meanwhile")
        if isinstance(after, Disarm):
            del self._watches[module]
            return Note("info", f"module {module}: {how}; disarmed as asked meanwhile")
        self._watches[module] = replace(watch, phase=Phase.FENCED)
        return Note("info", f"module {module}: {how}; waiting for a new arm")
