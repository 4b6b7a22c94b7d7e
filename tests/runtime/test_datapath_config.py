"""A replicated module in the daemon's configuration: its data-path settings, and ports
that must not collide."""

from __future__ import annotations

from pathlib import Path

import pytest

from hamod.config import load_cluster, load_module
from hamod.errors import ConfigError
from hamod.replication.dpconfig import dp_config
from hamod.replication.link import Mode
from hamod.runtime.params import check_ports
from hamod.runtime.paths import Paths

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"


def test_data_path_settings_of_the_postgresql_example(tmp_path: Path) -> None:
    cluster = load_cluster(EXAMPLES / "cluster.yaml")
    mod = load_module(EXAMPLES / "postgresql.yaml", cluster)
    paths = Paths.under(tmp_path)
    cfg = dp_config(mod, cluster, "n1", paths)
    assert cfg.peer == "n2" and cfg.peer_address == "192.168.50.12"  # the replication net
    assert cfg.my_address == "192.168.50.11"
    assert cfg.mode is Mode(mod.replication.mode if mod.replication else "sync")
    assert len(cfg.directories) == len(cfg.excludes) >= 2
    assert cfg.rsync_port == cfg.port + 1
    assert cfg.control_socket == tmp_path / "run" / "dp" / "postgresql" / "control.sock"
    assert cfg.under(1) == tmp_path / "run" / "dp" / "postgresql" / "under" / "1"
    assert cfg.aside_root(0).parent == cfg.directories[0].parent


def test_two_replicated_modules_on_one_port_are_refused(tmp_path: Path) -> None:
    cluster = load_cluster(EXAMPLES / "cluster.yaml")
    mod = load_module(EXAMPLES / "postgresql.yaml", cluster)
    other = mod.model_copy(update={"module": "other"})
    files = {"postgresql": Path("/etc/hamod/modules/postgresql.yaml"),
             "other": Path("/etc/hamod/modules/other.yaml")}  # fmt: skip
    check_ports([mod], files, cluster)
    with pytest.raises(ConfigError) as err:
        check_ports([mod, other], files, cluster)
    text = str(err.value)
    assert "other.yaml" in text and "replication.port" in text and "module postgresql" in text
    api = mod.model_copy(
        update={"replication": mod.replication.model_copy(update={"port": cluster.api_port - 1})}
        if mod.replication
        else {}
    )
    with pytest.raises(ConfigError) as err:
        check_ports([api], files, cluster)
    assert "api_port" in str(err.value)
