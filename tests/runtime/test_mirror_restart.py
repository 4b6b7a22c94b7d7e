"""The SECOND's daemon restarts (service restart, a handler after a configuration
change, a crash) while its core still awaits the primary's barrier (``awaits_mirror``:
after a resync, or during a hand-over after a swap). The data-path process, which
outlives the daemon, sent its ``mirroring`` event once, to the daemon that died: the
restarted daemon must still learn it (the process keeps the current session's
``mirroring`` record and answers it in ``status``) and report ``MirrorUp``, with the
link up — not only at the next replication session.

Also: a heartbeat saying SECOND processed after ``mirroring`` (stale) clears the
daemon's flag; the record is asked again at the pulse, so the report is not lost.

A real :class:`~hamod.runtime.module.ModuleActor` and
:class:`~hamod.runtime.dpclient.ProcessDataPath` against the fake control socket of
``tests/runtime/test_swap_mirror.py``.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from hamod.core.actions import Role
from hamod.core.events import ScriptOk, Tick
from hamod.core.model import Generation, ModuleState, Phase, Script, State
from hamod.core.resume import resume
from hamod.runtime.codec import encode
from hamod.runtime.dpclient import ProcessDataPath
from hamod.runtime.module import ModuleActor
from tests.runtime.test_swap_mirror import (
    DATA,
    N2_PRIM,
    N2_SECOND,
    PARAMS,
    FakeProcess,
    actor_on,
    heard,
    settle,
    short_dir,
)

__all__ = ["short_dir"]  # the fixture, imported for this module's tests

pytestmark = pytest.mark.anyio

# after a resync: n2 went on alone (generation n2:3.3), n1 resynced to it, n2 is PRIM
G_N2 = Generation("n2", 3, 3)
N2_PRIM_AFTER_ALONE = replace(N2_PRIM, data=DATA.advance(G_N2))
RESYNCED = ModuleState(
    State.SECOND, Phase.READY, up_to_date=False, data=DATA, term=2, seq=2, synced_to=G_N2
)


def record(gen: Generation | None) -> dict[str, Any]:
    """The ``mirroring`` event's fields (the data path's record of the session)."""
    return {"generation": encode(gen), "since": 1_700_000_000.0}


async def pulses(actor: ModuleActor, n: int = 3) -> None:
    for _ in range(n):
        await actor.handle(Tick())
        await settle(actor)


async def handed_over(short_dir: Path) -> ModuleActor:
    """n1 handed over (swap): SECOND, Transient, its hand-over flag standing."""
    actor = await actor_on(short_dir)
    await actor.handle(ScriptOk(Script.STOP_PRIM))
    await settle(actor)
    assert actor.state.state is State.SECOND and actor.state.handover
    assert actor.state.phase is Phase.TRANSIENT
    return actor


async def die(actor: ModuleActor) -> None:
    """The daemon goes away: its tasks end, its control connection closes."""
    dp = actor.datapath
    assert isinstance(dp, ProcessDataPath)
    await actor.stop()
    if dp._writer is not None:
        dp._writer.close()
    await asyncio.sleep(0.05)


async def restarted(d: Path, state: ModuleState, peer: Any) -> ModuleActor:
    """A new daemon resumes ``state`` (the marker) with ``peer`` as last seen."""
    actor = await actor_on(d, state, peer, "demo2.log")
    actor.resume(resume(PARAMS, state, 0.0, peer))
    await settle(actor)
    return actor


async def test_daemon_restarted_after_the_swap_mirror_learns_it(short_dir: Path) -> None:
    """n1 handed over; n2's barrier reached n1's data path (``mirroring``) while n1's
    daemon had not heard n2 as PRIM yet; n1's daemon restarts. The new daemon hears n2
    PRIM: the hand-over ends (new term, Ready) with the link up."""
    proc = FakeProcess(short_dir / "control.sock")
    await proc.start()
    first = await handed_over(short_dir)
    await proc.emit("mirroring", **record(DATA.current))
    await settle(first)
    assert first.state.handover  # n2's PRIM announcement not heard yet
    saved = first.state
    await die(first)
    second = await restarted(short_dir, saved, N2_SECOND)
    try:
        await pulses(second, 2)
        assert second.state.handover
        await heard(second, N2_PRIM)
        await pulses(second)
        s = second.state
        assert not s.handover, "hand-over still standing after the daemon restart"
        assert (s.term, s.up_to_date, s.phase) == (3, True, Phase.READY)
    finally:
        await second.stop()
        await proc.close()


async def test_daemon_restarted_after_a_resync_mirror_learns_it(short_dir: Path) -> None:
    """n1 resynced to n2's generation; n2 went PRIM and mirrors; n1's daemon restarted
    (with n2 already PRIM in its marker): n1 becomes up to date at once."""
    proc = FakeProcess(short_dir / "control.sock")
    await proc.start()
    await proc.emit("mirroring", **record(G_N2))  # sent to the daemon that died
    second = await restarted(short_dir, RESYNCED, N2_PRIM_AFTER_ALONE)
    try:
        await pulses(second)
        s = second.state
        assert s.up_to_date, "the restarted daemon never learnt the copy is mirrored"
        assert (s.term, s.data, s.phase) == (3, N2_PRIM_AFTER_ALONE.data, Phase.READY)
        asked = proc.asked("status")
        await pulses(second)
        assert proc.asked("status") == asked, "asked again though nothing is awaited"
    finally:
        await second.stop()
        await proc.close()


@pytest.mark.parametrize("why", ["other-generation", "no-record", "old-process", "new-session"])
async def test_no_mirror_report_without_a_record_of_this_generation(
    short_dir: Path, why: str
) -> None:
    """No MirrorUp from ``status`` when the data path does not say this session mirrors
    the primary's current generation: another generation, no record, a data-path
    process of the previous version (no field), or a new session since."""
    proc = FakeProcess(short_dir / "control.sock", old=why == "old-process")
    await proc.start()
    if why != "no-record":
        await proc.emit("mirroring", **record(DATA.current if why == "other-generation" else G_N2))
    if why == "new-session":
        await proc.emit("session")
    second = await restarted(short_dir, RESYNCED, N2_PRIM_AFTER_ALONE)
    try:
        await pulses(second)
        assert proc.asked("status") >= 1
        assert not second.state.up_to_date
    finally:
        await second.stop()
        await proc.close()


async def test_stale_second_heartbeat_after_mirroring_loses_nothing(short_dir: Path) -> None:
    """``mirroring`` arrives, then a heartbeat of n2 still saying SECOND (sent before it
    took over), then its PRIM announcement: the hand-over still ends."""
    proc = FakeProcess(short_dir / "control.sock")
    await proc.start()
    actor = await handed_over(short_dir)
    try:
        await proc.emit("mirroring", **record(DATA.current))
        await settle(actor)
        await heard(actor, N2_SECOND)  # stale
        await heard(actor, N2_PRIM)
        await pulses(actor)
        s = actor.state
        assert not s.handover and s.term == 3 and s.phase is Phase.READY
    finally:
        await actor.stop()
        await proc.close()


class SessionBeforeReply(FakeProcess):
    """A new session begins between the ``status`` answer's making and its sending:
    the answer's record is of the session that just ended."""

    async def answer(self, req: dict[str, Any]) -> dict[str, Any]:
        out = await super().answer(req)
        if req.get("cmd") == "status" and self.mirroring is not None:
            await self.emit("session")
        return out


async def test_a_record_overtaken_by_a_new_session_is_not_taken(short_dir: Path) -> None:
    proc = SessionBeforeReply(short_dir / "control.sock")
    await proc.start()
    await proc.emit("mirroring", **record(G_N2))
    second = await restarted(short_dir, RESYNCED, N2_PRIM_AFTER_ALONE)
    try:
        await pulses(second)
        assert proc.asked("status") >= 1
        assert not second.state.up_to_date
        assert isinstance(second.datapath, ProcessDataPath)
        assert second.datapath.role is Role.SECONDARY
    finally:
        await second.stop()
        await proc.close()
