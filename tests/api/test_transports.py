"""The real transports: uvicorn on a root-only Unix socket and on TCP with mutual TLS,
reached with the CLI's Client; certificates come from the throw-away PKI fixture."""

from __future__ import annotations

import asyncio
import socket
import ssl
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from hamod.api.app import create_app, create_health_app
from hamod.api.models import Command, CommandRequest, State
from hamod.api.serve import ApiServer, TlsFiles, start_tcp, start_tls, start_unix
from hamod.cli.client import Client, fan_out, select_nodes
from hamod.errors import AdapterError, PeerError, StateError, UsageError
from hamod.testing.fake_backend import FakeBackend
from tests.api.conftest import Pki

pytestmark = pytest.mark.anyio


@pytest.fixture
def sock_path(tmp_path: Path) -> Path:
    return tmp_path / "run" / "api.sock"


@pytest.fixture
async def unix_server(backend: FakeBackend, sock_path: Path) -> AsyncIterator[ApiServer]:
    server = await start_unix(create_app(backend), sock_path, grace=0.5)
    yield server
    await server.stop(grace=0.5)


@pytest.fixture
async def tls_server(backend: FakeBackend, pki: Pki) -> AsyncIterator[ApiServer]:
    tls = TlsFiles(ca=pki.ca.path, cert=pki.server.cert, key=pki.server.key)
    server = await start_tls(create_app(backend), "127.0.0.1", 0, tls, grace=0.5)
    yield server
    await server.stop(grace=0.5)


def _port(server: ApiServer) -> int:
    address = server.address
    assert isinstance(address, tuple)
    return address[1]


def _remote(server: ApiServer, pki: Pki, **kw: object) -> Client:
    return Client.remote(
        "127.0.0.1",
        _port(server),
        pki.ca.path,
        pki.client.cert,
        pki.client.key,
        **kw,  # type: ignore[arg-type]
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- Unix socket ----------------------------------------------------------------------


async def test_unix_socket_is_root_only_and_serves(unix_server: ApiServer, sock_path: Path) -> None:
    assert stat.S_IMODE(sock_path.stat().st_mode) == 0o600
    assert stat.S_ISSOCK(sock_path.stat().st_mode)
    assert stat.S_IMODE(sock_path.parent.stat().st_mode) == 0o700
    async with Client.local(sock_path) as client:
        assert [m.module for m in await client.modules()] == ["pg", "web"]
        assert (await client.module("pg")).state is State.PRIM
        assert (await client.node()).node == "n1"
        assert (await client.version()).api == "v1"
        result = await client.command("pg", CommandRequest(command=Command.SWAP))
        assert result.accepted and result.state_after is State.SECOND
        assert not (await client.ready("pg")).ready
        assert (await client.ready("web")).ready


async def test_local_errors_map_back_to_hamod_errors(
    unix_server: ApiServer, sock_path: Path
) -> None:
    async with Client.local(sock_path) as client:
        with pytest.raises(UsageError, match=r"^unknown module 'x' \(known: pg, web\)$"):
            await client.module("x")
        with pytest.raises(StateError, match=r"^prim: web is a farm module \(no primary\)$"):
            await client.command("web", CommandRequest(command=Command.PRIM))
        with pytest.raises(UsageError, match=r"^unknown module"):
            await client.ready("x")


async def test_socket_removed_on_stop(backend: FakeBackend, sock_path: Path) -> None:
    server = await start_unix(create_app(backend), sock_path, grace=0.5)
    await server.stop(grace=0.5)
    assert not sock_path.exists()
    await server.stop()  # idempotent


async def test_stale_socket_is_replaced(backend: FakeBackend, sock_path: Path) -> None:
    sock_path.parent.mkdir(mode=0o755)
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(sock_path))
    stale.close()  # the file stays, nobody listens
    server = await start_unix(create_app(backend), sock_path, grace=0.5)
    try:
        assert stat.S_IMODE(sock_path.parent.stat().st_mode) == 0o700
        async with Client.local(sock_path) as client:
            assert len(await client.modules()) == 2
    finally:
        await server.stop(grace=0.5)


async def test_live_socket_or_other_file_is_not_replaced(
    unix_server: ApiServer, backend: FakeBackend, sock_path: Path, tmp_path: Path
) -> None:
    with pytest.raises(AdapterError, match="another process is serving on it"):
        await start_unix(create_app(backend), sock_path)
    async with Client.local(sock_path) as client:  # the first server is untouched
        assert len(await client.modules()) == 2
    regular = tmp_path / "run2" / "api.sock"
    regular.parent.mkdir()
    regular.write_text("keep me")
    with pytest.raises(AdapterError, match="is not a socket; not replacing it"):
        await start_unix(create_app(backend), regular)
    assert regular.read_text() == "keep me"


async def test_local_daemon_not_running(tmp_path: Path) -> None:
    async with Client.local(tmp_path / "none.sock") as client:
        with pytest.raises(PeerError) as err:
            await client.modules()
    assert str(err.value) == (
        f"local API ({tmp_path / 'none.sock'}): unreachable: no such file or directory"
        " (is the hamod daemon running?)"
    )


async def test_log_follow_over_the_socket(
    unix_server: ApiServer, backend: FakeBackend, sock_path: Path
) -> None:
    backend.emit("pg", "old line")
    async with Client.local(sock_path) as client:
        lines = client.log("pg", follow=True)
        assert (await asyncio.wait_for(anext(lines), 5)).endswith(" old line")
        backend.emit("pg", "new line")
        assert (await asyncio.wait_for(anext(lines), 5)).endswith(" new line")
        await lines.aclose()  # type: ignore[attr-defined]
        got = [line async for line in client.log("pg")]
        assert len(got) == 2
        with pytest.raises(UsageError, match="unknown module"):
            await anext(client.log("nope"))


async def test_stop_ends_followed_logs(backend: FakeBackend, sock_path: Path) -> None:
    server = await start_unix(create_app(backend), sock_path, grace=0.2)
    async with Client.local(sock_path) as client:
        lines = client.log("pg", follow=True)
        task = asyncio.ensure_future(anext(lines))
        await asyncio.sleep(0.2)
        await asyncio.wait_for(server.stop(grace=0.2), 5)
        with pytest.raises((PeerError, StopAsyncIteration)):
            await asyncio.wait_for(task, 5)


# -- mutual TLS -----------------------------------------------------------------------


async def test_mutual_tls_serves_cluster_clients(tls_server: ApiServer, pki: Pki) -> None:
    async with _remote(tls_server, pki, node="n1") as client:
        assert [m.module for m in await client.modules()] == ["pg", "web"]
        with pytest.raises(UsageError, match=r"^n1: unknown module 'x'"):
            await client.module("x")
    async with _remote(tls_server, pki, node="n1", server_name="n1") as client:
        assert (await client.node()).node == "n1"


async def test_client_without_certificate_is_refused(tls_server: ApiServer, pki: Pki) -> None:
    ctx = ssl.create_default_context(cafile=str(pki.ca.path))
    url = f"https://127.0.0.1:{_port(tls_server)}/api/v1/modules"
    async with httpx.AsyncClient(verify=ctx) as http:
        with pytest.raises(httpx.HTTPError):
            await http.get(url)


async def test_client_from_another_ca_is_refused(tls_server: ApiServer, pki: Pki) -> None:
    port = _port(tls_server)
    client = Client.remote(
        "127.0.0.1", port, pki.ca.path, pki.stranger.cert, pki.stranger.key, node="n1"
    )
    async with client:
        with pytest.raises(PeerError) as err:
            await client.modules()
    assert str(err.value).startswith(f"n1 (127.0.0.1:{port}): ")
    assert "refused" in str(err.value)


async def test_server_not_matching_the_address_is_refused(backend: FakeBackend, pki: Pki) -> None:
    tls = TlsFiles(ca=pki.ca.path, cert=pki.wrong_server.cert, key=pki.wrong_server.key)
    server = await start_tls(create_app(backend), "127.0.0.1", 0, tls, grace=0.5)
    try:
        async with _remote(server, pki, node="n9") as client:
            with pytest.raises(PeerError, match="server certificate refused: IP address mismatch"):
                await client.modules()
    finally:
        await server.stop(grace=0.5)


async def test_server_not_matching_the_node_name_is_refused(
    tls_server: ApiServer, pki: Pki
) -> None:
    async with _remote(tls_server, pki, node="n2", server_name="n2") as client:
        with pytest.raises(PeerError, match="server certificate refused: Hostname mismatch"):
            await client.modules()


async def test_server_from_another_ca_is_refused(tls_server: ApiServer, pki: Pki) -> None:
    port = _port(tls_server)
    client = Client.remote("127.0.0.1", port, pki.other_ca.path, pki.client.cert, pki.client.key)
    async with client:
        with pytest.raises(
            PeerError,
            match="server certificate refused: self-signed certificate in certificate chain",
        ):
            await client.modules()


async def test_bad_tls_files_are_named(backend: FakeBackend, pki: Pki, tmp_path: Path) -> None:
    tls = TlsFiles(ca=pki.ca.path, cert=tmp_path / "missing.crt", key=pki.server.key)
    with pytest.raises(AdapterError, match=r"missing\.crt"):
        await start_tls(create_app(backend), "127.0.0.1", 0, tls)
    with pytest.raises(UsageError, match=r"missing\.crt"):
        Client.remote("127.0.0.1", 1, pki.ca.path, tmp_path / "missing.crt", pki.client.key)


async def test_port_in_use_is_named(tls_server: ApiServer, backend: FakeBackend, pki: Pki) -> None:
    tls = TlsFiles(ca=pki.ca.path, cert=pki.server.cert, key=pki.server.key)
    port = _port(tls_server)
    with pytest.raises(
        AdapterError, match=f"cannot listen on 127.0.0.1:{port}: address already in use"
    ):
        await start_tls(create_app(backend), "127.0.0.1", port, tls)


# -- fan-out (-H) ---------------------------------------------------------------------


async def test_fan_out_one_node_down(tls_server: ApiServer, pki: Pki) -> None:
    down = _free_port()
    clients = {
        "n1": _remote(tls_server, pki, node="n1"),
        "n2": Client.remote(
            "127.0.0.1", down, pki.ca.path, pki.client.cert, pki.client.key, node="n2"
        ),
    }
    try:
        results = await fan_out(clients, lambda c: c.module("pg"))
    finally:
        for c in clients.values():
            await c.aclose()
    assert [r.node for r in results] == ["n1", "n2"]
    assert results[0].ok and results[0].value is not None and results[0].value.state is State.PRIM
    assert not results[1].ok and results[1].value is None
    assert str(results[1].error) == f"n2 (127.0.0.1:{down}): unreachable: connection refused"
    assert isinstance(results[1].error, PeerError)


def test_select_nodes() -> None:
    assert select_nodes("all", ["n1", "n2"]) == ["n1", "n2"]
    assert select_nodes("n2, n1,n2", ["n1", "n2"]) == ["n2", "n1"]
    with pytest.raises(UsageError, match=r"^-H: unknown node 'n3' \(known: n1, n2\)$"):
        select_nodes("n1,n3", ["n1", "n2"])
    with pytest.raises(UsageError, match="empty node list"):
        select_nodes(" , ", ["n1"])


# -- health listener (load balancers) --------------------------------------------------


async def test_health_app_on_plain_tcp_serves_only_readiness(backend: FakeBackend) -> None:
    server = await start_tcp(create_health_app(backend), "127.0.0.1", 0, grace=0.5)
    base = f"http://127.0.0.1:{_port(server)}/api/v1"
    try:
        async with httpx.AsyncClient() as http:
            assert (await http.get(f"{base}/modules/pg/ready")).status_code == 200
            backend.set_status("pg", state=State.WAIT)
            assert (await http.get(f"{base}/modules/pg/ready")).status_code == 404
            assert (await http.get(f"{base}/version")).status_code == 200
            assert (await http.get(f"{base}/modules")).status_code == 404
            r = await http.post(f"{base}/modules/pg/commands", json={"command": "stop"})
            assert r.status_code in (404, 405)
            assert (await http.get(f"{base}/openapi.json")).status_code == 404
    finally:
        await server.stop(grace=0.5)
