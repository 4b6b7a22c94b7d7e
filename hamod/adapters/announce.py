"""Announcing a VIP's new location: gratuitous ARP (IPv4), unsolicited NA (IPv6).

Owns building those frames by hand (``struct``, no dependency) and sending them on a raw
``AF_PACKET`` socket bound to the VIP's interface, inside the VIP's network namespace.
Without them clients and switches keep the old MAC until their cache expires (measured
here: 38-41 s of outage instead of 0.22 s).

- IPv4: each round sends an ARP request and an ARP reply, both broadcast, sender =
  target = VIP (the two forms of gratuitous ARP; equipment honours one or the other).
  Linux peers update an existing entry at once (``arp_accept`` only governs creating
  new entries).
- IPv6: each round sends a neighbour advertisement (ICMPv6 type 136, Override set,
  Solicited clear) from the VIP to ff02::1, hop limit 255, with the target link-layer
  address option, as Linux does for its own addresses.

The socket is created in the namespace by a short-lived thread that enters it with
``setns(2)`` (network namespaces are per thread; the socket stays in the namespace it
was created in), so the calling process never switches namespace and nothing forks.
``python -m hamod.adapters.announce`` runs the same code from a shell.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import os
import socket
import struct
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

from hamod.adapters.vip import IPAddress, parse_address
from hamod.errors import AdapterError

__all__ = [
    "Announcement",
    "announce",
    "announce_blocking",
    "garp_frames",
    "open_packet_socket",
    "unsolicited_na_frame",
]

CLONE_NEWNET = 0x40000000
ETH_P_ARP = 0x0806
ETH_P_IPV6 = 0x86DD
ETH_P_IP = 0x0800
BROADCAST = b"\xff" * 6
ALL_NODES = IPv6Address("ff02::1")
ALL_NODES_MAC = b"\x33\x33\x00\x00\x00\x01"
ND_NEIGHBOR_ADVERT = 136
NA_FLAG_OVERRIDE = 0x20000000
ND_OPT_TARGET_LINKADDR = 2
MIN_FRAME = 60


@dataclass(frozen=True)
class Announcement:
    """What :func:`announce` did: frames sent per round, rounds, interface MAC."""

    addr: IPAddress
    interface: str
    mac: str
    rounds: int
    frames: int


def _eth(dst: bytes, src: bytes, ethertype: int, payload: bytes) -> bytes:
    frame = dst + src + struct.pack("!H", ethertype) + payload
    return frame.ljust(MIN_FRAME, b"\x00")


def garp_frames(mac: bytes, addr: IPv4Address) -> tuple[bytes, bytes]:
    """The gratuitous ARP request and reply for ``addr`` at ``mac`` (Ethernet frames)."""
    if len(mac) != 6:
        raise AdapterError(f"VIP {addr}: need a 6-byte Ethernet address, got {mac.hex(':')}")
    ip = addr.packed

    def arp(op: int, target_mac: bytes) -> bytes:
        body = struct.pack("!HHBBH6s4s6s4s", 1, ETH_P_IP, 6, 4, op, mac, ip, target_mac, ip)
        return _eth(BROADCAST, mac, ETH_P_ARP, body)

    return arp(1, b"\x00" * 6), arp(2, mac)


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def unsolicited_na_frame(mac: bytes, addr: IPv6Address) -> bytes:
    """The unsolicited neighbour advertisement for ``addr`` at ``mac`` (Ethernet frame)."""
    if len(mac) != 6:
        raise AdapterError(f"VIP {addr}: need a 6-byte Ethernet address, got {mac.hex(':')}")
    option = struct.pack("!BB6s", ND_OPT_TARGET_LINKADDR, 1, mac)
    icmp = struct.pack("!BBHI16s", ND_NEIGHBOR_ADVERT, 0, 0, NA_FLAG_OVERRIDE, addr.packed)
    icmp += option
    pseudo = addr.packed + ALL_NODES.packed + struct.pack("!I3xB", len(icmp), socket.IPPROTO_ICMPV6)
    icmp = icmp[:2] + struct.pack("!H", _checksum(pseudo + icmp)) + icmp[4:]
    header = struct.pack(
        "!IHBB16s16s", 6 << 28, len(icmp), socket.IPPROTO_ICMPV6, 255, addr.packed, ALL_NODES.packed
    )
    return _eth(ALL_NODES_MAC, mac, ETH_P_IPV6, header + icmp)


def _enter_and_open(netns: str, out: list[socket.socket | BaseException]) -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(f"/run/netns/{netns}", os.O_RDONLY | os.O_CLOEXEC)
        try:
            if libc.setns(fd, CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"setns: {os.strerror(err)}")
        finally:
            os.close(fd)
        out.append(socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0))
    except BaseException as exc:  # handed to the caller's thread
        out.append(exc)


def open_packet_socket(interface: str, netns: str | None = None) -> tuple[socket.socket, bytes]:
    """A send-only ``AF_PACKET`` socket bound to ``interface`` in ``netns``, and the
    interface's MAC address."""
    where = f"netns {netns}" if netns else "the current netns"
    try:
        if netns is None:
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        else:
            out: list[socket.socket | BaseException] = []
            thread = threading.Thread(
                target=_enter_and_open, args=(netns, out), name=f"hamod-setns-{netns}"
            )
            thread.start()
            thread.join()
            if isinstance(out[0], BaseException):
                raise out[0]
            sock = out[0]
    except FileNotFoundError as exc:
        raise AdapterError(f"cannot announce: network namespace {netns!r} does not exist") from exc
    except OSError as exc:
        raise AdapterError(f"cannot open a raw packet socket in {where}: {exc.strerror}") from exc
    try:
        sock.bind((interface, 0))
        mac = bytes(sock.getsockname()[4])
    except OSError as exc:
        sock.close()
        raise AdapterError(
            f"cannot announce on interface {interface!r} in {where}: {exc.strerror or exc}"
        ) from exc
    if len(mac) != 6 or mac == b"\x00" * 6:
        sock.close()
        raise AdapterError(f"cannot announce on {interface!r} in {where}: not an Ethernet link")
    return sock, mac


def _frames(mac: bytes, addr: IPAddress) -> tuple[bytes, ...]:
    if isinstance(addr, IPv4Address):
        return garp_frames(mac, addr)
    return (unsolicited_na_frame(mac, addr),)


async def announce(
    addr: IPAddress | str,
    interface: str,
    *,
    netns: str | None = None,
    count: int = 3,
    interval: float = 0.2,
) -> Announcement:
    """Send ``count`` rounds of announcements for ``addr`` on ``interface``, ``interval``
    seconds apart (the first at once). ``count=0`` sends nothing."""
    vip = parse_address(addr)
    if count < 0 or interval < 0:
        raise AdapterError(f"VIP {vip}: announce count and interval must be >= 0")
    if count == 0:
        return Announcement(vip, interface, "", 0, 0)
    sock, mac = open_packet_socket(interface, netns)
    frames = _frames(mac, vip)
    sent = 0
    try:
        for round_ in range(count):
            if round_:
                await asyncio.sleep(interval)
            for frame in frames:
                sock.send(frame)
                sent += 1
    except OSError as exc:
        where = f"netns {netns}" if netns else "the current netns"
        raise AdapterError(
            f"cannot announce VIP {vip} on {interface} in {where}: {exc.strerror or exc}"
        ) from exc
    finally:
        sock.close()
    return Announcement(vip, interface, mac.hex(":"), count, sent)


def announce_blocking(
    addr: IPAddress | str,
    interface: str,
    *,
    netns: str | None = None,
    count: int = 3,
    interval: float = 0.2,
) -> Announcement:
    """:func:`announce` for callers without an event loop."""
    return asyncio.run(announce(addr, interface, netns=netns, count=count, interval=interval))


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m hamod.adapters.announce [--netns NS] -i IF [-c N] [-w S] ADDR``."""
    parser = argparse.ArgumentParser(
        prog="python -m hamod.adapters.announce",
        description="Send gratuitous ARP / unsolicited NA for a VIP.",
    )
    parser.add_argument("addr", help="the VIP (IPv4 or IPv6)")
    parser.add_argument("-i", "--interface", required=True)
    parser.add_argument("--netns", default=None, help="network namespace name")
    parser.add_argument("-c", "--count", type=int, default=3)
    parser.add_argument("-w", "--interval", type=float, default=0.2, help="seconds")
    args = parser.parse_args(argv)
    try:
        done = announce_blocking(
            args.addr, args.interface, netns=args.netns, count=args.count, interval=args.interval
        )
    except AdapterError as exc:
        print(f"announce: {exc}", file=sys.stderr)
        return 1
    print(f"announced {done.addr} at {done.mac} on {done.interface}: {done.frames} frames")
    return 0


if __name__ == "__main__":
    sys.exit(main())
