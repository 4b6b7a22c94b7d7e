"""Random schedules on the simulator: invariants after every step, transition coverage.

The default run explores 10,000 seeded mirror schedules (plus farm ones); ``--soak``
explores 200,000. Hypothesis drives explicit plans so a failure shrinks to a minimal
list of faults."""

from __future__ import annotations

import time
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hamod.core.table import TABLE
from hamod.testing.sim_explore import OPS, run_farm_schedule, run_plan, run_schedule
from hamod.testing.sim_invariants import InvariantViolation

pytestmark = pytest.mark.sim

# Rows random schedules cannot reach, with the reason; each is covered by a unit case
# (tests/core/cases.py) and, where it makes sense, a scenario.
UNREACHABLE_AT_RANDOM = {
    "lease_failed_hold": (
        "defensive: a primary asking for its ALONE term still holds a live lease, so the "
        "arbitrator cannot refuse it, and its lease timer fires before the request times "
        "out (lease < timeout). The soak range reached it once, through a bug since fixed "
        "(a lease lost during an app restart left a fenced 'PRIM/Ready'); kept for clock "
        "trouble on a real host"
    ),
}


def explore(n: int) -> Counter[str]:
    rows: Counter[str] = Counter()
    for seed in range(n):
        try:
            rows.update(run_schedule(seed).rows)
        except InvariantViolation as exc:
            raise InvariantViolation(f"mirror schedule seed {seed}: {exc}") from None
    for seed in range(max(1, n // 20)):
        try:
            rows.update(run_farm_schedule(seed).rows)
        except InvariantViolation as exc:
            raise InvariantViolation(f"farm schedule seed {seed}: {exc}") from None
    return rows


def test_random_schedules_keep_the_invariants_and_cover_every_row(scale) -> None:  # type: ignore[no-untyped-def]
    n = scale.pick(ci=10_000, soak=200_000)
    t0 = time.perf_counter()
    rows = explore(n)
    took = time.perf_counter() - t0
    names = [r.name for r in TABLE.rows]
    missing = sorted(set(names) - set(rows) - set(UNREACHABLE_AT_RANDOM))
    reached = len([x for x in names if rows[x]])
    print(
        f"\n{n} schedules in {took:.1f}s; rows reached {reached}/{len(names)}; "
        f"least reached: {sorted(names, key=lambda x: rows[x])[:6]}"
    )
    assert not missing, f"rows never reached at random: {missing}"


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)
@given(
    config_seed=st.integers(0, 10_000),
    plan=st.lists(
        st.tuples(st.integers(0, len(OPS) - 1), st.floats(0.05, 5.0), st.integers(0, 1_000_000)),
        max_size=14,
    ),
)
def test_hypothesis_plans_keep_the_invariants(
    config_seed: int, plan: list[tuple[int, float, int]]
) -> None:
    run_plan(config_seed, plan)
