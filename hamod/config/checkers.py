"""Checkers of a module: one model per ``type``, a discriminated union on that key.

Every checker runs every ``interval`` in the states listed in ``when``, gives up on one
probe after ``timeout``, and after ``fail_after`` consecutive failures triggers its
``action``. Default actions follow SafeKit's default failover rules (tcp → restart,
ping → wait, interface → wait, vip → stopstart, module → wait, process → stopstart).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, JsonValue, WithJsonSchema, field_validator, model_validator

from hamod.config.types import (
    AbsPath,
    Address,
    Bool,
    Hostname,
    IfName,
    Model,
    Name,
    NodeName,
    Port,
    StateField,
    StrictInt,
    StrictStr,
    Url,
    fail,
)
from hamod.config.units import Duration, DurationField

__all__ = [
    "Action",
    "Checker",
    "CustomChecker",
    "HttpChecker",
    "InterfaceChecker",
    "ModuleChecker",
    "PingChecker",
    "ProcessChecker",
    "TcpChecker",
    "VipChecker",
]

Action = Literal["restart", "stopstart", "stop", "wait", "swap", "noaction"]

#: The action semantics, printed once in the reference ("Actions").
ACTIONS_DOC = (
    "`restart`: stop and start the application locally (its scripts), no failover. "
    "`stopstart`: stop and restart the whole module; fails over if this node is primary. "
    "`stop`: stop the module on this node (fails over from a primary). "
    "`wait`: stop the application and hold the module in WAIT until the checker succeeds "
    "again (fails over from a primary). `swap` (mirror): exchange the roles. "
    "`noaction`: only report. Automatic actions count against `maxloop`."
)
ACTION_DOC = "What to do after `fail_after` consecutive failures (see Actions)."
WHEN_ALIASES: dict[str, tuple[str, ...]] = {
    "prim": ("PRIM", "ALONE"),
    "second": ("SECOND",),
    "both": ("PRIM", "ALONE", "SECOND"),
    "up": ("UP",),
}


def _when_alias(value: object) -> object:
    if isinstance(value, str):
        alias = WHEN_ALIASES.get(value.lower())
        if alias is None:
            raise fail(
                "expected a list of states (PRIM, ALONE, SECOND, UP) or one of "
                "'prim', 'second', 'both', 'up'"
            )
        return list(alias)
    return value


_WHEN_SCHEMA: dict[str, JsonValue] = {
    "anyOf": [
        {"type": "array", "items": {"enum": ["PRIM", "ALONE", "SECOND", "UP"]}, "minItems": 1},
        {"enum": list(WHEN_ALIASES)},
    ]
}


class _Base(Model):
    name: Name = Field(
        description="Name of the checker, unique in the module; shown in the logs and "
        "the state, and the resource name (`<type>.<name>`)."
    )
    interval: DurationField = Field(default=Duration(10.0), description="Time between two probes.")
    timeout: DurationField = Field(
        default=Duration(5.0),
        description="A probe not answered within this time fails. Must be less than `interval`.",
    )
    fail_after: StrictInt = Field(
        default=1, ge=1, description="Consecutive failed probes before `action` is taken."
    )
    when: Annotated[tuple[StateField, ...], WithJsonSchema(_WHEN_SCHEMA)] = Field(
        default=("PRIM", "ALONE", "UP"),
        min_length=1,
        description="States in which the checker runs: a list of PRIM, ALONE, SECOND, UP, "
        "or `prim` (= [PRIM, ALONE]), `second`, `both` (= [PRIM, ALONE, SECOND]), `up`. "
        "Default: where the application runs (PRIM and ALONE in a mirror, UP in a farm).",
    )

    @field_validator("when", mode="before")
    @classmethod
    def _expand_when(cls, value: object) -> object:
        return _when_alias(value)


class ProcessChecker(_Base):
    """A process must be running (SafeKit `<errd><proc>`)."""

    type: Literal["process"]
    process: StrictStr | None = Field(
        default=None,
        min_length=1,
        description="Process name to look for, exactly as `ps -o comm` shows it (`postgres`).",
    )
    regex: StrictStr | None = Field(
        default=None,
        min_length=1,
        description="Instead of `process`: a regular expression searched in the full "
        "command line (`ps -o args`).",
    )
    script: Literal["start_prim", "start_second", "start_both"] | None = Field(
        default=None,
        description="Watch what this script's last successful run left running on this "
        "node (the application it started): the processes of its session, and those "
        "carrying its run marker (`HAMOD_RUN_ID`, which catches double-forked daemons). "
        "With `process` or `regex`, only those processes count. Unknown until the script "
        "has run here.",
    )
    atleast: StrictInt = Field(
        default=1, ge=0, description="Fail when fewer matching processes run."
    )
    atmax: StrictInt | None = Field(
        default=None, ge=0, description="Fail when more matching processes run (null: no limit)."
    )
    action: Action = Field(default="stopstart", description=ACTION_DOC)

    @model_validator(mode="after")
    def _one_matcher(self) -> ProcessChecker:
        if self.process is not None and self.regex is not None:
            raise fail("give one of 'process' (a name) or 'regex', not both")
        if self.process is None and self.regex is None and self.script is None:
            raise fail("give 'process' (a name), 'regex' or 'script' (start_prim...)")
        if self.atmax is not None and self.atmax < self.atleast:
            raise fail(f"atmax ({self.atmax}) is less than atleast ({self.atleast})")
        return self


class TcpChecker(_Base):
    """A TCP connection to `addr:port` must succeed (SafeKit `<tcp>`)."""

    type: Literal["tcp"]
    addr: Hostname = Field(description="Host to connect to (an address, a name, or the VIP).")
    port: Port = Field(description="TCP port.")
    fail_after: StrictInt = Field(
        default=3, ge=1, description="Consecutive failed probes before `action` is taken."
    )
    action: Action = Field(default="restart", description=ACTION_DOC)


class HttpChecker(_Base):
    """An HTTP(S) GET must answer the expected status (and body)."""

    type: Literal["http"]
    url: Url = Field(description="URL to GET (`http://127.0.0.1:8080/health`).")
    status: StrictInt = Field(default=200, ge=100, le=599, description="Expected HTTP status code.")
    body: StrictStr | None = Field(
        default=None,
        description="If set, a regular expression that must be found in the response body.",
    )
    tls_verify: Bool = Field(
        default=True, description="Verify the server certificate of an https:// URL."
    )
    fail_after: StrictInt = Field(
        default=3, ge=1, description="Consecutive failed probes before `action` is taken."
    )
    action: Action = Field(default="restart", description=ACTION_DOC)


class PingChecker(_Base):
    """At least one of `addresses` must answer ICMP echo (SafeKit `<ping>`)."""

    type: Literal["ping"]
    addresses: tuple[Address, ...] = Field(
        min_length=1, description="Addresses to ping; fails when none answers."
    )
    fail_after: StrictInt = Field(
        default=3, ge=1, description="Consecutive failed probes before `action` is taken."
    )
    action: Action = Field(default="wait", description=ACTION_DOC)


class InterfaceChecker(_Base):
    """A network interface must have its link up (SafeKit `<intf>`)."""

    type: Literal["interface"]
    interface: IfName = Field(description="Interface name (`eth0`).")
    interval: DurationField = Field(default=Duration(5.0), description="Time between two probes.")
    timeout: DurationField = Field(
        default=Duration(2.0), description="A probe not answered within this time fails."
    )
    action: Action = Field(default="wait", description=ACTION_DOC)


class VipChecker(_Base):
    """The module's virtual IPs must still be configured on this node (SafeKit `ip`)."""

    type: Literal["vip"]
    addr: Address | None = Field(
        default=None, description="One of the module's VIPs; null checks every VIP."
    )
    action: Action = Field(default="stopstart", description=ACTION_DOC)


class CustomChecker(_Base):
    """A program of yours decides, or a resource you set with `hamod set` (SafeKit
    `<custom>`)."""

    type: Literal["custom"]
    program: AbsPath | None = Field(
        default=None,
        description="Program run at every interval: exit 0 = up, anything else = down. "
        "Null: no program; the resource `custom.<name>` is set by "
        "`hamod set -r custom.<name> -v up|down`.",
    )
    args: tuple[StrictStr, ...] = Field(default=(), description="Arguments of `program`.")
    action: Action = Field(default="stopstart", description=ACTION_DOC)

    @model_validator(mode="after")
    def _args_need_program(self) -> CustomChecker:
        if self.args and self.program is None:
            raise fail("'args' given without 'program'")
        return self


class ModuleChecker(_Base):
    """Another module must be running (SafeKit `<module>` dependency checker)."""

    type: Literal["module"]
    module: Name = Field(description="The module this one depends on.")
    node: NodeName | None = Field(
        default=None, description="Node where that module must run; null: this node."
    )
    action: Action = Field(default="wait", description=ACTION_DOC)


Checker = Annotated[
    ProcessChecker
    | TcpChecker
    | HttpChecker
    | PingChecker
    | InterfaceChecker
    | VipChecker
    | CustomChecker
    | ModuleChecker,
    Field(discriminator="type"),
]
