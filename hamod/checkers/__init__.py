"""Checkers: the probes that look at the application and its surroundings, and the
runner that turns their answers into :class:`hamod.core.events.CheckerResult` events.

- :mod:`hamod.checkers.probes`: one async probe per checker type, never raising.
- :mod:`hamod.checkers.resources`: the file-based resource store (``hamod get/set -r``).
- :mod:`hamod.checkers.runner`: one task per checker, ``fail_after`` counting,
  edge-triggered reports and the last result of each checker.

Probes decide nothing: they say up, down or unknown and why. The runner only counts and
reports on changes; what to do about a result is the core's business.
"""

from hamod.checkers.probes import Probe, ProbeContext, probe
from hamod.checkers.resources import ResourceStore
from hamod.checkers.runner import CheckerRunner, LastResult, when_states

__all__ = [
    "CheckerRunner",
    "LastResult",
    "Probe",
    "ProbeContext",
    "ResourceStore",
    "probe",
    "when_states",
]
