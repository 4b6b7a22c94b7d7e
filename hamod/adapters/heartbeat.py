"""The heartbeat transport: UDP heartbeats on every heartbeat network, received,
authenticated, and turned into liveness facts. An adapter: it decides nothing.

Owns one UDP socket per network, bound to this node's address on it (IPv4 or IPv6,
default port :data:`DEFAULT_PORT`); every ``pulse`` it sends one heartbeat per network
to each peer address there (one ``seq`` counter across all networks, as
``docs/protocol.md`` requires; modules that do not fit one datagram go in several). Every
datagram received goes through one :class:`~hamod.proto.Decoder`; refused ones are
counted per reason and summarized once per burst (:mod:`hamod.adapters.heartbeat_drops`);
accepted ones feed :class:`~hamod.adapters.heartbeat_liveness.Liveness`, whose
edge-triggered observations go to ``sink`` after :class:`HeartbeatReceived`.

Robustness: a send error on one network never stops the others (logged once per change);
a socket whose address disappeared is re-bound, retried every pulse; no datagram can
crash the loop. :class:`~hamod.errors.AdapterError` is raised for bad settings and, at
start, for a socket that cannot be bound for a reason a retry will not fix (port in use).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import secrets
import socket
import time
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, Final

from hamod.adapters.heartbeat_config import (
    DEFAULT_PORT,
    Endpoint,
    HeartbeatConfig,
    HeartbeatNetwork,
    NetworkStatus,
)
from hamod.adapters.heartbeat_drops import DropBurst, DropTracker, TransportDrop
from hamod.adapters.heartbeat_liveness import (
    HeartbeatReceived,
    Liveness,
    Observation,
    PeerLiveness,
)
from hamod.errors import AdapterError
from hamod.proto import (
    PROTOCOL_VERSION,
    Decoder,
    Drop,
    Echo,
    Heartbeat,
    ModuleAnnouncement,
    choose_send_version,
    encode,
)
from hamod.proto.heartbeat import MAX_ECHOES

__all__ = [
    "DEFAULT_PORT",
    "Endpoint",
    "HeartbeatConfig",
    "HeartbeatNetwork",
    "HeartbeatTransport",
    "NetworkStatus",
]

#: Bind errors that mean "the address is not (yet) here": retried every pulse.
_RETRYABLE_BIND: Final = frozenset({errno.EADDRNOTAVAIL, errno.ENODEV, errno.ENETDOWN})
log = logging.getLogger(__name__)


class _Net:
    def __init__(self, cfg: HeartbeatNetwork) -> None:
        self.cfg = cfg
        self.sock: socket.socket | None = None
        self.transport: asyncio.DatagramTransport | None = None
        self.targets: tuple[tuple[str, Any], ...] = ()
        self.muted = False
        self.bind_error: str | None = None
        self.send_errors: dict[str, str] = {}


class _Receiver(asyncio.DatagramProtocol):
    def __init__(self, owner: HeartbeatTransport, net: _Net) -> None:
        self._owner, self._net = owner, net

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self._owner._received(self._net, data, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("heartbeat network %s: receive error: %s", self._net.cfg.name, exc)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.errno is not None:
        return f"{errno.errorcode.get(exc.errno, exc.errno)}: {exc.strerror}"
    return str(exc) or type(exc).__name__


class HeartbeatTransport:
    """Heartbeats of node ``config.node``: start with ``await start()`` (or ``async
    with``), stop with ``await stop()``. ``announcements()`` is called every pulse for the
    module announcements to send; ``sink`` receives every observation, in order."""

    def __init__(
        self,
        config: HeartbeatConfig,
        announcements: Callable[[], Sequence[ModuleAnnouncement]],
        sink: Callable[[Observation], None],
        *,
        clock: Callable[[], float] = time.monotonic,
        epoch: int | None = None,
        on_drops: Callable[[DropBurst], None] | None = None,
        drop_quiet: float = 1.0,
    ) -> None:
        self.config = config
        self.epoch = secrets.randbits(64) if epoch is None else epoch
        self._announcements = announcements
        self._sink = sink
        self._clock = clock
        self._on_drops = on_drops or (lambda burst: log.warning("%s", burst))
        self._decoder = Decoder(config.key, config.cluster, config.node, self.epoch)
        self._drops = DropTracker(quiet=drop_quiet)
        self._peer_nets = config.peer_networks()
        self._liveness = Liveness(self._peer_nets, config.timeout, clock())
        self._nets = {n.name: _Net(n) for n in config.networks}
        self._seq = 0
        self._last_modules: tuple[ModuleAnnouncement, ...] = ()
        self._failing: set[str] = set()
        self._accepted = 0
        self._task: asyncio.Task[None] | None = None

    # --- public -------------------------------------------------------------------

    @property
    def seq(self) -> int:
        """Sequence number of the last datagram sent."""
        return self._seq

    @property
    def counters(self) -> dict[str, int]:
        """Datagrams refused so far, per reason (every reason present; export these)."""
        return self._drops.counters

    @property
    def accepted(self) -> int:
        """Datagrams accepted so far (authentic, fresh, from a peer, right network)."""
        return self._accepted

    def snapshot(self, peer: str) -> PeerLiveness:
        """``peer``'s liveness now (networks alive, silent; lost, degraded)."""
        return self._liveness.snapshot(peer, self._clock())

    def status(self) -> tuple[NetworkStatus, ...]:
        """The sending side of every network."""
        return tuple(
            NetworkStatus(
                n.cfg.name,
                n.transport is not None,
                n.muted,
                n.bind_error,
                tuple(sorted(n.send_errors.items())),
            )
            for n in self._nets.values()
        )

    def peer_epoch(self, peer: str) -> int | None:
        """The accepted epoch of ``peer`` (None before its first accepted heartbeat)."""
        return self._decoder.peer_epoch(peer)

    def mute(self, network: str, muted: bool = True) -> None:
        """Stop (or resume) sending on ``network``; still receive. Fault injection and
        maintenance of one heartbeat network."""
        self._net(network).muted = muted

    def local_address(self, network: str) -> Any:
        """The bound socket address on ``network`` (None while unbound)."""
        sock = self._net(network).sock
        return None if sock is None else sock.getsockname()

    async def start(self) -> None:
        """Bind every network (an absent address is retried each pulse) and start."""
        if self._task is not None:
            raise AdapterError("heartbeat transport already started")
        self._liveness = Liveness(self._peer_nets, self.config.timeout, self._clock())
        try:
            for net in self._nets.values():
                await self._bind(net, at_start=True)
        except BaseException:
            self._close_sockets()
            raise
        self._task = asyncio.get_running_loop().create_task(self._run(), name="heartbeats")

    async def stop(self) -> None:
        """Stop sending and receiving; close the sockets. Idempotent."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._close_sockets()
        await asyncio.sleep(0)  # let the transports close their sockets now
        self._report(self._drops.flush())

    async def __aenter__(self) -> HeartbeatTransport:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # --- sockets ------------------------------------------------------------------

    def _net(self, name: str) -> _Net:
        net = self._nets.get(name)
        if net is None:
            raise AdapterError(f"no heartbeat network {name!r}")
        return net

    async def _bind(self, net: _Net, at_start: bool = False) -> None:
        local, loop = net.cfg.local, asyncio.get_running_loop()
        sock: socket.socket | None = None
        try:
            flags = socket.AI_NUMERICHOST
            info = socket.getaddrinfo(local.host, local.port, type=socket.SOCK_DGRAM, flags=flags)
            family, _, _, _, addr = info[0]
            targets = tuple(
                (
                    peer,
                    socket.getaddrinfo(e.host, e.port, family, socket.SOCK_DGRAM, 0, flags)[0][4],
                )
                for peer, e in sorted(net.cfg.peers.items())
            )
            sock = socket.socket(family, socket.SOCK_DGRAM)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.setblocking(False)
            sock.bind(addr)
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _Receiver(self, net), sock=sock
            )
        except OSError as exc:
            if sock is not None:
                sock.close()
            problem = f"cannot bind {local}: {_describe(exc)}"
            if at_start and exc.errno not in _RETRYABLE_BIND:
                raise AdapterError(f"heartbeat network {net.cfg.name}: {problem}") from exc
            if problem != net.bind_error:
                log.warning("heartbeat network %s: %s; retrying every pulse", net.cfg.name, problem)
            net.bind_error = problem
            return
        if net.bind_error is not None:
            log.warning("heartbeat network %s: bound %s", net.cfg.name, local)
        net.sock, net.transport, net.targets, net.bind_error = sock, transport, targets, None

    def _unbind(self, net: _Net) -> None:
        if net.transport is not None:
            net.transport.close()
        net.sock, net.transport = None, None

    def _close_sockets(self) -> None:
        for net in self._nets.values():
            self._unbind(net)

    # --- sending ------------------------------------------------------------------

    def _modules(self) -> tuple[ModuleAnnouncement, ...]:
        try:
            self._last_modules = tuple(self._announcements())
            self._failing.discard("announcements")
        except Exception:
            if "announcements" not in self._failing:
                log.exception("heartbeats: announcements() failed; sending the last ones")
            self._failing.add("announcements")
        return self._last_modules

    def _encoder(self, network: str) -> Callable[[tuple[ModuleAnnouncement, ...], int], bytes]:
        heard = [e for e in self._decoder.echoes() if e.node in self._peer_nets]
        echoes: tuple[Echo, ...] = tuple(heard[:MAX_ECHOES])
        version = choose_send_version(self._decoder.peer_max_version(p) for p in self._peer_nets)
        cfg = self.config

        def packet(modules: tuple[ModuleAnnouncement, ...], seq: int) -> bytes:
            hb = Heartbeat(
                cfg.cluster, cfg.node, network, self.epoch, seq, modules, echoes, version,
                max_version=PROTOCOL_VERSION,
            )  # fmt: skip
            return encode(hb, cfg.key)  # ValueError: over MAX_DATAGRAM

        return packet

    def _datagrams(self, network: str, modules: tuple[ModuleAnnouncement, ...]) -> list[bytes]:
        """The datagrams for one pulse on ``network``: all modules, in as few datagrams of
        at most MAX_DATAGRAM bytes as a greedy split gives, each with the next seq."""
        packet = self._encoder(network)
        chunks: list[tuple[ModuleAnnouncement, ...]] = [()]
        for module in modules:
            for candidate in ((*chunks[-1], module), (module,)):
                try:
                    packet(candidate, self._seq + 1)  # the size does not depend on seq
                except ValueError as exc:
                    problem = exc
                    continue
                if len(candidate) == 1 and chunks[-1]:
                    chunks.append(candidate)
                else:
                    chunks[-1] = candidate
                break
            else:
                log.error("heartbeats: module %s cannot be sent: %s", module.name, problem)
        out = []
        for chunk in chunks:
            self._seq += 1
            out.append(packet(chunk, self._seq))
        return out

    def _send_all(self) -> None:
        modules = self._modules()
        for net in self._nets.values():
            if net.transport is None or net.muted:
                continue
            for data in self._datagrams(net.cfg.name, modules):
                for peer, addr in net.targets:
                    if net.sock is not None:
                        self._send(net, peer, addr, data)

    def _send(self, net: _Net, peer: str, addr: Any, data: bytes) -> None:
        assert net.sock is not None
        try:
            net.sock.sendto(data, addr)
        except BlockingIOError:
            return  # socket buffer full: this one heartbeat is lost, like on the wire
        except OSError as exc:
            problem = _describe(exc)
            if net.send_errors.get(peer) != problem:
                log.warning(
                    "heartbeat network %s: cannot send to %s (%s): %s",
                    net.cfg.name, peer, net.cfg.peers[peer], problem,
                )  # fmt: skip
            net.send_errors[peer] = problem
            if exc.errno in (errno.EADDRNOTAVAIL, errno.ENODEV):
                log.warning("heartbeat network %s: address gone; re-binding", net.cfg.name)
                self._unbind(net)
            return
        if net.send_errors.pop(peer, None) is not None:
            log.warning("heartbeat network %s: sending to %s again", net.cfg.name, peer)

    # --- receiving ----------------------------------------------------------------

    def _received(self, net: _Net, data: bytes, addr: tuple[str | Any, int]) -> None:
        now = self._clock()
        source = str(addr[0])
        try:
            result = self._decoder.decode(data, tuple(addr))  # type: ignore[arg-type]
            if isinstance(result, Drop):
                self._drops.add(net.cfg.name, source, result.reason.value, result.detail, now)
                return
            hb, name = result, net.cfg.name
            if hb.network != name:
                why = f"{hb.sender} names network {hb.network} but arrived on {name}"
                self._drops.add(name, source, TransportDrop.WRONG_NETWORK, why, now)
                return
            if not self._liveness.knows(hb.sender, name):
                why = f"{hb.sender} is not a peer of {self.config.node} on {name}"
                self._drops.add(name, source, TransportDrop.UNKNOWN_SENDER, why, now)
                return
            self._accepted += 1
            self._emit(self._liveness.tick(now))
            self._emit([HeartbeatReceived(hb.sender, name, hb, now)])
            self._emit(self._liveness.heard(hb.sender, name, now, hb.epoch))
        except Exception as exc:  # never crash on a datagram
            why = f"{type(exc).__name__}: {exc}"
            self._drops.add(net.cfg.name, source, TransportDrop.INTERNAL_ERROR, why, now)
            log.debug("heartbeats: error handling a datagram", exc_info=True)

    # --- the loop -----------------------------------------------------------------

    def _emit(self, observations: list[Observation]) -> None:
        for obs in observations:
            try:
                self._sink(obs)
                self._failing.discard("sink")
            except Exception:
                if "sink" not in self._failing:
                    log.exception("heartbeats: the observation sink failed")
                self._failing.add("sink")

    def _report(self, bursts: list[DropBurst]) -> None:
        for burst in bursts:
            try:
                self._on_drops(burst)
            except Exception:
                log.exception("heartbeats: the drop hook failed")

    async def _run(self) -> None:
        pulse = self.config.pulse
        next_send = self._clock()
        while True:
            try:
                now = self._clock()
                if now >= next_send:
                    for net in self._nets.values():
                        if net.transport is None:
                            await self._bind(net)
                    self._send_all()
                    next_send = max(next_send + pulse, now + pulse / 2)
                self._emit(self._liveness.tick(now))
                self._report(self._drops.due(now))
                wake = min(next_send, self._liveness.next_deadline(), self._drops.next_deadline())
            except Exception:  # one bad pulse must not stop the heartbeats
                log.exception("heartbeats: pulse failed")
                wake = self._clock() + pulse
            await asyncio.sleep(max(0.001, wake - self._clock()))
