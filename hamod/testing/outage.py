"""The client-side outage probe: what a user of a virtual IP sees during a failover.

Three parts, all usable from Python and from a shell (``python -m hamod.testing.outage``):

- ``serve``: a trivial TCP service for each node. It answers every connection with one
  line, the node's hostname (``n1\\n``), after reading the client's one-line request, so
  the probe records **which node answered**.
- ``probe`` (the default command): run inside the lab's client namespace, it sends one
  request every ``--interval`` seconds to ``--target VIP:PORT`` (TCP connect, one-line
  request, one-line answer, all within ``--timeout`` seconds, 50 ms at most) and writes one
  JSON line per request: ``{"seq", "t", "mono", "end", "ok", "node", "error"}`` (``t`` is
  the wall clock, ``mono``/``end`` are ``CLOCK_MONOTONIC`` at the start/end of the request:
  every namespace shares that clock, so a harness can place its own fault time on the
  same axis). Requests overlap (several in flight, ``--workers``), so one starts every
  interval even while each waits for its timeout during an outage: the resolution is the
  interval, not the timeout. It stops after ``--duration`` seconds, ``--count`` requests,
  or SIGTERM.
- ``analyze``: reads those JSON lines and reports the gaps. A **gap** (an outage) runs
  from the start of the first failed request to the start of the first successful
  request after it (its resolution is the interval); a gap that never
  ends is reported as not recovered. **Handovers** are changes of the answering node.
  **Both answered** (two primaries) is detected when, within ``window`` seconds, a node
  answered, then another one, then the first one again (answers interleave: two nodes
  hold the address and the client's ARP cache flips between them); ``any_pair=True``
  flags any two different nodes answering within the window, which also catches a
  single handover faster than the window. The daemon's lab tests assert "the client never
  sees both answer" with it.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import math
import os
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hamod.testing.lab import Lab

__all__ = [
    "MAX_TIMEOUT",
    "Analysis",
    "Gap",
    "Handover",
    "Overlap",
    "Sample",
    "analyze",
    "both_answered",
    "find_gaps",
    "handovers",
    "main",
    "parse_target",
    "probe",
    "probe_once",
    "read_samples",
    "serve",
]

MAX_TIMEOUT = 0.05
REQUEST = b"hamod-probe\n"
MAX_ANSWER = 256


# -- samples and analysis -------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """One request of the probe: when it started and ended (monotonic seconds), whether
    it got an answer, which node answered, and why it failed."""

    seq: int
    mono: float
    end: float
    ok: bool
    node: str | None = None
    error: str | None = None
    t: float = 0.0

    def to_json(self) -> str:
        """One JSON line (no newline)."""
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Sample:
        """The sample a JSON line describes (unknown keys are ignored)."""
        node = data.get("node")
        error = data.get("error")
        return cls(
            seq=int(data["seq"]),
            mono=float(data["mono"]),
            end=float(data.get("end", data["mono"])),
            ok=bool(data["ok"]),
            node=None if node is None else str(node),
            error=None if error is None else str(error),
            t=float(data.get("t", 0.0)),
        )


@dataclass(frozen=True)
class Gap:
    """An outage seen by the client: ``start`` = start of the first failed request,
    ``end`` = start of the first successful request after it (None: never recovered, then
    ``duration`` runs to the end of the last request)."""

    start: float
    end: float | None
    duration: float
    failures: int
    before: str | None
    after: str | None
    errors: tuple[str, ...] = ()

    @property
    def recovered(self) -> bool:
        """Whether a request succeeded after the gap."""
        return self.end is not None


@dataclass(frozen=True)
class Handover:
    """The answering node changed: ``last`` = start of ``old``'s last answer, ``first`` =
    start of ``new``'s first answer."""

    old: str
    new: str
    last: float
    first: float

    @property
    def silence(self) -> float:
        """Seconds between the two answers."""
        return self.first - self.last


@dataclass(frozen=True)
class Overlap:
    """Several nodes answered within one window (a two-primaries symptom)."""

    start: float
    end: float
    nodes: tuple[str, ...]


@dataclass(frozen=True)
class Analysis:
    """What the client saw: counts, every gap, the largest one, handovers, overlaps."""

    requests: int
    successes: int
    failures: int
    first: float | None
    last: float | None
    nodes: tuple[str, ...]
    gaps: tuple[Gap, ...]
    handovers: tuple[Handover, ...]
    both_answered: tuple[Overlap, ...]
    window: float
    errors: dict[str, int] = field(default_factory=dict)

    @property
    def largest(self) -> Gap | None:
        """The longest gap (None when no request failed)."""
        return max(self.gaps, key=lambda g: g.duration, default=None)

    @property
    def outage(self) -> float:
        """The longest gap in seconds (0.0 when no request failed)."""
        gap = self.largest
        return 0.0 if gap is None else gap.duration

    @property
    def recovered(self) -> bool:
        """Whether every gap ended with a success."""
        return all(g.recovered for g in self.gaps)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary."""
        return {
            "requests": self.requests,
            "successes": self.successes,
            "failures": self.failures,
            "first": self.first,
            "last": self.last,
            "nodes": list(self.nodes),
            "outage": self.outage,
            "recovered": self.recovered,
            "gaps": [asdict(g) for g in self.gaps],
            "handovers": [asdict(h) | {"silence": h.silence} for h in self.handovers],
            "both_answered": [asdict(o) for o in self.both_answered],
            "window": self.window,
            "errors": dict(self.errors),
        }


def _ordered(samples: Iterable[Sample]) -> list[Sample]:
    return sorted(samples, key=lambda s: (s.mono, s.seq))


def find_gaps(samples: Iterable[Sample]) -> list[Gap]:
    """Every outage: from the first failed request to the first success after it."""
    gaps: list[Gap] = []
    start: Sample | None = None
    before: str | None = None
    failures = 0
    errors: dict[str, None] = {}
    last_end = 0.0
    for s in _ordered(samples):
        last_end = max(last_end, s.end)
        if s.ok:
            if start is not None:
                gaps.append(
                    Gap(
                        start.mono,
                        s.mono,
                        s.mono - start.mono,
                        failures,
                        before,
                        s.node,
                        tuple(errors),
                    )
                )
                start, failures, errors = None, 0, {}
            before = s.node
        else:
            if start is None:
                start = s
            failures += 1
            errors.setdefault(s.error or "failed")
    if start is not None:
        gaps.append(
            Gap(
                start.mono,
                None,
                max(last_end, start.end) - start.mono,
                failures,
                before,
                None,
                tuple(errors),
            )
        )
    return gaps


def handovers(samples: Iterable[Sample]) -> list[Handover]:
    """Every change of the answering node, in order."""
    out: list[Handover] = []
    prev: Sample | None = None
    for s in _ordered(samples):
        if not s.ok or s.node is None:
            continue
        if prev is not None and prev.node is not None and s.node != prev.node:
            out.append(Handover(prev.node, s.node, prev.mono, s.mono))
        prev = s
    return out


def both_answered(
    samples: Iterable[Sample], window: float = 1.0, *, any_pair: bool = False
) -> list[Overlap]:
    """Windows in which two nodes answered. By default a window counts when its answers
    interleave (A, then B, then A again within ``window`` seconds): two nodes hold the
    address at once. ``any_pair=True`` counts any two different nodes answering within
    ``window`` seconds (a clean but fast handover counts too). Overlapping findings are
    merged."""
    answers = [(s.mono, s.node) for s in _ordered(samples) if s.ok and s.node is not None]
    found: list[Overlap] = []
    for i, (t0, n0) in enumerate(answers):
        seen: list[str] = [n0]
        for t1, n1 in answers[i + 1 :]:
            if t1 - t0 > window:
                break
            if n1 not in seen:
                seen.append(n1)
                if any_pair:
                    found.append(Overlap(t0, t1, tuple(seen)))
                    break
            elif n1 == n0 and len(seen) > 1:
                found.append(Overlap(t0, t1, tuple(seen)))
                break
    merged: list[Overlap] = []
    for o in found:
        if merged and o.start <= merged[-1].end:
            last = merged[-1]
            nodes = tuple(dict.fromkeys(last.nodes + o.nodes))
            merged[-1] = Overlap(last.start, max(last.end, o.end), nodes)
        else:
            merged.append(o)
    return merged


def analyze(
    samples: Iterable[Sample],
    *,
    since: float | None = None,
    until: float | None = None,
    window: float = 1.0,
    any_pair: bool = False,
) -> Analysis:
    """Analyse the requests that started in ``[since, until]`` (monotonic seconds)."""
    chosen = [
        s
        for s in _ordered(samples)
        if (since is None or s.mono >= since) and (until is None or s.mono <= until)
    ]
    errors: dict[str, int] = {}
    for s in chosen:
        if not s.ok:
            key = s.error or "failed"
            errors[key] = errors.get(key, 0) + 1
    ok = [s for s in chosen if s.ok]
    return Analysis(
        requests=len(chosen),
        successes=len(ok),
        failures=len(chosen) - len(ok),
        first=chosen[0].mono if chosen else None,
        last=chosen[-1].mono if chosen else None,
        nodes=tuple(dict.fromkeys(s.node for s in ok if s.node is not None)),
        gaps=tuple(find_gaps(chosen)),
        handovers=tuple(handovers(chosen)),
        both_answered=tuple(both_answered(chosen, window, any_pair=any_pair)),
        window=window,
        errors=errors,
    )


def read_samples(lines: Iterable[str]) -> list[Sample]:
    """Samples from JSON lines (blank lines and lines without ``seq`` are skipped)."""
    out: list[Sample] = []
    for line in lines:
        line = line.strip()
        if not line:
            continue
        data = json.loads(line)
        if isinstance(data, dict) and "seq" in data:
            out.append(Sample.from_dict(data))
    return out


# -- the probe ------------------------------------------------------------------------------


def parse_target(text: str) -> tuple[str, int]:
    """``"10.0.0.1:7070"`` or ``"[fd00::1]:7070"`` → (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"target {text!r}: use ADDRESS:PORT")
    return host.strip("[]"), int(port)


def _error_name(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timeout"
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, ConnectionResetError):
        return "reset"
    if isinstance(exc, OSError) and exc.errno is not None:
        return errno.errorcode.get(exc.errno, str(exc.errno)).lower()
    return type(exc).__name__


def probe_once(host: str, port: int, timeout: float, seq: int = 0) -> Sample:
    """One request: connect, send the request line, read the answer line, all within
    ``timeout`` seconds."""
    t = time.time()
    start = time.monotonic()
    deadline = start + timeout
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    node: str | None = None
    error: str | None = None
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect((host, port))
            sock.settimeout(max(deadline - time.monotonic(), 1e-4))
            sock.sendall(REQUEST)
            data = b""
            while b"\n" not in data and len(data) < MAX_ANSWER:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError
                sock.settimeout(left)
                chunk = sock.recv(MAX_ANSWER)
                if not chunk:
                    break
                data += chunk
            name = data.split(b"\n", 1)[0].decode("utf-8", "replace").strip()
            if name:
                node = name
            else:
                error = "empty"
    except (OSError, TimeoutError) as exc:
        error = _error_name(exc)
    end = time.monotonic()
    return Sample(seq, start, end, node is not None, node, error, t)


def probe(
    host: str,
    port: int,
    *,
    timeout: float = MAX_TIMEOUT,
    interval: float = 0.01,
    duration: float | None = None,
    count: int | None = None,
    emit: Callable[[Sample], None] | None = None,
    stop: threading.Event | None = None,
    workers: int | None = None,
) -> list[Sample]:
    """Start a request every ``interval`` seconds until ``duration`` seconds passed,
    ``count`` requests were sent or ``stop`` is set; return the samples in start order.

    Requests overlap: up to ``workers`` are in flight (default: enough to cover
    ``timeout``, i.e. ``ceil(timeout / interval) + 1``, at most 16), so the resolution of
    an outage stays ``interval`` even while every request waits for its timeout. With
    ``workers=1`` requests run one after the other (the next starts at once when one
    took longer than ``interval``). ``emit`` gets every sample as it completes (from
    worker threads, serialised)."""
    if not 0 < timeout <= MAX_TIMEOUT:
        raise ValueError(f"timeout {timeout}: must be in (0, {MAX_TIMEOUT}] s")
    if interval < 0:
        raise ValueError(f"interval {interval}: must be >= 0")
    if workers is None:
        workers = min(16, math.ceil(timeout / interval) + 1) if interval > 0 else 1
    if workers < 1:
        raise ValueError(f"workers {workers}: must be >= 1")
    samples: list[Sample] = []
    lock = threading.Lock()
    slots = threading.Semaphore(workers)

    def one(seq: int) -> None:
        try:
            sample = probe_once(host, port, timeout, seq)
            with lock:
                samples.append(sample)
                if emit is not None:
                    emit(sample)
        finally:
            slots.release()

    threads: list[threading.Thread] = []
    begin = time.monotonic()
    nxt = begin
    seq = 0
    while not (stop is not None and stop.is_set()):
        if count is not None and seq >= count:
            break
        now = time.monotonic()
        if duration is not None and now - begin >= duration:
            break
        if nxt > now:
            time.sleep(nxt - now)
        slots.acquire()
        nxt = time.monotonic() + interval
        thread = threading.Thread(target=one, args=(seq,), daemon=True)
        thread.start()
        threads = [t for t in threads if t.is_alive()]
        threads.append(thread)
        seq += 1
    for thread in threads:
        thread.join()
    return sorted(samples, key=lambda x: (x.mono, x.seq))


# -- the trivial service --------------------------------------------------------------------


class _Handler(socketserver.BaseRequestHandler):
    """Read one request line (or give up after 1 s), answer the node's name."""

    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.settimeout(1.0)
        try:
            data = b""
            while b"\n" not in data and len(data) < MAX_ANSWER:
                chunk = sock.recv(MAX_ANSWER)
                if not chunk:
                    break
                data += chunk
            name: str = getattr(self.server, "node_name", socket.gethostname())
            sock.sendall(name.encode() + b"\n")
        except OSError:
            pass


class _Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = 128


class _Server6(_Server):
    address_family = socket.AF_INET6


def serve(
    port: int,
    *,
    name: str | None = None,
    host: str = "0.0.0.0",
    ready: Callable[[str], None] | None = None,
) -> None:
    """Answer ``name`` (default: the hostname) to every request on ``host:port`` until
    SIGTERM/SIGINT. ``ready`` is called once listening."""
    node_name = name or socket.gethostname()
    run_server(_Handler, host, port, {"node_name": node_name}, ready,
               lambda bound: f"listening on {host}:{bound} as {node_name}")  # fmt: skip


def run_server(
    handler: type[socketserver.BaseRequestHandler],
    host: str,
    port: int,
    attrs: Mapping[str, object],
    ready: Callable[[str], None] | None,
    describe: Callable[[int], str],
) -> None:
    """Serve ``handler`` (threads) on ``host:port`` until SIGTERM/SIGINT, with ``attrs``
    set on the server; ``ready(describe(bound_port))`` once listening."""
    cls = _Server6 if ":" in host else _Server
    with cls((host, port), handler) as server:
        for key, value in attrs.items():
            setattr(server, key, value)

        def _stop(signum: int, frame: FrameType | None) -> None:
            threading.Thread(target=server.shutdown, daemon=True).start()

        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, _stop)
        if ready is not None:
            ready(describe(server.server_address[1]))
        with contextlib.suppress(KeyboardInterrupt):
            server.serve_forever(poll_interval=0.1)


# -- command line ---------------------------------------------------------------------------


def _print_line(out: IO[str]) -> Callable[[str], None]:
    def write(line: str) -> None:
        out.write(line + "\n")
        out.flush()

    return write


def _summary_lines(result: Analysis) -> Iterator[str]:
    yield (
        f"requests {result.requests}, ok {result.successes}, failed {result.failures}, "
        f"nodes {', '.join(result.nodes) or '-'}"
    )
    for g in result.gaps:
        end = "never recovered" if g.end is None else f"{g.before or '-'} -> {g.after}"
        yield f"gap {g.duration:.3f} s ({g.failures} failed: {', '.join(g.errors)}; {end})"
    for h in result.handovers:
        yield f"handover {h.old} -> {h.new} (silence {h.silence:.3f} s)"
    for o in result.both_answered:
        yield f"BOTH ANSWERED within {result.window} s: {', '.join(o.nodes)}"
    yield f"outage {result.outage:.3f} s"


def _probe_cmd(args: argparse.Namespace) -> int:
    host, port = parse_target(args.target)
    out: IO[str] = sys.stdout if args.out in (None, "-") else open(args.out, "w")  # noqa: SIM115
    stop = threading.Event()
    write = _print_line(out)

    def _stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        samples = probe(
            host,
            port,
            timeout=args.timeout,
            interval=args.interval,
            duration=args.duration,
            count=args.count,
            emit=lambda s: write(s.to_json()),
            stop=stop,
            workers=args.workers,
        )
    finally:
        if out is not sys.stdout:
            out.close()
    if args.summary:
        result = analyze(samples, window=args.window)
        print(json.dumps(result.to_dict()), file=sys.stderr)
    return 0 if any(s.ok for s in samples) or not samples else 1


def _analyze_cmd(args: argparse.Namespace) -> int:
    if args.file == "-":
        samples = read_samples(sys.stdin)
    else:
        samples = read_samples(Path(args.file).read_text().splitlines())
    result = analyze(samples, window=args.window, any_pair=args.any_pair)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        for line in _summary_lines(result):
            print(line)
    return 1 if result.both_answered else 0


def _serve_cmd(args: argparse.Namespace) -> int:
    serve(args.port, name=args.name, host=args.host, ready=_print_line(sys.stdout))
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m hamod.testing.outage",
        description="Client-side outage probe: probe (default), serve, analyze.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("probe", help="probe VIP:PORT, one JSON line per request")
    p.add_argument("--target", required=True, help="ADDRESS:PORT (the virtual IP)")
    p.add_argument("--timeout", type=float, default=MAX_TIMEOUT, help="per request, <= 0.05 s")
    p.add_argument("--interval", type=float, default=0.01, help="seconds between requests")
    p.add_argument("--duration", type=float, default=None, help="stop after S seconds")
    p.add_argument("--count", type=int, default=None, help="stop after N requests")
    p.add_argument(
        "--workers", type=int, default=None, help="requests in flight at most (default: auto)"
    )
    p.add_argument("--out", default=None, help="JSON lines file (default stdout)")
    p.add_argument("--summary", action="store_true", help="analysis as JSON on stderr")
    p.add_argument("--window", type=float, default=1.0, help="both-answered window (s)")
    p.set_defaults(func=_probe_cmd)
    s = sub.add_parser("serve", help="answer the hostname on PORT")
    s.add_argument("--port", type=int, default=7070)
    s.add_argument("--host", default="0.0.0.0")
    s.add_argument("--name", default=None, help="answer this instead of the hostname")
    s.set_defaults(func=_serve_cmd)
    a = sub.add_parser("analyze", help="gaps, handovers, both-answered in a probe log")
    a.add_argument("file", help="JSON lines from probe ('-' = stdin)")
    a.add_argument("--window", type=float, default=1.0)
    a.add_argument("--any-pair", action="store_true", help="flag any two nodes in a window")
    a.add_argument("--json", action="store_true")
    a.set_defaults(func=_analyze_cmd)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m hamod.testing.outage [probe|serve|analyze] ...`` (probe by default)."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if not args_list or args_list[0] not in ("probe", "serve", "analyze", "-h", "--help"):
        args_list.insert(0, "probe")
    args = _parser().parse_args(args_list)
    try:
        code: int = args.func(args)
    except ValueError as exc:
        print(f"outage: {exc}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())


# --- the probe as a live process in a lab -----------------------------------------------


class LiveProbe:
    """The probe running in the lab's client namespace, its samples arriving live (a
    reader thread parses its JSON lines). Used by the acceptance tests and the failover
    benchmark alike."""

    def __init__(
        self, lab: Lab, target: str, *, timeout: float = MAX_TIMEOUT, interval: float = 0.01
    ) -> None:
        self.target = target
        argv = [
            sys.executable, "-m", "hamod.testing.outage", "probe", "--target", target,
            "--timeout", str(timeout), "--interval", str(interval),
        ]  # fmt: skip
        self.proc = lab.popen("client", argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.started = time.monotonic()
        self._samples: list[Sample] = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with contextlib.suppress(ValueError, KeyError):
                sample = Sample.from_dict(json.loads(line))
                with self._lock:
                    self._samples.append(sample)

    @property
    def samples(self) -> list[Sample]:
        """The samples so far, in start order."""
        with self._lock:
            return sorted(self._samples, key=lambda s: (s.mono, s.seq))

    def wait_for(self, check: Callable[[list[Sample]], bool], timeout: float) -> bool:
        """Poll until ``check(samples)`` holds (True) or ``timeout`` passes (False)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check(self.samples):
                return True
            if self.proc.poll() is not None:
                break
            time.sleep(0.01)
        return check(self.samples)

    def terminate(self, grace: float = 5.0) -> list[Sample]:
        """Stop the probe (SIGTERM to its group: it finishes its request; SIGKILL after
        ``grace``), let the reader drain it, and return every sample."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._reader.join(timeout=grace)
        return self.samples

    def stderr(self) -> str:
        """What the probe printed on stderr (after :meth:`terminate`)."""
        if self.proc.stderr is None:
            return ""
        with contextlib.suppress(OSError, ValueError):
            return self.proc.stderr.read()
        return ""

    def close(self) -> None:
        """Close the probe's pipes (after :meth:`terminate`)."""
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
