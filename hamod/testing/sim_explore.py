"""Seeded random schedules for the simulator: a random configuration, the usual first
start (both nodes start, an admin runs ``prim`` on one), then random faults and admin
commands, then everything healed and rebooted. Same seed, same schedule, same result;
an invariant violation raises with the trace tail.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import replace
from functools import partial

from hamod.core.events import CheckAction, CheckerResult, DataPathFailed, Health, On
from hamod.core.model import DEFAULTPRIM_ALONE, DEFAULTPRIM_LASTPRIM, Mode, Script, Witness
from hamod.core.table import TABLE, Table
from hamod.testing.sim import ARB, ROUTER, Sim, SimConfig

Op = Callable[[Sim, random.Random], None]

COMMANDS = (
    [On.SWAP] * 4
    + [On.STOP, On.START] * 3
    + [On.PRIM] * 3
    + [On.SECOND, On.RESTART, On.STOPSTART, On.FULLSYNC, On.FORCESTOP, On.PRIMFORCE]
    + [On.FAILOVER_OFF, On.FAILOVER_ON, On.CHECKER_OFF, On.CHECKER_ON, On.ERRD_OFF, On.ERRD_ON]
    + [On.FAILOVER_ON, On.CHECKER_ON, On.ERRD_ON]
)
SCRIPTS = (Script.PRESTART, Script.POSTSTOP, Script.START_PRIM, Script.STOP_PRIM)


def random_config(rng: random.Random) -> SimConfig:
    witness = rng.choice((Witness.ARBITRATOR, Witness.ARBITRATOR, Witness.PING, Witness.NONE))
    return SimConfig(
        witness=witness,
        networks=("lan",) if rng.random() < 0.6 else ("lan", "rep"),
        failover=rng.random() < 0.85,
        defaultprim=rng.choice((DEFAULTPRIM_ALONE, DEFAULTPRIM_LASTPRIM, "a", "b")),
        maxloop=rng.choice((1, 2, 3)),
        loop_interval=rng.choice((0.0, 30.0, 3600.0)),
        delay=rng.choice((0.005, 0.01, 0.05)),
        script_time=rng.choice((0.1, 0.3, 1.0)),
        resync_time=rng.choice((0.5, 1.0, 3.0)),
    )


def _node(sim: Sim, rng: random.Random) -> str:
    return rng.choice(sorted(sim.nodes))


def op_crash(sim: Sim, rng: random.Random) -> None:
    n = _node(sim, rng)
    sim.crash(n)
    boot = rng.random() < 0.8
    sim.at(sim.now + rng.uniform(0.5, 8.0), lambda: sim.boot(n, start=boot))


def op_partition(sim: Sim, rng: random.Random) -> None:
    sim.cut_peers("a", "b")
    sim.at(sim.now + rng.uniform(0.5, 10.0), lambda: sim.heal_peers("a", "b"))


def op_one_network(sim: Sim, rng: random.Random) -> None:
    net = rng.choice(sim.cfg.networks)
    sim.cut("a", "b", net)
    sim.at(sim.now + rng.uniform(0.5, 10.0), lambda: sim.heal("a", "b", net))


def op_isolate_from_arb(sim: Sim, rng: random.Random) -> None:
    n = _node(sim, rng)
    sim.cut(n, ARB)
    sim.at(sim.now + rng.uniform(0.5, 10.0), lambda: sim.heal(n, ARB))


def op_isolate_node(sim: Sim, rng: random.Random) -> None:
    n = _node(sim, rng)
    sim.cut_peers("a", "b")
    sim.cut(n, ARB)
    sim.witness(n, False)

    def heal() -> None:
        sim.heal_all()
        sim.witness(n, True)

    sim.at(sim.now + rng.uniform(0.5, 10.0), heal)


def op_arb_restart(sim: Sim, rng: random.Random) -> None:
    if sim.arb_alive:
        sim.restart_arbitrator(rng.uniform(0.2, 5.0))


def op_router(sim: Sim, rng: random.Random) -> None:
    n = _node(sim, rng)
    sim.witness(n, False)
    sim.at(sim.now + rng.uniform(0.5, 10.0), lambda: sim.witness(n, True))


def op_command(sim: Sim, rng: random.Random) -> None:
    cmd = rng.choice(COMMANDS)
    if cmd is On.PRIMFORCE and rng.random() < 0.7:
        cmd = On.PRIM
    sim.command(_node(sim, rng), cmd)


def op_checker(sim: Sim, rng: random.Random) -> None:
    n = _node(sim, rng)
    action = rng.choice(tuple(CheckAction))
    name = rng.choice(("web", "db"))
    errd = rng.random() < 0.3
    sim.feed(n, CheckerResult(name, Health.DOWN, action, errd))
    sim.at(
        sim.now + rng.uniform(0.5, 6.0),
        lambda: sim.feed(n, CheckerResult(name, Health.UP, action, errd)),
    )
    if rng.random() < 0.2:
        sim.feed(n, CheckerResult(name, Health.UNKNOWN, action, errd))


def op_script_failure(sim: Sim, rng: random.Random) -> None:
    sim.fail_script(_node(sim, rng), rng.choice(SCRIPTS), rng.choice((1, 1, 2)))


def op_drop(sim: Sim, rng: random.Random) -> None:
    sim.drop = rng.choice((0.2, 0.5))
    sim.at(sim.now + rng.uniform(1.0, 6.0), lambda: setattr(sim, "drop", 0.0))


def op_config(sim: Sim, rng: random.Random) -> None:
    """A configuration (or protocol version) change on one node only, undone later."""
    n = sim.nodes[_node(sim, rng)]
    old = n.params
    if rng.random() < 0.5:
        n.params = replace(old, config_hash="h2")
    else:
        n.params = replace(old, protocol_version=old.protocol_version + rng.choice((1, 2)))

    def undo() -> None:
        n.params = old

    sim.at(sim.now + rng.uniform(1.0, 8.0), undo)


def op_datapath(sim: Sim, rng: random.Random) -> None:
    sim.feed(_node(sim, rng), DataPathFailed("simulated"))


OPS: tuple[tuple[Op, int], ...] = (
    (op_crash, 4),
    (op_partition, 3),
    (op_one_network, 1),
    (op_isolate_from_arb, 2),
    (op_isolate_node, 2),
    (op_arb_restart, 1),
    (op_router, 1),
    (op_command, 6),
    (op_checker, 3),
    (op_script_failure, 2),
    (op_drop, 1),
    (op_datapath, 1),
    (op_config, 1),
)
_WEIGHTED: tuple[Op, ...] = tuple(op for op, w in OPS for _ in range(w))


def run_schedule(
    seed: int, table: Table = TABLE, duration: float = 30.0, trace: bool = False
) -> Sim:
    rng = random.Random(seed)
    cfg = random_config(rng)
    sim = Sim(cfg, seed=seed, table=table, trace=trace)
    first = rng.choice(("a", "b"))
    sim.at(0.1, lambda: (sim.command("a", On.START), sim.command("b", On.START)))
    sim.at(rng.uniform(0.5, 2.0), lambda: sim.command(first, On.PRIM))
    t = 2.0
    while True:
        t += rng.expovariate(1 / 2.5)
        if t >= duration:
            break
        op = rng.choice(_WEIGHTED)
        sim.at(t, partial(op, sim, rng))
    sim.run_until(duration)

    def heal() -> None:
        sim.heal_all()
        sim.drop = 0.0
        for n in sim.nodes.values():
            sim.witness(n.name, True)
            if not n.alive:
                sim.boot(n.name)

    sim.at(duration, heal)
    sim.run_until(duration + 12.0)
    return sim


def run_farm_schedule(seed: int, table: Table = TABLE, duration: float = 20.0) -> Sim:
    rng = random.Random(seed)
    cfg = SimConfig(
        witness=Witness.NONE,
        nodes=("a", "b", "c"),
        mode=Mode.FARM,
        maxloop=rng.choice((1, 3)),
        script_time=rng.choice((0.1, 0.5)),
    )
    sim = Sim(cfg, seed=seed, table=table)
    for n in cfg.nodes:
        sim.at(rng.uniform(0.0, 2.0), partial(sim.command, n, On.START))
    t = 2.0
    farm_ops: tuple[Op, ...] = (op_crash, op_command, op_checker, op_checker, op_script_failure)
    while True:
        t += rng.expovariate(1 / 2.0)
        if t >= duration:
            break
        op = rng.choice(farm_ops)
        sim.at(t, partial(op, sim, rng))
    sim.run_until(duration)
    return sim


def run_plan(config_seed: int, plan: list[tuple[int, float, int]], table: Table = TABLE) -> Sim:
    """An explicit schedule (for hypothesis to shrink): ``plan`` items are (index into
    ``OPS``, delay since the previous op, seed of that op's own choices)."""
    cfg = random_config(random.Random(config_seed))
    sim = Sim(cfg, seed=config_seed, table=table)
    sim.at(0.1, lambda: (sim.command("a", On.START), sim.command("b", On.START)))
    sim.at(1.0, lambda: sim.command("a", On.PRIM))
    t = 2.0
    for idx, delay, op_seed in plan:
        t += delay
        op = OPS[idx % len(OPS)][0]
        sim.at(t, partial(op, sim, random.Random(op_seed)))
    sim.run_until(t + 1.0)
    sim.at(t + 1.0, sim.heal_all)
    for n in sim.nodes:
        sim.at(t + 1.0, partial(sim.boot, n))
    sim.run_until(t + 12.0)
    return sim


__all__ = ["ROUTER", "run_farm_schedule", "run_plan", "run_schedule"]
