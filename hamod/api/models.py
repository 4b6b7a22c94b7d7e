"""The REST API's data model: what a node says about itself and its modules, the commands
it accepts and the error body it answers with.

These are the API's own types (string enums, frozen pydantic models); the runtime maps
the core's state onto them, so the core can evolve without changing the wire format.

- Responses ignore unknown fields when parsed (a node at version N-1 reads N's answers
  during a rolling upgrade); requests forbid them (a typo is an error naming the field).
- ``colour`` is derived from ``state`` and ``phase``, never sent by the backend.
- This module imports pydantic only (no FastAPI), so the CLI can use it cheaply.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    ValidationInfo,
    computed_field,
    field_validator,
)

API_VERSION: Final = "v1"
#: Transport defaults: the root-only local socket and the TCP port between nodes (SafeKit's).
DEFAULT_SOCKET: Final = Path("/run/hamod/api.sock")
DEFAULT_PORT: Final = 9010


class State(StrEnum):
    """A module's state on one node (SafeKit's)."""

    STOP = "STOP"
    WAIT = "WAIT"
    ALONE = "ALONE"
    PRIM = "PRIM"
    SECOND = "SECOND"
    UP = "UP"


class Phase(StrEnum):
    """How settled the state is: not ready, transient (changing/resyncing) or ready."""

    NOT_READY = "NOT_READY"
    TRANSIENT = "TRANSIENT"
    READY = "READY"


class Colour(StrEnum):
    """The console's colour of a state: red = not ready, orange = transient, green = ready."""

    RED = "red"
    ORANGE = "orange"
    GREEN = "green"


class Mode(StrEnum):
    """Kind of module."""

    MIRROR = "mirror"
    FARM = "farm"


class CheckResult(StrEnum):
    """Last result of a checker."""

    UP = "up"
    DOWN = "down"
    UNKNOWN = "unknown"


class BootMode(StrEnum):
    """Start at boot: always, never, or only if it ran before the reboot."""

    ON = "on"
    OFF = "off"
    AUTO = "auto"


class Command(StrEnum):
    """Every command the API accepts on a module (``hamod <command> -m MODULE``)."""

    START = "start"
    STOP = "stop"
    FORCESTOP = "forcestop"
    PRIM = "prim"
    SECOND = "second"
    PRIMFORCE = "primforce"
    SWAP = "swap"
    RESTART = "restart"
    STOPSTART = "stopstart"
    FULLSYNC = "fullsync"
    VERIFY = "verify"
    FAILOVER_ON = "failover_on"
    FAILOVER_OFF = "failover_off"
    CHECKER_ON = "checker_on"
    CHECKER_OFF = "checker_off"
    ERRD_ON = "errd_on"
    ERRD_OFF = "errd_off"
    BOOT_ON = "boot_on"
    BOOT_OFF = "boot_off"
    BOOT_AUTO = "boot_auto"
    SET_RESOURCE = "set_resource"


#: ``hamod state -lq`` exit codes (SafeKit's): STOP 0, WAIT 1, ALONE/UP 2, PRIM 3, SECOND 4.
LQ_EXIT_CODES: Final[dict[State, int]] = {
    State.STOP: 0,
    State.WAIT: 1,
    State.ALONE: 2,
    State.UP: 2,
    State.PRIM: 3,
    State.SECOND: 4,
}

#: States in which the application runs on this node (the load balancer's "ready").
SERVING_STATES: Final = frozenset({State.PRIM, State.ALONE, State.UP})


def colour_of(state: State, phase: Phase) -> Colour:
    """The console colour: STOP and not-ready are red, transient orange, ready green."""
    if state is State.STOP or phase is Phase.NOT_READY:
        return Colour.RED
    if phase is Phase.TRANSIENT:
        return Colour.ORANGE
    return Colour.GREEN


class _Response(BaseModel):
    """Base of answers: immutable, tolerant of fields added by newer nodes."""

    model_config = ConfigDict(frozen=True, extra="ignore")


class ResyncProgress(_Response):
    """Progress of a resynchronization: bytes copied of the bytes planned (a plan grows
    while the application writes), the fraction done, the phase (``full copy``,
    ``rounds``, ``last round``) and the estimated time left."""

    done_bytes: NonNegativeInt = 0
    total_bytes: NonNegativeInt = 0
    fraction: NonNegativeFloat = 0.0
    phase: str | None = None
    full: bool = False
    eta_s: NonNegativeFloat | None = None


class CheckerStatus(_Response):
    """One checker: its last result, when, and why."""

    name: str
    type: str
    result: CheckResult = CheckResult.UNKNOWN
    at: datetime | None = None
    reason: str = ""
    #: What a failure does (restart, stopstart, stop, wait, swap, noaction).
    action: str = ""
    #: Runs in the current state with its toggles on (else its result is the last one).
    active: bool = False
    #: Off by ``hamod checker|errd off`` (module-wide or this checker).
    enabled: bool = True
    #: Consecutive failed probes so far (``fail_after`` triggers the action).
    failures: NonNegativeInt = 0


class Toggles(_Response):
    """Maintenance toggles (persist across restarts)."""

    failover: bool = True
    checkers: bool = True
    errd: bool = True
    boot: BootMode = BootMode.AUTO


class ModuleStatus(_Response):
    """A module's status on one node."""

    module: str
    node: str
    mode: Mode = Mode.MIRROR
    state: State
    phase: Phase
    up_to_date: bool = True
    degraded: bool = False
    split_brain: bool = False
    resync: ResyncProgress | None = None
    term: NonNegativeInt = 0
    peer: str | None = None
    peer_state: State | None = None
    reason: str = ""
    checkers: list[CheckerStatus] = Field(default_factory=list)
    #: ``hamod get -r``: ``<type>.<checker>`` → last health, and ``custom.<name>`` as set.
    resources: dict[str, str] = Field(default_factory=dict)
    toggles: Toggles = Field(default_factory=Toggles)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def colour(self) -> Colour:
        """Derived from state and phase (see :func:`colour_of`)."""
        return colour_of(self.state, self.phase)

    @property
    def ready(self) -> bool:
        """The application is served here: PRIM/ALONE/UP and READY."""
        return self.state in SERVING_STATES and self.phase is Phase.READY


class ModuleSummary(_Response):
    """One line of a node's module list."""

    module: str
    state: State
    phase: Phase

    @computed_field  # type: ignore[prop-decorator]
    @property
    def colour(self) -> Colour:
        """Derived from state and phase (see :func:`colour_of`)."""
        return colour_of(self.state, self.phase)


class NodeStatus(_Response):
    """The node answering: its name, software version and modules."""

    node: str
    version: str
    api: str = API_VERSION
    protocol: int = 1
    uptime_s: NonNegativeFloat = 0.0
    modules: list[ModuleSummary] = Field(default_factory=list)


class VersionInfo(_Response):
    """Software, API and wire protocol versions."""

    version: str
    api: str = API_VERSION
    protocol: int


class ReadyStatus(_Response):
    """Answer of the load balancers' health check."""

    module: str
    ready: bool
    state: State
    phase: Phase


class ModuleConfigDump(_Response):
    """A module's configuration as this node runs it: the canonical dump that its config
    hash is computed from (``{"cluster": ..., "module": ...}``, defaults included,
    durations in their written form; see :mod:`hamod.config.identity`). A node whose peer
    announces another config hash fetches it to name the differing fields."""

    module: str
    node: str
    #: sha256 (hex) of the canonical dump; heartbeats carry its first 32 digits.
    config_hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    config: dict[str, Any]


#: Commands that take ``resource`` and ``value``; only ``checker_on/off`` take ``checker``;
#: only ``prim``/``second`` take ``fullsync``.
_NEEDS_RESOURCE: Final = frozenset({Command.SET_RESOURCE})
_TAKES_CHECKER: Final = frozenset({Command.CHECKER_ON, Command.CHECKER_OFF})
_TAKES_FULLSYNC: Final = frozenset({Command.PRIM, Command.SECOND})


class CommandRequest(BaseModel):
    """A command for one module, with the arguments that command takes."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    command: Command
    resource: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        validate_default=True,
        description="set_resource: resource name (e.g. custom.mycheck).",
    )
    value: str | None = Field(
        default=None,
        max_length=200,
        validate_default=True,
        description="set_resource: new value (e.g. up, down).",
    )
    checker: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        validate_default=True,
        description="checker_on/checker_off: one checker (default: all).",
    )
    fullsync: bool = Field(
        default=False,
        validate_default=True,
        description="prim/second: copy everything instead of only what changed.",
    )

    @field_validator("resource", "value")
    @classmethod
    def _resource_args(cls, v: str | None, info: ValidationInfo) -> str | None:
        command = info.data.get("command")
        if command is None:  # the command itself was invalid: already reported
            return v
        if command in _NEEDS_RESOURCE and v is None:
            raise ValueError(f"required for {command}")
        if command not in _NEEDS_RESOURCE and v is not None:
            raise ValueError(f"not an argument of {command}")
        return v

    @field_validator("checker")
    @classmethod
    def _checker_arg(cls, v: str | None, info: ValidationInfo) -> str | None:
        command = info.data.get("command")
        if command is not None and v is not None and command not in _TAKES_CHECKER:
            raise ValueError(f"not an argument of {command}")
        return v

    @field_validator("fullsync")
    @classmethod
    def _fullsync_arg(cls, v: bool, info: ValidationInfo) -> bool:
        command = info.data.get("command")
        if command is not None and v and command not in _TAKES_FULLSYNC:
            raise ValueError(f"not an argument of {command}")
        return v


class CommandResult(_Response):
    """Outcome of an accepted command. ``accepted`` is false when there was nothing to do
    (already in the requested state); a refusal is an error (HTTP 409), not a result."""

    module: str
    node: str
    command: Command
    accepted: bool
    reason: str
    state_before: State
    state_after: State


class ErrorCode(StrEnum):
    """Kind of error, one per branch of hamod's exception tree (plus HTTP-level ones)."""

    USAGE = "usage"
    NOT_FOUND = "not_found"
    STATE = "state"
    PEER = "peer"
    CONFIG = "config"
    ADAPTER = "adapter"
    INTERNAL = "internal"


class ErrorBody(_Response):
    """Body of every error answer: a code, a one-line message, the field at fault if any."""

    code: ErrorCode
    message: str
    field: str | None = None


class ManifestRequest(BaseModel):
    """Which replicated directory's manifest, and optionally only these paths (sorted,
    absolute within the directory): ``verify`` re-checks differing names with it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    dir: int = Field(ge=0, le=255, description="Index of the directory in the module file.")
    paths: list[str] | None = Field(
        default=None, max_length=1_000_000, description="Only these paths (null: every name)."
    )
