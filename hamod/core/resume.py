"""Resuming a module after a *daemon* restart (not a node reboot): pure.

A daemon killed and restarted quickly must pick up the module where it was — the
application and the VIP untouched — instead of restoring STOP from the durable record
(which is what a reboot does, see :func:`hamod.core.model.restore`). The runtime keeps
the last running :class:`ModuleState` in a marker on a tmpfs (gone at reboot) and asks
:func:`resume` what to do with it:

- a settled state is kept as it was (PRIM stays PRIM with its term and lease);
- a script the dead daemon was waiting for has an unknown outcome: it is reported as
  failed (``follow``), which the table already handles (stop scripts are retried with
  ``force``, a failed start is a stopstart, a failed prestart stops the module);
- a resync in progress goes on: the data-path process outlives the daemon, and the
  runtime, once reconnected to it, reports a resync that ended (or failed, or that a
  new process does not know) while no daemon listened — the core then sees the
  ``ResyncDone``/``ResyncFailed`` it would have seen;
- the runtime-side roles are re-established by ``actions``: the data path role of the
  state and, with the arbitrator, the lease timer of a serving primary. The VIP is not
  touched (its presence is the watchdog's and the stop sequence's business);
- the **view** starts with the peer as the dead daemon last saw it (``peer``, kept in the
  marker too), not with "no peer": in a :class:`~hamod.core.model.View`, ``peer=None``
  means *lost*, and a PRIM taking its peer as lost holds writes and asks for a new term
  (a new data generation: the SECOND would resync after every daemon restart). The
  restarted daemon has not heard the peer *yet*, which is not the same: its heartbeat
  liveness starts afresh, and the peer counts as it was seen until ``timeout`` passes
  with no heartbeat from it (then ``PeerLost`` clears it, as for a running daemon). Its
  first heartbeat replaces the saved announcement (``PeerAnnounced`` if it changed).

Time: ``lease_until`` and every timestamp are CLOCK_MONOTONIC seconds, which do not
change across a daemon restart (only across a reboot, when the marker is gone).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from hamod.core.actions import Action, ArmLeaseTimer, EnsureDataPath, Role
from hamod.core.events import Event, ScriptFailed
from hamod.core.model import (
    PRIMARY,
    Await,
    Mode,
    ModuleState,
    Params,
    PeerView,
    Script,
    State,
    Witness,
)

_SCRIPT = {
    Await.PRESTART: Script.PRESTART,
    Await.POSTSTOP: Script.POSTSTOP,
    Await.START_APP: Script.START_PRIM,
    Await.STOP_APP: Script.STOP_PRIM,
    Await.STOP_APP_FORCE: Script.STOP_PRIM,
}
_FARM = {Script.START_PRIM: Script.START_BOTH, Script.STOP_PRIM: Script.STOP_BOTH}


@dataclass(frozen=True)
class Resumed:
    """The module as the restarted daemon takes it over: its state, the actions that
    re-establish the runtime's side, an event to feed first (or None), and the peer its
    view starts with (the last announcement seen before the restart, or None)."""

    state: ModuleState
    actions: tuple[Action, ...]
    follow: Event | None
    reason: str
    peer: PeerView | None = None


def role_of(s: ModuleState) -> Role:
    """The data path role a module in state ``s`` runs with."""
    if s.state is State.SECOND:
        return Role.SECONDARY
    if s.state is State.PRIM:
        return Role.PRIMARY_MIRRORING
    if s.state in (State.ALONE, State.UP):
        return Role.PRIMARY_ALONE
    return Role.OFF


def resume(params: Params, saved: ModuleState, now: float, peer: PeerView | None = None) -> Resumed:
    """What a restarted daemon does with ``saved``, the last state its predecessor ran,
    and ``peer``, the peer's last announcement it had in its view (None: lost or never
    heard)."""
    s = replace(saved, two_primaries=False)
    acts: list[Action] = [EnsureDataPath(role_of(s), "daemon restarted: same role")]
    follow: Event | None = None
    reasons = [f"daemon restarted: resume {s.state.value}/{s.phase.value}"]
    if peer is not None and peer.node != params.peer:
        peer = None  # saved for another peer (the configuration changed): not this one
    if peer is not None:
        reasons.append(f"peer {peer.node} as last seen ({peer.state.value}) until heard or lost")
    p = s.pending
    if p is not None and p.awaiting is not Await.LEASE:
        script = _SCRIPT[p.awaiting]
        if params.mode is Mode.FARM:
            script = _FARM.get(script, script)
        follow = ScriptFailed(script)
        reasons.append(f"{script.value} outcome unknown: counted as failed")
    elif s.resync is not None:
        # the data path process outlives the daemon and goes on with it; the runtime
        # asks it, once reconnected, whether it ended meanwhile (ResyncDone/Failed)
        reasons.append("the resync goes on in the data path")
    if params.witness is Witness.ARBITRATOR and s.state in PRIMARY and s.lease_until > 0:
        acts.append(ArmLeaseTimer(s.lease_until - params.lease_margin, "lease timer re-armed"))
        if now >= s.lease_until - params.lease_margin:
            reasons.append("lease already ending")
    return Resumed(s, tuple(acts), follow, "; ".join(reasons), peer)
