"""The workloads of the replication benchmark, run inside a lab node.

- fio jobs (psync, time based), identical for every target: 8 KiB write + fdatasync with
  1 and 4 jobs, 1 MiB sequential write + fdatasync, 8 KiB buffered random writes.
- the metadata workload (:data:`META`): a small Python program, the same for every
  target, that creates N files (open O_CREAT, one 4 KiB write, close), then unlinks them.
- helpers for the resync and memory phases: a random data set written in 128 KiB
  blocks, region-aligned changes, N empty files, /proc figures of a process.

Everything here runs through ``lab.exec``/``lab.popen`` (inside the node's namespaces, on
its files) with a timeout, so a stuck data path cannot hang the benchmark.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hamod.errors import LabError
from hamod.testing.cluster import PYTHON
from hamod.testing.lab import Lab

__all__ = [
    "CHANGE",
    "DATASET",
    "FILES",
    "META",
    "WALK",
    "Sizes",
    "fio_args",
    "fio_parallel",
    "meta_parallel",
    "parse_fio",
    "proc_figures",
]

#: The fio workloads: name → (fio arguments without sizes, size key, unit).
JOBS: dict[str, tuple[list[str], str]] = {
    "w8k_fdatasync_1job": (["--rw=randwrite", "--bs=8k", "--fdatasync=1"], "small"),
    "w8k_fdatasync_4jobs": (
        ["--rw=randwrite", "--bs=8k", "--fdatasync=1", "--numjobs=4", "--group_reporting"],
        "small",
    ),
    "seq1m_fdatasync": (["--rw=write", "--bs=1m", "--fdatasync=1"], "seq"),
    "w8k_buffered": (["--rw=randwrite", "--bs=8k"], "buffered"),
}

#: What each workload is called in tables.
LABELS = {
    "w8k_fdatasync_1job": "8 KiB write+fdatasync, 1 job",
    "w8k_fdatasync_4jobs": "8 KiB write+fdatasync, 4 jobs",
    "seq1m_fdatasync": "1 MiB seq write+fdatasync",
    "w8k_buffered": "8 KiB buffered writes",
    "meta_create": "metadata: create+4 KiB write+close",
    "meta_unlink": "metadata: unlink",
}


@dataclass(frozen=True)
class Sizes:
    """The size of one invocation (``--smoke``, ``--preset medium`` or the full run)."""

    name: str
    runs: int  # repetitions per target and workload (median)
    runtime: int  # seconds per fio run
    ramp: int  # fio ramp time (not measured)
    small: str  # file size of the 8 KiB jobs (per job)
    seq: str  # file size of the 1 MiB sequential job
    buffered: str  # file size of the buffered job
    meta_files: int
    dataset_mib: int  # resync data set
    changed_mib: int  # changed while the peer was away
    memory_files: int

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


PRESETS = {
    "smoke": Sizes("smoke", 1, 1, 0, "16m", "64m", "32m", 200, 256, 8, 10_000),
    "medium": Sizes("medium", 1, 5, 1, "64m", "512m", "256m", 10_000, 1024, 64, 100_000),
    "full": Sizes("full", 3, 8, 1, "64m", "512m", "256m", 10_000, 4096, 64, 1_000_000),
}


def fio_args(job: str, directory: str, sizes: Sizes) -> list[str]:
    """The fio command line of ``job`` in ``directory``."""
    extra, size_key = JOBS[job]
    return [
        "fio",
        f"--name={job}",
        f"--directory={directory}",
        "--ioengine=psync",
        "--time_based",
        f"--runtime={sizes.runtime}",
        f"--ramp_time={sizes.ramp}",
        f"--size={getattr(sizes, size_key)}",
        "--output-format=json",
        *extra,
    ]


def _pct(block: dict[str, Any], key: str) -> dict[str, float]:
    pct = block.get(key, {}).get("percentile", {}) or {}
    return {
        "p50_us": round(pct.get("50.000000", 0) / 1000, 1),
        "p99_us": round(pct.get("99.000000", 0) / 1000, 1),
    }


def parse_fio(text: str) -> dict[str, float]:
    """ops/s, MB/s and latencies of a fio JSON report (``group_reporting``: one job).
    ``p50_us``/``p99_us`` are write completion latencies; ``sync_p50_us``/``sync_p99_us``
    the fdatasync latencies (0 when the job does not sync)."""
    job = json.loads(text)["jobs"][0]
    w = job["write"]
    out = {"iops": round(w["iops"], 1), "mbps": round(w["bw_bytes"] / 1e6, 2)}
    out.update(_pct(w, "clat_ns"))
    sync = _pct(job.get("sync", {}), "lat_ns")
    out["sync_p50_us"], out["sync_p99_us"] = sync["p50_us"], sync["p99_us"]
    return out


def _run_parallel(lab: Lab, cmds: Sequence[tuple[str, Sequence[str]]], timeout: float) -> list[str]:
    """Start every (node, argv) at once, wait for all; their standard outputs, in order.
    A non-zero exit or the timeout is a :class:`LabError` (the timeout kills them all)."""
    procs = [
        lab.popen(node, list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for node, argv in cmds
    ]
    outs: list[str] = []
    try:
        for (node, argv), p in zip(cmds, procs, strict=True):
            out, err = p.communicate(timeout=timeout)
            if p.returncode != 0:
                raise LabError(f"{node}: {argv[0]} exited {p.returncode}: {err.strip()[-800:]}")
            outs.append(out)
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"{cmds[0][1][0]} did not finish within {timeout:g} s") from exc
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
    return outs


def fio_parallel(
    lab: Lab, job: str, places: Sequence[tuple[str, str]], sizes: Sizes, timeout: float
) -> list[dict[str, float]]:
    """Run ``job`` once in every (node, directory) of ``places`` at the same time; one
    result per place."""
    for node, d in places:
        lab.exec(node, ["mkdir", "-p", d])
    cmds = [(node, fio_args(job, d, sizes)) for node, d in places]
    outs = _run_parallel(lab, cmds, timeout)
    for node, d in places:
        lab.exec(node, f"rm -rf {d}/*", timeout=timeout)
    return [parse_fio(o) for o in outs]


#: create N files (open, one 4 KiB write, close), then unlink them; prints JSON rates.
META = r"""
import json, os, sys, time
root, n = sys.argv[1], int(sys.argv[2])
d = os.path.join(root, "meta")
os.makedirs(d, exist_ok=True)
block = os.urandom(4096)
names = [os.path.join(d, f"f{i:07d}") for i in range(n)]
t0 = time.perf_counter()
for p in names:
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.write(fd, block)
    os.close(fd)
t1 = time.perf_counter()
for p in names:
    os.unlink(p)
t2 = time.perf_counter()
os.rmdir(d)
print(json.dumps({"create_per_s": n / (t1 - t0), "unlink_per_s": n / (t2 - t1)}))
"""


def meta_parallel(
    lab: Lab, places: Sequence[tuple[str, str]], files: int, timeout: float
) -> list[dict[str, float]]:
    """The metadata workload in every (node, directory) at once."""
    cmds = [(node, [PYTHON, "-c", META, d, str(files)]) for node, d in places]
    for node, d in places:
        lab.exec(node, ["mkdir", "-p", d])
    return [
        {k: round(v, 1) for k, v in json.loads(o).items()}
        for o in _run_parallel(lab, cmds, timeout)
    ]


#: the resync data set: N files of S MiB of random data, written in 128 KiB blocks
#: (see docs/benchmarks.md: larger writes stall in the peer link), fdatasync'd.
DATASET = r"""
import os, sys, time
root, nfiles, mib = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
os.makedirs(os.path.join(root, "set"), exist_ok=True)
t0 = time.perf_counter()
for i in range(nfiles):
    fd = os.open(os.path.join(root, "set", f"part{i:03d}"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    for _ in range(mib * 8):
        os.write(fd, os.urandom(131072))
    os.fdatasync(fd)
    os.close(fd)
print(time.perf_counter() - t0)
"""

#: change ``count`` distinct 1 MiB-aligned regions of the data set (random data, 128 KiB
#: writes, fdatasync per file). With ``forever`` it keeps changing regions until killed.
CHANGE = r"""
import os, random, sys, time
root, nfiles, mib, count, seed, forever = sys.argv[1:7]
nfiles, mib, count, forever = int(nfiles), int(mib), int(count), forever == "1"
rng = random.Random(int(seed))
regions = rng.sample(range(nfiles * mib), min(count, nfiles * mib))
t0 = time.perf_counter()
done = 0
while True:
    for r in regions:
        fd = os.open(os.path.join(root, "set", f"part{r // mib:03d}"), os.O_WRONLY)
        for k in range(8):
            os.pwrite(fd, os.urandom(131072), (r % mib) * 1048576 + k * 131072)
        os.fdatasync(fd)
        os.close(fd)
        done += 1
        if forever:
            print(done, flush=True)
    if not forever:
        break
    regions = rng.sample(range(nfiles * mib), min(count, nfiles * mib))
print(time.perf_counter() - t0)
"""

#: N empty files (create + close) in directories of 1000 (written underneath, before the
#: module starts: creating a million files through the mount would take hours).
FILES = r"""
import os, sys, time
root, n = sys.argv[1], int(sys.argv[2])
t0 = time.perf_counter()
for i in range(n):
    if i % 1000 == 0:
        d = os.path.join(root, "many", f"d{i // 1000:05d}")
        os.makedirs(d, exist_ok=True)
    os.close(os.open(os.path.join(d, f"f{i % 1000:03d}"), os.O_WRONLY | os.O_CREAT, 0o644))
print(time.perf_counter() - t0)
"""

#: lstat every file under root/many (through the mount: one lookup per file).
WALK = r"""
import os, sys, time
root = os.path.join(sys.argv[1], "many")
t0 = time.perf_counter()
n = 0
for d in sorted(os.listdir(root)):
    for f in os.listdir(os.path.join(root, d)):
        os.lstat(os.path.join(root, d, f))
        n += 1
print(n, time.perf_counter() - t0)
"""


def proc_figures(lab: Lab, node: str, pid: int) -> dict[str, int]:
    """RSS, peak RSS, CPU ticks and I/O counters of ``pid`` inside ``node`` (from /proc,
    read inside the node: the PID is the node's)."""
    out = lab.exec(
        node,
        f"cat /proc/{pid}/status /proc/{pid}/io; echo; cat /proc/{pid}/stat",
        check=False,
        timeout=20,
    ).stdout
    fig: dict[str, int] = {}
    for line in out.splitlines():
        key, _, val = line.partition(":")
        val = val.strip()
        if key in ("VmRSS", "VmHWM", "RssAnon"):
            fig[key.lower() + "_kib"] = int(val.split()[0])
        elif key in ("rchar", "wchar", "read_bytes", "write_bytes"):
            fig[key] = int(val)
        elif ") " in line and line.split(" ", 1)[0] == str(pid):
            rest = line.rsplit(") ", 1)[1].split()
            fig["cpu_ticks"] = int(rest[11]) + int(rest[12])  # utime + stime
    return fig
