"""Fencing one module: remove its VIPs, then run ``stop_prim`` with ``force``.

Owns the side effects of an expired deadline and their retries. The VIPs go first: the
moment they are gone, clients stop reaching this node, so nothing it does afterwards can
be seen by them; the application stop may then take its time (its nice timeout) without
clients talking to a node about to be replaced. ``stop_prim`` runs through
:class:`~hamod.adapters.scripts.ScriptRunner` with SafeKit's forced-stop arguments
(``stop_prim force PRIM STOP stop``), so the user's script and its log are the usual ones.

Retries: a VIP that could not be removed, or a ``stop_prim`` that could not be run at
all (log not writable, not executable...), is retried with a growing delay until done or
until the watchdog is told to stop. A ``stop_prim`` that ran and failed, or timed out
(its processes are then killed by ScriptRunner), is reported and not run again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from hamod.adapters.scripts import (
    Action,
    Outcome,
    ScriptEnvironment,
    ScriptResult,
    ScriptRunner,
    Transition,
)
from hamod.adapters.vip import VipManager
from hamod.errors import AdapterError
from hamod.watchdog.messages import StopSpec, VipRef
from hamod.watchdog.state import FenceJob

__all__ = ["RETRY_DELAYS", "FenceResult", "Fencer"]

RETRY_DELAYS = (0.2, 0.5, 1.0, 2.0, 5.0)
"""Seconds between fencing attempts; the last one repeats."""


@dataclass(frozen=True)
class FenceResult:
    """How fencing one module ended."""

    module: str
    complete: bool  # every VIP gone and stop_prim run
    attempts: int
    duration: float
    script: ScriptResult | None  # the stop_prim run that counted, if any
    vips_left: tuple[str, ...]  # VIPs that could not be removed (complete=False)


def _where(ref: VipRef) -> str:
    return f"netns {ref.netns}" if ref.netns else "the watchdog's netns"


def _runner(module: str, stop: StopSpec) -> ScriptRunner:
    env = stop.env
    return ScriptRunner(
        module,
        Path(stop.bin_dir),
        Path(stop.log_dir),
        ScriptEnvironment(
            home=Path(env.home),
            bin=Path(env.bin),
            var=Path(env.var),
            user_var=Path(env.user_var),
            user_conf=Path(env.user_conf),
            user_vars=dict(env.user_vars),
            path=env.path,
        ),
    )


class Fencer:
    """Fences modules, logging every step to ``log``."""

    def __init__(self, log: logging.Logger, retry_delays: Sequence[float] = RETRY_DELAYS) -> None:
        if not retry_delays:
            raise ValueError("retry_delays must not be empty")
        self._log = log
        self._delays = tuple(retry_delays)

    async def fence(self, job: FenceJob, keep_trying: Callable[[], bool]) -> FenceResult:
        """Fence ``job.module``; retry what failed while ``keep_trying()``."""
        name = job.module
        started = time.monotonic()
        pending_vips = list(job.arm.vips)
        script: ScriptResult | None = None
        script_done = False
        attempt = 0
        while True:
            attempt += 1
            # Blocking netlink calls (pyroute2 runs its own loop): off the event loop.
            pending_vips = await asyncio.to_thread(self._remove_vips, name, pending_vips, attempt)
            if not script_done:
                script_done, script = await self._stop(name, job.arm.stop, attempt)
            if script_done and not pending_vips:
                break
            if not keep_trying():
                self._log.error("module %s: fencing stopped before completion", name)
                break
            delay = self._delays[min(attempt - 1, len(self._delays) - 1)]
            self._log.warning(
                "module %s: fencing attempt %d incomplete; retry in %gs", name, attempt, delay
            )
            await asyncio.sleep(delay)
        return FenceResult(
            module=name,
            complete=script_done and not pending_vips,
            attempts=attempt,
            duration=time.monotonic() - started,
            script=script,
            vips_left=tuple(v.addr for v in pending_vips),
        )

    def _remove_vips(self, module: str, vips: list[VipRef], attempt: int) -> list[VipRef]:
        """Remove ``vips``; the ones still there."""
        left: list[VipRef] = []
        for ref in vips:
            try:
                with VipManager(ref.netns) as manager:
                    changed = manager.ensure_absent(ref.addr)
            except AdapterError as exc:
                self._log.error(
                    "module %s: VIP %s not removed (attempt %d): %s", module, ref.addr, attempt, exc
                )
                left.append(ref)
            except Exception as exc:  # pyroute2 may raise anything; never die here
                self._log.error(
                    "module %s: VIP %s not removed (attempt %d): %s: %s",
                    module,
                    ref.addr,
                    attempt,
                    type(exc).__name__,
                    exc,
                )
                left.append(ref)
            else:
                done = "removed" if changed else "already absent"
                self._log.warning("module %s: VIP %s %s in %s", module, ref.addr, done, _where(ref))
        return left

    async def _stop(
        self, module: str, stop: StopSpec, attempt: int
    ) -> tuple[bool, ScriptResult | None]:
        """Run ``stop_prim force``; (done, result). Not done = could not run: retry."""
        args = Transition(stop.state, "STOP", Action.STOP)
        shown = f"stop_prim force {args.current} {args.next} {args.action}"
        self._log.warning(
            "module %s: running %s in %s (nice %gs, force %gs)",
            module,
            shown,
            stop.bin_dir,
            stop.nice_timeout,
            stop.force_timeout,
        )
        try:
            result = await _runner(module, stop).run(
                "stop_prim",
                args,
                nice_timeout=stop.nice_timeout,
                force_timeout=stop.force_timeout,
                force=True,
            )
        except AdapterError as exc:
            self._log.error(
                "module %s: %s could not run (attempt %d): %s", module, shown, attempt, exc
            )
            return False, None
        except Exception as exc:  # the watchdog itself must survive anything
            self._log.error(
                "module %s: %s could not run (attempt %d): %s: %s",
                module,
                shown,
                attempt,
                type(exc).__name__,
                exc,
            )
            return False, None
        where = f"; log {result.log_path}" if result.log_path else ""
        line = f"module {module}: {shown}: {result.outcome}: {result.detail}{where}"
        if result.outcome in (Outcome.OK, Outcome.MISSING):
            self._log.warning("%s", line)
        elif result.outcome is Outcome.FAILED and result.returncode is None:
            self._log.error("%s (attempt %d)", line, attempt)
            return False, result
        else:
            self._log.error("%s; the application may still be running", line)
        return True, result
