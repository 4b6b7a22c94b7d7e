"""LabCluster's deployment without the daemon: every file the contract names is in each
node with its mode, `hamod config check` inside a node accepts the rendered files, the
scripts journal and start/stop the trivial service, and the arbitrator answers."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from hamod.testing.cluster import PYTHON, LabCluster, ModuleSpec, VipWatch
from hamod.testing.cluster_files import render_module

pytestmark = pytest.mark.lab

CONTRACT_FILES = {
    "/etc/hamod/cluster.yaml": "644",
    "/etc/hamod/cluster.key": "600",
    "/etc/hamod/tls/ca.crt": "644",
    "/etc/hamod/tls/node.crt": "644",
    "/etc/hamod/tls/node.key": "600",
}

LEASE_CHECK = r"""
import asyncio, sys
from pathlib import Path
from hamod.adapters.pki import read_cluster_key
from hamod.witness import WitnessClient
addr, cluster = sys.argv[1], sys.argv[2]
key = read_cluster_key(Path(sys.argv[3]))
async def main():
    client = WitnessClient(addr, 9011, {cluster: key})
    reply = await client.request_lease(cluster, "selftest", "n1", term=1, lease=0.5, timeout=3)
    print("granted" if reply is not None and reply.granted else f"no: {reply}")
asyncio.run(main())
"""


def test_deployment_files_scripts_and_witness(make_cluster: Callable[..., LabCluster]) -> None:
    c = make_cluster(ModuleSpec("demo"), ModuleSpec("web", port=7071, vips=0, vips6=1), start=False)
    c.start_witness()
    for node in c.nodes:
        modes = {
            p: c.lab.exec(node, ["stat", "-c", "%a", p]).stdout.strip() for p in CONTRACT_FILES
        }
        assert modes == CONTRACT_FILES, node
        for m in ("demo", "web"):
            out = c.lab.exec(node, f"ls -l /etc/hamod/modules/{m}/scripts").stdout
            for script in ("prestart", "start_prim", "stop_prim", "start_second",
                           "stop_second", "poststop"):  # fmt: skip
                assert "-rwxr-xr-x 1 root root" in out and script in out, out
        res = c.lab.exec(
            node,
            [PYTHON, "-m", "hamod", "config", "check", "/etc/hamod/cluster.yaml",
             "/etc/hamod/modules/demo.yaml", "/etc/hamod/modules/web.yaml"],
            check=False,
        )  # fmt: skip
        assert res.returncode == 0, res.stdout + res.stderr
        assert res.stdout.count(": ok") == 3, res.stdout
        assert c.lab.exec(node, "cat /etc/hamod/node").stdout.strip() == node
    # the cluster file is the lab's topology, identical everywhere
    texts = {c.lab.exec(n, "cat /etc/hamod/cluster.yaml").stdout for n in c.nodes}
    assert len(texts) == 1 and c.lab.address("n1", "net1") in texts.pop()
    assert c.module_file("web") == render_module(c.modules["web"], [c.vip("web")])
    # scripts: journal, the trivial service on the IPv6 VIP, stop with and without force
    scripts = "/etc/hamod/modules/web/scripts"
    c.lab.exec("n1", f"{scripts}/prestart; {scripts}/start_prim STOP ALONE start")
    pid = c.service_pid("n1", "web")
    assert pid is not None
    c.lab.exec("n1", f"ip -6 addr add {c.vip('web')}/64 dev eth0 nodad")
    watch = VipWatch(c, c.vip("web"))
    probe = c.probe("web")
    assert probe.wait_answer("n1", timeout=10), probe.samples[-3:]
    result = probe.stop()
    assert result.nodes == ("n1",)
    assert watch.stop()[-1].owners == ("n1",)
    c.lab.exec(
        "n1", f"{scripts}/stop_prim PRIM STOP stop; {scripts}/stop_prim force PRIM STOP stop"
    )
    assert c.service_pid("n1", "web") is None
    assert c.journal("n1", "web") == [
        "prestart ",
        "start_prim STOP ALONE start",
        "stop_prim PRIM STOP stop",
        "stop_prim force PRIM STOP stop",
    ]
    assert [line for _, line in c.journal_ts("n1", "web")] == c.journal("n1", "web")
    assert c.journal("n2", "web") == []
    # the arbitrator answers a lease request from the client, with the cluster's key
    c.lab.exec("client", f"cat > /tmp/{c.lab.name}.key", input=c.pki.cluster_key)  # type: ignore[union-attr]
    c.lab.exec("client", f"chmod 600 /tmp/{c.lab.name}.key")
    try:
        out = c.lab.exec(
            "client",
            [PYTHON, "-c", LEASE_CHECK, c.lab.address("witness"), c.name, f"/tmp/{c.lab.name}.key"],
        ).stdout
    finally:
        c.lab.exec("client", f"rm -f /tmp/{c.lab.name}.key")
    assert out.strip() == "granted", out + c.witness_log()
    c.restart_witness()
    assert c.witness_pid() is not None
    assert "listening" in c.witness_log()
