"""Everything that can happen to a module on a node, as frozen dataclasses.

Each event has a ``key`` (an :class:`On`): the transition table matches rows on it.
The runtime updates the :class:`~hamod.core.model.View` first, then calls ``step`` with
the event that changed it (a heartbeat announcement, a lost peer, a witness answer...).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from hamod.core.model import DataHistory, Script


class On(Enum):
    """Event keys used by the transition table."""

    START = "start"
    STOP = "stop"
    FORCESTOP = "forcestop"
    PRIM = "prim"
    SECOND = "second"
    PRIMFORCE = "primforce"
    SWAP = "swap"
    RESTART = "restart"
    STOPSTART = "stopstart"
    FAILOVER_ON = "failover on"
    FAILOVER_OFF = "failover off"
    CHECKER_ON = "checker on"
    CHECKER_OFF = "checker off"
    ERRD_ON = "errd on"
    ERRD_OFF = "errd off"
    FULLSYNC = "fullsync"
    PEER = "peer announcement"
    PEER_LOST = "peer lost"
    NET_SILENT = "network silent"
    NET_BACK = "network back"
    WITNESS = "witness verdict"
    LEASE_GRANTED = "lease granted"
    LEASE_DENIED = "lease denied"
    TICK = "tick"
    LEASE_TIMER = "lease timer"
    CHECKER = "checker result"
    SCRIPT_OK = "script ok"
    SCRIPT_FAILED = "script failed"
    RESYNC_PROGRESS = "resync progress"
    RESYNC_DONE = "resync done"
    RESYNC_FAILED = "resync failed"
    DP_LINK_LOST = "replication link lost"
    DP_FAILED = "data path failed"
    DP_MIRROR_UP = "mirror established"
    EVALUATE = "evaluate"


COMMANDS = frozenset(
    {
        On.START,
        On.STOP,
        On.FORCESTOP,
        On.PRIM,
        On.SECOND,
        On.PRIMFORCE,
        On.SWAP,
        On.RESTART,
        On.STOPSTART,
        On.FAILOVER_ON,
        On.FAILOVER_OFF,
        On.CHECKER_ON,
        On.CHECKER_OFF,
        On.ERRD_ON,
        On.ERRD_OFF,
        On.FULLSYNC,
    }
)


@dataclass(frozen=True)
class Command:
    """An admin command (CLI / API / console)."""

    cmd: On

    def __post_init__(self) -> None:
        if self.cmd not in COMMANDS:
            raise ValueError(f"not a command: {self.cmd.value}")

    @property
    def key(self) -> On:
        return self.cmd


@dataclass(frozen=True)
class PeerAnnounced:
    """A heartbeat carried a new peer announcement (already in ``view.peer``)."""

    key: On = On.PEER


@dataclass(frozen=True)
class PeerLost:
    """All heartbeat networks silent for ``timeout`` (``view.peer`` is None)."""

    key: On = On.PEER_LOST


@dataclass(frozen=True)
class NetworkSilent:
    """One heartbeat network silent while another still works."""

    network: str
    key: On = On.NET_SILENT


@dataclass(frozen=True)
class NetworkBack:
    network: str
    key: On = On.NET_BACK


@dataclass(frozen=True)
class WitnessVerdict:
    """Ping witness: some router answers (``view.witness_ok`` already updated)."""

    reachable: bool
    key: On = On.WITNESS


@dataclass(frozen=True)
class LeaseGranted:
    """The arbitrator granted ``term``; the lease runs from ``requested_at`` (when this
    node sent the request, so it ends here before it ends at the arbitrator)."""

    term: int
    requested_at: float
    key: On = On.LEASE_GRANTED


@dataclass(frozen=True)
class LeaseDenied:
    term: int
    current_term: int
    holder: str
    key: On = On.LEASE_DENIED


@dataclass(frozen=True)
class Tick:
    """Fired every pulse by the runtime."""

    key: On = On.TICK


@dataclass(frozen=True)
class LeaseTimer:
    """The deadline armed by ``ArmLeaseTimer`` was reached."""

    key: On = On.LEASE_TIMER


class Health(Enum):
    UP = "up"
    DOWN = "down"
    UNKNOWN = "unknown"


class CheckAction(Enum):
    RESTART = "restart"
    STOPSTART = "stopstart"
    STOP = "stop"
    WAIT = "wait"
    SWAP = "swap"
    NOACTION = "noaction"


@dataclass(frozen=True)
class CheckerResult:
    """A checker's verdict. ``errd`` = process checker (``errd on|off``), else ``checker``."""

    name: str
    health: Health
    action: CheckAction = CheckAction.RESTART
    errd: bool = False
    key: On = On.CHECKER


@dataclass(frozen=True)
class ScriptOk:
    script: Script
    key: On = On.SCRIPT_OK


@dataclass(frozen=True)
class ScriptFailed:
    script: Script
    timeout: bool = False
    key: On = On.SCRIPT_FAILED


@dataclass(frozen=True)
class ResyncProgress:
    fraction: float
    key: On = On.RESYNC_PROGRESS


@dataclass(frozen=True)
class ResyncDone:
    key: On = On.RESYNC_DONE


@dataclass(frozen=True)
class ResyncFailed:
    cause: str = ""
    key: On = On.RESYNC_FAILED


@dataclass(frozen=True)
class LinkLost:
    """The data path could not mirror to the peer (replication link down)."""

    key: On = On.DP_LINK_LOST


@dataclass(frozen=True)
class MirrorUp:
    """On the SECOND: the primary's barrier arrived; from here every write is mirrored.
    Carries the primary's data history and term (this copy now equals the primary's)."""

    data: DataHistory
    term: int
    key: On = On.DP_MIRROR_UP


@dataclass(frozen=True)
class DataPathFailed:
    cause: str = ""
    key: On = On.DP_FAILED


@dataclass(frozen=True)
class Evaluate:
    """Internal: re-evaluate a settled state (chained by ``step``)."""

    key: On = On.EVALUATE


Event = (
    Command
    | PeerAnnounced
    | PeerLost
    | NetworkSilent
    | NetworkBack
    | WitnessVerdict
    | LeaseGranted
    | LeaseDenied
    | Tick
    | LeaseTimer
    | CheckerResult
    | ScriptOk
    | ScriptFailed
    | ResyncProgress
    | ResyncDone
    | ResyncFailed
    | LinkLost
    | MirrorUp
    | DataPathFailed
    | Evaluate
)
