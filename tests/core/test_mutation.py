"""Mutation check of the transition table: every mutant (row deleted, target changed,
guard negated, effect dropped) must be killed by the kill-suite, unless it is in the
documented allow-list (tests/core/mutants.py, docs/core-testing.md)."""

from __future__ import annotations

import pathlib

import pytest

from tests.core import mutants

pytestmark = pytest.mark.sim
DOC = pathlib.Path(__file__).resolve().parents[2] / "docs" / "core-testing.md"


def test_every_mutant_is_killed(scale) -> None:  # type: ignore[no-untyped-def]
    report = mutants.run(scale.pick(ci=200, soak=3000))
    print(
        f"\n{report.total} mutants, {report.killed} killed {report.by_stage}, "
        f"{len(report.survivors)} survived, {report.seconds:.1f}s"
    )
    unexpected = [s for s in report.survivors if s not in mutants.ALLOWED_SURVIVORS]
    assert not unexpected, f"surviving mutants: {unexpected}"
    assert report.total >= 4 * 80


def test_allowed_survivors_are_documented() -> None:
    text = DOC.read_text()
    for mutant_id in mutants.ALLOWED_SURVIVORS:
        assert mutant_id in text, f"{mutant_id} not documented in {DOC.name}"
