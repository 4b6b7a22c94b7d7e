"""A lab host is a machine of its own: hostname, files, PIDs, identity, sshd; the lab's
API reports and reaches it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

import hamod
from hamod.errors import LabError
from hamod.testing.lab import Lab

pytestmark = pytest.mark.lab


def test_each_host_has_its_own_hostname(lab: Lab) -> None:
    for host in ("n1", "n2", "witness"):
        assert lab.exec(host, "hostname").stdout.strip() == host
        assert lab.exec(host, "cat /etc/hostname").stdout.strip() == host


def test_files_written_in_a_node_stay_in_that_node(lab: Lab) -> None:
    for path in ("/etc/hamod-lab-probe", "/srv/hamod-lab-probe", "/root/hamod-lab-probe"):
        lab.exec("n1", ["sh", "-c", f"echo n1 > {path}"])
        assert lab.exec("n1", ["cat", path]).stdout == "n1\n"
        assert lab.exec("n2", ["test", "-e", path], check=False).returncode == 1
        assert not Path(path).exists(), f"{path} leaked to the machine"


def test_tmp_and_run_are_private(lab: Lab) -> None:
    lab.exec("n1", "echo x > /tmp/hamod-lab-probe && echo y > /run/hamod-lab-probe")
    assert lab.exec("n2", "ls /tmp/hamod-lab-probe /run/hamod-lab-probe", check=False).returncode
    assert not Path("/tmp/hamod-lab-probe").exists()
    # the lab's state directory is not visible from inside (tmpfs /run)
    assert lab.exec("n1", ["ls", str(lab.state_dir)], check=False).returncode != 0


def test_hamod_runs_inside_a_node_wherever_the_checkout_lives(lab: Lab) -> None:
    # CI may clone into /tmp, which every host covers with its own tmpfs: the checkout
    # and its venv must still be there inside the node (carried over by the init).
    out = lab.exec("n1", [sys.executable, "-m", "hamod", "--version"]).stdout
    assert out.startswith("hamod ")
    assert lab.exec("n1", ["test", "-d", str(Path(hamod.__file__).parent)]).returncode == 0


def test_pid_1_of_a_node_is_its_init(lab: Lab) -> None:
    out = lab.exec("n1", "cat /proc/1/cmdline | tr '\\0' ' '").stdout
    assert "labnode.py" in out
    pids = lab.exec("n1", "ps -e -o pid=").stdout.split()
    assert len(pids) < 10, f"n1 sees the machine's processes: {pids}"


def test_machine_ids_and_host_keys_differ(lab: Lab) -> None:
    ids = {lab.exec(h, "cat /etc/machine-id").stdout for h in ("n1", "n2", "witness")}
    keys = {lab.exec(h, "cat /etc/ssh/ssh_host_ed25519_key.pub").stdout for h in ("n1", "n2")}
    assert len(ids) == 3 and len(keys) == 2


def test_ssh_from_the_client_reaches_every_host(lab: Lab) -> None:
    for host in ("n1", "n2", "witness"):
        out = subprocess.run(
            lab.ssh_command(host, "hostname"), capture_output=True, text=True, timeout=30
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == host


def test_ssh_config_reaches_a_node_from_the_root_namespace(lab: Lab) -> None:
    out = subprocess.run(
        ["ssh", "-F", str(lab.ssh_config), "n2", "cat /etc/hostname"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "n2"


def test_inventory_pins_the_interpreter_and_lists_the_hosts(lab: Lab) -> None:
    inv = yaml.safe_load(lab.inventory.read_text())["all"]
    assert inv["vars"]["ansible_python_interpreter"] == "/usr/bin/python3"
    assert "ProxyCommand" in inv["vars"]["ansible_ssh_common_args"]
    assert set(inv["children"]["nodes"]["hosts"]) == {"n1", "n2"}
    assert inv["children"]["nodes"]["hosts"]["n1"]["ansible_host"] == lab.address("n1")


def test_the_witness_routes_for_the_nodes(lab: Lab) -> None:
    assert lab.exec("witness", "cat /proc/sys/net/ipv4/ip_forward").stdout.strip() == "1"
    route = lab.exec("n1", "ip route show default").stdout
    assert f"via {lab.address('witness')}" in route


def test_addresses_are_on_the_interfaces(lab: Lab) -> None:
    for host in ("n1", "n2"):
        for net in ("net0", "net1"):
            assert lab.vip_owner(lab.address(host, net)) == host
    assert lab.reachable("client", "n1") and lab.reachable("n1", "n2", net="net1")


def test_vip_owner_follows_an_address_moved_by_hand(lab: Lab) -> None:
    vip = lab.free_address(3)
    assert lab.vip_owner(vip) is None
    lab.exec("n1", f"ip addr add {vip}/24 dev eth0")
    assert lab.vip_owner(vip) == "n1"
    lab.exec("n2", f"ip addr add {vip}/24 dev eth0")
    with pytest.raises(LabError, match="several nodes: n1, n2"):
        lab.vip_owner(vip)
    lab.exec("n1", f"ip addr del {vip}/24 dev eth0")
    assert lab.vip_owner(vip) == "n2"
    assert lab.reachable("client", vip)
    lab.exec("n2", f"ip addr del {vip}/24 dev eth0")
    assert lab.vip_owner(vip) is None


def test_status_describes_the_topology(lab: Lab) -> None:
    status = lab.status()
    assert [h.name for h in status.hosts] == ["n1", "n2", "witness", "client"]
    n1 = status.host("n1")
    assert n1.alive and n1.pid and n1.plugged == {"net0": True, "net1": True}
    assert status.host("client").addresses == {"net0": lab.address("client")}
    assert json.loads(status.to_json())["networks"][1]["role"] == "heartbeat"
    assert "n1" in status.render()


def test_attach_sees_the_same_lab(lab: Lab) -> None:
    other = Lab.attach(lab.name)
    assert other.status().hosts == lab.status().hosts
    assert other.exec("n2", "hostname").stdout.strip() == "n2"


def test_exec_reports_failures_precisely(lab: Lab) -> None:
    with pytest.raises(LabError, match="n1: echo oops >&2; exit 3: exit status 3: oops"):
        lab.exec("n1", "echo oops >&2; exit 3")
    assert lab.exec("n1", "exit 4", check=False).returncode == 4
    assert lab.exec("n1", ["cat"], input="in\n").stdout == "in\n"
    with pytest.raises(LabError, match=r"timed out after 0\.3 s"):
        lab.exec("n1", "sleep 5", timeout=0.3)
    with pytest.raises(LabError, match="no host 'n9'"):
        lab.exec("n9", "true")
    with pytest.raises(LabError, match="no network 'net7'"):
        lab.address("n1", "net7")


def test_popen_runs_in_the_background_inside_the_host(lab: Lab) -> None:
    proc = lab.popen("n2", "hostname; cat", stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    out, _ = proc.communicate("bg\n", timeout=10)
    assert out == "n2\nbg\n"


def test_a_host_runs_its_rc_local_at_boot_in_the_background(lab: Lab) -> None:
    """The end of boot runs /etc/rc.local (hamod_node starts hamod there without systemd),
    in a clean environment, without holding the boot; its output goes to boot.log."""
    script = (
        "#!/bin/sh -e\n"
        'echo "rc.local on $(hostname), HAMOD_LAB_HOST=${HAMOD_LAB_HOST:-unset}"\n'
        "touch /root/rc-local-ran\n"
        "sleep 30\n"
        "exit 0\n"
    )
    lab.exec("n1", "cat > /etc/rc.local && chmod 755 /etc/rc.local", input=script)
    try:
        lab.kill("n1")
        t0 = time.monotonic()
        lab.start("n1")
        took = time.monotonic() - t0
        assert took < 5, f"boot took {took:.1f} s: it waited for /etc/rc.local"
        log = Path(lab.state_dir) / "hosts" / "n1" / "boot.log"
        deadline = time.monotonic() + 10
        while lab.exec("n1", "test -e /root/rc-local-ran", check=False).returncode:
            assert time.monotonic() < deadline, f"/etc/rc.local did not run: {log.read_text()}"
            time.sleep(0.1)
        text = log.read_text(errors="replace")
        assert "lab_init: n1: running /etc/rc.local" in text
        assert "rc.local on n1, HAMOD_LAB_HOST=unset" in text  # a clean environment
        # no /etc/rc.local (the machine has none): nothing runs
        n2 = (Path(lab.state_dir) / "hosts" / "n2" / "boot.log").read_text(errors="replace")
        assert "running /etc/rc.local" not in n2
    finally:
        lab.exec("n1", "rm -f /etc/rc.local /root/rc-local-ran")
        lab.kill("n1")
        lab.start("n1")
