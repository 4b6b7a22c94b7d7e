"""The invariants the simulator checks after every step and every event.

- One server: with the arbitrator witness, never two nodes serving at once (VIP present
  and data path acknowledging writes), and a serving node always holds a live lease at
  the arbitrator.
- Up to date: a node enters ALONE/PRIM on its own only if it is up to date (an admin's
  ``prim``/``primforce`` is the exception); with the arbitrator, a node acknowledging
  writes holds every write acknowledged before (RPO = 0), unless an admin forced a stale
  node.
- Nothing silently discarded or merged: a resync that would overwrite writes only the
  target has must keep them aside; a barrier must never find writes only the secondary
  has; a SECOND in sync mirrors exactly its primary's data.
- Actuators: a settled module's VIP and data path role match its state.
- maxloop: once more than ``maxloop`` automatic actions fall within ``loop_interval``,
  the module is stopping or stopped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hamod.core.actions import ACCEPTING, Role, StartResync
from hamod.core.events import Command, Event, On
from hamod.core.machine import Decision
from hamod.core.model import PRIMARY, Goal, Intent, ModuleState, Phase, State, Witness

if TYPE_CHECKING:
    from hamod.testing.sim import Node, Sim


class InvariantViolation(AssertionError):
    pass


class Checker:
    def __init__(self, sim: Sim) -> None:
        self.sim = sim
        self.arbitrated = sim.cfg.witness is Witness.ARBITRATOR

    def fail(self, what: str) -> None:
        tail = "\n".join(self.sim.log[-40:])
        raise InvariantViolation(f"t={self.sim.now:.3f}: {what}\n{self.sim.states()}\n{tail}")

    def after_step(self, n: Node, before: ModuleState, d: Decision, ev: Event) -> None:
        s = d.state
        if s.state in PRIMARY and before.state not in PRIMARY:
            admin = before.intent in (Intent.PRIM, Intent.FORCE) or (
                isinstance(ev, Command) and ev.cmd in (On.PRIM, On.PRIMFORCE)
            )
            if not (before.up_to_date or admin or not n.params.replicated):
                self.fail(f"{n.name} became {s.state.value} while not up to date ({d.rows})")
        p = n.params
        if p.loop_interval > 0:
            recent = [t for t in s.auto_actions if self.sim.now - t < p.loop_interval]
            if len(recent) > p.maxloop:
                stopping = s.state is State.STOP or (
                    s.pending is not None and s.pending.goal is Goal.STOP
                )
                if not stopping:
                    self.fail(f"{n.name}: {len(recent)} automatic actions, not stopping")

    def after_event(self) -> None:
        sim = self.sim
        serving = sim.serving()
        if self.arbitrated:
            if len(serving) > 1:
                self.fail(f"two nodes serving: {[n.name for n in serving]}")
            for n in serving:
                rec = sim.arb_state.get("c", "m")
                ok = (
                    rec is not None
                    and rec.holder == n.name
                    and rec.term == n.state.term
                    and sim.now < rec.expires
                    and not rec.released
                )
                if not ok:
                    self.fail(f"{n.name} serves without a live lease ({rec})")
        for n in sim.nodes.values():
            self.actuators(n)
        for n in sim.nodes.values():
            if not (n.alive and n.role is Role.PRIMARY_MIRRORING and n.state.state is State.PRIM):
                continue
            p = sim.nodes[n.params.peer]
            in_sync = p.alive and p.role is Role.SECONDARY and p.state.up_to_date
            if in_sync and p.state.state is State.SECOND and p.data != n.data:
                self.fail(
                    f"SECOND {p.name} in sync but data differs: only primary "
                    f"{sorted(n.data - p.data)[:5]}, only secondary {sorted(p.data - n.data)[:5]}"
                )

    def actuators(self, n: Node) -> None:
        """A settled module's VIP and data path match its state."""
        s = n.state
        if not n.alive or s.pending is not None or s.phase is Phase.TRANSIENT:
            return
        if s.state in PRIMARY or s.state is State.UP:
            ok = n.vip and (n.role in ACCEPTING or s.state is State.UP)
        elif s.state is State.SECOND:
            ok = not n.vip and n.role is Role.SECONDARY
        else:
            ok = not n.vip and n.role not in ACCEPTING
        if not ok:
            self.fail(f"{n.name} {s.state.value}/{s.phase.value} with vip={n.vip} {n.role.value}")

    def before_ack(self, n: Node) -> None:
        if self.arbitrated and not self.sim.forced:
            missing = self.sim.acked - n.data
            if missing:
                self.fail(f"{n.name} serves without acknowledged writes {sorted(missing)[:5]}")

    def barrier(self, prim: Node, second: Node) -> None:
        extra = second.data - prim.data
        if extra:
            self.fail(f"mirroring {prim.name}->{second.name} would merge {sorted(extra)[:5]}")

    def resync(self, target: Node, src: Node, a: StartResync) -> None:
        extra = target.data - src.data
        if extra and not a.keep_aside:
            self.fail(f"resync {src.name}->{target.name} silently discards {sorted(extra)[:5]}")
