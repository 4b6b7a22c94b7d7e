"""Command line of the failover benchmark.

::

    python -m benchmarks.failover                    # keepalived + hamod, default + tight, 5 runs
    python -m benchmarks.failover --smoke            # 1 run, tight timers (CI)
    python -m benchmarks.failover --targets keepalived --timers tight --runs 9

Prints a table (target, timers, runs, median/min/max outage, status; the hamod/keepalived
ratio when both were measured in this invocation) and writes ``failover.json``,
``failover.md`` (the snippet for docs/benchmarks.md) and ``failover.svg`` to
``--out-dir``. A target that cannot run (hamod until its daemon exists) is reported as
"unavailable: <reason>"; with ``--require-all`` that is an error (exit 2). Exit 1 when a
measured series failed. Needs root (the namespace lab).
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

if __package__ in (None, ""):  # ``python benchmarks/failover/run.py``
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.failover import report
from benchmarks.failover.hamod_target import HamodTarget
from benchmarks.failover.harness import Series, measure
from benchmarks.failover.keepalived import KeepalivedTarget
from benchmarks.failover.targets import TIMER_PRESETS, Target
from hamod.testing.lab import lab_available

__all__ = ["TARGETS", "main"]

RESULTS = Path(__file__).resolve().parent / "results"
SMOKE_RESULTS = Path(tempfile.gettempdir()) / "hamod-failover-smoke"


def _keepalived(timers: str, args: argparse.Namespace) -> Target:
    return KeepalivedTarget(timers, mode=args.vrrp)


def _hamod(timers: str, args: argparse.Namespace) -> Target:
    return HamodTarget(timers)


TARGETS: dict[str, Callable[[str, argparse.Namespace], Target]] = {
    "keepalived": _keepalived,
    "hamod": _hamod,
}


def _csv(choices: Sequence[str]) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        items = [t.strip() for t in text.split(",") if t.strip()]
        bad = [t for t in items if t not in choices]
        if bad or not items:
            raise argparse.ArgumentTypeError(f"use a comma list of {', '.join(choices)}")
        return items

    return parse


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.failover",
        description="Client-visible outage when the primary is powered off, per target.",
    )
    p.add_argument(
        "--targets",
        type=_csv(list(TARGETS)),
        default=list(TARGETS),
        help="comma list (default: keepalived,hamod)",
    )
    p.add_argument(
        "--timers",
        type=_csv(TIMER_PRESETS),
        default=None,
        help="comma list of presets (default: default,tight; --smoke: tight)",
    )
    p.add_argument("--runs", type=int, default=None, help="power-offs per series (default 5)")
    p.add_argument("--smoke", action="store_true", help="1 run at tight timers (CI)")
    p.add_argument(
        "--out-dir",
        type=Path,
        default=None,
        help=f"results (default {RESULTS}; --smoke: {SMOKE_RESULTS})",
    )
    p.add_argument(
        "--vrrp",
        choices=("unicast", "multicast"),
        default="unicast",
        help="keepalived VRRP transport (default unicast)",
    )
    p.add_argument("--timeout", type=float, default=0.05, help="probe request timeout (s)")
    p.add_argument("--interval", type=float, default=0.01, help="probe interval (s)")
    p.add_argument(
        "--jitter",
        type=float,
        default=1.0,
        help="random delay before each fault, uniform in [0, S) s (default 1)",
    )
    p.add_argument("--seed", type=int, default=None, help="seed of the jitter (default random)")
    p.add_argument(
        "--require-all", action="store_true", help="an unavailable target is an error (exit 2)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    return p


def run(args: argparse.Namespace) -> tuple[list[Series], int]:
    """Measure every requested target × timers; return the series and the exit status."""
    timers = args.timers or (["tight"] if args.smoke else list(TIMER_PRESETS))
    runs = args.runs or (1 if args.smoke else 5)

    def log(msg: str) -> None:
        if not args.quiet:
            print(msg, file=sys.stderr, flush=True)

    seed = args.seed if args.seed is not None else random.randrange(1 << 31)
    series = []
    for preset in timers:
        for name in args.targets:
            target = TARGETS[name](preset, args)
            log(f"== {name} ({preset}: {target.settings}), {runs} run(s)")
            series.append(
                measure(
                    target,
                    runs=runs,
                    timeout=args.timeout,
                    interval=args.interval,
                    jitter=args.jitter,
                    seed=seed,
                    log=log,
                )
            )
    code = 0
    if any(s.status == "error" for s in series):
        code = 1
    elif args.require_all and any(s.status == "unavailable" for s in series):
        code = 2
    return series, code


def main(argv: Sequence[str] | None = None) -> int:
    """Run, print the table, write JSON / markdown / SVG."""
    args = _parser().parse_args(argv)
    if args.runs is not None and args.runs < 1:
        print("failover: --runs must be >= 1", file=sys.stderr)
        return 2
    reason = lab_available()
    if reason is not None:
        print(f"failover: the namespace lab cannot run here: {reason}", file=sys.stderr)
        return 2
    series, code = run(args)
    info = report.machine()
    probe = {"timeout": args.timeout, "interval": args.interval, "jitter": args.jitter}
    out_dir: Path = args.out_dir or (SMOKE_RESULTS if args.smoke else RESULTS)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "failover.json").write_text(report.to_json(series, info, probe))
    (out_dir / "failover.md").write_text(report.markdown(series, info, probe))
    (out_dir / "failover.svg").write_text(report.svg(series))
    print(report.table(series))
    print(f"results: {out_dir}/failover.{{json,md,svg}}")
    return code


if __name__ == "__main__":
    sys.exit(main())
