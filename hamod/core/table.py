"""THE transition table: every transition of a module on a node, one row each.

A row matches when the module is in one of ``src``, the event key is in ``on`` and
every guard holds; the first matching row wins. ``to`` is the new state (None keeps
it); the effects run in order; ``reason`` is the human reason logged. Rows on
``EVALUATE`` are tried after every event that leaves the module settled (no
transition in progress): that is where WAIT decides to pair, lead or wait.
Commands that match no row are refused; other events that match no row are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hamod.core import effects as fx
from hamod.core import guards as g
from hamod.core import peer_guards as pg
from hamod.core import second_effects as sx
from hamod.core.actions import Role
from hamod.core.effects import Effect
from hamod.core.events import On
from hamod.core.guards import Guard
from hamod.core.model import Goal, Intent, State

ALL = frozenset(State)
RUNNING = ALL - {State.STOP}
SERV = frozenset({State.ALONE, State.PRIM, State.UP})
PRIMS = frozenset({State.ALONE, State.PRIM})
WAIT = frozenset({State.WAIT})
STOP = frozenset({State.STOP})
SECOND = frozenset({State.SECOND})
PRIM = frozenset({State.PRIM})
ALONE = frozenset({State.ALONE})


@dataclass(frozen=True)
class Row:
    name: str
    src: frozenset[State]
    on: frozenset[On]
    guards: tuple[Guard, ...]
    to: State | None
    effects: tuple[Effect, ...]
    reason: str


def _r(
    name: str,
    src: frozenset[State],
    on: On | tuple[On, ...],
    guards: tuple[Guard, ...],
    to: State | None,
    effects: tuple[Effect, ...],
    reason: str,
) -> Row:
    keys = frozenset(on if isinstance(on, tuple) else (on,))
    return Row(name, src, keys, guards, to, effects, reason)


SCRIPT_DONE = (On.SCRIPT_OK, On.SCRIPT_FAILED)
MIRROR_EVENTS = (On.PEER, On.PEER_LOST, On.DP_LINK_LOST, On.EVALUATE)

# fmt: off
ROWS: tuple[Row, ...] = (
    # --- maintenance toggles (persist) ---------------------------------------------------
    _r("failover_on", ALL, On.FAILOVER_ON, (), None, (fx.flag("failover", True),), "failover on"),
    _r("failover_off", ALL, On.FAILOVER_OFF, (), None, (fx.flag("failover", False),),
       "failover off"),
    _r("checker_on", ALL, On.CHECKER_ON, (), None, (fx.flag("checkers", True),), "checkers on"),
    _r("checker_off", ALL, On.CHECKER_OFF, (), None, (fx.flag("checkers", False),), "checkers off"),
    _r("errd_on", ALL, On.ERRD_ON, (), None, (fx.flag("errd", True),), "process checker on"),
    _r("errd_off", ALL, On.ERRD_OFF, (), None, (fx.flag("errd", False),), "process checker off"),
    _r("forcestop", RUNNING, On.FORCESTOP, (), State.STOP, (fx.forcestop, fx.stopped),
       "forcestop: everything stopped at once"),
    # --- module start ----------------------------------------------------------------------
    _r("start", STOP, On.START, (g.settled,), State.WAIT, (fx.prestart,),
       "start"),
    _r("start_prim", STOP, On.PRIM, (g.settled, pg.peer_not_primary, g.may_prim), State.WAIT,
       (fx.first_data, fx.intent(Intent.PRIM), fx.prestart), "start as primary (admin prim)"),
    _r("start_second", STOP, On.SECOND, (g.settled,), State.WAIT,
       (fx.intent(Intent.SECOND), fx.prestart), "start as secondary (admin second)"),
    _r("start_primforce", STOP, On.PRIMFORCE, (g.settled, pg.peer_not_primary), State.WAIT,
       (fx.force_up_to_date, fx.intent(Intent.FORCE), fx.prestart),
       "primforce: this copy declared up to date by the admin (recorded)"),
    _r("prestart_ok", WAIT, On.SCRIPT_OK, (g.prestart_done,), None, (fx.settle,), "prestart done"),
    _r("prestart_failed", WAIT, On.SCRIPT_FAILED, (g.prestart_done,), State.STOP,
       (fx.count_auto, fx.stopped), "prestart failed: module stopped"),
    _r("poststop_then_start", STOP, SCRIPT_DONE, (g.poststop_done, g.goal_stopstart), State.WAIT,
       (fx.prestart,), "stopstart: start again"),
    _r("poststop_done", STOP, SCRIPT_DONE, (g.poststop_done,), None, (fx.stopped,),
       "module stopped"),
    # --- admin commands in a running module -------------------------------------------------
    _r("wait_prim", WAIT, On.PRIM, (g.settled, pg.peer_not_primary, g.may_prim), None,
       (fx.first_data, fx.intent(Intent.PRIM)), "admin prim"),
    _r("wait_primforce", WAIT, On.PRIMFORCE, (g.settled, pg.peer_not_primary), None,
       (fx.force_up_to_date, fx.intent(Intent.FORCE)),
       "primforce: this copy declared up to date by the admin (recorded)"),
    _r("wait_second", WAIT, On.SECOND, (g.settled,), None, (fx.intent(Intent.SECOND),),
       "admin second: never primary on its own"),
    _r("resolve_split", PRIMS, On.PRIM, (g.split_brain,), None, (fx.new_generation,),
       "split brain resolved by admin: this node's data kept, the peer gets a full resync"),
    _r("stop_wait", WAIT, On.STOP, (g.settled,), State.STOP, (fx.poststop(Goal.STOP),), "stop"),
    _r("stop_second", SECOND, On.STOP, (g.settled,), State.STOP,
       (sx.leave_second, fx.poststop(Goal.STOP)), "stop"),
    _r("stop_serving", SERV, On.STOP, (g.ready,), None, (fx.stop_app(Goal.STOP),), "stop"),
    _r("restart", SERV, On.RESTART, (g.ready,), None, (fx.stop_app(Goal.RESTART),),
       "restart the app locally"),
    _r("stopstart_serving", SERV, On.STOPSTART, (g.ready,), None, (fx.stop_app(Goal.STOPSTART),),
       "stopstart"),
    _r("stopstart_second", SECOND, On.STOPSTART, (g.settled,), State.STOP,
       (sx.leave_second, fx.poststop(Goal.STOPSTART)), "stopstart"),
    _r("stopstart_wait", WAIT, On.STOPSTART, (g.settled,), State.STOP,
       (fx.poststop(Goal.STOPSTART),), "stopstart"),
    _r("swap_prim", PRIM, On.SWAP, (g.ready, pg.swap_possible), None, (fx.stop_app(Goal.SECOND),),
       "swap: hand the primary role to the peer"),
    _r("swap_second", SECOND, On.SWAP, (pg.second_may_swap,), None, (sx.swap_request,),
       "swap: ask the primary to hand over"),
    _r("fullsync", SECOND, On.FULLSYNC, (g.settled,), None, (sx.full_resync,), "fullsync"),
    # --- scripts of the primary / farm member -----------------------------------------------
    _r("start_app_ok", SERV, On.SCRIPT_OK, (g.start_app_done,), None, (fx.ready,), "app started"),
    _r("start_app_failed_maxloop", SERV, On.SCRIPT_FAILED, (g.start_app_done, g.maxloop_reached),
       None, (fx.count_auto, fx.stop_app(Goal.STOP)), "start script failed: maxloop reached"),
    _r("start_app_failed", SERV, On.SCRIPT_FAILED, (g.start_app_done,), None,
       (fx.count_auto, fx.stop_app(Goal.STOPSTART)), "start script failed: stopstart"),
    _r("stop_app_retry", SERV, On.SCRIPT_FAILED, (g.stop_app_failed_once,), None,
       (fx.stop_app_force,), "stop script failed: again with force"),
    _r("app_stopped_restart", SERV, SCRIPT_DONE, (g.app_stopped, g.goal_restart), None,
       (fx.start_app,), "restart: start the app again"),
    _r("app_stopped_stop", SERV, SCRIPT_DONE, (g.app_stopped, g.goal_stop), State.STOP,
       (fx.unserve(Role.OFF), fx.poststop(Goal.STOP)), "app stopped: module stop"),
    _r("app_stopped_stopstart", SERV, SCRIPT_DONE, (g.app_stopped, g.goal_stopstart), State.STOP,
       (fx.unserve(Role.OFF), fx.yield_next, fx.poststop(Goal.STOPSTART)),
       "app stopped: stopstart"),
    _r("app_stopped_wait", SERV, SCRIPT_DONE, (g.app_stopped, g.goal_wait), State.WAIT,
       (fx.unserve(Role.OFF),), "app stopped: WAIT"),
    _r("app_stopped_second", PRIM, SCRIPT_DONE, (g.app_stopped, g.goal_second), State.SECOND,
       (fx.unserve(Role.SECONDARY), fx.hand_over), "app stopped: SECOND, peer takes over"),
    # --- terms and leases (arbitrator witness) ----------------------------------------------
    _r("lease_granted_alone", WAIT, On.LEASE_GRANTED, (g.lease_for_pending,), State.ALONE,
       (fx.take_term, fx.new_generation, fx.start_primary(Role.PRIMARY_ALONE)),
       "term granted: serve alone"),
    _r("lease_granted_prim", SECOND, On.LEASE_GRANTED, (g.lease_for_pending,), State.PRIM,
       (fx.take_term, fx.start_primary(Role.PRIMARY_MIRRORING)), "term granted: take over"),
    _r("lease_granted_hold", PRIM, On.LEASE_GRANTED, (g.lease_for_pending,), State.ALONE,
       (fx.take_term, fx.new_generation, fx.primary_alone),
       "term granted: go on alone, writes released"),
    _r("lease_force_retry", WAIT, On.LEASE_DENIED, (g.lease_failed, g.forcing), None,
       (fx.retry_forced_lease,), "primforce: ask for the term after the arbitrator's"),
    _r("lease_failed_wait", WAIT, (On.LEASE_DENIED, On.TICK), (g.lease_failed,), None,
       (fx.lease_failed,), "term refused or unanswered: WAIT"),
    _r("lease_failed_second", SECOND, (On.LEASE_DENIED, On.TICK), (g.lease_failed,), None,
       (fx.lease_failed, fx.ready), "term refused or unanswered: stay SECOND"),
    _r("lease_failed_hold", PRIM, (On.LEASE_DENIED, On.TICK), (g.lease_failed,), None,
       (fx.fence, fx.stop_app(Goal.WAIT)), "cannot go on alone: lease refused or unanswered"),
    _r("renew_lease", PRIMS, On.TICK, (g.renewing,), None, (fx.renew_lease,), "renew the lease"),
    _r("lease_renewed", PRIMS, On.LEASE_GRANTED, (g.renewal_granted,), None, (fx.extend_lease,),
       "lease renewed"),
    _r("lease_gone_stopping", PRIMS, (On.LEASE_TIMER, On.LEASE_DENIED),
       (g.lease_gone, g.stopping_app), None, (fx.fence, fx.abandon_restart),
       "lease ending unrenewed: fenced"),
    _r("lease_gone", PRIMS, (On.LEASE_TIMER, On.LEASE_DENIED), (g.lease_gone,), None,
       (fx.fence, fx.stop_app(Goal.WAIT)), "lease ending unrenewed: stop serving"),
    # --- the peer -------------------------------------------------------------------------
    _r("peer_refused", RUNNING, (On.PEER, On.EVALUATE), (pg.peer_incompatible_new,), None,
       (fx.refuse_peer,), "peer refused: incompatible config hash or protocol (see state.refused)"),
    _r("peer_accepted", RUNNING, (On.PEER, On.PEER_LOST, On.EVALUATE), (pg.peer_compatible_again,),
       None, (fx.unrefuse_peer,), "peer compatible again"),
    _r("two_primaries_yield", PRIMS, On.PEER, (g.settled, pg.peer_also_primary_i_yield), None,
       (fx.flag_two_primaries, fx.stop_app(Goal.WAIT)),
       "two primaries (cut without arbitrator): this node yields"),
    _r("two_primaries_stay", PRIMS, On.PEER, (pg.peer_also_primary_i_stay,), None,
       (fx.flag_two_primaries,), "two primaries (cut without arbitrator): this node stays"),
    _r("serving_split_brain", PRIMS, (On.PEER, On.EVALUATE),
       (g.settled, pg.peer_diverged_unflagged), None, (fx.flag_split_brain,),
       "split brain: the peer wrote too while apart; prim here keeps this node's data"),
    _r("prim_swap_requested", PRIM, On.PEER, (g.ready, pg.peer_asks_swap), None,
       (fx.stop_app(Goal.SECOND),), "swap asked by the secondary"),
    _r("failback", PRIM, (On.PEER, On.EVALUATE), (g.ready, pg.failback_due), None,
       (fx.stop_app(Goal.SECOND),), "defaultprim: hand back to the preferred node"),
    _r("prim_lost_peer_lease", PRIM, MIRROR_EVENTS, (g.settled, pg.mirror_broken, g.arbitrated),
       None, (fx.hold_writes, fx.ask_lease(Goal.ALONE)),
       "mirror lost: hold writes, renew the lease alone"),
    _r("prim_lost_peer_and_witness", PRIM, MIRROR_EVENTS,
       (g.settled, pg.mirror_broken, g.witness_lost), None, (fx.stop_app(Goal.WAIT),),
       "peer and witness unreachable: stop serving"),
    _r("prim_lost_peer", PRIM, MIRROR_EVENTS, (g.settled, pg.mirror_broken), State.ALONE,
       (fx.local_term, fx.new_generation, fx.primary_alone), "mirror lost: serve alone"),
    _r("alone_to_prim", ALONE, (On.PEER, On.EVALUATE), (g.ready, pg.peer_resynced), State.PRIM,
       (fx.mirroring,), "peer is SECOND and in sync: mirroring"),
    _r("alone_witness_lost", ALONE, (On.WITNESS, On.PEER_LOST, On.EVALUATE),
       (g.settled, g.witness_lost), None, (fx.stop_app(Goal.WAIT),),
       "isolated: no peer and no witness, stop serving"),
    _r("second_in_sync", SECOND, On.DP_MIRROR_UP, (pg.mirror_confirms,), None, (sx.in_sync,),
       "in sync with the primary"),
    # also on TICK: a refusal (the old primary's release not at the arbitrator yet) is
    # asked again at the next pulse while the peer still hands over
    _r("second_takeover_lease", SECOND, (On.PEER, On.TICK), (pg.peer_hands_over, g.arbitrated),
       None, (fx.ask_lease(Goal.PRIM),), "peer handed over: ask for the next term"),
    _r("second_takeover", SECOND, On.PEER, (pg.peer_hands_over,), State.PRIM,
       (fx.local_term, fx.start_primary(Role.PRIMARY_MIRRORING)), "peer handed over: take over"),
    _r("second_resync_again", SECOND, On.PEER, (pg.peer_alone_diverging,), None, (sx.resync_again,),
       "the primary went on alone: resync"),
    _r("second_peer_gone", SECOND, (On.PEER, On.PEER_LOST), (g.settled, pg.peer_gone), State.WAIT,
       (sx.leave_second,), "primary gone: WAIT"),
    _r("resync_progress", SECOND, On.RESYNC_PROGRESS, (g.resync_progress,), None, (sx.progress,),
       "resync progress"),
    _r("resync_done", SECOND, On.RESYNC_DONE, (g.resync_done,), None, (sx.synced,), "resync done"),
    _r("resync_failed", SECOND, On.RESYNC_FAILED, (g.resync_progress,), State.WAIT,
       (sx.leave_second, sx.backoff), "resync failed: WAIT, retry"),
    # --- WAIT decides (after every settling event) ----------------------------------------
    _r("wait_farm_up", WAIT, On.EVALUATE, (g.settled, g.farm, pg.no_wait_reason), State.UP,
       (fx.start_farm,), "farm member: UP"),
    _r("wait_pair", WAIT, On.EVALUATE, (g.settled, g.mirror, pg.no_wait_reason, pg.may_pair),
       State.SECOND, (sx.become_second,), "peer is primary: SECOND, resync"),
    _r("wait_split_brain", WAIT, On.EVALUATE, (g.settled, g.mirror, pg.new_split_brain), None,
       (fx.flag_split_brain,), "split brain: both wrote while apart; prim on the node to keep"),
    _r("wait_lead_lease", WAIT, On.EVALUATE, (g.settled, g.mirror, pg.should_lead, g.arbitrated),
       None, (fx.ask_lease(Goal.ALONE),), "may serve: ask the arbitrator for the next term"),
    _r("wait_lead", WAIT, On.EVALUATE, (g.settled, g.mirror, pg.should_lead), State.ALONE,
       (fx.local_term, fx.new_generation, fx.start_primary(Role.PRIMARY_ALONE)),
       "up to date and elected: serve alone"),
    # --- checkers --------------------------------------------------------------------------
    _r("checker_clear_wait", WAIT, On.CHECKER, (g.checker_up_for_wait,), None, (fx.checker_back,),
       "checked resource up again"),
    _r("checker_maxloop", SERV, On.CHECKER, (g.checker_counted, g.maxloop_reached), None,
       (fx.count_auto, fx.stop_app(Goal.STOP)), "maxloop reached: module stopped"),
    _r("checker_maxloop_second", SECOND, On.CHECKER, (g.checker_counted, g.maxloop_reached),
       State.STOP, (fx.count_auto, sx.leave_second, fx.poststop(Goal.STOP)),
       "maxloop reached: module stopped"),
    _r("checker_restart", SERV, On.CHECKER, (g.checker_restart,), None,
       (fx.count_auto, fx.stop_app(Goal.RESTART)), "checker: restart the app"),
    _r("checker_stopstart", SERV, On.CHECKER, (g.checker_stopstart,), None,
       (fx.count_auto, fx.stop_app(Goal.STOPSTART)), "checker: stopstart"),
    _r("checker_stopstart_second", SECOND, On.CHECKER, (g.checker_stopstart,), State.STOP,
       (fx.count_auto, sx.leave_second, fx.poststop(Goal.STOPSTART)), "checker: stopstart"),
    _r("checker_stop", SERV, On.CHECKER, (g.checker_stop,), None, (fx.stop_app(Goal.STOP),),
       "checker: stop"),
    _r("checker_stop_second", SECOND, On.CHECKER, (g.checker_stop,), State.STOP,
       (sx.leave_second, fx.poststop(Goal.STOP)), "checker: stop"),
    _r("checker_wait", SERV, On.CHECKER, (g.checker_wait,), None,
       (fx.count_auto, fx.wait_for_checker, fx.stop_app(Goal.WAIT)), "checker: wait"),
    _r("checker_wait_second", SECOND, On.CHECKER, (g.checker_wait,), State.WAIT,
       (fx.count_auto, fx.wait_for_checker, sx.leave_second), "checker: wait"),
    _r("checker_swap", PRIM, On.CHECKER, (pg.checker_swap,), None, (fx.stop_app(Goal.SECOND),),
       "checker: swap"),
    # --- data path ---------------------------------------------------------------------------
    _r("dp_failed_maxloop", PRIMS, On.DP_FAILED, (g.ready, g.maxloop_reached), None,
       (fx.count_auto, fx.stop_app(Goal.STOP)), "data path failed: maxloop reached"),
    _r("dp_failed", PRIMS, On.DP_FAILED, (g.ready,), None,
       (fx.count_auto, fx.stop_app(Goal.STOPSTART)), "data path failed: stopstart (failover)"),
    _r("dp_failed_second", SECOND, On.DP_FAILED, (), State.WAIT, (sx.leave_second, sx.backoff),
       "data path failed: WAIT"),
    # --- heartbeat networks --------------------------------------------------------------------
    _r("net_degraded", RUNNING, On.NET_SILENT, (g.degraded_new,), None,
       (fx.flag("degraded", True),), "one heartbeat network silent: degraded, no failover"),
    _r("net_restored", RUNNING, On.NET_BACK, (g.network_all_back,), None,
       (fx.flag("degraded", False),), "all heartbeat networks back"),
)
# fmt: on


@dataclass(frozen=True)
class Table:
    """The rows plus an index by (state, event key), in table order."""

    rows: tuple[Row, ...]
    index: dict[tuple[State, On], tuple[Row, ...]] = field(
        init=False, repr=False, compare=False, hash=False
    )

    def __post_init__(self) -> None:
        idx: dict[tuple[State, On], list[Row]] = {}
        for row in self.rows:
            for st in row.src:
                for key in row.on:
                    idx.setdefault((st, key), []).append(row)
        object.__setattr__(self, "index", {k: tuple(v) for k, v in idx.items()})

    def candidates(self, state: State, key: On) -> tuple[Row, ...]:
        return self.index.get((state, key), ())

    def row(self, name: str) -> Row:
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(name)


TABLE = Table(ROWS)
