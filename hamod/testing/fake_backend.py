"""An in-memory :class:`~hamod.api.backend.Backend`: modules with states, commands that
move them in a simple scripted way (or are refused with a reason), a log per module.

It is a stand-in for the daemon in API, CLI and console tests — not the state machine:
the rules below only look plausible (SafeKit-like). Tests may also inject an error for
the next call (:meth:`FakeBackend.fail_next`) and append log lines or set states.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from hamod import PROTOCOL_VERSION, __version__
from hamod.api.backend import unknown_module
from hamod.api.models import (
    BootMode,
    CheckerStatus,
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
)
from hamod.errors import StateError, UsageError

_PRIMARY = frozenset({State.PRIM, State.ALONE})
_TOGGLES = {
    Command.FAILOVER_ON: ("failover", True),
    Command.FAILOVER_OFF: ("failover", False),
    Command.ERRD_ON: ("errd", True),
    Command.ERRD_OFF: ("errd", False),
    Command.BOOT_ON: ("boot", BootMode.ON),
    Command.BOOT_OFF: ("boot", BootMode.OFF),
    Command.BOOT_AUTO: ("boot", BootMode.AUTO),
}


@dataclass
class _Module:
    status: ModuleStatus
    lines: list[tuple[datetime, str]] = field(default_factory=list)
    waiters: list[asyncio.Queue[str]] = field(default_factory=list)
    resources: dict[str, str] = field(default_factory=dict)


class FakeBackend:
    """A node named ``node`` with modules kept in memory."""

    def __init__(
        self,
        node: str = "n1",
        modules: Iterable[ModuleStatus] | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.node_name = node
        self.clock = clock or (lambda: datetime.now(UTC))
        self.commands: list[tuple[str, CommandRequest]] = []
        self._modules: dict[str, _Module] = {}
        self._fail: BaseException | None = None
        #: module → one list of manifest lines per replicated directory (``manifest``)
        self.manifests: dict[str, list[list[bytes]]] = {}
        #: module → the JSON lines ``verify`` answers
        self.verify_lines: dict[str, list[str]] = {}
        for status in modules if modules is not None else default_modules(node):
            self._modules[status.module] = _Module(status)

    # -- test controls ---------------------------------------------------------------

    def fail_next(self, exc: BaseException) -> None:
        """Raise ``exc`` from the next backend call."""
        self._fail = exc

    def set_status(self, name: str, **changes: object) -> ModuleStatus:
        """Replace fields of a module's status (validated)."""
        mod = self._get(name)
        data = mod.status.model_dump() | changes
        mod.status = ModuleStatus.model_validate(data)
        return mod.status

    def emit(self, name: str, text: str) -> None:
        """Append a line to a module's log and wake its followers."""
        mod = self._get(name)
        at = self.clock()
        mod.lines.append((at, text))
        line = _format(at, text)
        for queue in mod.waiters:
            queue.put_nowait(line)

    def resource(self, name: str, resource: str) -> str | None:
        """Value set by ``set_resource``."""
        return self._get(name).resources.get(resource)

    # -- Backend ---------------------------------------------------------------------

    async def node(self) -> NodeStatus:
        self._check_fail()
        summaries = [
            ModuleSummary(module=m.status.module, state=m.status.state, phase=m.status.phase)
            for m in self._sorted()
        ]
        return NodeStatus(
            node=self.node_name, version=__version__, protocol=PROTOCOL_VERSION, modules=summaries
        )

    async def modules(self) -> list[ModuleStatus]:
        self._check_fail()
        return [m.status for m in self._sorted()]

    async def module(self, name: str) -> ModuleStatus:
        self._check_fail()
        return self._get(name).status

    async def command(self, name: str, request: CommandRequest) -> CommandResult:
        self._check_fail()
        mod = self._get(name)
        before = mod.status
        self.commands.append((name, request))
        accepted, reason, changes = self._apply(mod, request)
        if changes:
            self.set_status(name, reason=reason, **changes)
        after = mod.status
        if accepted:
            self.emit(name, f"{request.command}: {reason} ({before.state} -> {after.state})")
        return CommandResult(
            module=name,
            node=self.node_name,
            command=request.command,
            accepted=accepted,
            reason=reason,
            state_before=before.state,
            state_after=after.state,
        )

    async def module_config(self, name: str) -> ModuleConfigDump:
        self._check_fail()
        mod = self._get(name)
        config: dict[str, Any] = {
            "cluster": None,
            "module": {"module": name, "mode": mod.status.mode.value},
        }
        text = json.dumps(config, sort_keys=True, separators=(",", ":"))
        digest = hashlib.sha256(text.encode()).hexdigest()
        return ModuleConfigDump(module=name, node=self.node_name, config_hash=digest, config=config)

    async def manifest(self, name: str, index: int, paths: list[str] | None) -> Iterator[bytes]:
        self._check_fail()
        self._get(name)
        dirs = self.manifests.get(name)
        if dirs is None:
            raise UsageError(f"module {name!r} replicates no directory: nothing to verify")
        if index >= len(dirs):
            raise UsageError(f"dir: module {name!r} has {len(dirs)} directories")
        return iter(list(dirs[index]))

    async def verify(self, name: str) -> Iterator[str]:
        self._check_fail()
        self._get(name)
        if name not in self.verify_lines:
            raise UsageError(f"module {name!r} replicates no directory: nothing to verify")
        return iter(list(self.verify_lines[name]))

    async def log(self, name: str, since: datetime | None, follow: bool) -> AsyncIterator[str]:
        self._check_fail()
        mod = self._get(name)
        kept = [_format(at, text) for at, text in mod.lines if since is None or at >= since]
        queue: asyncio.Queue[str] | None = None
        if follow:
            queue = asyncio.Queue()
            mod.waiters.append(queue)
        return _lines(mod, kept, queue)

    # -- internals -------------------------------------------------------------------

    def _check_fail(self) -> None:
        exc, self._fail = self._fail, None
        if exc is not None:
            raise exc

    def _get(self, name: str) -> _Module:
        try:
            return self._modules[name]
        except KeyError:
            raise unknown_module(name, self._modules) from None

    def _sorted(self) -> list[_Module]:
        return [self._modules[k] for k in sorted(self._modules)]

    def _apply(self, mod: _Module, req: CommandRequest) -> tuple[bool, str, dict[str, object]]:
        """(accepted, reason, status changes) of a command; raises StateError to refuse."""
        st = mod.status
        cmd, state = req.command, st.state
        mirror = st.mode is Mode.MIRROR
        ready = Phase.READY
        if cmd in _TOGGLES:
            key, value = _TOGGLES[cmd]
            if getattr(st.toggles, key) == value:
                return False, f"{key} already {_word(value)}", {}
            toggles = st.toggles.model_copy(update={key: value})
            return True, f"{key} {_word(value)}", {"toggles": toggles}
        if cmd in (Command.CHECKER_ON, Command.CHECKER_OFF):
            return self._checker(st, req)
        if cmd is Command.SET_RESOURCE:
            assert req.resource is not None and req.value is not None
            mod.resources[req.resource] = req.value
            return True, f"{req.resource} set to {req.value}", {}
        if cmd in (Command.STOP, Command.FORCESTOP):
            if state is State.STOP:
                return False, "already stopped", {}
            return True, f"{cmd} by admin", {"state": State.STOP, "phase": Phase.NOT_READY}
        if state is State.STOP and cmd not in (
            Command.START,
            Command.PRIM,
            Command.SECOND,
            Command.PRIMFORCE,
        ):
            raise StateError(f"{cmd}: module {st.module} is stopped on {self.node_name}")
        if cmd is Command.START:
            if state is not State.STOP:
                return False, f"already started ({state})", {}
            if not mirror:
                return True, "started", {"state": State.UP, "phase": ready}
            return True, "started, peer absent", {"state": State.ALONE, "phase": ready}
        if not mirror and cmd in (Command.PRIM, Command.SECOND, Command.PRIMFORCE, Command.SWAP):
            raise StateError(f"{cmd}: {st.module} is a farm module (no primary)")
        if cmd is Command.PRIM:
            if state in _PRIMARY:
                return False, f"already primary ({state})", {}
            if state is State.SECOND:
                raise StateError("prim: the peer is primary; use swap")
            if not st.up_to_date:
                raise StateError("prim: data not up to date; use primforce")
            return True, "started as primary", {"state": State.ALONE, "phase": ready}
        if cmd is Command.SECOND:
            if state is State.SECOND:
                return False, "already secondary", {}
            if state in _PRIMARY:
                raise StateError(f"second: {st.module} is primary here; use swap")
            return True, "started as secondary", {"state": State.SECOND, "phase": ready}
        if cmd is Command.PRIMFORCE:
            if state in _PRIMARY:
                return False, f"already primary ({state})", {}
            forced = {"state": State.ALONE, "phase": ready, "up_to_date": True}
            return True, "forced primary (data may be stale; recorded)", forced
        if cmd is Command.SWAP:
            if state is State.PRIM:
                return True, "swapped: now secondary", {"state": State.SECOND, "phase": ready}
            if state is State.SECOND and st.peer_state is State.PRIM:
                return True, "swapped: now primary", {"state": State.PRIM, "phase": ready}
            raise StateError(f"swap: needs PRIM and SECOND (here {state}, peer {st.peer_state})")
        if cmd is Command.RESTART:
            if state not in _PRIMARY | {State.UP}:
                raise StateError(f"restart: the application does not run here ({state})")
            return True, "application restarted", {}
        if cmd is Command.STOPSTART:
            if state is State.PRIM:
                return True, "stopstart: failed over to the peer", {"state": State.SECOND}
            return True, "stopstart: restarted", {}
        if cmd in (Command.FULLSYNC, Command.VERIFY):
            if state not in (State.PRIM, State.SECOND):
                raise StateError(f"{cmd}: needs a mirroring pair (here {state})")
            progress = ResyncProgress(done_bytes=0, total_bytes=1 << 20, eta_s=None)
            return True, f"{cmd} started", {"phase": Phase.TRANSIENT, "resync": progress}
        raise UsageError(f"command: {cmd} not supported by the fake backend")  # pragma: no cover

    def _checker(
        self, st: ModuleStatus, req: CommandRequest
    ) -> tuple[bool, str, dict[str, object]]:
        on = req.command is Command.CHECKER_ON
        if req.checker is None:
            if st.toggles.checkers == on:
                return False, f"checkers already {_word(on)}", {}
            return (
                True,
                f"checkers {_word(on)}",
                {"toggles": st.toggles.model_copy(update={"checkers": on})},
            )
        names = [c.name for c in st.checkers]
        if req.checker not in names:
            known = ", ".join(names) or "none"
            raise UsageError(f"checker: unknown checker {req.checker!r} (known: {known})")
        return True, f"checker {req.checker} {_word(on)}", {}


async def _lines(
    mod: _Module, kept: list[str], queue: asyncio.Queue[str] | None
) -> AsyncIterator[str]:
    try:
        for line in kept:
            yield line
        while queue is not None:
            yield await queue.get()
    finally:
        if queue is not None:
            mod.waiters.remove(queue)


def _format(at: datetime, text: str) -> str:
    return f"{at.isoformat(timespec='milliseconds')} {text}"


def _word(value: object) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def default_modules(node: str = "n1") -> list[ModuleStatus]:
    """A mirror module ``pg`` primary here and a farm module ``web`` up."""
    checker = CheckerStatus(name="pg_tcp", type="tcp", reason="port 5432 answers")
    return [
        ModuleStatus(
            module="pg",
            node=node,
            state=State.PRIM,
            phase=Phase.READY,
            term=3,
            peer="n2",
            peer_state=State.SECOND,
            reason="peer became SECOND",
            checkers=[checker],
        ),
        ModuleStatus(
            module="web",
            node=node,
            mode=Mode.FARM,
            state=State.UP,
            phase=Phase.READY,
            reason="started",
        ),
    ]
