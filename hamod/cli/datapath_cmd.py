"""``hamod datapath run -m MOD``: the data-path process of one mirror module.

Started (detached) and supervised by the daemon; runs in the foreground until told to
exit (or SIGTERM). See :mod:`hamod.replication.process`.
"""

from __future__ import annotations

import argparse
from typing import Any

from hamod.cli.daemon_cmd import add_dir_arguments, paths_of


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "datapath",
        help="the data-path process of a mirror module (started by the daemon)",
        description="Run the FUSE data path, change tracking and replication link of one "
        "mirror module in the foreground. The daemon starts it; a daemon restart leaves it "
        "(and the mounts) running.",
    )
    parser.add_argument("action", choices=("run",), help="run the process")
    parser.add_argument("-m", "--module", required=True, metavar="MOD", help="the module")
    parser.add_argument("--node", metavar="NAME", help="this node's name")
    add_dir_arguments(parser)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from hamod.errors import UsageError
    from hamod.replication.dpconfig import dp_config
    from hamod.replication.process import main
    from hamod.runtime.logs import setup_logging
    from hamod.runtime.params import load_all

    setup_logging(args.verbose)
    paths = paths_of(args)
    loaded = load_all(paths, args.node)
    mod = next((m for m in loaded.modules if m.module == args.module), None)
    if mod is None:
        raise UsageError(f"module {args.module!r}: not configured on node {loaded.node}")
    return main(dp_config(mod, loaded.cluster, loaded.node, paths))
