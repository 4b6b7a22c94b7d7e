"""The scripted FakeBackend: plausible transitions and refusals with reasons."""

from __future__ import annotations

import pytest

from hamod.api.models import Command, CommandRequest, Phase, State
from hamod.errors import StateError
from hamod.testing.fake_backend import FakeBackend

pytestmark = pytest.mark.anyio


async def _run(backend: FakeBackend, module: str, command: Command) -> State:
    result = await backend.command(module, CommandRequest(command=command))
    return result.state_after


async def test_mirror_lifecycle() -> None:
    b = FakeBackend()
    assert await _run(b, "pg", Command.STOP) is State.STOP
    with pytest.raises(StateError, match="is stopped on n1"):
        await _run(b, "pg", Command.SWAP)
    assert await _run(b, "pg", Command.SECOND) is State.SECOND
    with pytest.raises(StateError, match="use swap"):
        await _run(b, "pg", Command.PRIM)
    assert await _run(b, "pg", Command.FULLSYNC) is State.SECOND
    status = await b.module("pg")
    assert status.phase is Phase.TRANSIENT and status.resync is not None
    assert await _run(b, "pg", Command.FORCESTOP) is State.STOP
    b.set_status("pg", up_to_date=False)
    with pytest.raises(StateError, match="not up to date; use primforce"):
        await _run(b, "pg", Command.PRIM)
    assert await _run(b, "pg", Command.PRIMFORCE) is State.ALONE
    assert (await b.module("pg")).up_to_date


async def test_farm_and_toggles() -> None:
    b = FakeBackend()
    with pytest.raises(StateError, match="farm module"):
        await _run(b, "web", Command.SWAP)
    assert await _run(b, "web", Command.STOPSTART) is State.UP
    r = await b.command("web", CommandRequest(command=Command.BOOT_OFF))
    assert r.accepted and (await b.module("web")).toggles.boot == "off"
    await _run(b, "web", Command.STOP)
    assert await _run(b, "web", Command.START) is State.UP
    r = await b.command("web", CommandRequest(command=Command.START))
    assert not r.accepted and r.reason == "already started (UP)"
