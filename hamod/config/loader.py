"""Reading configuration files: YAML → models → every problem, with paths.

The YAML dialect is YAML 1.2's: only ``true``/``false`` are booleans (``on``, ``no``
stay strings, so ``boot: on`` means what it says), there are no dates or sexagesimal
numbers, duplicate keys are errors, and keys must be strings. Malformed YAML is
reported with its line and column.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from hamod.config.cluster import ClusterConfig, cluster_problems
from hamod.config.crosscheck import module_problems
from hamod.config.module import ModuleConfig
from hamod.config.translate import problems_from_validation, show_value
from hamod.errors import ConfigError, Problem, UsageError

__all__ = [
    "CheckResult",
    "check_files",
    "load_cluster",
    "load_module",
    "parse_cluster",
    "parse_module",
    "run_check",
]

Kind = Literal["cluster", "module"]
M = TypeVar("M", bound=BaseModel)


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 scalars and duplicate-key detection."""


_Loader.yaml_implicit_resolvers = {
    first: [
        (tag, rx)
        for tag, rx in resolvers
        if tag.rsplit(":", 1)[-1] not in ("bool", "int", "timestamp")
    ]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int",
    re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"),
    list("-+0123456789"),
)


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> dict[str, object]:
    loader.flatten_mapping(node)
    result: dict[str, object] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str):
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"key {show_value(key)} is not a string; quote it ('{key}')",
                key_node.start_mark,
            )
        if key in result:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key '{key}'", key_node.start_mark
            )
        result[key] = loader.construct_object(value_node, deep=True)
    return result


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _yaml_problem(exc: yaml.YAMLError) -> Problem:
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        what = exc.problem or "malformed YAML"
        if isinstance(exc, yaml.constructor.ConstructorError):
            return Problem("", f"line {mark.line + 1}, column {mark.column + 1}: {what}")
        return Problem(
            "", f"malformed YAML at line {mark.line + 1}, column {mark.column + 1}: {what}"
        )
    return Problem("", f"malformed YAML: {exc}")


@dataclass(frozen=True)
class _Doc:
    data: dict[str, object] | None
    kind: Kind | None
    problems: list[Problem]


def _parse_text(text: str) -> _Doc:
    try:
        data = yaml.load(text, Loader=_Loader)  # _Loader derives from SafeLoader
    except yaml.YAMLError as exc:
        return _Doc(None, None, [_yaml_problem(exc)])
    if data is None:
        return _Doc(None, None, [Problem("", "empty file; " + _EXPECTED)])
    if not isinstance(data, dict):
        return _Doc(
            None, None, [Problem("", "expected a mapping at the top level", show_value(data))]
        )
    if "cluster" in data and "module" in data:
        return _Doc(
            None,
            None,
            [
                Problem(
                    "", "both 'cluster' and 'module' at the top level; a file is one or the other"
                )
            ],
        )
    if "cluster" in data:
        return _Doc(data, "cluster", [])
    if "module" in data:
        return _Doc(data, "module", [])
    return _Doc(data, None, [Problem("", "neither a cluster nor a module file; " + _EXPECTED)])


_EXPECTED = "a cluster file starts with 'cluster: <name>', a module file with 'module: <name>'"


def _read(path: Path) -> _Doc:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return _Doc(None, None, [Problem("", "no such file")])
    except IsADirectoryError:
        return _Doc(None, None, [Problem("", "is a directory, not a file")])
    except UnicodeDecodeError:
        return _Doc(None, None, [Problem("", "not a UTF-8 text file")])
    except OSError as exc:
        return _Doc(None, None, [Problem("", f"cannot read: {exc.strerror or exc}")])
    return _parse_text(text)


def _validate(model: type[M], data: dict[str, object]) -> tuple[M | None, list[Problem]]:
    try:
        return model.model_validate(data), []
    except ValidationError as exc:
        return None, problems_from_validation(exc, model)


def _cluster_from(doc: _Doc) -> tuple[ClusterConfig | None, list[Problem]]:
    if doc.problems:
        return None, doc.problems
    assert doc.data is not None
    if doc.kind != "cluster":
        return None, [Problem("", "not a cluster file (it has 'module:' at the top level)")]
    cfg, problems = _validate(ClusterConfig, doc.data)
    if cfg is not None:
        problems = cluster_problems(cfg)
    return (cfg if not problems else None), problems


def _module_from(
    doc: _Doc, cluster: ClusterConfig | None
) -> tuple[ModuleConfig | None, list[Problem]]:
    if doc.problems:
        return None, doc.problems
    assert doc.data is not None
    if doc.kind != "module":
        return None, [Problem("", "not a module file (it has 'cluster:' at the top level)")]
    cfg, problems = _validate(ModuleConfig, doc.data)
    if cfg is not None:
        problems = module_problems(cfg, cluster)
    return (cfg if not problems else None), problems


def parse_cluster(text: str, source: str = "<string>") -> ClusterConfig:
    """The cluster file whose YAML is ``text``; raises :class:`ConfigError`."""
    cfg, problems = _cluster_from(_parse_text(text))
    if cfg is None:
        raise ConfigError(source, problems)
    return cfg


def parse_module(
    text: str, cluster: ClusterConfig | None = None, source: str = "<string>"
) -> ModuleConfig:
    """The module file whose YAML is ``text``, checked against ``cluster`` if given."""
    cfg, problems = _module_from(_parse_text(text), cluster)
    if cfg is None:
        raise ConfigError(source, problems)
    return cfg


def load_cluster(path: str | Path) -> ClusterConfig:
    """Load and check a cluster file; raises :class:`ConfigError` with every problem."""
    cfg, problems = _cluster_from(_read(Path(path)))
    if cfg is None:
        raise ConfigError(str(path), problems)
    return cfg


def load_module(path: str | Path, cluster: ClusterConfig | None = None) -> ModuleConfig:
    """Load and check a module file, against ``cluster`` when given (nodes, networks,
    VIP subnets); raises :class:`ConfigError` with every problem."""
    cfg, problems = _module_from(_read(Path(path)), cluster)
    if cfg is None:
        raise ConfigError(str(path), problems)
    return cfg


@dataclass
class CheckResult:
    """What :func:`run_check` found: problems per file (empty list = ok) and notes."""

    problems: dict[Path, list[Problem]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def run_check(paths: Iterable[str | Path]) -> CheckResult:
    """Check cluster and module files together; modules are checked against the cluster
    file among ``paths``. Raises :class:`UsageError` if there are several cluster files."""
    result = CheckResult()
    docs = {Path(p): _read(Path(p)) for p in paths}
    clusters = [p for p, d in docs.items() if d.kind == "cluster"]
    if len(clusters) > 1:
        raise UsageError(
            "more than one cluster file ("
            + ", ".join(str(c) for c in clusters)
            + "); check each cluster with its own modules"
        )
    result.problems = {path: [] for path in docs}  # command-line order
    cluster: ClusterConfig | None = None
    if clusters:
        cluster, result.problems[clusters[0]] = _cluster_from(docs[clusters[0]])
        if cluster is None and any(d.kind == "module" for d in docs.values()):
            result.notes.append(f"note: {clusters[0]} has errors; modules were checked without it")
    elif any(d.kind == "module" for d in docs.values()):
        result.notes.append(
            "note: no cluster file given; modules were checked alone "
            "(nodes, networks and VIP subnets not checked)"
        )
    names: dict[str, Path] = {}
    for path, doc in docs.items():
        if path in clusters:
            continue
        if doc.kind != "module":
            result.problems[path] = doc.problems
            continue
        _, problems = _module_from(doc, cluster)
        name = doc.data.get("module") if doc.data else None
        if isinstance(name, str):
            if name in names:
                problems = [
                    *problems,
                    Problem("module", f"module name already used in {names[name]}", repr(name)),
                ]
            else:
                names[name] = path
        result.problems[path] = problems
    return result


def check_files(paths: Iterable[str | Path]) -> dict[Path, list[Problem]]:
    """Problems per file (an empty list means the file is valid); see :func:`run_check`."""
    return run_check(paths).problems
