"""The node's side of the arbitrator: ask for, renew and release leases over UDP.

:meth:`WitnessClient.request_lease` sends a request and waits for the reply that echoes
its nonce, re-sending (each time with a new nonce and a higher sequence) every
``retry_interval`` until ``timeout``; it returns None when nothing authentic answered
("unanswered": the caller must act as if refused). One client serves any number of
concurrent calls; it draws a random epoch when created and persists nothing.

The local lease end is ``send time + granted remaining``, the send time being that of the
very datagram answered: the arbitrator measured the lease from when it *received* it, so
the node's view always ends first (only clock *rates* must agree; see docs/witness.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from hamod.errors import UsageError
from hamod.proto.witness import (
    DEFAULT_PORT,
    NONCE_SIZE,
    Op,
    WitnessReply,
    WitnessRequest,
    decode_reply,
    encode_request,
)

DEFAULT_RETRY = 0.25  # seconds between two sends of one request


@dataclass(frozen=True)
class LeaseReply:
    """The arbitrator's answer as the node may use it. ``lease_end`` is on the client's
    monotonic clock: ``sent_at + remaining`` (for a grant: when the node must stop
    serving unless renewed)."""

    granted: bool
    term: int
    holder: str
    remaining_ms: int
    reason: str
    sent_at: float
    lease_end: float
    grant: int = 0  # the grant token (0 unless granted): what a release must quote


@dataclass
class _Call:
    future: asyncio.Future[tuple[WitnessReply, float]]
    sent: dict[bytes, float] = field(default_factory=dict)


class WitnessClient:
    """Talks to the arbitrator at ``host:port``; ``keys`` maps cluster → cluster key."""

    def __init__(
        self,
        host: str,
        port: int = DEFAULT_PORT,
        keys: Mapping[str, bytes] | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        retry_interval: float = DEFAULT_RETRY,
        epoch: int | None = None,
    ) -> None:
        try:
            self._addr = (str(ipaddress.ip_address(host)), port)
        except ValueError:
            raise UsageError(f"witness address {host!r} is not an IP address") from None
        self._family_v6 = ":" in self._addr[0]
        self._keys = dict(keys or {})
        self._clock = clock
        self._retry = retry_interval
        self.epoch = secrets.randbits(64) if epoch is None else epoch
        self._seq = 0
        self._pending: dict[bytes, _Call] = {}
        self._grants: dict[tuple[str, str, str, int], int] = {}
        self._transport: asyncio.DatagramTransport | None = None

    async def request_lease(
        self, cluster: str, module: str, node: str, term: int, lease: float, timeout: float
    ) -> LeaseReply | None:
        """Ask for (or renew) the lease on ``term`` for ``lease`` seconds; None if no
        authentic reply came within ``timeout`` seconds."""
        lease_ms = round(lease * 1000)
        if lease_ms < 1:
            raise ValueError(f"lease must be at least 1ms, got {lease!r}s")
        return await self._call(Op.REQUEST, cluster, module, node, term, lease_ms, timeout)

    async def release(
        self, cluster: str, module: str, node: str, term: int, timeout: float
    ) -> LeaseReply | None:
        """Give up the lease on ``term`` (call only once the node stopped serving);
        ``granted`` in the reply means it is released. None if unanswered.

        The release quotes the token of the newest grant this client received for the
        term; without one (e.g. after a restart of this client) it is refused and the
        lease simply runs out."""
        grant = self._grants.get((cluster, module, node, term), 0)
        return await self._call(Op.RELEASE, cluster, module, node, term, 0, timeout, grant)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    async def __aenter__(self) -> WitnessClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    # --- internals -------------------------------------------------------------------------

    async def _call(
        self,
        op: Op,
        cluster: str,
        module: str,
        node: str,
        term: int,
        lease_ms: int,
        timeout: float,
        grant: int = 0,
    ) -> LeaseReply | None:
        key = self._keys.get(cluster)
        if key is None:
            raise UsageError(f"no key for cluster {cluster!r}")
        loop = asyncio.get_running_loop()
        transport = await self._endpoint()
        deadline = loop.time() + timeout
        call = _Call(loop.create_future())
        req_key = (cluster, module, node)
        try:
            while True:
                self._seq += 1
                nonce = secrets.token_bytes(NONCE_SIZE)
                req = WitnessRequest(
                    op, cluster, module, node, term, lease_ms, self.epoch, self._seq, nonce, grant
                )
                data = encode_request(req, key)
                self._pending[nonce] = call
                call.sent[nonce] = self._clock()
                with contextlib.suppress(OSError):
                    transport.sendto(data, self._addr)
                left = deadline - loop.time()
                if left <= 0:
                    return None
                try:
                    rep, sent_at = await asyncio.wait_for(
                        asyncio.shield(call.future), min(self._retry, left)
                    )
                except TimeoutError:
                    if loop.time() >= deadline:
                        return None
                    continue
                if op is Op.REQUEST and rep.granted:
                    self._grants = {k: v for k, v in self._grants.items() if k[:3] != req_key}
                    self._grants[(*req_key, rep.term)] = rep.grant
                end = sent_at + rep.remaining_ms / 1000
                return LeaseReply(
                    rep.granted,
                    rep.term,
                    rep.holder,
                    rep.remaining_ms,
                    rep.reason,
                    sent_at,
                    end,
                    rep.grant,
                )
        finally:
            for n in call.sent:
                self._pending.pop(n, None)
            if not call.future.done():
                call.future.cancel()

    def _deliver(self, data: bytes) -> None:
        rep = decode_reply(data, self._keys)
        if rep is None:
            return
        call = self._pending.get(rep.nonce)
        if call is None or call.future.done():
            return
        call.future.set_result((rep, call.sent[rep.nonce]))

    async def _endpoint(self) -> asyncio.DatagramTransport:
        if self._transport is None:
            loop = asyncio.get_running_loop()
            local = ("::", 0) if self._family_v6 else ("0.0.0.0", 0)
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _ClientEndpoint(self), local_addr=local
            )
            self._transport = transport
        return self._transport


class _ClientEndpoint(asyncio.DatagramProtocol):
    def __init__(self, client: WitnessClient) -> None:
        self._client = client

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        self._client._deliver(data)
