"""Peer liveness from heartbeat arrival times: the timing logic of the heartbeat
transport, with no sockets and no clock (time is an argument).

Owns, per peer and per heartbeat network, the time the last authentic heartbeat arrived,
and turns it into facts:

- a network is **alive** for a peer when something authentic arrived on it less than
  ``timeout`` ago, **silent** when nothing did for ``timeout`` (counted from the start for
  a network never heard), and *pending* (neither) before its first heartbeat while the
  start is less than ``timeout`` ago;
- a peer is **lost** when all its networks are silent, **degraded** when some are silent
  and some alive (no failover: one network down is not a lost peer).

:class:`Liveness` reports each change once, as an observation (edge-triggered):
:class:`NetworkAlive`, :class:`NetworkSilent`, :class:`PeerFound`, :class:`PeerLost`, and
:class:`PeerRestarted` when a peer's epoch changes (it restarted, maybe faster than
``timeout``). A peer never heard within ``timeout`` of the start is reported lost, so the
daemon gets a decision point at start-up. :class:`HeartbeatReceived` is emitted by the
transport itself, before the liveness changes that datagram causes.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

from hamod.proto import Heartbeat

__all__ = [
    "HeartbeatReceived",
    "Liveness",
    "NetworkAlive",
    "NetworkSilent",
    "Observation",
    "PeerFound",
    "PeerLiveness",
    "PeerLost",
    "PeerRestarted",
]


@dataclass(frozen=True)
class HeartbeatReceived:
    """An authentic, fresh heartbeat from ``peer`` arrived on ``network``."""

    peer: str
    network: str
    heartbeat: Heartbeat
    at: float = 0.0


@dataclass(frozen=True)
class NetworkSilent:
    """Nothing authentic arrived from ``peer`` on ``network`` for ``timeout``."""

    peer: str
    network: str
    at: float = 0.0


@dataclass(frozen=True)
class NetworkAlive:
    """``network`` carries ``peer``'s heartbeats again (or for the first time)."""

    peer: str
    network: str
    at: float = 0.0


@dataclass(frozen=True)
class PeerLost:
    """Every network of ``peer`` is silent (or it was never heard within ``timeout``)."""

    peer: str
    at: float = 0.0


@dataclass(frozen=True)
class PeerFound:
    """``peer`` is heard again (or for the first time) on at least one network."""

    peer: str
    at: float = 0.0


@dataclass(frozen=True)
class PeerRestarted:
    """``peer``'s accepted epoch changed: it is a new incarnation of the daemon."""

    peer: str
    old_epoch: int
    new_epoch: int
    at: float = 0.0


Observation = (
    HeartbeatReceived | NetworkSilent | NetworkAlive | PeerLost | PeerFound | PeerRestarted
)


@dataclass(frozen=True)
class PeerLiveness:
    """A snapshot of one peer at ``at``: which networks are alive and which silent."""

    peer: str
    at: float
    alive: frozenset[str]
    silent: frozenset[str]
    #: Networks never heard while the start is less than ``timeout`` ago.
    pending: frozenset[str] = field(default_factory=frozenset)
    #: Per network, seconds since its last authentic heartbeat (None: never heard).
    ages: tuple[tuple[str, float | None], ...] = ()
    epoch: int | None = None

    @property
    def lost(self) -> bool:
        """All networks silent for ``timeout``."""
        return not self.alive and not self.pending

    @property
    def degraded(self) -> bool:
        """Some networks silent, some alive: shown, but no failover."""
        return bool(self.alive) and bool(self.silent)


@dataclass
class _Peer:
    networks: tuple[str, ...]
    last: dict[str, float | None]
    #: States reported so far (edge detection): per network alive?, peer found?
    said_alive: dict[str, bool | None]
    said_found: bool | None = None
    epoch: int | None = None


class Liveness:
    """Edge-triggered liveness of ``peers`` (peer -> its heartbeat networks)."""

    def __init__(self, peers: Mapping[str, Collection[str]], timeout: float, start: float) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout!r}")
        if not peers or any(not nets for nets in peers.values()):
            raise ValueError("need at least one peer, each with at least one network")
        self.timeout = timeout
        self.start = start
        self._peers = {
            name: _Peer(
                networks=tuple(sorted(nets)),
                last=dict.fromkeys(nets),
                said_alive=dict.fromkeys(nets),
            )
            for name, nets in sorted(peers.items())
        }

    @property
    def peers(self) -> tuple[str, ...]:
        """The peers watched, sorted."""
        return tuple(self._peers)

    def networks(self, peer: str) -> tuple[str, ...]:
        """The networks ``peer`` is watched on."""
        return self._get(peer).networks

    def knows(self, peer: str, network: str) -> bool:
        """Whether ``peer`` is watched on ``network``."""
        state = self._peers.get(peer)
        return state is not None and network in state.last

    def _get(self, peer: str) -> _Peer:
        state = self._peers.get(peer)
        if state is None:
            raise ValueError(f"unknown peer {peer!r}")
        return state

    def heard(
        self, peer: str, network: str, now: float, epoch: int | None = None
    ) -> list[Observation]:
        """Record an authentic heartbeat of ``peer`` (``epoch``) on ``network`` at ``now``;
        the observations it causes (silences overdue before ``now`` come first)."""
        state = self._get(peer)
        if network not in state.last:
            raise ValueError(f"peer {peer!r} is not watched on network {network!r}")
        out = self.tick(now)
        if epoch is not None:
            if state.epoch is not None and state.epoch != epoch:
                out.append(PeerRestarted(peer, state.epoch, epoch, now))
            state.epoch = epoch
        previous = state.last[network]
        state.last[network] = now if previous is None else max(previous, now)
        out.extend(self._edges(peer, state, now))
        return out

    def tick(self, now: float) -> list[Observation]:
        """The observations due at ``now`` (silences whose ``timeout`` elapsed)."""
        out: list[Observation] = []
        for name, state in self._peers.items():
            out.extend(self._edges(name, state, now))
        return out

    def _alive(self, state: _Peer, network: str, now: float, timeout: float) -> bool | None:
        last = state.last[network]
        if last is None:
            return False if now - self.start >= timeout else None
        return now - last < timeout

    def _edges(self, name: str, state: _Peer, now: float) -> list[Observation]:
        out: list[Observation] = []
        found: bool | None = False
        for net in state.networks:
            alive = self._alive(state, net, now, self.timeout)
            if alive is None:
                found = None if found is False else found
                continue
            found = True if alive else found
            if alive != state.said_alive[net]:
                state.said_alive[net] = alive
                out.append(NetworkAlive(name, net, now) if alive else NetworkSilent(name, net, now))
        if found is not None and found != state.said_found:
            state.said_found = found
            out.append(PeerFound(name, now) if found else PeerLost(name, now))
        return out

    def snapshot(
        self,
        peer: str,
        now: float,
        timeout: float | None = None,
        networks: Iterable[str] | None = None,
    ) -> PeerLiveness:
        """``peer`` at ``now``; ``timeout`` and ``networks`` may narrow the view (a module
        with its own timeout or heartbeat networks). Reports nothing: pure query."""
        state = self._get(peer)
        limit = self.timeout if timeout is None else timeout
        nets = state.networks if networks is None else tuple(sorted(set(networks)))
        unknown = [n for n in nets if n not in state.last]
        if unknown:
            raise ValueError(f"peer {peer!r} is not watched on {', '.join(unknown)}")
        verdicts = {n: self._alive(state, n, now, limit) for n in nets}
        ages = tuple((n, None if (t := state.last[n]) is None else now - t) for n in nets)
        return PeerLiveness(
            peer=peer,
            at=now,
            alive=frozenset(n for n, v in verdicts.items() if v is True),
            silent=frozenset(n for n, v in verdicts.items() if v is False),
            pending=frozenset(n for n, v in verdicts.items() if v is None),
            ages=ages,
            epoch=state.epoch,
        )

    def next_deadline(self) -> float:
        """The earliest time a silence could become due (wake up then to :meth:`tick`)."""
        deadlines: list[float] = []
        for state in self._peers.values():
            for net in state.networks:
                last = state.last[net]
                if last is None and state.said_alive[net] is None:
                    deadlines.append(self.start + self.timeout)
                elif last is not None and state.said_alive[net]:
                    deadlines.append(last + self.timeout)
        return min(deadlines, default=float("inf"))
