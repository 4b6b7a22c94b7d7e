"""SafeKit scenarios on the simulator. Each takes the transition table to use (the
mutation test runs them against mutants) and raises AssertionError when the behaviour
is wrong; the simulator checks its invariants after every event on top."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from hamod.core.events import CheckAction, CheckerResult, Health, On
from hamod.core.model import Phase, State, Witness
from hamod.core.table import TABLE, Table
from hamod.testing.sim import ARB, ROUTER, Sim, SimConfig

Scenario = Callable[[Table], None]
ARBCFG = SimConfig(witness=Witness.ARBITRATOR)


def st(sim: Sim, n: str) -> State:
    return sim.nodes[n].state.state


def ready(sim: Sim, n: str, state: State) -> bool:
    s = sim.nodes[n].state
    return sim.nodes[n].alive and s.state is state and s.phase is Phase.READY


def pair(cfg: SimConfig, table: Table, prim: str = "a") -> Sim:
    """Both started, ``prim`` on one: PRIM/SECOND in sync at t=10."""
    sim = Sim(cfg, table=table, trace=True)
    sim.at(0.1, lambda: (sim.command("a", On.START), sim.command("b", On.START)))
    sim.at(1.5, lambda: sim.command(prim, On.PRIM))
    sim.run_until(10.0)
    other = "b" if prim == "a" else "a"
    assert ready(sim, prim, State.PRIM) and ready(sim, other, State.SECOND), sim.states()
    assert sim.nodes[other].state.up_to_date and sim.acked
    return sim


def first_start_waits_for_prim(table: Table) -> None:
    sim = Sim(ARBCFG, table=table)
    sim.at(0.1, lambda: (sim.command("a", On.START), sim.command("b", On.START)))
    sim.run_until(8.0)
    assert st(sim, "a") is State.WAIT and st(sim, "b") is State.WAIT, sim.states()
    assert not sim.serving()
    sim.at(8.0, lambda: sim.command("b", On.PRIM))
    sim.run_until(9.0)
    assert st(sim, "b") in (State.ALONE, State.PRIM) and st(sim, "a") is State.SECOND
    sim.run_until(16.0)
    assert ready(sim, "b", State.PRIM) and ready(sim, "a", State.SECOND), sim.states()
    assert sim.nodes["a"].data == sim.nodes["b"].data
    assert sim.rows["wait_pair"] and sim.rows["alone_to_prim"] and sim.rows["second_in_sync"]


def failover_on_power_off(witness: Witness) -> Scenario:
    def run(table: Table) -> None:
        sim = pair(SimConfig(witness=witness), table)
        sim.at(10.0, lambda: sim.crash("a"))
        sim.run_until(10.0 + 3.0 + 2.5)
        assert ready(sim, "b", State.ALONE), sim.states()
        assert sim.acked <= sim.nodes["b"].data

    run.__name__ = f"failover_on_power_off_{witness.value}"
    return run


def failback(defaultprim: str, expect_prim: str) -> Scenario:
    def run(table: Table) -> None:
        sim = pair(replace(ARBCFG, defaultprim=defaultprim), table)
        sim.at(10.0, lambda: sim.crash("a"))
        sim.at(20.0, lambda: sim.boot("a"))
        sim.run_until(32.0)
        other = "b" if expect_prim == "a" else "a"
        assert ready(sim, expect_prim, State.PRIM), sim.states()
        assert ready(sim, other, State.SECOND), sim.states()
        assert sim.nodes["a"].data == sim.nodes["b"].data

    run.__name__ = f"failback_{defaultprim}"
    return run


def lastprim_both_down(table: Table) -> None:
    sim = pair(replace(ARBCFG, defaultprim="lastprim"), table, prim="b")
    sim.at(10.0, lambda: (sim.crash("a"), sim.crash("b")))
    sim.at(15.0, lambda: (sim.boot("a"), sim.boot("b")))
    sim.run_until(26.0)
    assert ready(sim, "b", State.PRIM) and ready(sim, "a", State.SECOND), sim.states()


def swap(on: str) -> Scenario:
    def run(table: Table) -> None:
        sim = pair(ARBCFG, table)
        sim.at(10.0, lambda: sim.command(on, On.SWAP))
        sim.run_until(16.0)
        assert ready(sim, "b", State.PRIM) and ready(sim, "a", State.SECOND), sim.states()
        sim.at(16.0, lambda: sim.command("b", On.SWAP))
        sim.run_until(22.0)
        assert ready(sim, "a", State.PRIM) and ready(sim, "b", State.SECOND), sim.states()
        assert sim.nodes["a"].data == sim.nodes["b"].data

    run.__name__ = f"swap_on_{on}"
    return run


def failover_off(table: Table) -> None:
    sim = pair(ARBCFG, table)
    sim.at(9.0, lambda: (sim.command("a", On.FAILOVER_OFF), sim.command("b", On.FAILOVER_OFF)))
    sim.at(10.0, lambda: sim.crash("a"))
    sim.run_until(22.0)
    assert st(sim, "b") is State.WAIT and not sim.serving(), sim.states()
    sim.at(22.0, lambda: sim.command("b", On.PRIM))
    sim.run_until(24.0)
    assert ready(sim, "b", State.ALONE), sim.states()


def stale_node_back_first(table: Table) -> None:
    sim = pair(ARBCFG, table)
    sim.at(10.0, lambda: sim.command("b", On.STOP))  # b stale from now on
    sim.at(14.0, lambda: sim.crash("a"))
    sim.at(15.0, lambda: sim.command("b", On.START))
    sim.run_until(25.0)
    assert st(sim, "b") is State.WAIT and not sim.serving(), sim.states()
    assert not sim.nodes["b"].state.up_to_date
    sim.at(25.0, lambda: sim.command("b", On.PRIMFORCE))
    sim.run_until(28.0)
    assert ready(sim, "b", State.ALONE), sim.states()
    only_a = sim.nodes["a"].data - sim.nodes["b"].data
    assert only_a, "a wrote alone after b stopped"
    sim.at(28.0, lambda: sim.boot("a"))
    sim.run_until(40.0)
    assert ready(sim, "b", State.PRIM) and ready(sim, "a", State.SECOND), sim.states()
    assert only_a <= sim.nodes["a"].aside, "a's divergent writes kept aside"


def isolated_primary(table: Table) -> None:
    sim = pair(ARBCFG, table)
    t_cut = 10.0
    sim.at(t_cut, lambda: (sim.cut_peers("a", "b"), sim.cut("a", ARB), sim.cut("a", ROUTER)))
    sim.run_until(t_cut + 2.0)  # lease 2 s: a has fenced by now
    assert "a" not in [n.name for n in sim.serving()]
    sim.run_until(t_cut + 8.0)
    assert ready(sim, "b", State.ALONE), sim.states()
    assert st(sim, "a") is State.WAIT, sim.states()
    sim.at(t_cut + 8.0, sim.heal_all)
    sim.run_until(t_cut + 18.0)
    assert ready(sim, "b", State.PRIM) and ready(sim, "a", State.SECOND), sim.states()


def pure_cut_arbitrator(table: Table) -> None:
    sim = pair(ARBCFG, table)
    gaps: list[float] = []

    def sample() -> None:
        if 10.0 < sim.now < 25.0 and "a" not in [n.name for n in sim.serving()]:
            gaps.append(sim.now)
        if sim.now < 25.0:
            sim.at(sim.now + 0.1, sample)

    sim.at(10.0, sample)
    sim.at(10.0, lambda: sim.cut_peers("a", "b"))
    sim.at(16.2, lambda: sim.restart_arbitrator(0.6))  # between two renewals
    sim.run_until(25.0)
    assert ready(sim, "a", State.ALONE) and st(sim, "b") is State.WAIT, sim.states()
    # writes are held only while the ALONE term is being granted (one round trip)
    assert all(13.0 <= t <= 13.2 for t in gaps), gaps
    sim.at(25.0, lambda: sim.heal_peers("a", "b"))
    sim.run_until(35.0)
    assert ready(sim, "a", State.PRIM) and ready(sim, "b", State.SECOND), sim.states()


def pure_cut_ping(table: Table) -> None:
    sim = pair(SimConfig(witness=Witness.PING), table)
    sim.at(10.0, lambda: sim.cut_peers("a", "b"))
    sim.run_until(20.0)
    assert ready(sim, "a", State.ALONE) and ready(sim, "b", State.ALONE), sim.states()
    sim.at(20.0, lambda: sim.heal_peers("a", "b"))
    sim.run_until(25.0)
    a, b = sim.nodes["a"].state, sim.nodes["b"].state
    assert a.split_brain and b.split_brain and (a.two_primaries or b.two_primaries)
    assert len(sim.serving()) == 1, sim.states()
    keep = sim.serving()[0].name
    other = "b" if keep == "a" else "a"
    assert st(sim, other) is State.WAIT
    only_other = sim.nodes[other].data - sim.nodes[keep].data
    assert only_other
    sim.run_until(30.0)
    assert st(sim, other) is State.WAIT, "a split brain is never resolved on its own"
    sim.at(30.0, lambda: sim.command(keep, On.PRIM))
    sim.run_until(40.0)
    assert ready(sim, keep, State.PRIM) and ready(sim, other, State.SECOND), sim.states()
    assert only_other <= sim.nodes[other].aside


def checker(action: CheckAction, expect: dict[str, State]) -> Scenario:
    def run(table: Table) -> None:
        sim = pair(ARBCFG, table)
        res = CheckerResult("web", Health.DOWN, action)
        sim.at(10.0, lambda: sim.feed("a", res))
        sim.at(16.0, lambda: sim.feed("a", replace(res, health=Health.UP)))
        sim.run_until(15.9)
        for n, s in expect.items():
            assert ready(sim, n, s) or (s is State.WAIT and st(sim, n) is s), sim.states()
        sim.run_until(30.0)
        assert len(sim.serving()) == 1 and ready(
            sim, "b" if expect["b"] is not State.SECOND else "a", State.PRIM
        ), sim.states()

    run.__name__ = f"checker_{action.value}"
    return run


def maxloop(table: Table) -> None:
    sim = pair(replace(ARBCFG, maxloop=2), table)
    res = CheckerResult("web", Health.DOWN, CheckAction.RESTART)
    for t in (10.0, 12.0, 14.0):
        sim.at(t, lambda: sim.feed("a", res))
    sim.run_until(13.9)
    assert ready(sim, "a", State.PRIM), sim.states()
    sim.run_until(22.0)
    assert st(sim, "a") is State.STOP and ready(sim, "b", State.ALONE), sim.states()


def farm(table: Table) -> None:
    from hamod.core.model import Mode

    sim = Sim(SimConfig(witness=Witness.NONE, nodes=("a", "b", "c"), mode=Mode.FARM), table=table)
    for n in ("a", "b", "c"):
        sim.at(0.1, lambda n=n: sim.command(n, On.START))
    sim.run_until(3.0)
    assert all(ready(sim, n, State.UP) for n in "abc"), sim.states()
    sim.at(3.0, lambda: sim.crash("c"))
    sim.at(4.0, lambda: sim.feed("a", CheckerResult("p", Health.DOWN, CheckAction.RESTART)))
    sim.run_until(8.0)
    assert ready(sim, "a", State.UP) and ready(sim, "b", State.UP), sim.states()
    assert sim.rows["app_stopped_restart"] == 1


def config_mismatch(table: Table) -> None:
    sim = Sim(ARBCFG, table=table)
    sim.nodes["b"].params = replace(sim.nodes["b"].params, config_hash="other")
    sim.at(0.1, lambda: (sim.command("a", On.START), sim.command("b", On.START)))
    sim.at(1.5, lambda: sim.command("a", On.PRIM))
    sim.run_until(8.0)
    assert ready(sim, "a", State.ALONE) and st(sim, "b") is State.WAIT, sim.states()
    assert "config hash" in sim.nodes["b"].state.refused


def degraded_network(table: Table) -> None:
    sim = pair(replace(ARBCFG, networks=("lan", "rep")), table)
    sim.at(10.0, lambda: sim.cut("a", "b", "rep"))
    sim.run_until(20.0)
    assert ready(sim, "a", State.PRIM) and ready(sim, "b", State.SECOND), sim.states()
    assert sim.nodes["a"].state.degraded and sim.nodes["b"].state.degraded


SCENARIOS: tuple[Scenario, ...] = (
    first_start_waits_for_prim,
    failover_on_power_off(Witness.ARBITRATOR),
    failover_on_power_off(Witness.PING),
    failover_on_power_off(Witness.NONE),
    failback("alone", "b"),
    failback("a", "a"),
    lastprim_both_down,
    swap("a"),
    swap("b"),
    failover_off,
    stale_node_back_first,
    isolated_primary,
    pure_cut_arbitrator,
    pure_cut_ping,
    checker(CheckAction.RESTART, {"a": State.PRIM, "b": State.SECOND}),
    checker(CheckAction.STOPSTART, {"a": State.SECOND, "b": State.PRIM}),
    checker(CheckAction.WAIT, {"a": State.WAIT, "b": State.ALONE}),
    maxloop,
    farm,
    config_mismatch,
    degraded_network,
)


def run_all(table: Table = TABLE) -> None:
    for sc in SCENARIOS:
        sc(table)
