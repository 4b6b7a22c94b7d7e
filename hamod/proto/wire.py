"""Byte-level building blocks of hamod's binary wire formats: a :class:`Writer` that
appends big-endian integers, LEB128 varints and length-prefixed UTF-8 strings, and a
:class:`Reader` that parses them back and raises :class:`WireError` (never anything else)
on truncated or invalid input."""

from __future__ import annotations

from typing import Final

U8_MAX: Final = 0xFF
U16_MAX: Final = 0xFFFF
U64_MAX: Final = 0xFFFF_FFFF_FFFF_FFFF
_VARINT_MAX_BYTES: Final = 10  # enough for any u64


class WireError(Exception):
    """Input that does not parse. Internal to hamod.proto: decoders turn it into a drop."""


class Writer:
    """Appends fields to a growing buffer."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def u8(self, value: int) -> None:
        self._buf += _check(value, U8_MAX).to_bytes(1, "big")

    def u16(self, value: int) -> None:
        self._buf += _check(value, U16_MAX).to_bytes(2, "big")

    def u64(self, value: int) -> None:
        self._buf += _check(value, U64_MAX).to_bytes(8, "big")

    def varint(self, value: int) -> None:
        """Unsigned LEB128 (7 bits per byte, low bits first), at most a u64."""
        value = _check(value, U64_MAX)
        while True:
            low = value & 0x7F
            value >>= 7
            if value:
                self._buf.append(low | 0x80)
            else:
                self._buf.append(low)
                return

    def raw(self, data: bytes) -> None:
        self._buf += data

    def short_bytes(self, data: bytes) -> None:
        """A u8 length then the bytes (at most 255)."""
        if len(data) > U8_MAX:
            raise ValueError(f"field of {len(data)} bytes exceeds {U8_MAX}")
        self.u8(len(data))
        self._buf += data

    def short_str(self, text: str) -> None:
        """A u8 length then the UTF-8 bytes."""
        self.short_bytes(text.encode("utf-8"))

    def getvalue(self) -> bytes:
        return bytes(self._buf)


class Reader:
    """Parses fields from ``data``; every method raises :class:`WireError` on bad input."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    @property
    def remaining(self) -> int:
        return len(self._data) - self._pos

    def take(self, n: int) -> bytes:
        if n > self.remaining:
            raise WireError(f"needs {n} bytes at offset {self._pos}, has {self.remaining}")
        chunk = self._data[self._pos : self._pos + n]
        self._pos += n
        return chunk

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int.from_bytes(self.take(2), "big")

    def u64(self) -> int:
        return int.from_bytes(self.take(8), "big")

    def varint(self) -> int:
        value = 0
        for i in range(_VARINT_MAX_BYTES):
            byte = self.u8()
            value |= (byte & 0x7F) << (7 * i)
            if not byte & 0x80:
                if value > U64_MAX:
                    raise WireError("varint exceeds 64 bits")
                return value
        raise WireError(f"varint longer than {_VARINT_MAX_BYTES} bytes")

    def short_bytes(self) -> bytes:
        return self.take(self.u8())

    def short_str(self) -> str:
        raw = self.short_bytes()
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise WireError(f"invalid UTF-8 string: {exc.reason}") from None

    def end(self) -> None:
        """Require that everything was consumed."""
        if self.remaining:
            raise WireError(f"{self.remaining} unexpected trailing bytes")


def _check(value: int, maximum: int) -> int:
    if not 0 <= value <= maximum:
        raise ValueError(f"{value} out of range 0..{maximum}")
    return value
