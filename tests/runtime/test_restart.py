"""A real daemon restarted: within the timeout with its resume marker it resumes (no
script, VIP untouched); after a reboot (no marker) it restores STOP and honours boot."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from hamod.adapters.pki import write_cluster_key
from hamod.api.models import Command, CommandRequest, State
from hamod.cli.client import Client
from hamod.runtime.daemon import Daemon
from hamod.testing.fakes import FakeVips
from tests.runtime.test_two_daemons import _free_udp_port, make_node, wait_state

pytestmark = pytest.mark.anyio


async def run_daemon(paths: object, vips: FakeVips) -> Daemon:
    d = Daemon(paths, "n1", watchdog=False, vips=lambda m: vips, api_tls=False)  # type: ignore[arg-type]
    await d.start()
    return d


@pytest.mark.parametrize("boot", ["auto", "on", "off"])
async def test_restart_resumes_and_reboot_restores(tmp_path: Path, boot: str) -> None:
    key = write_cluster_key(tmp_path)
    paths = make_node(tmp_path, "n1", key, _free_udp_port())
    mod = paths.modules_dir / "demo.yaml"
    mod.write_text(mod.read_text().replace("timeout: 1s", "timeout: 5s") + f"boot: {boot}\n")
    scripts_log = tmp_path / "n1" / "scripts.log"
    vips = FakeVips()
    d = await run_daemon(paths, vips)
    async with Client.local(paths.api_socket) as c:
        await c.command("demo", CommandRequest(command=Command.START))
        await wait_state(c, State.WAIT, 3, settled=True)
        await c.command("demo", CommandRequest(command=Command.PRIM))
        await wait_state(c, State.ALONE, 3, settled=True)
        await asyncio.sleep(0.3)
    await d.stop()  # SIGTERM: app and VIP left as they are
    before = scripts_log.read_text()
    assert vips.present

    # daemon restart within the timeout: resumed, nothing run, VIP untouched
    vips2 = FakeVips(present=True)
    d = await run_daemon(paths, vips2)
    async with Client.local(paths.api_socket) as c:
        await asyncio.sleep(0.5)
        st = await c.module("demo")
        assert (st.state, st.phase.value) == (State.ALONE, "READY")
    await d.stop()
    assert scripts_log.read_text() == before
    assert vips2.calls == 0

    # reboot: /run is gone; STOP from the durable record, VIP cleaned, then boot decides
    shutil.rmtree(paths.run)
    vips3 = FakeVips(present=True)
    d = await run_daemon(paths, vips3)
    async with Client.local(paths.api_socket) as c:
        await asyncio.sleep(0.5)
        st = await c.module("demo")
        assert st.state is State.STOP and vips3.history == [False]  # peer not known yet
        if boot != "off":  # started once the peer is lost (5s): the last primary leads
            await wait_state(c, State.ALONE, 8, settled=True)
    await d.stop()
    assert st.up_to_date  # it was the primary: up to date
    assert scripts_log.read_text().count("start_prim") == (1 if boot == "off" else 2)
