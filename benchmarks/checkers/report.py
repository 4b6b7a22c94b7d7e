"""Reporting the checker benchmark: a terminal table, JSON, the markdown snippet for
docs/benchmarks.md ("Checkers") and a small hand-written SVG chart."""

from __future__ import annotations

import json
from collections.abc import Sequence
from html import escape
from typing import TYPE_CHECKING, Any

from benchmarks.failover import report as failover_report

if TYPE_CHECKING:
    from benchmarks.checkers.run import Series

__all__ = ["machine", "markdown", "svg", "table", "to_json"]

_WHAT = (("detected", "detected"), ("action", "action"), ("done", "done"))


def machine() -> dict[str, Any]:
    """Where the figures were measured (the failover benchmark's, without keepalived)."""
    info = failover_report.machine()
    info.pop("keepalived", None)
    return info


def _s(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f} s"


def _range(s: Series, what: str) -> str:
    vals = s.values(what)
    if not vals:
        return "—"
    if len(vals) == 1:
        return _s(vals[0])
    return f"{_s(s.median(what))} ({min(vals):.2f}–{max(vals):.2f})"


def _rows(series: Sequence[Series]) -> list[list[str]]:
    rows = []
    for s in series:
        runs = f"{len(s.values('done'))}/{len(s.runs)}"
        status = s.status if s.error is None else f"error: {s.error}"
        if s.status == "error" and s.error is None:
            status = "error: " + next((r.error or "" for r in s.runs if r.error), "no run")
        rows.append([s.type, s.fault, s.action, runs, *(_range(s, w) for w, _ in _WHAT),
                     s.done_is, status])  # fmt: skip
    return rows


_HEAD = ["checker", "fault", "action", "runs", "detected", "action taken", "done",
         "done =", "status"]  # fmt: skip


def table(series: Sequence[Series]) -> str:
    """The terminal table: medians (min–max) from the fault, in seconds."""
    rows = _rows(series)
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(_HEAD)]  # fmt: skip
    lines = ["  ".join(h.ljust(w) for h, w in zip(_HEAD, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)


def to_json(series: Sequence[Series], info: dict[str, Any], settings: dict[str, Any]) -> str:
    return json.dumps({"machine": info, "settings": settings,
                       "series": [s.to_dict() for s in series]}, indent=2) + "\n"  # fmt: skip


def markdown(series: Sequence[Series], info: dict[str, Any], settings: dict[str, Any],
             command: str) -> str:  # fmt: skip
    """The snippet for docs/benchmarks.md."""
    out = [
        f"Command: `.venv/bin/{command}` ({settings['runs']} run(s) per type, seed "
        f"{settings['seed']}); checkers every {settings['interval_s']:g} s, timeout "
        f"{settings['timeout_s']:g} s, fail_after {settings['fail_after']}. Times from the "
        "fault, median (min–max).",
        "",
        "| " + " | ".join(_HEAD) + " |",
        "|" + "---|" * len(_HEAD),
    ]
    out += ["| " + " | ".join(r) + " |" for r in _rows(series)]
    out += [
        "",
        f"Measured {info.get('date', '')} on {info.get('cpus', '?')} CPUs "
        f"({info.get('cpu', '')}), {info.get('os', '')}, kernel {info.get('kernel', '')}, "
        f"load {info.get('load', '')}.",
    ]
    return "\n".join(out) + "\n"


def svg(series: Sequence[Series], title: str = "Checkers: from the fault to the action") -> str:
    """One row per checker type: bars to the median detection, action and done times
    (linear scale), a dot per run's done time."""
    rows = [s for s in series if s.values("done")]
    left, right, top, row_h = 120, 60, 50, 40
    width = 760
    height = top + row_h * max(len(rows), 1) + 60
    hi = max((max(s.values("done")) for s in rows), default=1.0)
    hi = max(1.0, float(int(hi) + 1))
    span = width - left - right

    def x(v: float) -> float:
        return left + span * min(max(v, 0.0), hi) / hi

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="13">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{width / 2}" y="24" text-anchor="middle" font-size="15">{escape(title)}</text>',
    ]
    bottom = top + row_h * max(len(rows), 1)
    step = 1.0 if hi <= 10 else 2.0
    tick = 0.0
    while tick <= hi + 1e-9:
        tx = x(tick)
        parts.append(f'<line x1="{tx:.1f}" y1="{top - 6}" x2="{tx:.1f}" y2="{bottom}" '
                     'stroke="#ddd"/>')  # fmt: skip
        parts.append(f'<text x="{tx:.1f}" y="{bottom + 18}" text-anchor="middle">{tick:g} s'
                     "</text>")  # fmt: skip
        tick += step
    parts.append(
        f'<text x="{left + span / 2}" y="{bottom + 40}" text-anchor="middle">'
        "from the fault: median detected (dark), action (mid), done (light); dots = runs"
        "</text>"
    )
    colors = {"detected": "#1f4e79", "action": "#4c78a8", "done": "#9ecae9"}
    for i, s in enumerate(rows):
        y = top + i * row_h
        parts.append(f'<text x="{left - 10}" y="{y + row_h / 2 + 4}" text-anchor="end">'
                     f"{escape(s.type)}</text>")  # fmt: skip
        for what in ("done", "action", "detected"):  # longest first, drawn under
            med = s.median(what)
            if med is None:
                continue
            parts.append(f'<rect x="{left}" y="{y + 8}" width="{x(med) - left:.1f}" '
                         f'height="{row_h - 16}" fill="{colors[what]}"/>')  # fmt: skip
        for v in s.values("done"):
            parts.append(f'<circle cx="{x(v):.1f}" cy="{y + row_h / 2}" r="3" fill="white" '
                         'stroke="black" stroke-width="0.7"/>')  # fmt: skip
        med = s.median("done") or 0.0
        parts.append(f'<text x="{x(max(s.values("done"))) + 8:.1f}" y="{y + row_h / 2 + 4}">'
                     f"{med:.2f} s</text>")  # fmt: skip
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
