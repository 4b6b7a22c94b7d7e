"""The CLI client's translation of answers into hamod errors, over the in-process app."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from hamod.api.app import create_app
from hamod.api.models import Command, CommandRequest
from hamod.cli.client import Client, fan_out
from hamod.errors import AdapterError, HamodError, PeerError, StateError, UsageError
from hamod.testing.fake_backend import FakeBackend

pytestmark = pytest.mark.anyio


def _client(backend: FakeBackend, node: str | None) -> Client:
    transport = httpx.ASGITransport(app=create_app(backend))
    return Client(httpx.AsyncClient(transport=transport, base_url="http://hamod"), "test", node)


@pytest.fixture
async def remote(backend: FakeBackend) -> AsyncIterator[Client]:
    async with _client(backend, "n1") as client:
        yield client


@pytest.mark.parametrize(
    ("exc", "kind", "message"),
    [
        (UsageError("since: in the future"), UsageError, "n1: since: in the future"),
        (
            StateError("stop: transition in progress"),
            StateError,
            "n1: stop: transition in progress",
        ),
        (PeerError("n2: unreachable"), PeerError, "n1: n2: unreachable"),
        (AdapterError("vip: cannot add"), AdapterError, "n1: vip: cannot add"),
        (HamodError("odd"), HamodError, "n1: odd"),
        (RuntimeError("boom"), HamodError, "n1: internal error (details in the daemon's log)"),
    ],
)
async def test_error_answers_become_hamod_errors(
    remote: Client, backend: FakeBackend, exc: Exception, kind: type[HamodError], message: str
) -> None:
    backend.fail_next(exc)
    with pytest.raises(kind) as err:
        await remote.modules()
    assert type(err.value) is kind and str(err.value) == message


async def test_local_errors_have_no_node_prefix(backend: FakeBackend) -> None:
    async with _client(backend, None) as client:
        with pytest.raises(StateError, match=r"^restart: module pg is stopped on n1$"):
            await client.command("pg", CommandRequest(command=Command.STOP))
            await client.command("pg", CommandRequest(command=Command.RESTART))


async def test_command_sends_only_given_arguments(remote: Client, backend: FakeBackend) -> None:
    await remote.command("pg", CommandRequest(command=Command.STOP))
    await remote.command("pg", CommandRequest(command=Command.SECOND, fullsync=True))
    assert backend.commands[-1][1].fullsync
    request = CommandRequest(command=Command.CHECKER_OFF, checker="pg_tcp")
    result = await remote.command("pg", request)
    assert result.accepted and result.reason == "checker pg_tcp off"
    assert backend.commands[-1] == ("pg", request)


async def test_module_config(remote: Client) -> None:
    dump = await remote.module_config("web")
    assert (dump.module, dump.node, len(dump.config_hash)) == ("web", "n1", 64)
    assert dump.config["module"] == {"module": "web", "mode": "farm"}
    with pytest.raises(UsageError, match=r"^n1: unknown module 'nope'"):
        await remote.module_config("nope")


async def test_unexpected_answer_is_a_peer_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"node": 3})

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler), base_url="http://x")
    async with Client(http, "n3 (10.0.0.3:9010)", "n3") as client:
        with pytest.raises(PeerError, match=r"^n3 \(10.0.0.3:9010\): unexpected answer: node"):
            await client.node()
        with pytest.raises(PeerError, match="unexpected answer"):
            await client.modules()


async def test_non_hamod_error_answer() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, text="<html>proxy</html>")

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler), base_url="http://x")
    async with Client(http, "n3 (10.0.0.3:9010)", "n3") as client:
        with pytest.raises(PeerError, match=r"^n3: HTTP 503 Service Unavailable$"):
            await client.modules()


async def test_fan_out_keeps_order_and_wraps_bugs(backend: FakeBackend) -> None:
    async def call(client: Client) -> str:
        if client.node_name == "n2":
            raise KeyError("bug")
        return (await client.node()).node

    clients = {n: _client(backend, n) for n in ("n1", "n2", "n3")}
    results = await fan_out(clients, call)
    assert [(r.node, r.value) for r in results] == [("n1", "n1"), ("n2", None), ("n3", "n1")]
    assert str(results[1].error) == "test: KeyError: 'bug'"
