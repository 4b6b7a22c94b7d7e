"""One arbitrator witness host serving two clusters, deployed by the playbooks over SSH on
a namespace lab of four nodes and the witness (docs/ansible.md, "A witness host for
several clusters"):

- ``witnesses/``: the lab's witness defined once, no cluster variable, no secret;
- site ``wa``: cluster ``wa`` on n1, n2; site ``wb``: cluster ``wb`` on n3, n4; each names
  the witness host (``hamod_cluster_witness_host: witness``), each has its own vault.

The tests run in order, each from where the previous one left the lab: ``wa`` deployed
alone, then ``wb`` (its key added to the running arbitrator by SIGHUP: same process, both
keys), the arbitrator decides for each cluster
(``wa``: the link n1-n2 cut, the secondary is refused and waits; ``wb``: its primary
powered off, the survivor takes over), the witness host and the powered-off node boot and
start hamod by themselves (/etc/rc.local), and uninstalling ``wa`` takes only its key off:
the arbitrator keeps running, ``wb`` keeps its lease.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hamod.testing.lab import Lab
from tests.ansible.helpers import (
    Run,
    Site,
    cannot_deploy,
    deploy_lab,
    kv_module,
    playbook,
    write_site,
    write_witnesses,
)

pytestmark = pytest.mark.lab

HAMOD = "/opt/hamod/venv/bin/hamod"
KEYS = "/etc/hamod/witness/keys"
PIDFILE = "/run/hamod/witness.pid"
LOG = "/var/log/hamod/witness.log"
NODES = {"wa": ("n1", "n2"), "wb": ("n3", "n4")}


@dataclass
class Env:
    lab: Lab
    base: Path
    sites: dict[str, Site]
    witnesses: Site

    def vip(self, cluster: str) -> str:
        return self.lab.free_address(0 if cluster == "wa" else 1)

    def run(self, name: str, *inventories: Site, args: tuple[str, ...] = ()) -> Run:
        """``ansible-playbook -i A -i B ... playbooks/NAME``; exit 0 required."""
        first, *rest = inventories
        extra = [a for s in rest for a in ("-i", str(s.dir))]
        run = playbook(first, name, *extra, *args)
        assert run.rc == 0, f"{' '.join(run.args)}: exit {run.rc}\n{run.tail()}"
        return run

    def state(self, node: str) -> dict[str, object]:
        out = self.lab.exec(node, [HAMOD, "state", "-m", "kv", "--json"]).stdout
        data = json.loads(out)[0]
        assert isinstance(data, dict)
        return data

    def states(self, *nodes: str) -> dict[str, str]:
        return {n: str(self.state(n)["state"]) for n in nodes}

    def wait_states(self, want: dict[str, str], timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        last: dict[str, str] = {}
        while time.monotonic() < deadline:
            try:
                last = {n: str(self.state(n)["state"]) for n in want}
            except Exception:
                last = {}
            if last == want:
                return
            time.sleep(0.3)
        raise AssertionError(f"kv: {last} after {timeout} s, wanted {want}")

    def key_files(self) -> list[str]:
        out = self.lab.exec("witness", f"ls {KEYS}").stdout
        return sorted(out.split())

    def witness_pid(self) -> int:
        pid = int(self.lab.exec("witness", f"cat {PIDFILE}").stdout)
        assert self.lab.exec("witness", f"kill -0 {pid}", check=False).returncode == 0
        return pid

    def http(self, vip: str, path: str, data: bytes | None = None) -> str:
        method = "GET" if data is None else "PUT"
        code = (
            "import sys, urllib.request as u\n"
            f"r = u.Request('http://{vip}:8080{path}', data={data!r}, method='{method}')\n"
            "sys.stdout.write(u.urlopen(r, timeout=5).read().decode())\n"
        )
        return self.lab.exec("client", ["python3", "-c", code], timeout=20).stdout


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    if (why := cannot_deploy()) is not None:
        pytest.skip(why)
    with deploy_lab("wsh", nodes=4) as (lab, wheelhouse):
        base = tmp_path_factory.mktemp("sites")
        witnesses = write_witnesses(base, lab, wheelhouse=wheelhouse)
        sites = {}
        for i, (name, nodes) in enumerate(NODES.items()):
            module = kv_module("kv", lab.free_address(i), nodes=list(nodes))
            sites[name] = write_site(
                base, lab, [module], name=name, wheelhouse=wheelhouse, nodes=nodes,
                witness_host="witness", extra_vars={"hamod_node_firewall": "none"},
            )  # fmt: skip
            playbook_run = playbook(sites[name], "secrets.yml")
            assert playbook_run.rc == 0, playbook_run.tail()
        yield Env(lab, base, sites, witnesses)


def test_one_witness_host_serves_two_clusters_deployed_one_after_the_other(env: Env) -> None:
    wa, wb, wit = env.sites["wa"], env.sites["wb"], env.witnesses
    env.run("init.yml", wa, wit)
    assert env.key_files() == ["wa.key"]
    pid = env.witness_pid()
    env.run("init.yml", wb, wit)
    # the second cluster's key went to the running arbitrator: SIGHUP, no restart
    assert env.key_files() == ["wa.key", "wb.key"]
    assert env.witness_pid() == pid
    for key in env.key_files():
        mode = env.lab.exec("witness", f"stat -c '%a %U' {KEYS}/{key}").stdout.split()
        assert mode == ["600", "root"], (key, mode)
    # each key is its own cluster's (from its own vault), never the other's
    for name, (n, _) in NODES.items():
        node_key = env.lab.exec(n, "cat /etc/hamod/cluster.key").stdout
        assert env.lab.exec("witness", f"cat {KEYS}/{name}.key").stdout == node_key
    log = env.lab.exec("witness", f"cat {LOG}").stdout
    assert "serving 2 cluster(s): wa, wb" in log, log[-2000:]
    # the nodes reach the arbitrator at the witness host's address
    cluster = env.lab.exec("n3", "cat /etc/hamod/cluster.yaml").stdout
    assert f"address: {env.lab.address('witness')}" in cluster, cluster
    for name, (n1, n2) in NODES.items():
        assert str(env.state(n1)["state"]) == "PRIM", name
        assert str(env.state(n2)["state"]) == "SECOND", name
    assert env.http(env.vip("wa"), "/") == "n1\n"
    assert env.http(env.vip("wb"), "/") == "n3\n"


def test_the_arbitrator_keeps_a_cut_off_secondary_waiting(env: Env) -> None:
    """wa: n1 and n2 no longer see each other, both see the witness: only the primary's
    lease stands, n2 is refused the next term and waits (no second primary)."""
    lab = env.lab
    assert json.loads(env.http(env.vip("wa"), "/kv/a1", b"before"))["node"] == "n1"
    lab.partition("n1", "n2")
    try:
        env.wait_states({"n1": "ALONE", "n2": "WAIT"}, timeout=30)
        time.sleep(3)  # well past the heartbeat timeout (2 s): still one primary
        assert env.states("n1", "n2") == {"n1": "ALONE", "n2": "WAIT"}
        assert lab.vip_owner(env.vip("wa")) == "n1"
        assert json.loads(env.http(env.vip("wa"), "/kv/a2", b"cut"))["node"] == "n1"
    finally:
        lab.heal()
    env.wait_states({"n1": "PRIM", "n2": "SECOND"}, timeout=90)
    # wb was never disturbed
    assert env.states("n3", "n4") == {"n3": "PRIM", "n4": "SECOND"}


def test_the_arbitrator_lets_the_survivor_take_over(env: Env) -> None:
    """wb: its primary n3 is powered off; n4 gets the next term from the witness."""
    lab = env.lab
    assert json.loads(env.http(env.vip("wb"), "/kv/b1", b"before"))["node"] == "n3"
    for i in lab.topo.nets_of("n3"):
        lab.unplug("n3", f"net{i}")
    lab.kill("n3")
    env.wait_states({"n4": "ALONE"}, timeout=30)
    st = env.state("n4")
    assert st["phase"] == "READY" and int(str(st["term"])) >= 2, st
    assert lab.vip_owner(env.vip("wb")) == "n4"
    assert env.http(env.vip("wb"), "/kv/b1") == "before"


def test_rebooted_hosts_start_hamod_again_by_themselves(env: Env) -> None:
    """No systemd on the lab's hosts: the roles' /etc/rc.local blocks start the arbitrator
    (for both clusters) and a node's daemon at boot, with no playbook run."""
    lab = env.lab
    started = "(UDP) for wa, wb"  # the arbitrator's first line, naming its clusters
    log_before = lab.exec("witness", f"cat {LOG}").stdout.count(started)
    old = env.witness_pid()
    lab.kill("witness")
    lab.start("witness")
    deadline = time.monotonic() + 30
    while True:
        res = lab.exec("witness", f"cat {PIDFILE} && cat {LOG}", check=False)
        if res.returncode == 0 and res.stdout.count(started) > log_before:
            break
        assert time.monotonic() < deadline, f"no arbitrator after the boot:\n{res.stdout[-1500:]}"
        time.sleep(0.3)
    assert env.witness_pid() != old
    # n3, powered off by the previous test, boots: back in wb as SECOND, in sync
    lab.start("n3")
    env.wait_states({"n3": "SECOND", "n4": "PRIM"}, timeout=90)
    assert lab.exec("n3", "cat /srv/kv/b1").stdout == "before"
    assert env.states("n1", "n2") == {"n1": "PRIM", "n2": "SECOND"}


def test_uninstalling_one_cluster_keeps_the_other_on_the_witness(env: Env) -> None:
    pid = env.witness_pid()
    env.run("uninstall.yml", env.sites["wa"], env.witnesses)
    assert env.key_files() == ["wb.key"]
    assert env.witness_pid() == pid, "the arbitrator was restarted"
    assert env.lab.exec("witness", "test -x /opt/hamod/venv/bin/hamod", check=False).returncode == 0
    log = env.lab.exec("witness", f"cat {LOG}").stdout
    assert "serving 1 cluster(s): wb" in log, log[-2000:]
    for node in NODES["wa"]:
        assert env.lab.exec(node, "test -e /etc/hamod", check=False).returncode != 0
        assert env.lab.exec(node, "cat /srv/kv/a2").stdout == "cut"
    # wb's primary keeps renewing its lease with the arbitrator (lease < 2 s timeout)
    time.sleep(5)
    st = env.state("n4")
    assert st["state"] == "PRIM" and st["phase"] == "READY", st
    assert env.http(env.vip("wb"), "/kv/b1") == "before"
