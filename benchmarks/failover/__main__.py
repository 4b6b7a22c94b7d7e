"""``python -m benchmarks.failover``: see :mod:`benchmarks.failover.run`."""

from __future__ import annotations

import sys

from benchmarks.failover.run import main

sys.exit(main())
