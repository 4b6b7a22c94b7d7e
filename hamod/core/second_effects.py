"""Effects of the rows that make, keep or end a SECOND: pairing with a resync,
progress, confirmation of sync, leaving. Same contract as :mod:`hamod.core.effects`."""

from __future__ import annotations

from dataclasses import replace

from hamod.core.actions import EnsureDataPath, Role, RunScript, StartResync, StopResync, Verb
from hamod.core.effects import Out
from hamod.core.events import MirrorUp, ResyncProgress
from hamod.core.guards import Ctx
from hamod.core.model import Compare, Intent, ModuleState, Phase, Resync, Script, State, compare

# --- secondary -------------------------------------------------------------------------


def become_second(c: Ctx, s: ModuleState) -> Out:
    pv = c.peer
    assert pv is not None
    rel = compare(s.data, pv.data)
    full = rel not in (Compare.SAME, Compare.BEHIND)
    keep = full and s.data.current is not None
    rs = Resync(pv.node, full, keep)
    s = replace(
        s,
        phase=Phase.TRANSIENT,
        pending=None,
        resync=rs,
        up_to_date=False,
        last_prim=False,
        intent=Intent.NONE,
        split_brain=False,
        backoff_until=0.0,
        term_backoff_until=0.0,
        synced_to=None,
    )
    why = f"data {rel.value} vs {pv.node}"
    return s, (
        EnsureDataPath(Role.SECONDARY, "mirror the primary"),
        StartResync(pv.node, full, keep, why),
        RunScript(
            Script.START_SECOND, c.s.state, State.SECOND, Verb.START, "secondary", awaited=False
        ),
    )


def resync_again(c: Ctx, s: ModuleState) -> Out:
    pv = c.peer
    assert pv is not None
    rs = Resync(pv.node, False, False)
    s = replace(s, phase=Phase.TRANSIENT, resync=rs, up_to_date=False, synced_to=None)
    return s, (StartResync(pv.node, False, False, "the primary went on alone"),)


def full_resync(c: Ctx, s: ModuleState) -> Out:
    src = c.peer.node if c.peer else c.p.peer
    # A copy that is not an ancestor of the source's (diverged, or unrelated history)
    # holds data the source lacks: a full copy keeps it aside, never silently drops it.
    rel = compare(s.data, c.peer.data) if c.peer else Compare.UNKNOWN
    # A resync replacing one still in progress inherits its keep_aside: the divergent
    # data the first one was to set aside is still in this copy.
    keep = (s.resync is not None and s.resync.keep_aside) or (
        s.data.current is not None and rel not in (Compare.SAME, Compare.BEHIND)
    )
    rs = Resync(src, True, keep)
    s = replace(s, phase=Phase.TRANSIENT, resync=rs, up_to_date=False, synced_to=None)
    return s, (StopResync("fullsync"), StartResync(src, True, keep, "fullsync requested"))


def progress(c: Ctx, s: ModuleState) -> Out:
    assert isinstance(c.e, ResyncProgress) and s.resync is not None
    return replace(s, resync=replace(s.resync, progress=c.e.fraction)), ()


def synced(c: Ctx, s: ModuleState) -> Out:
    # The generation is adopted only once the primary mirrors (``in_sync``): until then
    # the primary may still acknowledge writes alone.
    pv = c.peer
    return replace(s, phase=Phase.READY, resync=None, synced_to=pv.data.current if pv else None), ()


def in_sync(c: Ctx, s: ModuleState) -> Out:
    e = c.e
    assert isinstance(e, MirrorUp)
    s = replace(s, up_to_date=True, term=e.term, data=e.data, handover=False, phase=Phase.READY)
    return s, ()


def leave_second(c: Ctx, s: ModuleState) -> Out:
    s = replace(s, phase=Phase.NOT_READY, pending=None, resync=None, handover=False)
    if s.resync is not None or c.s.resync is not None:
        s = replace(s, up_to_date=False)
    return s, (
        StopResync("no longer secondary"),
        EnsureDataPath(Role.OFF, "no longer secondary"),
        RunScript(Script.STOP_SECOND, c.s.state, State.WAIT, Verb.STOP, "secondary", awaited=False),
    )


def backoff(c: Ctx, s: ModuleState) -> Out:
    """Do not pair again (nor ask for a term) before ``timeout`` (resync or data path
    failures)."""
    return replace(s, backoff_until=c.now + c.p.timeout), ()


def swap_request(c: Ctx, s: ModuleState) -> Out:
    return replace(s, swap_request=True), ()
