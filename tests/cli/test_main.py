"""The hamod entry point: version, help, exit codes."""

from __future__ import annotations

import subprocess
import sys

import pytest

from hamod import __version__
from hamod.cli.main import main


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"hamod {__version__}"


def test_no_command_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage: hamod" in capsys.readouterr().err


def test_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["frobnicate"])
    assert exc.value.code == 2
    assert "invalid choice: 'frobnicate'" in capsys.readouterr().err


def test_python_dash_m_hamod_runs_the_cli() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "hamod", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == f"hamod {__version__}"
