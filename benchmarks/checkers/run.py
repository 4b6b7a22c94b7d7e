"""Detection-to-action latency of each checker type (issue #5's benchmark).

::

    python -m benchmarks.checkers                 # every type, 5 runs each (median of 5)
    python -m benchmarks.checkers --smoke         # 1 run of each type (CI)
    python -m benchmarks.checkers --types process,http --runs 9

One namespace lab, one hamod cluster (module ``demo`` on n1/n2, pulse 100 ms, timeout
1 s, no witness so that only the checker under test reacts to a network fault), whose
``start_prim`` starts :mod:`hamod.testing.checked_service`. The module declares one
checker of each type, all with ``interval: 1s``, ``timeout: 500ms``, ``fail_after: 1``
(and ``loop_interval: 0s``: no ``maxloop`` stop); ``hamod checker off|on -c NAME`` leaves
only the one being measured on. Per run, after a random delay in [0, interval) (the fault
lands anywhere in the probe period), a fault is injected on the primary and three times
are taken, all from the fault:

- **detected**: the module log's ``checker TYPE NAME: down`` line;
- **action**: the transition line applying it (``[checker_restart]``...);
- **done**: the application restarted (``app started [start_app_ok]`` on the same node)
  or, for failover actions, the VIP added on the peer (its ``VIP added`` line).

Log lines carry the wall clock of the node (the machine's), the fault's time is taken
inside the node right before it (``date +%s.%N; kill ...``) or here for faults at the
switch (unplug, isolation). The cluster is then restored (fault removed, states back to
PRIM/SECOND, the checker ``up`` again) before the next run. Prints a table and writes
``checkers.json``, ``checkers.md`` and ``checkers.svg`` to ``--out-dir``. Needs root.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # ``python benchmarks/checkers/run.py``
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.checkers import report
from hamod.api.models import Phase, State
from hamod.errors import HamodError
from hamod.runtime.logs import parse_time
from hamod.testing import checked_service
from hamod.testing.cluster import PYTHON, LabCluster, ModuleSpec
from hamod.testing.cluster_files import LAB_RUN_DIR, service_pidfile
from hamod.testing.lab import Lab, lab_available

__all__ = ["CASES", "Case", "Run", "Series", "main"]

RESULTS = Path(__file__).resolve().parent / "results"
SMOKE_RESULTS = Path(tempfile.gettempdir()) / "hamod-checkers-smoke"
M = "demo"
INTERVAL, TIMEOUT = 1.0, 0.5
FLAG = f"{LAB_RUN_DIR}/bench.flag"
WAIT = 40.0


_TOGGLE = """
import ast, asyncio, sys
from hamod.api.models import Command, CommandRequest
from hamod.cli.client import Client

async def main():
    async with Client.local() as c:
        for command, name in ast.literal_eval(sys.argv[2]):
            await c.command(sys.argv[1], CommandRequest(command=Command[command], checker=name))

asyncio.run(main())
"""


@dataclass(frozen=True)
class Case:
    """One checker type: its checker, the fault, and what "done" means."""

    type: str
    name: str
    fields: dict[str, Any]
    action: str
    fault: str
    failover: bool = False  # the action moves the VIP to the peer

    def checker(self) -> dict[str, Any]:
        return {"type": self.type, "name": self.name, "interval": f"{INTERVAL:g}s",
                "timeout": f"{TIMEOUT * 1000:g}ms", "fail_after": 1, "action": self.action,
                **self.fields}  # fmt: skip


CASES: tuple[Case, ...] = (
    Case("process", "app", {"script": "start_prim"}, "restart", "kill -9 of the app"),
    Case("tcp", "port", {"addr": "127.0.0.1", "port": 7070}, "restart", "kill -9 of the app"),
    Case("http", "health", {"url": "http://127.0.0.1:7070/health"}, "restart",
         "/health answers 500"),
    Case("custom", "flag", {"program": "/bin/sh", "args": ["-c", f"test ! -e {FLAG}"]},
         "restart", "the program exits 1"),
    Case("ping", "gw", {"addresses": ["WITNESS"]}, "restart",
         "the node cut from the pinged host"),
    Case("module", "base", {"module": "base"}, "restart", "`hamod stop -m base`"),
    Case("vip", "vip", {}, "stopstart", "`ip addr del` of the VIP", failover=True),
    Case("interface", "net0", {"interface": "eth0"}, "wait", "net0 cable pulled",
         failover=True),
)  # fmt: skip
TYPES = tuple(c.type for c in CASES)


@dataclass
class Run:
    """One fault: times in seconds from the fault."""

    node: str
    detected: float | None = None
    action: float | None = None
    done: float | None = None
    error: str | None = None
    detail: str = ""


@dataclass
class Series:
    """Every run of one checker type."""

    type: str
    name: str
    action: str
    fault: str
    done_is: str
    runs: list[Run] = field(default_factory=list)
    error: str | None = None

    def values(self, what: str) -> list[float]:
        return [v for r in self.runs if r.error is None and (v := getattr(r, what)) is not None]

    def median(self, what: str) -> float | None:
        vals = self.values(what)
        return statistics.median(vals) if vals else None

    @property
    def status(self) -> str:
        if self.error is not None or any(r.error for r in self.runs) or not self.runs:
            return "error"
        return "ok"

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["status"] = self.status
        for what in ("detected", "action", "done"):
            vals = self.values(what)
            out[what] = {"median": self.median(what), "min": min(vals, default=None),
                         "max": max(vals, default=None)}  # fmt: skip
        return out


class BenchError(RuntimeError):
    pass


class Bench:
    """The lab cluster and the measurements."""

    def __init__(self, lab_name: str, log: Callable[[str], None], seed: int) -> None:
        self.lab = Lab(lab_name, nodes=2)
        self.log = log
        self.rng = random.Random(seed)
        self.cluster: LabCluster | None = None
        self.on: str | None = None

    # -- setup -----------------------------------------------------------------------------

    def up(self) -> LabCluster:
        self.lab.up()
        witness = self.lab.address("witness")
        checkers = []
        for case in CASES:
            cfg = case.checker()
            if case.type == "ping":
                cfg["addresses"] = [witness]
            checkers.append(cfg)
        demo = ModuleSpec(M, extra={"checkers": checkers, "loop_interval": "0s"})
        base = ModuleSpec("base", vips=0, service=False)
        c = self.cluster = LabCluster(self.lab, [demo, base], witness="none").up()
        checked_service.install(c, M)
        for node in c.nodes:
            self.toggle(node, off=[case.name for case in CASES])
        c.establish(M, "n1")
        return c

    def toggle(self, node: str, off: Sequence[str] = (), on: Sequence[str] = ()) -> None:
        """``hamod checker off|on -c NAME`` for several checkers in one process (the API
        client, as the CLI does): one CLI start per name is most of a second here."""
        calls = [("CHECKER_OFF", n) for n in off] + [("CHECKER_ON", n) for n in on]
        self.c.lab.exec(node, [PYTHON, "-c", _TOGGLE, M, repr(calls)])

    @property
    def c(self) -> LabCluster:
        assert self.cluster is not None
        return self.cluster

    def down(self) -> None:
        self.lab.down()

    # -- observations ----------------------------------------------------------------------

    def primary(self) -> tuple[str, str]:
        """(primary, secondary) of demo, once both are READY."""
        deadline = time.monotonic() + WAIT
        while True:
            states = {n: self.c.try_state(n, M) for n in self.c.nodes}
            prim = [n for n, s in states.items() if s and s.state in (State.PRIM, State.ALONE)]
            second = [n for n, s in states.items() if s and s.state is State.SECOND]
            ready = all(s is not None and s.phase is Phase.READY for s in states.values())
            if len(prim) == 1 and len(second) == 1 and ready:
                return prim[0], second[0]
            if time.monotonic() > deadline:
                raise BenchError(f"no stable PRIM/SECOND: {self.c.diagnose(M)}")
            time.sleep(0.2)

    def lines(self, node: str, pattern: str, after: float, module: str = M) -> list[float]:
        """Times of the log lines of ``node`` matching ``pattern`` at or after ``after``."""
        out = []
        for line in self.c.module_log(node, module).splitlines():
            if re.search(pattern, line):
                at = parse_time(line)
                if at is not None and at.timestamp() >= after - 0.002:
                    out.append(at.timestamp())
        return out

    def wait_line(self, node: str, pattern: str, after: float, timeout: float = WAIT,
                  module: str = M) -> float:  # fmt: skip
        deadline = time.monotonic() + timeout
        while True:
            found = self.lines(node, pattern, after, module)
            if found:
                return found[0]
            if time.monotonic() > deadline:
                raise BenchError(f"{node}: no {pattern!r} in the {module} log within "
                                 f"{timeout:g} s\n{self.c.diagnose(M)}")  # fmt: skip
            time.sleep(0.05)

    def wait_up(self, node: str, case: Case) -> None:
        """The checker's last probe on ``node`` is up (``hamod get -r``)."""
        deadline = time.monotonic() + WAIT
        while True:
            res = self.c.hamod(node, "get", "-r", f"{case.type}.{case.name}", "-m", M)
            if res.returncode == 0 and res.stdout.strip() == "up":
                return
            if time.monotonic() > deadline:
                raise BenchError(f"{node}: {case.type}.{case.name} not up: "
                                 f"{res.stdout}{res.stderr}\n{self.c.diagnose(M)}")  # fmt: skip
            time.sleep(0.2)

    def in_node(self, node: str, script: str) -> float:
        """Run ``script`` in ``node`` right after ``date +%s.%N``: the fault's time."""
        out = self.c.lab.exec(node, f"date +%s.%N; {script}").stdout.split()
        return float(out[0])

    # -- one checker type ---------------------------------------------------------------------

    def enable(self, case: Case) -> None:
        for node in self.c.nodes:
            self.toggle(node, off=[self.on] if self.on else [], on=[case.name])
        self.on = case.name

    def prepare(self, case: Case, prim: str) -> None:
        if case.type == "module":
            self.start_base(prim)

    def start_base(self, node: str) -> None:
        """``base`` ALONE on ``node``: ``start`` (it serves at once when it was the last
        primary), else ``prim`` from WAIT (its first start)."""
        self.c.command(node, "base", "start")
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            st = self.c.try_state(node, "base")
            if st is not None and st.state is State.ALONE and st.phase is Phase.READY:
                return
            time.sleep(0.1)
        self.c.wait_state(node, "base", State.WAIT, WAIT)
        self.c.command(node, "base", "prim")
        self.c.wait_state(node, "base", State.ALONE, WAIT)

    def inject(self, case: Case, prim: str) -> float:
        c = self.c
        match case.type:
            case "process" | "tcp":
                return self.in_node(prim, f'kill -9 "$(cat {service_pidfile(M)})"')
            case "http":
                return self.in_node(prim, f"echo 500 > {checked_service.health_file(M)}")
            case "custom":
                return self.in_node(prim, f"touch {FLAG}")
            case "ping":
                at = time.time()
                c.lab.isolate(prim, ["witness"])
                return at
            case "module":
                sent = time.time()
                c.hamod(prim, "stop", "-m", "base")
                return self.wait_line(prim, r" -> ", sent, module="base")
            case "vip":
                vip = c.vip(M)
                out = c.lab.exec(prim, ["ip", "-o", "addr", "show", "to", vip]).stdout.split()
                if not out:
                    raise BenchError(f"{prim}: the VIP {vip} is not there")
                return self.in_node(prim, f"ip addr del {out[3]} dev {out[1]}")
            case "interface":
                at = time.time()
                c.lab.unplug(prim, "net0")
                return at
        raise BenchError(f"no fault for {case.type}")

    def restore(self, case: Case, prim: str) -> None:
        c = self.c
        match case.type:
            case "http":
                c.lab.exec(prim, ["rm", "-f", checked_service.health_file(M)])
            case "custom":
                c.lab.exec(prim, ["rm", "-f", FLAG])
            case "ping":
                c.lab.heal()
            case "module":
                self.start_base(prim)
            case "interface":
                c.lab.plug(prim, "net0")
            case _:
                pass

    def once(self, case: Case) -> Run:
        prim, second = self.primary()
        self.wait_up(prim, case)
        time.sleep(self.rng.uniform(0.0, INTERVAL))
        t0 = self.inject(case, prim)
        run = Run(prim)
        try:
            detected = self.wait_line(prim, rf"checker {case.type} {case.name}: down", t0)
            action = self.wait_line(prim, r"\[[^\]]*checker_[a-z_]+[^\]]*\]$", detected)
            if case.failover:
                done = self.wait_line(second, r"VIP added", t0)
            else:
                done = self.wait_line(prim, r"app started \[start_app_ok\]", action)
            run.detected, run.action, run.done = detected - t0, action - t0, done - t0
        except BenchError as exc:
            run.error = str(exc).splitlines()[0]
            run.detail = str(exc)
        finally:
            self.restore(case, prim)
        return run

    def series(self, case: Case, runs: int) -> Series:
        done_is = "VIP added on the peer" if case.failover else "app restarted"
        s = Series(case.type, case.name, case.action, case.fault, done_is)
        try:
            prim, _ = self.primary()
            self.prepare(case, prim)
            self.enable(case)
            for i in range(runs):
                run = self.once(case)
                s.runs.append(run)
                shown = "error: " + run.error if run.error else (
                    f"detected {run.detected:.3f} s, action {run.action:.3f} s, "
                    f"done {run.done:.3f} s")  # fmt: skip
                self.log(f"  {case.type} run {i + 1}/{runs} on {run.node}: {shown}")
                if run.error:
                    break
        except (BenchError, AssertionError, HamodError) as exc:  # ClusterError, LabError
            s.error = str(exc).splitlines()[0]
            self.log(f"  {case.type}: {exc}")
        finally:
            if case.type == "module":
                for node in self.c.nodes:
                    self.c.hamod(node, "stop", "-m", "base")
        return s


# -- command line -----------------------------------------------------------------------------


def _types(text: str) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    bad = [t for t in items if t not in TYPES]
    if bad or not items:
        raise argparse.ArgumentTypeError(f"use a comma list of {', '.join(TYPES)}")
    return items


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.checkers",
        description="Detection-to-action latency per checker type on the namespace lab.",
    )
    p.add_argument("--types", type=_types, default=list(TYPES),
                   help=f"comma list (default: {','.join(TYPES)})")  # fmt: skip
    p.add_argument("--runs", type=int, default=None, help="faults per type (default 5)")
    p.add_argument("--smoke", action="store_true", help="1 run per type (CI)")
    p.add_argument("--out-dir", type=Path, default=None,
                   help=f"results (default {RESULTS}; --smoke: {SMOKE_RESULTS})")  # fmt: skip
    p.add_argument("--seed", type=int, default=None, help="seed of the random delays")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    return p


def run(args: argparse.Namespace) -> tuple[list[Series], dict[str, Any]]:
    runs = args.runs or (1 if args.smoke else 5)
    seed = args.seed if args.seed is not None else random.randrange(1 << 31)

    began = time.monotonic()

    def log(msg: str) -> None:
        if not args.quiet:
            print(f"[{time.monotonic() - began:6.1f}s] {msg}", file=sys.stderr, flush=True)

    bench = Bench(f"ck{os.getpid() % 100000}", log, seed)
    series: list[Series] = []
    try:
        log("== lab and cluster")
        bench.up()
        log("== ready")
        for case in CASES:
            if case.type in args.types:
                log(f"== {case.type} ({case.fault} → {case.action}), {runs} run(s)")
                series.append(bench.series(case, runs))
    finally:
        bench.down()
    settings = {"interval_s": INTERVAL, "timeout_s": TIMEOUT, "fail_after": 1, "runs": runs,
                "seed": seed, "pulse": "100ms", "heartbeat_timeout": "1s",
                "witness": "none"}  # fmt: skip
    return series, settings


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.runs is not None and args.runs < 1:
        print("checkers: --runs must be >= 1", file=sys.stderr)
        return 2
    reason = lab_available()
    if reason is not None:
        print(f"checkers: the namespace lab cannot run here: {reason}", file=sys.stderr)
        return 2
    series, settings = run(args)
    info = report.machine()
    command = "python -m benchmarks.checkers" + (" --smoke" if args.smoke else "")
    out_dir: Path = args.out_dir or (SMOKE_RESULTS if args.smoke else RESULTS)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "checkers.json").write_text(report.to_json(series, info, settings))
    (out_dir / "checkers.md").write_text(report.markdown(series, info, settings, command))
    (out_dir / "checkers.svg").write_text(report.svg(series))
    print(report.table(series))
    print(f"results: {out_dir}/checkers.{{json,md,svg}}")
    return 1 if any(s.status == "error" for s in series) else 0


if __name__ == "__main__":
    sys.exit(main())
