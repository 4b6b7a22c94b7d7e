"""``python -m benchmarks.checkers``: see :mod:`benchmarks.checkers.run`."""

from __future__ import annotations

import sys

from benchmarks.checkers.run import main

sys.exit(main())
