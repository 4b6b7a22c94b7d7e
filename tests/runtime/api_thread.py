"""A real API (``create_app(FakeBackend())``) on a tmp Unix socket, served from a thread
with its own event loop, so CLI commands (which run their own loop) can call it."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hamod.api.app import create_app
from hamod.api.serve import ApiServer, start_unix
from hamod.testing.fake_backend import FakeBackend


@contextmanager
def served(backend: FakeBackend, path: Path) -> Iterator[FakeBackend]:
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    box: list[ApiServer] = []

    def run() -> None:
        asyncio.set_event_loop(loop)

        async def start() -> None:
            box.append(await start_unix(create_app(backend), path))
            ready.set()

        loop.run_until_complete(start())
        loop.run_forever()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    assert ready.wait(10)
    try:
        yield backend
    finally:
        asyncio.run_coroutine_threadsafe(box[0].stop(grace=0.5), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        t.join(10)
