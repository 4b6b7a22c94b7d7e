"""A witness host shared by several clusters, checked before any host is touched: two
sites (clusters ``alpha`` and ``beta``) name the witness host ``wit1`` defined once in a
``witnesses`` inventory (inventory/sites/witnesses/ layout). playbooks/init.yml on a bad
inventory must stop in its check play, naming the variable; every host's address is a
closed loopback port, so a play that tried to connect would report UNREACHABLE.
The lab test (test_witness_shared.py) deploys the same layout for real."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.ansible.helpers import Run, ansible_missing, playbook

NO_HOST = ("-e", "ansible_host=127.0.0.1", "-e", "ansible_port=1",
           "-e", "hamod_cluster_require_secrets=false")  # fmt: skip


@pytest.fixture(autouse=True)
def _ansible() -> None:
    why = ansible_missing()
    if why is not None:
        pytest.skip(why)


def _site(base: Path, name: str, octet: int, **cluster: Any) -> Path:
    """inventory/sites/<name>/: two nodes, a cluster on 10.<octet>.0.0/24 + .1.0/24."""
    site = base / name
    (site / "group_vars" / name).mkdir(parents=True)
    nodes = {
        f"{name}{i}": {
            "ansible_host": f"10.{octet}.0.1{i}",
            "hamod_node_addresses": {"lan": f"10.{octet}.0.1{i}", "repl": f"10.{octet}.1.1{i}"},
        }
        for i in (1, 2)
    }
    hosts = {"all": {"children": {
        name: {"children": {f"{name}_nodes": {"hosts": nodes}}},
        "hamod_nodes": {"children": {f"{name}_nodes": {}}},
    }}}  # fmt: skip
    (site / "hosts.yml").write_text(yaml.safe_dump(hosts, sort_keys=False))
    main: dict[str, Any] = {
        "ansible_python_interpreter": "/usr/bin/python3",
        "hamod_cluster_name": name,
        "hamod_cluster_networks": [
            {"name": "lan", "subnet": f"10.{octet}.0.0/24"},
            {"name": "repl", "subnet": f"10.{octet}.1.0/24", "replication": True},
        ],
        "hamod_cluster_witness_host": "wit1",
        "hamod_module_list": [{
            "module": "app", "mode": "mirror", "nodes": list(nodes), "template": "kvstore",
            "vips": [{"addr": f"10.{octet}.0.50"}],
            "replication": {"directories": [{"path": "/srv/app"}]},
        }],
    }  # fmt: skip
    main.update(cluster)
    (site / "group_vars" / name / "main.yml").write_text(yaml.safe_dump(main, sort_keys=False))
    return site


def _witnesses(base: Path) -> Path:
    """inventory/sites/witnesses/: the shared witness host wit1."""
    d = base / "witnesses"
    (d / "group_vars" / "witnesses").mkdir(parents=True)
    hosts = {"all": {"children": {
        "witnesses": {"hosts": {"wit1": {"ansible_host": "10.30.0.5"}}},
        "hamod_witness": {"children": {"witnesses": {}}},
    }}}  # fmt: skip
    (d / "hosts.yml").write_text(yaml.safe_dump(hosts, sort_keys=False))
    (d / "group_vars" / "witnesses" / "main.yml").write_text(
        yaml.safe_dump({"ansible_python_interpreter": "/usr/bin/python3"})
    )
    return d


def _run(tmp_path: Path, name: str, inventories: list[Path]) -> Run:
    args = [a for inv in inventories[1:] for a in ("-i", str(inv))]
    return playbook(inventories[0], name, *args, *NO_HOST,
                    env={"ANSIBLE_SSH_CONTROL_PATH_DIR": str(tmp_path / "cp"),
                         "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp")})  # fmt: skip


def test_two_sites_sharing_one_witness_host_pass_the_checks(tmp_path: Path) -> None:
    base = tmp_path / "sites"
    _site(base, "alpha", 51)
    _site(base, "beta", 52)
    _witnesses(base)
    run = _run(tmp_path, "check.yml", [base])
    assert run.rc == 0, run.tail()
    assert set(run.recap) == {"alpha1", "alpha2", "beta1", "beta2", "wit1"}
    assert all(r["failed"] == 0 and r["unreachable"] == 0 for r in run.recap.values())
    # wit1 serves both clusters
    verbose = playbook(base, "check.yml", *NO_HOST, "-v", "--limit", "wit1",
                       env={"ANSIBLE_SSH_CONTROL_PATH_DIR": str(tmp_path / "cp"),
                            "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp")})  # fmt: skip
    assert verbose.rc == 0, verbose.tail()
    assert '"__hamod_cluster_witness_clusters": ["alpha", "beta"]' in verbose.out
    # one site with the shared witness inventory: wit1 serves alpha only
    one = _run(tmp_path, "check.yml", [base / "alpha", base / "witnesses"])
    assert one.rc == 0, one.tail()
    assert set(one.recap) == {"alpha1", "alpha2", "wit1"}


def _bad_unknown_host(base: Path) -> list[Path]:
    _site(base, "alpha", 51, hamod_cluster_witness_host="wit9")
    _witnesses(base)
    return [base]


def _bad_witnesses_not_given(base: Path) -> list[Path]:
    _site(base, "alpha", 51)
    _witnesses(base)
    return [base / "alpha"]


def _bad_same_name(base: Path) -> list[Path]:
    _site(base, "alpha", 51)
    _site(base, "beta", 52, hamod_cluster_name="alpha")
    _witnesses(base)
    return [base]


def _bad_not_a_witness(base: Path) -> list[Path]:
    _site(base, "alpha", 51, hamod_cluster_witness_host="beta1")
    _site(base, "beta", 52)
    _witnesses(base)
    return [base]


def _bad_own_node(base: Path) -> list[Path]:
    site = _site(base, "alpha", 51, hamod_cluster_witness_host="alpha2")
    doc = yaml.safe_load((site / "hosts.yml").read_text())
    doc["all"]["children"]["hamod_witness"] = {"hosts": {"alpha2": {}}}
    (site / "hosts.yml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return [site]


def _bad_both(base: Path) -> list[Path]:
    _site(base, "alpha", 51, hamod_cluster_witness={"ping": ["10.51.0.1"]})
    _witnesses(base)
    return [base]


def _bad_port(base: Path) -> list[Path]:
    _site(base, "alpha", 51, hamod_module_firewall_ports=["8080"])
    _witnesses(base)
    return [base]


NOT_IN_INVENTORY = "cluster alpha: hamod_cluster_witness_host: {} is not a host of the inventory"
CASES: dict[str, tuple[Callable[[Path], list[Path]], str]] = {
    "unknown-host": (_bad_unknown_host, NOT_IN_INVENTORY.format("wit9")),
    "witnesses-not-given": (_bad_witnesses_not_given, NOT_IN_INVENTORY.format("wit1")),
    "same-name": (_bad_same_name,
                  "hamod_cluster_name: alpha names two clusters: alpha1, alpha2 and beta1, beta2"),
    "not-a-witness": (_bad_not_a_witness,
                      "hamod_cluster_witness_host: beta1 is not in the group hamod_witness"),
    "own-node": (_bad_own_node, "hamod_cluster_witness_host: alpha2 is a node of this cluster"),
    "both": (_bad_both, "hamod_cluster_witness_host: wit1 and hamod_cluster_witness are both set"),
    "port": (_bad_port, "hamod_module_firewall_ports: 8080 is not PORT/PROTO"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_bad_shared_witness_inventory_fails_before_any_host_is_touched(
    case: str, tmp_path: Path
) -> None:
    make, message = CASES[case]
    run = _run(tmp_path, "init.yml", make(tmp_path / "sites"))
    assert run.rc != 0, f"{case}: the bad inventory was accepted\n{run.tail()}"
    text = " ".join(run.out.split())
    assert message in text, f"{case}: {message!r} not in the output\n{run.tail(40)}"
    assert "PLAY [Deploy hamod]" not in run.out, f"{case}: the deploy play ran\n{run.tail()}"
    assert "UNREACHABLE" not in run.out
