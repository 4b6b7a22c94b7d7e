"""The failover measurement: lab, trivial service, client probe, power-off, repeat.

For one target at one timer preset (:func:`measure`):

1. build a 2-node lab (its own name, removed in ``finally``);
2. start the trivial service (``python -m hamod.testing.outage serve``) on both nodes: it
   answers each request with the node's hostname;
3. ``target.setup(lab, spec)``, ``target.start()``;
4. for each run: wait for a stable primary (``target.primary``); start the probe in the
   client namespace against VIP:PORT (one request every 10 ms, 50 ms timeout); after a
   baseline that must show the primary answering plus a random delay (``jitter``, uniform
   in [0, 1 s) by default, seeded), **power the primary off**: pull all its
   cables first (``lab.unplug`` on net0 and net1), then ``lab.kill`` (SIGKILL of its PID
   1). The order matters: ``lab.kill`` SIGKILLs first and unplugs after, and the shared
   LAB notes warn that a dying stack can still speak (keepalived's child resigns with a
   priority-0 advert if it outlives its parent), which hides the detection time. Then
   wait until another node answers and keep probing ``settle`` seconds more (to see any
   flapping), stop the probe, and analyse its log;
5. restore: boot the powered-off node, restart its service, ``target.start()`` (it
   rejoins as a standby), and go on with the next run (which kills the new primary).

Why the random delay: a heartbeat protocol detects a death a fixed time after the *last
heartbeat received*, so the outage depends on where in the heartbeat period the fault
falls (keepalived: 3 × advert_int + skew minus that phase). The harness's own sequence
(restore, wait, start the probe, baseline) is so regular that, without jitter, every run
hits the same phase (measured: always ~0.65 s after an advert, outage 2.97-3.03 s at
advert_int 1 instead of the 2.6-3.6 s range). A jitter of at least the longest heartbeat
period samples the phase uniformly, so the median is the typical outage, not one phase's.

The outage of a run is the longest client-visible gap (first failed request → first
successful request after it, :func:`hamod.testing.outage.analyze`) that ends after the
fault; ``recovery`` is from the fault (first cable pulled) to the first success.
"""

from __future__ import annotations

import contextlib
import os
import random
import select
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import IO, Any

from benchmarks.failover.targets import ClusterSpec, Target, TargetUnavailable
from hamod.errors import LabError
from hamod.testing.lab import Lab
from hamod.testing.outage import MAX_TIMEOUT, LiveProbe, Sample, analyze

__all__ = [
    "PORT",
    "ProbeSession",
    "RunResult",
    "Series",
    "Service",
    "measure",
    "power_off",
]

PORT = 7070
SERVICE_NET = "net0"
INTERFACE = "eth0"


@dataclass(frozen=True)
class RunResult:
    """One power-off: who died, who took over, what the client saw."""

    index: int
    killed: str
    took_over: str | None
    outage: float | None
    recovery: float | None
    recovered: bool
    requests: int
    failures: int
    gaps: int
    both_answered: int
    errors: dict[str, int] = field(default_factory=dict)
    note: str = ""


@dataclass
class Series:
    """All runs of one target at one timer preset (or why it could not run)."""

    target: str
    timers: str
    settings: str = ""
    status: str = "ok"  # ok | unavailable | error
    reason: str = ""
    runs: list[RunResult] = field(default_factory=list)
    seconds: float = 0.0
    seed: int | None = None

    @property
    def outages(self) -> list[float]:
        """Outages of the runs that recovered."""
        return [r.outage for r in self.runs if r.recovered and r.outage is not None]

    @property
    def median(self) -> float | None:
        """Median outage (None without a measured run)."""
        return statistics.median(self.outages) if self.outages else None

    @property
    def minimum(self) -> float | None:
        """Shortest outage."""
        return min(self.outages, default=None)

    @property
    def maximum(self) -> float | None:
        """Longest outage."""
        return max(self.outages, default=None)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, with the summary figures."""
        return {
            "target": self.target,
            "timers": self.timers,
            "settings": self.settings,
            "status": self.status,
            "reason": self.reason,
            "median": self.median,
            "min": self.minimum,
            "max": self.maximum,
            "seconds": round(self.seconds, 1),
            "seed": self.seed,
            "runs": [asdict(r) for r in self.runs],
        }


class Service:
    """The trivial service on the lab's nodes: answers each request with the hostname."""

    def __init__(self, lab: Lab, port: int = PORT) -> None:
        self.lab = lab
        self.port = port
        self._procs: dict[str, subprocess.Popen[str]] = {}

    def start(self, node: str, timeout: float = 10.0) -> None:
        """Start it on ``node`` (no-op when it runs) and wait until it listens."""
        proc = self._procs.get(node)
        if proc is not None and proc.poll() is None:
            return
        if proc is not None:
            proc.wait()
        argv = [sys.executable, "-m", "hamod.testing.outage", "serve", "--port", str(self.port)]
        proc = self.lab.popen(node, argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self._procs[node] = proc
        line = _readline(proc.stdout, timeout)
        if not line.startswith("listening"):
            _stop_group(proc)
            raise LabError(f"service on {node} did not start: {line or '(no output)'}")

    def start_all(self) -> None:
        """Start it on every running node."""
        for node in self.lab.node_names:
            if self.lab.alive(node):
                self.start(node)

    def stop(self) -> None:
        """Stop every instance."""
        for proc in self._procs.values():
            _stop_group(proc)
        self._procs.clear()


class ProbeSession(LiveProbe):
    """The outage probe running in the client namespace; samples arrive live."""

    def stop(self) -> list[Sample]:
        """Stop the probe (SIGTERM: it finishes its request) and return every sample."""
        return self.terminate(grace=3.0)


def power_off(lab: Lab, node: str) -> None:
    """Power ``node`` off like a dead machine: every cable out first, then SIGKILL of its
    PID 1 (see the module docstring for why the order matters)."""
    for i in lab.topo.nets_of(node):
        lab.unplug(node, f"net{i}")
    lab.kill(node)


def measure(
    target: Target,
    *,
    runs: int = 5,
    lab_name: str | None = None,
    timeout: float = MAX_TIMEOUT,
    interval: float = 0.01,
    baseline: float = 0.5,
    jitter: float = 1.0,
    seed: int | None = None,
    settle: float = 0.5,
    log: Callable[[str], None] = lambda _msg: None,
) -> Series:
    """Measure ``runs`` power-offs of ``target``'s primary in a fresh lab (always removed).
    An unavailable target gives a series with status "unavailable"; a failure during the
    runs gives status "error" with the runs measured so far."""
    series = Series(target.name, target.timers, target.settings, seed=seed)
    rng = random.Random(seed)
    began = time.monotonic()
    lab = Lab(lab_name or f"fo{os.getpid()}-{target.name[:4]}-{target.timers[:1]}", nodes=2)
    service: Service | None = None
    try:
        lab.up()
        spec = ClusterSpec(
            vip=lab.free_address(0),
            prefix=24,
            interface=INTERFACE,
            port=PORT,
            nodes=lab.node_names,
        )
        service = Service(lab, spec.port)
        service.start_all()
        try:
            target.setup(lab, spec)
        except TargetUnavailable as exc:
            series.status, series.reason = "unavailable", str(exc)
            log(f"{target.name} ({target.timers}): unavailable: {exc}")
            return series
        target.start()
        for index in range(runs):
            result = _one_run(
                lab,
                target,
                service,
                spec,
                index,
                timeout,
                interval,
                baseline + rng.uniform(0.0, jitter),
                settle,
            )
            series.runs.append(result)
            shown = "not recovered" if result.outage is None else f"{result.outage:.3f} s"
            log(
                f"{target.name} ({target.timers}) run {index + 1}/{runs}: {result.killed} off, "
                f"{result.took_over or 'nobody'} took over, outage {shown}"
                + (f" [{result.note}]" if result.note else "")
            )
            if not result.recovered:
                series.status = "error"
                series.reason = f"run {index + 1}: {result.note or 'not recovered'}"
                break
    except TargetUnavailable as exc:
        series.status, series.reason = "unavailable", str(exc)
    except (LabError, OSError) as exc:
        series.status, series.reason = "error", str(exc)
        log(f"{target.name} ({target.timers}): error: {exc}")
    finally:
        with contextlib.suppress(Exception):
            target.teardown()
        if service is not None:
            service.stop()
        lab.down()
        series.seconds = time.monotonic() - began
    return series


def _one_run(
    lab: Lab,
    target: Target,
    service: Service,
    spec: ClusterSpec,
    index: int,
    timeout: float,
    interval: float,
    delay: float,
    settle: float,
) -> RunResult:
    master = target.primary(timeout=target.budget + 15.0)
    probe = ProbeSession(lab, f"{spec.vip}:{spec.port}", timeout=timeout, interval=interval)
    try:
        if not probe.wait_for(lambda s: _answered_by(s, master, 0.0), 10.0):
            raise LabError(
                f"run {index + 1}: the client never got an answer from {master} through "
                f"{spec.vip}: {probe.samples[-3:]}"
            )
        time.sleep(delay)
        fault = time.monotonic()
        power_off(lab, master)

        def recovered(samples: list[Sample]) -> bool:
            return any(s.ok and s.node != master and s.mono > fault for s in samples)

        ok = probe.wait_for(recovered, target.budget)
        if ok:
            time.sleep(settle)
        samples = probe.stop()
    finally:
        probe.stop()
        _stop_group(probe.proc)
    result = _result(index, master, samples, fault, ok)
    lab.start(master)
    service.start(master)
    target.start()
    return result


def _answered_by(samples: list[Sample], node: str, since: float) -> bool:
    return any(s.ok and s.node == node and s.mono >= since for s in samples)


def _result(index: int, master: str, samples: list[Sample], fault: float, ok: bool) -> RunResult:
    full = analyze(samples, window=0.5)
    after = [g for g in full.gaps if g.end is None or g.end > fault]
    before = [g for g in full.gaps if g.end is not None and g.end <= fault]
    notes = []
    if before:
        notes.append(f"{len(before)} gap(s) before the fault")
    if full.both_answered:
        notes.append("both nodes answered within 0.5 s")
    first_ok = next((s for s in samples if s.ok and s.mono > fault and s.node != master), None)
    outage = max((g.duration for g in after), default=0.0) if ok else None
    if ok and not after:
        notes.append("no failed request after the fault")
    if not ok:
        notes.append("no other node answered within the budget")
    return RunResult(
        index=index,
        killed=master,
        took_over=None if first_ok is None else first_ok.node,
        outage=outage,
        recovery=None if first_ok is None else first_ok.mono - fault,
        recovered=ok,
        requests=full.requests,
        failures=full.failures,
        gaps=len(full.gaps),
        both_answered=len(full.both_answered),
        errors=full.errors,
        note="; ".join(notes),
    )


def _readline(stream: IO[str] | None, timeout: float) -> str:
    """One line from a pipe, or "" after ``timeout`` seconds / at EOF."""
    if stream is None:
        return ""
    ready, _, _ = select.select([stream], [], [], timeout)
    return stream.readline().strip() if ready else ""


def _stop_group(proc: subprocess.Popen[str], grace: float = 3.0, *, close: bool = True) -> None:
    """SIGTERM ``proc``'s process group, SIGKILL after ``grace`` seconds; reap it and
    close its pipes (unless ``close`` is false: a reader thread still drains them)."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=grace)
    if not close:
        return
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()
