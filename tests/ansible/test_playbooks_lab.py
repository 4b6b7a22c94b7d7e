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
- status (over paramiko), stop and start, a power-off of the primaries then failback, swap;
- no systemd on the lab: hamod starts at boot from /etc/rc.local (roles/hamod_node,
  tasks/boot.yml): a powered-off primary boots and comes back SECOND by itself, a module
  with ``boot off`` stays stopped, stopping the daemons removes the start at boot;
- a failed upgrade step stops the run with everything served by the other node;
- uninstall.
"""

from __future__ import annotations

import json
import shutil
import tarfile
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
)

pytestmark = pytest.mark.lab

HAMOD = "/opt/hamod/venv/bin/hamod"
RC_LOCAL = "/etc/rc.local"
BEGIN = "# BEGIN hamod (roles/hamod_node): start the daemon at boot"
END = "# END hamod (roles/hamod_node): start the daemon at boot"


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

    def wait_in_sync(self, module: str, want: dict[str, str], timeout: float = 90) -> None:
        """Every node of ``want`` in its state, READY; a SECOND up to date, no resync."""
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            try:
                sts = {n: self.state(n, module) for n in want}
            except Exception as exc:  # a daemon not up yet
                last = str(exc)[-200:]
            else:
                last = {n: (s["state"], s["phase"], s["up_to_date"]) for n, s in sts.items()}
                if all(
                    s["state"] == want[n] and s["phase"] == "READY"
                    and (s["state"] != "SECOND" or (s["up_to_date"] and s["resync"] is None))
                    for n, s in sts.items()
                ):  # fmt: skip
                    return
            time.sleep(0.3)
        raise AssertionError(f"{module}: {last} after {timeout} s, wanted {want} in sync")

    def boot_block(self, node: str) -> str | None:
        """The role's block in /etc/rc.local (None without one); the file stays a valid
        script: ``#!/bin/sh -e`` first, ``exit 0`` last, mode 755."""
        text = self.lab.exec(node, f"cat {RC_LOCAL} 2>/dev/null || true").stdout
        if BEGIN not in text:
            return None
        lines = text.splitlines()
        assert lines[0] == "#!/bin/sh -e" and lines[-1] == "exit 0", text
        assert lines.count(BEGIN) == 1 and lines.count(END) == 1, text
        assert self.lab.exec(node, f"stat -c %a {RC_LOCAL}").stdout.strip() == "755"
        return "\n".join(lines[lines.index(BEGIN) : lines.index(END) + 1])

    def reboot(self, node: str, off: bool = True) -> None:
        """Power ``node`` off (unless ``off`` is false: it is) and boot it again (files
        kept); the boot does not wait for /etc/rc.local."""
        if off:
            self.lab.kill(node)
        t0 = time.monotonic()
        self.lab.start(node)
        assert time.monotonic() - t0 < 10, "the boot waited for /etc/rc.local"

    def daemon_runs(self, node: str) -> bool:
        return self.lab.exec(node, [HAMOD, "service", "status"], check=False).returncode == 0

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
    if (why := cannot_deploy()) is not None:
        pytest.skip(why)
    with deploy_lab("ans") as (lab, wheelhouse):
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
    # no systemd here: the daemon starts at boot from /etc/rc.local, in the background
    for node in env.lab.node_names:
        block = env.boot_block(node)
        assert block is not None, f"{node}: no start at boot in {RC_LOCAL}"
        assert f"{HAMOD} service start" in block and "--no-watchdog" not in block, block
        assert block.split("\n")[-2].strip() == "fi" and "2>&1 &" in block, block


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
    # without its boot hook (hamod_node: /etc/rc.local), n2 stays down after the boot
    # until failback.yml, which puts the hook back
    lab.exec("n2", "rm -f /etc/rc.local")
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
    assert env.boot_block("n2") is not None  # put back by failback.yml


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


def test_a_rebooted_node_starts_hamod_by_itself_but_not_a_module_with_boot_off(
    env: Env,
) -> None:
    # after swap: kv PRIM on n2, kv2 PRIM on n1. n1 loses power with kv at `boot off`:
    # its daemon starts at boot (no playbook), kv2 comes back SECOND, kv stays STOP.
    lab = env.lab
    lab.exec("n1", [HAMOD, "boot", "off", "-m", "kv"])
    lab.kill("n1")
    # n2 notices (heartbeat timeout) before n1 boots again: a boot within the timeout
    # would find n2 still SECOND, and n1, with the newest data, primary again
    env.wait_states("kv2", {"n2": "ALONE"})
    env.reboot("n1", off=False)
    env.wait_in_sync("kv2", {"n1": "SECOND", "n2": "PRIM"})
    assert lab.exec("n1", "cat /srv/kv2/from-n2").stdout == "n2\n"
    assert "daemon started (pid" in lab.exec("n1", "cat /var/log/hamod/boot.log").stdout
    st = env.state("n1", "kv")
    assert st["state"] == "STOP", st
    assert "(boot off)" in lab.exec("n1", "cat /var/log/hamod/kv.log").stdout
    assert env.state("n2", "kv")["state"] == "ALONE"
    lab.exec("n1", [HAMOD, "boot", "auto", "-m", "kv"])
    lab.exec("n1", [HAMOD, "start", "-m", "kv"])
    env.wait_in_sync("kv", {"n1": "SECOND", "n2": "PRIM"})


def test_a_failed_upgrade_step_stops_with_the_cluster_serving(env: Env) -> None:
    # after swap: kv PRIM on n2, kv2 PRIM on n1. A release whose install fails (a
    # requirement no wheel provides): the first node hands its modules over, its install
    # fails, the run stops there; everything is served by the other node, nothing lost.
    bad = env.base / "bad-wheelhouse"
    bad.mkdir()
    (bad / "requirements.txt").write_text("hamod-no-such-requirement==9.9\n")
    with tarfile.open(bad / "wheelhouse.tar", "w") as tar:
        tar.add(bad / "requirements.txt", arcname="requirements.txt")

    def stamps() -> dict[str, str]:
        cmd = "cat /opt/hamod/venv/.hamod-wheelhouse"
        return {n: env.lab.exec(n, cmd).stdout for n in env.lab.node_names}

    before = stamps()
    # the nodes only (the witness goes first otherwise, and would be the one failing)
    run = playbook(env.site, "upgrade.yml", "-e", f"hamod_node_wheelhouse={bad}",
                   "--limit", "n1,n2")  # fmt: skip
    assert run.rc != 0, run.tail()
    assert "hamod-no-such-requirement" in run.out, run.tail(40)
    failed = [n for n, r in run.recap.items() if r["failed"]]
    assert len(failed) == 1, run.recap
    (node,) = failed
    (other,) = [n for n in env.lab.node_names if n != node]
    # neither virtualenv changed: the failed install left the old release in place
    assert stamps() == before
    for module in ("kv", "kv2"):
        assert env.states(module) == {node: "SECOND", other: "PRIM"}
    assert env.lab.vip_owner(env.vip(0)) == other and env.lab.vip_owner(env.vip(1)) == other
    assert env.http(env.vip(0), "/kv/k1") == "v1"
    assert json.loads(env.http(env.vip(0), "/kv/k3", b"after-failed-upgrade"))["node"] == other
    # the daemon on the failed node still runs the release it had
    assert env.lab.exec(node, [HAMOD, "state", "--json"]).returncode == 0
    for node in env.lab.node_names:  # mirrored while the run had failed
        assert env.lab.exec(node, "cat /srv/kv/k3").stdout == "after-failed-upgrade"
    # a full rolling upgrade is tested by Molecule (molecule/upgrade)


def test_stopping_the_daemons_removes_their_start_at_boot(env: Env) -> None:
    lab = env.lab
    _ok(playbook(env.site, "stop.yml", "-e", "hamod_stop_daemon=true"))
    for node in lab.node_names:
        assert env.boot_block(node) is None
        assert lab.exec(node, f"tail -n 1 {RC_LOCAL}").stdout == "exit 0\n"
        assert not env.daemon_runs(node)
    env.reboot("n2")
    time.sleep(3)
    assert not env.daemon_runs("n2"), "the daemon started at boot after stop.yml"
    # start.yml runs the daemons and the modules again, and puts the start at boot back
    _ok(playbook(env.site, "start.yml"))
    for module in ("kv", "kv2"):
        assert sorted(env.states(module).values()) == ["PRIM", "SECOND"]
    for node in lab.node_names:
        assert env.boot_block(node) is not None


def test_uninstall_removes_hamod_and_keeps_the_data(env: Env) -> None:
    _ok(playbook(env.site, "uninstall.yml"))
    for node in env.lab.node_names:
        ex = env.lab.exec
        assert ex(node, "test -e /etc/hamod || test -e /opt/hamod/venv", check=False).returncode
        assert ex(node, "pgrep -f '[h]amod daemon'", check=False).returncode != 0
        assert ex(node, "cat /srv/kv/k1").stdout == "v1"
        assert env.boot_block(node) is None
    assert env.lab.exec("witness", "test -e /etc/hamod/witness", check=False).returncode
    assert env.lab.vip_owner(env.vip(0)) is None
