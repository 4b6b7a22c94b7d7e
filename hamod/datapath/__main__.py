"""Command line of the data-path process: ``python -m hamod.datapath mount|umount|abort DIR``.

``mount`` serves in the foreground until the directory is unmounted (the daemon
supervises this process); exit status 2 with the reason when the mount is refused.
"""

from __future__ import annotations

import argparse
import logging
import sys

from hamod.datapath.mount import abort, serve, unmount
from hamod.errors import HamodError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hamod.datapath")
    sub = parser.add_subparsers(dest="command", required=True)
    m = sub.add_parser("mount", help="mount over DIR and serve until unmounted")
    m.add_argument("directory")
    m.add_argument("--read-only", action="store_true", help="the secondary's view (EROFS)")
    m.add_argument("--debug", action="store_true", help="libfuse debug output")
    for name, text in (("umount", "unmount DIR"), ("abort", "abort DIR's FUSE connection")):
        sub.add_parser(name, help=text).add_argument("directory")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="hamod-datapath: %(message)s")
    try:
        if args.command == "mount":
            serve(args.directory, read_only=args.read_only, debug=args.debug)
        elif args.command == "umount":
            unmount(args.directory)
        else:
            print(f"aborted FUSE connection {abort(args.directory)}")
    except HamodError as exc:
        print(f"hamod-datapath: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
