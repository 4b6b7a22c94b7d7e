"""The port between the REST API and whatever runs the modules: the daemon implements
:class:`Backend`, tests use :class:`hamod.testing.fake_backend.FakeBackend`.

Errors a backend raises (the API maps each to an HTTP status, see ``docs/api.md``):

- :class:`UnknownModule` (a :class:`~hamod.errors.UsageError`) — no such module → 404;
  build it with :func:`unknown_module` so every message has the same shape;
- :class:`~hamod.errors.UsageError` — bad input → 400 (a message ``field: problem``
  names the field);
- :class:`~hamod.errors.StateError` — command refused in the current state, with the
  reason → 409;
- :class:`~hamod.errors.PeerError` — the peer could not be asked → 502;
- :class:`~hamod.errors.ConfigError` → 400, :class:`~hamod.errors.AdapterError` and
  other :class:`~hamod.errors.HamodError` → 500 with their one-line message; anything
  else → 500 with a generic message (the traceback goes to the daemon's log only).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator
from datetime import datetime
from typing import Protocol, runtime_checkable

from hamod.api.models import (
    CommandRequest,
    CommandResult,
    ModuleConfigDump,
    ModuleStatus,
    NodeStatus,
)
from hamod.errors import UsageError


class UnknownModule(UsageError):
    """The named module is not configured on this node."""

    def __init__(self, name: str, known: Iterable[str]) -> None:
        self.name = name
        self.known = sorted(known)
        listed = ", ".join(self.known) if self.known else "none"
        super().__init__(f"unknown module {name!r} (known: {listed})")


def unknown_module(name: str, known: Iterable[str]) -> UnknownModule:
    """The error for a module name that is not configured: ``unknown module 'x' (known: a, b)``."""
    return UnknownModule(name, known)


@runtime_checkable
class Backend(Protocol):
    """What the API needs from the daemon. Every method is called in the daemon's loop."""

    async def node(self) -> NodeStatus:
        """This node: name, version, modules with their states."""
        ...

    async def modules(self) -> list[ModuleStatus]:
        """Status of every module on this node, sorted by name."""
        ...

    async def module(self, name: str) -> ModuleStatus:
        """Status of one module; raises :class:`UnknownModule`."""
        ...

    async def command(self, name: str, request: CommandRequest) -> CommandResult:
        """Run a command on a module. Returns once the command is taken (a transition may
        still be in progress: the status then shows a TRANSIENT phase). Raises
        :class:`UnknownModule`, :class:`~hamod.errors.StateError` with the reason of a
        refusal, :class:`~hamod.errors.UsageError` for bad arguments."""
        ...

    async def module_config(self, name: str) -> ModuleConfigDump:
        """The module's canonical configuration on this node (what its config hash is
        computed from); raises :class:`UnknownModule`."""
        ...

    async def log(self, name: str, since: datetime | None, follow: bool) -> AsyncIterator[str]:
        """The module's log lines (without newline) from ``since`` (or all kept lines).

        Two steps, so errors come before the answer starts: awaiting the call checks the
        arguments (raises :class:`UnknownModule`...) and returns the iterator; iterating
        it yields the lines, and with ``follow`` waits for new ones until cancelled."""
        ...

    async def manifest(self, name: str, index: int, paths: list[str] | None) -> Iterator[bytes]:
        """The manifest (``hamod.verify``) of replicated directory ``index`` on this node,
        one JSON line per name (iterated in a worker thread). Awaiting checks the
        arguments (UnknownModule, UsageError for a module without that directory)."""
        ...

    async def verify(self, name: str) -> Iterator[str]:
        """Compare both copies of the module's directories online (JSON lines: progress,
        differences, one report per directory, ``done``). Same two steps as ``log``."""
        ...
