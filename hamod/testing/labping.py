"""A small ICMP echo prober the lab runs inside a host (``Lab.ping``), so fault tests do
not depend on iputils-ping being installed. Standard library only (run with
``python -I -S labping.py ADDR COUNT INTERVAL TIMEOUT``); prints the number of replies.
"""

from __future__ import annotations

import random
import select
import socket
import struct
import sys
import time


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def _echo(ident: int, seq: int) -> bytes:
    payload = b"hamod-lab-ping"
    header = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
    return struct.pack("!BBHHH", 8, 0, _checksum(header + payload), ident, seq) + payload


def ping(addr: str, count: int, interval: float, timeout: float) -> int:
    """Send ``count`` echo requests to ``addr`` every ``interval`` s; return how many were
    answered within ``timeout`` s of the last one."""
    ident = random.randrange(1, 0xFFFF)
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    answered: set[int] = set()
    now = time.monotonic()
    next_send, sent = now, 0
    deadline = float("inf")
    while len(answered) < count:
        now = time.monotonic()
        if sent < count and now >= next_send:
            sock.sendto(_echo(ident, sent), (addr, 0))
            sent += 1
            next_send = now + interval
            if sent == count:
                deadline = now + timeout
        if now >= deadline:
            break
        wait = min(next_send if sent < count else deadline, deadline) - time.monotonic()
        ready, _, _ = select.select([sock], [], [], max(wait, 0.0))
        while ready:
            data, (src, _) = sock.recvfrom(2048)
            ihl = (data[0] & 0x0F) * 4
            kind, _, _, rid, seq = struct.unpack("!BBHHH", data[ihl : ihl + 8])
            if kind == 0 and rid == ident and src == addr:
                answered.add(seq)
            ready, _, _ = select.select([sock], [], [], 0)
    return len(answered)


def main(argv: list[str]) -> int:
    """``ADDR COUNT INTERVAL TIMEOUT`` → prints the number of replies."""
    addr, count, interval, timeout = argv[0], int(argv[1]), float(argv[2]), float(argv[3])
    print(ping(addr, count, interval, timeout))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
