"""The simulator's runtime side: how a node executes the actions its core returns
(durable record, announcements, VIP, data path with the barrier, scripts that take
time, resyncs, lease requests to the arbitrator, lease timers)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hamod.core import arbiter as arb
from hamod.core.actions import (
    Action,
    Announce,
    ArmLeaseTimer,
    EnsureDataPath,
    EnsureVip,
    RecordDurable,
    ReleaseLease,
    RequestLease,
    Role,
    RunScript,
    StartResync,
    StopResync,
)
from hamod.core.events import (
    LeaseDenied,
    LeaseGranted,
    LeaseTimer,
    MirrorUp,
    ResyncDone,
    ResyncFailed,
    ResyncProgress,
    ScriptFailed,
    ScriptOk,
)
from hamod.core.model import Script

if TYPE_CHECKING:
    from hamod.testing.sim import Node, Sim

ARB = "arbitrator"


def execute(sim: Sim, n: Node, a: Action) -> None:
    if not n.alive:
        return
    if isinstance(a, RecordDurable):
        n.durable = a.durable
    elif isinstance(a, Announce):
        sim._send_announcement(n)
    elif isinstance(a, EnsureVip):
        n.vip = a.present
    elif isinstance(a, EnsureDataPath):
        ensure_role(sim, n, a.role)
    elif isinstance(a, RunScript):
        if a.awaited:
            run_script(sim, n, a.script)
    elif isinstance(a, StartResync):
        start_resync(sim, n, a)
    elif isinstance(a, StopResync):
        n.resync_token += 1
    elif isinstance(a, RequestLease):
        lease_request(sim, n, a.term)
    elif isinstance(a, ReleaseLease):
        lease_release(sim, n, a.term)
    elif isinstance(a, ArmLeaseTimer):
        epoch = n.epoch
        sim._schedule(max(a.at, sim.now), lambda: sim._fire(n.name, epoch, LeaseTimer()))


def ensure_role(sim: Sim, n: Node, role: Role) -> None:
    n.role = role
    n.link_lost_sent = False
    if role is Role.PRIMARY_MIRRORING:
        p = sim.nodes[n.params.peer]
        if p.alive and p.role is Role.SECONDARY and sim.replication_up(n.name, p.name):
            sim.checker.barrier(n, p)
            p.data |= n.data  # the barrier: regions written alone reach the secondary
            up = MirrorUp(n.state.data, n.state.term)
            epoch = p.epoch

            def confirm() -> None:
                if sim.replication_up(n.name, p.name):
                    sim._fire(p.name, epoch, up)

            sim._schedule(sim.now + sim.cfg.delay, confirm)
        else:
            sim._link_lost(n)


def run_script(sim: Sim, n: Node, script: Script) -> None:
    n.script_token += 1
    token, epoch = n.script_token, n.epoch
    fails = n.fail_next.get(script, 0)
    if fails:
        n.fail_next[script] = fails - 1

    def done() -> None:
        if n.alive and n.epoch == epoch and n.script_token == token:
            sim.feed(n.name, ScriptFailed(script) if fails else ScriptOk(script))

    sim._schedule(sim.now + sim.cfg.script_time, done)


def start_resync(sim: Sim, n: Node, a: StartResync) -> None:
    n.resync_token += 1
    token, epoch = n.resync_token, n.epoch

    def alive() -> bool:
        return n.alive and n.epoch == epoch and n.resync_token == token

    def half() -> None:
        if alive():
            sim.feed(n.name, ResyncProgress(0.5))

    def done() -> None:
        if not alive():
            return
        src = sim.nodes[a.source]
        if src.alive and src.role is not Role.OFF and sim.replication_up(n.name, src.name):
            sim.checker.resync(n, src, a)
            n.aside |= n.data - src.data if a.keep_aside else set()
            n.data = set(src.data)
            sim.feed(n.name, ResyncDone())
        else:
            sim.feed(n.name, ResyncFailed("source unreachable"))

    sim._schedule(sim.now + sim.cfg.resync_time / 2, half)
    sim._schedule(sim.now + sim.cfg.resync_time, done)


def lease_request(sim: Sim, n: Node, term: int) -> None:
    if not sim.reaches_arb(n.name):
        return
    sent, epoch = sim.now, n.epoch
    req = arb.LeaseRequest("c", "m", n.name, term, n.params.lease)

    def at_arb() -> None:
        if not sim.reaches_arb(n.name):
            return
        sim.arb_state, rep = arb.request(sim.arb_state, req, sim.now)

        def back() -> None:
            if not sim.link_up(n.name, ARB):
                return
            if rep.granted:
                sim._fire(n.name, epoch, LeaseGranted(term, sent))
            else:
                sim._fire(n.name, epoch, LeaseDenied(term, rep.term, rep.holder))

        sim._schedule(sim.now + sim.cfg.delay, back)

    sim._schedule(sim.now + sim.cfg.delay, at_arb)


def lease_release(sim: Sim, n: Node, term: int) -> None:
    if not sim.reaches_arb(n.name):
        return

    def at_arb() -> None:
        if sim.reaches_arb(n.name):
            sim.arb_state = arb.release(sim.arb_state, "c", "m", n.name, term, sim.now)

    sim._schedule(sim.now + sim.cfg.delay, at_arb)
