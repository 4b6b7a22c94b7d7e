"""The core's data model: states, phases, parameters, the per-node module state, the
data generation history, and the immutable view of the cluster the runtime maintains.

Everything here is a frozen dataclass or an enum; nothing does I/O. ``ModuleState`` is
what one node knows about one module; ``durable()`` is the part that survives a crash
(the runtime writes it whenever it changes; ``restore()`` rebuilds a stopped module
from it).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import Enum


class State(Enum):
    """SafeKit's module states."""

    STOP = "STOP"
    WAIT = "WAIT"
    ALONE = "ALONE"
    PRIM = "PRIM"
    SECOND = "SECOND"
    UP = "UP"


class Phase(Enum):
    """SafeKit 8.2's NotReady / Transient / Ready (red / orange / green)."""

    NOT_READY = "NotReady"
    TRANSIENT = "Transient"
    READY = "Ready"


SERVING = frozenset({State.ALONE, State.PRIM, State.UP})
PRIMARY = frozenset({State.ALONE, State.PRIM})


def colour(state: State, phase: Phase, split_brain: bool = False) -> str:
    """The console colour: red for STOP/WAIT/NotReady or a split brain, orange while
    transient, green when ready."""
    if split_brain or state in (State.STOP, State.WAIT) or phase is Phase.NOT_READY:
        return "red"
    return "orange" if phase is Phase.TRANSIENT else "green"


class Mode(Enum):
    MIRROR = "mirror"
    FARM = "farm"


class Witness(Enum):
    """Split-brain checker: none, router ping (SafeKit), or the ``hamod witness`` arbitrator."""

    NONE = "none"
    PING = "ping"
    ARBITRATOR = "arbitrator"


DEFAULTPRIM_ALONE = "alone"
DEFAULTPRIM_LASTPRIM = "lastprim"


@dataclass(frozen=True)
class Params:
    """The module's static parameters the core needs (from the validated config)."""

    node: str
    peer: str = ""
    mode: Mode = Mode.MIRROR
    replicated: bool = True
    failover: bool = True
    defaultprim: str = DEFAULTPRIM_ALONE  # "alone" | "lastprim" | a node name
    maxloop: int = 3
    loop_interval: float = 86_400.0
    pulse: float = 0.7
    timeout: float = 30.0
    lease: float = 10.0
    lease_margin: float = 1.0
    witness: Witness = Witness.NONE
    config_hash: str = ""
    protocol_version: int = 1


@dataclass(frozen=True, order=True)
class Generation:
    """A data generation: deterministic id (who started writing alone, in which term,
    the node's sequence number). ``forced`` marks one an admin imposed (primforce, or
    ``prim`` to resolve a split brain): its peer gets a full resync, divergent data kept
    aside."""

    node: str
    term: int
    seq: int
    forced: bool = False

    def __str__(self) -> str:
        return f"{self.node}:{self.term}.{self.seq}{'!' if self.forced else ''}"


HISTORY_DEPTH = 16


@dataclass(frozen=True)
class DataHistory:
    """Current generation plus its ancestors (newest first), like DRBD's GI tuple."""

    current: Generation | None = None
    history: tuple[Generation, ...] = ()

    def advance(self, gen: Generation) -> DataHistory:
        older = (self.current, *self.history) if self.current else self.history
        return DataHistory(gen, older[:HISTORY_DEPTH])


class Compare(Enum):
    SAME = "same"
    AHEAD = "ahead"
    BEHIND = "behind"
    DIVERGED = "diverged"
    UNKNOWN = "unknown"


def compare(mine: DataHistory, peer: DataHistory) -> Compare:
    """How my data relates to the peer's: who is the resync source, or a split brain."""
    if mine.current is None or peer.current is None:
        return Compare.UNKNOWN
    if mine.current == peer.current:
        return Compare.SAME
    if peer.current in mine.history:
        return Compare.AHEAD
    if mine.current in peer.history:
        return Compare.BEHIND
    shared = set(mine.history) & set(peer.history)
    return Compare.DIVERGED if shared else Compare.UNKNOWN


class Script(Enum):
    PRESTART = "prestart"
    POSTSTOP = "poststop"
    START_PRIM = "start_prim"
    STOP_PRIM = "stop_prim"
    START_SECOND = "start_second"
    STOP_SECOND = "stop_second"
    START_BOTH = "start_both"
    STOP_BOTH = "stop_both"


class Await(Enum):
    """What a transition in progress waits for."""

    PRESTART = "prestart"
    POSTSTOP = "poststop"
    START_APP = "start_app"  # start_prim / start_both
    STOP_APP = "stop_app"  # stop_prim / stop_both, first try
    STOP_APP_FORCE = "stop_app_force"  # second try, with force
    LEASE = "lease"  # a term grant from the arbitrator


class Goal(Enum):
    """Where a stop sequence ends."""

    STOP = "stop"  # module stopped (poststop then STOP)
    WAIT = "wait"  # app stopped, WAIT
    SECOND = "second"  # hand the primary role over (swap), then SECOND
    STOPSTART = "stopstart"  # full stop then start again
    RESTART = "restart"  # stop then start the app scripts, no state change
    ALONE = "alone"  # (lease) go on serving alone
    PRIM = "prim"  # (lease) become primary with a mirroring peer


@dataclass(frozen=True)
class Pending:
    """A transition in progress: what is awaited and where it leads."""

    awaiting: Await
    goal: Goal
    since: float = 0.0
    term: int = 0  # for Await.LEASE: the term asked for


class Intent(Enum):
    """An admin wish that outlives one step (cleared once fulfilled)."""

    NONE = "none"
    PRIM = "prim"
    SECOND = "second"
    FORCE = "force"


@dataclass(frozen=True)
class Resync:
    source: str
    full: bool
    keep_aside: bool
    progress: float = 0.0


@dataclass(frozen=True)
class Durable:
    """What survives a crash of the node (written before acting)."""

    up_to_date: bool
    data: DataHistory
    term: int
    seq: int
    last_prim: bool
    failover: bool
    checkers: bool
    errd: bool
    split_brain: bool
    forced: bool


@dataclass(frozen=True)
class ModuleState:
    """This node's state for one module (durable + volatile)."""

    state: State = State.STOP
    phase: Phase = Phase.NOT_READY
    pending: Pending | None = None
    intent: Intent = Intent.NONE
    up_to_date: bool = False
    data: DataHistory = field(default_factory=DataHistory)
    term: int = 0
    seq: int = 0
    lease_until: float = 0.0
    last_prim: bool = False
    failover: bool = True
    checkers: bool = True
    errd: bool = True
    auto_actions: tuple[float, ...] = ()
    wait_reasons: tuple[str, ...] = ()
    resync: Resync | None = None
    split_brain: bool = False
    two_primaries: bool = False
    degraded: bool = False
    handover: bool = False  # stepped down for the peer (swap / failback)
    swap_request: bool = False  # a SECOND asking its primary to swap
    backoff_until: float = 0.0  # resync / data path failed: no new pairing before then
    term_backoff_until: float = 0.0  # term refused or unanswered: no new request before then
    forced: bool = False  # made primary by primforce (recorded warning)
    refused: str = ""  # why the peer is refused (config/protocol), shown by `state`
    synced_to: Generation | None = None  # as SECOND: the primary's generation resynced to

    def durable(self) -> Durable:
        # A node that was not primary last (a SECOND, or WAIT after being SECOND) is not
        # known up to date after a restart: its peer may have gone on writing.
        return Durable(
            up_to_date=self.up_to_date and self.last_prim,
            data=self.data,
            term=self.term,
            seq=self.seq,
            last_prim=self.last_prim,
            failover=self.failover,
            checkers=self.checkers,
            errd=self.errd,
            split_brain=self.split_brain,
            forced=self.forced,
        )


def awaits_mirror(s: ModuleState) -> bool:
    """As SECOND, settled, waiting for the primary's barrier (``MirrorUp``): a resync done
    but not confirmed yet, or a hand-over (swap) until the new primary mirrors this node.
    The runtime reports the mirror again at every pulse while this holds."""
    return (
        s.state is State.SECOND
        and s.pending is None
        and s.resync is None
        and (s.handover or (s.phase is Phase.READY and not s.up_to_date))
    )


def initial(params: Params) -> ModuleState:
    """A module never started on this node."""
    return ModuleState(up_to_date=not params.replicated, failover=params.failover)


def restore(params: Params, d: Durable) -> ModuleState:
    """The module after a daemon restart or node reboot: STOP, durable fields kept."""
    return replace(
        initial(params),
        up_to_date=d.up_to_date or not params.replicated,
        data=d.data,
        term=d.term,
        seq=d.seq,
        last_prim=d.last_prim,
        failover=d.failover,
        checkers=d.checkers,
        errd=d.errd,
        split_brain=d.split_brain,
        forced=d.forced,
    )


@dataclass(frozen=True)
class PeerView:
    """The peer's last announcement (carried by every heartbeat)."""

    node: str
    state: State
    phase: Phase = Phase.NOT_READY
    up_to_date: bool = False
    data: DataHistory = field(default_factory=DataHistory)
    term: int = 0
    last_prim: bool = False
    candidate: bool = False
    handover: bool = False
    swap_request: bool = False
    synced_to: Generation | None = None
    config_hash: str = ""
    protocol_version: int = 1


def announcement(params: Params, s: ModuleState, now: float) -> PeerView:
    """What this node announces about itself to its peer."""
    return PeerView(
        node=params.node,
        state=s.state,
        phase=s.phase,
        up_to_date=s.up_to_date,
        data=s.data,
        term=s.term,
        last_prim=s.last_prim,
        candidate=(
            s.state is not State.STOP
            and s.up_to_date
            and s.failover
            and not s.wait_reasons
            and not s.split_brain
            and now >= s.backoff_until
            and now >= s.term_backoff_until
            and s.intent is not Intent.SECOND
        ),
        handover=s.handover,
        swap_request=s.swap_request,
        synced_to=s.synced_to,
        config_hash=params.config_hash,
        protocol_version=params.protocol_version,
    )


@dataclass(frozen=True)
class View:
    """The immutable picture of the cluster the runtime maintains for one module."""

    params: Params
    peer: PeerView | None = None  # None: peer lost (all networks silent) or never seen
    witness_ok: bool = True  # ping witness: some router answers
    networks_up: frozenset[str] = frozenset()
    networks: frozenset[str] = frozenset()  # configured heartbeat networks
