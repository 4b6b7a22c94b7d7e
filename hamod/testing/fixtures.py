"""pytest fixtures for the namespace lab, loaded as a plugin
(``pytest_plugins = ("hamod.testing.fixtures",)`` in tests/conftest.py).

- ``lab``: a 2-node lab shared by the test module, removed by its finalizer even when
  tests fail. Skips with the precise reason from :func:`lab_available` when the machine
  cannot host a lab (the suite's conftest turns that skip into a failure in CI).
- ``restored_lab``: the module's ``lab``, restored after the test (faults healed,
  powered-off hosts booted), for tests that inject faults.
- ``make_lab``: a factory for custom labs (``make_lab(nodes=3)``), all removed after the
  test.

Tests using these fixtures get the ``lab`` marker automatically.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator

import pytest

from hamod.errors import LabError
from hamod.testing.lab import Lab, lab_available, sweep

LAB_FIXTURES = frozenset({"lab", "restored_lab", "make_lab"})
_names = itertools.count(1)
_swept = False


def unique_lab_name(tag: str = "t") -> str:
    """A lab name no other test process on this machine uses (pid + counter)."""
    return f"{tag}{os.getpid()}-{next(_names)}"


def _require_lab() -> None:
    """Skip with the precise reason when no lab can run here; else, once per session,
    remove what crashed runs left (labs whose owning process is gone)."""
    global _swept
    reason = lab_available()
    if reason is not None:
        pytest.skip(f"lab unavailable: {reason}")
    if not _swept:
        _swept = True
        sweep()


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses a lab fixture with the ``lab`` tier."""
    for item in items:
        names = getattr(item, "fixturenames", ())
        if LAB_FIXTURES.intersection(names) and item.get_closest_marker("lab") is None:
            item.add_marker(pytest.mark.lab)


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    """A running 2-node lab (n1, n2, witness, client) shared by the module."""
    _require_lab()
    instance = Lab(unique_lab_name(), nodes=2)
    try:
        instance.up()
        yield instance
    finally:
        instance.down()


@pytest.fixture
def restored_lab(lab: Lab) -> Iterator[Lab]:
    """The module's lab; after the test, faults are healed and every host is booted."""
    yield lab
    lab.restore()


@pytest.fixture
def make_lab() -> Iterator[Callable[..., Lab]]:
    """``make_lab(nodes=3, networks=2)`` → a running lab, removed after the test."""
    _require_lab()
    labs: list[Lab] = []

    def make(nodes: int = 2, networks: int = 2) -> Lab:
        instance = Lab(unique_lab_name(), nodes=nodes, networks=networks)
        labs.append(instance)
        return instance.up()

    try:
        yield make
    finally:
        errors: list[LabError] = []
        for instance in labs:
            try:
                instance.down()
            except LabError as exc:
                errors.append(exc)
        if errors:
            raise errors[0]
