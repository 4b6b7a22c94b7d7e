"""Not collected by the suite (its name does not start with ``test_``): run explicitly by
``tests/test_tiers.py`` to watch the suite's CI rules act on tests that skip."""

from __future__ import annotations

import pytest


def test_required_that_skips() -> None:
    pytest.skip("kernel feature missing (probe)")


@pytest.mark.optional
def test_optional_that_skips() -> None:
    pytest.skip("optional feature missing (probe)")


@pytest.mark.lab
def test_lab_that_passes() -> None:
    pass
