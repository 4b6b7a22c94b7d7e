"""hamod.proto.witness: requests and replies round-trip; any other bytes (random, flipped,
truncated, extended, wrong key, foreign cluster) are dropped without an exception; a
replayed request, or one from a retired client epoch, is refused."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hamod.proto.witness import (
    MIN_REPLY,
    MIN_REQUEST,
    ClientSeen,
    DropReason,
    Op,
    RequestFilter,
    WitnessReply,
    WitnessRequest,
    decode_reply,
    encode_reply,
    encode_request,
)
from hamod.proto.witness import Drop as WitnessDrop

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
NONCE = b"n" * 16


def req(**kw: object) -> WitnessRequest:
    base = WitnessRequest(Op.REQUEST, "prod", "pg", "n1", 3, 5000, 0xABCD, 1, NONCE)
    return replace(base, **kw)  # type: ignore[arg-type]


def rep(**kw: object) -> WitnessReply:
    base = WitnessReply("prod", NONCE, True, 3, "n1", 5000, "renewed")
    return replace(base, **kw)  # type: ignore[arg-type]


names = st.text(min_size=1, max_size=40).filter(
    lambda s: all(not 0xD800 <= ord(c) <= 0xDFFF for c in s)
)


@given(
    op=st.sampled_from(Op),
    module=names,
    node=names,
    term=st.integers(0, 2**64 - 1),
    lease=st.integers(0, 2**32 - 1),
    epoch=st.integers(0, 2**64 - 1),
    seq=st.integers(0, 2**64 - 1),
    nonce=st.binary(min_size=16, max_size=16),
    grant=st.integers(0, 2**64 - 1),
)
def test_request_round_trips(
    op: Op,
    module: str,
    node: str,
    term: int,
    lease: int,
    epoch: int,
    seq: int,
    nonce: bytes,
    grant: int,
) -> None:
    sent = WitnessRequest(op, "prod", module, node, term, lease, epoch, seq, nonce, grant)
    got = RequestFilter({"prod": KEY}).accept(encode_request(sent, KEY))
    assert got == sent


@given(
    granted=st.booleans(),
    term=st.integers(0, 2**64 - 1),
    holder=st.text(max_size=40).filter(lambda s: all(not 0xD800 <= ord(c) <= 0xDFFF for c in s)),
    remaining=st.integers(0, 2**32 - 1),
    reason=st.text(max_size=60).filter(lambda s: all(not 0xD800 <= ord(c) <= 0xDFFF for c in s)),
    grant=st.integers(0, 2**64 - 1),
)
def test_reply_round_trips(
    granted: bool, term: int, holder: str, remaining: int, reason: str, grant: int
) -> None:
    sent = WitnessReply("prod", NONCE, granted, term, holder, remaining, reason, grant)
    assert decode_reply(encode_reply(sent, KEY), {"prod": KEY}) == sent


def test_minimum_sizes_are_exact() -> None:
    small = WitnessRequest(Op.RELEASE, "c", "m", "n", 0, 0, 0, 0, NONCE, 2**64 - 1)
    assert len(encode_request(small, KEY)) == MIN_REQUEST
    assert len(encode_reply(WitnessReply("c", NONCE, False, 0, "", 0, ""), KEY)) == MIN_REPLY


def test_values_refuse_out_of_range_fields() -> None:
    for bad in (
        {"module": ""},
        {"node": "x" * 256},
        {"term": -1},
        {"lease_ms": 2**32},
        {"nonce": b"short"},
        {"seq": 2**64},
    ):
        with pytest.raises(ValueError):
            req(**bad)


def judge(data: bytes, flt: RequestFilter | None = None) -> WitnessRequest | WitnessDrop:
    return (flt or RequestFilter({"prod": KEY})).accept(data)


@settings(max_examples=300)
@given(st.binary(max_size=400))
def test_random_bytes_are_dropped(data: bytes) -> None:
    assert isinstance(judge(data), WitnessDrop)
    assert decode_reply(data, {"prod": KEY}) is None


@settings(max_examples=300)
@given(st.data())
def test_bit_flips_truncations_and_extensions_are_dropped(data: st.DataObject) -> None:
    good_req = encode_request(req(), KEY)
    good_rep = encode_reply(rep(), KEY)
    for good, accept in ((good_req, judge), (good_rep, None)):
        kind = data.draw(st.sampled_from(["flip", "cut", "extend"]))
        if kind == "flip":
            bit = data.draw(st.integers(0, len(good) * 8 - 1))
            bad = bytearray(good)
            bad[bit // 8] ^= 1 << (bit % 8)
        elif kind == "cut":
            bad = bytearray(good[: data.draw(st.integers(0, len(good) - 1))])
        else:
            bad = bytearray(good + data.draw(st.binary(min_size=1, max_size=20)))
        if accept is not None:
            assert isinstance(accept(bytes(bad)), WitnessDrop)
        else:
            assert decode_reply(bytes(bad), {"prod": KEY}) is None


@settings(max_examples=200)
@given(st.binary(max_size=120))
def test_garbage_body_under_a_valid_mac_is_malformed_not_an_exception(body: bytes) -> None:
    """An insider (holding the key) sending nonsense still cannot make the decoder raise."""
    import hashlib
    import hmac

    from hamod.proto.witness import mac_key

    head = b"HMWQ\x01\x01" + bytes(16) + NONCE + b"\x04prod"  # op, epoch, seq, nonce, cluster
    signed = head + body
    data = signed + hmac.new(mac_key(KEY), signed, hashlib.sha256).digest()
    got = judge(data)
    assert isinstance(got, WitnessDrop | WitnessRequest)


def test_wrong_key_and_foreign_cluster_are_dropped_and_counted() -> None:
    flt = RequestFilter({"prod": KEY, "test": OTHER_KEY})
    wrong_key = judge(encode_request(req(), OTHER_KEY), flt)
    foreign = judge(encode_request(req(cluster="shop"), KEY), flt)
    other_clusters_key = judge(encode_request(req(cluster="test"), KEY), flt)
    assert isinstance(wrong_key, WitnessDrop) and wrong_key.reason is DropReason.BAD_MAC
    assert isinstance(foreign, WitnessDrop) and foreign.reason is DropReason.FOREIGN_CLUSTER
    assert isinstance(other_clusters_key, WitnessDrop)
    assert other_clusters_key.reason is DropReason.BAD_MAC
    assert flt.counters[DropReason.BAD_MAC] == 2 and flt.accepted == 0
    assert decode_reply(encode_reply(rep(), OTHER_KEY), {"prod": KEY}) is None
    assert decode_reply(encode_reply(rep(), KEY), {"test": KEY}) is None


def test_a_request_is_never_taken_for_a_reply_or_back() -> None:
    assert decode_reply(encode_request(req(), KEY), {"prod": KEY}) is None
    assert isinstance(judge(encode_reply(rep(), KEY)), WitnessDrop)


def test_replayed_request_is_refused() -> None:
    flt = RequestFilter({"prod": KEY})
    first = encode_request(req(seq=5), KEY)
    assert isinstance(flt.accept(first), WitnessRequest)
    again = flt.accept(first)
    assert isinstance(again, WitnessDrop) and again.reason is DropReason.REPLAY
    older = flt.accept(encode_request(req(seq=4, nonce=b"o" * 16), KEY))
    assert isinstance(older, WitnessDrop) and older.reason is DropReason.REPLAY
    assert isinstance(flt.accept(encode_request(req(seq=6), KEY)), WitnessRequest)
    # Sequences are per (cluster, node): another node starts on its own.
    assert isinstance(flt.accept(encode_request(req(node="n2", seq=1), KEY)), WitnessRequest)


def test_a_restarted_client_is_accepted_and_replays_never_lock_it_out() -> None:
    flt = RequestFilter({"prod": KEY})
    old = [encode_request(req(epoch=1, seq=s, nonce=bytes([s]) * 16), KEY) for s in (1, 2, 3)]
    assert isinstance(flt.accept(old[0]), WitnessRequest)
    assert isinstance(flt.accept(old[1]), WitnessRequest)
    assert isinstance(flt.accept(encode_request(req(epoch=2, seq=1), KEY)), WitnessRequest)
    for data in old[:2]:  # seen: refused, whatever happened since
        got = flt.accept(data)
        assert isinstance(got, WitnessDrop) and got.reason is DropReason.REPLAY
    # Never seen (it was lost): accepted, and harmless (docs/witness.md) ...
    assert isinstance(flt.accept(old[2]), WitnessRequest)
    # ... and the live client goes on: no epoch is ever refused outright.
    assert isinstance(flt.accept(encode_request(req(epoch=2, seq=2), KEY)), WitnessRequest)


def test_known_epochs_are_bounded() -> None:
    seen = ClientSeen()
    for epoch in range(20):
        nxt = seen.admit(epoch, 5)
        assert nxt is not None
        seen = nxt
    assert [e for e, _ in seen.epochs] == list(range(12, 20))
    assert seen.admit(19, 5) is None and seen.admit(19, 6) is not None


@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 6)), max_size=40))
def test_client_seen_never_accepts_a_pair_twice(pairs: list[tuple[int, int]]) -> None:
    seen = ClientSeen()
    accepted: set[tuple[int, int]] = set()
    for epoch, seq in pairs:
        nxt = seen.admit(epoch, seq)
        if nxt is not None:
            assert (epoch, seq) not in accepted
            accepted.add((epoch, seq))
            seen = nxt
