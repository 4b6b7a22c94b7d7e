"""Observation commands: ``state``, ``waitstate``, ``log``, and ``printi`` / ``printe``
for scripts.

- ``hamod state [-m MOD] [-v] [--json] [-lq] [-H ...]``: a table (colours on a TTY);
  ``--json``: a list of ``ModuleStatus`` (with ``-H``: ``{node: [...]}`` and
  ``{node: {"error": "..."}}``); ``-lq -m MOD``: SafeKit's exit codes, nothing printed.
- ``hamod waitstate -m MOD STATE [--timeout S]``: 0 once reached, 1 on timeout.
- ``hamod log -m MOD [-f] [-n N]``.
- ``hamod printi|printe MSG``: a line in the module's log (``$HAMOD_MODULE``, file
  ``$HAMOD_LOG``), and on stdout/stderr (the script's own log).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hamod.api.models import LQ_EXIT_CODES, Colour, ModuleStatus, State
from hamod.cli.client import Client, NodeResult
from hamod.cli.module_cmd import add_target_arguments, on_nodes, report_errors, socket_path
from hamod.errors import HamodError, UsageError

_ANSI = {Colour.RED: "\033[31m", Colour.ORANGE: "\033[33m", Colour.GREEN: "\033[32m"}
_RESET = "\033[0m"


def register(sub: Any) -> None:
    p = sub.add_parser("state", help="module states (table, --json, -lq)")
    add_target_arguments(p, module_required=False)
    p.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="more columns, and every checker with its last result",
    )
    p.add_argument("--json", action="store_true", help="JSON (a list of module statuses)")
    p.add_argument(
        "-lq",
        dest="lq",
        action="store_true",
        help="exit code = state (STOP 0, WAIT 1, ALONE/UP 2, PRIM 3, SECOND 4)",
    )
    p.set_defaults(func=_state)

    w = sub.add_parser("waitstate", help="wait until the module reaches STATE")
    add_target_arguments(w)
    w.add_argument("state", type=str.upper, choices=[s.value for s in State])
    w.add_argument("--timeout", type=float, default=60.0, metavar="S")
    w.set_defaults(func=_waitstate)

    lg = sub.add_parser("log", help="the module's log")
    add_target_arguments(lg)
    lg.add_argument("-f", "--follow", action="store_true", help="wait for new lines")
    lg.add_argument("-n", type=int, default=0, metavar="N", help="only the last N lines")
    lg.set_defaults(func=_log)

    for name, level in (("printi", "I"), ("printe", "E")):
        pr = sub.add_parser(name, help=f"(scripts) an {'info' if level == 'I' else 'error'} "
                            "line in the module log")  # fmt: skip
        pr.add_argument("message", nargs="+")
        pr.set_defaults(func=_print, level=level)


def _paint(text: str, colour: Colour, tty: bool) -> str:
    return f"{_ANSI[colour]}{text}{_RESET}" if tty else text


def _up_to_date(s: ModuleStatus) -> str:
    """``yes``/``no``, or the resync in progress: ``resync 42% (full copy, ETA 12s)``."""
    r = s.resync
    if r is None:
        return "yes" if s.up_to_date else "no"
    what = [r.phase or ("full copy" if r.full else "incremental")]
    if r.eta_s is not None:
        what.append(f"ETA {r.eta_s:.0f}s")
    return f"resync {r.fraction:.0%} ({', '.join(what)})"


def _widths(head: list[str], rows: list[list[str]]) -> list[int]:
    return [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
            for i, h in enumerate(head)]  # fmt: skip


def table(statuses: list[ModuleStatus], verbose: bool, tty: bool) -> str:
    """The operator's table."""
    head = ["NODE", "MODULE", "STATE", "UP-TO-DATE", "PEER", "REASON"]
    if verbose:
        head[5:5] = ["TERM", "FAILOVER", "BOOT"]
    rows = []
    for s in statuses:
        peer = f"{s.peer}:{s.peer_state.value}" if s.peer and s.peer_state else (s.peer or "-")
        row = [s.node, s.module, f"{s.state.value} ({s.phase.value.lower()})",
               _up_to_date(s), peer, s.reason]  # fmt: skip
        if verbose:
            row[5:5] = [str(s.term), "on" if s.toggles.failover else "off", str(s.toggles.boot)]
        rows.append((row, s.colour, "TWO PRIMARIES" in s.reason or s.split_brain))
    widths = _widths(head, [r[0] for r in rows])
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)).rstrip()]
    for row, colour, alarm in rows:
        cells = [c.ljust(w) for c, w in zip(row, widths, strict=True)]
        cells[2] = _paint(cells[2], colour, tty)
        if alarm:
            cells[-1] = _paint(cells[-1], Colour.RED, tty)
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def checker_table(statuses: list[ModuleStatus]) -> str:
    """``state -v``: every checker of every module, its last result, when, and why."""
    head = ["NODE", "MODULE", "CHECKER", "TYPE", "RESULT", "AT", "ACTION", "RUNS", "REASON"]
    rows = []
    for s in statuses:
        for c in s.checkers:
            at = c.at.astimezone().strftime("%H:%M:%S") if c.at is not None else "-"
            runs = "off" if not c.enabled else ("yes" if c.active else "no")
            result = c.result.value + (f" ({c.failures}x)" if c.failures else "")
            rows.append([s.node, s.module, c.name, c.type, result, at, c.action, runs, c.reason])
    widths = _widths(head, rows)
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)


async def _statuses(args: argparse.Namespace) -> list[NodeResult[list[ModuleStatus]]]:
    async def call(c: Client) -> list[ModuleStatus]:
        if args.module:
            return [await c.module(args.module)]
        return await c.modules()

    return await on_nodes(args, call)


def _state(args: argparse.Namespace) -> int:
    if args.lq and not args.module:
        raise UsageError("-lq needs -m MODULE")
    results = asyncio.run(_statuses(args))
    if args.lq:
        r = results[0]
        if r.error is not None or not r.value:
            print(f"hamod: {r.error}", file=sys.stderr)
            return 1
        return LQ_EXIT_CODES[r.value[0].state]
    if args.json:
        if args.hosts:
            doc: Any = {
                r.node: [s.model_dump(mode="json") for s in r.value or []]
                if r.error is None else {"error": str(r.error)}
                for r in results
            }  # fmt: skip
        else:
            doc = [s.model_dump(mode="json") for s in results[0].value or []]
        print(json.dumps(doc, indent=2))
        return report_errors(results) if not args.hosts else (1 if any(
            r.error for r in results) else 0)  # fmt: skip
    statuses = [s for r in results for s in (r.value or [])]
    if statuses:
        print(table(statuses, args.verbose, sys.stdout.isatty()))
        if args.verbose and any(s.checkers for s in statuses):
            print()
            print(checker_table(statuses))
    return report_errors(results)


def _waitstate(args: argparse.Namespace) -> int:
    want = State(args.state)
    deadline = time.monotonic() + args.timeout

    async def loop() -> tuple[bool, str]:
        last = "?"
        while True:
            results = await _statuses(args)
            states = []
            for r in results:
                if r.error is None and r.value:
                    states.append(r.value[0].state)
            if states and len(states) == len(results) and all(s is want for s in states):
                return True, want.value
            last = ", ".join(s.value for s in states) or "unknown"
            if time.monotonic() >= deadline:
                return False, last
            await asyncio.sleep(0.2)

    ok, last = asyncio.run(loop())
    if not ok:
        print(f"hamod: {args.module}: still {last} after {args.timeout:g}s (waiting for "
              f"{want.value})", file=sys.stderr)  # fmt: skip
        return 1
    return 0


def _log(args: argparse.Namespace) -> int:
    async def show() -> None:
        async with Client.local(socket_path(args)) as c:
            if args.n and not args.follow:
                lines = [ln async for ln in c.log(args.module)]
                for ln in lines[-args.n :]:
                    print(ln)
                return
            async for ln in c.log(args.module, follow=args.follow):
                print(ln, flush=True)

    try:
        asyncio.run(show())
    except KeyboardInterrupt:
        return 0
    return 0


def _print(args: argparse.Namespace) -> int:
    text = " ".join(args.message)
    module = os.environ.get("HAMOD_MODULE", "")
    path = os.environ.get("HAMOD_LOG")
    stream = sys.stdout if args.level == "I" else sys.stderr
    print(text, file=stream)
    if path:
        line = f"{datetime.now(UTC).isoformat(timespec='milliseconds')} {args.level} {text}"
        try:
            with open(Path(path), "a", encoding="utf-8") as f:
                f.write(line + "\n")
        except OSError as exc:
            raise HamodError(f"{module or 'module'}: cannot write {path}: {exc}") from exc
    return 0
