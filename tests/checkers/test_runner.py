"""The runner: fail_after counting, edge-triggered reports, unknown, the when filter."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

import pytest

from hamod.checkers.probes import ProbeContext, probe
from hamod.checkers.result import Probe
from hamod.checkers.runner import CheckerRunner, when_states
from hamod.config.checkers import Checker
from hamod.core.events import CheckAction, CheckerResult, Health
from hamod.errors import UsageError
from tests.checkers.helpers import checker, run

UP, DOWN, UNKNOWN = Health.UP, Health.DOWN, Health.UNKNOWN


class Scripted:
    """A probe answering a scripted sequence of healths (then the last one forever)."""

    def __init__(self, healths: Iterable[Health]) -> None:
        self.healths = list(healths)
        self.calls = 0

    async def __call__(self, cfg: Checker, ctx: ProbeContext) -> Probe:
        self.calls += 1
        health = self.healths.pop(0) if len(self.healths) > 1 else self.healths[0]
        return Probe(health, f"probe {self.calls}: {health.value}")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


def _runner(cfg: Checker, healths: Iterable[Health]) -> tuple[CheckerRunner, list[CheckerResult]]:
    sink: list[CheckerResult] = []
    runner = CheckerRunner([cfg], sink.append, clock=Clock(), probe_fn=Scripted(healths))
    return runner, sink


def _drive(runner: CheckerRunner, name: str, times: int) -> list[Health | None]:
    async def go() -> list[Health | None]:
        out: list[Health | None] = []
        for _ in range(times):
            event = await runner.check(name)
            out.append(event.health if event else None)
        return out

    return run(go())


def test_down_reported_once_after_fail_after_then_recovery() -> None:
    cfg = checker("tcp", name="web", addr="127.0.0.1", port=80, fail_after=3)
    runner, sink = _runner(cfg, [UP, DOWN, DOWN, DOWN, DOWN, UP, UP, DOWN])
    assert _drive(runner, "web", 8) == [UP, None, None, DOWN, None, UP, None, None]
    assert sink[1] == CheckerResult("web", DOWN, CheckAction.RESTART, errd=False)
    last = runner.result("web")
    assert (last.health, last.failures, last.reported) == (DOWN, 1, UP)
    assert last.at == 1008.0
    assert last.reason == "probe 8: down"


def test_downs_interrupted_by_up_start_counting_again() -> None:
    cfg = checker("tcp", name="t", addr="127.0.0.1", port=80, fail_after=2)
    runner, _ = _runner(cfg, [DOWN, UP, DOWN, DOWN])
    assert _drive(runner, "t", 4) == [None, UP, None, DOWN]


def test_process_checkers_are_errd_and_carry_their_action() -> None:
    cfg = checker("process", name="db", process="postgres", action="restart")
    runner, sink = _runner(cfg, [DOWN])
    _drive(runner, "db", 2)
    assert sink == [CheckerResult("db", DOWN, CheckAction.RESTART, errd=True)]


def test_unknown_is_reported_once_and_neither_counts_nor_clears() -> None:
    cfg = checker("tcp", name="t", addr="127.0.0.1", port=80, fail_after=2)
    runner, _ = _runner(cfg, [DOWN, UNKNOWN, UNKNOWN, DOWN, UNKNOWN])
    assert _drive(runner, "t", 5) == [None, UNKNOWN, None, DOWN, UNKNOWN]


def test_reset_after_an_action_reports_the_next_failure_again() -> None:
    cfg = checker("tcp", name="t", addr="127.0.0.1", port=80, fail_after=2)
    runner, _ = _runner(cfg, [DOWN])
    assert _drive(runner, "t", 3) == [None, DOWN, None]
    runner.reset("t")
    assert runner.result("t").reported is None
    assert _drive(runner, "t", 2) == [None, DOWN]


def test_a_crashing_probe_is_unknown_logged_once_no_action(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken() -> object:
        raise RuntimeError("boom")

    sink: list[CheckerResult] = []
    ctx = ProbeContext(vips=("10.0.0.1",), vip=broken)  # type: ignore[arg-type]
    runner = CheckerRunner([checker("vip", name="v")], sink.append, ctx=ctx, probe_fn=probe)
    with caplog.at_level(logging.INFO, logger="hamod.checkers"):
        assert _drive(runner, "v", 3) == [UNKNOWN, None, None]
    assert [r.message for r in caplog.records] == [
        "checker vip v: unknown, no action: probe crashed: RuntimeError: boom"
    ]
    assert [e.health for e in sink] == [UNKNOWN]
    assert runner.result("v").reason == "probe crashed: RuntimeError: boom"


def test_a_hanging_custom_checker_is_unknown_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cfg = checker("custom", name="hang", program="/bin/sleep", args=["30"], timeout="200ms")
    sink: list[CheckerResult] = []
    runner = CheckerRunner([cfg], sink.append)
    with caplog.at_level(logging.WARNING, logger="hamod.checkers"):
        assert _drive(runner, "hang", 2) == [UNKNOWN, None]
    assert len(caplog.records) == 1
    assert "still running after 0.2s, killed" in caplog.records[0].message
    assert [(e.health, e.action) for e in sink] == [(UNKNOWN, CheckAction.STOPSTART)]


def test_a_failing_sink_does_not_break_the_runner() -> None:
    def sink(event: CheckerResult) -> None:
        raise ValueError("core gone")

    cfg = checker("tcp", name="t", addr="127.0.0.1", port=80, fail_after=1)
    runner = CheckerRunner([cfg], sink, probe_fn=Scripted([UP, DOWN]))
    assert _drive(runner, "t", 2) == [UP, DOWN]


def test_duplicate_and_unknown_names() -> None:
    cfg = checker("tcp", name="t", addr="127.0.0.1", port=80)
    with pytest.raises(UsageError, match="two checkers"):
        CheckerRunner([cfg, cfg], lambda e: None)
    with pytest.raises(UsageError, match="no checker"):
        CheckerRunner([cfg], lambda e: None).result("x")


def test_tasks_follow_the_when_filter() -> None:
    state: list[str | None] = ["SECOND"]
    prim = checker("tcp", name="p", addr="127.0.0.1", port=80, interval="50ms", timeout="20ms")
    both = checker(
        "tcp", name="b", addr="127.0.0.1", port=80, interval="50ms", timeout="20ms", when="both"
    )
    probes = {"p": Scripted([DOWN]), "b": Scripted([UP])}

    async def fake(cfg: Checker, ctx: ProbeContext) -> Probe:
        return await probes[cfg.name](cfg, ctx)

    sink: list[CheckerResult] = []
    runner = CheckerRunner(
        [prim, both], sink.append, should_run=when_states(lambda: state[0]), probe_fn=fake
    )

    async def go() -> None:
        runner.start()
        await asyncio.sleep(0.2)
        assert probes["p"].calls == 0 and probes["b"].calls >= 2
        state[0] = None  # a transition: nothing runs
        await asyncio.sleep(0.08)
        calls = probes["b"].calls
        await asyncio.sleep(0.15)
        assert probes["b"].calls == calls
        state[0] = "PRIM"
        await asyncio.sleep(0.2)
        await runner.stop()

    run(go())
    assert probes["p"].calls >= 2
    # b reported afresh after the transition; p down after its fail_after (3) probes
    assert [e.health for e in sink if e.name == "b"] == [UP, UP]
    assert [e.health for e in sink if e.name == "p"] == [DOWN]
    assert {r.name: r.health for r in runner.results()} == {"p": DOWN, "b": UP}
