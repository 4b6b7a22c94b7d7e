"""Asynchronous ICMP echo: the router-ping witness and ping checkers.

Owns sending ICMP/ICMPv6 echo requests and matching their replies, for IPv4 and IPv6,
on the asyncio event loop (``add_reader``, non-blocking sockets: the loop is never
blocked), in whatever network namespace the calling thread is in. It decides nothing:
:func:`ping` reports what came back, :func:`any_reachable` which witnesses answered.

Sockets, in order of preference (``kinds``):

- ``dgram``: ``socket(AF_INET[6], SOCK_DGRAM, IPPROTO_ICMP[V6])``, allowed when the
  caller's group is in ``net.ipv4.ping_group_range`` (that sysctl also governs IPv6, and
  it applies to root too; it is per network namespace). The kernel picks the identifier
  and hands this socket only its own replies.
- ``raw``: ``SOCK_RAW``, needs ``CAP_NET_RAW`` (root). Every raw socket sees every ICMP
  packet, so replies are matched on identifier (unique among this process's live pings),
  sequence, source address and a random 8-byte nonce echoed back in the payload.

Network trouble (no route, no reply, destination unreachable) is a result, never an
exception. :class:`hamod.errors.AdapterError` is raised only for what the caller or the
host must fix: an argument that is not an IP address, or no ICMP socket can be opened.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import os
import secrets
import socket
import struct
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from hamod.errors import AdapterError

__all__ = [
    "IcmpSocket",
    "PingResult",
    "Reply",
    "SocketKind",
    "WitnessVerdict",
    "any_reachable",
    "echo_request",
    "open_icmp_socket",
    "parse_reply",
    "ping",
]

SocketKind = Literal["dgram", "raw"]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

ECHO_REQUEST = {socket.AF_INET: 8, socket.AF_INET6: 128}
ECHO_REPLY = {socket.AF_INET: 0, socket.AF_INET6: 129}
# ICMP errors that quote our request: (type -> label) per family.
ICMP_ERRORS = {
    socket.AF_INET: {3: "destination unreachable", 11: "time exceeded"},
    socket.AF_INET6: {1: "destination unreachable", 3: "time exceeded"},
}
SOL_RAW = 255
ICMP_FILTER = 1  # IPv4 raw sockets: bitmask of types to drop
ICMP6_FILTER = 1  # IPv6 raw sockets: 256-bit mask of types to drop
NONCE_LEN = 8
RECV_SIZE = 65535

_idents_in_use: set[int] = set()


@dataclass(frozen=True)
class PingResult:
    """What :func:`ping` saw: ``reachable`` when at least one request was answered.

    ``rtt_ms`` holds one round-trip time per answered request, in sequence order;
    ``error`` is None when every request was answered, else why not (the last cause)."""

    addr: str
    reachable: bool
    sent: int
    received: int
    rtt_ms: tuple[float, ...]
    error: str | None


@dataclass(frozen=True)
class WitnessVerdict:
    """Whether any witness answered, which ones did, and a one-line human reason."""

    reachable: bool
    which: tuple[str, ...]
    reason: str


@dataclass(frozen=True)
class IcmpSocket:
    """A non-blocking ICMP socket and what kind it is (``ident`` is 0 for ``dgram``).

    :meth:`close` it: that also frees its identifier for other pings."""

    sock: socket.socket
    kind: SocketKind
    family: socket.AddressFamily
    ident: int

    def close(self) -> None:
        """Close the socket and release the identifier (idempotent)."""
        self.sock.close()
        _idents_in_use.discard(self.ident)


@dataclass(frozen=True)
class Reply:
    """An ICMP message that concerns an echo request: a reply, or an error quoting it."""

    ident: int
    seq: int
    payload: bytes
    error: str | None = None


def _parse_target(addr: str) -> tuple[IPAddress, tuple[str, int] | tuple[str, int, int, int]]:
    try:
        parsed = ipaddress.ip_address(addr)
    except ValueError:
        raise AdapterError(f"ping {addr!r}: not an IPv4 or IPv6 address") from None
    if isinstance(parsed, ipaddress.IPv4Address):
        return parsed, (str(parsed), 0)
    scope = parsed.scope_id
    index = 0
    if scope:
        try:
            index = int(scope) if scope.isdigit() else socket.if_nametoindex(scope)
        except OSError as exc:
            raise AdapterError(f"ping {addr!r}: no interface {scope!r}: {exc}") from None
    bare = ipaddress.IPv6Address(str(parsed).split("%", 1)[0])
    return bare, (str(bare), 0, 0, index)


def _allocate_ident() -> int:
    for _ in range(64):
        ident = secrets.randbelow(0xFFFF) + 1
        if ident not in _idents_in_use:
            _idents_in_use.add(ident)
            return ident
    raise AdapterError(f"ping: no free ICMP identifier ({len(_idents_in_use)} pings in flight)")


def _raw_filter(sock: socket.socket, family: socket.AddressFamily) -> None:
    """Let through only echo replies and the errors that may quote our requests."""
    wanted = [ECHO_REPLY[family], *ICMP_ERRORS[family]]
    if family == socket.AF_INET:
        mask = 0xFFFFFFFF & ~sum(1 << t for t in wanted)
        sock.setsockopt(SOL_RAW, ICMP_FILTER, struct.pack("I", mask))
    else:
        words = [0xFFFFFFFF] * 8
        for kind in wanted:
            words[kind >> 5] &= ~(1 << (kind & 31))
        sock.setsockopt(socket.IPPROTO_ICMPV6, ICMP6_FILTER, struct.pack("8I", *words))


def open_icmp_socket(
    family: socket.AddressFamily, kinds: tuple[SocketKind, ...] = ("dgram", "raw")
) -> IcmpSocket:
    """The first ICMP socket of ``kinds`` this process may open, non-blocking.

    Raises AdapterError naming every kind tried and why it was refused."""
    proto = socket.IPPROTO_ICMP if family == socket.AF_INET else socket.IPPROTO_ICMPV6
    version = "IPv4" if family == socket.AF_INET else "IPv6"
    refusals: list[str] = []
    for kind in kinds:
        stype = socket.SOCK_DGRAM if kind == "dgram" else socket.SOCK_RAW
        try:
            sock = socket.socket(family, stype, proto)
        except OSError as exc:
            why = exc.strerror or str(exc)
            if kind == "dgram" and exc.errno in (errno.EACCES, errno.EPERM):
                why += f" (gid {os.getgid()} not in net.ipv4.ping_group_range)"
            elif kind == "raw" and exc.errno in (errno.EACCES, errno.EPERM):
                why += " (needs CAP_NET_RAW)"
            refusals.append(f"{kind}: {why}")
            continue
        try:
            sock.setblocking(False)
            if kind == "raw":
                _raw_filter(sock, family)
        except OSError as exc:
            sock.close()
            refusals.append(f"{kind}: cannot configure: {exc.strerror or exc}")
            continue
        try:
            ident = _allocate_ident() if kind == "raw" else 0
        except AdapterError:
            sock.close()
            raise
        return IcmpSocket(sock, kind, family, ident)
    raise AdapterError(f"cannot open an {version} ICMP socket: {'; '.join(refusals)}")


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def echo_request(family: socket.AddressFamily, ident: int, seq: int, payload: bytes) -> bytes:
    """An echo request (ICMPv6's checksum is filled in by the kernel)."""
    header = struct.pack("!BBHHH", ECHO_REQUEST[family], 0, 0, ident, seq)
    if family == socket.AF_INET6:
        return header + payload
    checksum = _checksum(header + payload)
    return struct.pack("!BBHHH", ECHO_REQUEST[family], 0, checksum, ident, seq) + payload


def parse_reply(family: socket.AddressFamily, kind: SocketKind, data: bytes) -> Reply | None:
    """The echo reply, or the ICMP error quoting an echo request, in ``data``; else None.

    ``data`` is what the socket returned: IPv4 raw sockets include the IP header."""
    if family == socket.AF_INET and kind == "raw":
        if len(data) < 20:
            return None
        data = data[(data[0] & 0x0F) * 4 :]
    if len(data) < 8:
        return None
    mtype, code, _, ident, seq = struct.unpack("!BBHHH", data[:8])
    if mtype == ECHO_REPLY[family]:
        return Reply(ident, seq, data[8:])
    label = ICMP_ERRORS[family].get(mtype)
    if label is None:
        return None
    quoted = data[8:]  # the offending packet: IP header, then our ICMP header
    if family == socket.AF_INET:
        if len(quoted) < 20:
            return None
        quoted = quoted[(quoted[0] & 0x0F) * 4 :]
    else:
        quoted = quoted[40:]
    if len(quoted) < 8:
        return None
    qtype, _, _, qident, qseq = struct.unpack("!BBHHH", quoted[:8])
    if qtype != ECHO_REQUEST[family]:
        return None
    return Reply(qident, qseq, b"", error=f"{label} (code {code})")


@dataclass
class _Probe:
    """Mutable bookkeeping of one :func:`ping` call (private to it)."""

    target: IPAddress
    icmp: IcmpSocket
    nonce: bytes
    sent_at: dict[int, float] = field(default_factory=dict)
    rtt: dict[int, float] = field(default_factory=dict)
    error: str | None = None
    sending_done: bool = False
    finished: asyncio.Event = field(default_factory=asyncio.Event)

    def check_finished(self) -> None:
        if self.sending_done and len(self.rtt) >= len(self.sent_at):
            self.finished.set()

    def on_readable(self) -> None:
        while True:
            try:
                data, source = self.icmp.sock.recvfrom(RECV_SIZE)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:  # dgram sockets report ICMP errors this way
                self.error = f"receive: {exc.strerror or exc}"
                break
            self._handle(data, str(source[0]))
        self.check_finished()

    def _handle(self, data: bytes, source: str) -> None:
        now = time.monotonic()
        reply = parse_reply(self.icmp.family, self.icmp.kind, data)
        if reply is None or reply.seq not in self.sent_at:
            return
        if self.icmp.kind == "raw" and reply.ident != self.icmp.ident:
            return
        if reply.error is not None:
            self.error = f"{reply.error} from {source}"
            return
        try:
            origin = ipaddress.ip_address(source.split("%", 1)[0])
        except ValueError:
            return
        if origin != self.target or not reply.payload.startswith(self.nonce):
            return
        self.rtt.setdefault(reply.seq, (now - self.sent_at[reply.seq]) * 1000.0)


async def ping(
    addr: str,
    *,
    timeout: float,
    count: int = 1,
    interval: float = 1.0,
    kinds: tuple[SocketKind, ...] = ("dgram", "raw"),
) -> PingResult:
    """Send ``count`` echo requests to ``addr``, ``interval`` s apart, and wait up to
    ``timeout`` s after the last one for the replies (returns as soon as all came back).

    ``addr`` is a literal IPv4 or IPv6 address (``fe80::1%eth0`` for link-local); no DNS.
    Takes at most ``(count - 1) * interval + timeout`` seconds."""
    if count < 1 or count > 0xFFFF:
        raise AdapterError(f"ping {addr}: count must be 1..65535, got {count}")
    if timeout <= 0 or interval < 0:
        raise AdapterError(
            f"ping {addr}: need timeout > 0 and interval >= 0, got {timeout}, {interval}"
        )
    target, sockaddr = _parse_target(addr)
    family = socket.AF_INET if target.version == 4 else socket.AF_INET6
    icmp = open_icmp_socket(family, kinds)
    loop = asyncio.get_running_loop()
    probe = _Probe(target, icmp, secrets.token_bytes(NONCE_LEN))
    payload = probe.nonce + b"hamod-ping"
    loop.add_reader(icmp.sock.fileno(), probe.on_readable)
    try:
        start = loop.time()
        for seq in range(count):
            delay = start + seq * interval - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            packet = echo_request(family, icmp.ident, seq, payload)
            probe.sent_at[seq] = time.monotonic()
            try:
                icmp.sock.sendto(packet, sockaddr)
            except OSError as exc:
                del probe.sent_at[seq]
                probe.error = f"send: {exc.strerror or exc}"
        probe.sending_done = True
        probe.check_finished()
        if probe.sent_at:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(probe.finished.wait(), timeout)
    finally:
        loop.remove_reader(icmp.sock.fileno())
        icmp.close()
    sent, received = len(probe.sent_at), len(probe.rtt)
    error = probe.error
    if received < sent and error is None:
        error = f"{sent - received} of {sent} requests unanswered within {timeout:g} s"
    elif received == sent and sent == count:
        error = None
    rtts = tuple(round(probe.rtt[s], 3) for s in sorted(probe.rtt))
    return PingResult(addr, received > 0, sent, received, rtts, error)


async def any_reachable(
    addrs: Iterable[str], timeout: float, *, wait_all: bool = False
) -> WitnessVerdict:
    """Ping every address of ``addrs`` at once (one request each).

    Returns as soon as one answers (the others are cancelled) unless ``wait_all``; then
    ``which`` lists every witness that answered within ``timeout``. Raises AdapterError
    as :func:`ping` does (a bad address, no ICMP socket)."""
    targets = tuple(dict.fromkeys(addrs))
    if not targets:
        return WitnessVerdict(False, (), "no witness address to ping")
    tasks = {asyncio.ensure_future(ping(a, timeout=timeout)): a for a in targets}
    results: dict[str, PingResult] = {}
    try:
        pending = set(tasks)
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                results[tasks[task]] = task.result()
            if not wait_all and any(r.reachable for r in results.values()):
                break
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    which = tuple(a for a in targets if a in results and results[a].reachable)
    if which:
        rtts = ", ".join(f"{a} ({results[a].rtt_ms[0]:.1f} ms)" for a in which)
        return WitnessVerdict(True, which, f"witness reached: {rtts}")
    causes = "; ".join(f"{a}: {results[a].error}" for a in targets)
    return WitnessVerdict(False, (), f"no witness reached: {causes}")
