"""Cross-field checks of a module file, alone and against its cluster file.

Pydantic checks each field; these functions check how fields fit together and return
*every* problem found (never stop at the first), each naming its path.
"""

from __future__ import annotations

from collections import Counter
from pathlib import PurePosixPath

from hamod.config.checkers import ModuleChecker, VipChecker
from hamod.config.cluster import ClusterConfig
from hamod.config.module import ModuleConfig
from hamod.config.units import Duration
from hamod.errors import Problem

__all__ = ["module_problems"]

_SYSTEM_DIRS = tuple(PurePosixPath(p) for p in ("/proc", "/sys", "/dev", "/run", "/boot"))


def _q(value: object) -> str:
    return repr(str(value))


def module_problems(cfg: ModuleConfig, cluster: ClusterConfig | None) -> list[Problem]:
    """Every cross-field problem of ``cfg``; checks needing ``cluster`` run if it is given."""
    problems: list[Problem] = []
    problems += _mode_problems(cfg)
    problems += _heartbeat_problems(cfg)
    problems += _directory_problems(cfg)
    problems += _checker_problems(cfg)
    problems += _vip_problems(cfg)
    if cluster is not None:
        problems += _cluster_problems(cfg, cluster)
    return problems


def _mode_problems(cfg: ModuleConfig) -> list[Problem]:
    problems: list[Problem] = []
    counts = Counter(cfg.nodes)
    for i, node in enumerate(cfg.nodes):
        if counts[node] > 1 and cfg.nodes.index(node) != i:
            problems.append(Problem(f"nodes[{i}]", "node listed twice", _q(node)))
    if cfg.mode == "mirror":
        if len(cfg.nodes) != 2:
            problems.append(
                Problem("nodes", f"a mirror module runs on exactly 2 nodes, not {len(cfg.nodes)}")
            )
        if cfg.farm is not None:
            problems.append(Problem("farm", "only a farm module has a 'farm' section"))
        if cfg.defaultprim not in ("alone", "lastprim") and cfg.defaultprim not in cfg.nodes:
            problems.append(
                Problem(
                    "defaultprim",
                    "expected 'alone', 'lastprim' or one of the module's nodes "
                    f"({', '.join(repr(n) for n in cfg.nodes)})",
                    _q(cfg.defaultprim),
                )
            )
    else:
        if cfg.replication is not None:
            problems.append(
                Problem("replication", "a farm module does not replicate; use a mirror module")
            )
        if cfg.farm is None:
            problems.append(Problem("farm", "a farm module needs a 'farm' section with its rules"))
        if not cfg.vips:
            problems.append(Problem("vips", "a farm module needs at least one virtual IP"))
        for key in ("defaultprim", "failover"):
            if key in cfg.model_fields_set:
                problems.append(Problem(key, "only for mirror modules"))
    if cfg.farm is not None:
        for node in cfg.farm.weights:
            if node not in cfg.nodes:
                problems.append(
                    Problem(f"farm.weights.{node}", "not one of the module's nodes", _q(node))
                )
        rule_keys = [(r.port, r.proto) for r in cfg.farm.rules]
        for i, rule in enumerate(cfg.farm.rules):
            if rule_keys.index((rule.port, rule.proto)) != i:
                problems.append(
                    Problem(f"farm.rules[{i}]", f"duplicate rule for {rule.port}/{rule.proto}")
                )
    return problems


def _heartbeat_problems(cfg: ModuleConfig) -> list[Problem]:
    hb = cfg.heartbeat
    problems: list[Problem] = []
    if hb.pulse.ms == 0:
        problems.append(Problem("heartbeat.pulse", "must be more than 0"))
    if hb.pulse >= hb.timeout:
        problems.append(
            Problem(
                "heartbeat.pulse",
                f"must be less than heartbeat.timeout ({hb.timeout})",
                _q(hb.pulse),
            )
        )
        return problems
    lease = hb.effective_lease
    origin = "" if hb.lease is not None else f"derived lease {lease} (timeout / 2) "
    if lease >= hb.timeout:
        problems.append(
            Problem(
                "heartbeat.lease", f"must be less than heartbeat.timeout ({hb.timeout})", _q(lease)
            )
        )
    elif lease.ms <= 2 * hb.pulse.ms:
        hint = "" if hb.lease is not None else "; set heartbeat.lease or raise heartbeat.timeout"
        problems.append(
            Problem(
                "heartbeat.lease",
                f"{origin}must be more than 2 × heartbeat.pulse "
                f"({Duration.from_ms(2 * hb.pulse.ms)}){hint}",
                _q(lease) if hb.lease is not None else None,
            )
        )
    if hb.networks is not None:
        for i, net in enumerate(hb.networks):
            if net in hb.networks[:i]:
                problems.append(
                    Problem(f"heartbeat.networks[{i}]", "network listed twice", _q(net))
                )
    return problems


def _directory_problems(cfg: ModuleConfig) -> list[Problem]:
    if cfg.replication is None:
        return []
    problems: list[Problem] = []
    dirs = [d.path for d in cfg.replication.directories]
    for i, path in enumerate(dirs):
        where = f"replication.directories[{i}].path"
        if path == PurePosixPath("/"):
            problems.append(Problem(where, "cannot replicate the root directory", _q(path)))
            continue
        if any(path == s or s in path.parents for s in _SYSTEM_DIRS):
            problems.append(
                Problem(where, "cannot replicate a kernel or runtime directory", _q(path))
            )
        for j, other in enumerate(dirs[:i]):
            if path == other:
                problems.append(
                    Problem(where, f"duplicate of replication.directories[{j}]", _q(path))
                )
            elif other in path.parents:
                problems.append(
                    Problem(
                        where,
                        f"inside replication.directories[{j}] ({other}); it is replicated already",
                        _q(path),
                    )
                )
            elif path in other.parents:
                problems.append(
                    Problem(where, f"contains replication.directories[{j}] ({other})", _q(path))
                )
    return problems


def _checker_problems(cfg: ModuleConfig) -> list[Problem]:
    problems: list[Problem] = []
    names = [c.name for c in cfg.checkers]
    vips = {v.addr for v in cfg.vips}
    allowed = {"PRIM", "ALONE", "SECOND"} if cfg.mode == "mirror" else {"UP"}
    for i, checker in enumerate(cfg.checkers):
        where = f"checkers[{i}]"
        if names.index(checker.name) != i:
            problems.append(Problem(f"{where}.name", "duplicate checker name", _q(checker.name)))
        if checker.timeout >= checker.interval:
            problems.append(
                Problem(
                    f"{where}.timeout",
                    f"must be less than interval ({checker.interval})",
                    _q(checker.timeout),
                )
            )
        if checker.interval.ms == 0:
            problems.append(Problem(f"{where}.interval", "must be more than 0"))
        if "when" in checker.model_fields_set:
            bad = [s for s in checker.when if s not in allowed]
            if bad:
                problems.append(
                    Problem(
                        f"{where}.when",
                        f"state {bad[0]} does not exist in a {cfg.mode} module",
                        _q(bad[0]),
                    )
                )
        if checker.action == "swap" and cfg.mode == "farm":
            problems.append(Problem(f"{where}.action", "swap is for mirror modules", "'swap'"))
        if isinstance(checker, ModuleChecker) and checker.module == cfg.module:
            problems.append(Problem(f"{where}.module", "a module cannot depend on itself"))
        if isinstance(checker, VipChecker):
            if not cfg.vips:
                problems.append(Problem(where, "vip checker in a module without vips"))
            elif checker.addr is not None and checker.addr not in vips:
                problems.append(
                    Problem(f"{where}.addr", "not one of the module's vips", _q(checker.addr))
                )
    return problems


def _vip_problems(cfg: ModuleConfig) -> list[Problem]:
    problems: list[Problem] = []
    for i, vip in enumerate(cfg.vips):
        if any(v.addr == vip.addr for v in cfg.vips[:i]):
            problems.append(Problem(f"vips[{i}].addr", "duplicate virtual IP", _q(vip.addr)))
        if vip.announce.count > 0 and vip.announce.interval.ms == 0:
            problems.append(
                Problem(f"vips[{i}].announce.interval", "must be more than 0 when count > 0")
            )
    return problems


def _cluster_problems(cfg: ModuleConfig, cluster: ClusterConfig) -> list[Problem]:
    problems: list[Problem] = []
    known = [n.name for n in cluster.nodes]
    nodes = [cluster.node(n) for n in cfg.nodes]
    for i, (name, node) in enumerate(zip(cfg.nodes, nodes, strict=True)):
        if node is None:
            problems.append(
                Problem(f"nodes[{i}]", f"unknown node; the cluster has {_list(known)}", _q(name))
            )
    present = [n for n in nodes if n is not None]
    net_names = [n.name for n in cluster.networks]
    if cfg.heartbeat.networks is not None:
        for i, net in enumerate(cfg.heartbeat.networks):
            where = f"heartbeat.networks[{i}]"
            if net not in net_names:
                problems.append(
                    Problem(where, f"unknown network; the cluster has {_list(net_names)}", _q(net))
                )
                continue
            for node in present:
                if net not in node.addresses:
                    problems.append(
                        Problem(
                            where, f"node '{node.name}' has no address on this network", _q(net)
                        )
                    )
    elif present and not any(all(n in node.addresses for node in present) for n in net_names):
        problems.append(
            Problem("heartbeat.networks", "no cluster network reaches all the module's nodes")
        )
    if cfg.mode == "mirror" and any(n.replication for n in cluster.networks):
        repl = cluster.replication_network.name
        for node in present:
            if repl not in node.addresses:
                problems.append(
                    Problem(
                        "nodes",
                        f"node '{node.name}' has no address on the replication network '{repl}'",
                    )
                )
    node_addrs = {a: n.name for n in cluster.nodes for a in n.addresses.values()}
    subnets = [
        cluster_net.subnet
        for cluster_net in cluster.networks
        if present and all(cluster_net.name in node.addresses for node in present)
    ]
    for i, vip in enumerate(cfg.vips):
        where = f"vips[{i}].addr"
        if vip.addr in node_addrs:
            problems.append(
                Problem(where, f"is the address of node '{node_addrs[vip.addr]}'", _q(vip.addr))
            )
        elif present and not any(vip.addr in s for s in subnets):
            problems.append(
                Problem(
                    where,
                    "outside every subnet of the module's nodes "
                    f"({', '.join(str(s) for s in subnets) or 'none'})",
                    _q(vip.addr),
                )
            )
    for i, checker in enumerate(cfg.checkers):
        if isinstance(checker, ModuleChecker) and checker.node not in (None, *known):
            problems.append(
                Problem(
                    f"checkers[{i}].node",
                    f"unknown node; the cluster has {_list(known)}",
                    _q(checker.node),
                )
            )
    return problems


def _list(names: list[str]) -> str:
    return ", ".join(f"'{n}'" for n in names)
