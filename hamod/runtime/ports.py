"""The runtime's ports: what a module actor needs from the outside world, as Protocols.

Real implementations live in :mod:`hamod.runtime.real`, in-memory fakes in
:mod:`hamod.testing.fakes` (runtime tests never patch). Every side effect is an
idempotent ``ensure_*``-style call; failures raise :class:`~hamod.errors.HamodError`
subclasses, which the actor turns into events.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from hamod.core.actions import Role, StartResync
from hamod.core.model import Durable, Generation, ModuleState, PeerView


class TimerHandle(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    """CLOCK_MONOTONIC seconds and timers on it."""

    def now(self) -> float: ...

    def call_at(self, at: float, fn: Callable[[], None]) -> TimerHandle: ...


@dataclass(frozen=True)
class ScriptOutcome:
    """How one script run ended, as the actor needs it."""

    ok: bool
    timeout: bool = False
    detail: str = ""


class Scripts(Protocol):
    """Runs the module's user scripts with SafeKit's arguments."""

    async def run(
        self, script: str, cur: str, nxt: str, verb: str, force: bool
    ) -> ScriptOutcome: ...


class Vips(Protocol):
    """The module's virtual IPs on this node."""

    async def ensure(self, present: bool) -> bool:
        """Make every VIP of the module present (and announced) or absent; True if
        anything changed."""
        ...


@dataclass(frozen=True)
class LeaseAnswer:
    """The arbitrator's answer: ``lease_end`` on this node's monotonic clock."""

    granted: bool
    term: int
    holder: str
    lease_end: float


class Witness(Protocol):
    """The arbitrator, for one module of this node."""

    async def request(self, term: int) -> LeaseAnswer | None:
        """Ask for (or renew) ``term``; None when unanswered."""
        ...

    async def release(self, term: int) -> None: ...


class Watchdog(Protocol):
    """The per-node watchdog, for one module."""

    def arm(self, deadline: float, state: str) -> bool: ...

    def disarm(self) -> bool: ...


class Store(Protocol):
    """The module's durable status (written atomically, fsynced)."""

    def load(self) -> Durable | None: ...

    def save(self, durable: Durable) -> None: ...


@dataclass(frozen=True)
class Marker:
    """The resume marker: the running state, when it was written (monotonic), and the
    peer's last announcement in the view (None: lost or never heard), which a restarted
    daemon's view starts with (:func:`hamod.core.resume.resume`)."""

    state: ModuleState
    at: float
    config_hash: str
    peer: PeerView | None = None


class Markers(Protocol):
    """The resume marker on a tmpfs (gone at reboot)."""

    def load(self) -> Marker | None: ...

    def save(self, marker: Marker) -> None: ...

    def clear(self) -> None: ...


class DataPath(Protocol):
    """Replication's seam (#4). Reports back through the actor's events."""

    def ensure_role(self, role: Role) -> Awaitable[None] | None:
        """Put the data path in ``role``; an awaitable when it takes time (mounting):
        the actor awaits it before the next action (the application's start script)."""
        ...

    def start_resync(self, action: StartResync) -> None: ...

    def stop_resync(self) -> None: ...

    def new_generation(self, generation: Generation) -> None: ...

    def peer_changed(self, peer: PeerView | None) -> None: ...

    def tick(self, waiting: bool) -> None:
        """Every pulse; ``waiting``: a SECOND still waits for the mirror barrier."""
        ...
