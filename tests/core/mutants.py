"""Mutants of the transition table and the kill-suite run against each, in process.

Mutations, for every row: delete it; change its target state; negate each guard; drop
each effect. The kill-suite, cheapest first, stops at the first failure: the unit case
of every row, the SafeKit scenarios, then seeded random schedules with every invariant
checked after every step. ``python -m tests.core.mutants [N]`` prints the report.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace

from hamod.core.guards import negate
from hamod.core.model import State
from hamod.core.table import TABLE, Table
from hamod.testing.sim_explore import run_farm_schedule, run_schedule
from tests.core.cases import CASES, run_case
from tests.core.scenarios import SCENARIOS

ALT = {
    State.WAIT: State.STOP,
    State.STOP: State.WAIT,
    State.ALONE: State.WAIT,
    State.PRIM: State.ALONE,
    State.SECOND: State.WAIT,
    State.UP: State.WAIT,
}

# Mutants that survive on purpose, with the reason (also listed in docs/core-testing.md).
ALLOWED_SURVIVORS: dict[str, str] = {}


@dataclass(frozen=True)
class Mutant:
    id: str
    table: Table


def mutants(table: Table = TABLE) -> Iterator[Mutant]:
    rows = table.rows
    for i, row in enumerate(rows):
        yield Mutant(f"{row.name}:delete", Table(rows[:i] + rows[i + 1 :]))
        to = (
            ALT[row.to]
            if row.to is not None
            else (State.STOP if State.STOP not in row.src else State.WAIT)
        )
        yield Mutant(
            f"{row.name}:to={to.value}", Table((*rows[:i], replace(row, to=to), *rows[i + 1 :]))
        )
        for j, g in enumerate(row.guards):
            gs = (*row.guards[:j], negate(g), *row.guards[j + 1 :])
            yield Mutant(
                f"{row.name}:not:{g.__name__}",
                Table((*rows[:i], replace(row, guards=gs), *rows[i + 1 :])),
            )
        for k, e in enumerate(row.effects):
            es = row.effects[:k] + row.effects[k + 1 :]
            yield Mutant(
                f"{row.name}:drop:{e.__name__}",
                Table((*rows[:i], replace(row, effects=es), *rows[i + 1 :])),
            )


def kill(m: Mutant, schedules: int, units: bool = True) -> str:
    """The first check that fails against the mutant ("" if it survives)."""
    for case in CASES if units else ():
        try:
            run_case(case, m.table)
        except Exception as exc:  # a crash kills the mutant as well
            return f"unit {case.row}: {type(exc).__name__}"
    for sc in SCENARIOS:
        try:
            sc(m.table)
        except Exception as exc:
            return f"scenario {sc.__name__}: {type(exc).__name__}"
    for seed in range(schedules):
        try:
            run_schedule(seed, m.table)
            if seed % 10 == 0:
                run_farm_schedule(seed, m.table)
        except Exception as exc:
            return f"random seed {seed}: {type(exc).__name__}"
    return ""


@dataclass(frozen=True)
class Report:
    total: int
    killed: int
    by_stage: dict[str, int]
    survivors: list[str]
    seconds: float


def run(schedules: int, table: Table = TABLE, units: bool = True) -> Report:
    t0 = time.perf_counter()
    total = killed = 0
    stages: dict[str, int] = {"unit": 0, "scenario": 0, "random": 0}
    survivors: list[str] = []
    for m in mutants(table):
        total += 1
        why = kill(m, schedules, units)
        if why:
            killed += 1
            stages[why.split()[0]] += 1
        else:
            survivors.append(m.id)
    return Report(total, killed, stages, survivors, time.perf_counter() - t0)


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    n = int(args[0]) if args else 300
    r = run(n, units="--no-unit" not in sys.argv)
    print(f"{r.total} mutants, {r.killed} killed ({r.by_stage}), ", end="")
    print(f"{len(r.survivors)} survived, {r.seconds:.0f}s")
    for s in r.survivors:
        print(f"  survivor {s}: {ALLOWED_SURVIVORS.get(s, 'NOT ALLOWED')}")
