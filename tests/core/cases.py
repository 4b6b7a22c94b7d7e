"""One or more unit cases per row of the transition table, shared by test_table.py and
the mutation kill-suite. A case: a state, a view, an event; the row expected to fire
first, the resulting state, the leading action tags and optional field checks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from hamod.core.events import (
    CheckAction,
    CheckerResult,
    Command,
    DataPathFailed,
    Evaluate,
    Event,
    Health,
    LeaseDenied,
    LeaseGranted,
    LeaseTimer,
    MirrorUp,
    NetworkBack,
    NetworkSilent,
    On,
    PeerAnnounced,
    PeerLost,
    ResyncDone,
    ResyncFailed,
    ResyncProgress,
    ScriptFailed,
    ScriptOk,
    Tick,
    WitnessVerdict,
)
from hamod.core.machine import Decision, step
from hamod.core.model import (
    Await,
    DataHistory,
    Generation,
    Goal,
    Intent,
    Mode,
    ModuleState,
    Params,
    PeerView,
    Pending,
    Phase,
    Resync,
    Script,
    State,
    View,
    Witness,
)
from hamod.core.table import TABLE, Table

NOW = 100.0
NONE = Params(node="a", peer="b", config_hash="h", pulse=1, timeout=3, lease=2, lease_margin=0.2)
ARB = replace(NONE, witness=Witness.ARBITRATOR)
PING = replace(NONE, witness=Witness.PING)
FARM = replace(NONE, mode=Mode.FARM, replicated=False, peer="")
G0 = Generation("a", 1, 1)
G1 = Generation("a", 2, 2)
GB = Generation("b", 2, 2)
D1 = DataHistory(G1, (G0,))
DB = DataHistory(GB, (G0,))

WAIT = ModuleState(State.WAIT, up_to_date=True, data=D1, term=2, seq=2, last_prim=True)
STALE = replace(WAIT, up_to_date=False, last_prim=False)
ALONE = replace(WAIT, state=State.ALONE, phase=Phase.READY, lease_until=NOW + 2)
PRIM = replace(ALONE, state=State.PRIM)
SECOND = replace(WAIT, state=State.SECOND, phase=Phase.READY, last_prim=False)
UNCONFIRMED = replace(SECOND, up_to_date=False, synced_to=G1)
RESYNCING = replace(
    SECOND, phase=Phase.TRANSIENT, up_to_date=False, resync=Resync("b", False, False)
)
UP = ModuleState(State.UP, Phase.READY, up_to_date=True)


def pend(
    s: ModuleState, a: Await, g: Goal = Goal.WAIT, term: int = 0, since: float = NOW
) -> ModuleState:
    return replace(s, phase=Phase.TRANSIENT, pending=Pending(a, g, since, term))


def peer(state: State, **kw: object) -> PeerView:
    base = PeerView(node="b", state=state, phase=Phase.READY, data=D1, term=2, config_hash="h")
    return replace(base, **kw)  # type: ignore[arg-type]


IN_SYNC = peer(State.SECOND, up_to_date=True)
DOWN = Health.DOWN


def chk(**fields: object) -> Callable[[ModuleState], bool]:
    def f(s: ModuleState) -> bool:
        return all(getattr(s, k) == v for k, v in fields.items())

    f.__name__ = f"fields {fields}"
    return f


@dataclass(frozen=True)
class Case:
    row: str
    s: ModuleState
    e: Event
    params: Params = NONE
    pv: PeerView | None = None
    to: State | None = None
    tags: tuple[str, ...] = ()
    check: Callable[[ModuleState], bool] | None = None
    witness_ok: bool = True
    nets: frozenset[str] = field(default_factory=lambda: frozenset({"lan"}))
    now: float = NOW


def run_case(c: Case, table: Table = TABLE) -> Decision:
    v = View(c.params, c.pv, c.witness_ok, c.nets, frozenset({"lan", "rep"}))
    d = step(c.s, v, c.e, c.now, table)
    assert d.rows and d.rows[0] == c.row, f"{c.row}: fired {d.rows} ({d.reason})"
    want = c.to if c.to is not None else c.s.state
    assert d.state.state is want, f"{c.row}: state {d.state.state} != {want}"
    tags = [t for t in d.tags if t not in ("record", "announce")]
    assert tags[: len(c.tags)] == list(c.tags), f"{c.row}: actions {tags} != {list(c.tags)}"
    if c.check is not None:
        assert c.check(d.state), f"{c.row}: {c.check.__name__} on {d.state}"
    return d


def cmd(c: On) -> Command:
    return Command(c)


def ck(action: CheckAction, health: Health = DOWN) -> CheckerResult:
    return CheckerResult("web", health, action)


S = Script
STOPPING = (Await.STOP_APP,)
CASES: tuple[Case, ...] = (
    Case(
        "failover_on", replace(STALE, failover=False), cmd(On.FAILOVER_ON), check=chk(failover=True)
    ),
    Case("failover_off", SECOND, cmd(On.FAILOVER_OFF), check=chk(failover=False)),
    Case(
        "checker_on", replace(STALE, checkers=False), cmd(On.CHECKER_ON), check=chk(checkers=True)
    ),
    Case("checker_off", STALE, cmd(On.CHECKER_OFF), check=chk(checkers=False)),
    Case("errd_on", replace(STALE, errd=False), cmd(On.ERRD_ON), check=chk(errd=True)),
    Case("errd_off", STALE, cmd(On.ERRD_OFF), check=chk(errd=False)),
    Case(
        "forcestop",
        ALONE,
        cmd(On.FORCESTOP),
        ARB,
        to=State.STOP,
        tags=(
            "vip:absent",
            "resync:stop",
            "dp:off",
            "lease:release",
            "script:stop_prim:force",
            "script:poststop:force",
        ),
        check=chk(phase=Phase.NOT_READY, pending=None),
    ),
    Case(
        "start",
        ModuleState(),
        cmd(On.START),
        to=State.WAIT,
        tags=("script:prestart",),
        check=lambda s: s.pending is not None and s.pending.awaiting is Await.PRESTART,
    ),
    Case(
        "start_prim",
        ModuleState(),
        cmd(On.PRIM),
        to=State.WAIT,
        tags=("script:prestart",),
        check=chk(intent=Intent.PRIM, up_to_date=True),
    ),
    Case(
        "start_second",
        ModuleState(),
        cmd(On.SECOND),
        to=State.WAIT,
        tags=("script:prestart",),
        check=chk(intent=Intent.SECOND),
    ),
    Case(
        "start_primforce",
        replace(STALE, state=State.STOP),
        cmd(On.PRIMFORCE),
        to=State.WAIT,
        check=chk(intent=Intent.FORCE, forced=True, up_to_date=True),
    ),
    Case(
        "prestart_ok",
        pend(STALE, Await.PRESTART),
        ScriptOk(S.PRESTART),
        check=chk(phase=Phase.NOT_READY, pending=None),
    ),
    Case(
        "prestart_failed",
        pend(STALE, Await.PRESTART),
        ScriptFailed(S.PRESTART),
        to=State.STOP,
        check=lambda s: len(s.auto_actions) == 1 and s.pending is None,
    ),
    Case(
        "poststop_then_start",
        pend(replace(WAIT, state=State.STOP), Await.POSTSTOP, Goal.STOPSTART),
        ScriptOk(S.POSTSTOP),
        to=State.WAIT,
        tags=("script:prestart",),
    ),
    Case(
        "poststop_done",
        pend(replace(WAIT, state=State.STOP), Await.POSTSTOP, Goal.STOP),
        ScriptFailed(S.POSTSTOP),
        check=chk(phase=Phase.NOT_READY, pending=None),
    ),
    Case(
        "wait_prim",
        ModuleState(State.WAIT),
        cmd(On.PRIM),
        ARB,
        tags=("lease:request",),
        check=lambda s: s.up_to_date and s.pending is not None and s.pending.term == 1,
    ),
    Case(
        "wait_primforce",
        STALE,
        cmd(On.PRIMFORCE),
        to=State.ALONE,
        check=lambda s: s.data.current is not None and s.data.current.forced and s.forced,
    ),
    Case("wait_second", WAIT, cmd(On.SECOND), check=chk(intent=Intent.SECOND)),
    Case(
        "resolve_split",
        replace(ALONE, split_brain=True),
        cmd(On.PRIM),
        tags=("generation",),
        check=lambda s: not s.split_brain and s.data.current is not None and s.data.current.forced,
    ),
    # the serving node hears a WAITing peer that wrote while apart (ping witness cut):
    # it flags the split brain too, so `prim` here can resolve it
    Case(
        "serving_split_brain",
        ALONE,
        PeerAnnounced(),
        pv=peer(State.WAIT, data=DB),
        check=chk(split_brain=True),
    ),
    Case("stop_wait", WAIT, cmd(On.STOP), to=State.STOP, tags=("script:poststop",)),
    Case(
        "stop_second",
        SECOND,
        cmd(On.STOP),
        to=State.STOP,
        tags=("resync:stop", "dp:off", "script:stop_second", "script:poststop"),
    ),
    Case(
        "stop_serving",
        ALONE,
        cmd(On.STOP),
        tags=("script:stop_prim",),
        check=lambda s: s.pending == Pending(Await.STOP_APP, Goal.STOP, NOW),
    ),
    Case(
        "restart",
        ALONE,
        cmd(On.RESTART),
        tags=("script:stop_prim",),
        check=lambda s: s.pending is not None and s.pending.goal is Goal.RESTART,
    ),
    Case(
        "stopstart_serving",
        PRIM,
        cmd(On.STOPSTART),
        pv=IN_SYNC,
        tags=("script:stop_prim",),
        check=lambda s: s.pending is not None and s.pending.goal is Goal.STOPSTART,
    ),
    Case(
        "stopstart_second",
        SECOND,
        cmd(On.STOPSTART),
        to=State.STOP,
        tags=("resync:stop", "dp:off", "script:stop_second", "script:poststop"),
        check=lambda s: s.pending is not None and s.pending.goal is Goal.STOPSTART,
    ),
    Case(
        "stopstart_wait",
        WAIT,
        cmd(On.STOPSTART),
        to=State.STOP,
        tags=("script:poststop",),
        check=lambda s: s.pending is not None and s.pending.goal is Goal.STOPSTART,
    ),
    Case(
        "swap_prim",
        PRIM,
        cmd(On.SWAP),
        pv=IN_SYNC,
        tags=("script:stop_prim",),
        check=lambda s: s.pending is not None and s.pending.goal is Goal.SECOND,
    ),
    Case("swap_second", SECOND, cmd(On.SWAP), pv=peer(State.PRIM), check=chk(swap_request=True)),
    Case(
        "fullsync",
        SECOND,
        cmd(On.FULLSYNC),
        pv=peer(State.PRIM),
        tags=("resync:stop", "resync:full"),
        check=chk(up_to_date=False, phase=Phase.TRANSIENT),
    ),
    # fullsync in the middle of a resync that keeps divergent data aside (split brain
    # resolved by the admin): the new copy keeps it aside too (soak seed 125175).
    Case(
        "fullsync",
        replace(RESYNCING, resync=Resync("b", True, True)),
        cmd(On.FULLSYNC),
        pv=peer(State.ALONE),
        tags=("resync:stop", "resync:full:keep-aside"),
    ),
    # fullsync of a copy that diverged from the primary's: kept aside.
    Case(
        "fullsync",
        replace(SECOND, data=DB),
        cmd(On.FULLSYNC),
        pv=peer(State.PRIM),
        tags=("resync:stop", "resync:full:keep-aside"),
    ),
    Case(
        "start_app_ok",
        pend(ALONE, Await.START_APP, Goal.ALONE),
        ScriptOk(S.START_PRIM),
        check=chk(phase=Phase.READY, pending=None),
    ),
    Case(
        "start_app_failed_maxloop",
        pend(replace(ALONE, auto_actions=(NOW - 1,)), Await.START_APP),
        ScriptFailed(S.START_PRIM),
        replace(NONE, maxloop=1),
        tags=("script:stop_prim",),
        check=lambda s: (
            s.pending is not None and s.pending.goal is Goal.STOP and len(s.auto_actions) == 2
        ),
    ),
    Case(
        "start_app_failed",
        pend(ALONE, Await.START_APP),
        ScriptFailed(S.START_PRIM, True),
        tags=("script:stop_prim",),
        check=lambda s: (
            s.pending is not None and s.pending.goal is Goal.STOPSTART and len(s.auto_actions) == 1
        ),
    ),
    Case(
        "stop_app_retry",
        pend(ALONE, Await.STOP_APP, Goal.STOP),
        ScriptFailed(S.STOP_PRIM),
        tags=("script:stop_prim:force",),
        check=lambda s: s.pending is not None and s.pending.awaiting is Await.STOP_APP_FORCE,
    ),
    Case(
        "app_stopped_restart",
        pend(ALONE, Await.STOP_APP, Goal.RESTART),
        ScriptOk(S.STOP_PRIM),
        tags=("script:start_prim",),
        check=lambda s: s.pending is not None and s.pending.awaiting is Await.START_APP,
    ),
    Case(
        "app_stopped_stop",
        pend(ALONE, Await.STOP_APP_FORCE, Goal.STOP),
        ScriptFailed(S.STOP_PRIM),
        ARB,
        to=State.STOP,
        tags=("vip:absent", "dp:off", "lease:release", "script:poststop"),
    ),
    Case(
        "app_stopped_stopstart",
        pend(UP, Await.STOP_APP, Goal.STOPSTART),
        ScriptOk(S.STOP_BOTH),
        FARM,
        to=State.STOP,
        tags=("vip:absent", "script:poststop"),
        check=lambda s: s.pending is not None and s.pending.goal is Goal.STOPSTART,
    ),
    Case(
        "app_stopped_stopstart",
        pend(PRIM, Await.STOP_APP, Goal.STOPSTART),
        ScriptOk(S.STOP_PRIM),
        ARB,
        pv=IN_SYNC,
        to=State.STOP,
        tags=("vip:absent", "dp:off", "lease:release", "script:poststop"),
        # the up-to-date peer is elected first (a stopstart of a primary fails over)
        check=lambda s: s.term_backoff_until == NOW + 2 * ARB.timeout,
    ),
    Case(
        "app_stopped_stopstart",
        pend(ALONE, Await.STOP_APP, Goal.STOPSTART),
        ScriptOk(S.STOP_PRIM),
        ARB,
        to=State.STOP,
        tags=("vip:absent", "dp:off", "lease:release", "script:poststop"),
        check=lambda s: s.term_backoff_until == 0.0,  # alone: starts again at once
    ),
    Case(
        "app_stopped_wait",
        pend(replace(ALONE, failover=False), Await.STOP_APP),
        ScriptOk(S.STOP_PRIM),
        to=State.WAIT,
        tags=("vip:absent", "dp:off"),
        check=chk(pending=None),
    ),
    Case(
        "app_stopped_second",
        pend(PRIM, Await.STOP_APP, Goal.SECOND),
        ScriptOk(S.STOP_PRIM),
        pv=IN_SYNC,
        to=State.SECOND,
        tags=("vip:absent", "dp:secondary", "script:start_second"),
        check=chk(handover=True, last_prim=False, phase=Phase.TRANSIENT, pending=None),
    ),
    Case(
        "lease_granted_alone",
        pend(WAIT, Await.LEASE, Goal.ALONE, 3),
        LeaseGranted(3, NOW - 0.1),
        ARB,
        to=State.ALONE,
        tags=("timer:lease", "generation", "dp:primary-alone", "vip:present", "script:start_prim"),
        check=chk(term=3, lease_until=NOW + 1.9),
    ),
    Case(
        "lease_granted_prim",
        pend(SECOND, Await.LEASE, Goal.PRIM, 3),
        LeaseGranted(3, NOW),
        ARB,
        pv=peer(State.SECOND, handover=True),
        to=State.PRIM,
        tags=("timer:lease", "dp:primary-mirroring", "vip:present", "script:start_prim"),
        check=chk(term=3),
    ),
    Case(
        "lease_granted_hold",
        pend(PRIM, Await.LEASE, Goal.ALONE, 3),
        LeaseGranted(3, NOW),
        ARB,
        to=State.ALONE,
        tags=("timer:lease", "generation", "dp:primary-alone"),
        check=chk(phase=Phase.READY, pending=None, term=3),
    ),
    Case(
        "lease_force_retry",
        replace(pend(STALE, Await.LEASE, Goal.ALONE, 3), intent=Intent.FORCE),
        LeaseDenied(3, 5, "b"),
        ARB,
        tags=("lease:request",),
        check=lambda s: s.pending is not None and s.pending.term == 6,
    ),
    Case(
        "lease_failed_wait",
        pend(WAIT, Await.LEASE, Goal.ALONE, 3),
        LeaseDenied(3, 3, "b"),
        ARB,
        check=chk(pending=None, backoff_until=0.0, term_backoff_until=NOW + 3),
    ),
    Case(
        "lease_failed_second",
        pend(SECOND, Await.LEASE, Goal.PRIM, 3, NOW - 3),
        Tick(),
        ARB,
        pv=peer(State.SECOND, handover=True),
        check=chk(pending=None, phase=Phase.READY, term_backoff_until=NOW + 3),
    ),
    Case(
        "lease_failed_hold",
        pend(PRIM, Await.LEASE, Goal.ALONE, 3),
        LeaseDenied(3, 3, "b"),
        ARB,
        tags=("vip:absent", "dp:primary-hold", "script:stop_prim"),
        check=lambda s: s.pending is not None and s.pending.goal is Goal.WAIT,
    ),
    Case("renew_lease", ALONE, Tick(), ARB, tags=("lease:request",)),
    Case(
        "lease_renewed",
        ALONE,
        LeaseGranted(2, NOW),
        ARB,
        tags=("timer:lease",),
        check=chk(lease_until=NOW + 2),
    ),
    Case(
        "lease_gone_stopping",
        replace(pend(ALONE, Await.STOP_APP, Goal.STOP), lease_until=NOW),
        LeaseTimer(),
        ARB,
        tags=("vip:absent", "dp:primary-hold"),
        check=lambda s: s.pending is not None and s.pending.goal is Goal.STOP,
    ),
    Case(
        "lease_gone_stopping",
        replace(pend(ALONE, Await.STOP_APP, Goal.RESTART), lease_until=NOW),
        LeaseTimer(),
        ARB,
        tags=("vip:absent", "dp:primary-hold"),
        check=lambda s: s.pending is not None and s.pending.goal is Goal.WAIT,
    ),
    Case(
        "lease_gone",
        replace(ALONE, lease_until=NOW + 0.1),
        LeaseTimer(),
        ARB,
        tags=("vip:absent", "dp:primary-hold", "script:stop_prim"),
        check=lambda s: s.pending is not None and s.pending.goal is Goal.WAIT,
    ),
    Case(
        "peer_refused",
        WAIT,
        PeerAnnounced(),
        pv=peer(State.WAIT, config_hash="x"),
        check=lambda s: "config hash" in s.refused,
    ),
    Case(
        "peer_accepted",
        replace(STALE, refused="old"),
        PeerAnnounced(),
        pv=peer(State.WAIT),
        check=chk(refused=""),
    ),
    Case(
        "two_primaries_yield",
        ALONE,
        PeerAnnounced(),
        pv=peer(State.ALONE, term=3, data=DB),
        tags=("script:stop_prim",),
        check=chk(two_primaries=True, split_brain=True),
    ),
    Case(
        "two_primaries_stay",
        replace(ALONE, term=4),
        PeerAnnounced(),
        pv=peer(State.ALONE, term=3),
        check=chk(two_primaries=True, split_brain=False),
    ),
    Case(
        "prim_swap_requested",
        PRIM,
        PeerAnnounced(),
        pv=replace(IN_SYNC, swap_request=True),
        tags=("script:stop_prim",),
        check=lambda s: s.pending is not None and s.pending.goal is Goal.SECOND,
    ),
    Case(
        "failback",
        PRIM,
        PeerAnnounced(),
        replace(NONE, defaultprim="b"),
        pv=IN_SYNC,
        tags=("script:stop_prim",),
        check=lambda s: s.pending is not None and s.pending.goal is Goal.SECOND,
    ),
    Case(
        "prim_lost_peer_lease",
        PRIM,
        PeerLost(),
        ARB,
        tags=("dp:primary-hold", "lease:request"),
        check=lambda s: s.pending is not None and s.pending.term == 3,
    ),
    Case(
        "prim_lost_peer_and_witness",
        PRIM,
        PeerLost(),
        PING,
        witness_ok=False,
        tags=("script:stop_prim",),
    ),
    Case(
        "prim_lost_peer",
        PRIM,
        PeerLost(),
        to=State.ALONE,
        tags=("generation", "dp:primary-alone"),
        check=lambda s: s.data.history[:1] == (G1,) and s.term == 3,
    ),
    Case(
        "alone_to_prim",
        ALONE,
        PeerAnnounced(),
        pv=peer(State.SECOND, synced_to=G1),
        to=State.PRIM,
        tags=("dp:primary-mirroring",),
    ),
    Case(
        "alone_witness_lost",
        ALONE,
        WitnessVerdict(False),
        PING,
        witness_ok=False,
        tags=("script:stop_prim",),
    ),
    Case(
        "second_in_sync",
        UNCONFIRMED,
        MirrorUp(D1, 3),
        pv=peer(State.PRIM, term=3),
        check=chk(up_to_date=True, term=3),
    ),
    Case(  # after a swap: the new primary mirrors this node, the hand-over is done
        "second_in_sync",
        replace(SECOND, phase=Phase.TRANSIENT, handover=True),
        MirrorUp(D1, 3),
        pv=peer(State.PRIM, term=3),
        check=chk(up_to_date=True, term=3, handover=False, phase=Phase.READY),
    ),
    Case(
        "second_takeover_lease",
        SECOND,
        PeerAnnounced(),
        ARB,
        pv=peer(State.SECOND, handover=True),
        tags=("lease:request",),
        check=lambda s: s.pending is not None and s.pending.goal is Goal.PRIM,
    ),
    Case(  # refused while the old primary's release was on its way: asked again
        "second_takeover_lease",
        replace(SECOND, term_backoff_until=NOW + 3),
        Tick(),
        ARB,
        pv=peer(State.SECOND, handover=True),
        tags=("lease:request",),
        check=lambda s: s.pending is not None and s.pending.goal is Goal.PRIM,
    ),
    Case(
        "second_takeover",
        SECOND,
        PeerAnnounced(),
        pv=peer(State.SECOND, handover=True),
        to=State.PRIM,
        tags=("dp:primary-mirroring", "vip:present", "script:start_prim"),
        check=chk(term=3),
    ),
    Case(
        "second_resync_again",
        SECOND,
        PeerAnnounced(),
        pv=peer(State.ALONE),
        tags=("resync:incremental",),
        check=chk(up_to_date=False),
    ),
    Case(
        "second_peer_gone",
        replace(SECOND, failover=False),
        PeerLost(),
        to=State.WAIT,
        tags=("resync:stop", "dp:off", "script:stop_second"),
    ),
    Case(
        "resync_progress",
        RESYNCING,
        ResyncProgress(0.5),
        pv=peer(State.ALONE),
        check=lambda s: s.resync is not None and s.resync.progress == 0.5,
    ),
    Case(
        "resync_done",
        RESYNCING,
        ResyncDone(),
        pv=peer(State.ALONE, data=DB),
        check=chk(phase=Phase.READY, resync=None, synced_to=GB),
    ),
    Case(
        "resync_failed",
        RESYNCING,
        ResyncFailed(),
        pv=peer(State.ALONE),
        to=State.WAIT,
        tags=("resync:stop", "dp:off"),
        check=chk(backoff_until=NOW + 3),
    ),
    Case(
        "wait_farm_up",
        replace(UP, state=State.WAIT, phase=Phase.NOT_READY),
        Evaluate(),
        FARM,
        to=State.UP,
        tags=("vip:present", "script:start_both"),
    ),
    Case(
        "wait_pair",
        STALE,
        Evaluate(),
        pv=peer(State.ALONE),
        to=State.SECOND,
        tags=("dp:secondary", "resync:incremental", "script:start_second"),
    ),
    Case(  # a term refused just before the serving peer was heard: pair at once
        "wait_pair",
        replace(WAIT, term_backoff_until=NOW + 3),
        PeerAnnounced(),
        ARB,
        pv=peer(State.ALONE, data=DataHistory(GB, (G1, G0))),
        to=State.SECOND,
        tags=("dp:secondary", "resync:incremental", "script:start_second"),
        check=chk(term_backoff_until=0.0, backoff_until=0.0),
    ),
    Case(
        "wait_split_brain",
        WAIT,
        Evaluate(),
        pv=peer(State.ALONE, data=DB),
        check=chk(split_brain=True),
    ),
    Case(
        "wait_lead_lease",
        WAIT,
        Evaluate(),
        ARB,
        tags=("lease:request",),
        check=lambda s: s.pending is not None and s.pending.term == 3,
    ),
    Case(
        "wait_lead",
        WAIT,
        Evaluate(),
        to=State.ALONE,
        tags=("generation", "dp:primary-alone", "vip:present", "script:start_prim"),
        check=chk(term=3),
    ),
    Case(
        "checker_clear_wait",
        replace(STALE, wait_reasons=("checker:web",)),
        ck(CheckAction.WAIT, Health.UP),
        check=chk(wait_reasons=()),
    ),
    Case(
        "checker_maxloop",
        replace(ALONE, auto_actions=(NOW - 5,)),
        ck(CheckAction.RESTART),
        replace(NONE, maxloop=1),
        tags=("script:stop_prim",),
        check=lambda s: (
            s.pending is not None and s.pending.goal is Goal.STOP and len(s.auto_actions) == 2
        ),
    ),
    Case(
        "checker_maxloop_second",
        replace(SECOND, auto_actions=(NOW - 5,)),
        ck(CheckAction.WAIT),
        replace(NONE, maxloop=1),
        pv=peer(State.PRIM),
        to=State.STOP,
        tags=("resync:stop", "dp:off", "script:stop_second", "script:poststop"),
        check=lambda s: len(s.auto_actions) == 2,
    ),
    Case(
        "checker_restart",
        ALONE,
        ck(CheckAction.RESTART),
        tags=("script:stop_prim",),
        check=lambda s: (
            s.pending is not None and s.pending.goal is Goal.RESTART and len(s.auto_actions) == 1
        ),
    ),
    Case(
        "checker_stopstart",
        ALONE,
        ck(CheckAction.STOPSTART),
        tags=("script:stop_prim",),
        check=lambda s: (
            s.pending is not None and s.pending.goal is Goal.STOPSTART and len(s.auto_actions) == 1
        ),
    ),
    Case(
        "checker_stopstart_second",
        SECOND,
        ck(CheckAction.STOPSTART),
        pv=peer(State.PRIM),
        to=State.STOP,
        tags=("resync:stop", "dp:off", "script:stop_second", "script:poststop"),
        check=lambda s: len(s.auto_actions) == 1,
    ),
    Case(
        "checker_stop",
        UP,
        ck(CheckAction.STOP),
        FARM,
        tags=("script:stop_both",),
        check=lambda s: (
            s.pending is not None and s.pending.goal is Goal.STOP and not s.auto_actions
        ),
    ),
    Case(
        "checker_stop_second",
        SECOND,
        ck(CheckAction.STOP),
        pv=peer(State.PRIM),
        to=State.STOP,
        tags=("resync:stop", "dp:off", "script:stop_second", "script:poststop"),
    ),
    Case(
        "checker_wait",
        ALONE,
        ck(CheckAction.WAIT),
        tags=("script:stop_prim",),
        check=lambda s: s.wait_reasons == ("checker:web",) and len(s.auto_actions) == 1,
    ),
    Case(
        "checker_wait_second",
        SECOND,
        ck(CheckAction.WAIT),
        pv=peer(State.PRIM),
        to=State.WAIT,
        tags=("resync:stop", "dp:off"),
        check=lambda s: s.wait_reasons == ("checker:web",) and len(s.auto_actions) == 1,
    ),
    Case(
        "checker_swap",
        PRIM,
        ck(CheckAction.SWAP),
        pv=IN_SYNC,
        tags=("script:stop_prim",),
        check=lambda s: s.pending is not None and s.pending.goal is Goal.SECOND,
    ),
    Case(
        "dp_failed_maxloop",
        replace(ALONE, auto_actions=(NOW - 1,)),
        DataPathFailed(),
        replace(NONE, maxloop=1),
        tags=("script:stop_prim",),
        check=lambda s: (
            s.pending is not None and s.pending.goal is Goal.STOP and len(s.auto_actions) == 2
        ),
    ),
    Case(
        "dp_failed",
        PRIM,
        DataPathFailed(),
        pv=IN_SYNC,
        tags=("script:stop_prim",),
        check=lambda s: (
            s.pending is not None and s.pending.goal is Goal.STOPSTART and len(s.auto_actions) == 1
        ),
    ),
    Case(
        "dp_failed_second",
        SECOND,
        DataPathFailed(),
        pv=peer(State.PRIM),
        to=State.WAIT,
        tags=("resync:stop", "dp:off"),
        check=lambda s: s.backoff_until == NOW + 3,
    ),
    Case(
        "net_degraded", STALE, NetworkSilent("rep"), pv=peer(State.WAIT), check=chk(degraded=True)
    ),
    Case(
        "net_restored",
        replace(STALE, degraded=True),
        NetworkBack("rep"),
        pv=peer(State.WAIT),
        nets=frozenset({"lan", "rep"}),
        check=chk(degraded=False),
    ),
)
