"""Shared helpers of the witness tests: a fake monotonic clock, keys, a served arbitrator."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from hamod.witness.client import WitnessClient
from hamod.witness.server import WitnessServer
from hamod.witness.state import FileGrantStore, GrantStore

PROD_KEY = bytes(range(32))
TEST_KEY = bytes(range(100, 132))
KEYS = {"prod": PROD_KEY, "test": TEST_KEY}


class FakeClock:
    """A monotonic clock that moves only when told."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass(frozen=True)
class Served:
    server: WitnessServer
    client: WitnessClient
    port: int


@contextlib.asynccontextmanager
async def serving(
    state: Path | GrantStore, clock: FakeClock, *, client_keys: dict[str, bytes] | None = None
) -> AsyncIterator[Served]:
    """An arbitrator on 127.0.0.1 (a free port) and a client for it, both on ``clock``."""
    store = FileGrantStore(state) if isinstance(state, Path) else state
    server = WitnessServer(KEYS, store, clock=clock)
    _, port = await server.start("127.0.0.1", 0)
    client = WitnessClient(
        "127.0.0.1", port, KEYS if client_keys is None else client_keys, clock=clock,
        retry_interval=0.05,
    )  # fmt: skip
    try:
        yield Served(server, client, port)
    finally:
        client.close()
        server.close()
