"""The heartbeat receiver's judge: :class:`Decoder` turns any datagram into either an
authentic, fresh :class:`~hamod.proto.heartbeat.Heartbeat` or a :class:`Drop` with its
reason, counting each reason. It never raises, whatever the input.

Checks, in order: length, magic, version (N or N-1), header syntax, cluster name,
HMAC-SHA256 (constant-time), own datagram, body syntax, freshness
(:mod:`hamod.proto.replay`). The body is parsed only once the MAC is verified.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from hamod.proto import replay
from hamod.proto.auth import verify
from hamod.proto.heartbeat import (
    MAC_SIZE,
    MAGIC,
    MIN_PACKET,
    Echo,
    Heartbeat,
    accepted_versions,
    mac_key,
    parse_body,
    parse_envelope,
)
from hamod.proto.wire import Reader, WireError

SockAddr = tuple[str, int] | tuple[str, int, int, int]


class DropReason(StrEnum):
    """Why a datagram was not accepted."""

    TRUNCATED = "truncated"
    BAD_MAGIC = "bad_magic"
    BAD_VERSION = "bad_version"
    FOREIGN_CLUSTER = "foreign_cluster"
    BAD_MAC = "bad_mac"
    OWN_PACKET = "own_packet"
    MALFORMED = "malformed"
    REPLAY = "replay"
    #: Authentic, but from a sender epoch not (yet) proven fresh: see hamod.proto.replay.
    UNCONFIRMED = "unconfirmed"


@dataclass(frozen=True)
class Drop:
    """A datagram that was not accepted, why, and from where."""

    reason: DropReason
    detail: str
    source: SockAddr


class Decoder:
    """Authenticates and de-duplicates the heartbeats received by node ``self_node``
    (whose own random epoch is ``self_epoch``) of cluster ``cluster``."""

    def __init__(self, key: bytes, cluster: str, self_node: str, self_epoch: int) -> None:
        self._key = mac_key(key)
        self._cluster = cluster
        self._self_node = self_node
        self._self_epoch = self_epoch
        self._versions = accepted_versions()
        self._senders: dict[str, replay.SenderState] = {}
        self._drops = dict.fromkeys(DropReason, 0)
        self._accepted = 0

    @property
    def counters(self) -> dict[DropReason, int]:
        """Datagrams dropped so far, per reason (every reason present)."""
        return dict(self._drops)

    @property
    def accepted(self) -> int:
        """Datagrams accepted so far."""
        return self._accepted

    def echoes(self) -> tuple[Echo, ...]:
        """Echoes for our next heartbeat: per sender heard, its newest (epoch, seq)."""
        found = (state.echo(node) for node, state in sorted(self._senders.items()))
        return tuple(e for e in found if e is not None)

    def peer_max_version(self, node: str) -> int | None:
        """Newest format ``node`` understands (from its last accepted datagram)."""
        state = self._senders.get(node)
        return None if state is None else state.max_version

    def peer_epoch(self, node: str) -> int | None:
        """The accepted epoch of ``node`` (changes when it restarts)."""
        state = self._senders.get(node)
        return None if state is None else state.epoch

    def decode(self, data: bytes, src_addr: SockAddr) -> Heartbeat | Drop:
        """Judge one received datagram."""
        result = self._judge(bytes(data), src_addr)
        if isinstance(result, Drop):
            self._drops[result.reason] += 1
        else:
            self._accepted += 1
        return result

    def _judge(self, data: bytes, src: SockAddr) -> Heartbeat | Drop:
        if len(data) < MIN_PACKET:
            return Drop(DropReason.TRUNCATED, f"{len(data)} bytes < {MIN_PACKET}", src)
        if data[: len(MAGIC)] != MAGIC:
            return Drop(DropReason.BAD_MAGIC, f"starts with {data[:4].hex()}", src)
        version = data[len(MAGIC)]
        if version not in self._versions:
            accepted = "/".join(map(str, sorted(self._versions)))
            return Drop(DropReason.BAD_VERSION, f"version {version}, accept {accepted}", src)
        signed, mac = data[:-MAC_SIZE], data[-MAC_SIZE:]
        reader = Reader(signed)
        try:
            reader.take(len(MAGIC))
            env = parse_envelope(reader)
        except (WireError, ValueError) as exc:
            return Drop(DropReason.MALFORMED, f"header: {exc}", src)
        if env.cluster != self._cluster:
            return Drop(DropReason.FOREIGN_CLUSTER, f"cluster {env.cluster!r}", src)
        if not verify(signed, mac, self._key):
            return Drop(DropReason.BAD_MAC, f"claims sender {env.sender!r}", src)
        who = f"{env.sender} on {env.network}"
        if env.sender == self._self_node:
            return Drop(DropReason.OWN_PACKET, f"{who} seq {env.seq}", src)
        try:
            modules = parse_body(env.version, reader)
            hb = Heartbeat(
                cluster=env.cluster,
                sender=env.sender,
                network=env.network,
                epoch=env.epoch,
                seq=env.seq,
                modules=modules,
                echoes=env.echoes,
                version=env.version,
                max_version=env.max_version,
            )
        except (WireError, ValueError) as exc:
            return Drop(DropReason.MALFORMED, f"{who}: {exc}", src)
        state = self._senders.get(hb.sender, replay.SenderState())
        verdict, self._senders[hb.sender] = replay.admit(
            state,
            epoch=hb.epoch,
            seq=hb.seq,
            echo=hb.echo_for(self._self_node),
            max_version=hb.max_version,
            self_epoch=self._self_epoch,
        )
        if verdict is replay.Verdict.REPLAY:
            return Drop(DropReason.REPLAY, f"{who}: seq {hb.seq} already seen or too old", src)
        if verdict is replay.Verdict.UNCONFIRMED:
            return Drop(
                DropReason.UNCONFIRMED,
                f"{who}: epoch {hb.epoch:#x} does not echo our epoch with a newer seq yet",
                src,
            )
        return hb
