"""Naming the fields that differ from the peer's configuration (hamod/runtime/peerconfig):
the canonical dump served by the API hashes to the announced config hash, the differing
fields are named with both values, and a peer that cannot be asked is an error."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from hamod.adapters.pki import write_cluster_key
from hamod.config import config_hash
from hamod.errors import HamodError
from hamod.runtime import peerconfig
from hamod.runtime.params import load_all
from tests.runtime.test_two_daemons import make_node

pytestmark = pytest.mark.anyio


def _loaded(tmp_path: Path, timeout: str = "1s"):  # type: ignore[no-untyped-def]
    key = write_cluster_key(tmp_path)
    paths = make_node(tmp_path, "n1", key, 9999)
    mod = paths.modules_dir / "demo.yaml"
    mod.write_text(mod.read_text().replace("timeout: 1s", f"timeout: {timeout}"))
    return load_all(paths, "n1")


def test_canonical_dump_hashes_to_the_config_hash(tmp_path: Path) -> None:
    loaded = _loaded(tmp_path)
    mod = loaded.modules[0]
    dump = peerconfig.canonical_config(mod, loaded.cluster)
    text = json.dumps(dump, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    assert hashlib.sha256(text.encode()).hexdigest() == config_hash(mod, loaded.cluster)


def test_explain_names_the_fields_with_both_values(tmp_path: Path) -> None:
    a, b = _loaded(tmp_path / "a"), _loaded(tmp_path / "b", "2s")
    ours = peerconfig.canonical_config(b.modules[0], b.cluster)
    theirs = peerconfig.canonical_config(a.modules[0], a.cluster)
    text = peerconfig.explain(ours, theirs, "n1")
    # the key files differ too (tmp paths): a cluster field keeps its prefix
    assert text.startswith("differing fields: ")
    assert 'heartbeat.timeout (ours "2s", n1\'s "1s")' in text
    assert "cluster.key" in text and "module." not in text
    assert "no field differs" in peerconfig.explain(ours, ours, "n1")
    many = {"module": {f"f{i}": i for i in range(6)}}
    assert peerconfig.explain(many, {"module": {"f0": 0}}, "n1").endswith(" and 1 more")


async def test_fetch_without_tls_files_says_why(tmp_path: Path) -> None:
    loaded = _loaded(tmp_path)
    with pytest.raises(HamodError, match="no TLS files to ask n2"):
        await peerconfig.fetch(loaded.cluster, "n2", "demo", ["lan"], 1.0)
    with pytest.raises(HamodError, match="not a node"):
        await peerconfig.fetch(loaded.cluster, "n9", "demo", ["lan"], 1.0)
