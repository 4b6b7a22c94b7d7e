"""Reporting the failover benchmark: a terminal table, JSON, a markdown snippet for
docs/benchmarks.md and a small hand-written SVG plot (no plotting dependency).

Ratios (hamod / keepalived median outage) are computed only between series measured in
the same invocation at the same timer preset: figures from different runs of a shared
2-core machine are not comparable.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import platform
import shutil
import subprocess
from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Any

from benchmarks.failover.harness import Series

__all__ = ["machine", "markdown", "ratios", "svg", "table", "to_json"]


def _s(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f} s"


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
    keepalived = ""
    if shutil.which("keepalived"):
        out = subprocess.run(
            ["keepalived", "--version"], capture_output=True, text=True, check=False
        )
        keepalived = (
            (out.stdout or out.stderr).splitlines()[0] if (out.stdout or out.stderr) else ""
        )
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "kernel": platform.release(),
        "os": _os_name(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "keepalived": keepalived,
        "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return platform.system()


def ratios(series: Sequence[Series]) -> list[dict[str, Any]]:
    """hamod / keepalived median per timer preset, when both were measured here."""
    out = []
    for timers in dict.fromkeys(s.timers for s in series):
        by = {s.target: s for s in series if s.timers == timers and s.status == "ok"}
        ham, ka = by.get("hamod"), by.get("keepalived")
        if ham and ka and ham.median is not None and ka.median:
            out.append({"timers": timers, "hamod_over_keepalived": ham.median / ka.median})
    return out


def _rows(series: Sequence[Series]) -> list[list[str]]:
    rows = []
    for s in series:
        if s.status == "unavailable":
            rows.append(
                [s.target, s.timers, s.settings, "0", "—", "—", "—", f"unavailable: {s.reason}"]
            )
            continue
        status = "ok" if s.status == "ok" else f"{s.status}: {s.reason}"
        rows.append(
            [
                s.target,
                s.timers,
                s.settings,
                str(len(s.outages)),
                _s(s.median),
                _s(s.minimum),
                _s(s.maximum),
                status,
            ]
        )
    return rows


HEAD = ["target", "timers", "settings", "runs", "median", "min", "max", "status"]


def table(series: Sequence[Series]) -> str:
    """The terminal table (plus ratio lines)."""
    rows = [HEAD, *_rows(series)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEAD))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for r in ratios(series):
        lines.append(f"ratio hamod/keepalived ({r['timers']}): {r['hamod_over_keepalived']:.2f}")
    return "\n".join(lines)


def markdown(series: Sequence[Series], info: dict[str, Any], probe: dict[str, Any]) -> str:
    """A markdown snippet: the table, ratios, machine and date."""
    out = ["| " + " | ".join(HEAD) + " |", "|" + "---|" * len(HEAD)]
    out += ["| " + " | ".join(c.replace("|", "/") for c in r) + " |" for r in _rows(series)]
    for r in ratios(series):
        out.append(
            f"\nRatio hamod/keepalived ({r['timers']}): **{r['hamod_over_keepalived']:.2f}**"
        )
    runs = "; ".join(
        f"{s.target} {s.timers}: " + ", ".join(f"{o:.2f}" for o in s.outages)
        for s in series
        if s.outages
    )
    seeds = ", ".join(sorted({str(s.seed) for s in series if s.seed is not None})) or "none"
    out += [
        "",
        f"Every run (s): {runs}." if runs else "No run measured.",
        "",
        f"Measured {info['date']} on {info['os']}, kernel {info['kernel']}, {info['cpus']} × "
        f"{info['cpu']}, {info['keepalived']}, Python {info['python']} (load average at the "
        f"end: {info['load']}); probe: one request every {probe['interval'] * 1000:g} ms, "
        f"{probe['timeout'] * 1000:g} ms timeout; each fault after a random delay in "
        f"[0, {probe.get('jitter', 0):g} s) (seed {seeds}).",
    ]
    return "\n".join(out) + "\n"


def to_json(series: Sequence[Series], info: dict[str, Any], probe: dict[str, Any]) -> str:
    """Everything, for machines."""
    data = {
        "benchmark": "failover-outage",
        "machine": info,
        "probe": probe,
        "series": [s.to_dict() for s in series],
        "ratios": ratios(series),
    }
    return json.dumps(data, indent=2) + "\n"


def svg(series: Sequence[Series], title: str = "Client-visible outage on power-off") -> str:
    """A horizontal log-scale chart: one row per measured series, a bar to the median and
    a dot per run."""
    rows = [s for s in series if s.outages]
    left, right, top, row_h = 260, 40, 50, 34
    width = 760
    height = top + row_h * max(len(rows), 1) + 50
    lo, hi = 0.01, 100.0
    span = width - left - right

    def x(v: float) -> float:
        v = min(max(v, lo), hi)
        return left + span * (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="13">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{width / 2}" y="24" text-anchor="middle" font-size="15">{escape(title)}</text>',
    ]
    bottom = top + row_h * max(len(rows), 1)
    for tick in (0.01, 0.1, 1, 10, 100):
        tx = x(tick)
        parts.append(
            f'<line x1="{tx:.1f}" y1="{top - 6}" x2="{tx:.1f}" y2="{bottom}" stroke="#ddd"/>'
        )
        parts.append(f'<text x="{tx:.1f}" y="{bottom + 18}" text-anchor="middle">{tick:g} s</text>')
    parts.append(
        f'<text x="{left + span / 2}" y="{bottom + 38}" text-anchor="middle">'
        "outage (log scale): bar = median, dots = runs</text>"
    )
    colors = {"keepalived": "#4c78a8", "hamod": "#f58518"}
    for i, s in enumerate(rows):
        y = top + i * row_h
        label = f"{s.target} {s.timers} ({s.settings.split(',')[0]})"
        parts.append(
            f'<text x="{left - 10}" y="{y + row_h / 2 + 4}" text-anchor="end">'
            f"{escape(label)}</text>"
        )
        med = s.median or lo
        color = colors.get(s.target, "#54a24b")
        parts.append(
            f'<rect x="{left}" y="{y + 7}" width="{x(med) - left:.1f}" '
            f'height="{row_h - 14}" fill="{color}" opacity="0.55"/>'
        )
        for o in s.outages:
            parts.append(
                f'<circle cx="{x(o):.1f}" cy="{y + row_h / 2}" r="3.5" fill="{color}" '
                'stroke="black" stroke-width="0.6"/>'
            )
        parts.append(
            f'<text x="{x(max(s.outages)) + 10:.1f}" y="{y + row_h / 2 + 4}">{med:.2f} s</text>'
        )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
