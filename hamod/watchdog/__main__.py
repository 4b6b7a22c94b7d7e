"""``python -m hamod.watchdog``: run the per-node watchdog."""

import sys

from hamod.watchdog.main import main

sys.exit(main())
