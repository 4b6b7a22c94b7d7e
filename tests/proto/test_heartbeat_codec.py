"""hamod.proto.heartbeat and hamod.proto.decoder: round trip, size budget, versions,
every drop reason, and fuzzing — the decoder never raises and never accepts a datagram
that is not both authentic and fresh."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hamod.proto import (
    MAX_DATAGRAM,
    Decoder,
    Drop,
    DropReason,
    Echo,
    Generation,
    GenId,
    Heartbeat,
    ModuleAnnouncement,
    ModuleFlags,
    ModuleState,
    Phase,
    accepted_versions,
    choose_send_version,
    encode,
)
from hamod.proto.heartbeat import mac_key, sign
from hamod.proto.wire import Writer

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
CLUSTER = "prod"
ME, PEER = "n2", "n1"
MY_EPOCH = 0x5EED_0000_0000_0002
SRC = ("10.0.0.1", 5405)

names = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=12)
ascii_names = st.text("abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=12)
u64 = st.integers(0, 2**64 - 1)
gen_ids = st.builds(GenId, names, u64, u64)
modules = st.builds(
    ModuleAnnouncement,
    name=names,
    state=st.sampled_from(ModuleState),
    phase=st.sampled_from(Phase),
    up_to_date=st.booleans(),
    generation=st.builds(Generation, st.none() | gen_ids, st.lists(gen_ids, max_size=4).map(tuple)),
    term=u64,
    lease_remaining_ms=st.integers(0, 2**32 - 1),
    last_prim=st.none() | names,
    degraded=st.booleans(),
    config_hash=st.binary(max_size=16).map(bytes.hex),
    flags=st.integers(0, 0xFFFF).map(ModuleFlags),
)


@st.composite
def heartbeats(draw: st.DrawFn, sender: str | None = None) -> Heartbeat:
    """Heartbeats from a peer to ME, echoing MY_EPOCH (so a fresh decoder accepts them)."""
    mods = draw(st.lists(modules, max_size=3, unique_by=lambda m: m.name))
    others = draw(st.lists(st.builds(Echo, ascii_names, u64, u64), max_size=2))
    echoes = {e.node: e for e in others if e.node != ME}
    echoes[ME] = Echo(ME, MY_EPOCH, draw(u64))
    version = draw(st.sampled_from(sorted(accepted_versions())))
    return Heartbeat(
        cluster=CLUSTER,
        sender=sender or draw(names.filter(lambda n: n != ME)),
        network=draw(names),
        epoch=draw(u64),
        seq=draw(u64),
        modules=tuple(mods),
        echoes=tuple(echoes.values()),
        version=version,
        max_version=draw(st.integers(version, 255)),
    )


def decoder() -> Decoder:
    return Decoder(KEY, CLUSTER, ME, MY_EPOCH)


def module(i: int, name_len: int = 32) -> ModuleAnnouncement:
    return ModuleAnnouncement(
        name=f"m{i}".ljust(name_len, "x"),
        state=ModuleState.SECOND,
        phase=Phase.TRANSIENT,
        up_to_date=True,
        generation=Generation(
            GenId("node-alpha-0001", 2**32 - 1, 2**32 - 1),
            tuple(GenId("node-bravo-0002", 2**32 - k, 2**32 - 1) for k in range(4)),
        ),
        term=2**32 - 1,
        lease_remaining_ms=2**32 - 1,
        last_prim="node-alpha-0001",
        degraded=True,
        config_hash=hashlib.sha256(b"cfg").hexdigest()[:32],
        flags=ModuleFlags.RESYNCING | ModuleFlags.FAILOVER_OFF,
    )


def beat(seq: int = 1, epoch: int = 77, echo: int | None = 1, **kw: object) -> Heartbeat:
    echoes = () if echo is None else (Echo(ME, MY_EPOCH, echo),)
    fields: dict[str, object] = dict(
        cluster=CLUSTER, sender=PEER, network="lan", epoch=epoch, seq=seq, echoes=echoes
    )
    fields.update(kw)
    return Heartbeat(**fields)  # type: ignore[arg-type]


# --- round trip, size, versions ------------------------------------------------------


@given(heartbeats())
def test_encode_decode_round_trip(hb: Heartbeat) -> None:
    packet = encode(hb, KEY)
    assert len(packet) <= MAX_DATAGRAM
    assert decoder().decode(packet, SRC) == hb


def test_eight_modules_fit_in_one_datagram() -> None:
    """Worst realistic case: 8 modules with 32-character names, a 4-deep history, 32-bit
    terms and sequences, 16-byte config hashes, long node and cluster names."""
    hb = beat(
        cluster="customer-site-0042-production-a",
        sender="node-alpha-0001",
        network="replication-net",
        epoch=2**64 - 1,
        seq=2**63,
        modules=tuple(module(i) for i in range(8)),
    )
    packet = encode(hb, KEY)
    assert len(packet) < MAX_DATAGRAM == 1200
    d = Decoder(KEY, hb.cluster, ME, MY_EPOCH)
    assert d.decode(packet, SRC) == hb


def test_too_big_a_heartbeat_is_refused_at_encoding() -> None:
    hb = beat(modules=tuple(module(i, name_len=100) for i in range(10)))
    with pytest.raises(ValueError, match=r"exceeds 1200; split modules"):
        encode(hb, KEY)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (dict(seq=-1), "seq must be in"),
        (dict(cluster=""), "cluster must be 1-255"),
        (dict(version=2, max_version=1), "version <= max_version"),
        (dict(modules=(module(1), module(1))), "module names must be unique"),
    ],
)
def test_invalid_heartbeats_cannot_be_built(bad: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        beat(**bad)


def test_invalid_module_values_cannot_be_built() -> None:
    with pytest.raises(ValueError, match="config_hash must be lowercase hex of 0-16 bytes"):
        ModuleAnnouncement(
            "m", ModuleState.UP, Phase.READY, True, Generation(), 0, 0, None, False, "ABCD"
        )
    with pytest.raises(ValueError, match="history holds at most 4"):
        Generation(None, tuple(GenId("n", 0, i) for i in range(5)))


def test_short_keys_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 16 bytes"):
        Decoder(b"short", CLUSTER, ME, MY_EPOCH)


@pytest.mark.parametrize(("current", "expected"), [(1, {1}), (2, {1, 2}), (5, {4, 5})])
def test_a_node_accepts_its_version_and_the_previous_one(current: int, expected: set[int]) -> None:
    assert accepted_versions(current) == expected


@pytest.mark.parametrize(
    ("peers", "expected"),
    [
        ([], 5),  # nobody to talk to: newest
        ([None], 4),  # not heard yet: N-1, which old and new peers both read
        ([5], 5),
        ([9], 5),
        ([5, 4], 4),  # the oldest peer caps a shared datagram
        ([5, None], 4),
        ([3], 4),  # never below N-1: a peer at N-2 cannot be served
    ],
)
def test_send_version_negotiation(peers: list[int | None], expected: int) -> None:
    assert choose_send_version(peers, current=5) == expected


def test_peer_max_version_is_learned_from_accepted_packets() -> None:
    d = decoder()
    assert d.peer_max_version(PEER) is None
    d.decode(encode(beat(max_version=7), KEY), SRC)
    assert d.peer_max_version(PEER) == 7
    assert choose_send_version([d.peer_max_version(PEER)]) == 1


# --- each drop reason ----------------------------------------------------------------


def signed_packet(body: bytes, version: int = 1, sender: str = PEER) -> bytes:
    """A correctly authenticated datagram with an arbitrary body."""
    w = Writer()
    w.raw(b"HMHB")
    for field in (version, 1):
        w.u8(field)
    w.u64(77)
    w.u64(1)
    for text in (CLUSTER, sender, "lan"):
        w.short_str(text)
    w.u8(1)
    w.short_str(ME)
    w.u64(MY_EPOCH)
    w.u64(1)
    signed = w.getvalue() + body
    return signed + sign(signed, mac_key(KEY))


GOOD = encode(beat(), KEY)


DROP_CASES = [
    (b"", DropReason.TRUNCATED, "0 bytes < 58"),
    (GOOD[:57], DropReason.TRUNCATED, "57 bytes < 58"),
    (b"XXXX" + GOOD[4:], DropReason.BAD_MAGIC, "starts with 58585858"),
    (GOOD[:4] + b"\x00" + GOOD[5:], DropReason.BAD_VERSION, "version 0, accept 1"),
    (GOOD[:4] + b"\x02" + GOOD[5:], DropReason.BAD_VERSION, "version 2, accept 1"),
    (encode(beat(cluster="dev"), KEY), DropReason.FOREIGN_CLUSTER, "cluster 'dev'"),
    (encode(beat(), OTHER_KEY), DropReason.BAD_MAC, "claims sender 'n1'"),
    (GOOD[:-1] + bytes([GOOD[-1] ^ 1]), DropReason.BAD_MAC, "claims sender 'n1'"),
    (encode(beat(sender=ME), KEY), DropReason.OWN_PACKET, "n2 on lan seq 1"),
    (signed_packet(b"\x00\x01\x01m\x09"), DropReason.MALFORMED, "n1 on lan: needs"),
    (
        signed_packet(b"\x00\x01\x01m\x09\x03\x00\x00\x00\x00\x00\x00\x00"),
        DropReason.MALFORMED,
        "unknown state or phase code",
    ),
    (signed_packet(b"\x00\x00\x00"), DropReason.MALFORMED, "1 unexpected trailing bytes"),
    (signed_packet(b"\x00\x00", sender=""), DropReason.MALFORMED, ": sender must be 1-255"),
    (encode(beat(echo=None), KEY), DropReason.UNCONFIRMED, "does not echo our epoch"),
]


@pytest.mark.parametrize(
    ("packet", "reason", "detail"),
    DROP_CASES,
    ids=[f"{reason}-{i}" for i, (_, reason, _) in enumerate(DROP_CASES)],
)
def test_each_drop_reason(packet: bytes, reason: DropReason, detail: str) -> None:
    d = decoder()
    result = d.decode(packet, SRC)
    assert isinstance(result, Drop)
    assert (result.reason, result.source) == (reason, SRC)
    assert detail in result.detail
    assert d.counters[reason] == 1 and sum(d.counters.values()) == 1 and d.accepted == 0


def test_replay_is_dropped_and_counted() -> None:
    d = decoder()
    assert d.decode(GOOD, SRC) == beat()
    again = d.decode(GOOD, SRC)
    assert isinstance(again, Drop) and again.reason is DropReason.REPLAY
    assert again.detail == "n1 on lan: seq 1 already seen or too old"
    assert (d.accepted, d.counters[DropReason.REPLAY]) == (1, 1)


# --- epochs: reboots, receiver restarts, old epochs -----------------------------------


def test_peers_bootstrap_through_echoes_without_clocks() -> None:
    """Two fresh daemons: the first datagrams are unconfirmed until each echoes the other."""
    a = Decoder(KEY, CLUSTER, "a", 111)
    b = Decoder(KEY, CLUSTER, "b", 222)
    a1 = Heartbeat(CLUSTER, "a", "lan", 111, 1, echoes=b.echoes())
    assert isinstance(b.decode(encode(a1, KEY), SRC), Drop)  # b heard a, cannot trust yet
    b1 = Heartbeat(CLUSTER, "b", "lan", 222, 1, echoes=a.echoes())
    assert isinstance(a.decode(encode(b1, KEY), SRC), Drop)
    b2 = Heartbeat(CLUSTER, "b", "lan", 222, 2, echoes=b.echoes())  # echoes a's epoch
    assert a.decode(encode(b2, KEY), SRC) == b2
    a2 = Heartbeat(CLUSTER, "a", "lan", 111, 2, echoes=a.echoes())  # echoes b's epoch
    assert b.decode(encode(a2, KEY), SRC) == a2
    assert a.peer_epoch("b") == 222 and b.peer_epoch("a") == 111


def test_a_restarted_receiver_accepts_nothing_recorded_before_it_started() -> None:
    recorded = [encode(beat(seq=s, echo=s), KEY) for s in range(1, 20)]
    restarted = Decoder(KEY, CLUSTER, ME, MY_EPOCH + 1)
    for packet in recorded:
        result = restarted.decode(packet, SRC)
        assert isinstance(result, Drop) and result.reason is DropReason.UNCONFIRMED


def test_a_rebooted_peer_is_accepted_and_its_old_epoch_never_again() -> None:
    d = decoder()
    old = [encode(beat(epoch=1, seq=s, echo=s), KEY) for s in range(1, 5)]
    for packet in old:
        assert isinstance(d.decode(packet, SRC), Heartbeat)
    rebooted = beat(epoch=2, seq=1, echo=6)
    assert d.decode(encode(rebooted, KEY), SRC) == rebooted
    for packet in old:
        result = d.decode(packet, SRC)
        assert isinstance(result, Drop) and result.reason is DropReason.UNCONFIRMED
    assert d.peer_epoch(PEER) == 2


# --- fuzzing -------------------------------------------------------------------------


def fuzz(examples: int) -> Callable[[Callable[..., None]], Callable[..., None]]:
    return settings(
        max_examples=examples, deadline=None, suppress_health_check=[HealthCheck.too_slow]
    )


def test_random_bytes_are_dropped_never_raised(scale) -> None:
    @fuzz(scale.pick(ci=500, soak=20_000))
    @given(st.binary(max_size=1500) | st.binary(max_size=80).map(lambda b: b"HMHB\x01" + b))
    def run(data: bytes) -> None:
        assert isinstance(decoder().decode(data, SRC), Drop)

    run()


def test_mutated_valid_packets_are_dropped(scale) -> None:
    @fuzz(scale.pick(ci=300, soak=10_000))
    @given(heartbeats(), st.data())
    def run(hb: Heartbeat, data: st.DataObject) -> None:
        packet = encode(hb, KEY)
        size = len(packet)
        bit = data.draw(st.integers(0, size * 8 - 1))
        flipped = bytearray(packet)
        flipped[bit // 8] ^= 1 << (bit % 8)
        cut = data.draw(st.integers(0, size - 1))
        extra = data.draw(st.binary(min_size=1, max_size=8))
        for bad in (bytes(flipped), packet[:cut], packet + extra, packet[:cut] + extra):
            d = decoder()
            result = d.decode(bad, SRC)
            assert isinstance(result, Drop), bad
        assert decoder().decode(encode(hb, OTHER_KEY), SRC) == Drop(
            DropReason.BAD_MAC, f"claims sender {hb.sender!r}", SRC
        )

    run()


def test_resigned_garbage_bodies_never_raise(scale) -> None:
    """Bodies a buggy (keyed) peer could send: parsed after the MAC, still never raise."""

    @fuzz(scale.pick(ci=300, soak=10_000))
    @given(st.binary(max_size=200))
    def run(body: bytes) -> None:
        result = decoder().decode(signed_packet(body), SRC)
        assert isinstance(result, Heartbeat | Drop)

    run()


def test_replays_and_reordering_follow_the_window(scale) -> None:
    """Any delivery order with duplicates: each seq accepted at most once, exactly when
    unseen and within 64 of the highest accepted."""

    @fuzz(scale.pick(ci=200, soak=5_000))
    @given(st.lists(st.integers(1, 150), min_size=1, max_size=120))
    def run(order: list[int]) -> None:
        d = decoder()
        packets = {s: encode(beat(seq=s, echo=1), KEY) for s in set(order)}
        seen: set[int] = set()
        top = None
        for seq in order:
            result = d.decode(packets[seq], SRC)
            fresh = seq not in seen and (top is None or seq > top - 64)
            assert isinstance(result, Heartbeat) == fresh, (seq, top)
            if fresh:
                seen.add(seq)
                top = seq if top is None else max(top, seq)
            elif isinstance(result, Drop):
                assert result.reason is DropReason.REPLAY

    run()


def test_an_attacker_replaying_any_recorded_packet_never_wins(scale) -> None:
    """A peer reboots several times while we send; an attacker holds every datagram it
    ever sent and delivers any of them, any number of times, in any order. Accepted
    datagrams are never duplicates and never go back to an older boot of the peer."""

    @fuzz(scale.pick(ci=200, soak=5_000))
    @given(st.lists(st.sampled_from(["tick", "send", "reboot", "deliver"]), max_size=80), st.data())
    def run(actions: list[str], data: st.DataObject) -> None:
        d = decoder()
        our_seq, boot, seq = 0, 0, 0
        sent: list[tuple[int, int, bytes]] = []  # (boot, seq, packet)
        accepted: set[tuple[int, int]] = set()
        newest_boot = -1
        for action in actions:
            if action == "tick":
                our_seq += 1  # we sent a heartbeat; the peer hears it at once
            elif action == "reboot":
                boot, seq = boot + 1, 0
            elif action == "send":
                seq += 1
                hb = beat(epoch=1000 + boot, seq=seq, echo=our_seq)
                sent.append((boot, seq, encode(hb, KEY)))
            elif sent:
                b, s, packet = data.draw(st.sampled_from(sent))
                if isinstance(d.decode(packet, SRC), Heartbeat):
                    assert (b, s) not in accepted
                    assert b >= newest_boot
                    accepted.add((b, s))
                    newest_boot = b

    run()


def test_decoder_state_stays_bounded_to_authentic_senders() -> None:
    d = decoder()
    for i in range(200):
        d.decode(os.urandom(100), SRC)
        d.decode(encode(beat(sender=f"x{i}"), OTHER_KEY), SRC)
    assert d.echoes() == ()
