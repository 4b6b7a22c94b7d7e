"""Frames: round trip of every kind, and a decoder that never raises."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hamod.datapath.mutation import OMIT, Mutation, Op
from hamod.replication.frames import (
    MAX_FRAME,
    VERSION,
    Ack,
    Barrier,
    Control,
    Failure,
    Flush,
    Frame,
    FrameError,
    Level,
    MutationFrame,
    StreamDecoder,
    decode,
    encode,
    pack,
)

names = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)
u64 = st.integers(0, 2**64 - 1)
i64 = st.integers(-(2**63), 2**63 - 1)
seqs = st.integers(1, 2**64 - 1)

mutations = st.builds(
    Mutation,
    op=st.sampled_from(Op),
    path=st.none() | names.map(lambda s: "/" + s),
    path2=st.none() | names,
    handle=st.none() | u64,
    offset=u64,
    length=u64,
    data=st.none() | st.binary(max_size=300),
    mode=st.integers(0, 0o177777),
    flags=st.integers(0, 2**32),
    uid=st.integers(-1, 2**32),
    gid=st.integers(-1, 2**32),
    atime_ns=st.none() | st.just(OMIT) | i64,
    mtime_ns=st.none() | st.just(OMIT) | i64,
    name=st.none() | names,
    value=st.none() | st.binary(max_size=100),
    target=st.none() | names,
)
frames: st.SearchStrategy[Frame] = st.one_of(
    st.builds(MutationFrame, seqs, st.sampled_from(Level), mutations),
    st.builds(Barrier, seqs),
    st.builds(Flush, seqs),
    st.builds(Ack, seqs, st.sampled_from(Level)),
    st.builds(Failure, seqs, names),
    st.builds(
        Control,
        seqs,
        st.dictionaries(names, st.none() | st.booleans() | st.integers(-(2**53), 2**53) | names),
    ),
)


@given(frames)
def test_every_frame_round_trips(frame: Frame) -> None:
    assert decode(encode(frame)) == frame


@given(st.lists(frames, max_size=8), st.integers(1, 64))
def test_a_stream_cut_anywhere_gives_back_the_frames_in_order(
    items: list[Frame], step: int
) -> None:
    data = b"".join(pack(f) for f in items)
    dec = StreamDecoder()
    out: list[Frame | FrameError] = []
    for i in range(0, len(data), step):
        out += dec.feed(data[i : i + step])
    assert out == items


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_random_bytes_give_an_error_value(data: bytes) -> None:
    result = decode(data)
    assert isinstance(result, FrameError | MutationFrame | Barrier | Flush | Ack | Failure)
    assert isinstance(StreamDecoder().feed(data), list)


@settings(max_examples=300)
@given(frames, st.data())
def test_truncations_are_errors_and_bit_flips_never_raise(
    frame: Frame, data: st.DataObject
) -> None:
    raw = encode(frame)
    cut = data.draw(st.integers(0, len(raw) - 1))
    assert isinstance(decode(raw[:cut]), FrameError)
    pos = data.draw(st.integers(0, len(raw) - 1))
    bit = data.draw(st.integers(0, 7))
    flipped = bytearray(raw)
    flipped[pos] ^= 1 << bit
    decode(bytes(flipped))  # a value either way; never an exception
    decode(raw + b"\0")  # trailing bytes
    assert isinstance(decode(raw + b"\0"), FrameError)


def test_errors_name_the_cause() -> None:
    raw = bytearray(encode(Barrier(7)))
    raw[2] = VERSION + 1
    err = decode(bytes(raw))
    assert isinstance(err, FrameError) and "version" in err.reason
    assert isinstance(decode(b"XX" + bytes(raw[2:])), FrameError)
    big = (MAX_FRAME + 1).to_bytes(4, "big")
    dec = StreamDecoder()
    [bad] = dec.feed(big)
    assert isinstance(bad, FrameError) and "exceeds" in bad.reason
    assert dec.feed(pack(Barrier(1))) == []  # nothing after an error


def test_values_that_do_not_fit_are_refused_at_encoding() -> None:
    with pytest.raises(ValueError):
        encode(Barrier(-1))
    with pytest.raises(ValueError):
        encode(MutationFrame(1, Level.APPLIED, Mutation(Op.WRITE, "/a", uid=-(2**64))))
