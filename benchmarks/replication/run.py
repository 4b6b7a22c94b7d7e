"""Command line of the replication benchmark.

::

    python -m benchmarks.replication                  # full run (issue #4's sizes)
    python -m benchmarks.replication --preset medium  # shorter: 1 run of 5 s, 1 GiB, 100k files
    python -m benchmarks.replication --smoke          # CI: seconds, tiny data sets
    python -m benchmarks.replication --targets baseline,limit,sync-per-write --phases fio

Prints progress, a table with the ratios to the baseline and to the topology limit, the
goals of issue #4 met or not, and writes ``replication.json`` (every figure),
``replication.md`` (the snippet for docs/benchmarks.md) and ``replication.svg`` to
``--out-dir``. A target that cannot run is reported "not measured: <reason>". Exit 1
when a measured target failed (a hamod error, a lost mirror, a timeout), 2 when the lab
cannot run. Needs root (the namespace lab).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # ``python benchmarks/replication/run.py``
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.failover.run import _csv  # the same comma-list option parser
from benchmarks.replication import report, scenarios
from benchmarks.replication.targets import (
    DATA,
    GLUSTER,
    HAMOD_MODES,
    PLAIN,
    GlusterUnavailable,
    HamodCluster,
    gluster_up,
)
from benchmarks.replication.workloads import (
    JOBS,
    PRESETS,
    Sizes,
    fio_parallel,
    meta_parallel,
    proc_figures,
)
from hamod.errors import LabError
from hamod.testing.cluster import ClusterError
from hamod.testing.lab import Lab, lab_available

__all__ = ["TARGETS", "main"]

RESULTS = Path(__file__).resolve().parent / "results"
SMOKE_RESULTS = Path(tempfile.gettempdir()) / "hamod-replication-smoke"

#: command-line key → target name
TARGETS = {
    "baseline": "baseline",
    "limit": "limit",
    "glusterfs": "glusterfs",
    "sync-on-sync": "hamod sync/on-sync",
    "sync-per-write": "hamod sync/per-write",
    "semisync-per-write": "hamod semisync/per-write",
}
PHASES = ("fio", "meta", "resync", "memory")
#: the hamod target that also runs the resync and memory phases (the default mode)
RESYNC_TARGET = "hamod sync/per-write"
#: what --smoke measures by default (each hamod mode is a deployment: ~15-60 s here)
SMOKE_TARGETS = ("baseline", "limit", "sync-per-write")

Log = Callable[[str], None]
Result = dict[str, Any]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.replication",
        description="fio on a plain directory, the topology limit, GlusterFS and hamod's "
        "replication modes, plus resync and memory; ratios to the baseline and the limit.",
    )
    p.add_argument("--smoke", action="store_true", help="CI size (same as --preset smoke)")
    p.add_argument("--preset", choices=list(PRESETS), default=None, help="default full")
    p.add_argument(
        "--targets",
        type=_csv(list(TARGETS)),
        default=None,
        help=f"comma list (default: all; --smoke: {','.join(SMOKE_TARGETS)})",
    )
    p.add_argument(
        "--phases", type=_csv(PHASES), default=list(PHASES), help="comma list (default: all)"
    )
    p.add_argument("--runs", type=int, default=None, help="fio runs per figure (median)")
    p.add_argument("--runtime", type=int, default=None, help="seconds per fio run")
    p.add_argument("--files", type=int, default=None, help="files of the memory phase")
    p.add_argument("--dataset", type=int, default=None, help="resync data set (MiB)")
    p.add_argument("--changed", type=int, default=None, help="changed while away (MiB)")
    p.add_argument(
        "--out-dir",
        type=Path,
        default=None,
        help=f"results (default {RESULTS}; --smoke: {SMOKE_RESULTS})",
    )
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.add_argument(
        "--from-json",
        type=Path,
        default=None,
        help="measure nothing: rewrite the table, markdown and SVG of a replication.json",
    )
    return p


def _sizes(args: argparse.Namespace) -> Sizes:
    base = PRESETS["smoke" if args.smoke else (args.preset or "full")]
    changes = {
        "runs": args.runs,
        "runtime": args.runtime,
        "memory_files": args.files,
        "dataset_mib": args.dataset,
        "changed_mib": args.changed,
    }
    fields = base.to_dict()
    fields.update({k: v for k, v in changes.items() if v is not None})
    return Sizes(**fields)


def _median(runs: list[dict[str, float]]) -> dict[str, float]:
    keys = [k for k in runs[0] if all(isinstance(r.get(k), int | float) for r in runs)]
    return {k: round(statistics.median(r[k] for r in runs), 2) for k in keys}


def _mean(results: list[dict[str, float]]) -> dict[str, float]:
    """Per-place results of one parallel run → the mean per place (each copy's figure)."""
    return {k: round(statistics.fmean(r[k] for r in results), 2) for k in results[0]}


def _timeout(sizes: Sizes) -> float:
    return 120.0 + sizes.runtime * 20


class Bench:
    """One invocation: the results of every target, filled phase by phase."""

    def __init__(self, args: argparse.Namespace, log: Log) -> None:
        self.args = args
        self.sizes = _sizes(args)
        self.log = log
        keys = args.targets or (list(SMOKE_TARGETS) if args.smoke else list(TARGETS))
        self.targets = [TARGETS[t] for t in keys]
        self.results: dict[str, Result] = {}
        self.extra: dict[str, Any] = {"versions": {}}
        self.out_dir: Path = args.out_dir or (SMOKE_RESULTS if args.smoke else RESULTS)
        self.tag = f"rb{os.getpid() % 100000}"

    def _target(self, name: str, status: str = "ok", reason: str = "") -> Result:
        res = self.results.setdefault(name, {"status": status, "reason": reason})
        res.setdefault("workloads", {})
        return res

    def fail(self, name: str, exc: BaseException, diagnosis: str = "") -> None:
        res = self._target(name)
        res["status"], res["reason"] = "error", f"{type(exc).__name__}: {str(exc)[:2000]}"
        self.log(f"{name}: ERROR: {str(exc)[:2000]}")
        if diagnosis:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            slug = name.replace(" ", "-").replace("/", "-")
            (self.out_dir / f"diagnose-{slug}.txt").write_text(
                f"{traceback.format_exc()}\n{diagnosis}\n"
            )

    def _down(self, lab: Lab) -> None:
        """Remove ``lab``; once more if the first teardown left something (seen once
        with a million files in the nodes' overlays), and say so if that fails too."""
        for attempt in (1, 2):
            try:
                lab.down()
                return
            except (LabError, OSError) as exc:
                self.log(f"lab {lab.name}: teardown attempt {attempt} failed: {exc}")
                time.sleep(1.0)
        self.extra.setdefault("teardown_errors", []).append(lab.name)

    # -- the plain lab: baseline, limit, GlusterFS ------------------------------------------

    def plain(self) -> None:
        wanted = [t for t in ("baseline", "limit", "glusterfs") if t in self.targets]
        if not wanted:
            return
        places = {
            "baseline": [("n1", PLAIN)],
            "limit": [("n1", PLAIN), ("n2", PLAIN)],
            "glusterfs": [("n1", GLUSTER)],
        }
        lab = Lab(f"{self.tag}-plain", nodes=2)
        try:
            lab.up()
            if "glusterfs" in wanted:
                if self.args.smoke:
                    self._target("glusterfs", "not measured", "--smoke skips GlusterFS")
                    wanted.remove("glusterfs")
                else:
                    try:
                        self.extra["versions"]["glusterfs"] = gluster_up(lab)
                    except GlusterUnavailable as exc:
                        self._target("glusterfs", "not measured", str(exc))
                        self.log(f"glusterfs: not measured: {exc}")
                        wanted.remove("glusterfs")
            for name in wanted:
                self._target(name)
            self._measure(lab, {n: places[n] for n in wanted})
        except (LabError, OSError, subprocess.SubprocessError) as exc:
            for name in wanted:
                self.fail(name, exc)
        finally:
            self._down(lab)

    def _measure(
        self,
        lab: Lab,
        places: dict[str, list[tuple[str, str]]],
        cluster: HamodCluster | None = None,
    ) -> None:
        """The fio and metadata phases for every target in ``places`` (interleaved per
        run, so a load change on the shared machine hits all of them alike)."""
        sz = self.sizes
        if "fio" in self.args.phases:
            for job in JOBS:
                runs: dict[str, list[dict[str, float]]] = {n: [] for n in places}
                for r in range(sz.runs):
                    for name, where in places.items():
                        if self.results[name]["status"] != "ok":
                            continue
                        try:
                            runs[name].append(self._one(lab, name, job, where, cluster))
                        except (LabError, ClusterError, OSError, ValueError, KeyError) as exc:
                            self.fail(name, exc, cluster.diagnose() if cluster else "")
                            continue
                        self.log(f"{name}: {job} run {r + 1}/{sz.runs}: {runs[name][-1]}")
                for name, rs in runs.items():
                    if rs:
                        self.results[name]["workloads"][job] = {**_median(rs), "runs": rs}
        if "meta" in self.args.phases:
            for name, where in places.items():
                if self.results[name]["status"] != "ok":
                    continue
                try:
                    timeout = 120.0 + sz.meta_files / 5  # 10 files/s would be very slow
                    rs = [
                        _mean(meta_parallel(lab, where, sz.meta_files, timeout))
                        for _ in range(sz.runs)
                    ]
                    bad = cluster.in_sync() if cluster else None
                    if bad:
                        raise ClusterError(f"the mirror broke during the metadata run: {bad}")
                except (LabError, ClusterError, OSError, ValueError) as exc:
                    self.fail(name, exc, cluster.diagnose() if cluster else "")
                    continue
                med = _median(rs)
                w = self.results[name]["workloads"]
                w["meta_create"] = {"files_per_s": med["create_per_s"], "runs": rs}
                w["meta_unlink"] = {"files_per_s": med["unlink_per_s"], "runs": rs}
                self.log(f"{name}: metadata ({sz.meta_files} files): {med}")

    def _one(
        self,
        lab: Lab,
        name: str,
        job: str,
        where: list[tuple[str, str]],
        cluster: HamodCluster | None,
    ) -> dict[str, float]:
        """One fio run of ``job`` for target ``name``; with a hamod cluster also the CPU
        of both data-path processes, and a check that the mirror held."""
        pids: dict[str, int] = {}
        before: dict[str, dict[str, int]] = {}
        if cluster is not None:
            for node in ("n1", "n2"):
                pid = cluster.dp_pid(node)
                if pid is None:
                    raise ClusterError(f"{node}: no data-path process\n{cluster.diagnose()}")
                pids[node] = pid
                before[node] = proc_figures(lab, node, pid)
        t0 = time.monotonic()
        res = _mean(fio_parallel(lab, job, where, self.sizes, _timeout(self.sizes)))
        wall = time.monotonic() - t0
        if cluster is not None:
            for node, role in (("n1", "primary"), ("n2", "secondary")):
                after = proc_figures(lab, node, pids[node])
                ticks = after.get("cpu_ticks", 0) - before[node].get("cpu_ticks", 0)
                res[f"dp_cpu_{role}_pct"] = round(ticks / os.sysconf("SC_CLK_TCK") / wall * 100, 1)
            bad = cluster.in_sync()
            if bad:
                raise ClusterError(
                    f"the mirror broke during {job} (figures not valid for replication): {bad}"
                )
        return res

    # -- hamod ---------------------------------------------------------------------------

    def hamod(self, name: str) -> None:
        """One replication mode on a fresh lab; the resync target also runs the resync
        phase, and with ``--smoke`` the memory phase (files created before the start)."""
        mode, durability = HAMOD_MODES[name]
        missing = HamodCluster.missing()
        if missing:
            self._target(name, "not measured", missing)
            return
        self._target(name)
        resync = name == RESYNC_TARGET and "resync" in self.args.phases
        memory = name == RESYNC_TARGET and "memory" in self.args.phases and self.args.smoke
        lab = Lab(f"{self.tag}-{mode[:4]}-{durability[:2]}", nodes=2)
        h: HamodCluster | None = None
        try:
            lab.up()
            h = HamodCluster(lab, mode, durability)
            self.log(f"{name}: deploying the cluster (n1 PRIM, n2 SECOND)")
            if memory:
                self._memory(h)
            else:
                h.up()
                pid = h.dp_pid("n1")
                if pid is not None:
                    rss = proc_figures(lab, "n1", pid).get("vmrss_kib")
                    self.results[name]["dp_rss_start_kib"] = rss
            self._measure(lab, {name: [("n1", DATA)]}, h)
            if resync and self.results[name]["status"] == "ok":
                self.extra["resync"] = scenarios.resync(h, self.sizes, self.log)
        except (LabError, ClusterError, OSError, ValueError, subprocess.SubprocessError) as exc:
            self.fail(name, exc, h.diagnose() if h is not None else "")
        finally:
            self._down(lab)

    def _memory(self, h: HamodCluster) -> None:
        """The memory phase on a cluster not started yet (starts it)."""
        h.cluster.up()
        made = scenarios.precreate(h, self.sizes, self.log)
        t0 = time.monotonic()
        h.up(timeout=90.0 + self.sizes.memory_files / 2000)
        start_s = time.monotonic() - t0
        empty = self.results.get(RESYNC_TARGET, {}).get("dp_rss_start_kib")
        self.extra["memory"] = {
            "create_s": round(made, 1),
            **scenarios.memory(h, self.sizes, self.log, start_s, empty),
        }

    def memory_lab(self) -> None:
        """The memory phase on its own lab (sync/per-write), except with ``--smoke``."""
        if self.args.smoke or "memory" not in self.args.phases:
            return
        if RESYNC_TARGET not in self.targets:
            return
        lab = Lab(f"{self.tag}-mem", nodes=2)
        h: HamodCluster | None = None
        try:
            lab.up()
            h = HamodCluster(lab, "sync", "per-write")
            self._memory(h)
        except (LabError, ClusterError, OSError, ValueError, subprocess.SubprocessError) as exc:
            msg = f"{type(exc).__name__}: {str(exc)[:1500]}"
            self.extra["memory_error"] = msg
            self.log(f"memory: ERROR: {msg}")
        finally:
            self._down(lab)

    def run(self) -> None:
        self.plain()
        for name in HAMOD_MODES:
            if name in self.targets:
                self.hamod(name)
        self.memory_lab()
        for name in self.targets:  # every requested target appears in the report
            self._target(name, "not measured", "not run")


def main(argv: Sequence[str] | None = None) -> int:
    """Run, print the table and goals, write JSON / markdown / SVG."""
    args = _parser().parse_args(argv)
    if args.from_json is not None:
        return _rewrite(args.from_json)
    reason = lab_available()
    if reason is not None:
        print(f"replication: the namespace lab cannot run here: {reason}", file=sys.stderr)
        return 2

    def log(msg: str) -> None:
        if not args.quiet:
            print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    bench = Bench(args, log)
    began = time.monotonic()
    bench.run()
    command = "python -m benchmarks.replication" + (" " + " ".join(argv or sys.argv[1:])).rstrip()
    info = {**report.machine(), "command": command, "seconds": round(time.monotonic() - began)}
    data = report.assemble(bench.results, bench.extra, bench.sizes, info)
    out = bench.out_dir
    out.mkdir(parents=True, exist_ok=True)
    (out / "replication.json").write_text(report.to_json(data))
    (out / "replication.md").write_text(report.markdown(data))
    (out / "replication.svg").write_text(report.svg(data))
    print(report.table(data))
    print(f"results: {out}/replication.{{json,md,svg}}")
    return 1 if any(r["status"] == "error" for r in bench.results.values()) else 0


def _rewrite(path: Path) -> int:
    """Ratios, goals and reports again from a saved replication.json (same directory)."""
    saved = json.loads(path.read_text())
    extra = {k: saved[k] for k in ("versions", "resync", "memory", "memory_error") if k in saved}
    for case in extra.get("resync", {}).get("cases", []):  # files of an earlier version
        if case.get("error", "").startswith("not run: "):
            case["not_run"] = case.pop("error").removeprefix("not run: ")
        elif "error" in case and "log" not in case:
            parts = re.split(r"; n\d: (?=\d{4}-)", case["error"], maxsplit=1)
            case["error"] = parts[0]
            case["log"] = parts[1].splitlines() if len(parts) > 1 else []
    data = report.assemble(saved["targets"], extra, Sizes(**saved["sizes"]), saved["machine"])
    (path.parent / "replication.json").write_text(report.to_json(data))
    (path.parent / "replication.md").write_text(report.markdown(data))
    (path.parent / "replication.svg").write_text(report.svg(data))
    print(report.table(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
