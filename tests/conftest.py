"""Test tiers and CI rules shared by the whole suite.

- Tiers are markers: ``unit`` (default for unmarked tests), ``sim``, ``lab``.
- ``--soak`` (or HAMOD_SOAK=1) runs the long tests at full counts; the ``scale`` fixture
  gives each test its count for the current run.
- With CI=true a skipped test of a required tier is reported as a failure: a tier that
  silently skips in CI is a defect. Only tests marked ``optional`` may skip there.
- At the end, one line per tier with its passed/failed/skipped counts.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Generator
from dataclasses import dataclass

import pytest

pytest_plugins = ("hamod.testing.fixtures",)

TIERS = ("unit", "sim", "lab")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--soak",
        action="store_true",
        default=os.environ.get("HAMOD_SOAK") == "1",
        help="run long tests at full (soak) counts",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    # Soak counts are 10-20x the CI ones: give each test up to 2 h instead of the ini's
    # 10 min (before pytest-timeout reads its settings; an explicit --timeout wins).
    if config.getoption("--soak") and getattr(config.option, "timeout", None) is None:
        config.option.timeout = 7200.0


@dataclass(frozen=True)
class Scale:
    """How big the long tests are in this run."""

    soak: bool

    def pick(self, ci: int, soak: int) -> int:
        """``ci`` in the default run, ``soak`` with --soak."""
        return soak if self.soak else ci


@pytest.fixture(scope="session")
def scale(request: pytest.FixtureRequest) -> Scale:
    return Scale(soak=bool(request.config.getoption("--soak")))


def _tier(item: pytest.Item) -> str:
    for tier in TIERS:
        if item.get_closest_marker(tier) is not None:
            return tier
    return "unit"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if not any(item.get_closest_marker(t) for t in TIERS):
            item.add_marker(pytest.mark.unit)


_counts: Counter[tuple[str, str]] = Counter()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()  # type: ignore[attr-defined]
    in_ci = os.environ.get("CI", "").lower() in ("1", "true", "yes")
    if (
        report.skipped
        and in_ci
        and item.get_closest_marker("optional") is None
        and not hasattr(report, "wasxfail")
    ):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"required {_tier(item)} test skipped in CI: {reason}"
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        _counts[(_tier(item), report.outcome)] += 1


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _counts:
        return
    terminalreporter.section("hamod tiers")
    for tier in TIERS:
        p, f, s = (_counts[(tier, o)] for o in ("passed", "failed", "skipped"))
        if p or f or s:
            terminalreporter.write_line(f"{tier}: {p} passed, {f} failed, {s} skipped")
