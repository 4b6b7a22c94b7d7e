"""The roles' meta/argument_specs.yml agree with the configuration's JSON Schema
(docs/schema/, generated from hamod/config): every key of the cluster file and of a module
file is a typed role input with the same type, choices, default and required-ness, and
every variable of a role's defaults is in its argument specs (and the reverse)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "docs" / "schema"
ROLES = ROOT / "roles"

#: cluster file key → hamod_cluster variable
CLUSTER_VARS = {
    "cluster": "hamod_cluster_name",
    "networks": "hamod_cluster_networks",
    "nodes": "hamod_cluster_nodes",
    "witness": "hamod_cluster_witness",
    "key": "hamod_cluster_key",
    "tls": "hamod_cluster_tls",
    "api_port": "hamod_cluster_api_port",
    "heartbeat_port": "hamod_cluster_heartbeat_port",
}
#: required in the schema, derived from the inventory in the role
DERIVED = {"hamod_cluster_nodes"}
#: the Ansible keys of a hamod_module_list item (not in a module file)
MODULE_ANSIBLE_KEYS = {
    "template", "primary", "start_command", "stop_command", "force_stop_command",
    "custom_scripts", "kvstore_port", "kvstore_dir", "kvstore_host",
}  # fmt: skip
#: role inputs set in the inventory only (no default in defaults/main.yml)
INVENTORY_ONLY = {
    "hamod_cluster_name", "hamod_cluster_networks", "hamod_cluster_secret_key",
    "hamod_cluster_ca_cert", "hamod_cluster_ca_key", "hamod_init_primary",
}  # fmt: skip

SPEC_TYPES = {
    "string": {"str", "path", "raw"},
    "integer": {"int", "raw"},
    "boolean": {"bool"},
    "array": {"list"},
    "object": {"dict"},
}


def _schema(kind: str) -> dict[str, Any]:
    data = json.loads((SCHEMA / f"{kind}.schema.json").read_text())
    assert isinstance(data, dict)
    return data


def _spec(role: str) -> dict[str, Any]:
    data = yaml.safe_load((ROLES / role / "meta" / "argument_specs.yml").read_text())
    opts = data["argument_specs"]["main"]["options"]
    assert isinstance(opts, dict)
    return opts


def _resolve(node: dict[str, Any], root: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """(the schema of ``node`` with $ref and ``anyOf [X, null]`` resolved, nullable)."""
    nullable = False
    while True:
        if "$ref" in node:
            name = node["$ref"].rsplit("/", 1)[1]
            extra = {k: v for k, v in node.items() if k != "$ref"}
            node = {**root["$defs"][name], **extra}
            continue
        if "anyOf" in node:
            kinds = [s for s in node["anyOf"] if s.get("type") != "null"]
            nullable = nullable or len(kinds) < len(node["anyOf"])
            if len(kinds) == 1 and ("$ref" in kinds[0] or "type" in kinds[0]):
                rest = {k: v for k, v in node.items() if k != "anyOf"}
                node = {**rest, **kinds[0]}
                continue
        return node, nullable


def _types(node: dict[str, Any]) -> set[str]:
    t = node.get("type")
    if t is None and "anyOf" in node:  # addresses: anyOf formats of one type
        return {x for s in node["anyOf"] for x in _types(s)} or {"string"}
    if t is None and "oneOf" in node:
        return {"object"}
    if t is None and "enum" in node:
        return {"string"} if all(isinstance(e, str) for e in node["enum"]) else set()
    return set(t) if isinstance(t, list) else {t} if t else set()


def _compare(node: dict[str, Any], opt: dict[str, Any], path: str, root: dict[str, Any],
             errors: list[str]) -> None:  # fmt: skip
    node, _ = _resolve(node, root)
    types = _types(node) - {"null"}
    kind = opt.get("type", "str")
    if len(types) > 1:
        if kind != "raw":
            errors.append(f"{path}: schema types {sorted(types)} need type raw, spec has {kind}")
    elif types:
        (t,) = types
        if kind not in SPEC_TYPES[t]:
            errors.append(f"{path}: schema type {t}, spec type {kind}")
    if "enum" in node and sorted(map(str, node["enum"])) != sorted(
        map(str, opt.get("choices", []))
    ):
        errors.append(f"{path}: schema enum {node['enum']}, spec choices {opt.get('choices')}")
    has_default = "default" in node and node["default"] not in (None, [], {}) and "default" in opt
    if has_default and str(node["default"]) != str(opt["default"]):
        errors.append(f"{path}: schema default {node['default']!r}, spec {opt['default']!r}")
    if "array" in types and "items" in node:
        item, _ = _resolve(node["items"], root)
        if "properties" in item or "oneOf" in item:
            if opt.get("elements") != "dict":
                errors.append(f"{path}: items are objects, spec elements {opt.get('elements')}")
            _compare_object(item, opt.get("options", {}), path + "[]", root, errors)
        elif opt.get("elements") not in {next(iter(SPEC_TYPES[t])) for t in _types(item)} | {
            "str" if "string" in _types(item) else "?"
        }:
            errors.append(
                f"{path}: items {sorted(_types(item))}, spec elements {opt.get('elements')}"
            )
    if "object" in types and "properties" in node:
        _compare_object(node, opt.get("options", {}), path, root, errors)


def _compare_object(node: dict[str, Any], options: dict[str, Any], path: str,
                    root: dict[str, Any], errors: list[str], *, extra: set[str] = frozenset(),
                    names: dict[str, str] | None = None) -> None:  # fmt: skip
    variants = [node]
    if "oneOf" in node:  # the checkers: the union of every type's keys
        variants = [_resolve(v, root)[0] for v in node["oneOf"]]
    props: dict[str, dict[str, Any]] = {}
    required: set[str] = set.intersection(*(set(v.get("required", [])) for v in variants))
    for v in variants:
        for k, p in v.get("properties", {}).items():
            if len(variants) > 1:
                p = {
                    kk: vv
                    for kk, vv in _resolve(p, root)[0].items()
                    if kk not in ("default", "enum", "const")
                }
            props.setdefault(k, p)
    names = names or {k: k for k in props}
    want = {names[k] for k in props}
    have = set(options) - set(extra)
    for missing in sorted(want - have):
        errors.append(f"{path}.{missing}: in the schema, not in the argument specs")
    for unknown in sorted(have - want):
        errors.append(f"{path}.{unknown}: in the argument specs, not in the schema")
    for k, p in props.items():
        var = names[k]
        if var not in options:
            continue
        sub = f"{path}.{var}" if path else var
        if k in required and not options[var].get("required") and var not in DERIVED:
            errors.append(f"{sub}: required in the schema, not in the argument specs")
        if k not in required and options[var].get("required"):
            errors.append(f"{sub}: required in the argument specs, optional in the schema")
        _compare(p, options[var], sub, root, errors)


def test_hamod_cluster_mirrors_the_cluster_schema() -> None:
    schema, spec = _schema("cluster"), _spec("hamod_cluster")
    errors: list[str] = []
    _compare_object(schema, {v: spec[v] for v in CLUSTER_VARS.values()}, "", schema, errors,
                    names=CLUSTER_VARS)  # fmt: skip
    assert not errors, "\n".join(errors)


def test_hamod_node_name_and_addresses_are_a_cluster_node() -> None:
    schema, spec = _schema("cluster"), _spec("hamod_node")
    node = schema["$defs"]["Node"]["properties"]
    errors: list[str] = []
    _compare(node["name"], spec["hamod_node_name"], "hamod_node_name", schema, errors)
    _compare(
        node["addresses"], spec["hamod_node_addresses"], "hamod_node_addresses", schema, errors
    )
    assert not errors, "\n".join(errors)


def test_hamod_module_list_items_are_module_files() -> None:
    schema, spec = _schema("module"), _spec("hamod_module")
    item = spec["hamod_module_list"]
    assert item["type"] == "list" and item["elements"] == "dict"
    errors: list[str] = []
    _compare_object(schema, item["options"], "hamod_module_list[]", schema, errors,
                    extra=MODULE_ANSIBLE_KEYS)  # fmt: skip
    assert set(item["options"]) >= MODULE_ANSIBLE_KEYS
    assert not errors, "\n".join(errors)


def test_the_comparison_catches_a_drift() -> None:
    """The checker itself: a changed type, a missing key and a wrong default are caught."""
    schema = _schema("cluster")
    spec = {v: dict(_spec("hamod_cluster")[v]) for v in CLUSTER_VARS.values()}
    spec["hamod_cluster_api_port"]["type"] = "str"
    spec["hamod_cluster_api_port"]["default"] = 9999
    del spec["hamod_cluster_key"]
    errors: list[str] = []
    _compare_object(schema, spec, "", schema, errors, names=CLUSTER_VARS)
    text = "\n".join(errors)
    assert "hamod_cluster_api_port: schema type integer, spec type str" in text
    assert "hamod_cluster_api_port: schema default 9010" in text
    assert ".hamod_cluster_key: in the schema, not in the argument specs" in text


@pytest.mark.parametrize("role", ["hamod_node", "hamod_cluster", "hamod_module"])
def test_every_default_is_a_documented_input(role: str) -> None:
    spec = _spec(role)
    defaults = yaml.safe_load((ROLES / role / "defaults" / "main.yml").read_text()) or {}
    public = {k for k in defaults if not k.startswith("__")}
    assert public - set(spec) == set(), f"{role}: defaults without argument specs"
    assert set(spec) - public - INVENTORY_ONLY == set(), f"{role}: specs without defaults"
    readme = (ROLES / role / "README.md").read_text()
    undocumented = sorted(v for v in spec if f"`{v}`" not in readme)
    assert not undocumented, f"{role}/README.md does not document {undocumented}"
    for name, opt in spec.items():
        assert name.startswith(f"{role}_") or name in INVENTORY_ONLY, name
        assert opt.get("description"), f"{role}: {name} has no description"


def test_the_witness_entry_point_takes_the_main_options() -> None:
    """hamod_cluster's `witness` entry point (tasks_from=witness, on a witness host without
    cluster variables) declares its options exactly as `main` does."""
    data = yaml.safe_load((ROLES / "hamod_cluster" / "meta" / "argument_specs.yml").read_text())
    main, witness = (data["argument_specs"][e]["options"] for e in ("main", "witness"))
    assert witness, "no option in the witness entry point"
    for name, opt in witness.items():
        assert main.get(name) == opt, f"{name}: the witness entry point differs from main"
    assert not any(opt.get("required") for opt in witness.values())
