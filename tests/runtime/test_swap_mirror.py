"""After a swap, the demoted node (now SECOND, its ``handover`` flag standing) learns
that the new primary mirrors it through its data-path process's ``mirroring`` event;
the new primary's PRIM announcement may reach it before or after that event. Either
way the core must get ``MirrorUp`` (adopting the new term, clearing the hand-over):
until then a swap back is refused.

The data-path process is played by a small control-socket server speaking its
protocol (one JSON object a line; replies ``{"ok": true, "id": ...}``; events pushed).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from hamod.core.actions import Role
from hamod.core.events import PeerAnnounced, ScriptOk, Tick
from hamod.core.model import (
    Await,
    DataHistory,
    Generation,
    Goal,
    ModuleState,
    Params,
    PeerView,
    Pending,
    Phase,
    Script,
    State,
    View,
)
from hamod.replication.dpconfig import DpConfig
from hamod.replication.link import Mode
from hamod.runtime.dpclient import ProcessDataPath
from hamod.runtime.logs import ModuleLog
from hamod.runtime.module import ModuleActor, Ports
from hamod.runtime.paths import Paths
from hamod.testing.fakes import (
    FakeClock,
    FakeScripts,
    FakeVips,
    FakeWatchdog,
    MemoryMarkers,
    MemoryStore,
)

pytestmark = pytest.mark.anyio

PARAMS = Params(node="n1", peer="n2", pulse=0.1, timeout=1.0, config_hash="ab" * 16)
DATA = DataHistory(Generation("n1", 2, 2), (Generation("n1", 1, 1),))
# n1 was PRIM (term 2) and is stopping its app to hand the primary role to n2
STOPPING = ModuleState(
    State.PRIM, Phase.TRANSIENT, Pending(Await.STOP_APP, Goal.SECOND, 0.0), up_to_date=True,
    data=DATA, term=2, seq=2, last_prim=True,
)  # fmt: skip
N2_SECOND = PeerView("n2", State.SECOND, Phase.READY, True, DATA, 2,
                     config_hash=PARAMS.config_hash)  # fmt: skip
N2_PRIM = replace(N2_SECOND, state=State.PRIM, phase=Phase.TRANSIENT, up_to_date=True, term=3)


@dataclass
class FakeProcess:
    """The data-path process's control socket: answers every request, pushes events.
    Like the real process it keeps the current session's ``mirroring`` record (set by
    the event, cleared by a new ``session``) and answers it in ``status``; ``old``: a
    process of the previous version, whose ``status`` has no such field."""

    path: Path
    old: bool = False
    requests: list[dict[str, Any]] = field(default_factory=list)
    clients: list[asyncio.StreamWriter] = field(default_factory=list)
    server: asyncio.AbstractServer | None = None
    mirroring: dict[str, Any] | None = None

    async def start(self) -> None:
        self.server = await asyncio.start_unix_server(self._client, str(self.path))

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.clients.append(writer)
        try:
            while line := await reader.readline():
                req = json.loads(line)
                self.requests.append(req)
                writer.write((json.dumps(await self.answer(req)) + "\n").encode())
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            self.clients.remove(writer)

    async def answer(self, req: dict[str, Any]) -> dict[str, Any]:
        """The reply to one request (``status``: no resync outcome, the mirroring record)."""
        out: dict[str, Any] = {"ok": True, "id": req.get("id")}
        if req.get("cmd") == "status":
            out["resync_outcome"] = {"state": "none", "cause": ""}
            if not self.old:
                out["mirroring"] = self.mirroring
        return out

    async def emit(self, event: str, **fields: Any) -> None:
        if event == "mirroring":
            self.mirroring = fields
        elif event == "session":
            self.mirroring = None
        for w in self.clients:
            w.write((json.dumps({"event": event, **fields}) + "\n").encode())
            await w.drain()

    def asked(self, cmd: str) -> int:
        return sum(1 for r in self.requests if r.get("cmd") == cmd)

    async def close(self) -> None:
        for w in list(self.clients):
            w.close()
        if self.server is not None:
            self.server.close()


@pytest.fixture
async def short_dir() -> AsyncIterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="hm", dir="/tmp"))  # a Unix socket path is short
    yield d
    shutil.rmtree(d, ignore_errors=True)


def dp_cfg(d: Path) -> DpConfig:
    return DpConfig(
        module="demo", node="n1", peer="n2", directories=(d / "data",), excludes=((),),
        mode=Mode.SYNC, durability="on-sync", link_timeout=3.0, bandwidth=None,
        region_size=1 << 20, my_address="127.0.0.1", peer_address="127.0.0.2", port=7000,
        ca=d / "ca", cert=d / "cert", key=d / "key", run=d, var=d, log=d,
    )  # fmt: skip


async def actor_on(
    d: Path, state: ModuleState = STOPPING, peer: PeerView = N2_SECOND, log: str = "demo.log"
) -> ModuleActor:
    """n1's module actor (fake ports) with a real ProcessDataPath on ``d``."""
    ports = Ports(FakeClock(), FakeScripts(), FakeVips(), MemoryStore(), MemoryMarkers(),
                  None, FakeWatchdog())  # fmt: skip
    view = View(PARAMS, peer, True, frozenset({"lan"}), frozenset({"lan"}))
    holder: list[ModuleActor] = []
    actor = ModuleActor(
        "demo", view, state, ports, ModuleLog("demo", d / log),
        lambda post: ProcessDataPath(post, dp_cfg(d), Paths.under(d), lambda: holder[0].state),
    )  # fmt: skip
    holder.append(actor)
    return actor


async def settle(actor: ModuleActor) -> None:
    for _ in range(20):
        await asyncio.sleep(0.01)
        await actor.drain()


async def heard(actor: ModuleActor, pv: PeerView) -> None:
    """A heartbeat with ``pv`` (as the daemon's sink feeds it)."""
    actor.datapath.peer_changed(pv)
    actor.post(PeerAnnounced(), lambda v: replace(v, peer=pv))
    await settle(actor)


async def swap_then(short_dir: Path, mirroring_first: bool) -> ModuleState:
    proc = FakeProcess(short_dir / "control.sock")
    await proc.start()
    actor = await actor_on(short_dir)
    try:
        # stop_prim done: n1 is SECOND (hand-over), its data path secondary
        await actor.handle(ScriptOk(Script.STOP_PRIM))
        await settle(actor)
        assert actor.state.state is State.SECOND and actor.state.handover
        assert isinstance(actor.datapath, ProcessDataPath)
        assert actor.datapath.role is Role.SECONDARY
        # n2 took over (term 3): its data path mirrors n1, its heartbeat says PRIM
        if mirroring_first:
            await proc.emit("mirroring")
            await settle(actor)
            await heard(actor, N2_PRIM)
        else:
            await heard(actor, N2_PRIM)
            await proc.emit("mirroring")
            await settle(actor)
        for _ in range(3):  # a few pulses
            await actor.handle(Tick())
            await settle(actor)
        return actor.state
    finally:
        await actor.stop()
        await proc.close()


@pytest.mark.parametrize("first", ["prim-heard", "mirroring"])
async def test_demoted_node_confirms_the_new_primary(short_dir: Path, first: str) -> None:
    s = await swap_then(short_dir, mirroring_first=first == "mirroring")
    assert not s.handover, "hand-over flag still standing: a swap back is refused"
    assert s.term == 3 and s.up_to_date and s.phase is Phase.READY
