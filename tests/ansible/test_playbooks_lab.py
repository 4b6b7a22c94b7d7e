"""The playbooks for real: ansible-playbook over SSH (and paramiko) against a namespace
lab, with hamod installed on the nodes from a wheelhouse built here (pip --no-index).

One lab and one site inventory for the whole module; the tests run in order and each
starts from where the previous one left the cluster:

- a bad inventory is refused by the check play, naming the variable, before any host
  is touched;
- init with two modules: `kv` (no data anywhere: its first node) and `kv2` (data on both
  nodes): init refuses to guess for kv2 and starts nothing, then with `primary: n2`
  starts kv PRIM on n1 and kv2 PRIM on n2 (active/active), VIPs answering;
- a rerun of init changes nothing, and `--check --diff` reports no change;
- status (over paramiko), stop and start, a power-off of the primaries then failback, swap,
  uninstall.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hamod.testing.fixtures import unique_lab_name
from hamod.testing.lab import Lab, lab_available, sweep
from tests.ansible.helpers import (
    Run,
    Site,
    ansible_missing,
    build_wheelhouse,
    kv_module,
    playbook,
    write_site,
)

pytestmark = pytest.mark.lab

HAMOD = "/opt/hamod/venv/bin/hamod"


@dataclass
class Env:
    lab: Lab
    site: Site
    base: Path

    def vip(self, i: int) -> str:
        return self.lab.free_address(i)

    def state(self, node: str, module: str) -> dict[str, object]:
        out = self.lab.exec(node, [HAMOD, "state", "-m", module, "--json"]).stdout
        data = json.loads(out)[0]
        assert isinstance(data, dict)
        return data

    def states(self, module: str) -> dict[str, str]:
        return {n: str(self.state(n, module)["state"]) for n in self.lab.node_names}

    def wait_states(self, module: str, want: dict[str, str], timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        last: dict[str, str] = {}
        while time.monotonic() < deadline:
            try:
                last = {n: str(self.state(n, module)["state"]) for n in want}
            except Exception:
                last = {}
            if last == want:
                return
            time.sleep(0.3)
        raise AssertionError(f"{module}: {last} after {timeout} s, wanted {want}")

    def http(self, vip: str, path: str, data: bytes | None = None, port: int = 8080) -> str:
        """An HTTP request from the client namespace to the kvstore behind ``vip``."""
        method = "GET" if data is None else "PUT"
        code = (
            "import sys, urllib.request as u\n"
            f"r = u.Request('http://{vip}:{port}{path}', data={data!r}, method='{method}')\n"
            "sys.stdout.write(u.urlopen(r, timeout=5).read().decode())\n"
        )
        return self.lab.exec("client", ["python3", "-c", code], timeout=20).stdout


def _ok(run: Run) -> Run:
    assert run.rc == 0, f"{' '.join(run.args)}: exit {run.rc}\n{run.tail()}"
    return run


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    for why in (lab_available(), ansible_missing()):
        if why is not None:
            pytest.skip(why)
    sweep()
    wheelhouse = build_wheelhouse()
    lab = Lab(unique_lab_name("ans"), nodes=2)
    lab.up()
    try:
        base = tmp_path_factory.mktemp("inventory")
        modules = [
            kv_module("kv", lab.free_address(0)),
            kv_module("kv2", lab.free_address(1), kvstore_port=8081,
                      replication={"directories": [{"path": "/srv/kv2"}], "port": 9015,
                                   "link_timeout": "3s"}),
        ]  # fmt: skip
        site = write_site(
            base, lab, modules, wheelhouse=wheelhouse,
            extra_vars={"hamod_node_firewall": "none"},
        )  # fmt: skip
        _ok(playbook(site, "secrets.yml"))
        vault = (site.group_vars / "vault.yml").read_text()
        assert vault.startswith("$ANSIBLE_VAULT;"), "the secrets must be vault-encrypted"
        yield Env(lab, site, base)
    finally:
        lab.down()


def _variant(env: Env, name: str) -> Site:
    """A copy of the site inventory to break."""
    dst = env.base / f"bad-{name}"
    shutil.copytree(env.site.dir, dst / env.site.name)
    return Site(env.site.name, dst / env.site.name, env.site.vault_password_file)


def test_a_bad_inventory_fails_before_any_host_is_touched(env: Env) -> None:
    cases: list[tuple[str, str]] = []

    missing = _variant(env, "address")
    missing.set_host_vars("n2", hamod_node_addresses={"net0": env.lab.address("n2")})
    cases.append(("address", "n2: hamod_node_addresses.net1 is missing"))

    vip = _variant(env, "vip")
    mods = vip.main_vars()["hamod_module_list"]
    mods[0]["vips"] = [{"addr": "10.99.0.50"}]
    vip.set_vars(hamod_module_list=mods)
    cases.append(("vip", "hamod_module_list[kv].vips[0].addr: 10.99.0.50 is outside every subnet"))

    template = _variant(env, "template")
    mods = template.main_vars()["hamod_module_list"]
    mods[0]["template"] = "postgres-ha"
    template.set_vars(hamod_module_list=mods)
    cases.append(("template", "template must be one of: generic, kvstore, got: postgres-ha"))

    two = _variant(env, "primaries")
    two.set_host_vars("n1", hamod_init_primary=True)
    two.set_host_vars("n2", hamod_init_primary=True)
    cases.append(("primaries", "two primaries chosen: hamod_init_primary is true on n1 and n2"))

    sites = {"address": missing, "vip": vip, "template": template, "primaries": two}
    for name, message in cases:
        run = playbook(sites[name], "init.yml")
        assert run.rc != 0, f"{name}: the bad inventory was accepted\n{run.tail()}"
        assert message in run.out, f"{name}: {message!r} not in the output\n{run.tail(40)}"
        assert "PLAY [Deploy hamod]" not in run.out, f"{name}: the deploy play ran\n{run.tail()}"
        assert "UNREACHABLE" not in run.out
    for node in env.lab.node_names:
        assert env.lab.exec(node, "test -e /etc/hamod", check=False).returncode != 0


def test_init_refuses_to_guess_when_both_nodes_have_data(env: Env) -> None:
    for node in env.lab.node_names:
        env.lab.exec(node, f"mkdir -p /srv/kv2 && echo {node} > /srv/kv2/from-{node}")
    run = playbook(env.site, "init.yml")
    assert run.rc != 0, run.tail()
    assert "module kv2: both n1 and n2 have data" in run.out, run.tail(40)
    assert "set hamod_init_primary: true on the node holding the good data" in run.out
    # installed and configured, but nothing started
    for module in ("kv", "kv2"):
        assert env.states(module) == {"n1": "STOP", "n2": "STOP"}


def test_init_starts_each_module_with_its_primary_and_the_vips_answer(env: Env) -> None:
    mods = env.site.main_vars()["hamod_module_list"]
    mods[1]["primary"] = "n2"
    env.site.set_vars(hamod_module_list=mods)
    # the deployment is done (previous test): only the modules' start runs again
    run = _ok(playbook(env.site, "init.yml", "--tags", "start"))
    assert "Copy the wheelhouse to the node" not in run.out
    assert env.states("kv") == {"n1": "PRIM", "n2": "SECOND"}
    assert env.states("kv2") == {"n1": "SECOND", "n2": "PRIM"}
    assert env.lab.vip_owner(env.vip(0)) == "n1"
    assert env.lab.vip_owner(env.vip(1)) == "n2"
    assert env.http(env.vip(0), "/") == "n1\n"
    assert json.loads(env.http(env.vip(0), "/kv/k1", b"v1"))["node"] == "n1"
    assert env.http(env.vip(0), "/kv/k1") == "v1"
    # kv2 kept n2's data (the chosen primary) and mirrored it to n1
    assert "from-n2" in env.http(env.vip(1), "/kv", port=8081)
    assert env.lab.exec("n1", "cat /srv/kv2/from-n2").stdout == "n2\n"
    assert env.lab.exec("n1", "test -e /srv/kv2/from-n1", check=False).returncode != 0
    assert run.changed > 0


def test_a_rerun_of_init_changes_nothing(env: Env) -> None:
    run = _ok(playbook(env.site, "init.yml"))
    assert "Copy the wheelhouse to the node" in run.out
    assert run.changed == 0, "\n".join(run.changed_tasks())


def test_check_diff_on_the_deployed_site_reports_no_change(env: Env) -> None:
    run = _ok(playbook(env.site, "init.yml", "--check", "--diff"))
    assert run.changed == 0, "\n".join(run.changed_tasks())


def test_status_is_a_table_of_every_module_over_paramiko(env: Env) -> None:
    out = env.base / "status.json"
    run = _ok(playbook(env.site, "status.yml", "-e", f"hamod_status_file={out}",
                       connection="paramiko"))  # fmt: skip
    assert run.recap["n1"]["unreachable"] == 0 and run.recap["n2"]["unreachable"] == 0
    assert run.changed == 0
    data = json.loads(out.read_text())
    states = {(m["module"], node): m["state"] for node, ms in data["ans"].items() for m in ms}
    assert states == {("kv", "n1"): "PRIM", ("kv", "n2"): "SECOND",
                      ("kv2", "n1"): "SECOND", ("kv2", "n2"): "PRIM"}  # fmt: skip
    assert "SITE" in run.out and "PRIM (ready)" in run.out


def test_stop_then_start(env: Env) -> None:
    run = _ok(playbook(env.site, "stop.yml", "-e", "hamod_target_modules=kv"))
    assert run.changed == 2
    assert env.states("kv") == {"n1": "STOP", "n2": "STOP"}
    assert env.lab.vip_owner(env.vip(0)) is None
    assert _ok(playbook(env.site, "stop.yml", "-e", "hamod_target_modules=kv")).changed == 0
    _ok(playbook(env.site, "start.yml", "-e", "hamod_target_modules=kv"))
    # the start waited until both serve: one PRIM (the last primary, n1), one SECOND
    assert sorted(env.states("kv").values()) == ["PRIM", "SECOND"]
    assert env.http(env.vip(0), "/kv/k1") == "v1"


def test_failback_brings_a_powered_off_node_back_in_sync(env: Env) -> None:
    lab = env.lab
    for i in lab.topo.nets_of("n2"):
        lab.unplug("n2", f"net{i}")
    lab.kill("n2")
    env.wait_states("kv", {"n1": "ALONE"})
    env.wait_states("kv2", {"n1": "ALONE"})
    assert json.loads(env.http(env.vip(0), "/kv/k2", b"written-alone"))["node"] == "n1"
    lab.start("n2")
    run = _ok(playbook(env.site, "failback.yml"))
    assert run.changed >= 1
    for module in ("kv", "kv2"):
        assert env.states(module) == {"n1": "PRIM", "n2": "SECOND"}
        st = env.state("n2", module)
        assert st["up_to_date"] and st["resync"] is None
    assert lab.exec("n2", "cat /srv/kv/k2").stdout == "written-alone"


def test_swap_exchanges_the_roles_and_keeps_the_data(env: Env) -> None:
    # after failback: n1 PRIM, n2 SECOND for both modules
    _ok(
        playbook(
            env.site, "swap.yml", "-e", "hamod_target_modules=kv", "-e", "hamod_wait_retries=6"
        )
    )
    assert env.states("kv") == {"n1": "SECOND", "n2": "PRIM"}
    assert env.states("kv2") == {"n1": "PRIM", "n2": "SECOND"}  # not targeted
    assert env.lab.vip_owner(env.vip(0)) == "n2"
    assert env.http(env.vip(0), "/kv/k1") == "v1"


def test_uninstall_removes_hamod_and_keeps_the_data(env: Env) -> None:
    _ok(playbook(env.site, "uninstall.yml"))
    for node in env.lab.node_names:
        ex = env.lab.exec
        assert ex(node, "test -e /etc/hamod || test -e /opt/hamod/venv", check=False).returncode
        assert ex(node, "pgrep -f '[h]amod daemon'", check=False).returncode != 0
        assert ex(node, "cat /srv/kv/k1").stdout == "v1"
    assert env.lab.exec("witness", "test -e /etc/hamod/witness", check=False).returncode
    assert env.lab.vip_owner(env.vip(0)) is None
