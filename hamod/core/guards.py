"""The named pure guards of the transition table, and the context they read.

A guard takes a :class:`Ctx` (state before the row, view, event, now) and returns a
bool. Guards are small and named so the table reads as prose and a mutation test can
negate each one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from hamod.core.events import (
    CheckAction,
    CheckerResult,
    Event,
    Health,
    LeaseDenied,
    On,
    ScriptFailed,
    ScriptOk,
)
from hamod.core.model import (
    PRIMARY,
    Await,
    Compare,
    Goal,
    Intent,
    Mode,
    ModuleState,
    Params,
    PeerView,
    Phase,
    Script,
    View,
    Witness,
    compare,
)


@dataclass(frozen=True)
class Ctx:
    s: ModuleState
    v: View
    e: Event
    now: float

    @property
    def p(self) -> Params:
        return self.v.params

    @property
    def peer(self) -> PeerView | None:
        return self.v.peer


Guard = Callable[[Ctx], bool]


def negate(g: Guard) -> Guard:
    def neg(c: Ctx) -> bool:
        return not g(c)

    neg.__name__ = f"not_{g.__name__}"
    return neg


# --- the module and its transition in progress -------------------------------------


def settled(c: Ctx) -> bool:
    """No transition in progress."""
    return c.s.pending is None


def ready(c: Ctx) -> bool:
    return c.s.pending is None and c.s.phase is Phase.READY


def farm(c: Ctx) -> bool:
    return c.p.mode is Mode.FARM


def mirror(c: Ctx) -> bool:
    return c.p.mode is Mode.MIRROR


def arbitrated(c: Ctx) -> bool:
    return c.p.witness is Witness.ARBITRATOR


def ping_witness(c: Ctx) -> bool:
    return c.p.witness is Witness.PING


def no_witness(c: Ctx) -> bool:
    return c.p.witness is Witness.NONE


def witness_lost(c: Ctx) -> bool:
    return c.p.witness is Witness.PING and c.peer is None and not c.v.witness_ok


def up_to_date(c: Ctx) -> bool:
    return c.s.up_to_date or not c.p.replicated


def peer_newer(c: Ctx) -> bool:
    """The peer (present) holds more recent data than this node."""
    pv = c.peer
    if pv is None or pv.data.current is None:
        return False
    return c.s.data.current is None or compare(c.s.data, pv.data) is Compare.BEHIND


def may_prim(c: Ctx) -> bool:
    """``prim`` is allowed: up to date, or the very first start (no data yet), or the
    resolution of a split brain; never over a peer holding more recent data."""
    if peer_newer(c):
        return False
    return up_to_date(c) or c.s.data.current is None or c.s.split_brain


def split_brain(c: Ctx) -> bool:
    return c.s.split_brain


def _awaited(c: Ctx, a: Await) -> bool:
    return c.s.pending is not None and c.s.pending.awaiting is a


def _script_of_pending(c: Ctx) -> bool:
    e = c.e
    if not isinstance(e, ScriptOk | ScriptFailed) or c.s.pending is None:
        return False
    want = {
        Await.PRESTART: (Script.PRESTART,),
        Await.POSTSTOP: (Script.POSTSTOP,),
        Await.START_APP: (Script.START_PRIM, Script.START_BOTH),
        Await.STOP_APP: (Script.STOP_PRIM, Script.STOP_BOTH),
        Await.STOP_APP_FORCE: (Script.STOP_PRIM, Script.STOP_BOTH),
        Await.LEASE: (),
    }[c.s.pending.awaiting]
    return e.script in want


def prestart_done(c: Ctx) -> bool:
    return _awaited(c, Await.PRESTART) and _script_of_pending(c)


def poststop_done(c: Ctx) -> bool:
    return _awaited(c, Await.POSTSTOP) and _script_of_pending(c)


def start_app_done(c: Ctx) -> bool:
    return _awaited(c, Await.START_APP) and _script_of_pending(c)


def stop_app_failed_once(c: Ctx) -> bool:
    return _awaited(c, Await.STOP_APP) and _script_of_pending(c) and c.e.key is On.SCRIPT_FAILED


def app_stopped(c: Ctx) -> bool:
    """stop_prim/stop_both succeeded, or its forced second run ended (either way)."""
    if not _script_of_pending(c):
        return False
    if _awaited(c, Await.STOP_APP_FORCE):
        return True
    return _awaited(c, Await.STOP_APP) and c.e.key is On.SCRIPT_OK


def _goal(c: Ctx, g: Goal) -> bool:
    return c.s.pending is not None and c.s.pending.goal is g


def goal_stop(c: Ctx) -> bool:
    return _goal(c, Goal.STOP)


def goal_wait(c: Ctx) -> bool:
    return _goal(c, Goal.WAIT)


def goal_second(c: Ctx) -> bool:
    return _goal(c, Goal.SECOND)


def goal_stopstart(c: Ctx) -> bool:
    return _goal(c, Goal.STOPSTART)


def goal_restart(c: Ctx) -> bool:
    return _goal(c, Goal.RESTART)


def awaiting_lease(c: Ctx) -> bool:
    return _awaited(c, Await.LEASE)


def lease_for_pending(c: Ctx) -> bool:
    return (
        c.s.pending is not None
        and c.s.pending.awaiting is Await.LEASE
        and getattr(c.e, "term", -1) == c.s.pending.term
    )


def lease_failed(c: Ctx) -> bool:
    """The term asked for was refused, or no answer came within ``timeout``."""
    if not awaiting_lease(c) or c.s.pending is None:
        return False
    if isinstance(c.e, LeaseDenied):
        return c.e.term == c.s.pending.term
    return c.e.key is On.TICK and c.now - c.s.pending.since >= c.p.timeout


def forcing(c: Ctx) -> bool:
    return c.s.intent is Intent.FORCE


def serving_app(c: Ctx) -> bool:
    """The app runs (or is being started or stopped) under the lease."""
    return c.s.pending is None or c.s.pending.awaiting in (
        Await.START_APP,
        Await.STOP_APP,
        Await.STOP_APP_FORCE,
        Await.LEASE,
    )


def stopping_app(c: Ctx) -> bool:
    return _awaited(c, Await.STOP_APP) or _awaited(c, Await.STOP_APP_FORCE)


def renewal_granted(c: Ctx) -> bool:
    return getattr(c.e, "term", -1) == c.s.term and not awaiting_lease(c)


def lease_expiring(c: Ctx) -> bool:
    return c.now >= c.s.lease_until - c.p.lease_margin


# --- checkers -------------------------------------------------------------------------


def _checker(c: Ctx) -> CheckerResult | None:
    return c.e if isinstance(c.e, CheckerResult) else None


def checker_up_for_wait(c: Ctx) -> bool:
    r = _checker(c)
    return r is not None and r.health is Health.UP and f"checker:{r.name}" in c.s.wait_reasons


def checker_down(c: Ctx, *actions: CheckAction) -> bool:
    r = _checker(c)
    if r is None or r.health is not Health.DOWN or r.action not in actions:
        return False
    enabled = c.s.errd if r.errd else c.s.checkers
    return enabled and ready(c)


def checker_restart(c: Ctx) -> bool:
    return checker_down(c, CheckAction.RESTART)


def checker_stopstart(c: Ctx) -> bool:
    return checker_down(c, CheckAction.STOPSTART)


def checker_stop(c: Ctx) -> bool:
    return checker_down(c, CheckAction.STOP)


def checker_wait(c: Ctx) -> bool:
    return checker_down(c, CheckAction.WAIT)


def checker_counted(c: Ctx) -> bool:
    return checker_down(c, CheckAction.RESTART, CheckAction.STOPSTART, CheckAction.WAIT)


def recent_auto_actions(c: Ctx) -> tuple[float, ...]:
    li = c.p.loop_interval
    return tuple(t for t in c.s.auto_actions if c.now - t < li)


def maxloop_reached(c: Ctx) -> bool:
    """Counting this automatic action would exceed ``maxloop`` within ``loop_interval``."""
    if c.p.loop_interval <= 0:
        return False
    return len(recent_auto_actions(c)) + 1 > c.p.maxloop


# --- misc -----------------------------------------------------------------------------


def network_all_back(c: Ctx) -> bool:
    return c.s.degraded and c.v.networks <= c.v.networks_up


def degraded_new(c: Ctx) -> bool:
    return not c.s.degraded


def resync_progress(c: Ctx) -> bool:
    return c.s.resync is not None


def resync_done(c: Ctx) -> bool:
    return c.s.resync is not None and c.peer is not None and c.peer.state in PRIMARY


def renewing(c: Ctx) -> bool:
    return arbitrated(c) and serving_app(c) and not awaiting_lease(c)


def lease_gone(c: Ctx) -> bool:
    """The lease is about to end unrenewed, or the arbitrator refused its renewal."""
    if not arbitrated(c):
        return False
    if c.e.key is On.LEASE_TIMER:
        return lease_expiring(c)
    return isinstance(c.e, LeaseDenied) and c.e.term == c.s.term and not awaiting_lease(c)
