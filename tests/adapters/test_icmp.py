"""ICMP echo: loopback v4/v6, packet building/parsing, concurrency without mix-ups, and
(lab) a peer in a throwaway namespace going down, unroutable addresses, the witness
verdict, the datagram socket kind."""

from __future__ import annotations

import asyncio
import ctypes
import os
import socket
import struct
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from hamod.adapters import icmp
from hamod.adapters.icmp import (
    PingResult,
    any_reachable,
    echo_request,
    open_icmp_socket,
    parse_reply,
    ping,
)
from hamod.errors import AdapterError
from hamod.testing.netns import (
    LinkedPair,
    ThrowawayNetns,
    ipv6_unavailable,
    linked_pair,
    netns_unavailable,
    sweep_stale,
)

T = TypeVar("T")
CLONE_NEWNET = 0x40000000


def _icmp_unavailable() -> str | None:
    try:
        open_icmp_socket(socket.AF_INET).close()
    except AdapterError as exc:
        return str(exc)
    return None


@pytest.fixture(autouse=True)
def _need_icmp() -> Iterator[None]:
    reason = _icmp_unavailable()
    if reason:
        pytest.skip(reason)
    yield
    assert not icmp._idents_in_use, "a ping leaked its identifier"


def _need_ipv6() -> None:
    reason = ipv6_unavailable()
    if reason:
        pytest.skip(reason)


# --- packets ---------------------------------------------------------------------------


def _sum16(data: bytes) -> int:
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total >> 16) + (total & 0xFFFF)
    return total


def _ipv4_header(src: str, dst: str, length: int) -> bytes:
    return struct.pack(
        "!BBHHHBBH4s4s",
        0x45, 0, 20 + length, 0, 0, 64, 1, 0,
        socket.inet_aton(src), socket.inet_aton(dst),
    )  # fmt: skip


def test_ipv4_echo_request_has_a_valid_checksum() -> None:
    packet = echo_request(socket.AF_INET, 0x1234, 7, b"nonce123hamod")
    assert packet[0] == 8
    assert struct.unpack("!HH", packet[4:8]) == (0x1234, 7)
    assert _sum16(packet + b"\0" * (len(packet) % 2)) == 0xFFFF


def test_parse_reply_strips_the_ipv4_header_of_raw_sockets() -> None:
    reply = struct.pack("!BBHHH", 0, 0, 0, 42, 3) + b"payload!"
    raw = _ipv4_header("10.0.0.2", "10.0.0.1", len(reply)) + reply
    parsed = parse_reply(socket.AF_INET, "raw", raw)
    assert parsed is not None
    assert (parsed.ident, parsed.seq, parsed.payload, parsed.error) == (42, 3, b"payload!", None)
    assert parse_reply(socket.AF_INET, "dgram", reply) == parsed


def test_parse_reply_reads_the_request_quoted_by_an_icmp_error() -> None:
    request = echo_request(socket.AF_INET, 99, 5, b"x" * 16)
    quoted = _ipv4_header("10.0.0.1", "10.9.9.9", len(request)) + request[:8]
    error = struct.pack("!BBHI", 3, 1, 0, 0) + quoted
    parsed = parse_reply(socket.AF_INET, "raw", _ipv4_header("10.0.0.254", "10.0.0.1", 36) + error)
    assert parsed is not None
    assert (parsed.ident, parsed.seq) == (99, 5)
    assert parsed.error == "destination unreachable (code 1)"
    v6 = struct.pack("!BBHI", 1, 3, 0, 0) + b"\0" * 40 + struct.pack("!BBHHH", 128, 0, 0, 7, 1)
    parsed6 = parse_reply(socket.AF_INET6, "raw", v6)
    assert parsed6 is not None
    assert (parsed6.ident, parsed6.seq, parsed6.error) == (7, 1, "destination unreachable (code 3)")


@pytest.mark.parametrize(
    ("family", "data"),
    [
        (socket.AF_INET, b"\x45\x00"),  # truncated IP header
        (socket.AF_INET6, struct.pack("!BBHHH", 128, 0, 0, 1, 1)),  # a request, not a reply
        (socket.AF_INET6, struct.pack("!BBHHH", 135, 0, 0, 1, 1)),  # neighbour solicitation
        (socket.AF_INET6, struct.pack("!BBHI", 1, 0, 0, 0) + b"\0" * 10),  # short quote
        (socket.AF_INET6, b"\x81\x00"),  # truncated ICMPv6
    ],
)
def test_parse_reply_ignores_what_is_not_ours(family: socket.AddressFamily, data: bytes) -> None:
    assert parse_reply(family, "raw", data) is None


# --- arguments -------------------------------------------------------------------------


@pytest.mark.parametrize("addr", ["router", "10.0.0.300", "", "fe80::1%no-such-if0"])
def test_bad_address_is_an_adapter_error_naming_it(addr: str) -> None:
    with pytest.raises(AdapterError, match=r"ping '.*'"):
        asyncio.run(ping(addr, timeout=0.1))


@pytest.mark.parametrize(("count", "timeout"), [(0, 1.0), (70000, 1.0), (1, 0.0)])
def test_bad_count_or_timeout_is_refused(count: int, timeout: float) -> None:
    with pytest.raises(AdapterError, match=r"ping 127\.0\.0\.1: "):
        asyncio.run(ping("127.0.0.1", timeout=timeout, count=count))


def test_dgram_refusal_names_the_sysctl() -> None:
    low, high = map(int, Path("/proc/sys/net/ipv4/ping_group_range").read_text().split())
    if low <= os.getgid() <= high:
        pytest.skip(f"gid {os.getgid()} may open datagram ICMP sockets here ({low} {high})")
    with pytest.raises(AdapterError, match=r"IPv4 ICMP socket: dgram: .*ping_group_range"):
        open_icmp_socket(socket.AF_INET, ("dgram",))


# --- loopback --------------------------------------------------------------------------


def test_ipv4_loopback_answers_every_request() -> None:
    result = asyncio.run(ping("127.0.0.1", timeout=2.0, count=3, interval=0.02))
    assert result.reachable and result.error is None
    assert (result.sent, result.received, len(result.rtt_ms)) == (3, 3, 3)
    assert all(0 <= rtt < 2000 for rtt in result.rtt_ms)


def test_ipv6_loopback_answers() -> None:
    _need_ipv6()
    result = asyncio.run(ping("::1", timeout=2.0, count=2, interval=0.02))
    assert result == PingResult("::1", True, 2, 2, result.rtt_ms, None)


def test_many_concurrent_pings_get_their_own_replies() -> None:
    addrs = ["127.0.0.1", "::1"] if ipv6_unavailable() is None else ["127.0.0.1"]
    targets = [addrs[i % len(addrs)] for i in range(60)]

    async def run() -> list[PingResult]:
        pings = (ping(a, timeout=3.0, count=3, interval=0.01) for a in targets)
        return list(await asyncio.gather(*pings))

    results = asyncio.run(run())
    assert [r.addr for r in results] == targets
    # Every socket saw ~60x3 replies with the same sequence numbers; each kept only its own.
    assert {(r.sent, r.received, len(r.rtt_ms), r.error) for r in results} == {(3, 3, 3, None)}


def test_any_reachable_loopback_and_empty() -> None:
    verdict = asyncio.run(any_reachable(["127.0.0.1", "127.0.0.1"], 2.0, wait_all=True))
    assert verdict.reachable and verdict.which == ("127.0.0.1",)
    assert verdict.reason.startswith("witness reached: 127.0.0.1 (")
    empty = asyncio.run(any_reachable([], 1.0))
    assert not empty.reachable and empty.reason == "no witness address to ping"


# --- lab: a peer in a throwaway namespace ----------------------------------------------


@pytest.fixture
def pair() -> Iterator[tuple[ThrowawayNetns, LinkedPair]]:
    reason = netns_unavailable()
    if reason:
        pytest.skip(reason)
    sweep_stale()
    with ThrowawayNetns() as nets:  # deleted on exit, test failed or not
        yield nets, linked_pair(nets, v4="10.207.0", v6="fd03:207::")


def in_netns(ns: str, make: Callable[[], Awaitable[T]]) -> T:
    """Run ``make()`` on a fresh event loop in a thread that entered ``ns``: the sockets
    it opens live there, while this process stays in its own namespace."""
    out: list[T | BaseException] = []

    def body() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            with open(f"/run/netns/{ns}", "rb") as handle:
                if libc.setns(handle.fileno(), CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), f"setns {ns}")

            async def call() -> T:
                return await make()

            out.append(asyncio.run(call()))
        except BaseException as exc:
            out.append(exc)

    thread = threading.Thread(target=body, name=f"test-icmp-{ns}")
    thread.start()
    thread.join(30)
    assert out, "the namespace thread did not finish"
    if isinstance(out[0], BaseException):
        raise out[0]
    return out[0]


async def _with_ticker(work: Awaitable[T]) -> tuple[T, int]:
    """``work``'s result and how often a 10 ms ticker ran meanwhile (loop not blocked)."""
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    try:
        return await work, ticks
    finally:
        task.cancel()


@pytest.mark.lab
def test_peer_reachable_then_unreachable_once_its_link_is_down(
    pair: tuple[ThrowawayNetns, LinkedPair],
) -> None:
    nets, p = pair
    up = in_netns(p.a, lambda: ping(p.v4_b, timeout=2.0, count=2, interval=0.05))
    assert up.reachable and up.received == 2 and up.error is None
    if ipv6_unavailable() is None:
        up6 = in_netns(p.a, lambda: ping(p.v6_b, timeout=2.0))
        assert up6.reachable, up6.error

    nets.ip(p.b, "link", "set", p.ifname, "down")
    began = time.monotonic()
    down, ticks = in_netns(p.a, lambda: _with_ticker(ping(p.v4_b, timeout=0.5)))
    elapsed = time.monotonic() - began
    assert not down.reachable and down.received == 0
    assert down.error == "1 of 1 requests unanswered within 0.5 s"
    assert 0.45 <= elapsed < 1.5
    assert ticks >= 20  # the event loop kept running while we waited


@pytest.mark.lab
def test_unroutable_address_is_unreachable_with_a_reason(
    pair: tuple[ThrowawayNetns, LinkedPair],
) -> None:
    _, p = pair  # no default route in the namespaces
    began = time.monotonic()
    result = in_netns(p.a, lambda: ping("198.51.100.7", timeout=2.0, count=2, interval=0.01))
    assert time.monotonic() - began < 1.0  # nothing was sent, nothing to wait for
    assert result == PingResult("198.51.100.7", False, 0, 0, (), "send: Network is unreachable")
    if ipv6_unavailable() is None:
        six = in_netns(p.a, lambda: ping("2001:db8::7", timeout=2.0))
        assert not six.reachable and six.error == "send: Network is unreachable"


@pytest.mark.lab
def test_any_reachable_answers_at_the_first_witness_and_explains_failure(
    pair: tuple[ThrowawayNetns, LinkedPair],
) -> None:
    nets, p = pair
    silent = "10.207.0.9"  # on the link, nobody answers (ARP fails)
    began = time.monotonic()
    verdict = in_netns(p.a, lambda: any_reachable([silent, p.v4_b], 3.0))
    assert time.monotonic() - began < 1.5  # did not wait for the silent one
    assert verdict.reachable and verdict.which == (p.v4_b,)

    nets.ip(p.b, "link", "set", p.ifname, "down")
    lost = in_netns(p.a, lambda: any_reachable([silent, p.v4_b, "198.51.100.7"], 0.5))
    assert not lost.reachable and lost.which == ()
    assert lost.reason == (
        "no witness reached: 10.207.0.9: 1 of 1 requests unanswered within 0.5 s; "
        "10.207.0.2: 1 of 1 requests unanswered within 0.5 s; "
        "198.51.100.7: send: Network is unreachable"
    )


@pytest.mark.lab
def test_datagram_sockets_where_ping_group_range_allows_them(
    pair: tuple[ThrowawayNetns, LinkedPair],
) -> None:
    nets, p = pair
    nets.sysctl(p.a, "net.ipv4.ping_group_range", f"{os.getgid()} {os.getgid()}")
    kinds: tuple[icmp.SocketKind, ...] = ("dgram",)

    async def both() -> list[PingResult]:
        pings = [ping(p.v4_b, timeout=2.0, count=3, interval=0.01, kinds=kinds) for _ in range(8)]
        if ipv6_unavailable() is None:
            pings.append(ping(p.v6_b, timeout=2.0, count=2, interval=0.01, kinds=kinds))
        return list(await asyncio.gather(*pings))

    results = in_netns(p.a, both)
    assert all(r.reachable and r.error is None and r.received == r.sent for r in results)
    assert in_netns(p.a, lambda: _kind(socket.AF_INET)) == "dgram"


async def _kind(family: socket.AddressFamily) -> str:
    made = open_icmp_socket(family)
    made.close()
    return made.kind
