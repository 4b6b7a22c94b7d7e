"""The lab tier's fixtures come from the ``hamod.testing.fixtures`` plugin; load it here
unless the suite's conftest already did."""

from __future__ import annotations

import pytest

PLUGIN = "hamod.testing.fixtures"


def pytest_configure(config: pytest.Config) -> None:
    if not config.pluginmanager.has_plugin(PLUGIN):
        config.pluginmanager.import_plugin(PLUGIN)
