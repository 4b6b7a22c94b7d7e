"""A module actor on fakes, with one ordered journal of every side effect."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from hamod.core.events import Command, Event, On, PeerAnnounced
from hamod.core.machine import Decision
from hamod.core.model import (
    ModuleState,
    Params,
    PeerView,
    View,
    Witness,
    initial,
)
from hamod.runtime.datapath import NullDataPath
from hamod.runtime.logs import ModuleLog
from hamod.runtime.module import ModuleActor, Ports
from hamod.testing.fakes import (
    FakeArbitrator,
    FakeClock,
    FakeScripts,
    FakeVips,
    FakeWatchdog,
    FakeWitness,
    MemoryMarkers,
    MemoryStore,
)

PARAMS = Params(node="n1", peer="n2", pulse=0.1, timeout=1.0, lease=0.5, lease_margin=0.1,
                config_hash="ab" * 16)  # fmt: skip


@dataclass
class Rig:
    actor: ModuleActor
    clock: FakeClock
    scripts: FakeScripts
    vips: FakeVips
    store: MemoryStore
    markers: MemoryMarkers
    watchdog: FakeWatchdog
    arbitrator: FakeArbitrator | None
    journal: list[str] = field(default_factory=list)

    async def settle(self) -> None:
        """Handle everything queued, including what scripts and leases post back."""
        for _ in range(50):
            await self.actor.drain()
            for t in list(self.actor._tasks):
                await t
            if self.actor._queue.empty():
                return

    async def command(self, on: On) -> Decision:
        """An admin command, handled at once (with everything it causes)."""
        d = await self.actor.handle(Command(on))
        await self.settle()
        return d

    async def feed(self, event: Event) -> None:
        self.actor.post(event)
        await self.settle()

    async def peer(self, pv: PeerView | None) -> None:
        self.actor.datapath.peer_changed(pv)
        self.actor.post(PeerAnnounced(), lambda v: replace(v, peer=pv))
        await self.settle()


def rig(tmp: Path, params: Params = PARAMS, state: ModuleState | None = None) -> Rig:
    clock = FakeClock()
    scripts, vips, store = FakeScripts(), FakeVips(), MemoryStore()
    markers, watchdog = MemoryMarkers(), FakeWatchdog()
    arbitrator = FakeArbitrator(clock) if params.witness is Witness.ARBITRATOR else None
    witness = FakeWitness(arbitrator, "demo", params.node, params.lease) if arbitrator else None
    ports = Ports(clock, scripts, vips, store, markers, witness, watchdog)
    view = View(params, None, True, frozenset({"lan"}), frozenset({"lan"}))
    actor = ModuleActor(
        "demo", view, state or initial(params), ports, ModuleLog("demo", tmp / "demo.log"),
        NullDataPath,
    )  # fmt: skip
    r = Rig(actor, clock, scripts, vips, store, markers, watchdog, arbitrator)
    scripts.on_run = lambda c: r.journal.append(f"script:{c.script}")
    vips.on_change = lambda present: r.journal.append(f"vip:{present}")
    store.on_save = lambda d: r.journal.append("record")
    return r
