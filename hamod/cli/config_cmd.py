"""``hamod config check FILE...`` (placeholder until the config schema lands)."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser("config", help="configuration files")
    parser.set_defaults(func=lambda args: 2)
