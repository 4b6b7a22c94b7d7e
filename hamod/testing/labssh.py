"""SSH for the lab: keys, the files each host boots with, and how clients reach the hosts.

The lab's state directory holds ``ssh/id_ed25519`` (the client key every host
authorizes for root), ``ssh/known_hosts`` (every host's key under its name and addresses,
so host keys are checked), ``ssh/config`` (for ``ssh -F`` from the root namespace, through
the client namespace with ``socat``) and ``ssh/inventory.yml`` (an Ansible inventory).
"""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterable
from pathlib import Path

import yaml

from hamod.errors import LabError
from hamod.testing.labnet import CLIENT, WITNESS, Topology
from hamod.testing.labsys import env

SSHD_CONFIG = """\
# hamod lab host sshd (started by lab_init.sh; no PAM, key authentication for root only)
Port 22
ListenAddress 0.0.0.0
HostKey /etc/ssh/ssh_host_ed25519_key
AuthorizedKeysFile /etc/ssh/hamod_lab_authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
UseDNS no
PidFile none
PrintMotd no
AcceptEnv LANG LC_*
Subsystem sftp /usr/lib/openssh/sftp-server
"""

PYTHON_INTERPRETER = "/usr/bin/python3"


def keygen(paths: Iterable[tuple[Path, str]]) -> None:
    """Create ed25519 key pairs (``path``, ``path.pub``) in parallel; existing ones stay."""
    procs = []
    for path, comment in paths:
        if path.exists():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        cmd = ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)]
        procs.append((path, subprocess.Popen(cmd, stdin=subprocess.DEVNULL, env=env())))
    for path, proc in procs:
        if proc.wait(timeout=30) != 0:
            raise LabError(f"ssh-keygen failed for {path} (exit status {proc.returncode})")


def ssh_dir(state: Path) -> Path:
    """Where the lab's SSH files live."""
    return state / "ssh"


def client_key(state: Path) -> Path:
    """The private key the lab's hosts authorize."""
    return ssh_dir(state) / "id_ed25519"


def prepare(topo: Topology, state: Path) -> None:
    """Create every key and every file the hosts boot with, and the client-side files."""
    key = client_key(state)
    hosts = {h: state / "hosts" / h / "boot" for h in topo.booted}
    keygen(
        [(key, f"hamod-lab-{topo.name}")]
        + [(boot / "ssh_host_ed25519_key", f"root@{h}") for h, boot in hosts.items()]
    )
    authorized = key.with_suffix(".pub").read_text()
    for host, boot in hosts.items():
        (boot / "hostname").write_text(host + "\n")
        (boot / "hosts").write_text(topo.etc_hosts())
        machine_id = boot / "machine-id"
        if not machine_id.exists():
            machine_id.write_text(secrets.token_hex(16) + "\n")
        (boot / "sshd_config").write_text(SSHD_CONFIG)
        (boot / "authorized_keys").write_text(authorized)
    known = []
    for host, boot in hosts.items():
        kind, blob = (boot / "ssh_host_ed25519_key.pub").read_text().split()[:2]
        names = ",".join([host, *topo.addresses(host).values()])
        known.append(f"{names} {kind} {blob}")
    sdir = ssh_dir(state)
    (sdir / "known_hosts").write_text("\n".join(known) + "\n")
    (sdir / "config").write_text(ssh_config(topo, state))
    (sdir / "inventory.yml").write_text(inventory(topo, state))


def ssh_options(topo: Topology, state: Path) -> list[str]:
    """``ssh`` options reaching the lab's hosts as root with the lab key, host keys
    checked against the lab's known_hosts, never prompting."""
    sdir = ssh_dir(state)
    return [
        "-F",
        "/dev/null",
        "-i",
        str(client_key(state)),
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        f"UserKnownHostsFile={sdir / 'known_hosts'}",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "BatchMode=yes",
        "-o",
        "ConnectTimeout=5",
        "-o",
        "LogLevel=ERROR",
    ]


def proxy_command(topo: Topology) -> str:
    """ProxyCommand reaching the lab from the root namespace through the client."""
    return f"ip netns exec {topo.netns(CLIENT)} socat STDIO TCP:%h:%p"


def ssh_config(topo: Topology, state: Path) -> str:
    """An ``ssh -F`` file for the root namespace: ``ssh -F FILE n1``."""
    sdir = ssh_dir(state)
    blocks = []
    for host in topo.booted:
        blocks.append(
            f"Host {host}\n"
            f"  HostName {topo.address(host, 0)}\n"
            "  User root\n"
            f"  IdentityFile {client_key(state)}\n"
            "  IdentitiesOnly yes\n"
            f"  UserKnownHostsFile {sdir / 'known_hosts'}\n"
            "  StrictHostKeyChecking yes\n"
            f"  ProxyCommand {proxy_command(topo)}\n"
        )
    return "\n".join(blocks)


def inventory(topo: Topology, state: Path) -> str:
    """An Ansible inventory (YAML) of the lab, usable from the root namespace: groups
    ``nodes`` and ``witness``, the interpreter pinned (discovery would find the host's
    other Pythons through the shared /usr), host-key options in the inventory itself
    (testinfra and Molecule do not read ansible.cfg)."""
    sdir = ssh_dir(state)
    common = (
        f"-o UserKnownHostsFile={sdir / 'known_hosts'} -o StrictHostKeyChecking=yes "
        f'-o IdentitiesOnly=yes -o ProxyCommand="{proxy_command(topo)}"'
    )

    def hostvars(host: str) -> dict[str, object]:
        return {"ansible_host": topo.address(host, 0), "lab_addresses": topo.addresses(host)}

    doc = {
        "all": {
            "vars": {
                "ansible_user": "root",
                "ansible_ssh_private_key_file": str(client_key(state)),
                "ansible_ssh_common_args": common,
                "ansible_python_interpreter": PYTHON_INTERPRETER,
            },
            "children": {
                "nodes": {"hosts": {h: hostvars(h) for h in topo.node_names}},
                "witness": {"hosts": {WITNESS: hostvars(WITNESS)}},
            },
        }
    }
    header = f"# Ansible inventory of hamod lab {topo.name} (generated; reach hosts via socat)\n"
    return header + yaml.safe_dump(doc, sort_keys=False)
