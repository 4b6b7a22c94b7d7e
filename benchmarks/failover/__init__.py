"""Failover outage benchmark: the client-visible outage when the primary node of a
two-node cluster is powered off, for every target (keepalived now, hamod with the
daemon), at "default" and "tight" timers, measured in the namespace lab.

Run it with ``python -m benchmarks.failover`` (``--smoke`` for one quick run). Method and
latest results: docs/benchmarks.md ("Failover outage").

- :mod:`benchmarks.failover.targets`: the :class:`~benchmarks.failover.targets.Target`
  protocol a system under test implements, and its timer presets.
- :mod:`benchmarks.failover.keepalived`: keepalived VRRP per node namespace.
- :mod:`benchmarks.failover.hamod_target`: hamod (reports "not available yet" until the
  daemon exists).
- :mod:`benchmarks.failover.harness`: the lab, the trivial service, the probe, the
  power-off and the repeat loop.
- :mod:`benchmarks.failover.report`: table, JSON, markdown snippet and SVG plot.
- :mod:`benchmarks.failover.run`: the command line.
"""
