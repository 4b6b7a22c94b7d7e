"""The outage probe and the failover benchmark against a real namespace lab.

- The probe sees a hand-made VIP move (address deleted on n1, added on n2, gratuitous
  ARP from n2): a short outage and the answering node changing from n1 to n2, never both.
- The benchmark's smoke run (1 power-off at tight timers) measures keepalived's and
  hamod's outage in the same run and reports their ratio.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from benchmarks.failover.harness import ProbeSession, Service
from benchmarks.failover.run import main
from hamod.adapters.announce import announce_blocking
from hamod.testing.lab import Lab, lab_available
from hamod.testing.outage import analyze

pytestmark = pytest.mark.lab


def _ip(lab: Lab, node: str, *args: str) -> None:
    subprocess.run(["ip", "-n", lab.topo.netns(node), *args], check=True)


def test_probe_sees_a_manual_vip_move(lab: Lab) -> None:
    vip = lab.free_address(3)
    service = Service(lab, port=7171)
    service.start_all()
    _ip(lab, "n1", "addr", "add", f"{vip}/24", "dev", "eth0")
    announce_blocking(vip, "eth0", netns=lab.topo.netns("n1"), count=1)
    probe = ProbeSession(lab, f"{vip}:7171", timeout=0.05, interval=0.01)
    try:
        assert probe.wait_for(lambda s: sum(x.ok for x in s) >= 20, 10.0), probe.samples[-3:]
        moved = time.monotonic()
        _ip(lab, "n1", "addr", "del", f"{vip}/24", "dev", "eth0")
        _ip(lab, "n2", "addr", "add", f"{vip}/24", "dev", "eth0")
        announce_blocking(vip, "eth0", netns=lab.topo.netns("n2"), count=2, interval=0.05)
        assert probe.wait_for(lambda s: sum(x.ok and x.node == "n2" for x in s) >= 20, 10.0), (
            probe.samples[-3:]
        )
        samples = probe.stop()
    finally:
        probe.stop()
        service.stop()
        _ip(lab, "n2", "addr", "flush", "to", f"{vip}/32")
    assert lab.vip_owner(vip) is None
    result = analyze(samples, window=0.5)
    assert [(h.old, h.new) for h in result.handovers] == [("n1", "n2")]
    assert result.recovered and result.both_answered == ()
    assert result.outage < 1.0, result.to_dict()
    # before the move n1 answers: on a loaded 2-core machine a 50 ms request may time out
    # now and then (the probe's timeout is its resolution): only a few
    before = [s.ok for s in samples if s.mono < moved]
    assert sum(before) >= 20 and before.count(False) <= max(2, len(before) // 20), before


@pytest.mark.skipif(lab_available() is not None, reason=f"lab unavailable: {lab_available()}")
def test_benchmark_smoke_measures_keepalived_and_hamod(tmp_path: Path) -> None:
    code = main(["--smoke", "--quiet", "--out-dir", str(tmp_path), "--seed", "1"])
    data = json.loads((tmp_path / "failover.json").read_text())
    by = {(s["target"], s["timers"]): s for s in data["series"]}
    keepalived = by["keepalived", "tight"]
    assert code == 0, keepalived["reason"]
    assert keepalived["status"] == "ok" and len(keepalived["runs"]) == 1
    (run,) = keepalived["runs"]
    assert run["recovered"] and run["took_over"] not in (None, run["killed"])
    assert 0.0 < run["outage"] < 3.0, run
    hamod = by["hamod", "tight"]
    assert hamod["status"] == "ok" and len(hamod["runs"]) == 1, hamod.get("reason")
    (run,) = hamod["runs"]
    assert run["recovered"] and run["took_over"] not in (None, run["killed"])
    assert 0.0 < run["outage"] < 2.0, run  # pulse 100 ms / timeout 1 s
    table = (tmp_path / "failover.md").read_text()
    assert table.count("| keepalived | tight |") == 1 and table.count("| hamod | tight |") == 1
    assert (tmp_path / "failover.svg").exists()
    netns = Path("/run/netns")
    prefix = f"hamodlab.fo{os.getpid()}-"
    assert not [n.name for n in netns.iterdir() if n.name.startswith(prefix)], "lab left over"
