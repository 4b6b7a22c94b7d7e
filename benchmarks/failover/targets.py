"""What a system under test provides to the failover benchmark.

A target makes a virtual IP follow the primary of a two-node lab cluster. The harness
owns the lab, the trivial service on every node, the client probe and the faults; the
target only manages its own HA software on the nodes:

- ``setup(lab, spec)``: check it can run here (raise :class:`TargetUnavailable` with the
  precise reason otherwise: it is reported, never silently skipped) and prepare configs;
- ``start()``: start the HA software on every running node where it does not run (also
  called after a powered-off node was booted again, to rejoin it as a standby);
- ``primary(timeout)``: wait until the cluster is stable (exactly one node holds the
  VIP as primary, every other running node is a ready standby) and return the primary;
- ``teardown()``: stop everything it started (the harness removes the lab anyway).

Timer presets are named ("default", "tight", "equal") so targets compare at like-for-like
settings ("equal": both detect a dead peer after the same time, 0.36 s); each target
maps a preset to its own knobs and says how long a failover may
take at most (``budget``), which bounds the harness's wait.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from hamod.testing.lab import Lab

__all__ = ["TIMER_PRESETS", "ClusterSpec", "Target", "TargetUnavailable"]

TIMER_PRESETS = ("default", "tight", "equal")


class TargetUnavailable(Exception):
    """The target cannot run on this machine or does not exist yet (the reason is in the
    message and goes to the report)."""


@dataclass(frozen=True)
class ClusterSpec:
    """The cluster every target builds: a VIP on the service network's interface of the
    lab's nodes, in front of the trivial service on ``port``."""

    vip: str
    prefix: int
    interface: str
    port: int
    nodes: tuple[str, ...]


class Target(Protocol):
    """A system under test (see the module docstring)."""

    name: str
    timers: str

    @property
    def settings(self) -> str:
        """The timer settings in words (``advert_int 1 s``)."""
        ...

    @property
    def budget(self) -> float:
        """The longest a failover may take at these timers (seconds): the harness gives up
        waiting for recovery after it."""
        ...

    def setup(self, lab: Lab, spec: ClusterSpec) -> None:
        """Check availability (raise :class:`TargetUnavailable`) and prepare the nodes."""
        ...

    def start(self) -> None:
        """Start the HA software on every running node where it does not run."""
        ...

    def primary(self, timeout: float) -> str:
        """Wait until the cluster is stable and return the primary node."""
        ...

    def teardown(self) -> None:
        """Stop what :meth:`start` started."""
        ...


def check_timers(timers: str) -> str:
    """``timers`` if it names a preset, else ValueError."""
    if timers not in TIMER_PRESETS:
        raise ValueError(f"timers {timers!r}: use one of {', '.join(TIMER_PRESETS)}")
    return timers
