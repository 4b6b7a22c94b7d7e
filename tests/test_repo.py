"""The repository keeps its promises to a new user: the README's two commands exist and
CI runs exactly the README's test command; dependencies are pinned."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```sh\n(.*?)```", text, re.S)
    assert block, "README must open with a sh code block holding the two commands"
    return [line.split("#")[0].strip() for line in block.group(1).splitlines() if line.strip()]


def test_readme_opens_with_demo_and_test_commands() -> None:
    commands = _readme_commands()
    assert commands == ["scripts/demo", "scripts/test"]
    for cmd in commands:
        path = ROOT / cmd
        assert path.is_file() and path.stat().st_mode & 0o111, f"{cmd} must be executable"


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^exec scripts/test$", ci, re.M), ".ci/run must exec scripts/test"


def test_every_installed_distribution_is_pinned() -> None:
    pins = {
        line.split("==")[0].lower().replace("_", "-")
        for line in (ROOT / "requirements" / "constraints.txt").read_text().splitlines()
        if "==" in line
    }
    out = subprocess.run(
        [sys.executable, "-m", "pip", "list", "--format=freeze", "--exclude-editable"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    installed = {
        line.split("==")[0].lower().replace("_", "-") for line in out.splitlines() if "==" in line
    }
    unpinned = sorted(installed - pins - {"pip", "setuptools", "wheel"})
    assert not unpinned, f"not pinned in requirements/constraints.txt: {unpinned}"
