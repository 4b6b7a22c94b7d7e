"""The named effects of the transition table: each updates the module state and emits
actions (with their reasons). A row applies its effects in order; the mutation test
drops each one in turn.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Literal

from hamod.core.actions import (
    Action,
    ArmLeaseTimer,
    EnsureDataPath,
    EnsureVip,
    NewGeneration,
    ReleaseLease,
    RequestLease,
    Role,
    RunScript,
    StopResync,
    Verb,
)
from hamod.core.events import CheckerResult, LeaseDenied, LeaseGranted
from hamod.core.guards import Ctx, recent_auto_actions
from hamod.core.model import (
    Await,
    Generation,
    Goal,
    Intent,
    Mode,
    ModuleState,
    Pending,
    Phase,
    Script,
    State,
)
from hamod.core.peer_guards import data_diverged, refusal

Out = tuple[ModuleState, tuple[Action, ...]]
Effect = Callable[[Ctx, ModuleState], Out]

_NEXT = {
    Goal.STOP: State.STOP,
    Goal.WAIT: State.WAIT,
    Goal.SECOND: State.SECOND,
    Goal.STOPSTART: State.STOP,
    Goal.RESTART: State.ALONE,
    Goal.ALONE: State.ALONE,
    Goal.PRIM: State.PRIM,
}
_VERB = {Goal.STOPSTART: Verb.STOPSTART, Goal.WAIT: Verb.STOPWAIT}


def _app_scripts(c: Ctx) -> tuple[Script, Script]:
    if c.p.mode is Mode.FARM:
        return Script.START_BOTH, Script.STOP_BOTH
    return Script.START_PRIM, Script.STOP_PRIM


# --- module start / stop -------------------------------------------------------------


def prestart(c: Ctx, s: ModuleState) -> Out:
    s = replace(s, phase=Phase.TRANSIENT, pending=Pending(Await.PRESTART, Goal.WAIT, c.now))
    return s, (RunScript(Script.PRESTART, c.s.state, State.WAIT, Verb.START, "module start"),)


def poststop(goal: Goal) -> Effect:
    def eff(c: Ctx, s: ModuleState) -> Out:
        s = replace(s, phase=Phase.TRANSIENT, pending=Pending(Await.POSTSTOP, goal, c.now))
        verb = _VERB.get(goal, Verb.STOP)
        return s, (RunScript(Script.POSTSTOP, c.s.state, State.STOP, verb, "module stop"),)

    eff.__name__ = f"poststop_{goal.value}"
    return eff


def yield_next(c: Ctx, s: ModuleState) -> Out:
    """A mirror primary stopped by a stopstart while its peer is up to date lets the
    peer take over (SafeKit's stopstart fails over): it asks for no term for twice the
    timeout — longer than the peer's own wait after a term refused while this node's
    lease ran out — but may pair as SECOND at once. Without such a peer it starts again
    at once."""
    pv = c.peer
    if c.s.state not in (State.PRIM, State.ALONE) or pv is None or not pv.up_to_date:
        return s, ()
    return replace(s, term_backoff_until=c.now + 2 * c.p.timeout), ()


def intent(value: Intent) -> Effect:
    def eff(c: Ctx, s: ModuleState) -> Out:
        return replace(s, intent=value), ()

    eff.__name__ = f"intent_{value.value}"
    return eff


def settle(c: Ctx, s: ModuleState) -> Out:
    return replace(s, phase=Phase.NOT_READY, pending=None), ()


def ready(c: Ctx, s: ModuleState) -> Out:
    return replace(s, phase=Phase.READY, pending=None), ()


def stopped(c: Ctx, s: ModuleState) -> Out:
    return (
        replace(
            s,
            phase=Phase.NOT_READY,
            pending=None,
            intent=Intent.NONE,
            resync=None,
            wait_reasons=(),
            lease_until=0.0,
            handover=False,
            swap_request=False,
            two_primaries=False,
            refused="",
        ),
        (),
    )


def first_data(c: Ctx, s: ModuleState) -> Out:
    """``prim`` on a node with no data yet: its (empty or existing) copy becomes the
    reference; ``prim`` on a split brain: keep this node's data."""
    if s.data.current is None or s.split_brain:
        return replace(s, up_to_date=True), ()
    return s, ()


def force_up_to_date(c: Ctx, s: ModuleState) -> Out:
    return replace(s, up_to_date=True, forced=True), ()


# --- primary ---------------------------------------------------------------------------


def ask_lease(goal: Goal) -> Effect:
    def eff(c: Ctx, s: ModuleState) -> Out:
        # Only this node's own term: a stale node must not leapfrog the arbitrator's.
        term = s.term + 1
        s = replace(s, phase=Phase.TRANSIENT, pending=Pending(Await.LEASE, goal, c.now, term))
        return s, (RequestLease(term, f"term {term} to serve as {_NEXT[goal].value}"),)

    eff.__name__ = f"ask_lease_{goal.value}"
    return eff


def hold_writes(c: Ctx, s: ModuleState) -> Out:
    return s, (EnsureDataPath(Role.PRIMARY_HOLD, "hold writes until the lease is renewed"),)


def retry_forced_lease(c: Ctx, s: ModuleState) -> Out:
    assert isinstance(c.e, LeaseDenied) and s.pending is not None
    term = c.e.current_term + 1
    s = replace(s, pending=replace(s.pending, term=term, since=c.now))
    return s, (RequestLease(term, f"primforce: term {term} after {c.e.current_term}"),)


def take_term(c: Ctx, s: ModuleState) -> Out:
    assert isinstance(c.e, LeaseGranted)
    until = c.e.requested_at + c.p.lease
    s = replace(
        s, term=c.e.term, lease_until=until, pending=None, backoff_until=0.0, term_backoff_until=0.0
    )
    return s, (ArmLeaseTimer(until - c.p.lease_margin, "stop serving before the lease ends"),)


def renew_lease(c: Ctx, s: ModuleState) -> Out:
    return s, (RequestLease(s.term, "renew every pulse"),)


def extend_lease(c: Ctx, s: ModuleState) -> Out:
    assert isinstance(c.e, LeaseGranted)
    until = max(s.lease_until, c.e.requested_at + c.p.lease)
    s = replace(s, lease_until=until)
    return s, (ArmLeaseTimer(until - c.p.lease_margin, "stop serving before the lease ends"),)


def local_term(c: Ctx, s: ModuleState) -> Out:
    """No arbitrator: the node numbers its own terms (generation ids stay unique)."""
    return replace(s, term=max(s.term, c.peer.term if c.peer else 0) + 1), ()


def lease_failed(c: Ctx, s: ModuleState) -> Out:
    """No new term request for ``timeout`` (the arbitrator is not asked in a loop). Only
    the term requests wait: pairing with a serving peer does not (see ``may_pair``)."""
    keep = s.intent if s.intent is Intent.SECOND else Intent.NONE
    until = c.now + c.p.timeout
    s = replace(s, pending=None, phase=Phase.NOT_READY, term_backoff_until=until, intent=keep)
    return s, ()


def new_generation(c: Ctx, s: ModuleState) -> Out:
    forced = s.intent is Intent.FORCE or s.split_brain
    gen = Generation(c.p.node, s.term, s.seq + 1, forced)
    s = replace(s, data=s.data.advance(gen), seq=s.seq + 1, split_brain=False)
    why = "forced by admin: the peer gets a full resync" if forced else "writes without the peer"
    return s, (NewGeneration(gen, why),)


def start_primary(role: Role) -> Effect:
    def eff(c: Ctx, s: ModuleState) -> Out:
        start, _ = _app_scripts(c)
        s = replace(
            s,
            phase=Phase.TRANSIENT,
            pending=Pending(Await.START_APP, Goal.ALONE, c.now),
            up_to_date=True,
            last_prim=True,
            intent=Intent.NONE,
            handover=False,
            swap_request=False,
            resync=None,
        )
        nxt = State.PRIM if role is Role.PRIMARY_MIRRORING else State.ALONE
        return s, (
            EnsureDataPath(role, "become primary"),
            EnsureVip(True, "become primary"),
            RunScript(start, c.s.state, nxt, Verb.START, "become primary"),
        )

    eff.__name__ = f"start_primary_{role.name.lower()}"
    return eff


def start_farm(c: Ctx, s: ModuleState) -> Out:
    s = replace(s, phase=Phase.TRANSIENT, pending=Pending(Await.START_APP, Goal.ALONE, c.now))
    return s, (
        EnsureVip(True, "farm member"),
        RunScript(Script.START_BOTH, c.s.state, State.UP, Verb.START, "farm member"),
    )


def start_app(c: Ctx, s: ModuleState) -> Out:
    start, _ = _app_scripts(c)
    s = replace(s, phase=Phase.TRANSIENT, pending=Pending(Await.START_APP, Goal.RESTART, c.now))
    return s, (RunScript(start, c.s.state, c.s.state, Verb.START, "restart the app"),)


def mirroring(c: Ctx, s: ModuleState) -> Out:
    s = replace(s, two_primaries=False)
    return s, (EnsureDataPath(Role.PRIMARY_MIRRORING, "the peer is SECOND and in sync"),)


def primary_alone(c: Ctx, s: ModuleState) -> Out:
    s = replace(s, phase=Phase.READY, pending=None, two_primaries=False)
    return s, (EnsureDataPath(Role.PRIMARY_ALONE, "serve alone, track changes"),)


def stop_app(goal: Goal) -> Effect:
    def eff(c: Ctx, s: ModuleState) -> Out:
        _, stop = _app_scripts(c)
        s = replace(s, phase=Phase.TRANSIENT, pending=Pending(Await.STOP_APP, goal, c.now))
        verb = _VERB.get(goal, Verb.STOP)
        nxt = c.s.state if goal is Goal.RESTART else _NEXT[goal]
        return s, (RunScript(stop, c.s.state, nxt, verb, f"stop the app ({goal.value})"),)

    eff.__name__ = f"stop_app_{goal.value}"
    return eff


def stop_app_force(c: Ctx, s: ModuleState) -> Out:
    assert s.pending is not None
    _, stop = _app_scripts(c)
    pending = replace(s.pending, awaiting=Await.STOP_APP_FORCE)
    s = replace(s, pending=pending)
    # the same arguments as the first call (a restart stays in its state), plus force
    goal = pending.goal
    nxt = c.s.state if goal is Goal.RESTART else _NEXT[goal]
    verb = _VERB.get(goal, Verb.STOP)
    return s, (RunScript(stop, c.s.state, nxt, verb, "stop script failed: again with force", True),)


def fence(c: Ctx, s: ModuleState) -> Out:
    """Stop acknowledging writes and drop the VIP at once (lease lost or lost witness)."""
    return replace(s, lease_until=0.0), (
        EnsureVip(False, "fenced: no valid lease"),
        EnsureDataPath(Role.PRIMARY_HOLD, "fenced: no valid lease"),
    )


def abandon_restart(c: Ctx, s: ModuleState) -> Out:
    """Fenced while restarting the app: do not start it again, end in WAIT."""
    if s.pending is not None and s.pending.goal is Goal.RESTART:
        return replace(s, pending=replace(s.pending, goal=Goal.WAIT)), ()
    return s, ()


def unserve(role: Role) -> Effect:
    def eff(c: Ctx, s: ModuleState) -> Out:
        acts: list[Action] = [EnsureVip(False, "app stopped")]
        if c.p.mode is Mode.MIRROR:
            acts.append(EnsureDataPath(role, "app stopped"))
        if c.p.witness.value == "arbitrator" and s.term:
            acts.append(ReleaseLease(s.term, "no longer serving"))
        s = replace(s, lease_until=0.0, phase=Phase.NOT_READY, pending=None)
        return s, tuple(acts)

    eff.__name__ = f"unserve_{role.name.lower()}"
    return eff


def hand_over(c: Ctx, s: ModuleState) -> Out:
    """SECOND after a swap: Transient (not yet mirrored) until the new primary's barrier
    arrives (``MirrorUp``: its term adopted, ``handover`` cleared, Ready). Shown Ready
    before, it could be swapped back while its peer still refuses (``swap_possible``)."""
    s = replace(s, handover=True, last_prim=False, phase=Phase.TRANSIENT)
    return s, (
        RunScript(
            Script.START_SECOND, c.s.state, State.SECOND, Verb.START, "secondary", awaited=False
        ),
    )


# --- flags, checkers, maxloop -----------------------------------------------------------


def count_auto(c: Ctx, s: ModuleState) -> Out:
    return replace(s, auto_actions=(*recent_auto_actions(c), c.now)), ()


def reset_loop(c: Ctx, s: ModuleState) -> Out:
    return replace(s, auto_actions=()), ()


def wait_for_checker(c: Ctx, s: ModuleState) -> Out:
    assert isinstance(c.e, CheckerResult)
    why = f"checker:{c.e.name}"
    return replace(s, wait_reasons=tuple(sorted({*s.wait_reasons, why}))), ()


def checker_back(c: Ctx, s: ModuleState) -> Out:
    assert isinstance(c.e, CheckerResult)
    why = f"checker:{c.e.name}"
    return replace(s, wait_reasons=tuple(r for r in s.wait_reasons if r != why)), ()


def flag_split_brain(c: Ctx, s: ModuleState) -> Out:
    return replace(s, split_brain=True), ()


def flag_two_primaries(c: Ctx, s: ModuleState) -> Out:
    return replace(s, two_primaries=True, split_brain=s.split_brain or data_diverged(c)), ()


Toggle = Literal["failover", "checkers", "errd", "degraded"]


def flag(name: Toggle, value: bool) -> Effect:
    def eff(c: Ctx, s: ModuleState) -> Out:
        if name == "failover":
            return replace(s, failover=value), ()
        if name == "checkers":
            return replace(s, checkers=value), ()
        if name == "errd":
            return replace(s, errd=value), ()
        return replace(s, degraded=value), ()

    eff.__name__ = f"{name}_{'on' if value else 'off'}"
    return eff


def refuse_peer(c: Ctx, s: ModuleState) -> Out:
    return replace(s, refused=refusal(c)), ()


def unrefuse_peer(c: Ctx, s: ModuleState) -> Out:
    return replace(s, refused=""), ()


def forcestop(c: Ctx, s: ModuleState) -> Out:
    acts: list[Action] = [EnsureVip(False, "forcestop")]
    if c.p.mode is Mode.MIRROR:
        acts += [StopResync("forcestop"), EnsureDataPath(Role.OFF, "forcestop")]
    if c.p.witness.value == "arbitrator" and s.term and c.s.state in (State.ALONE, State.PRIM):
        acts.append(ReleaseLease(s.term, "forcestop"))
    if c.s.state in (State.ALONE, State.PRIM, State.UP):
        _, stop = _app_scripts(c)
        acts.append(RunScript(stop, c.s.state, State.STOP, Verb.STOP, "forcestop", True, False))
    acts.append(
        RunScript(Script.POSTSTOP, c.s.state, State.STOP, Verb.STOP, "forcestop", True, False)
    )
    if c.s.state is State.SECOND:
        s = replace(s, up_to_date=s.up_to_date and c.s.resync is None)
    return s, tuple(acts)
