"""pytest fixtures for a hamod cluster on the namespace lab (a plugin: load it with
``config.pluginmanager.import_plugin("hamod.testing.cluster_fixtures")`` in a conftest,
as tests/acceptance/conftest.py does; it needs ``hamod.testing.fixtures`` too).

- ``make_cluster(*modules, witness="arbitrator", start=True, watchdog=True)``: a fresh
  2-node lab (removed after the test) with a :class:`~hamod.testing.cluster.LabCluster`
  deployed on it and, with ``start``, the witness and ``hamod service`` running on every
  node (no module started yet). Skips with the reason when the daemon does not exist.
- ``cluster``: ``make_cluster()`` with the default module (``demo``, pulse 100 ms,
  timeout 1 s, one IPv4 VIP) and the arbitrator witness.

When a test fails, the states, journals and log tails of every node are added to its
report (section "hamod cluster").
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import pytest

from hamod.testing.cluster import LabCluster, ModuleSpec, daemon_missing
from hamod.testing.lab import Lab

__all__ = ["cluster", "make_cluster"]

_reason: list[str | None] = []


def _require_daemon() -> None:
    if not _reason:
        _reason.append(daemon_missing())
    if _reason[0] is not None:
        pytest.skip(_reason[0])


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.when == "call" and report.failed:
        for c in getattr(item, "_hamod_clusters", []):
            with contextlib.suppress(Exception):
                report.sections.append(("hamod cluster", c.diagnose()))


@pytest.fixture
def make_cluster(
    request: pytest.FixtureRequest, make_lab: Callable[..., Lab]
) -> Callable[..., LabCluster]:
    """``make_cluster(*modules, witness=..., start=True, watchdog=True)`` → LabCluster."""

    def make(
        *modules: ModuleSpec,
        witness: str = "arbitrator",
        start: bool = True,
        watchdog: bool = True,
    ) -> LabCluster:
        if start:
            _require_daemon()
        lab = make_lab(nodes=2)
        c = LabCluster(lab, modules or (ModuleSpec(),), witness=witness, watchdog=watchdog)
        clusters = getattr(request.node, "_hamod_clusters", [])
        clusters.append(c)
        request.node._hamod_clusters = clusters
        if start:
            c.up()
        else:
            c.deploy()
            for host in ("client", *c.nodes):
                c.configure_network(host)
        return c

    return make


@pytest.fixture
def cluster(make_cluster: Callable[..., LabCluster]) -> LabCluster:
    """The default cluster: module ``demo`` (pulse 100 ms, timeout 1 s), arbitrator."""
    return make_cluster()
