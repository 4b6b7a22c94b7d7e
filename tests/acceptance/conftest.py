"""The acceptance tests of the cluster daemon (issue #3): lab tier, run serially.

Fixtures: ``make_cluster`` and ``cluster`` from :mod:`hamod.testing.cluster_fixtures`
(a hamod cluster deployed on a fresh namespace lab per test), on top of the lab fixtures
of :mod:`hamod.testing.fixtures`. Guide: docs/acceptance.md.
"""

from __future__ import annotations

import pytest

PLUGINS = ("hamod.testing.fixtures", "hamod.testing.cluster_fixtures")


def pytest_configure(config: pytest.Config) -> None:
    for plugin in PLUGINS:
        if not config.pluginmanager.has_plugin(plugin):
            config.pluginmanager.import_plugin(plugin)
