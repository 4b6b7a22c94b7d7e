"""Helpers of the Ansible tests: build the wheelhouse once (cached under build/wheelhouse,
ignored by git), write a site inventory (hosts.yml, group_vars/<site>/, a vault password)
for a namespace lab, and run ansible-playbook as a user would, parsing the recap.

The inventory follows the layout of inventory/sites/<site>/ (docs/ansible.md): one site
group named after the directory, its hosts in the generic groups hamod_nodes and
hamod_witness, connection settings from the lab (through the client namespace with
socat, host keys checked against the lab's known_hosts).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from hamod.testing.fixtures import unique_lab_name
from hamod.testing.lab import Lab, lab_available, sweep

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOKS = ROOT / "playbooks"
VENV_BIN = Path(sys.executable).parent
ANSIBLE_PLAYBOOK = VENV_BIN / "ansible-playbook"
WHEELHOUSE_CACHE = ROOT / "build" / "wheelhouse"
VAULT_PASSWORD = "hamod-test-vault"


def ansible_missing() -> str | None:
    """Why ansible-playbook cannot run here, or None."""
    if not ANSIBLE_PLAYBOOK.exists():
        return f"{ANSIBLE_PLAYBOOK} is missing (scripts/setup installs ansible)"
    return None


def cannot_deploy() -> str | None:
    """Why no lab deployment can run here (no lab, no ansible-playbook), or None."""
    return lab_available() or ansible_missing()


@contextlib.contextmanager
def deploy_lab(tag: str, nodes: int = 2) -> Iterator[tuple[Lab, Path]]:
    """A fresh lab (leftovers of crashed runs swept first) and the wheelhouse of this
    tree, for a test module's deployment; the lab goes at the end."""
    sweep()
    wheelhouse = build_wheelhouse()
    lab = Lab(unique_lab_name(tag), nodes=nodes)
    lab.up()
    try:
        yield lab, wheelhouse
    finally:
        lab.down()


def build_wheelhouse(source: Path = ROOT, cache: Path = WHEELHOUSE_CACHE) -> Path:
    """The wheelhouse directory of ``source`` (this tree) by the role's own script,
    built once per change of the sources (cached under ``cache``)."""
    out = subprocess.run(
        [sys.executable, str(ROOT / "roles/hamod_node/files/hamod-wheelhouse.py"),
         "--source", str(source), "--cache", str(cache)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if out.returncode != 0:
        raise AssertionError(f"wheelhouse build failed:\n{out.stdout}\n{out.stderr}")
    return Path(json.loads(out.stdout)["dir"])


def kv_module(name: str, vip: str, **extra: Any) -> dict[str, Any]:
    """A kvstore mirror module on n1 and n2 with tight timers."""
    doc: dict[str, Any] = {
        "module": name,
        "mode": "mirror",
        "nodes": ["n1", "n2"],
        "template": "kvstore",
        "heartbeat": {"pulse": "100ms", "timeout": "2s", "networks": ["net0", "net1"]},
        "vips": [{"addr": vip}],
        "replication": {"directories": [{"path": f"/srv/{name}"}], "link_timeout": "3s"},
    }
    doc.update(extra)
    return doc


@dataclass
class Site:
    """A site inventory written for a lab: ``dir`` (inventory/sites/<name>-like)."""

    name: str
    dir: Path
    vault_password_file: Path

    @property
    def group_vars(self) -> Path:
        return self.dir / "group_vars" / self.name

    def main_vars(self) -> dict[str, Any]:
        data = yaml.safe_load((self.group_vars / "main.yml").read_text())
        assert isinstance(data, dict)
        return data

    def set_vars(self, **values: Any) -> None:
        """Change variables of group_vars/<site>/main.yml."""
        data = self.main_vars()
        data.update(values)
        (self.group_vars / "main.yml").write_text(yaml.safe_dump(data, sort_keys=False))

    def set_host_vars(self, host: str, **values: Any) -> None:
        """Set host variables in hosts.yml."""
        path = self.dir / "hosts.yml"
        doc = yaml.safe_load(path.read_text())
        for group in doc["all"]["children"][self.name]["children"].values():
            if host in (group.get("hosts") or {}):
                group["hosts"][host].update(values)
        path.write_text(yaml.safe_dump(doc, sort_keys=False))


def write_site(
    base: Path,
    lab: Lab,
    modules: Sequence[Mapping[str, Any]],
    *,
    name: str = "ans",
    wheelhouse: Path | None = None,
    extra_vars: Mapping[str, Any] | None = None,
    host: str | None = None,
    port: int | None = None,
    nodes: Sequence[str] | None = None,
    witness_host: str | None = None,
) -> Site:
    """A site inventory for ``lab`` under ``base/<name>/``. ``host``/``port`` replace
    every host's SSH address (for runs that must not reach any host). ``nodes``: the
    lab's nodes of this cluster (default all). ``witness_host``: the cluster names a
    shared witness host (hamod_cluster_witness_host; see :func:`write_witnesses`) instead
    of having the lab's witness in its own site group."""
    site = base / name
    (site / "group_vars" / name).mkdir(parents=True, exist_ok=True)
    topo = lab.topo
    nets = [f"net{i}" for i in range(topo.networks)]

    def hostvars(h: str, node: bool) -> dict[str, Any]:
        out: dict[str, Any] = {"ansible_host": host or lab.address(h)}
        if port is not None:
            out["ansible_port"] = port
        if node:
            out["hamod_node_addresses"] = {n: lab.address(h, n) for n in nets}
        return out

    groups: dict[str, Any] = {
        f"{name}_nodes": {"hosts": {n: hostvars(n, True) for n in nodes or lab.node_names}}
    }
    children: dict[str, Any] = {
        name: {"children": groups},
        "hamod_nodes": {"children": {f"{name}_nodes": {}}},
    }
    if witness_host is None:
        groups[f"{name}_witness"] = {"hosts": {"witness": hostvars("witness", False)}}
        children["hamod_witness"] = {"children": {f"{name}_witness": {}}}
    doc = {"all": {"children": children}}
    (site / "hosts.yml").write_text(
        f"# site {name}: the namespace lab {lab.name} (tests/ansible)\n"
        + yaml.safe_dump(doc, sort_keys=False)
    )
    (site / "group_vars" / name / "connection.yml").write_text(
        yaml.safe_dump(_connection(lab), sort_keys=False)
    )
    main: dict[str, Any] = {
        "hamod_cluster_name": name,
        "hamod_cluster_networks": [
            {"name": n, "subnet": topo.subnet(i), **({"replication": True} if i == 1 else {})}
            for i, n in enumerate(nets)
        ],
        **({"hamod_cluster_witness_host": witness_host} if witness_host else {}),
        **_lab_settings(wheelhouse),
        "hamod_module_list": [dict(m) for m in modules],
    }
    main.update(extra_vars or {})
    (site / "group_vars" / name / "main.yml").write_text(yaml.safe_dump(main, sort_keys=False))
    return Site(name, site, _vault_password(base))


def write_witnesses(
    base: Path,
    lab: Lab,
    *,
    name: str = "witnesses",
    wheelhouse: Path | None = None,
    extra_vars: Mapping[str, Any] | None = None,
) -> Site:
    """The shared witness hosts' inventory (inventory/sites/witnesses/ layout) under
    ``base/<name>/``: the lab's witness, in hamod_witness, with no cluster variable; the
    clusters of :func:`write_site` name it with ``witness_host="witness"``."""
    d = base / name
    (d / "group_vars" / name).mkdir(parents=True, exist_ok=True)
    doc = {"all": {"children": {
        name: {"hosts": {"witness": {"ansible_host": lab.address("witness")}}},
        "hamod_witness": {"children": {name: {}}},
    }}}  # fmt: skip
    (d / "hosts.yml").write_text(
        f"# shared witness hosts: the namespace lab {lab.name} (tests/ansible)\n"
        + yaml.safe_dump(doc, sort_keys=False)
    )
    (d / "group_vars" / name / "connection.yml").write_text(
        yaml.safe_dump(_connection(lab), sort_keys=False)
    )
    main = {**_lab_settings(wheelhouse), **(extra_vars or {})}
    (d / "group_vars" / name / "main.yml").write_text(yaml.safe_dump(main, sort_keys=False))
    return Site(name, d, _vault_password(base))


def _vault_password(base: Path) -> Path:
    pw = base / ".vault-password"
    pw.write_text(VAULT_PASSWORD + "\n")
    pw.chmod(0o600)
    return pw


def _lab_settings(wheelhouse: Path | None) -> dict[str, Any]:
    """The lab: no systemd, /usr shared with the machine (no package installs, no link
    in /usr/local), no route to a registry (the wheelhouse comes from here)."""
    return {
        "hamod_node_service_manager": "none",
        "hamod_node_packages": ["fuse3", "rsync", "nftables", "arping", "iproute2", "python3-venv"],
        "hamod_node_bin_link": "",
        "hamod_node_logrotate": True,
        "hamod_node_wheelhouse": str(wheelhouse) if wheelhouse else "",
    }


def _connection(lab: Lab) -> dict[str, Any]:
    """Ansible's connection settings for the lab's hosts (through the client namespace)."""
    topo = lab.topo
    state = lab.state_dir / "ssh"
    return {
        "ansible_user": "root",
        "ansible_ssh_private_key_file": str(state / "id_ed25519"),
        "ansible_ssh_common_args": (
            f"-o UserKnownHostsFile={state / 'known_hosts'} -o StrictHostKeyChecking=yes "
            f"-o IdentitiesOnly=yes -o ConnectTimeout=5 "
            f'-o ProxyCommand="ip netns exec {topo.netns("client")} socat STDIO TCP:%h:%p"'
        ),
        "ansible_python_interpreter": "/usr/bin/python3",
        # paramiko: the lab's host keys are not in ~/.ssh/known_hosts; record none there
        "ansible_paramiko_host_key_checking": False,
        "ansible_paramiko_record_host_keys": False,
        "ansible_paramiko_proxy_command": (
            f"ip netns exec {topo.netns('client')} socat STDIO TCP:%h:%p"
        ),
    }


RECAP = re.compile(
    r"^(?P<host>\S+)\s+:\s+ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)"
    r"\s+failed=(?P<failed>\d+)\s+skipped=(?P<skipped>\d+)\s+rescued=(?P<rescued>\d+)"
    r"\s+ignored=(?P<ignored>\d+)",
    re.M,
)


@dataclass
class Run:
    """One ansible-playbook run: exit status, output, the recap per host, seconds."""

    args: list[str]
    rc: int
    out: str
    recap: dict[str, dict[str, int]]
    seconds: float

    @property
    def changed(self) -> int:
        return sum(h["changed"] for h in self.recap.values())

    def changed_tasks(self) -> list[str]:
        """``TASK [...] host`` of every changed result (for messages)."""
        out, task = [], ""
        for line in self.out.splitlines():
            if line.startswith("TASK ["):
                task = line.split("]")[0] + "]"
            elif line.startswith("changed:"):
                out.append(f"{task} {line}")
        return out

    def tail(self, n: int = 80) -> str:
        return "\n".join(self.out.splitlines()[-n:])


def playbook(
    site: Site | Path,
    name: str,
    *args: str,
    connection: str | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 600,
    vault: Path | None = None,
) -> Run:
    """``ansible-playbook -i SITE playbooks/NAME ARGS`` from the repository root (its
    ansible.cfg), with the site's vault password; a private ControlPath directory so no
    other lab's SSH master is ever reused."""
    inv = site.dir if isinstance(site, Site) else site
    pw = site.vault_password_file if isinstance(site, Site) else vault
    cmd = [str(ANSIBLE_PLAYBOOK), "-i", str(inv), str(PLAYBOOKS / name), *args]
    if connection:
        cmd += ["-c", connection]
    e = dict(os.environ)
    e.update(
        ANSIBLE_FORCE_COLOR="0",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_SSH_CONTROL_PATH_DIR=str(inv.parent / ".cp"),
        ANSIBLE_LOCAL_TEMP=str(inv.parent / ".tmp"),
        PATH=f"{VENV_BIN}:{e.get('PATH', '/usr/bin:/bin')}",
    )
    if pw is not None:
        e["ANSIBLE_VAULT_PASSWORD_FILE"] = str(pw)
    e.update(env or {})
    t0 = time.monotonic()
    res = subprocess.run(
        cmd, cwd=ROOT, env=e, capture_output=True, text=True, timeout=timeout, check=False
    )
    out = res.stdout + res.stderr
    recap = {
        m["host"]: {k: int(v) for k, v in m.groupdict().items() if k != "host"}
        for m in RECAP.finditer(out)
    }
    return Run(cmd, res.returncode, out, recap, time.monotonic() - t0)
