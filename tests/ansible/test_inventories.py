"""The example inventories pass playbooks/check.yml: every role's argument specs, the
cluster and module checks, and `hamod config check` of the files the roles render (on
the controller). No host is contacted: every host's address is replaced by a closed port
on the loopback, so a play that tried to connect would fail as UNREACHABLE."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.ansible.helpers import ROOT, ansible_missing, playbook

NO_HOST = ("-e", "ansible_host=127.0.0.1", "-e", "ansible_port=1")
#: inventory/sites: acme has its own witness host; globex and initech share wit1 (witnesses/)
SITES = {"acme-db1", "acme-db2", "acme-wit", "gx-app1", "gx-app2", "in-erp1", "in-erp2", "wit1"}


@pytest.fixture(autouse=True)
def _ansible() -> None:
    why = ansible_missing()
    if why is not None:
        pytest.skip(why)


@pytest.mark.parametrize(
    ("inventory", "hosts"),
    [
        ("inventory/example", {"node1", "node2", "witness1"}),
        ("inventory/sites", SITES),
        ("inventory/sites/acme", {"acme-db1", "acme-db2", "acme-wit"}),
    ],
)
def test_the_example_inventories_pass_the_checks(inventory: str, hosts: set[str],
                                                 tmp_path: Path) -> None:  # fmt: skip
    # the repository has no vault (secrets.yml makes one per site): skip that check only
    run = playbook(ROOT / inventory, "check.yml", *NO_HOST, "-e",
                   "hamod_cluster_require_secrets=false",
                   env={"ANSIBLE_SSH_CONTROL_PATH_DIR": str(tmp_path / "cp"),
                        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp")})  # fmt: skip
    assert run.rc == 0, run.tail()
    assert set(run.recap) == hosts
    assert all(r["failed"] == 0 and r["unreachable"] == 0 for r in run.recap.values())
    assert "Run hamod config check on the rendered files" in run.out
