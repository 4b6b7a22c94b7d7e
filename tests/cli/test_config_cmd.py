"""``hamod config check`` and ``hamod config schema``, in-process and as the real command."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hamod.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "docs" / "examples"
EXAMPLE_FILES = sorted(str(p) for p in EXAMPLES.glob("*.yaml"))


def test_examples_ok(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "check", *EXAMPLE_FILES]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == [f"{f}: ok" for f in EXAMPLE_FILES]
    assert err == ""


def test_errors_are_listed_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "pg.yaml"
    bad.write_text(
        "module: pg\nmode: mirror\nnodes: [n1, n2]\n"
        "heartbeat: {puls: 1s}\nvips: [{addr: 10.0.0.300}]\n"
    )
    cluster = str(EXAMPLES / "cluster.yaml")
    assert main(["config", "check", cluster, str(bad)]) == 2
    out, err = capsys.readouterr()
    assert out.splitlines() == [
        f"{cluster}: ok",
        f"{bad}: heartbeat.puls: unknown field; did you mean 'pulse'?",
        f"{bad}: vips[0].addr: not an IP address (got '10.0.0.300')",
    ]
    assert err == ""


def test_cross_checks_use_the_cluster(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "m.yaml"
    bad.write_text("module: m\nmode: mirror\nnodes: [n1, n9]\nvips: [{addr: 10.9.0.1}]\n")
    cluster = str(EXAMPLES / "cluster.yaml")
    assert main(["config", "check", str(bad), cluster]) == 2
    out, _ = capsys.readouterr()
    assert out.splitlines() == [
        f"{bad}: nodes[1]: unknown node; the cluster has 'n1', 'n2', 'n3' (got 'n9')",
        f"{bad}: vips[0].addr: outside every subnet of the module's nodes "
        "(10.0.0.0/24, 192.168.50.0/24, fd00:10::/64) (got '10.9.0.1')",
        f"{cluster}: ok",
    ]


def test_module_alone_gets_a_note(capsys: pytest.CaptureFixture[str]) -> None:
    path = str(EXAMPLES / "generic.yaml")
    assert main(["config", "check", path]) == 0
    out, err = capsys.readouterr()
    assert out == f"{path}: ok\n"
    assert err == (
        "note: no cluster file given; modules were checked alone "
        "(nodes, networks and VIP subnets not checked)\n"
    )


def test_two_cluster_files_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "c2.yaml"
    shutil.copy(EXAMPLES / "cluster.yaml", other)
    first = EXAMPLES / "cluster.yaml"
    assert main(["config", "check", str(first), str(other)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        f"hamod: more than one cluster file ({first}, {other}); "
        "check each cluster with its own modules\n"
    )


def test_neither_kind(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    odd = tmp_path / "odd.yaml"
    odd.write_text("name: x\n")
    assert main(["config", "check", str(odd)]) == 2
    out, _ = capsys.readouterr()
    assert out == (
        f"{odd}: <file>: neither a cluster nor a module file; a cluster file starts with "
        "'cluster: <name>', a module file with 'module: <name>'\n"
    )


def test_malformed_yaml_line_and_column(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("module: m\nmode: mirror\nnodes: [n1, n2\n")
    assert main(["config", "check", str(bad)]) == 2
    out, _ = capsys.readouterr()
    assert out.startswith(f"{bad}: <file>: malformed YAML at line 4, column 1: ")


def test_check_needs_files(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["config", "check"])
    assert info.value.code == 2


def test_config_without_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config"]) == 2
    assert "check" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["cluster", "module"])
def test_schema(kind: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "schema", kind]) == 0
    out, _ = capsys.readouterr()
    schema = json.loads(out)
    assert schema["title"] == f"hamod {kind} file"
    assert out == (ROOT / "docs" / "schema" / f"{kind}.schema.json").read_text()


def _hamod() -> str:
    exe = Path(sys.executable).parent / "hamod"
    if not exe.exists():
        pytest.skip(f"console script not installed next to {sys.executable}")
    return str(exe)


def test_console_script(tmp_path: Path) -> None:
    hamod = _hamod()
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    ok = subprocess.run(
        [hamod, "config", "check", *EXAMPLE_FILES],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.splitlines() == [f"{f}: ok" for f in EXAMPLE_FILES]

    bad = tmp_path / "bad.yaml"
    bad.write_text("module: m\nmode: mirror\nnodes: [n1]\nheartbeat: {pulse: -1s}\n")
    before = sorted(p.name for p in tmp_path.iterdir())
    result = subprocess.run(
        [hamod, "config", "check", "bad.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    assert result.returncode == 2
    assert result.stdout.splitlines() == [
        "bad.yaml: heartbeat.pulse: duration must not be negative (got '-1s')",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written
