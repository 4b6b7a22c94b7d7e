"""JSON Schema of the cluster file and of module files, for editors and Ansible.

Defaults appear in their written form (``"700ms"``, ``"1MiB"``, ``"/etc/hamod/..."``).
"""

from __future__ import annotations

import ipaddress
import json
from pathlib import PurePosixPath
from typing import Any, Literal

from pydantic.json_schema import GenerateJsonSchema

from hamod.config.cluster import ClusterConfig
from hamod.config.module import ModuleConfig
from hamod.config.units import Duration, Size
from hamod.errors import UsageError

__all__ = ["json_schema", "schema_text"]

Kind = Literal["cluster", "module"]


class _Generator(GenerateJsonSchema):
    """Encodes defaults of hamod's own types as users write them."""

    def encode_default(self, dft: Any) -> Any:
        if isinstance(dft, Duration | Size | PurePosixPath):
            return str(dft)
        if isinstance(dft, ipaddress.IPv4Address | ipaddress.IPv6Address):
            return str(dft)
        return super().encode_default(dft)


def json_schema(kind: str) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a ``cluster`` or ``module`` file."""
    if kind == "cluster":
        body = ClusterConfig.model_json_schema(schema_generator=_Generator)
        title = "hamod cluster file"
    elif kind == "module":
        body = ModuleConfig.model_json_schema(schema_generator=_Generator)
        title = "hamod module file"
    else:
        raise UsageError(f"unknown schema '{kind}'; expected cluster or module")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://hamod.dev/schema/{kind}.schema.json",
        **body,
        "title": title,
    }


def schema_text(kind: str) -> str:
    """:func:`json_schema` as indented JSON text, ending with a newline."""
    return json.dumps(json_schema(kind), indent=2, ensure_ascii=False) + "\n"
