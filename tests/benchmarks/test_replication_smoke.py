"""The replication benchmark's smoke run on the namespace lab (issue #4's benchmark at CI
size): the plain directory, the topology limit and hamod ``sync``/``per-write`` driven by
the same fio jobs and metadata program, then the three resync outages and the memory
phase. Checks that every figure is there and sane, that the mirror held, that both
copies are equal after the resyncs, and that no lab is left over. The goals of the issue
are reported, not asserted (the full run measures them: docs/benchmarks.md)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from benchmarks.replication.run import main
from benchmarks.replication.workloads import JOBS
from hamod.testing.lab import lab_available

pytestmark = pytest.mark.lab


@pytest.mark.skipif(lab_available() is not None, reason=f"lab unavailable: {lab_available()}")
def test_benchmark_smoke_measures_baseline_limit_and_hamod(tmp_path: Path) -> None:
    code = main(["--smoke", "--quiet", "--out-dir", str(tmp_path)])
    data = json.loads((tmp_path / "replication.json").read_text())
    targets = data["targets"]
    hamod = targets["hamod sync/per-write"]
    assert code == 0, {k: v["reason"] for k, v in targets.items()}
    assert set(targets) == {"baseline", "limit", "hamod sync/per-write"}
    for name, res in targets.items():
        assert res["status"] == "ok", (name, res["reason"])
        for job in JOBS:
            w = res["workloads"][job]
            assert w["iops"] > 0 and w["mbps"] > 0 and w["p99_us"] >= w["p50_us"] > 0, (name, w)
        for job in ("meta_create", "meta_unlink"):
            assert res["workloads"][job]["files_per_s"] > 0, (name, job)
    assert hamod["workloads"]["w8k_fdatasync_1job"]["dp_cpu_primary_pct"] > 0
    for job in JOBS:  # ratios to both references, computed in the same run
        r = data["ratios"]["hamod sync/per-write"][job]
        assert r["baseline"] is not None and r["limit"] is not None
        assert data["ratios"]["baseline"][job]["baseline"] == 1.0
    resync = data["resync"]
    assert [c["case"] for c in resync["cases"]] == [
        "secondary powered off",
        "primary crash",
        "secondary stopped",
    ]
    for case in resync["cases"]:
        assert "error" not in case, case
        assert case["seconds"] > 0 and case["sent_bytes"] >= 0 and case["rounds"] >= 1, case
        assert case["primary_io"] is not None, case
    assert resync["verify"] == "equal"
    mem = data["memory"]
    assert mem["looked_up"] == mem["files"] == 10_000
    assert mem["rss_after_mib"] > 0 and mem["mirror"] == "in sync", mem
    assert {g["target"] for g in data["goals"]} == {"hamod sync/per-write"}
    md = (tmp_path / "replication.md").read_text()
    assert md.count("| 8 KiB write+fdatasync, 1 job |") == 3
    assert "python -m benchmarks.replication --smoke" in md
    assert "<svg" in (tmp_path / "replication.svg").read_text()
    netns = Path("/run/netns")
    prefix = f"hamodlab.rb{os.getpid() % 100000}-"
    assert not [n.name for n in netns.iterdir() if n.name.startswith(prefix)], "lab left over"
