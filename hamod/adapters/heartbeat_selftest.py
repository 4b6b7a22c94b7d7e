"""A standalone heartbeat node for labs and manual checks: runs one
:class:`~hamod.adapters.heartbeat.HeartbeatTransport` and prints what it observes as JSON
lines on standard output, until SIGTERM/SIGINT or standard input closes.

    ip netns exec NS python -m hamod.adapters.heartbeat_selftest '{"cluster": "c",
      "node": "a", "key": "<64 hex>", "pulse": 0.1, "timeout": 1.0, "networks": [
      {"name": "lan", "local": ["10.1.0.1", 9012], "peers": {"b": ["10.1.0.2", 9012]}}]}'

Lines: ``{"event": "started", "epoch": ...}``, then one per observation
(``{"event": "NetworkSilent", "peer": "b", "network": "lan", "at": ...}``;
``HeartbeatReceived`` only with ``"verbose": true``), drop bursts as
``{"event": "drops", "text": ...}``, and ``{"event": "stopped", "counters": {...}, "accepted": N}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import signal
import sys
from typing import Any

from hamod.adapters.heartbeat import (
    Endpoint,
    HeartbeatConfig,
    HeartbeatNetwork,
    HeartbeatTransport,
)
from hamod.adapters.heartbeat_drops import DropBurst
from hamod.adapters.heartbeat_liveness import HeartbeatReceived, Observation
from hamod.errors import HamodError

__all__ = ["main", "parse_config"]


def parse_config(text: str) -> tuple[HeartbeatConfig, bool]:
    """The config described by the JSON ``text``, and whether to print every heartbeat."""
    raw: dict[str, Any] = json.loads(text)
    networks = tuple(
        HeartbeatNetwork(
            name=str(n["name"]),
            local=Endpoint(str(n["local"][0]), int(n["local"][1])),
            peers={str(p): Endpoint(str(a[0]), int(a[1])) for p, a in n["peers"].items()},
        )
        for n in raw["networks"]
    )
    config = HeartbeatConfig(
        cluster=str(raw["cluster"]),
        node=str(raw["node"]),
        key=bytes.fromhex(str(raw["key"])),
        networks=networks,
        pulse=float(raw.get("pulse", 0.7)),
        timeout=float(raw.get("timeout", 30.0)),
    )
    return config, bool(raw.get("verbose", False))


def _line(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


def _observed(obs: Observation, verbose: bool) -> None:
    if isinstance(obs, HeartbeatReceived):
        if verbose:
            _line("HeartbeatReceived", peer=obs.peer, network=obs.network, seq=obs.heartbeat.seq)
        return
    _line(type(obs).__name__, **dataclasses.asdict(obs))


async def _serve(config: HeartbeatConfig, verbose: bool) -> tuple[dict[str, int], int]:
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, done.set)
    loop.add_reader(sys.stdin.fileno(), lambda: None if sys.stdin.readline() else done.set())

    def drops(burst: DropBurst) -> None:
        _line("drops", text=str(burst), count=burst.count)

    transport = HeartbeatTransport(
        config, lambda: (), lambda obs: _observed(obs, verbose), on_drops=drops
    )
    async with transport:
        _line("started", node=config.node, epoch=transport.epoch)
        await done.wait()
    return transport.counters, transport.accepted


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``python -m hamod.adapters.heartbeat_selftest CONFIG_JSON``."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    logging.basicConfig(format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    try:
        config, verbose = parse_config(args[0])
        counters, accepted = asyncio.run(_serve(config, verbose))
    except (HamodError, ValueError, KeyError, TypeError) as exc:
        print(f"heartbeat selftest: {exc}", file=sys.stderr)
        return 2
    with contextlib.suppress(BrokenPipeError):
        _line("stopped", counters=counters, accepted=accepted)
    return 0


if __name__ == "__main__":
    sys.exit(main())
