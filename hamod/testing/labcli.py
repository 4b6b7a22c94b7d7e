"""``python -m hamod.testing.lab`` (wrapped by ``scripts/lab``): drive a lab from a shell.

::

    up [--nodes N] [--networks K]      build and boot; the lab keeps running after exit
    status [--json]                     hosts, PIDs, alive?, addresses, cables, faults
    exec HOST CMD...                    run CMD inside HOST (interactive: exec n1 bash)
    ssh HOST [CMD...]                   ssh from the client namespace with the lab key
    kill|shutdown|start HOST            power-off / clean stop (SIGTERM) / boot again
    unplug|plug HOST NET                pull / plug a cable
    partition A B | isolate HOST [FROM...] | loss HOST PERCENT | heal
    inventory | ssh-config              print the Ansible inventory / ssh -F file path
    down [--all]                        remove the lab and crashed runs' leftovers
                                        (--all: every lab on this machine)

The lab is ``--name``, default ``$HAMOD_LAB_NAME``, else ``lab`` for ``up`` and the one
lab brought up by ``up`` for the other commands. ``down`` also removes the leftovers of
crashed runs (:func:`hamod.testing.lab.sweep`).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from hamod.errors import LabError
from hamod.testing import labsys
from hamod.testing.lab import Lab, down_all, persistent_labs, sweep


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="scripts/lab", description="hamod's namespace lab")
    p.add_argument(
        "--name",
        default=os.environ.get("HAMOD_LAB_NAME"),
        help="lab name (default: $HAMOD_LAB_NAME, else 'lab' for up, else the one lab up)",
    )
    sub = p.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="build the lab and boot its hosts")
    up.add_argument("--nodes", type=int, default=2)
    up.add_argument("--networks", type=int, default=2)
    up.add_argument("--json", action="store_true")
    st = sub.add_parser("status", help="describe the running lab")
    st.add_argument("--json", action="store_true")
    down = sub.add_parser("down", help="remove the lab")
    down.add_argument("--all", action="store_true", help="remove every lab, crashed ones too")
    for name in ("exec", "ssh"):
        c = sub.add_parser(name, help=f"{name} a command in a host")
        c.add_argument("host")
        c.add_argument("cmd", nargs=argparse.REMAINDER)
    for name in ("kill", "shutdown", "start"):
        sub.add_parser(name, help=f"{name} a host").add_argument("host")
    for name in ("unplug", "plug"):
        c = sub.add_parser(name, help=f"{name} a host's cable")
        c.add_argument("host")
        c.add_argument("net")
    part = sub.add_parser("partition", help="cut host A from host B on all networks")
    part.add_argument("a")
    part.add_argument("b")
    iso = sub.add_parser("isolate", help="cut a host from others (default: everyone)")
    iso.add_argument("host")
    iso.add_argument("others", nargs="*")
    loss = sub.add_parser("loss", help="drop a percentage of a host's packets")
    loss.add_argument("host")
    loss.add_argument("percent", type=int)
    loss.add_argument("--direction", default="both", choices=("out", "in", "both"))
    sub.add_parser("heal", help="remove faults, replug cables")
    sub.add_parser("inventory", help="print the path of the Ansible inventory")
    sub.add_parser("ssh-config", help="print the path of the ssh -F file")
    return p


def _the_lab() -> str:
    up = persistent_labs()
    if len(up) == 1:
        return up[0]
    if not up:
        raise LabError("no lab is up (scripts/lab up)")
    raise LabError(f"several labs are up ({', '.join(up)}): choose one with --name")


def _down(name: str | None) -> list[str]:
    """Remove lab ``name`` (default: the one lab up), then crashed runs' leftovers."""
    if name is None:
        up = persistent_labs()
        name = up[0] if len(up) == 1 else None
    removed = []
    if name is not None:
        Lab(name).down()
        removed.append(name)
    return removed + sweep()


def _exec(argv: Sequence[str]) -> int:
    os.execvpe(argv[0], list(argv), labsys.env())
    return 127  # not reached


def run(args: argparse.Namespace) -> int:
    """Execute one parsed command; LabError propagates."""
    cmd = args.command
    if cmd == "down":
        removed = down_all() if args.all else _down(args.name)
        print(f"removed: {', '.join(removed) or '(nothing)'}")
        return 0
    if cmd == "up":
        lab = Lab(args.name or "lab", args.nodes, args.networks, persist=True).up()
        status = lab.status()
        print(status.to_json() if args.json else status.render())
        return 0
    lab = Lab.attach(args.name or _the_lab())
    if cmd == "status":
        status = lab.status()
        print(status.to_json() if args.json else status.render())
    elif cmd == "exec":
        if not args.cmd:
            raise LabError("exec: give a command, e.g. scripts/lab exec n1 bash")
        return _exec([*lab.enter_command(args.host), *args.cmd])
    elif cmd == "ssh":
        return _exec(lab.ssh_command(args.host, *args.cmd))
    elif cmd in ("kill", "shutdown", "start"):
        getattr(lab, cmd)(args.host)
    elif cmd in ("unplug", "plug"):
        getattr(lab, cmd)(args.host, args.net)
    elif cmd == "partition":
        lab.partition(args.a, args.b)
    elif cmd == "isolate":
        lab.isolate(args.host, args.others or None)
    elif cmd == "loss":
        lab.loss(args.host, args.percent, args.direction)
    elif cmd == "heal":
        lab.heal()
    elif cmd == "inventory":
        print(lab.inventory)
    elif cmd == "ssh-config":
        print(lab.ssh_config)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: exit status 0, or 1 with the LabError on stderr."""
    args = _parser().parse_args(argv)
    try:
        return run(args)
    except LabError as exc:
        print(f"lab: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
