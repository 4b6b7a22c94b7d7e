"""The core's :class:`~hamod.core.model.PeerView` ⇄ the heartbeat's
:class:`~hamod.proto.ModuleAnnouncement`.

The wire carries what the core announces with a few flags of its own (``ModuleFlags``
bits may be added without a new protocol version; unknown bits are kept):

- ``CANDIDATE`` / ``HANDOVER`` / ``SWAP_REQUEST``: the PeerView booleans;
- ``SYNCED``: "the generation I resynced to is the current one you announced to me" —
  the SECOND's ``synced_to``, which the primary decodes as its own current generation
  (the wire has no field for it; a new body version can carry it with replication, #4);
- ``GEN_FORCED``: the current generation was imposed by an admin (``Generation.forced``).
  Older generations are matched against the receiver's own history to recover their
  ``forced`` flag (a generation id names one generation).
"""

from __future__ import annotations

from hamod.core.model import DataHistory, Generation, ModuleState, Params, PeerView, Phase, State
from hamod.proto import Generation as WireGeneration
from hamod.proto import GenId, ModuleAnnouncement, ModuleFlags
from hamod.proto import ModuleState as WireState
from hamod.proto import Phase as WirePhase
from hamod.proto.heartbeat import MAX_HISTORY

CANDIDATE = ModuleFlags.CANDIDATE
HANDOVER = ModuleFlags.HANDOVER
SWAP_REQUEST = ModuleFlags.SWAP_REQUEST
SYNCED = ModuleFlags.SYNCED
GEN_FORCED = ModuleFlags.GEN_FORCED

_PHASE_OUT = {
    Phase.NOT_READY: WirePhase.NOT_READY,
    Phase.TRANSIENT: WirePhase.TRANSIENT,
    Phase.READY: WirePhase.READY,
}
_PHASE_IN = {w: c for c, w in _PHASE_OUT.items()}


def _gen_out(g: Generation) -> GenId:
    return GenId(g.node, g.term, g.seq)


def to_wire(
    module: str,
    mine: PeerView,
    state: ModuleState,
    now: float,
    peer_current: Generation | None,
) -> ModuleAnnouncement:
    """What this node's heartbeats say about ``module``: ``mine`` is the core's
    announcement, ``state`` the module state (lease, degraded, flags), ``peer_current``
    the generation the peer last announced (for ``SYNCED``)."""
    flags = 0
    if not state.failover:
        flags |= ModuleFlags.FAILOVER_OFF
    if not state.checkers:
        flags |= ModuleFlags.CHECKERS_OFF
    if state.resync is not None:
        flags |= ModuleFlags.RESYNCING
    if state.forced:
        flags |= ModuleFlags.PRIMFORCED
    if state.split_brain:
        flags |= ModuleFlags.SPLIT_BRAIN
    if mine.candidate:
        flags |= CANDIDATE
    if mine.handover:
        flags |= HANDOVER
    if mine.swap_request:
        flags |= SWAP_REQUEST
    if mine.synced_to is not None and mine.synced_to == peer_current:
        flags |= SYNCED
    cur = mine.data.current
    if cur is not None and cur.forced:
        flags |= GEN_FORCED
    gen = WireGeneration(
        None if cur is None else _gen_out(cur),
        tuple(_gen_out(g) for g in mine.data.history[:MAX_HISTORY]),
    )
    remaining = max(0, round((state.lease_until - now) * 1000)) if state.lease_until else 0
    return ModuleAnnouncement(
        name=module,
        state=WireState(mine.state.value),
        phase=_PHASE_OUT[mine.phase],
        up_to_date=mine.up_to_date,
        generation=gen,
        term=mine.term,
        lease_remaining_ms=min(remaining, 0xFFFF_FFFF),
        last_prim=mine.node if mine.last_prim else None,
        degraded=state.degraded,
        config_hash=mine.config_hash,
        flags=ModuleFlags(flags),
    )


def _known(own: DataHistory) -> dict[tuple[str, int, int], Generation]:
    gens = ([own.current] if own.current else []) + list(own.history)
    return {(g.node, g.term, g.seq): g for g in gens}


def from_wire(sender: str, ann: ModuleAnnouncement, own: ModuleState, version: int) -> PeerView:
    """The peer's announcement as the core reads it (``own``: this node's state)."""
    known = _known(own.data)
    flags = int(ann.flags)

    def gen(g: GenId, forced: bool) -> Generation:
        return known.get((g.node, g.term, g.seq)) or Generation(g.node, g.term, g.seq, forced)

    cur = ann.generation.current
    data = DataHistory(
        None if cur is None else gen(cur, bool(flags & GEN_FORCED)),
        tuple(gen(g, False) for g in ann.generation.history),
    )
    return PeerView(
        node=sender,
        state=State(ann.state.value),
        phase=_PHASE_IN[ann.phase],
        up_to_date=ann.up_to_date,
        data=data,
        term=ann.term,
        last_prim=ann.last_prim == sender,
        candidate=bool(flags & CANDIDATE),
        handover=bool(flags & HANDOVER),
        swap_request=bool(flags & SWAP_REQUEST),
        synced_to=own.data.current if flags & SYNCED else None,
        config_hash=ann.config_hash,
        protocol_version=version,
    )


def params_hash(params: Params) -> str:
    """The config hash as announced (already truncated by the params)."""
    return params.config_hash
