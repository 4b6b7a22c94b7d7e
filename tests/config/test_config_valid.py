"""Valid configurations: the examples, documented defaults, hashing and diffs."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import pytest

from hamod.config import (
    ClusterConfig,
    Duration,
    ModuleConfig,
    ProcessChecker,
    Size,
    TcpChecker,
    canonical_json,
    check_files,
    config_hash,
    diff_fields,
    load_cluster,
    load_module,
    parse_module,
    run_check,
)
from hamod.errors import ConfigError, Problem, UsageError

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"
MODULES = ["postgresql.yaml", "generic.yaml", "farm.yaml"]


@pytest.fixture(scope="module")
def cluster() -> ClusterConfig:
    return load_cluster(EXAMPLES / "cluster.yaml")


def test_example_cluster(cluster: ClusterConfig) -> None:
    assert [n.name for n in cluster.nodes] == ["n1", "n2", "n3"]
    assert cluster.replication_network.name == "repl"
    assert cluster.witness is not None and cluster.witness.arbitrator is not None
    assert cluster.api_port == 9010
    assert cluster.node("n2") is not None and cluster.node("n9") is None


@pytest.mark.parametrize("name", MODULES)
def test_examples_load(name: str, cluster: ClusterConfig) -> None:
    module = load_module(EXAMPLES / name, cluster)
    assert module == load_module(EXAMPLES / name, None)


def test_postgresql_example(cluster: ClusterConfig) -> None:
    pg = load_module(EXAMPLES / "postgresql.yaml", cluster)
    assert pg.mode == "mirror" and pg.nodes == ("n1", "n2")
    assert pg.replication is not None
    assert str(pg.replication.directories[0].path) == "/var/lib/postgresql/15/main"
    assert pg.replication.mode == "sync"
    assert pg.boot == "on"
    kinds = {type(c) for c in pg.checkers}
    assert kinds == {ProcessChecker, TcpChecker}


def test_all_examples_check_together() -> None:
    result = run_check(sorted(EXAMPLES.glob("*.yaml")))
    assert all(p == [] for p in result.problems.values()), result.problems
    assert len(result.problems) == 4
    assert result.notes == []


def test_module_defaults() -> None:
    m = parse_module("module: m\nmode: mirror\nnodes: [a, b]\n")
    assert m.heartbeat.pulse == Duration(0.7) and str(m.heartbeat.pulse) == "700ms"
    assert m.heartbeat.timeout == 30.0
    assert m.heartbeat.lease is None and m.heartbeat.effective_lease == 15.0
    assert m.heartbeat.networks is None
    assert m.failover is True and m.defaultprim == "alone"
    assert m.maxloop == 3 and str(m.loop_interval) == "24h"
    assert m.boot == "ignore" and m.boot_delay == 0.0
    assert m.vips == () and m.checkers == () and m.replication is None and m.farm is None
    assert m.scripts.resolved_directory("m") == PurePosixPath("/etc/hamod/modules/m/scripts")
    assert m.scripts.stop_timeout.nice == 300.0 and m.scripts.stop_timeout.force == 300.0


def test_replication_and_checker_defaults() -> None:
    m = parse_module(
        "module: m\nmode: mirror\nnodes: [a, b]\n"
        "vips: [{addr: 10.0.0.5}]\n"
        "replication: {directories: [{path: /srv/x/}]}\n"
        "checkers:\n"
        "  - {name: p, type: process, process: x}\n"
        "  - {name: t, type: tcp, addr: localhost, port: 1}\n"
        "  - {name: h, type: http, url: 'http://h/'}\n"
        "  - {name: g, type: ping, addresses: ['::1']}\n"
        "  - {name: i, type: interface, interface: eth0}\n"
        "  - {name: v, type: vip}\n"
        "  - {name: c, type: custom}\n"
        "  - {name: o, type: module, module: other}\n"
    )
    r = m.replication
    assert r is not None
    assert str(r.directories[0].path) == "/srv/x"
    assert (r.mode, r.durability, r.bandwidth) == ("sync", "per-write", None)
    assert r.region_size == Size(1 << 20) and r.link_timeout == 30.0
    actions = {c.name: c.action for c in m.checkers}
    assert actions == {
        "p": "stopstart",
        "t": "restart",
        "h": "restart",
        "g": "wait",
        "i": "wait",
        "v": "stopstart",
        "c": "stopstart",
        "o": "wait",
    }
    assert all(c.when == ("PRIM", "ALONE", "UP") for c in m.checkers)
    vip = m.vips[0]
    assert (vip.interface, vip.check, vip.announce.count, vip.announce.interval) == (
        "auto",
        True,
        5,
        1.0,
    )


def test_when_aliases() -> None:
    m = parse_module(
        "module: m\nmode: mirror\nnodes: [a, b]\ncheckers:\n"
        "  - {name: a, type: interface, interface: eth0, when: both}\n"
        "  - {name: b, type: interface, interface: eth0, when: [prim, second]}\n"
    )
    assert m.checkers[0].when == ("PRIM", "ALONE", "SECOND")
    assert m.checkers[1].when == ("PRIM", "SECOND")


def test_tight_heartbeat_supported() -> None:
    m = parse_module(
        "module: m\nmode: mirror\nnodes: [a, b]\nheartbeat: {pulse: 100ms, timeout: 1s}\n"
    )
    assert m.heartbeat.effective_lease == 0.5


def test_models_are_frozen() -> None:
    m = parse_module("module: m\nmode: mirror\nnodes: [a, b]\n")
    with pytest.raises(Exception):  # noqa: B017 - pydantic's frozen-instance error
        m.maxloop = 4  # type: ignore[misc]


def test_config_hash_is_stable_and_sensitive(cluster: ClusterConfig) -> None:
    pg = load_module(EXAMPLES / "postgresql.yaml", cluster)
    h = config_hash(pg, cluster)
    assert len(h) == 64 and h == config_hash(load_module(EXAMPLES / "postgresql.yaml"), cluster)
    text = (EXAMPLES / "postgresql.yaml").read_text()
    changed = parse_module(text.replace("pulse: 700ms", "pulse: 800ms"), cluster)
    assert config_hash(changed, cluster) != h
    assert config_hash(pg, None) != h
    # Writing a default explicitly or in another unit does not change the hash.
    same = parse_module(text.replace("timeout: 30s", "timeout: 30000ms"), cluster)
    assert config_hash(same, cluster) == h


def test_diff_fields(cluster: ClusterConfig) -> None:
    text = (EXAMPLES / "postgresql.yaml").read_text()
    a = parse_module(text, cluster)
    b = parse_module(
        text.replace("pulse: 700ms", "pulse: 800ms").replace("10.0.0.50", "10.0.0.52"), cluster
    )
    assert diff_fields(a, a) == []
    assert diff_fields(a, b) == ["heartbeat.pulse", "vips[0].addr"]
    import json

    assert diff_fields(json.loads(canonical_json(a)), b) == ["heartbeat.pulse", "vips[0].addr"]
    c = parse_module(
        text.replace("  - addr: 10.0.0.50\n", "  - addr: 10.0.0.50\n  - addr: 10.0.0.53\n"), cluster
    )
    assert "vips[1].addr" in diff_fields(a, c)


def test_check_files_problems_and_notes(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("module: m\nmode: mirror\nnodes: [n1]\n")
    good = EXAMPLES / "generic.yaml"
    problems = check_files([bad, good])
    assert problems == {
        bad: [Problem("nodes", "a mirror module runs on exactly 2 nodes, not 1")],
        good: [],
    }
    assert run_check([good]).notes == [
        "note: no cluster file given; modules were checked alone "
        "(nodes, networks and VIP subnets not checked)"
    ]


def test_check_files_duplicate_module_name(tmp_path: Path) -> None:
    copy = tmp_path / "copy.yaml"
    copy.write_text((EXAMPLES / "generic.yaml").read_text())
    problems = check_files([EXAMPLES / "cluster.yaml", EXAMPLES / "generic.yaml", copy])
    assert [str(p) for p in problems[copy]] == [
        f"module: module name already used in {EXAMPLES / 'generic.yaml'} (got 'myapp')"
    ]


def test_check_files_two_clusters(tmp_path: Path) -> None:
    other = tmp_path / "other.yaml"
    other.write_text((EXAMPLES / "cluster.yaml").read_text())
    with pytest.raises(UsageError) as info:
        check_files([EXAMPLES / "cluster.yaml", other])
    assert str(info.value) == (
        f"more than one cluster file ({EXAMPLES / 'cluster.yaml'}, {other}); "
        "check each cluster with its own modules"
    )


def test_invalid_cluster_file_note(tmp_path: Path) -> None:
    bad = tmp_path / "cluster.yaml"
    bad.write_text("cluster: c\nnetworks: []\nnodes: []\n")
    result = run_check([bad, EXAMPLES / "generic.yaml"])
    assert result.notes == [f"note: {bad} has errors; modules were checked without it"]
    assert result.problems[EXAMPLES / "generic.yaml"] == []


def test_load_errors_name_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    with pytest.raises(ConfigError) as info:
        load_module(missing)
    assert str(info.value) == f"{missing}: <file>: no such file"
    with pytest.raises(ConfigError) as info:
        load_cluster(tmp_path)
    assert str(info.value) == f"{tmp_path}: <file>: is a directory, not a file"


def test_module_config_type() -> None:
    assert isinstance(
        parse_module(
            "module: m\nmode: farm\nnodes: [a]\nvips: [{addr: 10.0.0.1}]\n"
            "farm: {rules: [{port: 80}]}\n"
        ),
        ModuleConfig,
    )
