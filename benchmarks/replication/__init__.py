"""Replication benchmark (issue #4): every target driven by the same fio jobs on the
namespace lab (two nodes, replication over the veth network), plus resync and memory.

Run it with ``python -m benchmarks.replication`` (``--smoke`` for CI size, ``--preset
medium`` for a shorter run). Method and latest results: docs/benchmarks.md
("Replication").

- :mod:`benchmarks.replication.workloads`: the fio jobs, the metadata program, the
  resync data set and changes, /proc figures; sizes per preset.
- :mod:`benchmarks.replication.targets`: the plain directory (baseline), the topology
  limit, GlusterFS replica 2, and a hamod cluster per replication mode.
- :mod:`benchmarks.replication.scenarios`: the resync outages and the memory phase.
- :mod:`benchmarks.replication.report`: ratios, goals, table, JSON, markdown and SVG.
- :mod:`benchmarks.replication.run`: the command line.
"""
