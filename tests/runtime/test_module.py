"""The module actor on fakes: scripts, VIP, durable record, leases, watchdog, resume,
and the catch-all."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest

from hamod.api.models import Command as ApiCommand
from hamod.api.models import CommandRequest
from hamod.core.events import Command, On, PeerLost, Tick
from hamod.core.model import (
    DataHistory,
    Generation,
    ModuleState,
    PeerView,
    Phase,
    State,
    Witness,
)
from hamod.core.resume import resume
from hamod.errors import StateError, UsageError
from hamod.runtime.backend import DaemonBackend
from hamod.runtime.ports import Marker
from hamod.runtime.real import FileMarkers
from hamod.testing.fakes import ScriptCall
from tests.runtime.harness import PARAMS, Rig, rig

pytestmark = pytest.mark.anyio


async def start_alone(r: Rig) -> None:
    d = await r.command(On.START)
    assert d.state.state is State.WAIT
    await r.command(On.PRIM)


async def test_start_then_prim_goes_alone_in_order(tmp_path: Path) -> None:
    r = rig(tmp_path)
    await start_alone(r)
    s = r.actor.state
    assert (s.state, s.phase) == (State.ALONE, Phase.READY)
    assert r.scripts.calls == [
        ScriptCall("prestart", ("STOP", "WAIT", "start")),
        ScriptCall("start_prim", ("WAIT", "ALONE", "start")),
    ]
    # the durable record (new generation) is written before the VIP, the VIP before start_prim
    tail = r.journal[r.journal.index("script:prestart") + 1 :]
    assert tail == ["record", "vip:True", "script:start_prim"]
    assert r.store.durable is not None and r.store.durable.last_prim
    assert r.actor.datapath.role.value == "primary-alone"  # type: ignore[attr-defined]
    text = (tmp_path / "demo.log").read_text()
    assert "WAIT(NotReady) -> ALONE(Transient): admin prim" in text


async def test_refused_command_is_a_state_error_with_the_core_reason(tmp_path: Path) -> None:
    r = rig(tmp_path)

    class Runner:
        actor, mlog, boot = r.actor, r.actor.log, "auto"
        checks = None

        def set_boot(self, value: str) -> None: ...

        def checkers_off(self) -> frozenset[str]:
            return frozenset()

        def notes(self) -> list[str]:
            return []

        async def peer_decided(self) -> None:
            pass

    backend = DaemonBackend("n1", lambda: {"demo": Runner()})  # type: ignore[dict-item]
    loop = asyncio.ensure_future(r.actor.run())
    try:
        with pytest.raises(StateError, match=r"demo: refused: swap not allowed in STOP"):
            await backend.command("demo", CommandRequest(command=ApiCommand.SWAP))
        res = await backend.command("demo", CommandRequest(command=ApiCommand.STOP))
        assert not res.accepted and res.reason == "already stopped"
        res = await backend.command("demo", CommandRequest(command=ApiCommand.START))
        assert res.accepted and res.state_after.value == "WAIT"
        with pytest.raises(UsageError, match="unknown module 'x'"):
            await backend.module("x")
        assert (await backend.module("demo")).state.value == "WAIT"
    finally:
        loop.cancel()
    assert r.scripts.names == ["prestart"]  # the refused swap ran nothing


def prim_peer(data: DataHistory, term: int) -> PeerView:
    return PeerView("n2", State.SECOND, Phase.READY, True, data, term, synced_to=data.current,
                    config_hash=PARAMS.config_hash)  # fmt: skip


async def test_pairing_then_peer_lost_serves_alone(tmp_path: Path) -> None:
    r = rig(tmp_path)
    await start_alone(r)
    s = r.actor.state
    # the peer resynced and is SECOND: PRIM
    await r.peer(replace(prim_peer(s.data, s.term), up_to_date=False))
    assert r.actor.state.state is State.PRIM
    assert r.actor.datapath.role.value == "primary-mirroring"  # type: ignore[attr-defined]
    r.journal.clear()
    r.actor.post(PeerLost(), lambda v: replace(v, peer=None, networks_up=frozenset()))
    await r.settle()
    assert r.actor.state.state is State.ALONE
    assert r.journal == ["record"]  # a new generation recorded; app and VIP untouched
    assert r.scripts.names == ["prestart", "start_prim"]


async def test_second_is_confirmed_by_the_primary_announcement(tmp_path: Path) -> None:
    r = rig(tmp_path)
    await r.command(On.START)
    await r.settle()
    gen = DataHistory(Generation("n2", 1, 1))
    primary = PeerView("n2", State.ALONE, Phase.READY, True, gen, 1, last_prim=True,
                       config_hash=PARAMS.config_hash)  # fmt: skip
    await r.peer(primary)
    s = r.actor.state
    assert (s.state, s.phase, s.up_to_date) == (State.SECOND, Phase.READY, False)
    await r.peer(replace(primary, state=State.PRIM))
    assert r.actor.state.up_to_date and r.actor.state.data == gen
    assert r.scripts.names == ["prestart", "start_second"]
    assert r.vips.history == []


async def test_lease_flow_with_the_arbitrator(tmp_path: Path) -> None:
    r = rig(tmp_path, replace(PARAMS, witness=Witness.ARBITRATOR))
    await start_alone(r)
    assert r.actor.state.state is State.ALONE and r.actor.state.term == 1
    assert r.arbitrator is not None and r.arbitrator.requests == [("n1", 1)]
    until = r.actor.state.lease_until
    r.clock.advance(0.1)
    await r.feed(Tick())
    assert r.actor.state.lease_until > until  # renewed
    # the arbitrator goes away: the lease timer fires before the lease ends, fenced
    r.arbitrator.reachable = False
    for _ in range(6):
        r.clock.advance(0.1)
        await r.feed(Tick())
        await r.settle()
    assert not r.vips.present
    assert "stop_prim" in r.scripts.names
    assert r.actor.state.state in (State.WAIT, State.STOP, State.ALONE)
    assert "lease ending unrenewed" in (tmp_path / "demo.log").read_text()


async def test_watchdog_armed_every_pulse_while_serving(tmp_path: Path) -> None:
    r = rig(tmp_path)
    await start_alone(r)
    r.watchdog.events.clear()
    for _ in range(3):
        r.clock.advance(0.1)
        await r.feed(Tick())
    arms = [e for e in r.watchdog.events if e[0] == "arm"]
    assert len(arms) == 3
    assert all(e[1] == pytest.approx(r.clock.now() - 0.2 + 1.0 - 0.2, abs=0.21) for e in arms)
    assert arms[-1][1] < r.clock.now() + PARAMS.timeout
    await r.command(On.STOP)
    await r.settle()
    r.clock.advance(0.1)
    await r.feed(Tick())
    assert r.actor.state.state is State.STOP
    assert r.watchdog.events[-1] == ("disarm",)
    assert r.scripts.names[-2:] == ["stop_prim", "poststop"]
    assert not r.vips.present


async def test_resume_after_daemon_restart_touches_nothing(tmp_path: Path) -> None:
    first = rig(tmp_path)
    await start_alone(first)
    first.actor.save_marker(first.clock.now())
    marker = first.markers.marker
    assert isinstance(marker, Marker)
    # a new daemon: new actor, same VIP (present), the marker from /run
    second = rig(tmp_path)
    second.vips.present = True
    res = resume(PARAMS, marker.state, second.clock.now())
    second.actor.resume(res)
    await second.settle()
    for _ in range(3):
        second.clock.advance(0.1)
        await second.feed(Tick())
    assert second.actor.state.state is State.ALONE
    assert second.scripts.calls == [] and second.vips.calls == 0
    assert second.watchdog.armed


async def test_resume_with_a_script_in_flight_counts_it_failed(tmp_path: Path) -> None:
    r = rig(tmp_path)
    await start_alone(r)
    d = await r.actor.handle(Command(On.STOP))  # stop_prim awaited, the daemon dies
    s = d.state
    assert s.pending is not None
    r2 = rig(tmp_path)
    r2.actor.resume(resume(PARAMS, replace(s, pending=s.pending), r2.clock.now()))
    await r2.settle()
    assert r2.scripts.calls[0] == ScriptCall("stop_prim", ("force", "ALONE", "STOP", "stop"))


async def test_adapter_exception_is_reported_as_an_event(tmp_path: Path) -> None:
    r = rig(tmp_path)
    await r.command(On.START)
    await r.settle()
    r.vips.fail_next()
    await r.command(On.PRIM)
    r.clock.advance(0.1)
    await r.feed(Tick())
    text = (tmp_path / "demo.log").read_text()
    assert "vip:present failed: VIP: netlink said no" in text
    assert "data path failed" in text  # the core got DataPathFailed and acted on it
    # and the actor keeps going
    r.scripts.break_next("stop_prim")
    await r.command(On.FORCESTOP)
    await r.settle()
    assert r.actor.state.state is State.STOP


def test_restored_state_after_reboot_is_stop(tmp_path: Path) -> None:
    from hamod.core.model import restore

    d = ModuleState(state=State.PRIM, up_to_date=True, last_prim=True, term=4).durable()
    s = restore(PARAMS, d)
    assert (s.state, s.term, s.up_to_date) == (State.STOP, 4, True)


async def test_resume_keeps_the_peer_as_last_seen(tmp_path: Path) -> None:
    """A daemon restarted in time resumes PRIM with the peer as it was seen (from the
    marker): the ticks before the peer is heard again renew the lease on the same term,
    with no "mirror lost" (no new term, no new data generation)."""
    arb = replace(PARAMS, witness=Witness.ARBITRATOR)
    first = rig(tmp_path, arb)
    await start_alone(first)
    s = first.actor.state
    second_pv = PeerView("n2", State.SECOND, Phase.READY, data=s.data, term=s.term,
                         synced_to=s.data.current, config_hash=arb.config_hash)  # fmt: skip
    await first.peer(second_pv)
    assert first.actor.state.state is State.PRIM
    first.actor.save_marker(first.clock.now())
    marker = first.markers.marker
    assert isinstance(marker, Marker) and marker.peer == second_pv
    term, data = first.actor.state.term, first.actor.state.data

    again = rig(tmp_path / "again", arb)
    again.clock.advance(first.clock.now() - again.clock.now() + 0.05)
    res = resume(arb, marker.state, again.clock.now(), marker.peer)
    again.actor.resume(res)
    assert again.actor.view.peer == second_pv
    await again.settle()
    for _ in range(5):
        again.clock.advance(arb.pulse)
        await again.feed(Tick())
    st = again.actor.state
    assert (st.state, st.phase, st.term, st.data) == (State.PRIM, Phase.READY, term, data)
    log = (tmp_path / "again" / "demo.log").read_text()
    assert "prim_lost_peer" not in log and "peer n2 as last seen (SECOND)" in log
    # the peer is not heard for `timeout`: lost, as for a running daemon
    again.actor.datapath.peer_changed(None)
    again.actor.post(PeerLost(), lambda v: replace(v, peer=None))
    await again.settle()
    assert "prim_lost_peer_lease" in (tmp_path / "again" / "demo.log").read_text()


def test_file_marker_keeps_the_peer(tmp_path: Path) -> None:
    gen = Generation("n1", 2, 3, True)
    pv = PeerView("n2", State.SECOND, Phase.READY, up_to_date=True, data=DataHistory(gen),
                  term=2, config_hash="cd")  # fmt: skip
    markers = FileMarkers(tmp_path / "demo.json")
    markers.save(Marker(ModuleState(state=State.PRIM), 12.5, "ab", pv))
    back = markers.load()
    assert back is not None and back.peer == pv and back.state.state is State.PRIM
    markers.save(Marker(ModuleState(), 1.0, "ab"))
    loaded = markers.load()
    assert loaded is not None and loaded.peer is None
