"""The checker benchmark's smoke run on the namespace lab (issue #5's benchmark at CI
size): one fault per checker type (process, tcp, http, custom, ping, module, vip,
interface), each detected, acted on and done, in order, within bounds derived from the
checkers' timers; the JSON, markdown and SVG written; no lab left over."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from benchmarks.checkers.run import INTERVAL, TIMEOUT, TYPES, main
from hamod.testing.lab import lab_available

pytestmark = pytest.mark.lab

#: Scheduling slack on 2 busy cores, on top of the bounds below.
SLACK = 1.5


@pytest.mark.skipif(lab_available() is not None, reason=f"lab unavailable: {lab_available()}")
def test_benchmark_smoke_measures_every_checker_type(tmp_path: Path) -> None:
    code = main(["--smoke", "--quiet", "--out-dir", str(tmp_path), "--seed", "1"])
    data = json.loads((tmp_path / "checkers.json").read_text())
    series = {s["type"]: s for s in data["series"]}
    assert code == 0, {t: (s["error"], [r["error"] for r in s["runs"]]) for t, s in series.items()}
    assert list(series) == list(TYPES)
    for type_, s in series.items():
        assert s["status"] == "ok" and len(s["runs"]) == 1, (type_, s)
        (run,) = s["runs"]
        assert run["error"] is None, (type_, run)
        # detected within one probe period and its timeout (+ the ping's own timeout)
        assert 0.0 <= run["detected"] <= INTERVAL + TIMEOUT + SLACK, (type_, run)
        assert run["detected"] <= run["action"] <= run["detected"] + SLACK, (type_, run)
        assert run["action"] < run["done"] <= run["action"] + 3 * SLACK, (type_, run)
    assert series["vip"]["done_is"] == series["interface"]["done_is"] == "VIP added on the peer"
    assert data["settings"]["runs"] == 1 and data["settings"]["seed"] == 1
    md = (tmp_path / "checkers.md").read_text()
    assert all(f"| {t} |" in md for t in TYPES), md
    assert "python -m benchmarks.checkers --smoke" in md
    assert "<svg" in (tmp_path / "checkers.svg").read_text()
    netns = Path("/run/netns")
    prefix = f"hamodlab.ck{os.getpid() % 100000}."
    assert not [n.name for n in netns.iterdir() if n.name.startswith(prefix)], "lab left over"
