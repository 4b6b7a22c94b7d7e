"""The systemd units shipped as package data pass ``systemd-analyze verify``."""

from __future__ import annotations

import shutil
import subprocess
from importlib.resources import files

import pytest

UNITS = ("hamod.service", "hamod-watchdog.service")


def test_units_are_package_data() -> None:
    for unit in UNITS:
        text = files("hamod").joinpath("data", unit).read_text()
        assert "ExecStart=/usr/bin/env hamod " in text


def test_systemd_analyze_verify(tmp_path: object) -> None:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze not installed (Debian package 'systemd'; scripts/setup)")
    paths = [str(files("hamod").joinpath("data", u)) for u in UNITS]
    res = subprocess.run([tool, "verify", *paths], capture_output=True, text=True, cwd="/")
    assert res.returncode == 0, res.stderr
    assert "hamod" not in res.stderr, res.stderr
