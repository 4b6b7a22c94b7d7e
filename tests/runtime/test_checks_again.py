"""A checker still failing after the action it caused is reported again once the module
is READY again (:meth:`hamod.runtime.checks.ModuleChecks._stepped`): a restart that did
not cure the application is followed by another, until ``maxloop`` stops the module
(found by tests/acceptance/test_checkers.py: an HTTP checker answering 500 restarted
the application once, then the module stayed PRIM serving it, ``down (12x)``)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from hamod.core.events import CheckAction, CheckerResult, Health
from hamod.core.machine import Decision
from hamod.core.model import Phase, State
from tests.runtime.harness import rig
from tests.runtime.test_checks import module, runner_of

pytestmark = pytest.mark.anyio

EXTRA = """
checkers:
  - {type: custom, name: gate, action: restart}
  - {type: custom, name: hung, action: restart}
"""


async def test_a_checker_still_down_after_the_transition_is_reported_again(
    tmp_path: Path,
) -> None:
    r = rig(tmp_path)
    checks = runner_of(tmp_path, module(EXTRA), r).checks
    assert checks is not None
    posted: list[object] = []
    r.actor.post = lambda event, update=None: posted.append(event)  # type: ignore[method-assign]
    r.actor.state = replace(r.actor.state, state=State.PRIM, phase=Phase.READY)

    def step(phase: Phase) -> None:
        assert r.actor.on_step is not None
        r.actor.on_step(Decision(replace(r.actor.state, phase=phase), (), "x", ("row",)))

    checks.resources.set("custom.gate", "down")
    down = CheckerResult("gate", Health.DOWN, CheckAction.RESTART, errd=False)
    unknown = CheckerResult("hung", Health.UNKNOWN, CheckAction.RESTART, errd=False)
    await checks.runner.check("gate")
    await checks.runner.check("hung")  # never set: unknown
    await checks.runner.check("gate")
    assert posted == [down, unknown]
    step(Phase.TRANSIENT)  # the core restarts the application...
    step(Phase.READY)  # ...and it is READY again
    await checks.runner.check("gate")
    await checks.runner.check("hung")
    assert posted == [down, unknown, down]  # down again; unknown is still logged once
    step(Phase.READY)  # READY to READY (e.g. ALONE -> PRIM): nothing forgotten
    await checks.runner.check("gate")
    assert posted == [down, unknown, down]
    text = (tmp_path / "demo.log").read_text()
    assert text.count("checker custom gate: down (action restart)") == 2
    assert text.count("checker custom hung: unknown") == 1
