"""One actor per module: an asyncio queue of events, the core's ``step`` for each, one log
line per transition, and the execution of the decided actions through the ports.

For each event: apply its view update (peer announcement, networks, witness), call
``step``; log ``STATE(phase) -> STATE(phase): reason [rows]``; then execute the actions
in order — ``RecordDurable`` first (fsynced), scripts in tasks that post ``ScriptOk`` /
``ScriptFailed``, VIPs and data path roles awaited, lease requests in tasks that post
``LeaseGranted`` / ``LeaseDenied`` (unanswered: nothing, the core's tick times out). The
actor decides nothing: a failing port is logged and reported as an event (a VIP or data
path failure is ``DataPathFailed``, a script that could not run ``ScriptFailed``). The
one catch-all of the runtime loop is :meth:`ModuleActor.run`: a bug while handling one
event is logged with its traceback and the next event is handled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, replace
from typing import Any

from hamod.core.actions import (
    Action,
    Announce,
    ArmLeaseTimer,
    EnsureDataPath,
    EnsureVip,
    NewGeneration,
    RecordDurable,
    ReleaseLease,
    RequestLease,
    RunScript,
    StartResync,
    StopResync,
)
from hamod.core.events import (
    Command,
    DataPathFailed,
    Event,
    LeaseDenied,
    LeaseGranted,
    LeaseTimer,
    On,
    ScriptFailed,
    ScriptOk,
    Tick,
)
from hamod.core.machine import Decision, step
from hamod.core.model import PRIMARY, ModuleState, Phase, View, Witness, awaits_mirror
from hamod.core.resume import Resumed
from hamod.runtime.logs import ModuleLog
from hamod.runtime.ports import (
    Clock,
    DataPath,
    Marker,
    Markers,
    Scripts,
    Store,
    TimerHandle,
    Vips,
    Watchdog,
)
from hamod.runtime.ports import Witness as WitnessPort

log = logging.getLogger(__name__)
ViewUpdate = Callable[[View], View]


@dataclass(frozen=True)
class Ports:
    """Everything a module actor talks to."""

    clock: Clock
    scripts: Scripts
    vips: Vips
    store: Store
    markers: Markers
    witness: WitnessPort | None = None
    watchdog: Watchdog | None = None


def describe(s: ModuleState) -> str:
    return f"{s.state.value}({s.phase.value})"


def transition_line(before: ModuleState, d: Decision) -> str:
    """``WAIT(NotReady) -> ALONE(Transient): reason [row, row]``."""
    return f"{describe(before)} -> {describe(d.state)}: {d.reason} [{', '.join(d.rows)}]"


class ModuleActor:
    """Runs one module: ``post`` events, ``await command(On.X)``, ``await run()``."""

    def __init__(
        self,
        name: str,
        view: View,
        state: ModuleState,
        ports: Ports,
        mlog: ModuleLog,
        datapath: Callable[[Callable[[Event], None]], DataPath],
        watchdog_margin: float = 0.0,
    ) -> None:
        self.name = name
        self.view = view
        self.state = state
        self.ports = ports
        self.log = mlog
        self.datapath = datapath(self.post)
        self.last_reason = ""
        self.on_announce: Callable[[], None] | None = None
        self.on_step: Callable[[Decision], None] | None = None
        self._queue: asyncio.Queue[tuple[Event, ViewUpdate | None, asyncio.Future[Decision] | None]]
        self._queue = asyncio.Queue()
        self._tasks: set[asyncio.Task[None]] = set()
        self._timer: TimerHandle | None = None
        self._leases: set[int] = set()
        self._armed = False
        self._fault: str | None = None  # a failure the core could not take yet
        self._wd_margin = watchdog_margin

    # --- feeding ---------------------------------------------------------------------

    def post(self, event: Event, update: ViewUpdate | None = None) -> None:
        """Queue ``event`` (its view ``update`` applied just before the step)."""
        self._queue.put_nowait((event, update, None))

    async def submit(self, event: Event) -> Decision:
        """Queue ``event`` and wait for its decision (admin commands)."""
        fut: asyncio.Future[Decision] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((event, None, fut))
        return await fut

    async def command(self, cmd: On) -> Decision:
        return await self.submit(Command(cmd))

    # --- the loop --------------------------------------------------------------------

    async def run(self) -> None:
        """Handle events until cancelled: the runtime loop's one catch-all is here."""
        while True:
            event, update, fut = await self._queue.get()
            try:
                d = await self.handle(event, update)
            except asyncio.CancelledError:
                if fut is not None and not fut.done():
                    fut.cancel()
                raise
            except Exception as exc:
                log.exception("module %s: error while handling %s", self.name, event)
                self.log.error(f"internal error while handling {event.key.value}: {exc!r}")
                if fut is not None and not fut.done():
                    fut.set_exception(exc)
                continue
            if fut is not None and not fut.done():
                fut.set_result(d)

    async def drain(self) -> None:
        """Handle every queued event now (tests)."""
        while not self._queue.empty():
            event, update, fut = self._queue.get_nowait()
            d = await self.handle(event, update)
            if fut is not None and not fut.done():
                fut.set_result(d)

    async def handle(self, event: Event, update: ViewUpdate | None = None) -> Decision:
        """One event: view update, step, log, actions."""
        if update is not None:
            self.view = update(self.view)
        now = self.ports.clock.now()
        before = self.state
        d = step(before, self.view, event, now)
        self.state = d.state
        if d.rows:
            self.last_reason = d.reason
            self.log.info(transition_line(before, d))
        elif d.refused:
            self.log.warning(f"{event.key.value}: {d.reason}")
        for action in d.actions:
            await self._execute(action)
        if isinstance(event, Tick):
            self._pulse(now)
        elif d.state.state is not before.state or d.state.pending != before.pending:
            self._watchdog(now)
        if d.rows or isinstance(event, Tick):
            self.save_marker(now)
        if self.on_step is not None:
            self.on_step(d)
        return d

    def resume(self, r: Resumed) -> None:
        """Take over a module from a dead daemon (see :func:`hamod.core.resume.resume`):
        its state, and its view of the peer as last seen (until heard again or lost)."""
        self.state = r.state
        self.view = replace(self.view, peer=r.peer)
        self.datapath.peer_changed(r.peer)
        self.log.info(f"{describe(r.state)}: {r.reason}")
        for action in r.actions:
            if isinstance(action, EnsureDataPath):
                pending = self.datapath.ensure_role(action.role)
                if pending is not None:
                    self._spawn(self._await_role(pending, action))
            elif isinstance(action, ArmLeaseTimer):
                self._arm_timer(action.at)
        if r.follow is not None:
            self.post(r.follow)

    # --- actions ---------------------------------------------------------------------

    async def _execute(self, a: Action) -> None:
        """One action; a failing port becomes an event, never an exception."""
        try:
            await self._do(a)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            why = f"{a.tag} failed: {exc}"
            self.log.error(why)
            log.debug("module %s: %s", self.name, why, exc_info=True)
            if isinstance(a, EnsureVip | EnsureDataPath | RecordDurable):
                self._fault = why
                self.post(DataPathFailed(why))
            elif isinstance(a, RunScript) and a.awaited:
                self.post(ScriptFailed(a.script))

    async def _do(self, a: Action) -> None:
        ports = self.ports
        if isinstance(a, RecordDurable):
            await asyncio.to_thread(ports.store.save, a.durable)
        elif isinstance(a, RunScript):
            self._spawn(self._script(a))
        elif isinstance(a, EnsureVip):
            changed = await ports.vips.ensure(a.present)
            self._fault = None
            if changed:
                self.log.info(f"VIP {'added' if a.present else 'removed'}: {a.reason}")
        elif isinstance(a, EnsureDataPath):
            pending = self.datapath.ensure_role(a.role)
            if pending is not None:
                await pending
        elif isinstance(a, StartResync):
            self.datapath.start_resync(a)
        elif isinstance(a, StopResync):
            self.datapath.stop_resync()
        elif isinstance(a, NewGeneration):
            self.datapath.new_generation(a.generation)
            self.log.info(f"new data generation {a.generation}: {a.reason}")
        elif isinstance(a, RequestLease):
            self._request_lease(a.term)
        elif isinstance(a, ReleaseLease):
            if ports.witness is not None:
                self._spawn(ports.witness.release(a.term))
        elif isinstance(a, ArmLeaseTimer):
            self._arm_timer(a.at)
        elif isinstance(a, Announce) and self.on_announce is not None:
            self.on_announce()

    async def _await_role(self, pending: Awaitable[None], a: EnsureDataPath) -> None:
        try:
            await pending
        except Exception as exc:
            why = f"{a.tag} failed: {exc}"
            self.log.error(why)
            self._fault = why
            self.post(DataPathFailed(why))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _script(self, a: RunScript) -> None:
        args = f"{a.cur.value} {a.next.value} {a.verb.value}{' force' if a.force else ''}"
        try:
            out = await self.ports.scripts.run(
                a.script.value, a.cur.value, a.next.value, a.verb.value, a.force
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.log.error(f"script {a.script.value} could not run: {exc}")
            if a.awaited:
                self.post(ScriptFailed(a.script))
            return
        level = "I" if out.ok else "E"
        self.log.write(level, f"script {a.script.value} {args}: {out.detail}")
        if a.awaited:
            self.post(ScriptOk(a.script) if out.ok else ScriptFailed(a.script, out.timeout))

    def _request_lease(self, term: int) -> None:
        witness = self.ports.witness
        if witness is None or term in self._leases:
            return
        self._leases.add(term)

        async def ask() -> None:
            try:
                answer = await witness.request(term)
            except Exception as exc:
                log.warning("module %s: lease request failed: %s", self.name, exc)
                answer = None
            finally:
                self._leases.discard(term)
            if answer is None:
                return
            if answer.granted:
                lease = self.view.params.lease
                self.post(LeaseGranted(answer.term, answer.lease_end - lease))
            else:
                self.post(LeaseDenied(term, answer.term, answer.holder))

        self._spawn(ask())

    def _arm_timer(self, at: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.ports.clock.call_at(at, lambda: self.post(LeaseTimer()))

    # --- every pulse -----------------------------------------------------------------

    def _pulse(self, now: float) -> None:
        s = self.state
        # also after a swap (hand-over): the new primary's "mirroring" may have come
        # before its PRIM announcement, when the data path could not report it yet
        self.datapath.tick(awaits_mirror(s))
        if self._fault is not None and s.state in PRIMARY and s.phase is Phase.READY:
            # reported while a transition was in progress (ignored then): again, now
            self.post(DataPathFailed(self._fault))
            self._fault = None
        self._watchdog(now)

    def serving(self) -> bool:
        """The application runs (or is being started/stopped) as primary here."""
        return self.state.state in PRIMARY

    def watchdog_deadline(self, now: float) -> float:
        """When the watchdog must fence unless re-armed: the lease end with the
        arbitrator; otherwise before the peer can declare us lost (``timeout`` after our
        last heartbeat, minus a margin)."""
        p = self.view.params
        if p.witness is Witness.ARBITRATOR and self.state.lease_until > 0:
            return self.state.lease_until
        margin = self._wd_margin or min(p.timeout / 2, max(2 * p.pulse, 0.2 * p.timeout))
        return now + p.timeout - margin

    def _watchdog(self, now: float) -> None:
        wd = self.ports.watchdog
        if wd is None:
            return
        if self.serving():
            wd.arm(self.watchdog_deadline(now), self.state.state.value)
            self._armed = True
        elif self._armed:
            wd.disarm()
            self._armed = False

    def save_marker(self, now: float) -> None:
        with contextlib.suppress(OSError):
            self.ports.markers.save(
                Marker(self.state, now, self.view.params.config_hash, self.view.peer)
            )

    async def stop(self) -> None:
        """Cancel the tasks (scripts keep running as processes) and the timer."""
        if self._timer is not None:
            self._timer.cancel()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
