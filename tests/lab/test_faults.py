"""Every fault the lab injects is observable from the other side, and heals."""

from __future__ import annotations

import pytest

from hamod.errors import LabError
from hamod.testing.lab import Lab

pytestmark = pytest.mark.lab


def _sees(lab: Lab, a: str, b: str) -> tuple[bool, bool]:
    """(a reaches b on net0, on net1)."""
    return lab.reachable(a, b, "net0"), lab.reachable(a, b, "net1")


def test_power_off_and_boot_keep_files_and_lose_runtime_state(restored_lab: Lab) -> None:
    lab = restored_lab
    vip = lab.free_address(1)
    lab.exec("n1", f"echo kept > /srv/data && ip addr add {vip}/24 dev eth0")
    old_pid = lab.status().host("n1").pid
    lab.kill("n1")
    assert not lab.alive("n1") and lab.running() == ["n2", "witness"]
    assert _sees(lab, "n2", "n1") == (False, False)
    assert lab.status().host("n1").pid is None
    with pytest.raises(LabError, match="n1 is powered off"):
        lab.exec("n1", "true")
    with pytest.raises(LabError, match="n1 is powered off"):
        lab.plug("n1", "net0")
    lab.kill("n1")  # idempotent
    lab.start("n1")
    assert lab.alive("n1") and lab.status().host("n1").pid != old_pid
    assert _sees(lab, "n2", "n1") == (True, True)
    assert lab.exec("n1", "cat /srv/data").stdout == "kept\n"
    assert lab.vip_owner(vip) is None, "a rebooted node must not keep its virtual IP"
    assert lab.exec("n1", "hostname").stdout.strip() == "n1"


def test_unplug_cuts_one_network_only(restored_lab: Lab) -> None:
    lab = restored_lab
    lab.unplug("n1", "net0")
    assert _sees(lab, "n2", "n1") == (False, True)
    assert "NO-CARRIER" in lab.exec("n1", "ip link show eth0").stdout
    assert lab.status().host("n1").plugged == {"net0": False, "net1": True}
    lab.plug("n1", "net0")
    assert _sees(lab, "n2", "n1") == (True, True)


def test_partition_splits_the_nodes_while_both_see_the_witness(restored_lab: Lab) -> None:
    lab = restored_lab
    lab.partition("n1", "n2")
    assert _sees(lab, "n1", "n2") == (False, False)
    assert _sees(lab, "n2", "n1") == (False, False)
    assert lab.reachable("n1", "witness") and lab.reachable("n2", "witness")
    assert lab.reachable("client", "n1") and lab.reachable("client", "n2")
    assert len(lab.status().faults) == 4
    lab.heal()
    assert _sees(lab, "n1", "n2") == (True, True)
    assert lab.status().faults == ()


def test_isolate_from_the_witness_only(restored_lab: Lab) -> None:
    lab = restored_lab
    lab.isolate("n1", from_=["witness"])
    assert not lab.reachable("n1", "witness")
    assert lab.reachable("n2", "witness")
    assert _sees(lab, "n1", "n2") == (True, True)


def test_isolate_from_everyone_keeps_links_up(restored_lab: Lab) -> None:
    lab = restored_lab
    lab.isolate("n1")
    assert _sees(lab, "n2", "n1") == (False, False)
    assert not lab.reachable("client", "n1") and not lab.reachable("witness", "n1")
    assert "NO-CARRIER" not in lab.exec("n1", "ip link show eth0").stdout
    with pytest.raises(LabError, match="itself"):
        lab.isolate("n1", from_=["n1"])


def test_loss_drops_the_given_share(restored_lab: Lab) -> None:
    lab = restored_lab
    lab.loss("n1", 50, direction="out")
    got = lab.ping("n2", "n1", count=100, interval=0.002, timeout=0.3)
    assert 30 <= 100 - got <= 70, f"lost {100 - got}% with loss 50% one way"
    lab.heal()
    lab.loss("n1", 50)  # both ways: a round trip survives with (1/2)²
    got = lab.ping("n2", "n1", count=100, interval=0.002, timeout=0.3)
    assert 60 <= 100 - got <= 90, f"lost {100 - got}% with loss 50% both ways"
    with pytest.raises(LabError, match="use 0 to 100"):
        lab.loss("n1", 101)


def test_heal_restores_every_fault_but_not_power(restored_lab: Lab) -> None:
    lab = restored_lab
    lab.unplug("n2", "net1")
    lab.unplug("client", "net0")
    lab.partition("n1", "n2")
    lab.loss("witness", 100)
    lab.kill("witness")
    lab.heal()
    assert _sees(lab, "n1", "n2") == (True, True)
    assert lab.reachable("client", "n2")
    assert not lab.alive("witness") and not lab.reachable("n1", "witness")
    lab.restore()
    assert lab.alive("witness") and lab.reachable("n1", "witness")
    assert lab.exec("witness", "cat /proc/sys/net/ipv4/ip_forward").stdout.strip() == "1"


def test_shutdown_stops_processes_gracefully(restored_lab: Lab) -> None:
    lab = restored_lab
    proc = lab.popen(
        "n2",
        "trap 'echo stopped > /srv/term; exit 0' TERM; touch /srv/trapped; "
        "while :; do sleep 0.05; done",
    )
    # the trap is installed before the file appears (a busy machine may take a while)
    lab.exec("n2", "for i in $(seq 200); do test -e /srv/trapped && break; sleep 0.05; done")
    lab.shutdown("n2")
    assert not lab.alive("n2")
    assert proc.wait(timeout=5) is not None
    lab.start("n2")
    assert lab.exec("n2", "cat /srv/term").stdout == "stopped\n"
