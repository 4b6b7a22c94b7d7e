"""``python -m benchmarks.replication``: see :mod:`benchmarks.replication.run`."""

from __future__ import annotations

import sys

from benchmarks.replication.run import main

sys.exit(main())
