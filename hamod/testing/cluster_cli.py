"""``python -m hamod.testing.cluster_cli``: a hamod cluster on a running lab, for
``scripts/demo``.

- ``deploy --lab NAME``: deploy the demo cluster on the lab (:class:`LabCluster`: files,
  keys, certificates, the arbitrator witness, ``hamod service start`` on n1 and n2) and
  start the module ``demo``: ``start`` + ``prim`` on n1, ``start`` on n2. Idempotent: a lab
  where the module already runs is left as it is.
- ``status --lab NAME``: ``hamod state`` of every node, and where the VIP is.
- ``failover --lab NAME``: power the primary off (cables pulled, then PID 1 killed) while a
  client probes the VIP; show the survivor taking over and the outage the client saw; then
  boot the node again: it rejoins as SECOND.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from hamod.api.models import State
from hamod.errors import LabError
from hamod.testing.cluster import ClusterError, LabCluster, ModuleSpec
from hamod.testing.lab import Lab

MODULE = "demo"
DEMO_MODULE = ModuleSpec(MODULE, pulse="100ms", timeout="1s")


def demo_cluster(lab: Lab) -> LabCluster:
    """The demo's cluster on ``lab`` (same addresses every time)."""
    return LabCluster(lab, [DEMO_MODULE], witness="arbitrator", name="demo")


def _say(msg: str) -> None:
    print(msg, flush=True)


def _running(c: LabCluster) -> bool:
    return all(c.lab.alive(n) and c.daemon_pid(n) is not None for n in c.nodes)


def deploy(c: LabCluster) -> None:
    """Deploy and start the demo module, unless it already runs."""
    if _running(c):
        _say("demo: hamod already runs on every node")
        return
    _say("demo: deploying hamod (cluster file, key, certificates, module demo, scripts)")
    c.up()
    _say("demo: witness arbitrator and daemons started; first start of the module demo")
    c.establish(MODULE, "n1", timeout=60.0)


def status(c: LabCluster) -> None:
    """Print every node's state and the VIP's owner."""
    for node in c.nodes:
        if not c.lab.alive(node):
            _say(f"{node}: powered off")
            continue
        res = c.hamod(node, "state", "-m", MODULE)
        _say((res.stdout or res.stderr).rstrip())
    _say(f"VIP {c.vip(MODULE)} on {c.vip_owner(MODULE) or 'nobody'}")


def failover(c: LabCluster) -> int:
    """Power the primary off, show the takeover, boot it back."""
    states = {n: c.try_state(n, MODULE) for n in c.nodes}
    prims = [n for n, s in states.items() if s is not None and s.state is State.PRIM]
    if len(prims) != 1:
        shown = {n: (s.state if s else "off") for n, s in states.items()}
        _say(f"demo: no single PRIM to power off ({shown}); try again in a moment")
        return 1
    (victim,) = prims
    (survivor,) = [n for n in c.nodes if n != victim]
    probe = c.probe(MODULE)
    if not probe.wait_answer(victim, 10):
        probe.stop()
        _say(f"demo: the client gets no answer from {victim} through {c.vip(MODULE)}")
        return 1
    _say(f"demo: client probing {c.vip(MODULE)}:7070 every 10 ms; {victim} answers")
    _say(f"demo: powering {victim} off (cables pulled, then PID 1 killed)")
    fault = c.power_off(victim)
    st = c.wait_state(survivor, MODULE, State.ALONE, 60.0)
    took = time.monotonic() - fault
    probe.wait_answer(survivor, 10, since=fault)
    time.sleep(0.3)
    result = probe.stop()
    _say(f"demo: {survivor} is {st.state} after {took:.2f} s and holds the VIP "
         f"({c.vip_owner(MODULE)})")  # fmt: skip
    _say(f"demo: the client saw an outage of {result.outage:.3f} s "
         f"({result.failures} failed requests), then {survivor} answered")  # fmt: skip
    _say(f"demo: booting {victim} again: it rejoins as SECOND")
    c.boot(victim)
    c.wait_states(MODULE, {victim: State.SECOND, survivor: State.PRIM}, 60.0)
    status(c)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m hamod.testing.cluster_cli")
    p.add_argument("command", choices=("deploy", "status", "failover"))
    p.add_argument("--lab", default="demo", help="the running lab (default demo)")
    args = p.parse_args(argv)
    try:
        c = demo_cluster(Lab.attach(args.lab))
        if args.command == "deploy":
            deploy(c)
            status(c)
        elif args.command == "status":
            status(c)
        else:
            return failover(c)
    except (LabError, ClusterError) as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
