"""The witness (arbitrator) datagrams: a lease request or release from a node, and the
arbitrator's reply. Pure: bytes in, values out; no sockets, no clock, no logging.

- :func:`encode_request` / :func:`encode_reply` build authenticated datagrams;
- :class:`RequestFilter` (arbitrator side) turns any datagram into an authentic, fresh
  :class:`WitnessRequest` or a counted :class:`Drop`; it holds one key per cluster and,
  per (cluster, node), the client's epoch and newest sequence (nothing persisted);
- :func:`decode_reply` (node side) returns the authentic :class:`WitnessReply` or None.

Decoders never raise, whatever the bytes. Times on the wire are *relative* durations in
milliseconds (lease length, remaining lease), never clock readings. The MAC key is
``HMAC-SHA256(cluster_key, "hamod witness mac v1")``. Layout, replay analysis:
``docs/witness.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import Final

from hamod.proto.auth import derive_key, sign, verify
from hamod.proto.wire import U8_MAX, U64_MAX, Reader, WireError, Writer

REQUEST_MAGIC: Final = b"HMWQ"
REPLY_MAGIC: Final = b"HMWR"
WITNESS_VERSION: Final = 1
DEFAULT_PORT: Final = 9011
NONCE_SIZE: Final = 16
MAC_SIZE: Final = 32
U32_MAX: Final = 0xFFFF_FFFF
#: The longest lease a node may ask for (one hour): a typo must not block a module for days.
MAX_LEASE_MS: Final = 3_600_000
#: Client epochs remembered per (cluster, node), each with its newest seq (most recent).
KNOWN_EPOCHS: Final = 8
#: magic, version, op, epoch, seq, nonce, 3 names (length + >= 1 byte), term, lease, grant,
#: MAC.
MIN_REQUEST: Final = 4 + 1 + 1 + 8 + 8 + NONCE_SIZE + 3 * 2 + 1 + 1 + 8 + MAC_SIZE
#: magic, version, flags, nonce, cluster (>= 2), holder and reason (>= 1), term, remaining,
#: grant, MAC.
MIN_REPLY: Final = 4 + 1 + 1 + NONCE_SIZE + 2 + 1 + 1 + 1 + 1 + 8 + MAC_SIZE
_MAC_LABEL: Final = b"hamod witness mac v1"
_GRANTED: Final = 0x01


class Op(IntEnum):
    """What a node asks (wire codes are explicit)."""

    REQUEST = 1
    RELEASE = 2


def mac_key(cluster_key: bytes) -> bytes:
    """The witness MAC key derived from the cluster key (domain separation)."""
    return derive_key(cluster_key, _MAC_LABEL)


def _name(value: str, what: str, *, empty: bool = False) -> None:
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise ValueError(f"{what} is not valid Unicode text: {value!r}") from None
    if not (0 if empty else 1) <= size <= U8_MAX:
        raise ValueError(f"{what} must be 1-{U8_MAX} UTF-8 bytes, got {value!r}")


def _uint(value: int, low: int, high: int, what: str) -> None:
    if isinstance(value, bool) or not low <= value <= high:
        raise ValueError(f"{what} must be in {low}..{high}, got {value!r}")


@dataclass(frozen=True)
class WitnessRequest:
    """A node asks for (or gives up) the lease on ``term`` of (cluster, module).

    ``epoch`` is drawn at random when the client starts, ``seq`` grows with every datagram
    it sends, ``nonce`` is fresh per datagram and echoed by the reply. ``lease_ms`` is the
    lease length asked for (0 in a release); ``grant`` (release only, else 0) is the grant
    token of the newest grant reply the node received for this term."""

    op: Op
    cluster: str
    module: str
    node: str
    term: int
    lease_ms: int
    epoch: int
    seq: int
    nonce: bytes
    grant: int = 0
    version: int = WITNESS_VERSION

    def __post_init__(self) -> None:
        _name(self.cluster, "cluster")
        _name(self.module, "module")
        _uint(self.grant, 0, U64_MAX, "grant")
        _name(self.node, "node")
        _uint(self.term, 0, U64_MAX, "term")
        _uint(self.lease_ms, 0, U32_MAX, "lease_ms")
        _uint(self.epoch, 0, U64_MAX, "epoch")
        _uint(self.seq, 0, U64_MAX, "seq")
        if len(self.nonce) != NONCE_SIZE:
            raise ValueError(f"nonce must be {NONCE_SIZE} bytes")


@dataclass(frozen=True)
class WitnessReply:
    """The arbitrator's answer to the request whose ``nonce`` it echoes: ``granted`` (for a
    release: the lease is given up), the granted or current ``term`` and ``holder`` ("" if
    none), the holder's lease remaining when the request arrived, and why. ``grant`` is a
    random token drawn for every grant (0 otherwise): a release must quote the newest."""

    cluster: str
    nonce: bytes
    granted: bool
    term: int
    holder: str
    remaining_ms: int
    reason: str
    grant: int = 0
    version: int = WITNESS_VERSION

    def __post_init__(self) -> None:
        _name(self.cluster, "cluster")
        _name(self.holder, "holder", empty=True)
        _uint(self.grant, 0, U64_MAX, "grant")
        _name(self.reason, "reason", empty=True)
        _uint(self.term, 0, U64_MAX, "term")
        _uint(self.remaining_ms, 0, U32_MAX, "remaining_ms")
        if len(self.nonce) != NONCE_SIZE:
            raise ValueError(f"nonce must be {NONCE_SIZE} bytes")


def clip_reason(text: str) -> str:
    """``text`` cut to fit a reply's reason field (255 UTF-8 bytes)."""
    return text.encode("utf-8")[:U8_MAX].decode("utf-8", "ignore")


def encode_request(req: WitnessRequest, cluster_key: bytes) -> bytes:
    """The datagram for ``req``, authenticated with its cluster's key."""
    w = Writer()
    w.raw(REQUEST_MAGIC)
    w.u8(req.version)
    w.u8(int(req.op))
    w.u64(req.epoch)
    w.u64(req.seq)
    w.raw(req.nonce)
    w.short_str(req.cluster)
    w.short_str(req.module)
    w.short_str(req.node)
    w.varint(req.term)
    w.varint(req.lease_ms)
    w.u64(req.grant)
    signed = w.getvalue()
    return signed + sign(signed, mac_key(cluster_key))


def encode_reply(rep: WitnessReply, cluster_key: bytes) -> bytes:
    """The datagram for ``rep``, authenticated with its cluster's key."""
    w = Writer()
    w.raw(REPLY_MAGIC)
    w.u8(rep.version)
    w.u8(_GRANTED if rep.granted else 0)
    w.raw(rep.nonce)
    w.short_str(rep.cluster)
    w.varint(rep.term)
    w.short_str(rep.holder)
    w.varint(rep.remaining_ms)
    w.short_str(rep.reason)
    w.u64(rep.grant)
    signed = w.getvalue()
    return signed + sign(signed, mac_key(cluster_key))


def decode_reply(data: bytes, keys: Mapping[str, bytes]) -> WitnessReply | None:
    """The authentic reply in ``data`` (``keys``: cluster name → cluster key), else None.
    Whether it answers an outstanding request (its nonce) is the caller's check."""
    data = bytes(data)
    if len(data) < MIN_REPLY or data[:4] != REPLY_MAGIC or data[4] != WITNESS_VERSION:
        return None
    signed, mac = data[:-MAC_SIZE], data[-MAC_SIZE:]
    try:
        r = Reader(signed)
        r.take(4)
        version, flags, nonce, cluster = r.u8(), r.u8(), r.take(NONCE_SIZE), r.short_str()
        key = keys.get(cluster)
        if key is None or not verify(signed, mac, mac_key(key)):
            return None
        term, holder, remaining, reason = r.varint(), r.short_str(), r.varint(), r.short_str()
        grant = r.u64()
        r.end()
        if flags & ~_GRANTED:
            return None
        granted = bool(flags & _GRANTED)
        return WitnessReply(
            cluster, nonce, granted, term, holder, remaining, reason, grant, version
        )
    except (WireError, ValueError):
        return None


class DropReason(StrEnum):
    """Why the arbitrator did not answer a datagram."""

    TRUNCATED = "truncated"
    BAD_MAGIC = "bad_magic"
    BAD_VERSION = "bad_version"
    MALFORMED = "malformed"
    FOREIGN_CLUSTER = "foreign_cluster"
    BAD_MAC = "bad_mac"
    REPLAY = "replay"


@dataclass(frozen=True)
class Drop:
    """A datagram that gets no answer, and why."""

    reason: DropReason
    detail: str


@dataclass(frozen=True)
class ClientSeen:
    """Per (cluster, node): the client epochs seen lately, each with the newest seq accepted
    in it, least recently used first (at most :data:`KNOWN_EPOCHS`).

    A known epoch needs a seq above its newest; an unknown one is accepted (a restarted
    client draws a new epoch, and nothing is persisted). A replayed datagram of an unknown
    or evicted epoch can therefore pass: ``docs/witness.md`` shows why that is harmless.
    No epoch is ever refused outright, so a replay can never lock a live client out."""

    epochs: tuple[tuple[int, int], ...] = ()

    def admit(self, epoch: int, seq: int) -> ClientSeen | None:
        """The state after accepting (epoch, seq), or None if it is a replay."""
        rest = tuple(e for e in self.epochs if e[0] != epoch)
        for known, top in self.epochs:
            if known == epoch and seq <= top:
                return None
        return ClientSeen((*rest, (epoch, seq))[-KNOWN_EPOCHS:])


class RequestFilter:
    """The arbitrator's judge: authentic, fresh requests pass; everything else is a counted
    :class:`Drop`. ``keys`` maps cluster name → cluster key."""

    def __init__(self, keys: Mapping[str, bytes]) -> None:
        self._keys: dict[str, bytes] = {}
        self.set_keys(keys)
        self._seen: dict[tuple[str, str], ClientSeen] = {}
        self._drops = dict.fromkeys(DropReason, 0)
        self._accepted = 0

    def set_keys(self, keys: Mapping[str, bytes]) -> None:
        """Replace the cluster keys (a reload); replay state is kept."""
        self._keys = {cluster: mac_key(key) for cluster, key in keys.items()}

    @property
    def clusters(self) -> tuple[str, ...]:
        return tuple(sorted(self._keys))

    @property
    def counters(self) -> dict[DropReason, int]:
        """Datagrams dropped so far, per reason (every reason present)."""
        return dict(self._drops)

    @property
    def accepted(self) -> int:
        return self._accepted

    def accept(self, data: bytes) -> WitnessRequest | Drop:
        """Judge one received datagram."""
        result = self._judge(bytes(data))
        if isinstance(result, Drop):
            self._drops[result.reason] += 1
        else:
            self._accepted += 1
        return result

    def _judge(self, data: bytes) -> WitnessRequest | Drop:
        if len(data) < MIN_REQUEST:
            return Drop(DropReason.TRUNCATED, f"{len(data)} bytes < {MIN_REQUEST}")
        if data[:4] != REQUEST_MAGIC:
            return Drop(DropReason.BAD_MAGIC, f"starts with {data[:4].hex()}")
        if data[4] != WITNESS_VERSION:
            return Drop(DropReason.BAD_VERSION, f"version {data[4]}, accept {WITNESS_VERSION}")
        signed, mac = data[:-MAC_SIZE], data[-MAC_SIZE:]
        r = Reader(signed)
        try:
            r.take(5)
            op, epoch, seq, nonce = r.u8(), r.u64(), r.u64(), r.take(NONCE_SIZE)
            cluster = r.short_str()
        except WireError as exc:
            return Drop(DropReason.MALFORMED, f"header: {exc}")
        key = self._keys.get(cluster)
        if key is None:
            return Drop(DropReason.FOREIGN_CLUSTER, f"cluster {cluster!r}")
        if not verify(signed, mac, key):
            return Drop(DropReason.BAD_MAC, f"cluster {cluster!r}")
        try:
            module, node, term, lease_ms = r.short_str(), r.short_str(), r.varint(), r.varint()
            grant = r.u64()
            r.end()
            req = WitnessRequest(
                Op(op), cluster, module, node, term, lease_ms, epoch, seq, nonce, grant, data[4]
            )
        except (WireError, ValueError) as exc:
            return Drop(DropReason.MALFORMED, f"cluster {cluster!r}: {exc}")
        who = (cluster, node)
        seen = self._seen.get(who)
        admitted = (seen or ClientSeen()).admit(epoch, seq)
        if admitted is None:
            return Drop(
                DropReason.REPLAY,
                f"{node} of {cluster}: epoch {epoch:#x} seq {seq} already seen",
            )
        self._seen[who] = admitted
        return req
