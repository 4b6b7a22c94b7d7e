"""Host facts of a site's nodes deployed by the roles (pytest-testinfra; run by
molecule/shared/testinfra.yml with the site inventory and its SSH connection).

hamod in its virtualenv from the site's wheelhouse, the files the roles write with
their owners and modes, the daemon, the watchdog and the data path running, the API
socket, the API and heartbeat ports on every cluster network, the kvstore program, the
replicated directory mounted by the data path (read-write where the module serves,
read-only on the secondary).

Each test asks a host one or two questions (one `stat` for all files, one `ps`, one
`ss`): every command is an SSH round trip through the lab's client namespace.
"""

from __future__ import annotations

import hashlib
import json
import os
from functools import cache
from pathlib import Path
from typing import Any

# every node of the site; the failover scenario names the survivor only
testinfra_hosts = os.environ.get("HAMOD_MOLECULE_NODES", "ansible://hamod_nodes").split(",")

VENV = "/opt/hamod/venv"
HAMOD = f"{VENV}/bin/hamod"

NODE_FILES = {
    "/etc/hamod/node": "root root 644 regular file",
    "/etc/hamod/cluster.yaml": "root root 644 regular file",
    "/etc/hamod/cluster.key": "root root 600 regular file",
    "/etc/hamod/tls/ca.crt": "root root 644 regular file",
    "/etc/hamod/tls/node.crt": "root root 644 regular file",
    "/etc/hamod/tls/node.key": "root root 600 regular file",
    "/etc/logrotate.d/hamod": "root root 644 regular file",
    "/opt/hamod/lib/hamod-kvstore.py": "root root 755 regular file",
    "/run/hamod/api.sock": "root root 600 socket",
}


def _vars(host: Any) -> dict[str, Any]:
    return host.ansible.get_variables()  # type: ignore[no-any-return]


def _module(host: Any) -> dict[str, Any]:
    name = _vars(host).get("hamod_molecule_module", "kv")
    return next(m for m in _vars(host)["hamod_module_list"] if m["module"] == name)


def _stat(host: Any, paths: list[str]) -> dict[str, str]:
    out = host.run("stat -c '%n|%U %G %a %F' " + " ".join(paths)).stdout
    return dict(line.split("|", 1) for line in out.splitlines())


@cache
def _digest(archive: str) -> str:
    return hashlib.sha256(Path(archive).read_bytes()).hexdigest()


def _python_args(host: Any) -> list[str]:
    return [p.args for p in host.process.filter(comm="python")]


def test_hamod_is_installed_from_the_sites_wheelhouse(host: Any) -> None:
    wheelhouse = _vars(host).get("hamod_node_wheelhouse")
    out = host.run(f"{HAMOD} --version && cat {VENV}/.hamod-wheelhouse")
    assert out.rc == 0, out.stderr
    if wheelhouse:  # the role stamps the virtualenv with the archive's checksum
        assert out.stdout.split()[-1] == _digest(str(Path(wheelhouse) / "wheelhouse.tar"))


def test_the_daemon_runs_the_installed_hamod(host: Any) -> None:
    """Started after the last install (the role stamps the virtualenv once installed; a
    new hamod restarts the daemon)."""
    out = host.check_output(
        "read pid _ < /run/hamod/daemon.pid && echo $(( $(date +%s) - $(ps -o etimes= -p $pid) ))"
        f" $(stat -c %Y {VENV}/.hamod-wheelhouse)"
    )
    started, installed = (int(x) for x in out.split())
    assert started >= installed - 1, f"daemon started at {started}, hamod installed at {installed}"


def test_node_files_owners_and_modes(host: Any) -> None:
    module = _module(host)["module"]
    files = dict(NODE_FILES)
    files[f"/etc/hamod/modules/{module}.yaml"] = "root root 644 regular file"
    for script in ("start_prim", "stop_prim"):
        files[f"/etc/hamod/modules/{module}/scripts/{script}"] = "root root 755 regular file"
    assert _stat(host, sorted(files)) == files
    node = _vars(host).get("hamod_node_name", _vars(host)["inventory_hostname"])
    checked = host.run(
        f"cat /etc/hamod/node && {HAMOD} config check /etc/hamod/cluster.yaml "
        f"/etc/hamod/modules/{module}.yaml"
    )
    assert checked.rc == 0, checked.stdout + checked.stderr
    assert checked.stdout.splitlines()[0] == node


def test_daemon_watchdog_and_data_path_run(host: Any) -> None:
    args = _python_args(host)
    for what in ("-m hamod daemon", "-m hamod watchdog run", "-m hamod datapath run"):
        assert any(what in a for a in args), f"{what} not in {args}"


def test_daemon_listens_on_every_cluster_network(host: Any) -> None:
    listening = set(host.socket.get_listening_sockets())
    for addr in _vars(host)["hamod_node_addresses"].values():
        assert f"tcp://{addr}:9010" in listening, (addr, sorted(listening))
        assert f"udp://{addr}:9012" in listening, (addr, sorted(listening))


def test_replicated_directory_is_mounted_by_the_data_path(host: Any) -> None:
    module = _module(host)
    path = module["replication"]["directories"][0]["path"]
    state = json.loads(host.check_output(f"{HAMOD} state -m {module['module']} --json"))[0]["state"]
    (mount,) = json.loads(host.check_output(f"findmnt -J {path}"))["filesystems"]
    assert mount["fstype"] == "fuse.hamod", mount
    options = mount["options"].split(",")
    if state in ("PRIM", "ALONE"):
        assert "rw" in options, (state, options)
    elif state == "SECOND":
        assert "ro" in options, (state, options)
