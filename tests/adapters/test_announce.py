"""Gratuitous ARP and unsolicited NA: frame layout (unit) and their effect on a peer's
neighbour table in throwaway namespaces (lab)."""

from __future__ import annotations

import asyncio
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from ipaddress import IPv4Address, IPv6Address

import pytest

from hamod.adapters.announce import (
    announce,
    announce_blocking,
    garp_frames,
    open_packet_socket,
    unsolicited_na_frame,
)
from hamod.adapters.vip import VipManager
from hamod.errors import AdapterError
from hamod.testing.netns import (
    LinkedPair,
    ThrowawayNetns,
    ipv6_unavailable,
    linked_pair,
    netns_unavailable,
    sweep_stale,
)

MAC = bytes.fromhex("020000aabbcc")
STALE_MAC = "02:00:00:00:00:99"
VIP4 = "10.203.0.100"
VIP6 = "fd03:203::100"


def _sum16(data: bytes) -> int:
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def test_garp_request_and_reply_layout() -> None:
    request, reply = garp_frames(MAC, IPv4Address("192.0.2.7"))
    for frame, op, tha in ((request, 1, b"\x00" * 6), (reply, 2, MAC)):
        assert len(frame) == 60
        assert frame[:6] == b"\xff" * 6 and frame[6:12] == MAC
        assert frame[12:14] == b"\x08\x06"
        htype, ptype, hlen, plen, oper, sha, spa, tha_, tpa = struct.unpack(
            "!HHBBH6s4s6s4s", frame[14:42]
        )
        assert (htype, ptype, hlen, plen, oper) == (1, 0x0800, 6, 4, op)
        assert sha == MAC and tha_ == tha
        assert spa == tpa == IPv4Address("192.0.2.7").packed


def test_unsolicited_na_layout_and_checksum() -> None:
    addr = IPv6Address("2001:db8::7")
    frame = unsolicited_na_frame(MAC, addr)
    assert frame[:6] == bytes.fromhex("333300000001") and frame[6:12] == MAC
    assert frame[12:14] == b"\x86\xdd"
    ip6 = frame[14:54]
    vtf, plen, nxt, hops, src, dst = struct.unpack("!IHBB16s16s", ip6)
    assert vtf >> 28 == 6 and nxt == 58 and hops == 255 and plen == 32
    assert src == addr.packed and dst == IPv6Address("ff02::1").packed
    icmp = frame[54 : 54 + plen]
    kind, code, _sum, flags, target = struct.unpack("!BBHI16s", icmp[:24])
    assert (kind, code, target) == (136, 0, addr.packed)
    assert flags == 0x20000000  # Override only: not Router, not Solicited
    assert icmp[24:] == b"\x02\x01" + MAC  # target link-layer address option
    pseudo = src + dst + struct.pack("!I3xB", plen, 58)
    assert _sum16(pseudo + icmp) == 0xFFFF  # checksum verifies


def test_non_ethernet_address_is_refused() -> None:
    with pytest.raises(AdapterError, match=r"6-byte Ethernet"):
        garp_frames(b"\x01\x02", IPv4Address("192.0.2.7"))


def test_missing_namespace_is_named() -> None:
    with pytest.raises(AdapterError, match=r"'hmvt-does-not-exist' does not exist"):
        open_packet_socket("eth0", "hmvt-does-not-exist")


def test_zero_count_sends_nothing() -> None:
    done = asyncio.run(announce(VIP4, "eth-none", netns="hmvt-never-opened", count=0))
    assert done.frames == 0


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


def _neighbour(nets: ThrowawayNetns, pair: LinkedPair, addr: str) -> str | None:
    found = nets.neighbour(pair.b, addr, pair.ifname)
    return found[0] if found else None


def _wait_for_mac(nets: ThrowawayNetns, pair: LinkedPair, addr: str, mac: str) -> str | None:
    deadline = time.monotonic() + 2.0
    seen = _neighbour(nets, pair, addr)
    while seen != mac and time.monotonic() < deadline:
        time.sleep(0.02)
        seen = _neighbour(nets, pair, addr)
    return seen


def _takeover(nets: ThrowawayNetns, pair: LinkedPair, vip: str, six: bool) -> None:
    family = ["-6"] if six else []
    # REACHABLE, not STALE: only an ARP Linux deems gratuitous, or an NA with the Override
    # flag, may change the address of a confirmed entry.
    entry = ["lladdr", STALE_MAC, "dev", pair.ifname, "nud", "reachable"]
    nets.ip(pair.b, *family, "neigh", "replace", vip, *entry)
    assert _neighbour(nets, pair, vip) == STALE_MAC
    mac_a = nets.mac(pair.a, pair.ifname)
    with VipManager(pair.a) as vips:
        assert vips.ensure_present(vip)
    # Precondition: taking the VIP alone tells B nothing; its entry stays stale.
    time.sleep(0.3)
    assert _neighbour(nets, pair, vip) == STALE_MAC
    done = asyncio.run(announce(vip, pair.ifname, netns=pair.a, count=3, interval=0.05))
    assert done.mac == mac_a and done.rounds == 3
    assert done.frames == (6 if not six else 3)
    assert _wait_for_mac(nets, pair, vip, mac_a) == mac_a


@pytest.mark.lab
def test_gratuitous_arp_moves_the_peers_neighbour_entry(
    pair: LinkedPair, nets: ThrowawayNetns
) -> None:
    _takeover(nets, pair, VIP4, six=False)


@pytest.mark.lab
def test_unsolicited_na_overrides_the_peers_neighbour_entry(
    pair: LinkedPair, nets: ThrowawayNetns
) -> None:
    reason = ipv6_unavailable()
    if reason:
        pytest.skip(reason)
    _takeover(nets, pair, VIP6, six=True)


@pytest.mark.lab
def test_unknown_interface_is_named(pair: LinkedPair) -> None:
    with pytest.raises(AdapterError, match=r"interface 'eth7' in netns hmvt-"):
        announce_blocking(VIP4, "eth7", netns=pair.a, count=1)


@pytest.mark.lab
def test_command_line_entry_point(pair: LinkedPair, nets: ThrowawayNetns) -> None:
    entry = ["lladdr", STALE_MAC, "dev", pair.ifname, "nud", "reachable"]
    nets.ip(pair.b, "neigh", "replace", VIP4, *entry)
    module = ["-m", "hamod.adapters.announce"]
    done = subprocess.run(
        [sys.executable, *module, "--netns", pair.a, "-i", "eth0", "-c", "1", VIP4],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    mac_a = nets.mac(pair.a, pair.ifname)
    assert f"announced {VIP4} at {mac_a} on eth0: 2 frames" in done.stdout
    assert _wait_for_mac(nets, pair, VIP4, mac_a) == mac_a
