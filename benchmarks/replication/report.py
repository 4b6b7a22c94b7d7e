"""Reporting the replication benchmark: ratios, goals, a terminal table, JSON, a markdown
snippet for docs/benchmarks.md and a hand-written SVG chart (no plotting dependency, as
the failover benchmark).

Ratios are computed only between figures of the same invocation: the baseline (a plain
directory) and the topology limit (the same job on both nodes' disks at once, the mean
rate of one copy).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import platform
import subprocess
from html import escape
from pathlib import Path
from typing import Any

from benchmarks.replication.workloads import LABELS, Sizes

__all__ = ["assemble", "machine", "markdown", "svg", "table", "to_json"]

#: workload → (figure, unit)
METRIC = {
    "w8k_fdatasync_1job": ("iops", "ops/s"),
    "w8k_fdatasync_4jobs": ("iops", "ops/s"),
    "seq1m_fdatasync": ("mbps", "MB/s"),
    "w8k_buffered": ("iops", "ops/s"),
    "meta_create": ("files_per_s", "files/s"),
    "meta_unlink": ("files_per_s", "files/s"),
}
#: issue #4's goals: workload → (minimum ratio to native, which hamod targets)
GOALS = {
    "w8k_fdatasync_1job": (0.8, None),
    "w8k_fdatasync_4jobs": (0.6, None),
    "seq1m_fdatasync": (0.6, None),
    "w8k_buffered": (0.3, "hamod sync/on-sync"),
}
RESYNC_GOAL = 1.1  # bytes sent ≤ 1.1 × the changed regions
MEMORY_GOAL_MIB = 500  # for 1 million files


def machine() -> dict[str, Any]:
    """Where the figures were measured."""
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    fio = subprocess.run(["fio", "--version"], capture_output=True, text=True, check=False)
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "kernel": platform.release(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "fio": fio.stdout.strip(),
        "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def _value(results: dict[str, Any], target: str, job: str) -> float | None:
    w = results.get(target, {}).get("workloads", {}).get(job)
    if not w:
        return None
    v = w.get(METRIC[job][0])
    return float(v) if isinstance(v, int | float) else None


def assemble(
    results: dict[str, Any], extra: dict[str, Any], sizes: Sizes, info: dict[str, Any]
) -> dict[str, Any]:
    """Everything in one document: figures, ratios, goals."""
    ratios: dict[str, dict[str, dict[str, float | None]]] = {}
    for target in results:
        for job in METRIC:
            v = _value(results, target, job)
            if v is None:
                continue
            base, lim = _value(results, "baseline", job), _value(results, "limit", job)
            ratios.setdefault(target, {})[job] = {
                "baseline": float(f"{v / base:.3g}") if base else None,
                "limit": float(f"{v / lim:.3g}") if lim else None,
            }
    goals: list[dict[str, Any]] = []
    for job, (want, only) in GOALS.items():
        for target in results:
            if not target.startswith("hamod") or (only and target != only):
                continue
            r = ratios.get(target, {}).get(job, {}).get("baseline")
            goals.append(
                {
                    "goal": f"{LABELS[job]} ≥ {want}× native",
                    "target": target,
                    "measured": None if r is None else f"{r:.2f}×",
                    "met": None if r is None else r >= want,
                }
            )
    for case in extra.get("resync", {}).get("cases", []):
        r = case.get("sent_over_changed")
        failed = "error" in case
        goals.append(
            {
                "goal": f"resync bytes ≤ {RESYNC_GOAL}× the changed regions ({case['case']})",
                "target": "hamod sync/per-write",
                "measured": "resync did not complete" if failed else (r and f"{r:.2f}×"),
                "met": False if failed else (None if r is None else r <= RESYNC_GOAL),
            }
        )
    mem = extra.get("memory")
    if mem:
        goals.append(
            {
                "goal": f"data path < {MEMORY_GOAL_MIB} MiB with 1 million files",
                "target": "hamod sync/per-write",
                "measured": (
                    f"{mem['rss_after_mib']} MiB"
                    if mem["files"] >= 1_000_000
                    else f"{mem['projected_1m_mib']} MiB (projected from {mem['files']} files)"
                ),
                "met": (
                    mem["rss_after_mib"] if mem["files"] >= 1_000_000 else mem["projected_1m_mib"]
                )
                < MEMORY_GOAL_MIB,
            }
        )
    return {
        "benchmark": "replication",
        "machine": info,
        "sizes": sizes.to_dict(),
        "targets": results,
        "ratios": ratios,
        "goals": goals,
        **extra,
    }


def to_json(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2) + "\n"


def _fmt(v: float | None, unit: str = "") -> str:
    if v is None:
        return "—"
    text = f"{v:.0f}" if abs(v) >= 100 else f"{v:.3g}"
    return f"{text} {unit}".rstrip()


def _x(r: float | None) -> str:
    if r is None:
        return "—"
    return f"{r:.2f}×" if r >= 0.01 else f"{r:.1g}×"


def _status(res: dict[str, Any]) -> str:
    return "ok" if res["status"] == "ok" else f"{res['status']}: {res['reason']}"


def _rows(data: dict[str, Any]) -> list[list[str]]:
    rows = []
    results, ratios = data["targets"], data["ratios"]
    for job, (key, unit) in METRIC.items():
        for target, res in results.items():
            w = res.get("workloads", {}).get(job)
            if not w:
                continue
            r = ratios.get(target, {}).get(job, {})
            lat = "—"
            if "p50_us" in w:
                lat = f"{w['p50_us']:g} / {w['p99_us']:g}"
                if w.get("sync_p50_us"):
                    lat += f" (sync {w['sync_p50_us']:g} / {w['sync_p99_us']:g})"
            cpu = "—"
            if "dp_cpu_primary_pct" in w:
                cpu = f"{w['dp_cpu_primary_pct']:g} / {w['dp_cpu_secondary_pct']:g}"
            rows.append(
                [
                    LABELS[job],
                    target,
                    _fmt(w.get(key), unit),
                    _x(r.get("baseline")),
                    _x(r.get("limit")),
                    lat,
                    cpu,
                ]
            )
    return rows


HEAD = [
    "workload",
    "target",
    "result",
    "÷ baseline",
    "÷ limit",
    "p50 / p99 µs",
    "data path CPU % (n1 / n2)",
]


def _not_measured(data: dict[str, Any]) -> list[str]:
    return [f"{t}: {_status(r)}" for t, r in data["targets"].items() if r["status"] != "ok"]


def _resync_rows(data: dict[str, Any]) -> list[list[str]]:
    rows = []
    for c in data.get("resync", {}).get("cases", []):
        if "not_run" in c:
            rows.append([c["case"], f"not run: {c['not_run']}", *["—"] * 7])
            continue
        if "error" in c:
            err = c["error"].replace("\n", " ")
            rows.append([c["case"], f"FAILED: {err[:300]}", *["—"] * 7])
            continue
        pio, peer = c.get("primary_io") or {}, c.get("peer_io") or {}
        rows.append(
            [
                c["case"],
                f"{c['seconds']:g} s",
                f"{c['resync_s']:g} s",
                str(c.get("rounds", "—")),
                _mib(c.get("sent_bytes")),
                _x(c.get("sent_over_changed")),
                f"{_mib(pio.get('rchar'))} / {_mib(pio.get('read_bytes'))}",
                _mib(pio.get("wchar")),
                f"{_mib(peer.get('rchar'))} / {_mib(peer.get('wchar'))}",
            ]
        )
    return rows


RESYNC_HEAD = [
    "outage",
    "until in sync",
    "from daemon up",
    "rounds",
    "sent",
    "÷ changed",
    "primary read (rchar / disk)",
    "primary wchar",
    "peer rchar / wchar",
]


def _mib(v: int | None) -> str:
    return "—" if v is None else f"{v / 2**20:.1f} MiB"


def _aligned(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def _goal_rows(data: dict[str, Any]) -> list[list[str]]:
    mark = {True: "met", False: "NOT met", None: "not measured"}
    return [[g["goal"], g["target"], g["measured"] or "—", mark[g["met"]]] for g in data["goals"]]


def table(data: dict[str, Any]) -> str:
    """The terminal report."""
    out = _aligned([HEAD, *_rows(data)])
    res = data.get("resync")
    if res:
        out += [
            "",
            f"resync: {res['dataset_mib']} MiB data set, {res['changed_mib']} MiB changed "
            f"(distinct 1 MiB regions); verify: {res.get('verify', 'not run')}",
        ]
        out += _aligned([RESYNC_HEAD, *_resync_rows(data)])
    mem = data.get("memory")
    if mem:
        out += ["", _memory_line(mem)]
    if data.get("memory_error"):
        out += ["", f"memory: ERROR: {data['memory_error']}"]
    if data["goals"]:
        out += ["", *_aligned([["goal", "target", "measured", ""], *_goal_rows(data)])]
    for line in _not_measured(data):
        out.append(f"not measured: {line}")
    return "\n".join(out)


def _memory_line(mem: dict[str, Any]) -> str:
    base = (
        f"an empty start's {mem['empty_rss_mib']} MiB"
        if mem.get("empty_rss_mib") is not None
        else "the RSS before the lookups"
    )
    return (
        f"memory: {mem['files']} files (created before the start in {mem['create_s']} s; "
        f"first start with them {mem['first_start_s']} s; {mem['looked_up']} looked up through "
        f"the mount in {mem['walk_s']} s): data path RSS on the primary "
        f"{mem['rss_before_mib']} → {mem['rss_after_mib']} MiB (peak {mem['hwm_mib']} MiB; "
        f"{mem['bytes_per_file']:.0f} B per file over {base}: {mem['projected_1m_mib']} MiB "
        f"for 1 million at that rate); secondary {mem['peer_rss_before_mib']} → "
        f"{mem['peer_rss_after_mib']} MiB (peak {mem['peer_hwm_mib']} MiB); mirror "
        f"{mem['mirror']}"
    )


def _md_table(head: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(c.replace("|", "/") for c in r) + " |" for r in rows]
    return out


def markdown(data: dict[str, Any]) -> str:
    """The snippet for docs/benchmarks.md."""
    info, sz = data["machine"], data["sizes"]
    out = _md_table(HEAD, _rows(data))
    res = data.get("resync")
    if res:
        out += [
            "",
            f"Resync: {res['dataset_mib']} MiB data set, {res['changed_mib']} MiB changed as "
            f"distinct 1 MiB regions; both copies compared afterwards: "
            f"**{res.get('verify', 'not run')}**.",
            "",
            *_md_table(RESYNC_HEAD, _resync_rows(data)),
        ]
    mem = data.get("memory")
    if mem:
        out += ["", _memory_line(mem) + "."]
    if data.get("memory_error"):
        out += ["", f"Memory phase: ERROR: {data['memory_error']}."]
    if data["goals"]:
        out += ["", *_md_table(["goal", "target", "measured", ""], _goal_rows(data))]
    missing = _not_measured(data)
    if missing:
        out += ["", *[f"Not measured: {m}." for m in missing]]
    out += [
        "",
        f"`{info['command']}` ({sz['name']} sizes: median of {sz['runs']} fio run(s) of "
        f"{sz['runtime']} s; {info['seconds']} s in all). Measured {info['date']}, kernel "
        f"{info['kernel']}, {info['cpus']} × {info['cpu']}, {info['fio']}, Python "
        f"{info['python']} (load average at the end: {info['load']}).",
    ]
    return "\n".join(out) + "\n"


def svg(data: dict[str, Any], title: str = "Replication: throughput ÷ plain directory") -> str:
    """Grouped horizontal bars, log scale: per workload, each target's ratio to the
    baseline; a tick for the issue's goal."""
    ratios = data["ratios"]
    targets = [t for t in data["targets"] if t != "baseline" and t in ratios]
    jobs = [j for j in METRIC if any(j in ratios.get(t, {}) for t in targets)]
    left, right, top, bar, gap = 300, 90, 60, 13, 14
    width = 900
    group = bar * max(len(targets), 1) + gap
    height = top + group * max(len(jobs), 1) + 70
    lo, hi = 0.0001, 2.0
    span = width - left - right

    def x(v: float) -> float:
        v = min(max(v, lo), hi)
        return left + span * (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))

    colors = {
        "limit": "#9d9d9d",
        "glusterfs": "#4c78a8",
        "hamod sync/on-sync": "#f58518",
        "hamod sync/per-write": "#e45756",
        "hamod semisync/per-write": "#54a24b",
    }
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{width / 2}" y="22" text-anchor="middle" font-size="15">{escape(title)}</text>',
    ]
    lx = 40.0
    for t in targets:  # legend, one line
        parts.append(
            f'<rect x="{lx:.0f}" y="34" width="10" height="10" fill="{colors.get(t, "#b279a2")}"/>'
        )
        parts.append(f'<text x="{lx + 14:.0f}" y="43" font-size="11">{escape(t)}</text>')
        lx += 14 + 6.5 * len(t) + 18
    bottom = top + group * max(len(jobs), 1)
    for tick in (0.0001, 0.001, 0.01, 0.1, 1):
        tx = x(tick)
        parts.append(
            f'<line x1="{tx:.1f}" y1="{top - 6}" x2="{tx:.1f}" y2="{bottom}" stroke="#ddd"/>'
        )
        parts.append(f'<text x="{tx:.1f}" y="{bottom + 16}" text-anchor="middle">{tick:g}×</text>')
    parts.append(
        f'<text x="{left + span / 2}" y="{bottom + 36}" text-anchor="middle">ratio to the plain '
        "directory (log scale); black tick: issue #4's goal</text>"
    )
    for gi, job in enumerate(jobs):
        y0 = top + gi * group
        parts.append(
            f'<text x="{left - 10}" y="{y0 + group / 2}" text-anchor="end">'
            f"{escape(LABELS[job])}</text>"
        )
        for ti, t in enumerate(targets):
            r = ratios.get(t, {}).get(job, {}).get("baseline")
            if r is None:
                continue
            y = y0 + ti * bar
            parts.append(
                f'<rect x="{left}" y="{y}" width="{max(x(r) - left, 1):.1f}" height="{bar - 2}" '
                f'fill="{colors.get(t, "#b279a2")}"/>'
            )
            label = f"{r:.2f}" if r >= 0.01 else f"{r:.1g}"
            parts.append(
                f'<text x="{x(r) + 4:.1f}" y="{y + bar - 3}" font-size="10">{label}×</text>'
            )
        if job in GOALS:
            gx = x(GOALS[job][0])
            parts.append(
                f'<line x1="{gx:.1f}" y1="{y0 - 2}" x2="{gx:.1f}" y2="{y0 + group - gap + 2}" '
                'stroke="black" stroke-width="2"/>'
            )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
