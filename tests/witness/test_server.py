"""The arbitrator over real UDP sockets on 127.0.0.1 with a fake clock: terms, renewals,
refusals, expiry, release, independent clusters, restart on the same state file,
durability before the reply, timeouts."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import pytest

from hamod.core.arbiter import ArbiterState
from hamod.errors import AdapterError
from hamod.witness.client import WitnessClient
from hamod.witness.server import WitnessServer
from hamod.witness.state import FileGrantStore

from .conftest import KEYS, PROD_KEY, FakeClock, serving

T = 2.0  # timeout of one exchange (seconds); real time, replies come in milliseconds
LEASE = 10.0


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 30))


def test_first_term_granted_and_renewed_by_its_holder(tmp_path: Path) -> None:
    async def scenario() -> None:
        clock = FakeClock()
        async with serving(tmp_path / "w.json", clock) as s:
            first = await s.client.request_lease("prod", "pg", "n1", 1, LEASE, T)
            assert first is not None and first.granted
            assert (first.term, first.holder, first.reason) == (1, "n1", "first term")
            assert first.remaining_ms == 10_000
            assert first.lease_end == first.sent_at + LEASE
            clock.advance(4)
            again = await s.client.request_lease("prod", "pg", "n1", 1, LEASE, T)
            assert again is not None and again.granted and again.reason == "renewed"
            assert again.lease_end == clock.now + LEASE

    run(scenario())


def test_other_node_refused_while_live_then_granted_next_term(tmp_path: Path) -> None:
    async def scenario() -> None:
        clock = FakeClock()
        async with serving(tmp_path / "w.json", clock) as s:
            assert (await s.client.request_lease("prod", "pg", "n1", 1, LEASE, T)).granted  # type: ignore[union-attr]
            clock.advance(9.9)
            refused = await s.client.request_lease("prod", "pg", "n2", 2, LEASE, T)
            assert refused is not None and not refused.granted
            assert (refused.term, refused.holder) == (1, "n1")
            assert refused.remaining_ms == 100
            assert "still live" in refused.reason
            stale = await s.client.request_lease("prod", "pg", "n2", 1, LEASE, T)
            assert stale is not None and not stale.granted and "<= current term" in stale.reason
            clock.advance(0.1)
            taken = await s.client.request_lease("prod", "pg", "n2", 2, LEASE, T)
            assert taken is not None and taken.granted and (taken.term, taken.holder) == (2, "n2")
            late = await s.client.request_lease("prod", "pg", "n1", 1, LEASE, T)
            assert late is not None and not late.granted and late.holder == "n2"

    run(scenario())


def test_release_lets_the_other_node_in_at_once(tmp_path: Path) -> None:
    async def scenario() -> None:
        clock = FakeClock()
        async with serving(tmp_path / "w.json", clock) as s:
            assert (await s.client.request_lease("prod", "pg", "n1", 1, LEASE, T)).granted  # type: ignore[union-attr]
            gone = await s.client.release("prod", "pg", "n1", 1, T)
            assert gone is not None and gone.granted and gone.reason == "released"
            taken = await s.client.request_lease("prod", "pg", "n2", 2, LEASE, T)
            assert taken is not None and taken.granted
            again = await s.client.release("prod", "pg", "n1", 1, T)
            assert again is not None and again.granted and "superseded" in again.reason
            foreign = await s.client.release("prod", "pg", "n1", 2, T)
            assert foreign is not None and not foreign.granted
            still = await s.client.request_lease("prod", "pg", "n2", 2, LEASE, T)
            assert still is not None and still.granted

    run(scenario())


def test_two_clusters_with_the_same_module_are_independent(tmp_path: Path) -> None:
    async def scenario() -> None:
        clock = FakeClock()
        async with serving(tmp_path / "w.json", clock) as s:
            a, b = await asyncio.gather(
                s.client.request_lease("prod", "pg", "n1", 1, LEASE, T),
                s.client.request_lease("test", "pg", "n2", 1, LEASE, T),
            )
            assert a is not None and a.granted and a.holder == "n1"
            assert b is not None and b.granted and b.holder == "n2"
            rows = {(r.cluster, r.module): r for r in s.server.status()}
            assert rows["prod", "pg"].holder == "n1" and rows["test", "pg"].holder == "n2"
            assert rows["prod", "pg"].remaining_ms == 10_000
            doc = json.loads(json.dumps([r.__dict__ for r in s.server.status()]))
            assert {d["cluster"] for d in doc} == {"prod", "test"}

    run(scenario())


def test_restart_keeps_grants_for_one_more_lease_length(tmp_path: Path) -> None:
    state = tmp_path / "w.json"

    async def scenario() -> None:
        before = FakeClock(5000.0)
        async with serving(state, before) as s:
            assert (await s.client.request_lease("prod", "pg", "n1", 1, LEASE, T)).granted  # type: ignore[union-attr]
        after = FakeClock(3.0)  # a reboot: the monotonic clock starts again near zero
        async with serving(state, after) as s:
            refused = await s.client.request_lease("prod", "pg", "n2", 2, LEASE, T)
            assert refused is not None and not refused.granted and refused.holder == "n1"
            assert refused.remaining_ms == 10_000
            renewed = await s.client.request_lease("prod", "pg", "n1", 1, LEASE, T)
            assert renewed is not None and renewed.granted and renewed.reason == "renewed"
        after = FakeClock(3.0)
        async with serving(state, after) as s:  # restart again; n1 stops renewing
            after.advance(LEASE - 0.001)
            refused = await s.client.request_lease("prod", "pg", "n2", 2, LEASE, T)
            assert refused is not None and not refused.granted
            after.advance(0.001)
            taken = await s.client.request_lease("prod", "pg", "n2", 2, LEASE, T)
            assert taken is not None and taken.granted

    run(scenario())


def test_a_released_lease_stays_released_after_restart(tmp_path: Path) -> None:
    state = tmp_path / "w.json"

    async def scenario() -> None:
        async with serving(state, FakeClock()) as s:
            assert (await s.client.request_lease("prod", "pg", "n1", 1, LEASE, T)).granted  # type: ignore[union-attr]
            assert (await s.client.release("prod", "pg", "n1", 1, T)).granted  # type: ignore[union-attr]
        async with serving(state, FakeClock(0.0)) as s:
            taken = await s.client.request_lease("prod", "pg", "n2", 2, LEASE, T)
            assert taken is not None and taken.granted

    run(scenario())


class FailingStore:
    """Loads nothing; every save fails as a full disk would."""

    def __init__(self) -> None:
        self.saves = 0

    def load(self) -> ArbiterState | None:
        return None

    def save(self, st: ArbiterState) -> None:
        self.saves += 1
        raise AdapterError("status store w.json: write failed: No space left on device")


def test_no_grant_is_answered_unless_it_was_saved(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        store = FailingStore()
        async with serving(store, FakeClock()) as s:
            got = await s.client.request_lease("prod", "pg", "n1", 1, LEASE, T)
            assert got is not None and not got.granted and "cannot save" in got.reason
            assert store.saves == 1 and s.server.state == ArbiterState()
            assert s.server.counters["store_failures"] == 1

    with caplog.at_level(logging.ERROR, "hamod.witness"):
        run(scenario())
    assert "No space left on device" in caplog.text


def test_a_granted_reply_means_the_grant_is_on_disk(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with serving(tmp_path / "w.json", FakeClock()) as s:
            got = await s.client.request_lease("prod", "pg", "n1", 7, LEASE, T)
            assert got is not None and got.granted
            on_disk = FileGrantStore(tmp_path / "w.json").load()
            assert on_disk is not None
            rec = on_disk.get("prod", "pg")
            assert rec is not None and (rec.term, rec.holder, rec.lease) == (7, "n1", LEASE)

    run(scenario())


def test_renewals_do_not_rewrite_the_state_file(tmp_path: Path) -> None:
    class Counting(FileGrantStore):
        saves = 0

        def save(self, st: ArbiterState) -> None:
            Counting.saves += 1
            super().save(st)

    async def scenario() -> None:
        clock = FakeClock()
        async with serving(Counting(tmp_path / "w.json"), clock) as s:
            for _ in range(5):
                assert (await s.client.request_lease("prod", "pg", "n1", 1, LEASE, T)).granted  # type: ignore[union-attr]
                clock.advance(1)
            longer = await s.client.request_lease("prod", "pg", "n1", 1, 2 * LEASE, T)
            assert longer is not None and longer.granted
        assert Counting.saves == 2  # the first grant, then the longer lease

    run(scenario())


def test_unknown_cluster_gets_no_answer_and_client_times_out(tmp_path: Path) -> None:
    async def scenario() -> None:
        keys = {"shop": PROD_KEY}
        async with serving(tmp_path / "w.json", FakeClock(), client_keys=keys) as s:
            started = time.monotonic()
            assert await s.client.request_lease("shop", "pg", "n1", 1, LEASE, 0.3) is None
            assert 0.25 <= time.monotonic() - started < 2
            assert s.server.counters["foreign_cluster"] >= 2  # it retried within the timeout

    run(scenario())


def test_client_returns_none_when_the_server_is_down() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    async def scenario() -> None:
        async with WitnessClient("127.0.0.1", port, KEYS, retry_interval=0.05) as client:
            started = time.monotonic()
            assert await client.request_lease("prod", "pg", "n1", 1, LEASE, 0.4) is None
            assert await client.release("prod", "pg", "n1", 1, 0.1) is None
            assert 0.45 <= time.monotonic() - started < 3

    run(scenario())


def test_lease_length_out_of_range_is_refused(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with serving(tmp_path / "w.json", FakeClock()) as s:
            got = await s.client.request_lease("prod", "pg", "n1", 1, 7200.0, T)
            assert got is not None and not got.granted and "outside" in got.reason

    run(scenario())


def test_server_listens_on_ipv6_loopback(tmp_path: Path) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 in this Python")

    async def scenario() -> None:
        server = WitnessServer(KEYS, FileGrantStore(tmp_path / "w.json"), clock=FakeClock())
        try:
            host, port = await server.start("::1", 0)
        except AdapterError as exc:
            pytest.skip(f"cannot bind ::1: {exc}")
        async with WitnessClient(host, port, KEYS) as client:
            got = await client.request_lease("prod", "pg", "n1", 1, LEASE, T)
            assert got is not None and got.granted
        server.close()

    run(scenario())
