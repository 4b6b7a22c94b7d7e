"""Configuration identity: a stable hash, and the fields where two configurations differ.

Nodes exchange :func:`config_hash` in heartbeats; on a mismatch they exchange the
canonical dumps and name the differing fields with :func:`diff_fields`.
"""

from __future__ import annotations

import hashlib
import json

from pydantic import BaseModel

from hamod.config.cluster import ClusterConfig
from hamod.config.module import ModuleConfig

__all__ = ["canonical_json", "config_hash", "diff_fields", "flatten"]

Scalar = str | int | float | bool | None


def canonical_json(model: BaseModel) -> str:
    """The model as canonical JSON: defaults included, keys sorted, no spaces, durations
    and sizes in their written form. Equal configurations give equal text."""
    return json.dumps(
        model.model_dump(mode="json"), sort_keys=True, separators=(",", ":"), ensure_ascii=True
    )


def config_hash(module: ModuleConfig, cluster: ClusterConfig | None) -> str:
    """sha256 (hex) of the module and its cluster, canonical JSON; stable across runs,
    processes and hamod versions that keep the schema."""
    text = json.dumps(
        {
            "cluster": json.loads(canonical_json(cluster)) if cluster is not None else None,
            "module": json.loads(canonical_json(module)),
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
    )
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def flatten(model: BaseModel | dict[str, object]) -> dict[str, Scalar]:
    """Leaf values of a model (or of its JSON dump) by path: ``{'vips[0].addr': '10.0.0.5'}``.
    Empty lists and mappings appear as their own leaf (``'vips': '[]'``)."""
    data: object = model.model_dump(mode="json") if isinstance(model, BaseModel) else model
    out: dict[str, Scalar] = {}

    def walk(value: object, path: str) -> None:
        if isinstance(value, dict):
            if not value:
                out[path] = "{}"
            for key in sorted(value):
                walk(value[key], f"{path}.{key}" if path else str(key))
        elif isinstance(value, list):
            if not value:
                out[path] = "[]"
            for i, item in enumerate(value):
                walk(item, f"{path}[{i}]")
        elif value is None or isinstance(value, str | int | float | bool):
            out[path] = value
        else:  # pragma: no cover - model_dump(mode="json") yields only JSON types
            out[path] = str(value)

    walk(data, "")
    return out


def diff_fields(a: BaseModel | dict[str, object], b: BaseModel | dict[str, object]) -> list[str]:
    """Paths of the leaves that differ between ``a`` and ``b`` (sorted), e.g.
    ``['heartbeat.pulse', 'vips[1].addr']``; ``[]`` when they are equal."""
    fa, fb = flatten(a), flatten(b)
    return sorted(k for k in fa.keys() | fb.keys() if fa.get(k, _MISSING) != fb.get(k, _MISSING))


_MISSING = object()
