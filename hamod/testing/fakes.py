"""In-memory fakes of the runtime's ports (:mod:`hamod.runtime.ports`): a manual clock
with timers, scripts that record their calls and answer as told, VIPs, an arbitrator
built on the pure :mod:`hamod.core.arbiter`, a watchdog, a status store and a resume
marker. Runtime tests use these; they never patch.
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Callable
from dataclasses import dataclass, field

from hamod.core import arbiter as arb
from hamod.core.model import Durable
from hamod.errors import AdapterError
from hamod.runtime.ports import LeaseAnswer, Marker, ScriptOutcome


@dataclass
class _Timer:
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeClock:
    """Time moves only when :meth:`advance` says so; due timers then fire in order."""

    def __init__(self, start: float = 1000.0) -> None:
        self.t = start
        self._timers: list[tuple[float, int, _Timer, Callable[[], None]]] = []
        self._seq = 0

    def now(self) -> float:
        return self.t

    def call_at(self, at: float, fn: Callable[[], None]) -> _Timer:
        handle = _Timer()
        self._seq += 1
        heapq.heappush(self._timers, (at, self._seq, handle, fn))
        return handle

    def advance(self, dt: float) -> None:
        end = self.t + dt
        while self._timers and self._timers[0][0] <= end:
            at, _, handle, fn = heapq.heappop(self._timers)
            self.t = max(self.t, at)
            if not handle.cancelled:
                fn()
        self.t = end

    @property
    def pending(self) -> int:
        return sum(1 for t in self._timers if not t[2].cancelled)


@dataclass(frozen=True)
class ScriptCall:
    script: str
    args: tuple[str, ...]


class FakeScripts:
    """Records every run (``calls``, with SafeKit's arguments); succeeds unless told
    otherwise with :meth:`fail_next`; raises :class:`AdapterError` once after
    :meth:`break_next`."""

    def __init__(self) -> None:
        self.calls: list[ScriptCall] = []
        self._fail: dict[str, int] = {}
        self._broken: set[str] = set()
        self.on_run: Callable[[ScriptCall], None] | None = None

    def fail_next(self, script: str, times: int = 1) -> None:
        self._fail[script] = self._fail.get(script, 0) + times

    def break_next(self, script: str) -> None:
        self._broken.add(script)

    @property
    def names(self) -> list[str]:
        return [c.script for c in self.calls]

    async def run(self, script: str, cur: str, nxt: str, verb: str, force: bool) -> ScriptOutcome:
        call = ScriptCall(script, (*(("force",) if force else ()), cur, nxt, verb))
        self.calls.append(call)
        if self.on_run is not None:
            self.on_run(call)
        await asyncio.sleep(0)
        if script in self._broken:
            self._broken.discard(script)
            raise AdapterError(f"{script}: cannot write its log")
        if self._fail.get(script):
            self._fail[script] -= 1
            return ScriptOutcome(False, False, "failed: exit 1")
        return ScriptOutcome(True, False, "ok: exit 0")


class FakeVips:
    """VIP presence as a flag; ``history`` of every change; :meth:`fail_next` raises."""

    def __init__(self, present: bool = False) -> None:
        self.present = present
        self.history: list[bool] = []
        self.calls = 0
        self._fail = 0
        self.on_change: Callable[[bool], None] | None = None

    def fail_next(self, times: int = 1) -> None:
        self._fail += times

    async def ensure(self, present: bool) -> bool:
        self.calls += 1
        if self._fail:
            self._fail -= 1
            raise AdapterError("VIP: netlink said no")
        if present == self.present:
            return False
        self.present = present
        self.history.append(present)
        if self.on_change is not None:
            self.on_change(present)
        return True


class FakeArbitrator:
    """The pure arbitrator with a clock; ``reachable`` False makes requests unanswered."""

    def __init__(self, clock: FakeClock, cluster: str = "c") -> None:
        self.clock = clock
        self.cluster = cluster
        self.state = arb.ArbiterState()
        self.reachable = True
        self.requests: list[tuple[str, int]] = []
        self.releases: list[tuple[str, int]] = []


class FakeWitness:
    """One module's view of a :class:`FakeArbitrator`."""

    def __init__(self, arbitrator: FakeArbitrator, module: str, node: str, lease: float) -> None:
        self.arb, self.module, self.node, self.lease = arbitrator, module, node, lease

    async def request(self, term: int) -> LeaseAnswer | None:
        a = self.arb
        a.requests.append((self.node, term))
        await asyncio.sleep(0)
        if not a.reachable:
            return None
        sent = a.clock.now()
        req = arb.LeaseRequest(a.cluster, self.module, self.node, term, self.lease)
        a.state, rep = arb.request(a.state, req, sent)
        return LeaseAnswer(rep.granted, rep.term, rep.holder, sent + self.lease)

    async def release(self, term: int) -> None:
        a = self.arb
        a.releases.append((self.node, term))
        if a.reachable:
            a.state = arb.release(a.state, a.cluster, self.module, self.node, term, a.clock.now())


@dataclass
class FakeWatchdog:
    """Records ``("arm", deadline, state)`` and ``("disarm",)``."""

    events: list[tuple[object, ...]] = field(default_factory=list)

    def arm(self, deadline: float, state: str) -> bool:
        self.events.append(("arm", deadline, state))
        return True

    def disarm(self) -> bool:
        self.events.append(("disarm",))
        return True

    @property
    def armed(self) -> bool:
        return bool(self.events) and self.events[-1][0] == "arm"


class MemoryStore:
    """The durable status in memory; ``saves`` counts writes; :meth:`fail_next` raises."""

    def __init__(self, durable: Durable | None = None) -> None:
        self.durable = durable
        self.saves = 0
        self._fail = 0
        self.on_save: Callable[[Durable], None] | None = None

    def fail_next(self) -> None:
        self._fail += 1

    def load(self) -> Durable | None:
        return self.durable

    def save(self, durable: Durable) -> None:
        if self._fail:
            self._fail -= 1
            raise AdapterError("status store: disk full")
        self.durable = durable
        self.saves += 1
        if self.on_save is not None:
            self.on_save(durable)


class MemoryMarkers:
    """The resume marker in memory (``None`` after a simulated reboot)."""

    def __init__(self, marker: Marker | None = None) -> None:
        self.marker = marker

    def load(self) -> Marker | None:
        return self.marker

    def save(self, marker: Marker) -> None:
        self.marker = marker

    def clear(self) -> None:
        self.marker = None
