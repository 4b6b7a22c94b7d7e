"""fio on a native directory vs the hamod data-path mount (LocalOnly shipper).

``python -m benchmarks.datapath [--smoke] [--profile]``: the same fio jobs on both
targets (1 MiB sequential write + fdatasync; 8 KiB write + fdatasync with 1 and 4 jobs;
8 KiB buffered writes), median of 3 runs (``--smoke``: 1 short run), ratios to native.
Results go to ``benchmarks/datapath/results/`` (JSON + markdown). ``--profile`` runs
the FUSE server under cProfile during one extra pass and writes the top functions.
fio runs under ``nice -n 10`` (the machine is shared).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hamod.datapath.mount import unmount, wait_mounted

RESULTS = Path(__file__).parent / "results"
JOBS: dict[str, list[str]] = {
    "seq1m_fdatasync": ["--rw=write", "--bs=1m", "--size=512m", "--fdatasync=1"],
    "w8k_fdatasync_1job": ["--rw=randwrite", "--bs=8k", "--size=64m", "--fdatasync=1"],
    "w8k_fdatasync_4jobs": [
        "--rw=randwrite",
        "--bs=8k",
        "--size=64m",
        "--fdatasync=1",
        "--numjobs=4",
        "--group_reporting",
    ],
    "w8k_buffered": ["--rw=randwrite", "--bs=8k", "--size=256m"],
}


def fio(job: str, directory: str, runtime: int) -> dict[str, float]:
    out = subprocess.run(
        [
            "nice",
            "-n",
            "10",
            "fio",
            f"--name={job}",
            f"--directory={directory}",
            "--ioengine=psync",
            "--time_based",
            f"--runtime={runtime}",
            "--ramp_time=1",
            "--output-format=json",
            *JOBS[job],
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=runtime * 10 + 120,
    ).stdout
    w = json.loads(out)["jobs"][0]["write"]
    pct = w["clat_ns"].get("percentile", {})
    return {
        "iops": round(w["iops"], 1),
        "mbps": round(w["bw_bytes"] / 1e6, 1),
        "p50_us": round(pct.get("50.000000", 0) / 1000, 1),
        "p99_us": round(pct.get("99.000000", 0) / 1000, 1),
    }


def median(runs: list[dict[str, float]]) -> dict[str, float]:
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def serve(directory: str, profile: Path | None) -> subprocess.Popen[bytes]:
    cmd = [sys.executable]
    if profile:
        cmd += ["-m", "cProfile", "-o", str(profile)]
    cmd += ["-m", "hamod.datapath", "mount", directory]
    proc = subprocess.Popen(cmd)
    wait_mounted(directory, timeout=20)
    return proc


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.datapath")
    ap.add_argument("--smoke", action="store_true", help="1 run of 3 s per job")
    ap.add_argument("--profile", action="store_true", help="also cProfile the FUSE server")
    args = ap.parse_args()
    runs, runtime = (1, 3) if args.smoke else (3, 8)
    base = Path(tempfile.mkdtemp(prefix="hamod-bench-", dir="/var/tmp"))
    native, mnt = base / "native", base / "mnt"
    native.mkdir()
    mnt.mkdir()
    results: dict[str, dict[str, dict[str, float]]] = {}
    proc = serve(str(mnt), None)
    try:
        for job in JOBS:
            results[job] = {}
            for name, d in (("native", native), ("fuse", mnt)):
                results[job][name] = median([fio(job, str(d), runtime) for _ in range(runs)])
                for f in d.iterdir():
                    f.unlink()
            print(job, results[job], flush=True)
    finally:
        unmount(mnt)
        proc.wait(timeout=30)
    prof_text = ""
    if args.profile:
        prof = base / "server.prof"
        proc = serve(str(mnt), prof)
        try:
            fio("w8k_fdatasync_1job", str(mnt), 5)
            fio("seq1m_fdatasync", str(mnt), 3)
        finally:
            unmount(mnt)
            proc.wait(timeout=30)
        prof_text = profile_report(prof)
    write_results(results, runs, runtime, args.smoke, prof_text)
    subprocess.run(["rm", "-rf", str(base)], check=False)
    return 0


def profile_report(prof: Path) -> str:
    import io
    import pstats

    buf = io.StringIO()
    pstats.Stats(str(prof), stream=buf).sort_stats("tottime").print_stats(18)
    return buf.getvalue()


def write_results(
    results: dict[str, dict[str, dict[str, float]]],
    runs: int,
    runtime: int,
    smoke: bool,
    prof_text: str,
) -> None:
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    meta = {
        "date": stamp,
        "runs": runs,
        "runtime_s": runtime,
        "smoke": smoke,
        "kernel": os.uname().release,
        "cpus": os.cpu_count(),
        "command": "python -m benchmarks.datapath" + (" --smoke" if smoke else ""),
    }
    (RESULTS / "latest.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    lines = [
        f"fio, psync, median of {runs} run(s) of {runtime} s, {meta['cpus']} vCPUs, "
        f"kernel {meta['kernel']}, {stamp}; `{meta['command']}`",
        "",
        "| workload | native | hamod FUSE (LocalOnly) | ratio | p50 native / FUSE (µs) "
        "| p99 native / FUSE (µs) |",
        "|---|---|---|---|---|---|",
    ]
    for job, r in results.items():
        key, unit = ("mbps", "MB/s") if job.startswith("seq") else ("iops", "ops/s")
        n, f = r["native"], r["fuse"]
        ratio = f[key] / n[key] if n[key] else 0.0
        lines.append(
            f"| {job} | {n[key]:.0f} {unit} | {f[key]:.0f} {unit} | {ratio:.2f}× "
            f"| {n['p50_us']} / {f['p50_us']} | {n['p99_us']} / {f['p99_us']} |"
        )
    if prof_text:
        lines += ["", "cProfile of the FUSE server (tottime):", "", "```", prof_text.strip(), "```"]
    (RESULTS / "latest.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
