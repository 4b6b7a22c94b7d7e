"""Binary frames of the replication peer link (pure: no I/O).

On the stream every frame is ``u32 length`` (big-endian, of what follows) then::

    magic "HR" | version u8 | kind u8 | seq varint | body

Kinds: ``MUTATION`` (want-level u8, then the :class:`~hamod.datapath.mutation.Mutation`),
``BARRIER`` and ``FLUSH`` (no body), ``ACK`` (level u8), ``FAILURE`` (a message: the
receiver could not apply frame ``seq`` and leaves the mirror) and ``CONTROL`` (a JSON
object: the session's handshake and resync messages, either direction; from the sender
it is ordered with the mutations and acknowledged APPLIED like a barrier). Sequence numbers are
stamped by the sender and strictly increase on a link. :func:`decode` and
:class:`StreamDecoder` never raise on bad input: they return a :class:`FrameError`.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from typing import Any, Final

from hamod.datapath.mutation import Mutation, Op
from hamod.proto.wire import Reader, WireError, Writer

MAGIC: Final = b"HR"
VERSION: Final = 1
MAX_FRAME: Final = 64 * 1024 * 1024
"""Largest frame accepted (FUSE writes are at most a few MiB)."""
_LEN_BYTES: Final = 4
_OPS: Final = tuple(Op)
_OP_INDEX: Final = {op: i for i, op in enumerate(_OPS)}
_I64_MIN: Final = -(1 << 63)
_I64_MAX: Final = (1 << 63) - 1


class Level(enum.IntEnum):
    """How far a frame got on the receiver; acknowledgements are cumulative per level."""

    RECEIVED = 1
    APPLIED = 2
    DURABLE = 3


class Kind(enum.IntEnum):
    MUTATION = 1
    BARRIER = 2
    FLUSH = 3
    ACK = 4
    FAILURE = 5
    CONTROL = 6


@dataclass(frozen=True, slots=True)
class MutationFrame:
    """A mutation to apply; ``want`` is the acknowledgement level the sender waits for."""

    seq: int
    want: Level
    mutation: Mutation


@dataclass(frozen=True, slots=True)
class Barrier:
    """Acknowledged (APPLIED) once everything sent before it is applied."""

    seq: int


@dataclass(frozen=True, slots=True)
class Flush:
    """Acknowledged (DURABLE) once everything sent before it is on the receiver's disk."""

    seq: int


@dataclass(frozen=True, slots=True)
class Ack:
    """Every frame up to ``seq`` reached ``level``."""

    seq: int
    level: Level


@dataclass(frozen=True, slots=True)
class Failure:
    """The receiver could not apply frame ``seq``; it leaves the mirror."""

    seq: int
    message: str


@dataclass(frozen=True, slots=True)
class Control:
    """A session message (JSON object, at most ``MAX_CONTROL`` bytes encoded)."""

    seq: int
    payload: dict[str, Any]


MAX_CONTROL: Final = 16 * 1024 * 1024

Frame = MutationFrame | Barrier | Flush | Ack | Failure | Control


@dataclass(frozen=True, slots=True)
class FrameError:
    """Input that is not a valid frame (a value, never raised)."""

    reason: str


# Presence bits of the optional Mutation fields.
_PATH, _PATH2, _HANDLE, _DATA, _ATIME, _MTIME, _NAME, _VALUE, _TARGET = (1 << i for i in range(9))


def encode(frame: Frame) -> bytes:
    """The frame's bytes (without the stream length prefix). ValueError on values that
    do not fit (negative sequence numbers, out-of-range integers)."""
    w = Writer()
    w.raw(MAGIC)
    w.u8(VERSION)
    match frame:
        case MutationFrame(seq, want, mutation):
            w.u8(Kind.MUTATION)
            w.varint(seq)
            w.u8(want)
            _encode_mutation(w, mutation)
        case Barrier(seq):
            w.u8(Kind.BARRIER)
            w.varint(seq)
        case Flush(seq):
            w.u8(Kind.FLUSH)
            w.varint(seq)
        case Ack(seq, level):
            w.u8(Kind.ACK)
            w.varint(seq)
            w.u8(level)
        case Failure(seq, message):
            w.u8(Kind.FAILURE)
            w.varint(seq)
            _put_bytes(w, message.encode("utf-8", "replace"))
        case Control(seq, payload):
            body = json.dumps(payload, separators=(",", ":")).encode()
            if len(body) > MAX_CONTROL:
                raise ValueError(f"control message of {len(body)} bytes exceeds {MAX_CONTROL}")
            w.u8(Kind.CONTROL)
            w.varint(seq)
            _put_bytes(w, body)
    return w.getvalue()


def pack(frame: Frame) -> bytes:
    """The frame with its stream length prefix."""
    body = encode(frame)
    if len(body) > MAX_FRAME:
        raise ValueError(f"frame of {len(body)} bytes exceeds {MAX_FRAME}")
    return len(body).to_bytes(_LEN_BYTES, "big") + body


def decode(data: bytes) -> Frame | FrameError:
    """Parse one frame (without length prefix); a :class:`FrameError` if it is invalid."""
    try:
        return _decode(Reader(data))
    except (WireError, ValueError, IndexError, KeyError, OverflowError, RecursionError) as exc:
        return FrameError(str(exc) or type(exc).__name__)


class StreamDecoder:
    """Splits a byte stream into frames. After the first error it yields nothing more:
    the connection must be closed."""

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self._buf = bytearray()
        self._max = max_frame
        self.failed: FrameError | None = None

    def feed(self, data: bytes) -> list[Frame | FrameError]:
        if self.failed is not None:
            return []
        self._buf += data
        out: list[Frame | FrameError] = []
        pos = 0
        while len(self._buf) - pos >= _LEN_BYTES:
            size = int.from_bytes(self._buf[pos : pos + _LEN_BYTES], "big")
            if size > self._max:
                self.failed = FrameError(f"frame length {size} exceeds {self._max}")
                out.append(self.failed)
                break
            if len(self._buf) - pos - _LEN_BYTES < size:
                break
            start = pos + _LEN_BYTES
            frame = decode(bytes(self._buf[start : start + size]))
            pos = start + size
            out.append(frame)
            if isinstance(frame, FrameError):
                self.failed = frame
                break
        del self._buf[:pos]
        return out


def _decode(r: Reader) -> Frame:
    if r.take(2) != MAGIC:
        raise WireError("bad magic")
    version = r.u8()
    if version != VERSION:
        raise WireError(f"unsupported frame version {version} (this node speaks {VERSION})")
    kind = Kind(r.u8())
    seq = r.varint()
    frame: Frame
    if kind is Kind.MUTATION:
        want = Level(r.u8())
        frame = MutationFrame(seq, want, _decode_mutation(r))
    elif kind is Kind.BARRIER:
        frame = Barrier(seq)
    elif kind is Kind.FLUSH:
        frame = Flush(seq)
    elif kind is Kind.ACK:
        frame = Ack(seq, Level(r.u8()))
    elif kind is Kind.FAILURE:
        frame = Failure(seq, _get_bytes(r).decode("utf-8"))
    else:
        raw = _get_bytes(r)
        if len(raw) > MAX_CONTROL:
            raise WireError(f"control message of {len(raw)} bytes exceeds {MAX_CONTROL}")
        payload = json.loads(raw)
        if not isinstance(payload, dict):
            raise WireError("control message is not a JSON object")
        frame = Control(seq, payload)
    r.end()
    return frame


def _encode_mutation(w: Writer, m: Mutation) -> None:
    optional: list[tuple[int, object]] = [
        (_PATH, m.path),
        (_PATH2, m.path2),
        (_HANDLE, m.handle),
        (_DATA, m.data),
        (_ATIME, m.atime_ns),
        (_MTIME, m.mtime_ns),
        (_NAME, m.name),
        (_VALUE, m.value),
        (_TARGET, m.target),
    ]
    present = 0
    for bit, value in optional:
        if value is not None:
            present |= bit
    w.u8(_OP_INDEX[m.op])
    w.u16(present)
    for number in (m.offset, m.length, m.mode, m.flags):
        w.varint(number)
    w.varint(_zigzag(m.uid))
    w.varint(_zigzag(m.gid))
    for text in (m.path, m.path2):
        if text is not None:
            _put_str(w, text)
    if m.handle is not None:
        w.varint(m.handle)
    if m.data is not None:
        _put_bytes(w, m.data)
    for ns in (m.atime_ns, m.mtime_ns):
        if ns is not None:
            w.varint(_zigzag(ns))
    if m.name is not None:
        _put_str(w, m.name)
    if m.value is not None:
        _put_bytes(w, m.value)
    if m.target is not None:
        _put_str(w, m.target)


def _decode_mutation(r: Reader) -> Mutation:
    op = _OPS[r.u8()]
    present = r.u16()
    if present >> 9:
        raise WireError(f"unknown field bits {present:#x}")
    offset, length, mode, flags = r.varint(), r.varint(), r.varint(), r.varint()
    uid, gid = _unzigzag(r.varint()), _unzigzag(r.varint())
    path = _get_str(r) if present & _PATH else None
    path2 = _get_str(r) if present & _PATH2 else None
    handle = r.varint() if present & _HANDLE else None
    data = _get_bytes(r) if present & _DATA else None
    atime = _unzigzag(r.varint()) if present & _ATIME else None
    mtime = _unzigzag(r.varint()) if present & _MTIME else None
    name = _get_str(r) if present & _NAME else None
    value = _get_bytes(r) if present & _VALUE else None
    target = _get_str(r) if present & _TARGET else None
    return Mutation(
        op=op,
        path=path,
        path2=path2,
        handle=handle,
        offset=offset,
        length=length,
        data=data,
        mode=mode,
        flags=flags,
        uid=uid,
        gid=gid,
        atime_ns=atime,
        mtime_ns=mtime,
        name=name,
        value=value,
        target=target,
    )


def _zigzag(n: int) -> int:
    if not _I64_MIN <= n <= _I64_MAX:
        raise ValueError(f"{n} does not fit in 64 signed bits")
    return ((n << 1) ^ (n >> 63)) & ((1 << 64) - 1)


def _unzigzag(z: int) -> int:
    return (z >> 1) ^ -(z & 1)


def _put_bytes(w: Writer, data: bytes) -> None:
    w.varint(len(data))
    w.raw(data)


def _get_bytes(r: Reader) -> bytes:
    return r.take(r.varint())


def _put_str(w: Writer, text: str) -> None:
    # Linux names are bytes; FUSE layers decode them with surrogateescape.
    _put_bytes(w, text.encode("utf-8", "surrogateescape"))


def _get_str(r: Reader) -> str:
    return _get_bytes(r).decode("utf-8", "surrogateescape")
