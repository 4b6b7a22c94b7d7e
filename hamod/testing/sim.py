"""Deterministic cluster simulator: two (or three, farm) cores and the pure arbitrator
over a fake network and a fake clock.

Everything happens in one event queue ordered by (time, sequence): heartbeats every
pulse on every network, peer-lost detection after ``timeout`` of silence, lease
requests and replies with network delay, scripts and resyncs that take time, client
writes, faults (partition, drop, crash/restart with durable state kept, arbitrator
restart) and admin commands. The simulator plays the runtime: it executes every action
the cores return, tracks each node's data (a set of write ids) and checks the
invariants (``hamod.testing.sim_invariants``) after every event. Same seed, same run.
"""

from __future__ import annotations

import heapq
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from hamod.core import arbiter as arb
from hamod.core.actions import (
    Action,
    Role,
)
from hamod.core.events import (
    Command,
    Event,
    LinkLost,
    NetworkBack,
    NetworkSilent,
    On,
    PeerAnnounced,
    PeerLost,
    Tick,
    WitnessVerdict,
)
from hamod.core.machine import Decision, step
from hamod.core.model import (
    Durable,
    Mode,
    ModuleState,
    Params,
    PeerView,
    Script,
    View,
    Witness,
    announcement,
    initial,
    restore,
)
from hamod.core.table import TABLE, Table
from hamod.testing import sim_actions

ARB = "arbitrator"
ROUTER = "router"


@dataclass(frozen=True)
class SimConfig:
    witness: Witness = Witness.ARBITRATOR
    nodes: tuple[str, ...] = ("a", "b")
    mode: Mode = Mode.MIRROR
    networks: tuple[str, ...] = ("lan",)
    pulse: float = 1.0
    timeout: float = 3.0
    lease: float = 2.0
    lease_margin: float = 0.2
    delay: float = 0.01
    script_time: float = 0.2
    resync_time: float = 1.0
    write_every: float = 0.5
    failover: bool = True
    defaultprim: str = "alone"
    maxloop: int = 3
    loop_interval: float = 3600.0
    drop: float = 0.0  # probability a heartbeat is lost
    config_hash: str = "h1"


@dataclass
class Node:
    name: str
    params: Params
    state: ModuleState
    durable: Durable
    alive: bool = True
    epoch: int = 0
    vip: bool = False
    role: Role = Role.OFF
    data: set[int] = field(default_factory=set)
    aside: set[int] = field(default_factory=set)
    last_seen: dict[str, float] = field(default_factory=dict)
    silent: set[str] = field(default_factory=set)
    peer: PeerView | None = None
    script_token: int = 0
    resync_token: int = 0
    link_lost_sent: bool = False
    fail_next: dict[Script, int] = field(default_factory=dict)
    history: list[tuple[float, str, str]] = field(default_factory=list)


class Sim:
    """One simulated cluster. ``run_until(t)`` advances the clock."""

    def __init__(self, cfg: SimConfig, seed: int = 0, table: Table = TABLE, trace: bool = False):
        from hamod.testing.sim_invariants import Checker

        self.cfg = cfg
        self.rng = random.Random(seed)
        self.table = table
        self.trace = trace
        self.now = 0.0
        self._q: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = 0
        self.nodes: dict[str, Node] = {}
        for name in cfg.nodes:
            others = [n for n in cfg.nodes if n != name]
            p = Params(
                node=name,
                peer=others[0] if cfg.mode is Mode.MIRROR else "",
                mode=cfg.mode,
                replicated=cfg.mode is Mode.MIRROR,
                failover=cfg.failover,
                defaultprim=cfg.defaultprim,
                maxloop=cfg.maxloop,
                loop_interval=cfg.loop_interval,
                pulse=cfg.pulse,
                timeout=cfg.timeout,
                lease=cfg.lease,
                lease_margin=cfg.lease_margin,
                witness=cfg.witness,
                config_hash=cfg.config_hash,
            )
            st = initial(p)
            self.nodes[name] = Node(name, p, st, st.durable())
        self.down: set[tuple[str, str, str]] = set()  # (x, y, net) links cut, x < y
        self.arb_state = arb.ArbiterState()
        self.arb_alive = True
        self.router_alive = True
        self.drop = cfg.drop
        self.acked: set[int] = set()
        self.write_id = 0
        self.forced = False  # an admin forced a stale node: acked writes may be lost
        self.rows: Counter[str] = Counter()
        self.log: list[str] = []
        self.checker = Checker(self)
        for n in self.nodes.values():
            self._schedule(0.0, self._pulse_fn(n.name, n.epoch))
        if cfg.mode is Mode.MIRROR:
            self._schedule(cfg.write_every, self._write)

    # --- queue -------------------------------------------------------------------------
    def _schedule(self, t: float, fn: Callable[[], None]) -> None:
        self._seq += 1
        heapq.heappush(self._q, (t, self._seq, fn))

    def at(self, t: float, fn: Callable[[], object]) -> None:
        """Run ``fn`` at time ``t`` (scenarios and explorers schedule faults with it)."""

        def call() -> None:
            fn()

        self._schedule(t, call)

    def run_until(self, t: float) -> None:
        while self._q and self._q[0][0] <= t:
            when, _, fn = heapq.heappop(self._q)
            self.now = when
            fn()
            self.checker.after_event()
        self.now = t

    # --- links ---------------------------------------------------------------------------
    @staticmethod
    def _key(x: str, y: str, net: str) -> tuple[str, str, str]:
        return (x, y, net) if x < y else (y, x, net)

    def link_up(self, x: str, y: str, net: str = "") -> bool:
        return self._key(x, y, net) not in self.down

    def cut(self, x: str, y: str, net: str = "") -> None:
        self.down.add(self._key(x, y, net))

    def heal(self, x: str, y: str, net: str = "") -> None:
        self.down.discard(self._key(x, y, net))

    def cut_peers(self, a: str, b: str) -> None:
        for net in self.cfg.networks:
            self.cut(a, b, net)

    def heal_peers(self, a: str, b: str) -> None:
        for net in self.cfg.networks:
            self.heal(a, b, net)

    def heal_all(self) -> None:
        self.down.clear()

    def reaches_arb(self, n: str) -> bool:
        return self.arb_alive and self.link_up(n, ARB)

    def witness_ok(self, n: str) -> bool:
        return self.router_alive and self.link_up(n, ROUTER)

    def replication_up(self, x: str, y: str) -> bool:
        return self.link_up(x, y, self.cfg.networks[0])

    # --- feeding the cores ---------------------------------------------------------------
    def view(self, n: Node) -> View:
        nets = frozenset(self.cfg.networks)
        return View(
            n.params,
            n.peer,
            self.witness_ok(n.name),
            nets - frozenset(n.silent),
            nets,
        )

    def feed(self, name: str, ev: Event) -> Decision | None:
        n = self.nodes[name]
        if not n.alive:
            return None
        before = n.state
        d = step(before, self.view(n), ev, self.now, self.table)
        n.state = d.state
        self.rows.update(d.rows)
        if self.trace and (d.rows or d.refused):
            self.log.append(
                f"{self.now:8.3f} {name} {ev.key.value}: {before.state.value}->"
                f"{d.state.state.value}/{d.state.phase.value} [{','.join(d.rows)}] {d.reason}"
                f" {list(d.tags)}"
            )
        self.checker.after_step(n, before, d, ev)
        for a in d.actions:
            self._execute(n, a)
        return d

    def command(self, name: str, cmd: On) -> Decision | None:
        if cmd in (On.PRIMFORCE,):
            self.forced = True
        return self.feed(name, Command(cmd))

    # --- heartbeats ----------------------------------------------------------------------
    def _pulse_fn(self, name: str, epoch: int) -> Callable[[], None]:
        def fn() -> None:
            n = self.nodes[name]
            if not n.alive or n.epoch != epoch:
                return
            self._send_announcement(n)
            self._check_silence(n)
            self.feed(name, Tick())
            self._schedule(self.now + self.cfg.pulse, fn)

        return fn

    def _send_announcement(self, n: Node) -> None:
        if n.params.mode is not Mode.MIRROR:
            return
        msg = announcement(n.params, n.state, self.now)
        peer = n.params.peer
        for net in self.cfg.networks:
            if not self.link_up(n.name, peer, net):
                continue
            if self.drop and self.rng.random() < self.drop:
                continue
            self._schedule(self.now + self.cfg.delay, self._deliver_fn(peer, net, msg))

    def _deliver_fn(self, dst: str, net: str, msg: PeerView) -> Callable[[], None]:
        def fn() -> None:
            n = self.nodes[dst]
            if not n.alive:
                return
            n.last_seen[net] = self.now
            came_back = net in n.silent
            n.silent.discard(net)
            if n.peer is None or msg != n.peer:
                n.peer = msg
                self.feed(dst, PeerAnnounced())
            if came_back and n.alive:
                self.feed(dst, NetworkBack(net))

        return fn

    def _check_silence(self, n: Node) -> None:
        if n.params.mode is not Mode.MIRROR:
            return
        for net in self.cfg.networks:
            seen = n.last_seen.get(net, 0.0)
            if net not in n.silent and self.now - seen >= self.cfg.timeout:
                n.silent.add(net)
                if len(n.silent) == len(self.cfg.networks):
                    if n.peer is not None:
                        n.peer = None
                        self.feed(n.name, PeerLost())
                else:
                    self.feed(n.name, NetworkSilent(net))

    # --- actions -------------------------------------------------------------------------
    def _execute(self, n: Node, a: Action) -> None:
        sim_actions.execute(self, n, a)

    def _fire(self, name: str, epoch: int, ev: Event) -> None:
        n = self.nodes[name]
        if n.alive and n.epoch == epoch:
            self.feed(name, ev)

    def _link_lost(self, n: Node) -> None:
        if n.link_lost_sent:
            return
        n.link_lost_sent = True
        epoch = n.epoch
        self._schedule(self.now + self.cfg.delay, lambda: self._fire(n.name, epoch, LinkLost()))

    # --- faults ---------------------------------------------------------------------------
    def crash(self, name: str) -> None:
        """Power off: volatile state, VIP and app gone; data and durable record kept."""
        n = self.nodes[name]
        if not n.alive:
            return
        n.alive = False
        n.epoch += 1
        n.vip = False
        n.role = Role.OFF

    def boot(self, name: str, start: bool = True) -> None:
        """Power on: the module is restored from its durable record (STOP), then started."""
        n = self.nodes[name]
        if n.alive:
            return
        n.alive = True
        n.epoch += 1
        n.state = restore(n.params, n.durable)
        n.peer = None
        n.silent = set(self.cfg.networks)
        n.last_seen = {}
        self._schedule(self.now, self._pulse_fn(name, n.epoch))
        if start:
            self.command(name, On.START)

    def restart_arbitrator(self, down_for: float) -> None:
        self.arb_alive = False

        def up() -> None:
            self.arb_alive = True
            self.arb_state = arb.restarted(self.arb_state, self.now)

        self._schedule(self.now + down_for, up)

    def witness(self, name: str, ok: bool) -> None:
        if ok:
            self.heal(name, ROUTER)
        else:
            self.cut(name, ROUTER)
        self.feed(name, WitnessVerdict(ok))

    def fail_script(self, name: str, script: Script, times: int = 1) -> None:
        n = self.nodes[name]
        n.fail_next[script] = n.fail_next.get(script, 0) + times

    # --- client writes --------------------------------------------------------------------
    def serving(self) -> list[Node]:
        from hamod.core.actions import ACCEPTING

        return [n for n in self.nodes.values() if n.alive and n.vip and n.role in ACCEPTING]

    def _write(self) -> None:
        for n in self.serving():
            self.write_id += 1
            w = self.write_id
            self.checker.before_ack(n)
            if n.role is Role.PRIMARY_ALONE:
                n.data.add(w)
                self.acked.add(w)
                continue
            p = self.nodes[n.params.peer]
            if p.alive and p.role is Role.SECONDARY and self.replication_up(n.name, p.name):
                n.data.add(w)
                p.data.add(w)
                self.acked.add(w)
            else:
                self._link_lost(n)
        self._schedule(self.now + self.cfg.write_every, self._write)

    def states(self) -> dict[str, str]:
        return {
            k: f"{v.state.state.value}/{v.state.phase.value}" if v.alive else "DOWN"
            for k, v in self.nodes.items()
        }

    def state_of(self, name: str) -> ModuleState:
        return self.nodes[name].state


def params_for(cfg: SimConfig, name: str) -> Params:
    return replace(Sim(cfg).nodes[name].params)
