"""Forged and replayed heartbeats for the lab (acceptance scenario 12), run inside the
lab's switch namespace::

    ip netns exec hamodlab.<lab>.sw python -m hamod.testing.cluster_inject \\
        --capture n1-0p --inject n2-0p --port 9012 --count 20 --bursts 3

It captures ``count`` genuine UDP datagrams to ``port`` that the node behind
``--capture`` sends (an AF_PACKET socket on its switch port), then sends ``bursts``
bursts through ``--inject`` (the switch port of the receiving node: a frame sent there
reaches that node as if it came over the wire), each burst holding:

- every captured datagram again, byte for byte (**replays**: genuine source address,
  MAC, cluster key and sequence numbers already seen; only the UDP checksum is cleared,
  as captured veth frames may carry a partial offloaded one);
- each frame with its last byte flipped (**forged**: the real sender's addresses and a
  plausible datagram whose HMAC does not verify, as an attacker without the key makes);
- each frame cut to 40 bytes (**truncated**).

Prints one JSON object: how many frames were captured and sent per kind. Pure helpers
(:func:`udp_payload`, :func:`rebuild`) are unit-testable.
"""

from __future__ import annotations

import argparse
import json
import socket
import struct
import sys
import time
from collections.abc import Sequence

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4


def udp_payload(frame: bytes, port: int) -> bytes | None:
    """The UDP payload of an Ethernet/IPv4 frame to ``port``, else None."""
    if len(frame) < 14 + 20 + 8 or frame[12:14] != b"\x08\x00":
        return None
    ihl = (frame[14] & 0x0F) * 4
    if frame[14 + 9] != 17:
        return None
    udp = 14 + ihl
    (dport,) = struct.unpack("!H", frame[udp + 2 : udp + 4])
    if dport != port:
        return None
    (length,) = struct.unpack("!H", frame[udp + 4 : udp + 6])
    return frame[udp + 8 : udp + length]


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return int(~total & 0xFFFF)


def rebuild(frame: bytes, payload: bytes) -> bytes:
    """``frame`` (Ethernet/IPv4/UDP) with another UDP payload: lengths and the IPv4
    header checksum recomputed, UDP checksum 0 (none, valid for IPv4)."""
    ihl = (frame[14] & 0x0F) * 4
    ip = bytearray(frame[14 : 14 + ihl])
    udp = bytearray(frame[14 + ihl : 14 + ihl + 8])
    struct.pack_into("!H", ip, 2, ihl + 8 + len(payload))
    struct.pack_into("!H", ip, 10, 0)
    struct.pack_into("!H", ip, 10, _checksum(bytes(ip)))
    struct.pack_into("!H", udp, 4, 8 + len(payload))
    struct.pack_into("!H", udp, 6, 0)
    return frame[:14] + bytes(ip) + bytes(udp) + payload


def capture(iface: str, port: int, count: int, timeout: float) -> list[bytes]:
    """Up to ``count`` frames to UDP ``port`` arriving on ``iface`` (not sent by us)."""
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sock.bind((iface, 0))
    sock.settimeout(0.2)
    frames: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while len(frames) < count and time.monotonic() < deadline:
            try:
                frame, addr = sock.recvfrom(65535)
            except TimeoutError:
                continue
            if addr[2] == PACKET_OUTGOING:
                continue
            if udp_payload(frame, port) is not None:
                frames.append(frame)
    finally:
        sock.close()
    return frames


def inject(iface: str, frames: Sequence[bytes]) -> None:
    """Send ``frames`` out of ``iface`` (towards the host behind that switch port)."""
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    sock.bind((iface, 0))
    try:
        for frame in frames:
            sock.send(frame)
    finally:
        sock.close()


def variants(frames: Sequence[bytes], port: int) -> dict[str, list[bytes]]:
    """Replayed, forged (last byte flipped) and truncated versions of ``frames``."""
    out: dict[str, list[bytes]] = {"replay": [], "forged": [], "truncated": []}
    for frame in frames:
        payload = udp_payload(frame, port)
        assert payload is not None
        # the same datagram; the UDP checksum is cleared because a frame captured on a
        # veth may carry a partial (offloaded) checksum the receiver would reject
        out["replay"].append(rebuild(frame, payload))
        out["forged"].append(rebuild(frame, payload[:-1] + bytes([payload[-1] ^ 0xFF])))
        out["truncated"].append(rebuild(frame, payload[:40]))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m hamod.testing.cluster_inject")
    p.add_argument("--capture", required=True, help="switch port of the genuine sender")
    p.add_argument("--inject", required=True, help="switch port of the receiver")
    p.add_argument("--port", type=int, default=9012)
    p.add_argument("--count", type=int, default=20)
    p.add_argument("--bursts", type=int, default=3)
    p.add_argument("--gap", type=float, default=2.0, help="seconds between bursts")
    p.add_argument("--timeout", type=float, default=10.0)
    args = p.parse_args(argv)
    frames = capture(args.capture, args.port, args.count, args.timeout)
    sent = {"replay": 0, "forged": 0, "truncated": 0}
    if frames:
        kinds = variants(frames, args.port)
        for burst in range(args.bursts):
            if burst:
                time.sleep(args.gap)
            for kind, batch in kinds.items():
                inject(args.inject, batch)
                sent[kind] += len(batch)
    print(json.dumps({"captured": len(frames), "sent": sent}))
    return 0 if frames else 1


if __name__ == "__main__":
    sys.exit(main())
