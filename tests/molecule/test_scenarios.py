"""The Molecule scenarios (molecule/: default, failover, upgrade) run as a user runs them,
``molecule`` from the repository root, each on its own namespace lab (docs/ansible.md,
"Molecule").

Two modes:

- **full** (the default outside CI): ``molecule test -s default``, ``-s failover`` and
  ``-s upgrade``: every scenario creates, converges, verifies and destroys its own lab;
- **reuse** (CI=true, or HAMOD_MOLECULE_REUSE=1; HAMOD_MOLECULE_REUSE=0 turns it off):
  ``default`` runs with ``--destroy=never`` and ``failover`` takes over the lab it
  deployed and checked (``molecule create`` with HAMOD_MOLECULE_ADOPT, then
  ``side-effect``, ``verify``, ``destroy``): one deployment fewer, the same checks.
  ``upgrade`` needs its own lab (it deploys an earlier release first).

Each scenario gets a unique lab name (HAMOD_MOLECULE_LAB) and its own Molecule ephemeral
directory, so runs of this suite never share a lab; every lab is taken down at the end,
whatever happened. Each molecule run's output is kept in the test's tmp directory and
its tail is shown on failure.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from hamod.testing.fixtures import unique_lab_name
from hamod.testing.lab import Lab, lab_available

pytestmark = [pytest.mark.lab, pytest.mark.timeout(1500)]

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
MOLECULE = VENV_BIN / "molecule"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _reuse() -> bool:
    flag = os.environ.get("HAMOD_MOLECULE_REUSE")
    if flag is not None:
        return flag == "1"
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


@dataclass
class Run:
    """One ``molecule`` command: its exit status, output (colours removed), seconds."""

    args: list[str]
    rc: int
    out: str
    seconds: float

    def tail(self, n: int = 120) -> str:
        return "\n".join(self.out.splitlines()[-n:])


@dataclass
class Molecule:
    """``molecule`` for this session: one ephemeral directory and one lab per scenario."""

    base: Path
    labs: dict[str, str] = field(default_factory=dict)
    timings: list[tuple[str, float]] = field(default_factory=list)
    deployed: dict[str, Path] = field(default_factory=dict)

    def ephemeral(self, scenario: str) -> Path:
        return self.base / scenario

    def lab(self, scenario: str) -> str:
        if scenario not in self.labs:
            self.labs[scenario] = unique_lab_name(f"m{scenario[:2]}")
        return self.labs[scenario]

    def run(self, command: str, scenario: str, *args: str, adopt: Path | None = None) -> Run:
        env = {
            **os.environ,
            "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "MOLECULE_EPHEMERAL_DIRECTORY": str(self.ephemeral(scenario)),
            "HAMOD_MOLECULE_LAB": self.lab(scenario),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
            "NO_COLOR": "1",
        }
        env.pop("HAMOD_MOLECULE_ADOPT", None)
        if adopt is not None:
            env["HAMOD_MOLECULE_ADOPT"] = str(adopt)
        cmd = [str(MOLECULE), command, "-s", scenario, "--no-command-borders", *args]
        t0 = time.monotonic()
        res = subprocess.run(
            cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1400, check=False
        )
        run = Run(cmd, res.returncode, ANSI.sub("", res.stdout + res.stderr), 0.0)
        run.seconds = time.monotonic() - t0
        (self.base / f"{scenario}-{command}.log").write_text(run.out)
        self.timings.append((f"molecule {command} -s {scenario} {' '.join(args)}".strip(),
                             run.seconds))  # fmt: skip
        print(f"{self.timings[-1][0]}: {run.seconds:.0f} s", flush=True)
        return run

    def ok(self, command: str, scenario: str, *args: str, adopt: Path | None = None) -> Run:
        run = self.run(command, scenario, *args, adopt=adopt)
        assert run.rc == 0, f"{' '.join(run.args)}: exit {run.rc}\n{run.tail()}"
        return run


@pytest.fixture(scope="module")
def molecule(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Molecule]:
    for why in (
        lab_available(),
        None if MOLECULE.exists() else f"{MOLECULE} is missing (scripts/setup installs it)",
    ):
        if why is not None:
            pytest.skip(why)
    m = Molecule(tmp_path_factory.mktemp("molecule"))
    try:
        yield m
    finally:
        for name in m.labs.values():
            Lab(name).down()
        total = sum(s for _, s in m.timings)
        print("\n".join(f"{what}: {s:.0f} s" for what, s in m.timings), f"\ntotal: {total:.0f} s")


def test_default_deploys_idempotently_and_serves(molecule: Molecule) -> None:
    if _reuse():
        run = molecule.ok("test", "default", "--destroy=never")
        molecule.deployed["default"] = molecule.ephemeral("default")
    else:
        run = molecule.ok("test", "default")
    assert "idempotence: Executed: Successful" in run.out, run.tail()
    assert "Check that hamod verify found no difference" in run.out
    assert re.search(r"\d+ passed in", run.out), run.tail()  # testinfra ran


def test_failover_survivor_serves_every_acknowledged_write(molecule: Molecule) -> None:
    deployed = molecule.deployed.pop("default", None)
    if deployed is not None:  # reuse: take over the lab default deployed and checked
        molecule.labs["failover"] = molecule.labs["default"]
        try:
            molecule.ok("create", "failover", adopt=deployed)
            molecule.ok("side-effect", "failover")
            run = molecule.ok("verify", "failover")
        finally:
            molecule.run("destroy", "failover")
    else:
        run = molecule.ok("test", "failover")
    assert re.search(r"\d+ acknowledged writes, all served by n\d", run.out), run.tail()


def test_upgrade_from_an_earlier_release_costs_one_swap(molecule: Molecule) -> None:
    run = molecule.ok("test", "upgrade")
    assert re.search(r"\d+ acknowledged writes, all served", run.out), run.tail()
    assert re.search(r"upgrade: longest outage [\d.]+ s over", run.out), run.tail()
