"""The heartbeat transport on real loopback sockets: two nodes, two networks (two port
pairs), pulse 50 ms, timeout 300 ms. Both see each other; a muted network degrades but
does not lose; a stopped peer is lost within timeout + 2 pulses; a restarted peer is found
again after the echo confirmation; forged, replayed, foreign and garbage datagrams are
dropped, counted, and reported once per burst; send and bind errors stay contained."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from hamod.adapters.heartbeat import (
    Endpoint,
    HeartbeatConfig,
    HeartbeatNetwork,
    HeartbeatTransport,
)
from hamod.adapters.heartbeat_drops import DropBurst
from hamod.adapters.heartbeat_liveness import (
    HeartbeatReceived,
    NetworkAlive,
    NetworkSilent,
    Observation,
    PeerFound,
    PeerLost,
    PeerRestarted,
)
from hamod.errors import AdapterError
from hamod.proto import (
    Echo,
    Generation,
    Heartbeat,
    ModuleAnnouncement,
    ModuleState,
    Phase,
    encode,
)

PULSE, TIMEOUT = 0.05, 0.3
KEY = bytes(range(32))
A, B = "127.0.0.1", "127.0.0.2"
NETS = ("lan", "repl")


def free_ports(host: str, count: int) -> list[int]:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    socks = [socket.socket(family, socket.SOCK_DGRAM) for _ in range(count)]
    try:
        for s in socks:
            s.bind((host, 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def configs(
    a: str = A, b: str = B, extra_b_peers: dict[str, Endpoint] | None = None
) -> tuple[HeartbeatConfig, HeartbeatConfig]:
    pa, pb = free_ports(a, len(NETS)), free_ports(b, len(NETS))
    ends_a = {n: Endpoint(a, p) for n, p in zip(NETS, pa, strict=True)}
    ends_b = {n: Endpoint(b, p) for n, p in zip(NETS, pb, strict=True)}
    nets_a = tuple(HeartbeatNetwork(n, ends_a[n], {"b": ends_b[n]}) for n in NETS)
    nets_b = tuple(
        HeartbeatNetwork(n, ends_b[n], {"a": ends_a[n], **(extra_b_peers or {})}) for n in NETS
    )
    return (
        HeartbeatConfig("prod", "a", KEY, nets_a, pulse=PULSE, timeout=TIMEOUT),
        HeartbeatConfig("prod", "b", KEY, nets_b, pulse=PULSE, timeout=TIMEOUT),
    )


def module(name: str = "pg") -> ModuleAnnouncement:
    return ModuleAnnouncement(
        name, ModuleState.PRIM, Phase.READY, True, Generation(), 3, 0, "a", False, "ab"
    )


class Node:
    """A transport plus everything it reported."""

    def __init__(self, config: HeartbeatConfig, **kwargs: Any) -> None:
        self.events: list[tuple[float, Observation]] = []
        self.bursts: list[DropBurst] = []
        self.modules: tuple[ModuleAnnouncement, ...] = (module(),)
        self.t = HeartbeatTransport(
            config,
            lambda: self.modules,
            lambda obs: self.events.append((time.monotonic(), obs)),
            on_drops=self.bursts.append,
            drop_quiet=0.2,
            **kwargs,
        )

    def of(self, kind: type[Any]) -> list[Any]:
        return [e for _, e in self.events if isinstance(e, kind)]

    def when(self, obs: Observation) -> float | None:
        return next((t for t, e in self.events if _same(e, obs)), None)

    def seen(self, obs: Observation) -> bool:
        return self.when(obs) is not None


def _same(e: Observation, obs: Observation) -> bool:
    keys = ("peer", "network")
    return type(e) is type(obs) and all(getattr(e, k, 0) == getattr(obs, k, 0) for k in keys)


async def wait_for(check: Callable[[], bool], within: float = 5.0) -> None:
    end = time.monotonic() + within
    while not check():
        if time.monotonic() > end:
            raise AssertionError(f"condition not met within {within}s")
        await asyncio.sleep(0.01)


def run(coro: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(asyncio.wait_for(coro(), 30))


async def _both(body: Callable[[Node, Node], Awaitable[None]], **kw: Any) -> None:
    cfg_a, cfg_b = configs(**kw)
    a, b = Node(cfg_a), Node(cfg_b)
    async with a.t, b.t:
        await wait_for(lambda: a.seen(PeerFound("b")) and b.seen(PeerFound("a")))
        await body(a, b)


def test_both_nodes_see_each_other_on_both_networks() -> None:
    async def body(a: Node, b: Node) -> None:
        for me, peer in ((a, "b"), (b, "a")):
            await wait_for(lambda: me.t.snapshot(peer).alive == set(NETS))  # noqa: B023
            assert not me.t.snapshot(peer).degraded
        got = a.of(HeartbeatReceived)[-1]
        assert got.heartbeat.modules == (module(),) and got.heartbeat.sender == "b"
        assert {e.network for e in a.of(HeartbeatReceived)} == set(NETS)
        assert a.t.peer_epoch("b") == b.t.epoch
        assert not a.of(PeerLost) and not a.of(NetworkSilent)

    run(lambda: _both(body))


def test_one_network_muted_is_degraded_not_lost_then_recovers() -> None:
    async def body(a: Node, b: Node) -> None:
        b.t.mute("lan")
        await wait_for(lambda: a.seen(NetworkSilent("b", "lan")))
        snap = a.t.snapshot("b")
        assert snap.degraded and not snap.lost and snap.alive == {"repl"}
        await asyncio.sleep(2 * TIMEOUT)
        assert not a.of(PeerLost) and len(a.of(NetworkSilent)) == 1
        b.t.mute("lan", False)
        await wait_for(lambda: len(a.of(NetworkAlive)) == 3)
        assert not a.t.snapshot("b").degraded

    run(lambda: _both(body))


def test_stopped_peer_is_lost_within_timeout_plus_two_pulses() -> None:
    async def body(a: Node, b: Node) -> None:
        await b.t.stop()
        stopped = time.monotonic()
        await wait_for(lambda: a.seen(PeerLost("b")), within=TIMEOUT + 2)
        lost_at = a.when(PeerLost("b"))
        assert lost_at is not None and lost_at - stopped <= TIMEOUT + 2 * PULSE
        assert {e.network for e in a.of(NetworkSilent)} == set(NETS)
        await asyncio.sleep(2 * TIMEOUT)
        assert len(a.of(PeerLost)) == 1 and a.t.snapshot("b").lost

    run(lambda: _both(body))


def test_restarted_peer_is_found_again_after_echo_confirmation() -> None:
    async def scenario() -> None:
        cfg_a, cfg_b = configs()
        a, b = Node(cfg_a), Node(cfg_b)
        async with a.t:
            async with b.t:
                await wait_for(lambda: a.seen(PeerFound("b")))
            await wait_for(lambda: a.seen(PeerLost("b")))
            b2 = Node(cfg_b)  # same node, same ports, new random epoch
            assert b2.t.epoch != b.t.epoch
            async with b2.t:
                await wait_for(lambda: len(a.of(PeerFound)) == 2 and b2.seen(PeerFound("a")))
                assert a.t.peer_epoch("b") == b2.t.epoch
                assert a.of(PeerRestarted) == [
                    PeerRestarted("b", b.t.epoch, b2.t.epoch, a.of(PeerRestarted)[0].at)
                ]
                # Accepted only once b2 echoed a's epoch: its first datagrams cannot.
                first = [e for e in a.of(HeartbeatReceived) if e.heartbeat.epoch == b2.t.epoch]
                echo = first[0].heartbeat.echo_for("a")
                assert echo is not None and echo.epoch == a.t.epoch

    run(scenario)


def test_quick_restart_within_timeout_is_a_restart_not_a_loss() -> None:
    async def body(a: Node, b: Node) -> None:
        await b.t.stop()
        b2 = Node(b.t.config)
        async with b2.t:
            await wait_for(lambda: bool(a.of(PeerRestarted)))
        assert not a.of(PeerLost)

    run(lambda: _both(body))


def test_forged_replayed_foreign_and_misdirected_datagrams_are_dropped() -> None:
    tap_port = free_ports("127.0.0.3", 1)[0]
    tap = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tap.bind(("127.0.0.3", tap_port))
    tap.settimeout(2)

    async def body(a: Node, b: Node) -> None:
        lan = a.t.local_address("lan")
        captured = await asyncio.to_thread(tap.recv, 2048)  # what b sends a, byte for byte
        await wait_for(lambda: a.t.accepted > 10)
        received_before = len(a.of(HeartbeatReceived))
        seq = a.t.seq
        echo = (Echo("a", a.t.epoch, seq),)
        hb = Heartbeat("prod", "b", "lan", 12345, 1, (module("evil"),), echo)
        send = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        send.bind(("127.0.0.9", 0))
        with send:
            send.sendto(encode(hb, b"K" * 32), lan)  # wrong key
            send.sendto(encode(Heartbeat("other", "b", "lan", 1, 1), KEY), lan)
            for _ in range(3):
                send.sendto(captured, lan)
            send.sendto(encode(Heartbeat("prod", "mallory", "lan", 9, 1, (), echo), KEY), lan)
            await wait_for(lambda: bool(a.bursts))
        counters = a.t.counters
        assert counters["bad_mac"] == 1 and counters["foreign_cluster"] == 1
        assert counters["replay"] == 3 and counters["unknown_sender"] == 1
        new = [e.heartbeat for e in a.of(HeartbeatReceived)[received_before:]]
        assert all(h.epoch == b.t.epoch and h.modules == (module(),) for h in new)
        keys = [(e.network, e.heartbeat.seq) for e in a.of(HeartbeatReceived)]
        assert len(keys) == len(set(keys)), "a datagram was accepted twice"
        (burst,) = a.bursts
        assert burst.count == 6 and burst.source == "127.0.0.9"
        assert a.t.peer_epoch("b") == b.t.epoch and not a.of(PeerRestarted)

    try:
        run(lambda: _both(body, extra_b_peers={"tap": Endpoint("127.0.0.3", tap_port)}))
    finally:
        tap.close()


def test_datagram_naming_another_network_is_dropped() -> None:
    async def scenario() -> None:
        cfg_a, _ = configs()
        a = Node(cfg_a)
        async with a.t:
            await asyncio.sleep(PULSE * 2)
            echo = (Echo("a", a.t.epoch, a.t.seq),)
            forged = encode(Heartbeat("prod", "b", "repl", 5, 1, (), echo), KEY)
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.sendto(forged, a.t.local_address("lan"))
            await wait_for(lambda: a.t.counters["wrong_network"] == 1)
            assert not a.of(HeartbeatReceived) and not a.of(PeerFound)

    run(scenario)


def test_a_burst_of_garbage_is_survived_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    async def body(a: Node, b: Node) -> None:
        a.t._on_drops = lambda burst: logging.getLogger("hb.test").warning("%s", burst)
        lan = a.t.local_address("lan")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.9", 0))
            for i in range(1000):
                junk = os.urandom(i % 300)
                s.sendto(b"HMHB\x01\x01" + junk if i % 3 == 0 else junk, lan)
                if i % 10 == 0:  # paced: a flood beyond the socket buffer is lost in the kernel
                    await asyncio.sleep(0.001)
        await wait_for(lambda: sum(a.t.counters[r] for r in DROPS) == 1000)
        await asyncio.sleep(0.5)
        before = a.t.accepted
        await asyncio.sleep(3 * PULSE)
        assert a.t.accepted > before, "stopped accepting after the garbage"
        assert not a.of(PeerLost)

    DROPS = ("truncated", "bad_magic", "malformed", "foreign_cluster", "bad_version")
    with caplog.at_level(logging.WARNING, logger="hb.test"):
        run(lambda: _both(body))
    lines = [r.getMessage() for r in caplog.records if r.name == "hb.test"]
    assert len(lines) == 1, lines
    assert lines[0].startswith("dropped 1000 heartbeat datagram(s) from 127.0.0.9 on network lan")


def test_send_errors_on_one_network_never_stop_the_other(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> None:
        cfg_a, cfg_b = configs()
        bad = HeartbeatNetwork("lan", cfg_a.networks[0].local, {"b": Endpoint("255.255.255.255")})
        cfg_a = HeartbeatConfig("prod", "a", KEY, (bad, cfg_a.networks[1]), PULSE, TIMEOUT)
        a, b = Node(cfg_a), Node(cfg_b)
        async with a.t, b.t:
            await wait_for(lambda: b.seen(NetworkSilent("a", "lan")))
            await asyncio.sleep(4 * PULSE)
            assert b.t.snapshot("a").degraded and not b.of(PeerLost)
            (status,) = [s for s in a.t.status() if s.name == "lan"]
            assert status.bound and "EACCES" in dict(status.send_errors)["b"]

    with caplog.at_level(logging.WARNING, logger="hamod.adapters.heartbeat"):
        run(scenario)
    sends = [r for r in caplog.records if "cannot send" in r.getMessage()]
    assert len(sends) == 1, "a send error is logged once per change, not per pulse"


def test_absent_address_is_retried_and_port_in_use_is_an_error() -> None:
    async def scenario() -> None:
        cfg_a, cfg_b = configs()
        gone = HeartbeatNetwork("lan", Endpoint("192.0.2.77", 4999), {"b": Endpoint(B)})
        cfg = HeartbeatConfig("prod", "a", KEY, (gone, cfg_a.networks[1]), PULSE, TIMEOUT)
        a, b = Node(cfg), Node(cfg_b)
        async with a.t, b.t:
            await wait_for(lambda: b.seen(PeerFound("a")))
            (status,) = [s for s in a.t.status() if s.name == "lan"]
            assert not status.bound and "EADDRNOTAVAIL" in str(status.bind_error)
            assert a.t.local_address("lan") is None
            busy = Node(cfg_b)
            with pytest.raises(AdapterError, match=r"network lan: cannot bind .*EADDRINUSE"):
                await busy.t.start()
            assert busy.t.status()[0].bound is False and busy.t.status()[1].bound is False

    run(scenario)


def _ipv6_loopback() -> str | None:
    if not Path("/proc/sys/net/ipv6").is_dir():
        return "the kernel has no IPv6"
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
    except OSError as exc:
        return f"cannot bind ::1: {exc}"
    return None


@pytest.mark.skipif(_ipv6_loopback() is not None, reason=str(_ipv6_loopback()))
def test_ipv6_loopback() -> None:
    async def body(a: Node, b: Node) -> None:
        await wait_for(lambda: a.t.snapshot("b").alive == set(NETS))
        assert len(a.t.local_address("lan")) == 4

    run(lambda: _both(body, a="::1", b="::1"))


def test_stop_is_idempotent_and_frees_the_ports() -> None:
    async def scenario() -> None:
        cfg_a, _ = configs()
        a = Node(cfg_a)
        await a.t.start()
        with pytest.raises(AdapterError, match="already started"):
            await a.t.start()
        await a.t.stop()
        await a.t.stop()
        for net in cfg_a.networks:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.bind((net.local.host, net.local.port))

    run(scenario)


def test_many_modules_are_split_over_several_datagrams() -> None:
    async def body(a: Node, b: Node) -> None:
        b.modules = tuple(module(f"module-{i:02d}-" + "x" * 40) for i in range(40))
        await wait_for(lambda: len(_latest_modules(a)) == 40)
        assert a.t.counters["malformed"] == 0

    run(lambda: _both(body))


def _latest_modules(node: Node) -> set[str]:
    recent = node.of(HeartbeatReceived)[-12:]
    return {m.name for e in recent if e.network == "lan" for m in e.heartbeat.modules}


def test_failing_announcements_and_sink_do_not_stop_heartbeats() -> None:
    async def body(a: Node, b: Node) -> None:
        def boom() -> tuple[ModuleAnnouncement, ...]:
            raise RuntimeError("daemon bug")

        b.t._announcements = boom
        seq = b.t.seq
        await wait_for(lambda: b.t.seq > seq + 4)
        assert a.of(HeartbeatReceived)[-1].heartbeat.modules == (module(),)  # the last good

        def bad_sink(obs: Observation) -> None:
            raise RuntimeError("sink bug")

        a.t._sink = bad_sink
        accepted = a.t.accepted
        await wait_for(lambda: a.t.accepted > accepted + 4)

    run(lambda: _both(body))
