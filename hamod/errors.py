"""The one exception tree of hamod.

Every error hamod raises on purpose derives from :class:`HamodError`; foreign errors
(OSError, pydantic, pyroute2...) are translated at the adapter edge into one of these::

    HamodError
    ├── ConfigError            bad cluster/module file; carries every problem found
    ├── UsageError             bad command-line or API input
    ├── StateError             command not allowed in the module's current state
    ├── PeerError              peer unreachable, refused, or protocol/config mismatch
    ├── AdapterError           an I/O side effect failed (VIP, scripts, data path...)
    └── LabError               the namespace test lab could not do what was asked
"""

from __future__ import annotations

from dataclasses import dataclass


class HamodError(Exception):
    """Base of every error hamod raises deliberately."""


@dataclass(frozen=True)
class Problem:
    """One problem found in a configuration: where (dotted path), what, and the value."""

    path: str
    message: str
    value: str | None = None

    def __str__(self) -> str:
        where = self.path or "<file>"
        if self.value is None:
            return f"{where}: {self.message}"
        return f"{where}: {self.message} (got {self.value})"


class ConfigError(HamodError):
    """A configuration file is invalid; ``problems`` lists every problem found."""

    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.source = source
        self.problems = problems
        lines = "\n".join(f"{source}: {p}" for p in problems)
        super().__init__(lines)


class UsageError(HamodError):
    """Bad command-line or API input."""


class StateError(HamodError):
    """The command is not allowed in the module's current state."""


class PeerError(HamodError):
    """The peer is unreachable, refused the request, or runs an incompatible version."""


class AdapterError(HamodError):
    """An I/O side effect failed."""


class LabError(HamodError):
    """The namespace lab could not perform the requested operation."""
