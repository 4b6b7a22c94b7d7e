"""The replication benchmark's pieces that need no lab: fio's JSON, sizes, ratios to the
baseline and the topology limit, goals, and the reports (table, markdown, SVG)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from benchmarks.replication import report
from benchmarks.replication.run import _parser, _sizes, main
from benchmarks.replication.workloads import PRESETS, fio_args, parse_fio

pytestmark = pytest.mark.unit

FIO = {
    "jobs": [
        {
            "write": {
                "iops": 1000.0,
                "bw_bytes": 8_192_000,
                "clat_ns": {"percentile": {"50.000000": 5000, "99.000000": 20000}},
            },
            "sync": {"lat_ns": {"percentile": {"50.000000": 70000, "99.000000": 200000}}},
        }
    ]
}


def w(iops: float, mbps: float = 8.0) -> dict[str, Any]:
    return {"iops": iops, "mbps": mbps, "p50_us": 5.0, "p99_us": 20.0, "sync_p50_us": 70.0,
            "sync_p99_us": 200.0}  # fmt: skip


def results() -> dict[str, Any]:
    def target(scale: float, status: str = "ok") -> dict[str, Any]:
        jobs = {
            "w8k_fdatasync_1job": w(1000 * scale),
            "w8k_fdatasync_4jobs": w(4000 * scale),
            "seq1m_fdatasync": w(100 * scale, 1000 * scale),
            "w8k_buffered": w(100000 * scale),
            "meta_create": {"files_per_s": 2000 * scale},
            "meta_unlink": {"files_per_s": 50000 * scale},
        }
        return {"status": status, "reason": "", "workloads": jobs}

    return {
        "baseline": target(1.0),
        "limit": target(0.5),
        "glusterfs": {"status": "not measured", "reason": "GlusterFS is not installed"},
        "hamod sync/on-sync": target(0.4),
        "hamod sync/per-write": target(0.9),
    }


EXTRA = {
    "resync": {
        "dataset_mib": 256,
        "changed_mib": 8,
        "verify": "equal",
        "cases": [
            {"case": "secondary stopped", "primary": "n1", "seconds": 3.0, "resync_s": 2.0,
             "rounds": 2, "sent_bytes": 8 << 20, "sent_over_changed": 1.0,
             "primary_io": {"rchar": 8 << 20, "read_bytes": 0, "wchar": 9 << 20},
             "peer_io": {"rchar": 9 << 20, "wchar": 8 << 20}},
            {"case": "secondary powered off", "primary": "n1", "error": "n2 not in sync"},
            {"case": "primary crash", "not_run": "an earlier case failed"},
        ],
    },
    "memory": {"files": 10000, "create_s": 1.0, "first_start_s": 9.0, "looked_up": 10000,
               "walk_s": 0.5, "rss_before_mib": 70.0, "rss_after_mib": 73.0, "hwm_mib": 73.0,
               "peer_rss_before_mib": 69.0, "peer_rss_after_mib": 69.0, "peer_hwm_mib": 69.0,
               "empty_rss_mib": 68.0, "bytes_per_file": 512.0, "projected_1m_mib": 556.0,
               "mirror": "in sync"},
}  # fmt: skip


def data() -> dict[str, Any]:
    info = {
        "date": "d",
        "kernel": "k",
        "cpu": "c",
        "cpus": 2,
        "python": "3.11",
        "fio": "fio-3",
        "load": "1",
        "command": "python -m benchmarks.replication --smoke",
        "seconds": 9,
    }
    return report.assemble(results(), dict(EXTRA), PRESETS["smoke"], info)


def test_parse_fio_reports_rates_and_write_and_sync_latencies() -> None:
    got = parse_fio(json.dumps(FIO))
    assert got == {"iops": 1000.0, "mbps": 8.19, "p50_us": 5.0, "p99_us": 20.0,
                   "sync_p50_us": 70.0, "sync_p99_us": 200.0}  # fmt: skip
    no_sync = {"jobs": [{**FIO["jobs"][0], "sync": {"lat_ns": {}}}]}
    assert parse_fio(json.dumps(no_sync))["sync_p50_us"] == 0


def test_fio_args_are_the_same_job_for_every_target_but_the_directory() -> None:
    a = fio_args("w8k_fdatasync_4jobs", "/srv/plain", PRESETS["full"])
    b = fio_args("w8k_fdatasync_4jobs", "/srv/data", PRESETS["full"])
    assert [x for x in a if not x.startswith("--directory")] == [
        x for x in b if not x.startswith("--directory")
    ]
    assert {"--fdatasync=1", "--numjobs=4", "--bs=8k", "--runtime=8", "--size=64m"} <= set(a)


def test_sizes_from_presets_and_overrides() -> None:
    args = _parser().parse_args(["--smoke", "--files", "500", "--runtime", "2"])
    s = _sizes(args)
    assert (s.name, s.memory_files, s.runtime, s.runs) == ("smoke", 500, 2, 1)
    full = _sizes(_parser().parse_args([]))
    assert (full.dataset_mib, full.changed_mib, full.memory_files) == (4096, 64, 1_000_000)
    assert full.meta_files == 10_000


def test_ratios_to_baseline_and_limit_and_goals() -> None:
    d = data()
    r = d["ratios"]["hamod sync/per-write"]["w8k_fdatasync_1job"]
    assert r == {"baseline": 0.9, "limit": 1.8}
    assert "glusterfs" not in d["ratios"]
    goals = {(g["goal"], g["target"]): g for g in d["goals"]}
    one = goals["8 KiB write+fdatasync, 1 job ≥ 0.8× native", "hamod sync/per-write"]
    assert one["met"] is True and one["measured"] == "0.90×"
    on_sync = goals["8 KiB write+fdatasync, 1 job ≥ 0.8× native", "hamod sync/on-sync"]
    assert on_sync["met"] is False
    # the buffered goal applies to on-sync only
    buffered = [g for g in d["goals"] if g["goal"].startswith("8 KiB buffered")]
    assert [g["target"] for g in buffered] == ["hamod sync/on-sync"]
    resync = [g for g in d["goals"] if g["goal"].startswith("resync")]
    assert [g["met"] for g in resync] == [True, False, None]
    assert resync[1]["measured"] == "resync did not complete"
    mem = [g for g in d["goals"] if g["goal"].startswith("data path")]
    assert mem[0]["met"] is False and "projected from 10000 files" in mem[0]["measured"]


def test_reports_name_every_target_and_what_was_not_measured() -> None:
    d = data()
    text = report.table(d)
    md = report.markdown(d)
    for out in (text, md):
        assert "hamod sync/on-sync" in out and "limit" in out
        assert "glusterfs: not measured: GlusterFS is not installed" in out
        assert "FAILED: n2 not in sync" in out and "not run: an earlier case failed" in out
        assert "556.0 MiB for 1 million" in out
    assert md.count("| 8 KiB write+fdatasync, 1 job |") == 4
    assert "`python -m benchmarks.replication --smoke`" in md
    ET.fromstring(report.svg(d))  # well-formed
    json.loads(report.to_json(d))


def test_from_json_rewrites_the_reports_without_measuring(tmp_path: Path) -> None:
    saved = data()
    saved["resync"]["cases"][1] = {  # the format of an earlier version
        "case": "secondary powered off",
        "error": "n2 not in sync (the resync failed 2 times): SECOND; n1: 2026-11-26 x\ny",
    }
    saved["resync"]["cases"][2] = {"case": "primary crash", "error": "not run: earlier"}
    (tmp_path / "replication.json").write_text(json.dumps(saved))
    assert main(["--from-json", str(tmp_path / "replication.json")]) == 0
    again = json.loads((tmp_path / "replication.json").read_text())
    cases = again["resync"]["cases"]
    assert cases[1]["error"].endswith("SECOND") and cases[1]["log"] == ["2026-11-26 x", "y"]
    assert cases[2] == {"case": "primary crash", "not_run": "earlier"}
    assert again["ratios"] == saved["ratios"]
    assert (tmp_path / "replication.md").exists() and (tmp_path / "replication.svg").exists()
