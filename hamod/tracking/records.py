"""The on-disk record format of the tracking journal and snapshot (framing, checksum).

Owns bytes only: what a record means is :mod:`hamod.tracking.state`'s business.

A frame is ``<u32 body length><u32 CRC-32 of body><body>`` (little endian); a body is
``<u8 kind><u64 seq><u32 n_ints><u16 n_strs>``, then ``n_ints`` signed 64-bit integers,
then ``n_strs`` strings each ``<u32 length><bytes>`` (paths are OS bytes: UTF-8 with
surrogateescape). A file starts with a 24-byte header ``<8s magic><u32 version><u32
region size><u64 base>`` (``base``: the seq the journal's first record must have).

:func:`decode_frames` returns the records of the longest valid prefix and where it ends:
a short frame, a checksum mismatch or an undecodable body ends the prefix (a torn or
never-synced tail; see ``docs/tracking.md`` for why ignoring it loses nothing).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from enum import IntEnum

__all__ = [
    "HEADER_SIZE",
    "JOURNAL_MAGIC",
    "SNAPSHOT_MAGIC",
    "VERSION",
    "Decoded",
    "Header",
    "Kind",
    "Record",
    "decode_frames",
    "encode",
    "header",
    "read_header",
]

JOURNAL_MAGIC = b"HAMODJNL"
SNAPSHOT_MAGIC = b"HAMODSNP"
VERSION = 1
HEADER_SIZE = 24
_HEADER = struct.Struct("<8sIIQ")
_FRAME = struct.Struct("<II")
_BODY = struct.Struct("<BQIH")
_MAX_BODY = 64 << 20


class Kind(IntEnum):
    """Record kinds. Journal: BEGIN..RESET. Snapshot: the S_* kinds."""

    BEGIN = 1  # ints: term, seq, forced; strs: node                   (tracking starts)
    MIRROR = 2  # live mirroring resumed: writes go to the activity log
    REGION = 3  # ints: side, ino, region; strs: path
    TAIL = 4  # ints: side, ino, from_region; strs: path
    ATTR = 5  # ints: side, ino; strs: path
    OP = 6  # ints: side, opcode, a, b, c; strs: op paths / target     (namespace op)
    COOL = 7  # ints: (what, ino, region)*; strs: names                (AL items cooled)
    CLEAR = 8  # ints: upto                                            (resync applied)
    LOST = 9  # strs: reason                                           (history unknown)
    RESET = 10  # forget everything (after a full copy)
    NAMES = 11  # ints: side; strs: names to reconcile whole (an operation that failed)
    S_META = 20  # seq = last seq; ints: tracking; strs: lost reason (0 or 1)
    S_GEN = 21  # ints: term, seq, forced; strs: node
    S_FILE = 22  # ints: side, ino, tail, tail_seq, attr_seq, (region, seq)*; strs: paths
    S_NAME = 23  # seq = item seq; ints: side; strs: name
    S_OP = 24  # seq = item seq; as OP


@dataclass(frozen=True)
class Record:
    kind: Kind
    seq: int
    ints: tuple[int, ...] = ()
    strs: tuple[str, ...] = ()


@dataclass(frozen=True)
class Decoded:
    records: tuple[Record, ...]
    ends: tuple[int, ...]  # offset just past each record
    valid_end: int  # offset just past the last valid frame
    problem: str | None  # why decoding stopped before the end, if it did


@dataclass(frozen=True)
class Header:
    region_size: int
    base: int


def header(magic: bytes, region_size: int, base: int = 0) -> bytes:
    return _HEADER.pack(magic, VERSION, region_size, base)


def read_header(data: bytes, magic: bytes) -> Header | str:
    """The header of ``data`` when valid for ``magic``; else the problem, as text."""
    if len(data) < HEADER_SIZE:
        return f"header truncated ({len(data)} bytes)"
    got, version, region_size, base = _HEADER.unpack_from(data)
    if got != magic:
        return f"bad magic {got!r}"
    if version != VERSION:
        return f"format version {version}, this hamod reads {VERSION}"
    if region_size <= 0 or region_size & (region_size - 1):
        return f"region size {region_size} is not a power of two"
    return Header(region_size, base)


def encode(record: Record) -> bytes:
    parts = [_BODY.pack(record.kind, record.seq, len(record.ints), len(record.strs))]
    parts.append(struct.pack(f"<{len(record.ints)}q", *record.ints))
    for text in record.strs:
        raw = text.encode("utf-8", "surrogateescape")
        parts.append(struct.pack("<I", len(raw)))
        parts.append(raw)
    body = b"".join(parts)
    return _FRAME.pack(len(body), zlib.crc32(body)) + body


def _decode_body(body: bytes) -> Record:
    kind, seq, n_ints, n_strs = _BODY.unpack_from(body)
    pos = _BODY.size
    ints = struct.unpack_from(f"<{n_ints}q", body, pos)
    pos += 8 * n_ints
    strs: list[str] = []
    for _ in range(n_strs):
        (length,) = struct.unpack_from("<I", body, pos)
        pos += 4
        if pos + length > len(body):
            raise ValueError("string past the end of the record")
        strs.append(body[pos : pos + length].decode("utf-8", "surrogateescape"))
        pos += length
    if pos != len(body):
        raise ValueError("trailing bytes in record")
    return Record(Kind(kind), seq, tuple(ints), tuple(strs))


def decode_frames(data: bytes, start: int = HEADER_SIZE) -> Decoded:
    records: list[Record] = []
    ends: list[int] = []
    pos = start
    problem: str | None = None
    while pos < len(data):
        if pos + _FRAME.size > len(data):
            problem = f"torn frame header at byte {pos}"
            break
        length, crc = _FRAME.unpack_from(data, pos)
        end = pos + _FRAME.size + length
        if length > _MAX_BODY or end > len(data):
            problem = f"torn or oversized record at byte {pos}"
            break
        body = data[pos + _FRAME.size : end]
        if zlib.crc32(body) != crc:
            problem = f"checksum mismatch at byte {pos}"
            break
        try:
            records.append(_decode_body(body))
        except (struct.error, ValueError) as exc:
            problem = f"undecodable record at byte {pos}: {exc}"
            break
        pos = end
        ends.append(end)
    return Decoded(tuple(records), tuple(ends), pos, problem)
