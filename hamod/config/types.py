"""Scalar field types shared by the cluster and module schemas.

Each type is an ``Annotated`` alias carrying its own validator (raising
``PydanticCustomError("hamod", message)`` with a message written for users), its JSON
Schema, and a :class:`DocType` marker naming it in the generated reference.
"""

from __future__ import annotations

import ipaddress
import posixpath
import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Annotated, Final, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    PlainSerializer,
    PlainValidator,
    StrictBool,
    StrictInt,
    StrictStr,
    WithJsonSchema,
)
from pydantic import BaseModel as _PydanticBase
from pydantic_core import PydanticCustomError

__all__ = [
    "AbsPath",
    "Address",
    "DocType",
    "Hostname",
    "IfName",
    "IfNameOrAuto",
    "Model",
    "Name",
    "NodeName",
    "Port",
    "State",
    "StrictBool",
    "StrictInt",
    "StrictStr",
    "Subnet",
    "Url",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class DocType:
    """Marker in ``Annotated`` metadata: how the reference names this type."""

    name: str


class Model(_PydanticBase):
    """Base of every configuration model: frozen, unknown keys refused."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=False)


def fail(message: str) -> PydanticCustomError:
    """A validation error whose ``message`` is shown to users as is."""
    return PydanticCustomError("hamod", message)


def _need_str(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise fail(f"expected {what}")
    return value


# --- addresses -------------------------------------------------------------------------


def _address(value: object) -> IPAddress:
    if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return value
    text = _need_str(value, "an IP address")
    if "/" in text:
        raise fail("not an IP address; write the address without a prefix length")
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        raise fail("not an IP address") from None


def _subnet(value: object) -> IPNetwork:
    if isinstance(value, ipaddress.IPv4Network | ipaddress.IPv6Network):
        return value
    text = _need_str(value, "a subnet such as '10.0.0.0/24'").strip()
    if "/" not in text:
        raise fail("not a subnet; write it with its prefix length, e.g. '10.0.0.0/24'")
    try:
        return ipaddress.ip_network(text, strict=True)
    except ValueError:
        pass
    try:
        loose = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise fail("not a subnet") from None
    raise fail(f"host bits set in subnet; did you mean '{loose}'?")


Address = Annotated[
    IPAddress,
    PlainValidator(_address),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string", "anyOf": [{"format": "ipv4"}, {"format": "ipv6"}]}),
    DocType("IP address"),
]
Subnet = Annotated[
    IPNetwork,
    PlainValidator(_subnet),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string", "description": "An IPv4 or IPv6 subnet, e.g. 10.0.0.0/24."}),
    DocType("subnet"),
]

# --- names -----------------------------------------------------------------------------

_NAME_RE: Final = re.compile(r"[a-z][a-z0-9_-]{0,31}")
_NODE_RE: Final = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_IFNAME_RE: Final = re.compile(r"[^\s/:]{1,15}")
_HOST_RE: Final = re.compile(
    r"(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)


def _name(value: object) -> str:
    text = _need_str(value, "a name")
    if not _NAME_RE.fullmatch(text):
        raise fail(
            "not a valid name; use 1-32 lowercase letters, digits, '_' or '-', "
            "starting with a letter"
        )
    return text


def _node_name(value: object) -> str:
    text = _need_str(value, "a node name")
    if not _NODE_RE.fullmatch(text):
        raise fail("not a valid node name; use a host name: letters, digits and '-'")
    return text


def _ifname(value: object) -> str:
    text = _need_str(value, "an interface name")
    if text in (".", "..") or not _IFNAME_RE.fullmatch(text):
        raise fail("not a valid interface name (1-15 characters, no '/', ':' or spaces)")
    return text


def _ifname_or_auto(value: object) -> str:
    if value == "auto":
        return "auto"
    return _ifname(value)


def _hostname(value: object) -> str:
    text = _need_str(value, "a host name or IP address")
    try:
        ipaddress.ip_address(text)
    except ValueError:
        if not _HOST_RE.fullmatch(text):
            raise fail("not a host name or IP address") from None
    return text


Name = Annotated[
    str,
    PlainValidator(_name),
    WithJsonSchema({"type": "string", "pattern": f"^{_NAME_RE.pattern}$"}),
    DocType("name"),
]
NodeName = Annotated[
    str,
    PlainValidator(_node_name),
    WithJsonSchema({"type": "string", "pattern": f"^{_NODE_RE.pattern}$"}),
    DocType("node name"),
]
IfName = Annotated[
    str,
    PlainValidator(_ifname),
    WithJsonSchema({"type": "string", "pattern": f"^{_IFNAME_RE.pattern}$"}),
    DocType("interface name"),
]
IfNameOrAuto = Annotated[
    str,
    PlainValidator(_ifname_or_auto),
    WithJsonSchema({"type": "string", "pattern": f"^{_IFNAME_RE.pattern}$"}),
    DocType("interface name or auto"),
]
Hostname = Annotated[
    str,
    PlainValidator(_hostname),
    WithJsonSchema({"type": "string"}),
    DocType("host name or IP address"),
]

# --- paths and URLs --------------------------------------------------------------------


def _abspath(value: object) -> PurePosixPath:
    if isinstance(value, PurePosixPath):
        value = str(value)
    text = _need_str(value, "an absolute path")
    if not text.startswith("/"):
        raise fail("not an absolute path; start it with '/'")
    if "\0" in text or "\n" in text:
        raise fail("path contains a control character")
    if any(part == ".." for part in text.split("/")):
        raise fail("path must not contain '..'")
    return PurePosixPath(posixpath.normpath(text))


AbsPath = Annotated[
    PurePosixPath,
    PlainValidator(_abspath),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string", "pattern": "^/"}),
    DocType("absolute path"),
]


def _url(value: object) -> str:
    text = _need_str(value, "a URL")
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https"):
        raise fail("not an http:// or https:// URL")
    if not parts.hostname:
        raise fail("URL has no host")
    try:
        _ = parts.port
    except ValueError:
        raise fail("URL has an invalid port") from None
    return text


Url = Annotated[
    str,
    PlainValidator(_url),
    WithJsonSchema({"type": "string", "format": "uri", "pattern": "^https?://"}),
    DocType("URL"),
]


def _port(value: int) -> int:
    if not 1 <= value <= 65535:
        raise fail("not a port number (1-65535)")
    return value


Port = Annotated[
    StrictInt,
    AfterValidator(_port),
    WithJsonSchema({"type": "integer", "minimum": 1, "maximum": 65535}),
    DocType("port"),
]

# --- states ----------------------------------------------------------------------------

State = Literal["PRIM", "ALONE", "SECOND", "UP"]


def _upper(value: object) -> object:
    return value.upper() if isinstance(value, str) else value


#: A module state, case-insensitive on input (``prim`` = ``PRIM``).
StateField = Annotated[State, BeforeValidator(_upper)]

YAML_BOOL_WORDS: Final = {"on": True, "off": False, "yes": True, "no": False}


def _bool_hint(value: object) -> object:
    if isinstance(value, str) and value.lower() in YAML_BOOL_WORDS:
        raise fail(f"expected true or false; write {str(YAML_BOOL_WORDS[value.lower()]).lower()}")
    return value


#: ``true``/``false`` only; ``on``/``yes`` get a hint rather than a silent conversion.
Bool = Annotated[StrictBool, BeforeValidator(_bool_hint)]
