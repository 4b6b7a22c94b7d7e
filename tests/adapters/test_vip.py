"""VipManager in throwaway namespaces: add/remove/idempotence, IPv6, auto interface,
marks and cleanup, precise errors."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from ipaddress import ip_address
from pathlib import Path

import pytest

from hamod.adapters.vip import Vip, VipManager, parse_address
from hamod.errors import AdapterError
from hamod.testing.netns import (
    LinkedPair,
    ThrowawayNetns,
    ipv6_unavailable,
    linked_pair,
    netns_unavailable,
    sweep_stale,
)

VIP4 = "10.203.0.100"
VIP6 = "fd03:203::100"


@pytest.fixture
def nets() -> Iterator[ThrowawayNetns]:
    reason = netns_unavailable()
    if reason:
        pytest.skip(reason)
    sweep_stale()
    with ThrowawayNetns() as made:
        yield made


@pytest.fixture
def pair(nets: ThrowawayNetns) -> LinkedPair:
    return linked_pair(nets)


@pytest.fixture
def vips(pair: LinkedPair) -> Iterator[VipManager]:
    with VipManager(pair.a) as manager:
        yield manager


def _need_ipv6() -> None:
    reason = ipv6_unavailable()
    if reason:
        pytest.skip(reason)


def _addr_entries(nets: ThrowawayNetns, ns: str, addr: str) -> list[dict[str, object]]:
    return [
        info
        for link in nets.ip_json(ns, "-d", "addr", "show")
        for info in link.get("addr_info", [])
        if info.get("local") == addr
    ]


def test_parse_address_names_the_bad_value() -> None:
    assert parse_address("10.0.0.1") == ip_address("10.0.0.1")
    with pytest.raises(AdapterError, match=r"'10\.0\.0\.300'.*not an IPv4 or IPv6"):
        parse_address("10.0.0.300")


@pytest.mark.lab
def test_ipv4_add_is_idempotent_marked_and_removable(
    nets: ThrowawayNetns, pair: LinkedPair, vips: VipManager
) -> None:
    assert not vips.is_present(VIP4)
    assert vips.ensure_present(VIP4, 24, "eth0") is True
    assert vips.ensure_present(VIP4, 24, "eth0") is False
    assert vips.is_present(VIP4)
    assert vips.owned_vips() == (Vip(ip_address(VIP4), 24, "eth0"),)
    (entry,) = _addr_entries(nets, pair.a, VIP4)
    assert entry["label"] == "eth0:hamod"
    with VipManager(pair.a) as restarted:  # the mark lives in the kernel, not in memory
        assert restarted.owned_vips() == (Vip(ip_address(VIP4), 24, "eth0"),)
    assert vips.ensure_absent(VIP4) is True
    assert vips.ensure_absent(VIP4) is False
    assert not vips.is_present(VIP4)
    assert _addr_entries(nets, pair.a, VIP4) == []


@pytest.mark.lab
def test_ipv6_vip_is_usable_at_once(
    nets: ThrowawayNetns, pair: LinkedPair, vips: VipManager
) -> None:
    _need_ipv6()
    nets.sysctl(pair.a, "net.ipv6.conf.eth0.accept_dad", "1")  # nodad must matter
    assert vips.ensure_present(VIP6, 64, "eth0") is True
    assert vips.ensure_present(VIP6, 64, "eth0") is False
    (entry,) = _addr_entries(nets, pair.a, VIP6)
    assert entry.get("nodad") is True
    assert not entry.get("tentative")
    assert vips.owned_vips() == (Vip(ip_address(VIP6), 64, "eth0"),)
    assert vips.ensure_absent(VIP6) is True
    assert not vips.is_present(VIP6)


@pytest.mark.lab
def test_auto_picks_the_interface_and_prefix_of_the_subnet(vips: VipManager) -> None:
    assert vips.resolve_interface(VIP4) == ("eth0", 24)
    assert vips.ensure_present(VIP4) is True
    assert vips.find(VIP4) == Vip(ip_address(VIP4), 24, "eth0")
    assert vips.ensure_present(VIP4, None, "auto") is False
    if ipv6_unavailable() is None:
        assert vips.ensure_present(VIP6) is True
        assert vips.find(VIP6) == Vip(ip_address(VIP6), 64, "eth0")


@pytest.mark.lab
def test_auto_without_matching_subnet_names_the_vip(vips: VipManager) -> None:
    with pytest.raises(AdapterError, match=r"VIP 192\.0\.2\.10: no address of any interface"):
        vips.ensure_present("192.0.2.10")
    assert not vips.is_present("192.0.2.10")


@pytest.mark.lab
def test_auto_with_two_interfaces_in_the_subnet_asks_for_a_name(
    nets: ThrowawayNetns, pair: LinkedPair, vips: VipManager
) -> None:
    nets.veth(pair.a, "eth1", pair.b, "eth1")
    nets.ip(pair.a, "addr", "add", "10.203.0.3/24", "dev", "eth1")
    with pytest.raises(AdapterError, match=r"several interfaces .*\(eth0, eth1\)"):
        vips.ensure_present(VIP4)
    assert vips.ensure_present(VIP4, None, "eth1") is True
    assert vips.find(VIP4) == Vip(ip_address(VIP4), 24, "eth1")


@pytest.mark.lab
def test_unknown_interface_is_named(vips: VipManager) -> None:
    with pytest.raises(AdapterError, match=r"VIP 10\.203\.0\.100: interface 'eth9' not found"):
        vips.ensure_present(VIP4, 24, "eth9")


@pytest.mark.lab
def test_moving_a_vip_replaces_it(vips: VipManager, nets: ThrowawayNetns, pair: LinkedPair) -> None:
    vips.ensure_present(VIP4, 24, "eth0")
    assert vips.ensure_present(VIP4, 32, "eth0") is True
    assert vips.owned_vips() == (Vip(ip_address(VIP4), 32, "eth0"),)
    assert len(_addr_entries(nets, pair.a, VIP4)) == 1


@pytest.mark.lab
def test_foreign_address_is_neither_adopted_nor_removed(
    nets: ThrowawayNetns, pair: LinkedPair, vips: VipManager
) -> None:
    nets.ip(pair.a, "addr", "add", f"{VIP4}/24", "dev", "eth0")
    assert vips.is_present(VIP4)
    assert vips.owned_vips() == ()
    with pytest.raises(AdapterError, match=r"VIP 10\.203\.0\.100: already configured .* mark"):
        vips.ensure_present(VIP4, 24, "eth0")
    with pytest.raises(AdapterError, match=r"refusing to remove"):
        vips.ensure_absent(VIP4)
    assert vips.cleanup([]) == ()
    assert vips.is_present(VIP4)


@pytest.mark.lab
def test_cleanup_removes_only_unexpected_hamod_vips(vips: VipManager) -> None:
    vips.ensure_present(VIP4, 24, "eth0")
    vips.ensure_present("10.203.0.101", 24, "eth0")
    removed = vips.cleanup([VIP4])
    assert removed == (Vip(ip_address("10.203.0.101"), 24, "eth0"),)
    assert vips.owned_vips() == (Vip(ip_address(VIP4), 24, "eth0"),)
    assert vips.is_present("10.203.0.1")  # the node's own address is untouched
    assert vips.cleanup([VIP4]) == ()


@pytest.mark.lab
def test_missing_namespace_is_an_error_and_is_not_created(nets: ThrowawayNetns) -> None:
    name = nets.names[0] + "-absent" if nets.names else "hmvt-absent"
    with VipManager(name) as vips, pytest.raises(AdapterError, match=r"does not exist"):
        vips.is_present(VIP4)
    assert not (Path("/run/netns") / name).exists()


@pytest.mark.lab
def test_throwaway_namespaces_go_away_even_when_a_test_fails() -> None:
    reason = netns_unavailable()
    if reason:
        pytest.skip(reason)
    with pytest.raises(RuntimeError), ThrowawayNetns() as made:
        name = made.add("boom")
        assert (Path("/run/netns") / name).exists()
        raise RuntimeError("test failed")
    assert not (Path("/run/netns") / name).exists()


@pytest.mark.lab
def test_sweep_removes_what_a_killed_run_left() -> None:
    reason = netns_unavailable()
    if reason:
        pytest.skip(reason)
    orphan = "hmvt-999999999-abc123-a"  # no such pid: its creator is gone
    subprocess.run(["ip", "netns", "add", orphan], check=True)
    try:
        assert orphan in sweep_stale()
    finally:
        subprocess.run(["ip", "netns", "delete", orphan], check=False, capture_output=True)
    assert not (Path("/run/netns") / orphan).exists()
