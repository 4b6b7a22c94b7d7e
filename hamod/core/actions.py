"""What the core asks the runtime to do, as frozen dataclasses.

Every action carries its ``reason``. The runtime executes them in order as idempotent
``ensure_*`` calls; awaited scripts report back with ``ScriptOk``/``ScriptFailed``.
``tag`` is a short stable summary (used by logs and tests).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from hamod.core.model import Durable, Generation, PeerView, Script, State


class Role(Enum):
    """Data path role of this node for the module."""

    OFF = "off"
    SECONDARY = "secondary"
    PRIMARY_MIRRORING = "primary-mirroring"  # writes acked once mirrored
    PRIMARY_HOLD = "primary-hold"  # writes held, not acked (lease renewal in progress)
    PRIMARY_ALONE = "primary-alone"  # writes acked locally, changes tracked


ACCEPTING = frozenset({Role.PRIMARY_MIRRORING, Role.PRIMARY_ALONE})


class Verb(Enum):
    START = "start"
    STOP = "stop"
    STOPSTART = "stopstart"
    STOPWAIT = "stopwait"


@dataclass(frozen=True)
class RunScript:
    """Run a user script with SafeKit's arguments ``<cur> <next> <verb>`` (+ ``force``).
    ``awaited``: the core waits for its result."""

    script: Script
    cur: State
    next: State
    verb: Verb
    reason: str
    force: bool = False
    awaited: bool = True

    @property
    def tag(self) -> str:
        return f"script:{self.script.value}{':force' if self.force else ''}"


@dataclass(frozen=True)
class EnsureVip:
    present: bool
    reason: str

    @property
    def tag(self) -> str:
        return f"vip:{'present' if self.present else 'absent'}"


@dataclass(frozen=True)
class EnsureDataPath:
    role: Role
    reason: str

    @property
    def tag(self) -> str:
        return f"dp:{self.role.value}"


@dataclass(frozen=True)
class StartResync:
    """Resync this node (the target) from ``source``: incremental (tracked regions of
    both sides) or full; ``keep_aside`` keeps this node's divergent data aside."""

    source: str
    full: bool
    keep_aside: bool
    reason: str

    @property
    def tag(self) -> str:
        kind = "full" if self.full else "incremental"
        return f"resync:{kind}{':keep-aside' if self.keep_aside else ''}"


@dataclass(frozen=True)
class StopResync:
    reason: str

    @property
    def tag(self) -> str:
        return "resync:stop"


@dataclass(frozen=True)
class RequestLease:
    """Ask the arbitrator for ``term`` (a renewal when already held)."""

    term: int
    reason: str

    @property
    def tag(self) -> str:
        return "lease:request"


@dataclass(frozen=True)
class ReleaseLease:
    term: int
    reason: str

    @property
    def tag(self) -> str:
        return "lease:release"


@dataclass(frozen=True)
class ArmLeaseTimer:
    """Fire ``LeaseTimer`` at ``at`` (before the lease ends)."""

    at: float
    reason: str

    @property
    def tag(self) -> str:
        return "timer:lease"


@dataclass(frozen=True)
class NewGeneration:
    """The data path starts a new generation (tracks changes from here)."""

    generation: Generation
    reason: str

    @property
    def tag(self) -> str:
        return "generation"


@dataclass(frozen=True)
class RecordDurable:
    """Write the durable state (before any other action of the same decision)."""

    durable: Durable
    reason: str

    @property
    def tag(self) -> str:
        return "record"


@dataclass(frozen=True)
class Announce:
    """Send this announcement to the peer now (heartbeats repeat it every pulse)."""

    view: PeerView
    reason: str

    @property
    def tag(self) -> str:
        return "announce"


Action = (
    RunScript
    | EnsureVip
    | EnsureDataPath
    | StartResync
    | StopResync
    | RequestLease
    | ReleaseLease
    | ArmLeaseTimer
    | NewGeneration
    | RecordDurable
    | Announce
)
