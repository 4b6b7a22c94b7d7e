"""Configuration schema: the cluster file and module files (pydantic v2, frozen models).

Public API (everything else in ``hamod.config`` is internal)::

    from hamod.config import load_cluster, load_module, check_files

    cluster = load_cluster("/etc/hamod/cluster.yaml")          # ClusterConfig
    module = load_module("/etc/hamod/modules/pg.yaml", cluster)  # ModuleConfig
    problems = check_files([path, ...])   # {Path: [Problem, ...]}, [] = valid

- :func:`load_cluster` / :func:`load_module` raise :class:`hamod.errors.ConfigError`
  carrying *every* problem (path, message, offending value); ``load_module`` without a
  cluster skips the checks needing it (nodes, networks, VIP subnets).
  :func:`parse_cluster` / :func:`parse_module` do the same from YAML text.
- :func:`check_files` checks several files together (modules against the one cluster
  file among them; :class:`hamod.errors.UsageError` if several); :func:`run_check` also
  returns the notes ``hamod config check`` prints.
- :class:`Duration` (float seconds, ``str()`` → ``'700ms'``), :class:`Size` (int bytes,
  ``'8MiB'``), :class:`Rate` (bytes/s); ``Duration.parse('30s')``, ``Size.parse('1GiB')``.
- :func:`config_hash(module, cluster) <config_hash>`: sha256 of the canonical JSON dump,
  equal on two nodes iff their configurations are; :func:`diff_fields(a, b) <diff_fields>`
  lists the differing paths (``heartbeat.pulse``, ``vips[0].addr``);
  :func:`canonical_json` gives the dump to send to a peer (``diff_fields`` accepts it
  parsed, as a dict).
- Models: :class:`ClusterConfig` (``.node(name)``, ``.network(name)``,
  ``.replication_network``) and :class:`ModuleConfig` with its parts (``Heartbeat`` with
  ``.effective_lease``, ``Vip``, ``Replication``, ``Directory``, ``Farm`` with
  ``.weight(node)``, ``Scripts`` with ``.resolved_directory(module)``) and the checker
  union :data:`Checker` (one class per ``type``).

``python -m hamod.config.docs`` regenerates ``docs/config-reference.md`` and the JSON
Schemas in ``docs/schema/``; ``--check`` fails when they are stale.
"""

from __future__ import annotations

from hamod.config.checkers import (
    Action,
    Checker,
    CustomChecker,
    HttpChecker,
    InterfaceChecker,
    ModuleChecker,
    PingChecker,
    ProcessChecker,
    TcpChecker,
    VipChecker,
)
from hamod.config.cluster import Arbitrator, ClusterConfig, Network, Node, TlsPaths, Witness
from hamod.config.identity import canonical_json, config_hash, diff_fields, flatten
from hamod.config.loader import (
    CheckResult,
    check_files,
    load_cluster,
    load_module,
    parse_cluster,
    parse_module,
    run_check,
)
from hamod.config.module import (
    Announce,
    Directory,
    Farm,
    FarmRule,
    Heartbeat,
    ModuleConfig,
    Replication,
    Scripts,
    StopTimeouts,
    Vip,
)
from hamod.config.units import Duration, Rate, Size, UnitError

__all__ = [
    "Action",
    "Announce",
    "Arbitrator",
    "CheckResult",
    "Checker",
    "ClusterConfig",
    "CustomChecker",
    "Directory",
    "Duration",
    "Farm",
    "FarmRule",
    "Heartbeat",
    "HttpChecker",
    "InterfaceChecker",
    "ModuleChecker",
    "ModuleConfig",
    "Network",
    "Node",
    "PingChecker",
    "ProcessChecker",
    "Rate",
    "Replication",
    "Scripts",
    "Size",
    "StopTimeouts",
    "TcpChecker",
    "TlsPaths",
    "UnitError",
    "Vip",
    "VipChecker",
    "Witness",
    "canonical_json",
    "check_files",
    "config_hash",
    "diff_fields",
    "flatten",
    "load_cluster",
    "load_module",
    "parse_cluster",
    "parse_module",
    "run_check",
]
