"""The heartbeat datagram: what a node announces every pulse on every network, its
binary encoding (versioned envelope + per-version body + HMAC-SHA256 trailer), and the
version negotiation rule. Decoding with authentication and replay checks lives in
:mod:`hamod.proto.decoder`; the byte layout is documented in ``docs/protocol.md``.

Values validate themselves: building an out-of-range :class:`Heartbeat` (or one whose
encoding would not fit in :data:`MAX_DATAGRAM`) raises :class:`ValueError` — a
programming error in the sender; a decoder turns it into a ``malformed`` drop.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import IntFlag, StrEnum
from typing import Final

from hamod.proto.auth import derive_key, sign
from hamod.proto.wire import U8_MAX, U64_MAX, Reader, WireError, Writer

MAGIC: Final = b"HMHB"
#: Format this code writes by default; it reads this one and the previous one.
PROTOCOL_VERSION: Final = 1
#: Oldest format this code can read or write at all.
MIN_VERSION: Final = 1
#: Largest datagram ever sent: fits the IPv6 minimum MTU (1280) minus IP/UDP headers.
MAX_DATAGRAM: Final = 1200
MAC_SIZE: Final = 32
#: magic, version, max_version, epoch, seq, 3 name lengths, echo count, MAC.
MIN_PACKET: Final = 4 + 1 + 1 + 8 + 8 + 3 + 1 + MAC_SIZE
MAX_HISTORY: Final = 4
MAX_ECHOES: Final = 32
U32_MAX: Final = 0xFFFF_FFFF
_MAC_LABEL: Final = b"hamod heartbeat mac v1"
_HEX_RE: Final = re.compile(r"(?:[0-9a-f]{2}){0,16}")


class ModuleState(StrEnum):
    """A module's state on the sending node (SafeKit's vocabulary)."""

    STOP = "STOP"
    WAIT = "WAIT"
    ALONE = "ALONE"
    PRIM = "PRIM"
    SECOND = "SECOND"
    UP = "UP"


class Phase(StrEnum):
    """Whether the state is settled: READY, in a transition, or not ready."""

    NOT_READY = "NOT_READY"
    TRANSIENT = "TRANSIENT"
    READY = "READY"


class ModuleFlags(IntFlag):
    """Open set of per-module flags (u16 on the wire; unknown bits are kept)."""

    FAILOVER_OFF = 0x01
    CHECKERS_OFF = 0x02
    RESYNCING = 0x04
    PRIMFORCED = 0x08
    SPLIT_BRAIN = 0x10
    CANDIDATE = 0x20  # may lead on its own (up to date, failover on, nothing to wait for)
    HANDOVER = 0x40  # stepped down for the peer (swap / failback)
    SWAP_REQUEST = 0x80  # a SECOND asking its primary to swap
    SYNCED = 0x100  # resynced to the generation the peer announced last
    GEN_FORCED = 0x200  # the current generation was imposed by an admin


NO_FLAGS: Final = ModuleFlags(0)

# Wire codes are explicit: reordering the enums must never change the format.
_STATE_CODES: Final = {
    ModuleState.STOP: 1,
    ModuleState.WAIT: 2,
    ModuleState.ALONE: 3,
    ModuleState.PRIM: 4,
    ModuleState.SECOND: 5,
    ModuleState.UP: 6,
}
_STATE_BY_CODE: Final = {i: s for s, i in _STATE_CODES.items()}
_PHASE_CODES: Final = {Phase.NOT_READY: 1, Phase.TRANSIENT: 2, Phase.READY: 3}
_PHASE_BY_CODE: Final = {i: p for p, i in _PHASE_CODES.items()}

_BIT_UP_TO_DATE: Final = 0x01
_BIT_DEGRADED: Final = 0x02
_BIT_LAST_PRIM: Final = 0x04
_BIT_CURRENT_GEN: Final = 0x08
_BITS_KNOWN: Final = 0x0F


def _name(value: str, what: str) -> None:
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise ValueError(f"{what} is not valid Unicode text: {value!r}") from None
    if not 1 <= size <= U8_MAX:
        raise ValueError(f"{what} must be 1-{U8_MAX} UTF-8 bytes, got {value!r}")


def _uint(value: int, maximum: int, what: str) -> None:
    if isinstance(value, bool) or not 0 <= value <= maximum:
        raise ValueError(f"{what} must be in 0..{maximum}, got {value!r}")


@dataclass(frozen=True)
class GenId:
    """One data generation identifier: the node that started it, its term and number."""

    node: str
    term: int
    seq: int

    def __post_init__(self) -> None:
        _name(self.node, "generation node")
        _uint(self.term, U64_MAX, "generation term")
        _uint(self.seq, U64_MAX, "generation seq")


@dataclass(frozen=True)
class Generation:
    """The data generation: current identifier (None before any write) + recent history,
    newest first."""

    current: GenId | None = None
    history: tuple[GenId, ...] = ()

    def __post_init__(self) -> None:
        if len(self.history) > MAX_HISTORY:
            raise ValueError(f"generation history holds at most {MAX_HISTORY} entries")


@dataclass(frozen=True)
class ModuleAnnouncement:
    """What the sender says about one module."""

    name: str
    state: ModuleState
    phase: Phase
    up_to_date: bool
    generation: Generation
    term: int
    #: Remaining lease in milliseconds at send time (0 = none). Relative: clocks may differ.
    lease_remaining_ms: int
    last_prim: str | None
    degraded: bool
    #: Hex digest (lowercase, at most 16 bytes: truncate SHA-256) of the module's config.
    config_hash: str
    flags: ModuleFlags = NO_FLAGS

    def __post_init__(self) -> None:
        _name(self.name, "module name")
        if not isinstance(self.state, ModuleState) or not isinstance(self.phase, Phase):
            raise ValueError("state and phase must be ModuleState and Phase members")
        _uint(self.term, U64_MAX, "term")
        _uint(self.lease_remaining_ms, U32_MAX, "lease_remaining_ms")
        if self.last_prim is not None:
            _name(self.last_prim, "last_prim")
        if not _HEX_RE.fullmatch(self.config_hash):
            raise ValueError(
                f"config_hash must be lowercase hex of 0-16 bytes: {self.config_hash!r}"
            )
        _uint(int(self.flags), 0xFFFF, "flags")


@dataclass(frozen=True)
class Echo:
    """Proof of freshness: the newest (epoch, seq) the sender has heard from ``node``."""

    node: str
    epoch: int
    seq: int

    def __post_init__(self) -> None:
        _name(self.node, "echo node")
        _uint(self.epoch, U64_MAX, "echo epoch")
        _uint(self.seq, U64_MAX, "echo seq")


@dataclass(frozen=True)
class Heartbeat:
    """One heartbeat. ``epoch`` is random per daemon start; ``seq`` grows by one for every
    datagram the daemon sends in that epoch, whatever the network."""

    cluster: str
    sender: str
    network: str
    epoch: int
    seq: int
    modules: tuple[ModuleAnnouncement, ...] = ()
    echoes: tuple[Echo, ...] = ()
    #: Format of this datagram; ``max_version`` is the newest the sender understands.
    version: int = PROTOCOL_VERSION
    max_version: int = PROTOCOL_VERSION

    def __post_init__(self) -> None:
        _name(self.cluster, "cluster")
        _name(self.sender, "sender")
        _name(self.network, "network")
        _uint(self.epoch, U64_MAX, "epoch")
        _uint(self.seq, U64_MAX, "seq")
        if not 1 <= self.version <= self.max_version <= U8_MAX:
            raise ValueError(f"need 1 <= version <= max_version <= {U8_MAX}")
        if len(self.modules) > U8_MAX or len(self.echoes) > MAX_ECHOES:
            raise ValueError(f"at most {U8_MAX} modules and {MAX_ECHOES} echoes")
        if len({m.name for m in self.modules}) != len(self.modules):
            raise ValueError("module names must be unique")
        if len({e.node for e in self.echoes}) != len(self.echoes):
            raise ValueError("echo nodes must be unique")

    def echo_for(self, node: str) -> Echo | None:
        """The echo addressed to ``node``, if any."""
        return next((e for e in self.echoes if e.node == node), None)


# --- versions ------------------------------------------------------------------------


def accepted_versions(current: int = PROTOCOL_VERSION) -> frozenset[int]:
    """Formats a node at ``current`` reads and writes: ``current`` and ``current - 1``."""
    return frozenset(v for v in (current - 1, current) if v >= MIN_VERSION)


def choose_send_version(
    peer_max_versions: Iterable[int | None], current: int = PROTOCOL_VERSION
) -> int:
    """Format to send to these peers (one entry per peer; None = not heard from yet).

    A peer not heard from gets ``current - 1``, which both an old and a new peer read; a
    heard peer's advertised ``max_version`` caps the format. Never below ``current - 1``
    (an older peer cannot be served: upgrades go one version at a time)."""
    floor = min(accepted_versions(current))
    chosen = current
    for peer in peer_max_versions:
        chosen = min(chosen, floor if peer is None else peer)
    return max(chosen, floor)


# --- encoding ------------------------------------------------------------------------


def mac_key(cluster_key: bytes) -> bytes:
    """The heartbeat MAC key derived from the cluster key (domain separation)."""
    return derive_key(cluster_key, _MAC_LABEL)


def encode(hb: Heartbeat, key: bytes) -> bytes:
    """The datagram for ``hb`` authenticated with the cluster ``key``."""
    if hb.version not in _BODY_WRITERS:
        raise ValueError(f"cannot encode heartbeat version {hb.version}")
    w = Writer()
    w.raw(MAGIC)
    w.u8(hb.version)
    w.u8(hb.max_version)
    w.u64(hb.epoch)
    w.u64(hb.seq)
    w.short_str(hb.cluster)
    w.short_str(hb.sender)
    w.short_str(hb.network)
    w.u8(len(hb.echoes))
    for echo in hb.echoes:
        w.short_str(echo.node)
        w.u64(echo.epoch)
        w.u64(echo.seq)
    _BODY_WRITERS[hb.version](w, hb.modules)
    signed = w.getvalue()
    packet = signed + sign(signed, mac_key(key))
    if len(packet) > MAX_DATAGRAM:
        raise ValueError(f"heartbeat of {len(packet)} bytes exceeds {MAX_DATAGRAM}; split modules")
    return packet


def _write_gen(w: Writer, gen: GenId, nodes: dict[str, int]) -> None:
    w.u8(nodes[gen.node])
    w.varint(gen.term)
    w.varint(gen.seq)


def _write_body_v1(w: Writer, modules: tuple[ModuleAnnouncement, ...]) -> None:
    nodes: dict[str, int] = {}
    for m in modules:
        gens = ([m.generation.current] if m.generation.current else []) + [*m.generation.history]
        for name in [g.node for g in gens] + ([m.last_prim] if m.last_prim else []):
            nodes.setdefault(name, len(nodes))
    if len(nodes) > U8_MAX:
        raise ValueError(f"more than {U8_MAX} distinct node names in one heartbeat")
    w.u8(len(nodes))
    for name in nodes:
        w.short_str(name)
    w.u8(len(modules))
    for m in modules:
        w.short_str(m.name)
        w.u8(_STATE_CODES[m.state])
        w.u8(_PHASE_CODES[m.phase])
        w.u16(int(m.flags))
        bits = (
            (_BIT_UP_TO_DATE if m.up_to_date else 0)
            | (_BIT_DEGRADED if m.degraded else 0)
            | (_BIT_LAST_PRIM if m.last_prim is not None else 0)
            | (_BIT_CURRENT_GEN if m.generation.current is not None else 0)
        )
        w.u8(bits)
        w.varint(m.term)
        w.varint(m.lease_remaining_ms)
        if m.last_prim is not None:
            w.u8(nodes[m.last_prim])
        w.short_bytes(bytes.fromhex(m.config_hash))
        if m.generation.current is not None:
            _write_gen(w, m.generation.current, nodes)
        w.u8(len(m.generation.history))
        for gen in m.generation.history:
            _write_gen(w, gen, nodes)


# --- decoding (no authentication here: see hamod.proto.decoder) ----------------------


@dataclass(frozen=True)
class Envelope:
    """The version-independent header of a datagram, parsed but not yet authenticated."""

    version: int
    max_version: int
    epoch: int
    seq: int
    cluster: str
    sender: str
    network: str
    echoes: tuple[Echo, ...] = field(default=())


def parse_envelope(reader: Reader) -> Envelope:
    """Parse the header (after the magic); raises WireError or ValueError."""
    version, max_version = reader.u8(), reader.u8()
    epoch, seq = reader.u64(), reader.u64()
    cluster, sender, network = reader.short_str(), reader.short_str(), reader.short_str()
    count = reader.u8()
    if count > MAX_ECHOES:
        raise WireError(f"{count} echoes, at most {MAX_ECHOES}")
    echoes = tuple(Echo(reader.short_str(), reader.u64(), reader.u64()) for _ in range(count))
    return Envelope(version, max_version, epoch, seq, cluster, sender, network, echoes)


def parse_body(version: int, reader: Reader) -> tuple[ModuleAnnouncement, ...]:
    """Parse the modules of a ``version`` body; raises WireError or ValueError."""
    parser = _BODY_PARSERS.get(version)
    if parser is None:
        raise WireError(f"no parser for version {version}")
    modules = parser(reader)
    reader.end()
    return modules


def _read_gen(r: Reader, nodes: list[str]) -> GenId:
    index = r.u8()
    if index >= len(nodes):
        raise WireError(f"node index {index} outside the table of {len(nodes)}")
    return GenId(nodes[index], r.varint(), r.varint())


def _parse_body_v1(r: Reader) -> tuple[ModuleAnnouncement, ...]:
    nodes = [r.short_str() for _ in range(r.u8())]
    modules = []
    for _ in range(r.u8()):
        name = r.short_str()
        state = _STATE_BY_CODE.get(r.u8())
        phase = _PHASE_BY_CODE.get(r.u8())
        if state is None or phase is None:
            raise WireError(f"module {name!r}: unknown state or phase code")
        flags = ModuleFlags(r.u16())
        bits = r.u8()
        if bits & ~_BITS_KNOWN:
            raise WireError(f"module {name!r}: reserved bits set")
        term, lease = r.varint(), r.varint()
        last_prim = None
        if bits & _BIT_LAST_PRIM:
            index = r.u8()
            if index >= len(nodes):
                raise WireError(f"module {name!r}: last_prim index {index} out of range")
            last_prim = nodes[index]
        config_hash = r.short_bytes().hex()
        current = _read_gen(r, nodes) if bits & _BIT_CURRENT_GEN else None
        count = r.u8()
        if count > MAX_HISTORY:
            raise WireError(f"module {name!r}: history of {count} > {MAX_HISTORY}")
        history = tuple(_read_gen(r, nodes) for _ in range(count))
        modules.append(
            ModuleAnnouncement(
                name=name,
                state=state,
                phase=phase,
                up_to_date=bool(bits & _BIT_UP_TO_DATE),
                generation=Generation(current, history),
                term=term,
                lease_remaining_ms=lease,
                last_prim=last_prim,
                degraded=bool(bits & _BIT_DEGRADED),
                config_hash=config_hash,
                flags=flags,
            )
        )
    return tuple(modules)


_BODY_WRITERS: Final = {1: _write_body_v1}
_BODY_PARSERS: Final = {1: _parse_body_v1}
