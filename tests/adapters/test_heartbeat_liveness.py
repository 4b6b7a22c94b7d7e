"""Heartbeat timing logic with time as an input: liveness edges (lost, degraded, found,
restarted, flapping), drop bursts, and the transport's settings validation."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hamod.adapters.heartbeat import Endpoint, HeartbeatConfig, HeartbeatNetwork
from hamod.adapters.heartbeat_drops import MAX_SOURCES, OTHER_SOURCES, DropTracker
from hamod.adapters.heartbeat_liveness import (
    Liveness,
    NetworkAlive,
    NetworkSilent,
    Observation,
    PeerFound,
    PeerLost,
    PeerRestarted,
)
from hamod.errors import AdapterError

T = 1.0  # timeout


def kinds(events: list[Observation]) -> list[tuple[str, ...]]:
    """Events without their timestamps, for comparisons."""
    out: list[tuple[str, ...]] = []
    for e in events:
        name = type(e).__name__
        net = getattr(e, "network", None)
        out.append((name, e.peer) if net is None else (name, e.peer, net))
    return out


def two_nets(start: float = 0.0) -> Liveness:
    return Liveness({"b": ("lan", "repl")}, timeout=T, start=start)


def test_first_heartbeats_find_the_peer_once() -> None:
    live = two_nets()
    assert kinds(live.heard("b", "lan", 0.1)) == [
        ("NetworkAlive", "b", "lan"),
        ("PeerFound", "b"),
    ]
    assert kinds(live.heard("b", "repl", 0.2)) == [("NetworkAlive", "b", "repl")]
    assert live.heard("b", "lan", 0.3) == []
    snap = live.snapshot("b", 0.3)
    assert snap.alive == {"lan", "repl"} and not snap.lost and not snap.degraded


def test_all_networks_silent_for_timeout_loses_the_peer_exactly_once() -> None:
    live = two_nets()
    live.heard("b", "lan", 0.0)
    live.heard("b", "repl", 0.5)
    assert live.tick(0.99) == []
    assert kinds(live.tick(1.0)) == [("NetworkSilent", "b", "lan")]
    assert live.snapshot("b", 1.2).degraded
    assert live.tick(1.49) == []
    events = live.tick(1.5)
    assert kinds(events) == [("NetworkSilent", "b", "repl"), ("PeerLost", "b")]
    assert events[-1] == PeerLost("b", 1.5)
    assert live.tick(2.0) == [] and live.tick(100.0) == []
    snap = live.snapshot("b", 100.0)
    assert snap.lost and not snap.degraded and snap.silent == {"lan", "repl"}


def test_one_network_silent_is_degraded_not_lost() -> None:
    live = two_nets()
    live.heard("b", "lan", 0.0)
    live.heard("b", "repl", 0.0)
    events: list[Observation] = []
    for step in range(1, 50):  # repl keeps beating every 0.1 s, lan is dead
        now = step * 0.1
        events += live.heard("b", "repl", now)
    assert kinds(events) == [("NetworkSilent", "b", "lan")]
    snap = live.snapshot("b", 4.9)
    assert snap.degraded and not snap.lost
    assert snap.alive == {"repl"} and snap.silent == {"lan"}


def test_recovery_after_loss() -> None:
    live = two_nets()
    live.heard("b", "lan", 0.0)
    assert kinds(live.tick(5.0)) == [
        ("NetworkSilent", "b", "lan"),
        ("NetworkSilent", "b", "repl"),
        ("PeerLost", "b"),
    ]
    assert kinds(live.heard("b", "repl", 6.0, epoch=7)) == [
        ("NetworkAlive", "b", "repl"),
        ("PeerFound", "b"),
    ]
    assert kinds(live.heard("b", "lan", 6.1, epoch=7)) == [("NetworkAlive", "b", "lan")]


def test_overdue_silence_is_reported_before_the_heartbeat_that_ends_it() -> None:
    live = two_nets()
    live.heard("b", "lan", 0.0)
    live.heard("b", "repl", 0.0)
    assert kinds(live.heard("b", "lan", 3.0)) == [
        ("NetworkSilent", "b", "lan"),
        ("NetworkSilent", "b", "repl"),
        ("PeerLost", "b"),
        ("NetworkAlive", "b", "lan"),
        ("PeerFound", "b"),
    ]


def test_never_heard_peer_is_lost_after_timeout_from_start() -> None:
    live = two_nets(start=10.0)
    assert live.tick(10.5) == []
    snap = live.snapshot("b", 10.5)
    assert snap.pending == {"lan", "repl"} and not snap.lost
    assert live.next_deadline() == 11.0
    assert kinds(live.tick(11.0))[-1] == ("PeerLost", "b")
    assert live.next_deadline() == float("inf")


def test_a_network_never_heard_becomes_silent_and_degrades() -> None:
    live = two_nets()
    live.heard("b", "lan", 0.2)
    assert live.snapshot("b", 0.5).pending == {"repl"}
    assert not live.snapshot("b", 0.5).degraded
    assert kinds(live.heard("b", "lan", 1.0)) == [("NetworkSilent", "b", "repl")]
    assert live.snapshot("b", 1.0).degraded


def test_flapping_network_reports_each_edge_once() -> None:
    live = two_nets()
    events: list[Observation] = []
    now = 0.0
    for cycle in range(5):
        for _ in range(10):  # 1 s of lan beating (repl always beats)
            events += live.heard("b", "repl", now)
            events += live.heard("b", "lan", now)
            now += 0.1
        for _ in range(15):  # 1.5 s of lan silence
            events += live.heard("b", "repl", now)
            now += 0.1
        del cycle
    lan = [k for k in kinds(events) if k[-1] == "lan"]
    assert lan == [("NetworkAlive", "b", "lan"), ("NetworkSilent", "b", "lan")] * 5
    assert kinds(events).count(("PeerFound", "b")) == 1
    assert ("PeerLost", "b") not in kinds(events)


def test_restart_is_reported_even_within_timeout() -> None:
    live = two_nets()
    live.heard("b", "lan", 0.0, epoch=1)
    live.heard("b", "lan", 0.1, epoch=1)
    assert live.heard("b", "lan", 0.2, epoch=2) == [PeerRestarted("b", 1, 2, 0.2)]
    assert live.snapshot("b", 0.2).epoch == 2


def test_snapshot_narrowed_to_a_module_timeout_and_networks() -> None:
    live = two_nets()
    live.heard("b", "lan", 0.0)
    live.heard("b", "repl", 0.5)
    narrow = live.snapshot("b", 0.7, timeout=0.6, networks=["lan"])
    assert narrow.lost and narrow.silent == {"lan"}
    assert dict(live.snapshot("b", 0.7).ages) == pytest.approx({"lan": 0.7, "repl": 0.2})
    with pytest.raises(ValueError, match="not watched"):
        live.snapshot("b", 0.7, networks=["wan"])


def test_liveness_refuses_unknown_peers_and_networks() -> None:
    live = two_nets()
    with pytest.raises(ValueError, match="unknown peer"):
        live.heard("c", "lan", 0.0)
    with pytest.raises(ValueError, match="not watched"):
        live.heard("b", "wan", 0.0)
    with pytest.raises(ValueError):
        Liveness({"b": ()}, timeout=1.0, start=0.0)
    with pytest.raises(ValueError):
        Liveness({"b": ("lan",)}, timeout=0.0, start=0.0)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["lan", "repl", None]), st.floats(0.0, 2.5)),
        max_size=40,
    )
)
def test_edges_alternate_and_match_the_snapshot(steps: list[tuple[str | None, float]]) -> None:
    """Whatever the arrivals: per network Alive/Silent alternate, Found/Lost alternate,
    and after each call the last reported states equal the snapshot."""
    live = two_nets()
    now = 0.0
    last: dict[str, str] = {}
    for net, gap in steps:
        now += gap
        events = live.tick(now) if net is None else live.heard("b", net, now)
        for e in events:
            key = getattr(e, "network", "peer")
            name = type(e).__name__
            assert last.get(key) != name, f"{name} reported twice in a row"
            last[key] = name
        snap = live.snapshot("b", now)
        for n in ("lan", "repl"):
            if n in snap.alive:
                assert last.get(n) == "NetworkAlive"
            if n in snap.silent:
                assert last.get(n) == "NetworkSilent"
        if snap.lost:
            assert last.get("peer") == "PeerLost"
        elif snap.alive:
            assert last.get("peer") == "PeerFound"


def test_observations_carry_their_time() -> None:
    live = two_nets()
    assert live.heard("b", "lan", 0.25) == [NetworkAlive("b", "lan", 0.25), PeerFound("b", 0.25)]
    assert live.tick(1.25)[0] == NetworkSilent("b", "lan", 1.25)


# --- drop bursts -------------------------------------------------------------------


def test_a_burst_of_drops_is_reported_once_when_it_ends() -> None:
    drops = DropTracker(quiet=1.0)
    for i in range(1000):
        drops.add("lan", "10.0.0.9", "bad_magic" if i % 2 else "truncated", "x", i * 0.001)
    assert drops.due(1.5) == []
    assert drops.next_deadline() == pytest.approx(1.999)
    (burst,) = drops.due(2.0)
    assert burst.count == 1000 and not burst.ongoing
    assert dict(burst.reasons) == {"bad_magic": 500, "truncated": 500}
    assert str(burst).startswith("dropped 1000 heartbeat datagram(s) from 10.0.0.9 on network lan")
    assert drops.due(10.0) == []
    assert drops.counters["bad_magic"] == 500 and drops.counters["replay"] == 0


def test_an_endless_flood_is_reported_every_longest_seconds() -> None:
    drops = DropTracker(quiet=1.0, longest=5.0)
    reports = []
    for i in range(1200):  # 12 s of one drop every 10 ms
        now = i * 0.01
        drops.add("lan", "10.0.0.9", "bad_mac", "forged", now)
        reports += drops.due(now)
    assert len(reports) == 2 and all(r.ongoing for r in reports)
    assert "(continuing)" in str(reports[0])
    (tail,) = drops.flush()
    assert sum(r.count for r in reports) + tail.count == 1200


def test_bursts_are_per_source_and_network() -> None:
    drops = DropTracker(quiet=0.5)
    drops.add("lan", "a", "replay", "x", 0.0)
    drops.add("repl", "a", "replay", "x", 0.0)
    drops.add("lan", "b", "replay", "x", 0.0)
    assert len(drops.due(1.0)) == 3


def test_a_spoofed_flood_tracks_a_bounded_number_of_sources() -> None:
    drops = DropTracker(quiet=0.5)
    for i in range(10_000):
        drops.add("lan", f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", "bad_mac", "x", 0.0)
    bursts = drops.due(1.0)
    assert len(bursts) == MAX_SOURCES + 1
    assert bursts[-1].source == OTHER_SOURCES and bursts[-1].count == 10_000 - MAX_SOURCES


# --- settings ----------------------------------------------------------------------


KEY = bytes(range(32))


def net(name: str = "lan", local: str = "10.0.0.1", peer: str = "10.0.0.2") -> HeartbeatNetwork:
    return HeartbeatNetwork(name, Endpoint(local), {"b": Endpoint(peer)})


def test_settings_are_validated_with_a_precise_error() -> None:
    with pytest.raises(AdapterError, match="not an IP address"):
        Endpoint("node-b")
    with pytest.raises(AdapterError, match="port 0"):
        Endpoint("10.0.0.1", 0)
    with pytest.raises(AdapterError, match="IPv6"):
        net(peer="fd00::2")
    with pytest.raises(AdapterError, match="no peer"):
        HeartbeatNetwork("lan", Endpoint("10.0.0.1"), {})
    with pytest.raises(AdapterError, match="unique"):
        HeartbeatConfig("c", "a", KEY, (net(), net()))
    with pytest.raises(AdapterError, match="pulse < timeout"):
        HeartbeatConfig("c", "a", KEY, (net(),), pulse=2.0, timeout=1.0)
    with pytest.raises(AdapterError, match="at least 16 bytes"):
        HeartbeatConfig("c", "a", b"short", (net(),))
    with pytest.raises(AdapterError, match="is this node"):
        HeartbeatConfig("c", "b", KEY, (net(),))
    ok = HeartbeatConfig("c", "a", KEY, (net(), net("repl", "fd00::1", "fe80::2%lo")))
    assert ok.peer_networks() == {"b": ("lan", "repl")}
    assert str(Endpoint("fd00::1")) == "[fd00::1]:9012"
    assert "KEY" not in repr(ok) and repr(KEY) not in repr(ok)
