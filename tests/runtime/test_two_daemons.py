"""Two real daemons in one process on loopback (127.0.0.1 / 127.0.0.2): real heartbeats,
real API on tmp Unix sockets, real scripts writing marker files, fake VIPs, no watchdog."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import pytest

from hamod.adapters.pki import write_cluster_key
from hamod.api.models import Command, CommandRequest, State
from hamod.cli.client import Client
from hamod.runtime.daemon import Daemon
from hamod.runtime.paths import Paths
from hamod.testing.fakes import FakeVips

pytestmark = pytest.mark.anyio

SCRIPT = """#!/bin/sh
echo "$0 $*" >> {log}
"""


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_node(root: Path, node: str, key: Path, port: int) -> Paths:
    paths = Paths.under(root / node)
    paths.modules_dir.mkdir(parents=True)
    (paths.etc / "cluster.yaml").write_text(
        f"""cluster: loop
networks:
  - {{name: lan, subnet: 127.0.0.0/8, replication: true}}
nodes:
  - {{name: n1, addresses: {{lan: 127.0.0.1}}}}
  - {{name: n2, addresses: {{lan: 127.0.0.2}}}}
key: {key}
heartbeat_port: {port}
"""
    )
    scripts = paths.modules_dir / "demo" / "scripts"
    scripts.mkdir(parents=True)
    (paths.modules_dir / "demo.yaml").write_text(
        """module: demo
mode: mirror
nodes: [n1, n2]
heartbeat: {pulse: 100ms, timeout: 1s}
"""
    )
    for name in ("prestart", "start_prim", "stop_prim", "start_second", "stop_second", "poststop"):
        f = scripts / name
        f.write_text(SCRIPT.format(log=root / node / "scripts.log"))
        f.chmod(0o755)
    return paths


async def wait_state(c: Client, want: State, timeout: float, settled: bool = False) -> float:
    start = time.monotonic()
    while True:
        m = await c.module("demo")
        st = m.state
        if st is want and (not settled or m.phase.value != "TRANSIENT"):
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise AssertionError(f"still {st} after {timeout}s, want {want}")
        await asyncio.sleep(0.05)


async def test_first_start_pairing_and_failover(tmp_path: Path) -> None:
    key = write_cluster_key(tmp_path)
    port = _free_udp_port()
    p1 = make_node(tmp_path, "n1", key, port)
    p2 = make_node(tmp_path, "n2", key, port)
    vip1, vip2 = FakeVips(), FakeVips()
    d1 = Daemon(p1, "n1", watchdog=False, vips=lambda m: vip1, api_tls=False)
    d2 = Daemon(p2, "n2", watchdog=False, vips=lambda m: vip2, api_tls=False)
    await d1.start()
    await d2.start()
    c1, c2 = Client.local(p1.api_socket), Client.local(p2.api_socket)
    try:
        for c in (c1, c2):
            await c.command("demo", CommandRequest(command=Command.START))
            await wait_state(c, State.WAIT, 3)
        await asyncio.sleep(0.5)
        assert (await c1.module("demo")).state is State.WAIT  # nobody up to date: both WAIT
        await c1.command("demo", CommandRequest(command=Command.PRIM))
        await wait_state(c1, State.ALONE, 3)
        await wait_state(c2, State.SECOND, 5)
        await wait_state(c1, State.PRIM, 5)
        assert vip1.present and not vip2.present
        log1 = (tmp_path / "n1" / "scripts.log").read_text()
        assert log1.count("start_prim") == 1
        await d1.stop()  # abrupt: no stop script
        took = await wait_state(c2, State.ALONE, 4)
        assert took < 1.0 + 1.5
        # ALONE is announced when the takeover starts; the VIP follows the data path
        for _ in range(100):
            if vip2.present:
                break
            await asyncio.sleep(0.02)
        assert vip2.present
        assert "start_prim" in (tmp_path / "n2" / "scripts.log").read_text()
        assert "stop_prim" not in (tmp_path / "n1" / "scripts.log").read_text()
    finally:
        await c1.aclose()
        await c2.aclose()
        await d1.stop()
        await d2.stop()
