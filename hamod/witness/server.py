"""The arbitrator server (``hamod witness serve``): one UDP socket, one datagram each way.

Owns the wiring around the pure arbitrator (:mod:`hamod.core.arbiter`): authenticate and
de-duplicate each request (:class:`RequestFilter`), apply it at the injected monotonic
clock's ``now``, make any grant durable (fsync) *before* answering it, answer, and log one
line per change of holder/term and per refusal. A store failure turns the grant into a
refusal and leaves the state as it was. On start the stored grants are loaded and every
lease is treated as live for one more lease length (``restarted``).

Every grant (first, new term, renewal) carries a fresh random *grant token*; a release is
honoured only from the current holder quoting the token of the newest grant. Any grant
after a release was sent (the holder's renewal, or even a replayed request) draws a new
token, so a recorded release can never end a lease renewed after it (analysis in
``docs/witness.md``). Tokens are not persisted: after an arbitrator restart a release is
refused until the holder renewed once; the lease then simply runs out.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import cast

from hamod.core import arbiter
from hamod.core.arbiter import ArbiterState, LeaseRequest
from hamod.errors import AdapterError
from hamod.proto.witness import (
    MAX_LEASE_MS,
    U32_MAX,
    Drop,
    DropReason,
    Op,
    RequestFilter,
    WitnessReply,
    WitnessRequest,
    clip_reason,
    encode_reply,
)
from hamod.witness.state import GrantStore, durable_view, lease_ms

logger = logging.getLogger("hamod.witness")
Clock = Callable[[], float]
DROP_LOG_INTERVAL = 10.0  # seconds between two log lines about dropped datagrams


@dataclass(frozen=True)
class LeaseStatus:
    """One (cluster, module) as the arbitrator sees it; ``remaining_ms`` is None when
    unknown (offline view of the state file)."""

    cluster: str
    module: str
    term: int
    holder: str
    lease_ms: int
    released: bool
    remaining_ms: int | None


def status_of(st: ArbiterState, now: float | None) -> tuple[LeaseStatus, ...]:
    """Every (cluster, module) of ``st``, sorted; remaining lease at ``now`` if given."""
    rows = []
    for r in sorted(st.records, key=lambda r: (r.cluster, r.module)):
        remaining = None if now is None else _ms(r.expires - now) if not r.released else 0
        rows.append(
            LeaseStatus(r.cluster, r.module, r.term, r.holder, lease_ms(r), r.released, remaining)
        )
    return tuple(rows)


def status_json(rows: tuple[LeaseStatus, ...]) -> str:
    """The status view as JSON (a list of objects, one per (cluster, module))."""
    return json.dumps([asdict(r) for r in rows], indent=2, sort_keys=True)


def _ms(seconds: float) -> int:
    return min(max(0, round(seconds * 1000)), U32_MAX)


@dataclass(frozen=True)
class _GrantedBy:
    """The newest grant of the current lease: to whom, which term, its token."""

    node: str
    term: int
    token: int


class WitnessServer:
    """Serves leases for every cluster in ``keys`` (cluster name → cluster key)."""

    def __init__(
        self, keys: Mapping[str, bytes], store: GrantStore, *, clock: Clock = time.monotonic
    ) -> None:
        self._keys = dict(keys)
        self._filter = RequestFilter(keys)
        self._store = store
        self._clock = clock
        loaded = store.load()
        self._state = arbiter.restarted(loaded or ArbiterState(), clock())
        self._granted_by: dict[tuple[str, str], _GrantedBy] = {}
        self._last_refusal: dict[tuple[str, str], tuple[str, str]] = {}
        self._store_failures = 0
        self._drop_log_at = -DROP_LOG_INTERVAL
        self._drops_unlogged = 0
        self._transport: asyncio.DatagramTransport | None = None
        if loaded is not None and loaded.records:
            logger.info(
                "witness: loaded %d grant(s); each unreleased lease stays live one more "
                "lease length",
                len(loaded.records),
            )

    # --- observation ---------------------------------------------------------------------

    @property
    def state(self) -> ArbiterState:
        return self._state

    @property
    def counters(self) -> dict[str, int]:
        """Accepted requests, drops per reason, and failed saves."""
        out = {str(k): v for k, v in self._filter.counters.items()}
        out["accepted"] = self._filter.accepted
        out["store_failures"] = self._store_failures
        return out

    @property
    def clusters(self) -> tuple[str, ...]:
        """The clusters served (those with a key)."""
        return self._filter.clusters

    def status(self) -> tuple[LeaseStatus, ...]:
        return status_of(self._state, self._clock())

    def reload_keys(self, keys: Mapping[str, bytes]) -> None:
        """Serve exactly the clusters of ``keys`` from now on (leases are kept)."""
        self._keys = dict(keys)
        self._filter.set_keys(keys)
        logger.info("witness: serving %d cluster(s): %s", len(keys), ", ".join(sorted(keys)))

    # --- one datagram ----------------------------------------------------------------------

    def handle(self, data: bytes) -> bytes | None:
        """The reply to ``data``, or None when it gets none (dropped)."""
        req = self._filter.accept(data)
        if isinstance(req, Drop):
            self._log_drop(req)
            return None
        now = self._clock()
        rep = self._release(req, now) if req.op is Op.RELEASE else self._request(req, now)
        return encode_reply(rep, self._keys[req.cluster])

    def _request(self, req: WitnessRequest, now: float) -> WitnessReply:
        if not 1 <= req.lease_ms <= MAX_LEASE_MS:
            why = f"refused: lease {req.lease_ms}ms outside 1..{MAX_LEASE_MS}ms"
            return self._refuse(req, now, why)
        lr = LeaseRequest(req.cluster, req.module, req.node, req.term, req.lease_ms / 1000)
        new, rep = arbiter.request(self._state, lr, now)
        if not rep.granted:
            return self._refuse(req, now, rep.reason)
        old = self._state.get(req.cluster, req.module)
        if not self._commit(new, req):
            return self._refuse(req, now, "refused: the arbitrator cannot save its grants")
        token = secrets.randbits(64) | 1  # never 0, which means "no grant"
        self._granted_by[(req.cluster, req.module)] = _GrantedBy(req.node, rep.term, token)
        if old is None or (old.term, old.holder) != (rep.term, rep.holder):
            was = "none" if old is None else f"term {old.term} of {old.holder}"
            logger.info(
                "witness: %s/%s: term %d granted to %s for %dms (%s; was %s)",
                req.cluster, req.module, rep.term, rep.holder, req.lease_ms, rep.reason, was,
            )  # fmt: skip
            self._last_refusal.pop((req.cluster, req.module), None)
        return self._reply(req, True, rep.term, rep.holder, rep.expires - now, rep.reason, token)

    def _release(self, req: WitnessRequest, now: float) -> WitnessReply:
        cur = self._state.get(req.cluster, req.module)
        if cur is None:
            return self._refuse(req, now, "release refused: no lease was ever granted here")
        if cur.term > req.term:
            why = f"released: term {req.term} already superseded by term {cur.term}"
            return self._reply(req, True, cur.term, cur.holder, 0.0, why)
        if cur.term < req.term or cur.holder != req.node:
            why = f"release refused: term {req.term} is not held by {req.node}"
            return self._refuse(req, now, why)
        if cur.released:
            return self._reply(req, True, cur.term, cur.holder, 0.0, "released")
        by = self._granted_by.get((req.cluster, req.module))
        if by is None or (by.node, by.term, by.token) != (req.node, req.term, req.grant):
            why = "release refused: it does not quote the newest grant of this lease"
            return self._refuse(req, now, why)
        new = arbiter.release(self._state, req.cluster, req.module, req.node, req.term, now)
        if not self._commit(new, req):
            return self._refuse(req, now, "release refused: the arbitrator cannot save it")
        logger.info(
            "witness: %s/%s: %s released term %d", req.cluster, req.module, req.node, req.term
        )
        self._granted_by.pop((req.cluster, req.module), None)
        return self._reply(req, True, cur.term, cur.holder, 0.0, "released")

    def _commit(self, new: ArbiterState, req: WitnessRequest) -> bool:
        """Adopt ``new``, saved first if its durable part changed; False if saving failed."""
        if durable_view(new) != durable_view(self._state):
            try:
                self._store.save(new)
            except AdapterError as exc:
                self._store_failures += 1
                logger.error(
                    "witness: %s/%s: not granting to %s: %s", req.cluster, req.module, req.node, exc
                )
                return False
        self._state = new
        return True

    def _refuse(self, req: WitnessRequest, now: float, why: str) -> WitnessReply:
        cur = self._state.get(req.cluster, req.module)
        where = (req.cluster, req.module)
        if self._last_refusal.get(where) != (req.node, why):
            self._last_refusal[where] = (req.node, why)
            logger.info(
                "witness: %s/%s: %s %s term %d: %s",
                req.cluster, req.module, req.node, req.op.name.lower(), req.term, why,
            )  # fmt: skip
        if cur is None:
            return self._reply(req, False, 0, "", 0.0, why)
        left = 0.0 if cur.released else cur.expires - now
        return self._reply(req, False, cur.term, cur.holder, left, why)

    def _reply(
        self,
        req: WitnessRequest,
        ok: bool,
        term: int,
        holder: str,
        left: float,
        why: str,
        token: int = 0,
    ) -> WitnessReply:
        return WitnessReply(
            req.cluster, req.nonce, ok, term, holder, _ms(left), clip_reason(why), token
        )

    def _log_drop(self, drop: Drop) -> None:
        self._drops_unlogged += 1
        now = self._clock()
        level = logging.WARNING if drop.reason is DropReason.REPLAY else logging.INFO
        if now - self._drop_log_at >= DROP_LOG_INTERVAL:
            logger.log(
                level,
                "witness: dropped %s (%s); %d dropped since the last such line",
                drop.reason, drop.detail, self._drops_unlogged,
            )  # fmt: skip
            self._drop_log_at, self._drops_unlogged = now, 0

    # --- socket --------------------------------------------------------------------------

    async def start(self, host: str, port: int) -> tuple[str, int]:
        """Listen on UDP (host, port); returns the bound address (port 0: any free port)."""
        loop = asyncio.get_running_loop()
        try:
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _Endpoint(self), local_addr=(host, port)
            )
        except OSError as exc:
            raise AdapterError(f"cannot listen on UDP {host} port {port}: {exc.strerror}") from None
        self._transport = transport
        bound = transport.get_extra_info("sockname")
        return str(bound[0]), int(bound[1])

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None


class _Endpoint(asyncio.DatagramProtocol):
    def __init__(self, server: WitnessServer) -> None:
        self._server = server
        self._transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        try:
            reply = self._server.handle(data)
        except Exception:  # the edge: one bad datagram must not stop the arbitrator
            logger.exception("witness: unexpected error handling a datagram from %s", addr)
            return
        if reply is not None and self._transport is not None:
            self._transport.sendto(reply, addr)

    def error_received(self, exc: Exception) -> None:
        logger.debug("witness: socket error: %s", exc)
