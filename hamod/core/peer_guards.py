"""Guards about the peer: compatibility, what it serves, pairing, elections, swaps
and split brains. Same contract as :mod:`hamod.core.guards`."""

from __future__ import annotations

from hamod.core.election import elect
from hamod.core.events import CheckAction, MirrorUp, On
from hamod.core.guards import Ctx, checker_down, peer_newer, ready, up_to_date
from hamod.core.model import (
    PRIMARY,
    Compare,
    Intent,
    Phase,
    State,
    Witness,
    announcement,
    compare,
)

# --- the peer ------------------------------------------------------------------------


def peer_absent(c: Ctx) -> bool:
    return c.peer is None


def compatible(c: Ctx) -> bool:
    """Same configuration hash, protocol versions at most one apart."""
    pv = c.peer
    return (
        pv is not None
        and pv.config_hash == c.p.config_hash
        and abs(pv.protocol_version - c.p.protocol_version) <= 1
    )


def refusal(c: Ctx) -> str:
    pv = c.peer
    if pv is None or compatible(c):
        return ""
    if pv.config_hash != c.p.config_hash:
        return f"peer {pv.node} has config hash {pv.config_hash}, this node {c.p.config_hash}"
    return (
        f"peer {pv.node} speaks protocol {pv.protocol_version}, "
        f"this node {c.p.protocol_version} (more than one apart)"
    )


def peer_incompatible_new(c: Ctx) -> bool:
    return c.peer is not None and not compatible(c) and c.s.refused != refusal(c)


def peer_compatible_again(c: Ctx) -> bool:
    return c.s.refused != "" and (c.peer is None or compatible(c))


def peer_serving(c: Ctx) -> bool:
    return c.peer is not None and c.peer.state in PRIMARY


def peer_not_serving(c: Ctx) -> bool:
    return c.peer is not None and c.peer.state not in PRIMARY


def peer_second_ready(c: Ctx) -> bool:
    pv = c.peer
    return pv is not None and compatible(c) and pv.state is State.SECOND and pv.phase is Phase.READY


def peer_resynced(c: Ctx) -> bool:
    """The SECOND finished its resync and waits for this primary to mirror (barrier)."""
    pv = c.peer
    return (
        peer_second_ready(c)
        and pv is not None
        and not pv.up_to_date
        and pv.synced_to is not None
        and pv.synced_to == c.s.data.current
    )


def peer_in_sync(c: Ctx) -> bool:
    """The SECOND peer confirmed it is up to date with this primary."""
    return (
        peer_second_ready(c)
        and c.peer is not None
        and c.peer.up_to_date
        and compare(c.s.data, c.peer.data) is Compare.SAME
    )


def mirror_broken(c: Ctx) -> bool:
    pv = c.peer
    return c.e.key is On.DP_LINK_LOST or pv is None or pv.state is not State.SECOND


def mirror_confirms(c: Ctx) -> bool:
    """As SECOND, the barrier of the primary arrived on the generation this node resynced
    to (or, already up to date, on the same data: a takeover by the peer, which ends
    this node's hand-over)."""
    e = c.e
    if not isinstance(e, MirrorUp) or c.s.resync is not None:
        return False
    if c.s.phase is not Phase.READY and not c.s.handover:
        return False
    if c.s.up_to_date:
        return compare(c.s.data, e.data) is Compare.SAME
    return c.s.synced_to is not None and c.s.synced_to == e.data.current


def peer_alone_diverging(c: Ctx) -> bool:
    """As SECOND, the primary went on alone (or on a new generation since my resync):
    my copy falls behind."""
    pv = c.peer
    return (
        pv is not None
        and pv.state in PRIMARY
        and c.s.resync is None
        and (
            (c.s.up_to_date and pv.state is State.ALONE)
            or (
                not c.s.up_to_date and c.s.phase is Phase.READY and c.s.synced_to != pv.data.current
            )
        )
    )


def peer_hands_over(c: Ctx) -> bool:
    pv = c.peer
    return (
        pv is not None
        and pv.state is State.SECOND
        and pv.handover
        and ready(c)
        and c.s.up_to_date
        and compare(c.s.data, pv.data) is Compare.SAME
    )


def peer_asks_swap(c: Ctx) -> bool:
    return peer_in_sync(c) and c.peer is not None and c.peer.swap_request


def failback_due(c: Ctx) -> bool:
    return (
        c.peer is not None
        and c.p.defaultprim == c.peer.node
        and c.p.defaultprim != c.p.node
        and peer_in_sync(c)
    )


def swap_possible(c: Ctx) -> bool:
    """The peer is in sync and done with its own hand-over (a swap asked while its
    ``handover`` flag still stands would make each side take the other's flag for a new
    hand-over: both SECOND, the term asked for back and forth)."""
    return peer_in_sync(c) and c.peer is not None and not c.peer.handover


def second_may_swap(c: Ctx) -> bool:
    return (
        c.peer is not None
        and c.peer.state is State.PRIM
        and ready(c)
        and c.s.up_to_date
        and not c.s.swap_request
        and not c.s.handover
    )


def _tiebreak(c: Ctx) -> bool:
    """Both serve (ping split or no witness): the one that keeps serving."""
    pv = c.peer
    assert pv is not None
    if c.s.term != pv.term:
        return c.s.term > pv.term
    if c.p.defaultprim in (c.p.node, pv.node):
        return c.p.defaultprim == c.p.node
    return c.p.node < pv.node


def peer_also_primary_i_yield(c: Ctx) -> bool:
    return peer_serving(c) and compatible(c) and not _tiebreak(c)


def peer_also_primary_i_stay(c: Ctx) -> bool:
    return peer_serving(c) and compatible(c) and _tiebreak(c) and not c.s.two_primaries


def data_diverged(c: Ctx) -> bool:
    """My data and the serving peer's cannot be reconciled by a plain resync."""
    pv = c.peer
    if pv is None or c.s.data.current is None:
        return False
    rel = compare(c.s.data, pv.data)
    if rel in (Compare.SAME, Compare.BEHIND):
        return False
    forced = pv.data.current is not None and pv.data.current.forced
    return not forced


def peer_diverged_unflagged(c: Ctx) -> bool:
    """Serving, I hear a (non-serving) peer whose data diverged from mine — both wrote
    while apart — and I have not flagged it yet. Not after I imposed my copy (a forced
    current generation: the resolution is under way)."""
    pv = c.peer
    mine = c.s.data.current
    return (
        pv is not None
        and compatible(c)
        and not c.s.split_brain
        and pv.state is not State.STOP
        and mine is not None
        and not mine.forced
        and compare(c.s.data, pv.data) is Compare.DIVERGED
    )


def may_pair(c: Ctx) -> bool:
    """WAIT → SECOND: the peer serves, is compatible, and my data can follow it. Only a
    failed resync or data path delays a new pairing (``backoff_until``); a refused term
    does not (``term_backoff_until`` holds back term requests only): a node refused at
    boot pairs as soon as it hears its serving peer. The peer must be Ready: a primary
    in transition (starting after a swap, or stopping) may still change its role, and
    its data path mirrors only a SECOND that is there when it starts mirroring."""
    return (
        peer_serving(c)
        and c.peer is not None
        and c.peer.phase is Phase.READY
        and compatible(c)
        and not data_diverged(c)
        and c.s.intent not in (Intent.PRIM, Intent.FORCE)
        and c.now >= c.s.backoff_until
    )


def new_split_brain(c: Ctx) -> bool:
    return peer_serving(c) and compatible(c) and data_diverged(c) and not c.s.split_brain


def no_wait_reason(c: Ctx) -> bool:
    return not c.s.wait_reasons


def should_lead(c: Ctx) -> bool:
    """WAIT → primary on this node's own decision (or an admin's ``prim``)."""
    s, pv = c.s, c.peer
    admin = s.intent in (Intent.PRIM, Intent.FORCE)
    if s.intent is Intent.SECOND or not up_to_date(c) or s.wait_reasons:
        return False
    if s.split_brain and not admin:
        return False
    if pv is None:
        if c.p.witness is Witness.PING and not c.v.witness_ok:
            return False
        return admin or (s.failover and c.now >= s.backoff_until and c.now >= s.term_backoff_until)
    if pv.state in PRIMARY:
        return False
    if admin and s.intent is not Intent.FORCE and peer_newer(c):
        return False
    if not compatible(c):
        return admin  # a refused peer is not part of the cluster; only an admin decides
    if admin:
        return (s.intent is Intent.FORCE or not peer_newer(c)) and not pv.handover
    me = announcement(c.p, s, c.now)
    return elect(c.p.defaultprim, me, pv) == c.p.node


def peer_not_primary(c: Ctx) -> bool:
    return not peer_serving(c)


def peer_gone(c: Ctx) -> bool:
    """As SECOND: the peer is lost or no longer primary — except right after I handed
    the primary role over (swap, failback): the peer is then still SECOND while it asks
    for its term, and racing it for that term would undo the swap."""
    pv = c.peer
    if pv is None:
        return True
    if c.s.handover and pv.state is State.SECOND:
        return False
    return pv.state not in PRIMARY


def checker_swap(c: Ctx) -> bool:
    return checker_down(c, CheckAction.SWAP) and swap_possible(c)
