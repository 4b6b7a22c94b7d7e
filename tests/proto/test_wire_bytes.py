"""hamod.proto.wire: integers, varints and strings round-trip; bad input raises only
WireError."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hamod.proto.wire import U64_MAX, Reader, WireError, Writer


@given(st.integers(0, U64_MAX))
def test_varint_round_trips_every_u64(value: int) -> None:
    w = Writer()
    w.varint(value)
    r = Reader(w.getvalue())
    assert r.varint() == value
    r.end()


@pytest.mark.parametrize(("value", "size"), [(0, 1), (127, 1), (128, 2), (U64_MAX, 10)])
def test_varint_size(value: int, size: int) -> None:
    w = Writer()
    w.varint(value)
    assert len(w.getvalue()) == size


def test_varint_over_64_bits_is_rejected() -> None:
    with pytest.raises(WireError, match="exceeds 64 bits"):
        Reader(b"\xff" * 9 + b"\x7f").varint()
    with pytest.raises(WireError, match="longer than 10 bytes"):
        Reader(b"\x80" * 11).varint()


@given(st.text(max_size=80).filter(lambda t: len(t.encode("utf-8", "surrogatepass")) < 256))
def test_short_str_round_trips(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return
    w = Writer()
    w.short_str(text)
    assert Reader(w.getvalue()).short_str() == text


def test_writer_refuses_out_of_range_values() -> None:
    w = Writer()
    for call in (lambda: w.u8(256), lambda: w.u16(-1), lambda: w.u64(U64_MAX + 1)):
        with pytest.raises(ValueError, match="out of range"):
            call()
    with pytest.raises(ValueError, match="exceeds 255"):
        w.short_bytes(b"x" * 256)


def test_reader_reports_truncation_and_trailing_bytes() -> None:
    with pytest.raises(WireError, match="needs 8 bytes at offset 0, has 3"):
        Reader(b"abc").u64()
    r = Reader(b"\x01\x02")
    r.u8()
    with pytest.raises(WireError, match="1 unexpected trailing bytes"):
        r.end()
    with pytest.raises(WireError, match="invalid UTF-8"):
        Reader(b"\x01\xff").short_str()


@given(st.binary(max_size=40), st.lists(st.sampled_from(range(7)), max_size=12))
def test_reader_raises_only_wire_error(data: bytes, ops: list[int]) -> None:
    r = Reader(data)
    calls = (r.u8, r.u16, r.u64, r.varint, r.short_bytes, r.short_str, r.end)
    try:
        for op in ops:
            calls[op]()
    except WireError:
        pass
