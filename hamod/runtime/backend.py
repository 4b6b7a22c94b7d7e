"""The daemon's implementation of the API :class:`~hamod.api.backend.Backend`.

Status comes from each module's core state and view; a command becomes the core's
``Command`` event on the module's queue and the answer waits for its decision: a
refusal is a :class:`~hamod.errors.StateError` carrying the core's reason (``start`` on
a started module and ``stop`` on a stopped one are answered ``accepted: false``
instead, so scripts and playbooks can repeat them). ``boot on|off|auto`` is the
runtime's own toggle (persisted), as is ``checker on|off`` with a checker name;
``set_resource`` sets a ``custom.<name>`` resource; ``state`` lists every checker.
``manifest`` and ``verify`` work on modules with replicated directories (their data
path is a :class:`~hamod.runtime.dpclient.ProcessDataPath`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from hamod import PROTOCOL_VERSION, __version__
from hamod.api.backend import unknown_module
from hamod.api.models import (
    BootMode,
    CheckerStatus,
    CheckResult,
    Command,
    CommandRequest,
    CommandResult,
    Mode,
    ModuleConfigDump,
    ModuleStatus,
    ModuleSummary,
    NodeStatus,
    Phase,
    ResyncProgress,
    State,
    Toggles,
)
from hamod.config.cluster import ClusterConfig
from hamod.core.events import On
from hamod.core.model import ModuleState
from hamod.core.model import Phase as CorePhase
from hamod.core.model import State as CoreState
from hamod.errors import HamodError, StateError, UsageError
from hamod.runtime.checks import ModuleChecks
from hamod.runtime.dpclient import ProcessDataPath
from hamod.runtime.logs import ModuleLog
from hamod.runtime.module import ModuleActor

_COMMANDS: Mapping[Command, On] = {
    Command.START: On.START,
    Command.STOP: On.STOP,
    Command.FORCESTOP: On.FORCESTOP,
    Command.PRIM: On.PRIM,
    Command.SECOND: On.SECOND,
    Command.PRIMFORCE: On.PRIMFORCE,
    Command.SWAP: On.SWAP,
    Command.RESTART: On.RESTART,
    Command.STOPSTART: On.STOPSTART,
    Command.FULLSYNC: On.FULLSYNC,
    Command.FAILOVER_ON: On.FAILOVER_ON,
    Command.FAILOVER_OFF: On.FAILOVER_OFF,
    Command.CHECKER_ON: On.CHECKER_ON,
    Command.CHECKER_OFF: On.CHECKER_OFF,
    Command.ERRD_ON: On.ERRD_ON,
    Command.ERRD_OFF: On.ERRD_OFF,
}
#: Commands that may make the module primary at once: sent only once the peer is known
#: (heard or lost), never on a peer-less view that only means "not heard yet".
_STARTS = frozenset({On.START, On.PRIM, On.SECOND, On.PRIMFORCE})
_BOOT = {Command.BOOT_ON: "on", Command.BOOT_OFF: "off", Command.BOOT_AUTO: "auto"}
_PHASE = {
    CorePhase.NOT_READY: Phase.NOT_READY,
    CorePhase.TRANSIENT: Phase.TRANSIENT,
    CorePhase.READY: Phase.READY,
}


class Runner(Protocol):
    """What the backend needs of a running module (the daemon's ``ModuleRunner``)."""

    actor: ModuleActor
    mlog: ModuleLog

    @property
    def boot(self) -> str: ...

    def set_boot(self, value: str) -> None: ...

    def notes(self) -> list[str]: ...

    cluster: ClusterConfig | None

    def canonical(self) -> dict[str, Any]:
        """The module's canonical configuration (the config hash's source)."""
        ...

    def full_hash(self) -> str:
        """The full config hash (sha256 hex) of :meth:`canonical`."""
        ...

    async def peer_decided(self) -> None:
        """Returns once the peer was heard or declared lost (after the daemon's start)."""
        ...

    checks: ModuleChecks | None

    def checkers_off(self) -> frozenset[str]:
        """Checkers turned off by name."""
        ...

    def set_checker(self, name: str, on: bool) -> None:
        """Turn one checker on or off (persisted)."""
        ...


def status_of(node: str, r: Runner) -> ModuleStatus:
    """The API status of one module."""
    a = r.actor
    s: ModuleState = a.state
    peer = a.view.peer
    notes = r.notes()
    reason = "; ".join([*notes, a.last_reason] if a.last_reason else notes)
    return ModuleStatus(
        module=a.name,
        node=node,
        mode=Mode(a.view.params.mode.value),
        state=State(s.state.value),
        phase=_PHASE[s.phase],
        up_to_date=s.up_to_date,
        degraded=s.degraded,
        split_brain=s.split_brain,
        resync=_resync(s, a),
        term=s.term,
        peer=a.view.params.peer or None,
        peer_state=State(peer.state.value) if peer is not None else None,
        reason=reason,
        checkers=_checkers(r),
        resources=r.checks.resource_values() if r.checks is not None else {},
        toggles=Toggles(
            failover=s.failover, checkers=s.checkers, errd=s.errd, boot=BootMode(r.boot)
        ),
    )


def _checkers(r: Runner) -> list[CheckerStatus]:
    """Every checker with its last probe (``hamod state -v``)."""
    if r.checks is None:
        return []
    s, off, out = r.actor.state, r.checkers_off(), []
    for cfg, last in r.checks.results():
        on = (s.errd if cfg.type == "process" else s.checkers) and cfg.name not in off
        out.append(CheckerStatus(
            name=cfg.name, type=cfg.type, result=CheckResult(last.health.value),
            at=datetime.fromtimestamp(last.at, UTC) if last.at is not None else None,
            reason=last.reason, action=cfg.action, active=r.checks.should_run(cfg),
            enabled=on, failures=last.failures,
        ))  # fmt: skip
    return out


def _resync(s: ModuleState, a: ModuleActor) -> ResyncProgress | None:
    """The resync in progress on this node (the target), with the data path's figures."""
    if s.resync is None:
        return None
    p = getattr(a.datapath, "progress", None) or {}
    eta = p.get("eta")
    return ResyncProgress(
        done_bytes=max(0, int(p.get("sent") or 0)),
        total_bytes=max(0, int(p.get("planned") or 0)),
        fraction=max(0.0, min(1.0, float(s.resync.progress))),
        phase=p.get("phase") or None,
        full=s.resync.full,
        eta_s=float(eta) if isinstance(eta, int | float) and eta >= 0 else None,
    )


class DaemonBackend:
    """The API backend over the daemon's module runners."""

    def __init__(
        self, node: str, runners: Callable[[], Mapping[str, Runner]], started: float | None = None
    ) -> None:
        self.node_name = node
        self._runners = runners
        self._started = time.monotonic() if started is None else started

    def _get(self, name: str) -> Runner:
        runners = self._runners()
        r = runners.get(name)
        if r is None:
            raise unknown_module(name, runners)
        return r

    async def node(self) -> NodeStatus:
        mods = [await self.module(n) for n in sorted(self._runners())]
        return NodeStatus(
            node=self.node_name,
            version=__version__,
            protocol=PROTOCOL_VERSION,
            uptime_s=max(0.0, time.monotonic() - self._started),
            modules=[ModuleSummary(module=m.module, state=m.state, phase=m.phase) for m in mods],
        )

    async def modules(self) -> list[ModuleStatus]:
        return [status_of(self.node_name, self._runners()[n]) for n in sorted(self._runners())]

    async def module(self, name: str) -> ModuleStatus:
        return status_of(self.node_name, self._get(name))

    async def command(self, name: str, request: CommandRequest) -> CommandResult:
        r = self._get(name)
        before = r.actor.state.state
        cmd = request.command

        def result(accepted: bool, reason: str) -> CommandResult:
            return CommandResult(
                module=name,
                node=self.node_name,
                command=cmd,
                accepted=accepted,
                reason=reason,
                state_before=State(before.value),
                state_after=State(r.actor.state.state.value),
            )

        if cmd in (Command.CHECKER_ON, Command.CHECKER_OFF) and request.checker:
            on_ = cmd is Command.CHECKER_ON
            r.set_checker(request.checker, on_)
            r.mlog.info(f"checker {request.checker} {'on' if on_ else 'off'} (admin)")
            return result(True, f"checker {request.checker} {'on' if on_ else 'off'}")
        if cmd is Command.SET_RESOURCE:
            return result(True, self._set_resource(r, request))
        if cmd in _BOOT:
            r.set_boot(_BOOT[cmd])
            r.mlog.info(f"boot {_BOOT[cmd]} (admin)")
            return result(True, f"boot {_BOOT[cmd]}")
        on = _COMMANDS.get(cmd)
        if on is None:
            raise UsageError(f"command: {cmd} is not available yet (replication / checkers)")
        if on in _STARTS:
            await r.peer_decided()
            before = r.actor.state.state
        if on is On.START and before is not CoreState.STOP:
            return result(False, f"already started ({before.value})")
        if on is On.STOP and before is CoreState.STOP:
            return result(False, "already stopped")
        decision = await r.actor.command(on)
        now = decision.state.state
        if decision.refused and on is On.START and now is not CoreState.STOP:
            return result(False, f"already started ({now.value})")
        if decision.refused:
            raise StateError(f"{name}: {decision.reason}")
        return result(bool(decision.rows), decision.reason)

    @staticmethod
    def _set_resource(r: Runner, request: CommandRequest) -> str:
        """``hamod set -r custom.NAME -v up|down``: what a custom checker without a
        program reads. Checkers' own resources (``<type>.<name>``) are read-only."""
        name, value = str(request.resource), str(request.value)
        if r.checks is None:
            raise UsageError(f"resource: module {r.actor.name} has no checkers")
        if not name.startswith("custom."):
            raise UsageError(
                f"resource: {name!r} is not settable: only custom.<name> "
                f"resources are (a custom checker without program reads them)"
            )
        if value not in ("up", "down"):
            raise UsageError(f"value: {value!r} for {name}: expected up or down")
        r.checks.resources.set(name, value)
        r.mlog.info(f"resource {name} set to {value} (admin)")
        return f"{name} = {value}"

    async def module_config(self, name: str) -> ModuleConfigDump:
        r = self._get(name)
        return ModuleConfigDump(
            module=name, node=self.node_name, config_hash=r.full_hash(), config=r.canonical()
        )

    async def log(self, name: str, since: datetime | None, follow: bool) -> AsyncIterator[str]:
        return self._get(name).mlog.stream(since, follow)

    def _dp(self, name: str) -> ProcessDataPath:
        dp = self._get(name).actor.datapath
        if not isinstance(dp, ProcessDataPath):
            raise UsageError(f"module {name!r} replicates no directory: nothing to verify")
        return dp

    async def manifest(self, name: str, index: int, paths: list[str] | None) -> Iterator[bytes]:
        from hamod.runtime.verifier import manifest_lines

        cfg = self._dp(name).cfg
        if index >= len(cfg.directories):
            raise UsageError(f"dir: module {name!r} has {len(cfg.directories)} directories")
        return manifest_lines(cfg, index, paths)

    async def verify(self, name: str) -> Iterator[str]:
        from hamod.runtime.verifier import run_verify

        r = self._get(name)
        dp = self._dp(name)
        loop = asyncio.get_running_loop()

        def settle() -> None:
            """A replication barrier on this node when it is the primary; otherwise a
            pause (the primary's writes in flight reach this copy meanwhile)."""
            try:
                fut = asyncio.run_coroutine_threadsafe(dp.barrier(), loop)
                if fut.result(30):
                    return
            except (HamodError, TimeoutError, OSError):
                pass
            time.sleep(1.0)

        if r.cluster is None:
            raise UsageError(f"module {name!r}: no cluster file to reach the peer")
        return run_verify(dp.cfg, r.cluster, settle)
