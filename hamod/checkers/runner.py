"""The checker runner: one asyncio task per checker, results to the core on changes.

Every ``interval`` each checker whose ``when`` filter allows it is probed once
(:func:`hamod.checkers.probes.probe`, bounded by its ``timeout``). The runner counts
consecutive ``down`` probes and reports a :class:`~hamod.core.events.CheckerResult` to
the sink only when the reported health changes:

- ``down`` after ``fail_after`` consecutive downs (carrying the checker's ``action``);
- ``up`` on the first up after anything else (recovery, or the first probe);
- ``unknown`` once when the probe cannot tell (crash, hang); unknown neither counts as
  a failure nor clears the count, and the core never acts on it.

A checker that its filter skips forgets its count and its reported health, so it is
reported afresh when it runs again. The last probe of each checker (health, time from
the injectable clock, reason) is kept for ``hamod state -v``. Decisions stay in the core.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from hamod.checkers.probes import ProbeContext, probe
from hamod.checkers.result import Probe
from hamod.config.checkers import Checker, ProcessChecker
from hamod.core.events import CheckAction, CheckerResult, Health
from hamod.errors import UsageError

__all__ = ["CheckerRunner", "LastResult", "ProbeFn", "ShouldRun", "Sink", "when_states"]

log = logging.getLogger("hamod.checkers")

Sink = Callable[[CheckerResult], None]
ShouldRun = Callable[[Checker], bool]
ProbeFn = Callable[[Checker, ProbeContext], Awaitable[Probe]]


@dataclass(frozen=True)
class LastResult:
    """A checker's last probe, for ``hamod state -v``.

    ``at`` is None (and ``health`` unknown) before the first probe; ``reported`` is the
    health last sent to the core (None: nothing yet); ``failures`` counts consecutive
    downs."""

    name: str
    type: str
    health: Health = Health.UNKNOWN
    at: float | None = None
    reason: str = "not run yet"
    reported: Health | None = None
    failures: int = 0


def when_states(current: Callable[[], str | None]) -> ShouldRun:
    """A filter running a checker when ``current()`` (the module's state, None during a
    transition) is one of its ``when`` states."""

    def should_run(cfg: Checker) -> bool:
        state = current()
        return state is not None and state in cfg.when

    return should_run


def _always(cfg: Checker) -> bool:
    return True


class CheckerRunner:
    """Runs ``checkers`` and sends their results to ``sink``.

    ``should_run`` is the daemon's filter (see :func:`when_states`), ``ctx`` what probes
    need, ``clock`` the time stamped on results, ``probe_fn`` the probe (injectable)."""

    def __init__(
        self,
        checkers: Iterable[Checker],
        sink: Sink,
        *,
        should_run: ShouldRun = _always,
        ctx: ProbeContext | None = None,
        clock: Callable[[], float] = time.time,
        probe_fn: ProbeFn = probe,
    ) -> None:
        self._checkers: dict[str, Checker] = {}
        for cfg in checkers:
            if cfg.name in self._checkers:
                raise UsageError(f"two checkers named {cfg.name!r}")
            self._checkers[cfg.name] = cfg
        self._sink = sink
        self._should_run = should_run
        self._ctx = ctx or ProbeContext()
        self._clock = clock
        self._probe = probe_fn
        self._last = {n: LastResult(n, c.type) for n, c in self._checkers.items()}
        self._tasks: dict[str, asyncio.Task[None]] = {}

    # -- state -------------------------------------------------------------------------

    def results(self) -> tuple[LastResult, ...]:
        """The last result of every checker, in configuration order."""
        return tuple(self._last.values())

    def result(self, name: str) -> LastResult:
        """The last result of checker ``name``."""
        try:
            return self._last[name]
        except KeyError:
            raise UsageError(f"no checker named {name!r}") from None

    def reset(self, name: str | None = None) -> None:
        """Forget the failure count and reported health of ``name`` (or all checkers),
        e.g. after the core acted: the next ``fail_after`` downs are reported again."""
        for n in (name,) if name is not None else tuple(self._last):
            last = self.result(n)
            self._last[n] = LastResult(n, last.type, last.health, last.at, last.reason)

    # -- one probe ---------------------------------------------------------------------

    async def check(self, name: str) -> CheckerResult | None:
        """Probe ``name`` once now (ignoring the filter), account for it and report it if
        its health changed. Returns the result sent to the sink, if any."""
        cfg = self._checkers.get(name)
        if cfg is None:
            raise UsageError(f"no checker named {name!r}")
        seen = await self._probe(cfg, self._ctx)
        return self._account(cfg, seen)

    def _account(self, cfg: Checker, seen: Probe) -> CheckerResult | None:
        last = self._last[cfg.name]
        failures = last.failures + 1 if seen.health is Health.DOWN else last.failures
        if seen.health is Health.UP:
            failures = 0
        report: Health | None = None
        if seen.health is Health.DOWN:
            if failures >= cfg.fail_after and last.reported is not Health.DOWN:
                report = Health.DOWN
        elif seen.health is not last.reported:
            report = seen.health
        if seen.health is Health.DOWN and report is None and last.reported is not Health.DOWN:
            log.debug("%s: down (%d/%d): %s", cfg.name, failures, cfg.fail_after, seen.detail)
        self._last[cfg.name] = LastResult(
            cfg.name,
            cfg.type,
            seen.health,
            self._clock(),
            seen.detail,
            report if report is not None else last.reported,
            failures,
        )
        if report is None:
            return None
        event = CheckerResult(
            name=cfg.name,
            health=report,
            action=CheckAction(cfg.action),
            errd=isinstance(cfg, ProcessChecker),
        )
        self._log(cfg, report, seen.detail, failures)
        try:
            self._sink(event)
        except Exception:
            log.exception("%s: the checker sink failed on %s", cfg.name, report.value)
        return event

    def _log(self, cfg: Checker, health: Health, detail: str, failures: int) -> None:
        if health is Health.DOWN:
            log.warning(
                "checker %s %s: down after %d consecutive failures (action %s): %s",
                cfg.type, cfg.name, failures, cfg.action, detail,
            )  # fmt: skip
        elif health is Health.UNKNOWN:
            log.warning("checker %s %s: unknown, no action: %s", cfg.type, cfg.name, detail)
        else:
            log.info("checker %s %s: up: %s", cfg.type, cfg.name, detail)

    # -- tasks -------------------------------------------------------------------------

    def start(self) -> None:
        """Start one task per checker on the running loop (idempotent)."""
        for name, cfg in self._checkers.items():
            task = self._tasks.get(name)
            if task is None or task.done():
                self._tasks[name] = asyncio.create_task(self._loop(cfg), name=f"checker:{name}")

    async def stop(self) -> None:
        """Cancel every checker task and wait for them."""
        tasks = tuple(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _loop(self, cfg: Checker) -> None:
        loop = asyncio.get_running_loop()
        interval = float(cfg.interval)
        while True:
            began = loop.time()
            try:
                if self._should_run(cfg):
                    await self.check(cfg.name)
                elif self._last[cfg.name].failures or self._last[cfg.name].reported:
                    self.reset(cfg.name)
            except Exception:  # a broken filter or sink must not kill the checker
                log.exception("checker %s: runner error", cfg.name)
            await asyncio.sleep(max(0.0, interval - (loop.time() - began)))
