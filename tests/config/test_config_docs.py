"""The generated reference and JSON Schemas are up to date, and --check catches drift."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from hamod.config.docs import generated_files, main

ROOT = Path(__file__).resolve().parents[2]


def test_generated_docs_are_fresh() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "hamod.config.docs", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "" and proc.stderr == ""


def test_check_names_the_stale_file(tmp_path: Path, capsys: object) -> None:
    assert main(["--root", str(tmp_path)]) == 0
    assert main(["--root", str(tmp_path), "--check"]) == 0
    reference = tmp_path / "docs" / "config-reference.md"
    reference.write_text(reference.read_text() + "edited\n")
    assert main(["--root", str(tmp_path), "--check"]) == 1
    assert reference.read_text().endswith("edited\n")  # --check writes nothing


def test_check_reports_on_stderr(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "hamod.config.docs", "--check", "--root", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    assert "stale: docs/config-reference.md (run: python -m hamod.config.docs)" in proc.stderr
    assert not (tmp_path / "docs").exists()


def test_reference_documents_every_field() -> None:
    text = generated_files()["docs/config-reference.md"]
    for key in (
        "`heartbeat.pulse`",
        "`heartbeat.lease`",
        "`vips[].announce.count`",
        "`replication.directories[].exclude`",
        "`replication.region_size`",
        "`farm.rules[].hash`",
        "`witness.arbitrator.port`",
        "`tls.key`",
        "### `type: process`",
        "### `type: module`",
        "`loop_interval`",
        "`boot_delay`",
    ):
        assert key in text, key
    assert "pydantic" not in text.lower()


def test_schemas_are_json_with_written_defaults() -> None:
    files = generated_files()
    module = json.loads(files["docs/schema/module.schema.json"])
    cluster = json.loads(files["docs/schema/cluster.schema.json"])
    assert module["title"] == "hamod module file" and cluster["title"] == "hamod cluster file"
    assert module["$defs"]["Heartbeat"]["properties"]["pulse"]["default"] == "700ms"
    assert cluster["properties"]["api_port"]["default"] == 9010
