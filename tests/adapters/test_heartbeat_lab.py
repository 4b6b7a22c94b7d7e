"""(lab) Heartbeats between two network namespaces joined by two veth pairs (two
heartbeat networks), one transport per namespace in its own process
(``python -m hamod.adapters.heartbeat_selftest`` under ``ip netns exec``), observations
read as JSON lines. An address that appears late is bound when it comes; one link down
degrades without losing the peer; both links down lose it; links back find it again."""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

PREFIX = "hmhb-"
PULSE, TIMEOUT = 0.1, 1.0
KEY = "ab" * 32
NETS = {"net1": "10.77.1", "net2": "10.77.2"}
ROOT = Path(__file__).resolve().parents[2]


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


def _unavailable() -> str | None:
    if os.geteuid() != 0:
        return f"network namespaces need root (uid {os.geteuid()})"
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is not installed"
    return None


def _sweep_stale() -> None:
    """Delete hmhb-<pid>-* namespaces whose creating process is gone."""
    netns = Path("/run/netns")
    for entry in sorted(netns.iterdir()) if netns.is_dir() else []:
        match = re.match(rf"{PREFIX}(\d+)-", entry.name)
        if match and not Path(f"/proc/{match.group(1)}").exists():
            subprocess.run(["ip", "netns", "delete", entry.name], check=False, timeout=30)


@dataclass
class Proc:
    """One selftest process and the JSON lines it printed."""

    popen: subprocess.Popen[str]
    lines: queue.Queue[dict[str, Any]] = field(default_factory=queue.Queue)
    seen: list[dict[str, Any]] = field(default_factory=list)

    def pump(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self.lines.put(json.loads(line))

    def drain(self) -> list[dict[str, Any]]:
        while not self.lines.empty():
            self.seen.append(self.lines.get_nowait())
        return self.seen

    def wait(self, n: int, event: str, within: float, **match: str) -> None:
        """Wait until ``event`` (with ``match``) was printed ``n`` times."""
        end = time.monotonic() + within
        while self.count(event, **match) != n:
            if time.monotonic() > end or self.popen.poll() is not None:
                raise AssertionError(f"{event} {match} x{n} not seen within {within}s: {self.seen}")
            time.sleep(0.02)

    def count(self, event: str, **match: str) -> int:
        events = self.drain()
        return sum(
            e["event"] == event and all(e.get(k) == v for k, v in match.items()) for e in events
        )


@pytest.fixture
def namespaces() -> Iterator[tuple[str, str]]:
    reason = _unavailable()
    if reason:
        pytest.skip(reason)
    _sweep_stale()
    stem = f"{PREFIX}{os.getpid()}-"
    created: list[str] = []
    try:
        for role in ("a", "b"):
            _ip("netns", "add", stem + role)
            created.append(stem + role)
            _ip("-n", stem + role, "link", "set", "lo", "up")
        a, b = created
        for i, (net, prefix) in enumerate(NETS.items(), start=1):
            _ip("link", "add", f"hb{i}", "netns", a, "type", "veth", "peer", "name", f"hb{i}",
                "netns", b)  # fmt: skip
            for ns, host in ((a, 1), (b, 2)):
                _ip("-n", ns, "link", "set", f"hb{i}", "up")
                if not (ns == a and net == "net1"):  # a's net1 address comes later
                    _ip("-n", ns, "addr", "add", f"{prefix}.{host}/24", "dev", f"hb{i}")
        yield a, b
    finally:
        for name in created:  # deleting a namespace deletes its veth ends
            subprocess.run(["ip", "netns", "delete", name], check=False, timeout=30)


def _config(me: str, peer: str, host: int, peer_host: int) -> str:
    networks = [
        {
            "name": net,
            "local": [f"{prefix}.{host}", 9012],
            "peers": {peer: [f"{prefix}.{peer_host}", 9012]},
        }
        for net, prefix in NETS.items()
    ]
    doc = {"cluster": "lab", "node": me, "key": KEY, "pulse": PULSE, "timeout": TIMEOUT}
    return json.dumps({**doc, "networks": networks})


def _spawn(ns: str, config: str, stderr: Path) -> Proc:
    argv = ["ip", "netns", "exec", ns, sys.executable, "-m", "hamod.adapters.heartbeat_selftest"]
    with stderr.open("w") as err:
        popen = subprocess.Popen(
            [*argv, config],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            cwd=ROOT,
        )
    proc = Proc(popen)
    threading.Thread(target=proc.pump, daemon=True).start()
    return proc


@pytest.mark.lab
def test_one_link_down_degrades_both_down_loses(
    namespaces: tuple[str, str], tmp_path: Path
) -> None:
    ns_a, ns_b = namespaces
    procs: list[Proc] = []
    try:
        procs.append(_spawn(ns_a, _config("a", "b", 1, 2), tmp_path / "a.err"))
        procs.append(_spawn(ns_b, _config("b", "a", 2, 1), tmp_path / "b.err"))
        a, b = procs
        for me, peer in ((a, "b"), (b, "a")):
            me.wait(1, "PeerFound", 10, peer=peer)
        # a's net1 address was absent at start: silent, then bound once it appears.
        b.wait(1, "NetworkSilent", 3 * TIMEOUT, peer="a", network="net1")
        _ip("-n", ns_a, "addr", "add", f"{NETS['net1']}.1/24", "dev", "hb1")
        for me, peer in ((a, "b"), (b, "a")):
            me.wait(1, "NetworkAlive", 3 * TIMEOUT, peer=peer, network="net1")

        _ip("-n", ns_a, "link", "set", "hb1", "down")
        for me, peer in ((a, "b"), (b, "a")):
            me.wait(2, "NetworkSilent", 3 * TIMEOUT, peer=peer, network="net1")
        time.sleep(TIMEOUT + 2 * PULSE)
        for me in (a, b):  # degraded: net1 silent, net2 alive throughout, peer not lost
            assert me.count("PeerLost") == 0, "one link down lost the peer"
            assert me.count("NetworkSilent", network="net2") == 0

        _ip("-n", ns_a, "link", "set", "hb2", "down")
        for me in (a, b):
            me.wait(1, "PeerLost", 3 * TIMEOUT)

        for link in ("hb1", "hb2"):
            _ip("-n", ns_a, "link", "set", link, "up")
        for me in (a, b):
            me.wait(2, "PeerFound", 5 * TIMEOUT)
        assert a.count("PeerFound") == 2 and a.count("PeerLost") == 1
    finally:  # stop the processes before the fixture deletes their namespaces
        for proc in procs:
            assert proc.popen.stdin is not None
            proc.popen.stdin.close()
        for proc in procs:
            try:
                proc.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.popen.kill()
                proc.popen.wait()
    for proc, name in zip(procs, "ab", strict=True):
        log = (tmp_path / f"{name}.err").read_text()
        print(f"--- {name} stderr ---\n{log}")
        assert proc.popen.returncode == 0, log
        stopped = [e for e in proc.drain() if e["event"] == "stopped"]
        assert stopped and stopped[0]["accepted"] > 0
