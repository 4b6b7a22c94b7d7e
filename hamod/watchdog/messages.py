"""The daemon → watchdog protocol: message models, encoding and strict decoding.

Owns what may travel on the watchdog's datagram socket. One datagram = one JSON object
carrying ``version`` (:data:`PROTOCOL_VERSION`) and ``type``:

- ``arm`` {module, deadline, vips, stop}: the module is primary here; fence it if no
  newer ``arm`` arrives before ``deadline`` (CLOCK_MONOTONIC seconds, the clock of
  :func:`time.monotonic`). Sent every pulse; each one replaces the previous.
- ``disarm`` {module}: the module is no longer primary here.
- ``ping`` {}: no effect (lets a client check that a watchdog listens).

Decoding never raises anything but :class:`~hamod.errors.UsageError`, whose message names
the faulty field. Unknown fields are ignored, so a newer daemon of the same protocol
version can add optional fields while an older watchdog still runs (rolling upgrade);
incompatible changes bump the version.
"""

from __future__ import annotations

import ipaddress
import json
import re
from pathlib import PurePosixPath
from typing import Annotated, Final, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
)

from hamod.errors import UsageError

__all__ = [
    "DEFAULT_PATH",
    "MAX_DATAGRAM",
    "PROTOCOL_VERSION",
    "Arm",
    "Disarm",
    "Message",
    "Ping",
    "StopEnv",
    "StopSpec",
    "VipRef",
    "decode",
    "encode",
]

PROTOCOL_VERSION: Final = 1
MAX_DATAGRAM = 65536
"""Largest datagram accepted (bytes); a larger one is refused by the client."""
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

_NAME = re.compile(r"[a-z][a-z0-9_-]{0,31}")
_NETNS = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_.-]{0,254}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _module_name(value: str) -> str:
    if not _NAME.fullmatch(value):
        raise ValueError("not a module name (1-32 of a-z 0-9 _ -, starting with a letter)")
    return value


def _netns_name(value: str) -> str:
    if value in (".", "..") or not _NETNS.fullmatch(value):
        raise ValueError("not a network namespace name (a file name under /run/netns)")
    return value


def _abspath(value: str) -> str:
    if not value.startswith("/") or "\0" in value or "\n" in value:
        raise ValueError("not an absolute path")
    if ".." in PurePosixPath(value).parts:
        raise ValueError("path must not contain '..'")
    return value


def _address(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ValueError("not an IPv4 or IPv6 address") from None


def _env_names(value: dict[str, str]) -> dict[str, str]:
    for name, text in value.items():
        if not _ENV_NAME.fullmatch(name):
            raise ValueError(f"{name!r} is not a valid environment variable name")
        if "\0" in text:
            raise ValueError(f"{name}: value contains a NUL byte")
    return value


ModuleName = Annotated[str, AfterValidator(_module_name)]
NetnsName = Annotated[str, AfterValidator(_netns_name)]
AbsPathText = Annotated[str, AfterValidator(_abspath)]
AddressText = Annotated[str, AfterValidator(_address)]
Seconds = Annotated[float, Field(allow_inf_nan=False)]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", strict=True)


class VipRef(_Model):
    """A VIP to remove when fencing, and the namespace holding it (None: the watchdog's)."""

    addr: AddressText
    netns: NetnsName | None = None


class StopEnv(_Model):
    """What :class:`hamod.adapters.scripts.ScriptEnvironment` needs."""

    home: AbsPathText
    bin: AbsPathText
    var: AbsPathText
    user_var: AbsPathText
    user_conf: AbsPathText
    user_vars: Annotated[dict[str, str], AfterValidator(_env_names)] = Field(default_factory=dict)
    path: str = DEFAULT_PATH


class StopSpec(_Model):
    """How to run the module's ``stop_prim`` with ``force``."""

    bin_dir: AbsPathText
    log_dir: AbsPathText
    state: Literal["PRIM", "ALONE"] = "PRIM"
    nice_timeout: Annotated[Seconds, Field(gt=0, le=86400)]
    force_timeout: Annotated[Seconds, Field(ge=0, le=86400)]
    env: StopEnv


class Arm(_Model):
    """Fence ``module`` unless renewed before ``deadline`` (CLOCK_MONOTONIC seconds)."""

    version: Literal[1] = PROTOCOL_VERSION
    type: Literal["arm"] = "arm"
    module: ModuleName
    deadline: Annotated[Seconds, Field(ge=0)]
    vips: tuple[VipRef, ...] = ()
    stop: StopSpec


class Disarm(_Model):
    """``module`` is no longer primary on this node: forget it."""

    version: Literal[1] = PROTOCOL_VERSION
    type: Literal["disarm"] = "disarm"
    module: ModuleName


class Ping(_Model):
    """No effect."""

    version: Literal[1] = PROTOCOL_VERSION
    type: Literal["ping"] = "ping"


Message = Annotated[Arm | Disarm | Ping, Field(discriminator="type")]
_ADAPTER: TypeAdapter[Arm | Disarm | Ping] = TypeAdapter(Message)


def encode(message: Arm | Disarm | Ping) -> bytes:
    """The datagram carrying ``message`` (compact JSON)."""
    return message.model_dump_json().encode()


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


def decode(data: bytes) -> Arm | Disarm | Ping:
    """The message in ``data``; :class:`UsageError` naming the problem otherwise."""
    if len(data) > MAX_DATAGRAM:
        raise UsageError(f"datagram of {len(data)} bytes exceeds {MAX_DATAGRAM}")
    try:
        raw = json.loads(data.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        raise UsageError(f"not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise UsageError(f"not a JSON object but {type(raw).__name__}")
    version = raw.get("version")
    if "version" not in raw:
        raise UsageError("version: missing")
    if version != PROTOCOL_VERSION or isinstance(version, bool):
        raise UsageError(
            f"version: unsupported protocol version {version!r} "
            f"(this watchdog speaks {PROTOCOL_VERSION})"
        )
    try:
        return _ADAPTER.validate_json(data)
    except ValidationError as exc:
        raise UsageError(_first_error(exc)) from None


def _first_error(exc: ValidationError) -> str:
    errors = exc.errors(include_url=False)
    first = errors[0]
    if first["type"] == "union_tag_not_found":
        return "type: missing"
    if first["type"] == "union_tag_invalid":
        found = (first.get("ctx") or {}).get("tag")
        return f"type: unknown message type {found!r} (expected arm, disarm or ping)"
    # Drop the union tag pydantic inserts ("arm.stop.x" -> "stop.x").
    loc = [str(p) for p in first["loc"]]
    if loc and loc[0] in ("arm", "disarm", "ping"):
        loc = loc[1:]
    where = ".".join(loc) or "<message>"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    msg = str(first["msg"]).removeprefix("Value error, ")
    return f"{where}: {msg}{more}"
