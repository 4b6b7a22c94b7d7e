"""The suite's own rules (tests/conftest.py): in CI a skipped test of a required tier
fails the run, an ``optional`` one may skip, and the end of the run counts each tier."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PROBE = Path(__file__).with_name("tier_probe.py")


def _run(ci: bool) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "HAMOD_SOAK")}
    if ci:
        env["CI"] = "true"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(PROBE)],
        cwd=PROBE.parents[1],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def test_in_ci_a_required_skip_fails_the_run_and_an_optional_one_does_not() -> None:
    out = _run(ci=True)
    assert out.returncode == 1, out.stdout
    assert "required unit test skipped in CI: Skipped: kernel feature missing" in out.stdout
    failed = [line for line in out.stdout.splitlines() if line.startswith("FAILED")]
    assert len(failed) == 1 and "test_required_that_skips" in failed[0]
    assert "1 failed, 1 passed, 1 skipped" in out.stdout


def test_outside_ci_skips_are_plain_skips() -> None:
    out = _run(ci=False)
    assert out.returncode == 0, out.stdout
    assert "1 passed, 2 skipped" in out.stdout


def test_the_run_ends_with_one_line_per_tier() -> None:
    out = _run(ci=False)
    assert "unit: 0 passed, 0 failed, 2 skipped" in out.stdout
    assert "lab: 1 passed, 0 failed, 0 skipped" in out.stdout
