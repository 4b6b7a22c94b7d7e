"""``python -m hamod`` runs the ``hamod`` command."""

import sys

from hamod.cli.main import main

sys.exit(main())
