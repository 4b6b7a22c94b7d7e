"""Each probe up and down for real, on this host's loopback."""

from __future__ import annotations

import http.server
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from hamod.adapters.icmp import open_icmp_socket
from hamod.checkers.local import LinkState, interface_probe
from hamod.checkers.probes import GRACE, ProbeContext, probe
from hamod.checkers.resources import ResourceStore
from hamod.cli.client import Client
from hamod.core.events import Health
from hamod.errors import AdapterError
from tests.checkers.helpers import checker, run

# -- process ------------------------------------------------------------------------


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(["sleep", "31.4159"])
    time.sleep(0.05)
    yield proc
    proc.kill()
    proc.wait()


def test_process_by_regex_up_then_down_when_killed(sleeper: subprocess.Popen[bytes]) -> None:
    cfg = checker("process", regex=r"sleep 31\.4159")
    up = run(probe(cfg))
    assert up.health is Health.UP, up.detail
    assert "1 running" in up.detail
    sleeper.kill()
    sleeper.wait()
    down = run(probe(cfg))
    assert down.health is Health.DOWN
    assert "0 running, at least 1 required" in down.detail


def test_process_by_name_and_atmax(sleeper: subprocess.Popen[bytes]) -> None:
    assert run(probe(checker("process", process="sleep"))).health is Health.UP
    assert run(probe(checker("process", process="hamod-no-such"))).health is Health.DOWN
    too_many = run(probe(checker("process", regex=r"sleep 31\.4159", atleast=0, atmax=0)))
    assert too_many.health is Health.DOWN
    assert "at most 0 allowed" in too_many.detail


# -- tcp ----------------------------------------------------------------------------


def test_tcp_up_on_a_listener_down_once_closed() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    cfg = checker("tcp", addr="127.0.0.1", port=port, timeout="1s")
    assert run(probe(cfg)).health is Health.UP
    listener.close()
    down = run(probe(cfg))
    assert down.health is Health.DOWN
    assert "refused" in down.detail.lower()


# -- http ---------------------------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    status = 200
    body = b"all good"

    def do_GET(self) -> None:
        self.send_response(type(self).status)
        self.send_header("Content-Length", str(len(type(self).body)))
        self.end_headers()
        self.wfile.write(type(self).body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def web() -> Iterator[tuple[str, type[_Handler]]]:
    handler = type("Handler", (_Handler,), {})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/health", handler
    server.shutdown()
    server.server_close()


def test_http_200_up_500_down_body_mismatch_down(web: tuple[str, type[_Handler]]) -> None:
    url, handler = web
    cfg = checker("http", url=url, body="good", timeout="2s")
    assert run(probe(cfg)).health is Health.UP
    handler.status = 500
    down = run(probe(cfg))
    assert down.health is Health.DOWN
    assert "status 500, expected 200" in down.detail
    handler.status, handler.body = 200, b"degraded"
    mismatch = run(probe(cfg))
    assert mismatch.health is Health.DOWN
    assert "body lacks 'good'" in mismatch.detail


def test_http_nothing_listening_is_down() -> None:
    with socket.create_server(("127.0.0.1", 0)) as s:
        port = s.getsockname()[1]
    assert run(probe(checker("http", url=f"http://127.0.0.1:{port}/"))).health is Health.DOWN


# -- ping ---------------------------------------------------------------------------


def _no_icmp() -> str | None:
    try:
        open_icmp_socket(socket.AF_INET).close()
    except AdapterError as exc:
        return str(exc)
    return None


def test_ping_loopback_up_unroutable_down() -> None:
    if reason := _no_icmp():
        pytest.skip(reason)
    assert run(probe(checker("ping", addresses=["127.0.0.1"], timeout="1s"))).health is Health.UP
    down = run(probe(checker("ping", addresses=["198.51.100.7"], timeout="300ms")))
    assert down.health is Health.DOWN
    assert "198.51.100.7" in down.detail


# -- interface ----------------------------------------------------------------------


def test_interface_lo_up_missing_down() -> None:
    up = run(probe(checker("interface", interface="lo")))
    assert up.health is Health.UP, up.detail
    assert run(probe(checker("interface", interface="nosuch0"))).health is Health.DOWN


@pytest.fixture
def veth() -> Iterator[tuple[str, str]]:
    """A real veth pair in this namespace (removed afterwards)."""
    a, b = "hmdck0", "hmdck1"
    subprocess.run(["ip", "link", "del", a], capture_output=True, check=False)
    subprocess.run(["ip", "link", "add", a, "type", "veth", "peer", "name", b], check=True)
    try:
        yield a, b
    finally:
        subprocess.run(["ip", "link", "del", a], capture_output=True, check=False)


def test_interface_states_by_netlink(veth: tuple[str, str]) -> None:
    a, b = veth

    def link(name: str, state: str) -> None:
        subprocess.run(["ip", "link", "set", name, state], check=True)
        time.sleep(0.05)

    assert "administratively down" in interface_probe(a).detail
    link(a, "up")  # its peer is down: no carrier
    down = interface_probe(a)
    assert down.health is Health.DOWN and "no carrier" in down.detail, down.detail
    link(b, "up")
    for _ in range(40):  # carrier comes up asynchronously
        up = interface_probe(a)
        if up.health is Health.UP:
            break
        time.sleep(0.05)
    assert up.health is Health.UP and "operstate up" in up.detail, up.detail
    link(b, "down")  # the cable pulled at the other end
    assert "no carrier" in interface_probe(a).detail


def test_interface_states_from_a_reader() -> None:
    def read(name: str) -> LinkState | None:
        return {"x0": LinkState(True, True, "dormant"), "y0": LinkState(True, True, "down")}.get(
            name
        )

    assert interface_probe("x0", read).health is Health.UP
    assert "operstate down" in interface_probe("y0", read).detail
    assert "no such interface" in interface_probe("z0", read).detail


# -- vip ----------------------------------------------------------------------------


class _Vips:
    def __init__(self, present: set[str]) -> None:
        self.present = present

    def is_present(self, addr: str) -> bool:
        return addr in self.present


def test_vip_present_then_removed() -> None:
    vips = _Vips({"10.0.0.10", "10.0.0.11"})
    ctx = ProbeContext(vips=("10.0.0.10", "10.0.0.11"), vip=lambda: vips)
    assert run(probe(checker("vip"), ctx)).health is Health.UP
    vips.present.discard("10.0.0.11")
    down = run(probe(checker("vip"), ctx))
    assert down.health is Health.DOWN
    assert "10.0.0.11 not on this node" in down.detail
    assert run(probe(checker("vip", addr="10.0.0.10"), ctx)).health is Health.UP


# -- custom -------------------------------------------------------------------------


def test_custom_program_exit_codes() -> None:
    assert run(probe(checker("custom", program="/bin/true"))).health is Health.UP
    down = run(probe(checker("custom", program=sys.executable, args=["-c", "exit(3)"])))
    assert down.health is Health.DOWN
    assert "exit 3" in down.detail


def test_custom_program_that_hangs_is_killed_and_unknown() -> None:
    cfg = checker("custom", program="/bin/sleep", args=["29.123"], timeout="300ms", interval="1s")
    began = time.monotonic()
    result = run(probe(cfg))
    assert result.health is Health.UNKNOWN
    assert "killed" in result.detail
    assert time.monotonic() - began < 0.3 + GRACE
    gone = subprocess.run(
        ["pgrep", "-f", "^/bin/sleep 29\\.123$"], capture_output=True, check=False
    )
    assert gone.returncode == 1, gone.stdout


def test_custom_program_missing_is_unknown() -> None:
    result = run(probe(checker("custom", program="/nonexistent/check")))
    assert result.health is Health.UNKNOWN
    assert "cannot run" in result.detail


def test_custom_resource(tmp_path: Path) -> None:
    store = ResourceStore(tmp_path)
    ctx = ProbeContext(resources=store)
    cfg = checker("custom", name="db")
    assert run(probe(cfg, ctx)).health is Health.UNKNOWN
    store.set("custom.db", "up")
    assert run(probe(cfg, ctx)).health is Health.UP
    store.set("custom.db", "down")
    assert run(probe(cfg, ctx)).health is Health.DOWN


# -- module -------------------------------------------------------------------------


def _client(state: str | None, phase: str = "READY") -> Client:
    def answer(request: httpx.Request) -> httpx.Response:
        if state is None:
            raise httpx.ConnectError("connection refused", request=request)
        body = {"module": "a", "node": "n1", "state": state, "phase": phase}
        return httpx.Response(200, json=body)

    http = httpx.AsyncClient(transport=httpx.MockTransport(answer), base_url="http://hamod")
    return Client(http, "test API")


@pytest.mark.parametrize(
    ("state", "phase", "health"),
    [
        ("PRIM", "READY", Health.UP),
        ("ALONE", "READY", Health.UP),
        ("UP", "READY", Health.UP),
        ("PRIM", "TRANSIENT", Health.DOWN),
        ("SECOND", "READY", Health.DOWN),
        ("WAIT", "NOT_READY", Health.DOWN),
        (None, "", Health.DOWN),
    ],
)
def test_module(state: str | None, phase: str, health: Health) -> None:
    asked: list[str | None] = []

    def factory(node: str | None) -> Client:
        asked.append(node)
        return _client(state, phase)

    result = run(probe(checker("module", module="a", node="n2"), ProbeContext(client=factory)))
    assert result.health is health, result.detail
    assert asked == ["n2"]


# -- the guard ----------------------------------------------------------------------


def test_a_crashing_probe_is_unknown_naming_the_exception() -> None:
    def broken() -> _Vips:
        raise RuntimeError("netlink exploded")

    result = run(probe(checker("vip"), ProbeContext(vips=("10.0.0.1",), vip=broken)))
    assert result.health is Health.UNKNOWN
    assert result.detail == "probe crashed: RuntimeError: netlink exploded"


def test_a_hanging_probe_is_cancelled_as_unknown() -> None:
    def slow() -> _Vips:
        time.sleep(1.0)
        return _Vips(set())

    cfg = checker("vip", timeout="100ms", interval="1s")
    began = time.monotonic()
    result = run(probe(cfg, ProbeContext(vips=("10.0.0.1",), vip=slow)))
    assert result.health is Health.UNKNOWN
    assert "probe hung" in result.detail
    assert time.monotonic() - began < 1.5
