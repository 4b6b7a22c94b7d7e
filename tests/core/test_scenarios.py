"""SafeKit scenarios on the deterministic simulator (tier ``sim``)."""

from __future__ import annotations

import pytest

from tests.core.scenarios import SCENARIOS, Scenario

pytestmark = pytest.mark.sim


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.__name__ for s in SCENARIOS])
def test_scenario(scenario: Scenario) -> None:
    from hamod.core.table import TABLE

    scenario(TABLE)
