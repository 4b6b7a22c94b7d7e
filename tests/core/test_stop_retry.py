"""The forced second call of a stop script repeats the first call's arguments (the
state it is in, the state it goes to, the verb) with ``force`` first — found by the
checker acceptance tests: a restart's retry said ``PRIM ALONE stop``."""

from __future__ import annotations

import pytest

from hamod.core.actions import RunScript, Verb
from hamod.core.events import ScriptFailed
from hamod.core.model import Await, Goal, ModuleState, Script, State
from tests.core.cases import ALONE, PRIM, Case, pend, run_case


@pytest.mark.parametrize(
    ("s", "goal", "nxt", "verb"),
    [
        (PRIM, Goal.RESTART, State.PRIM, Verb.STOP),
        (ALONE, Goal.RESTART, State.ALONE, Verb.STOP),
        (PRIM, Goal.STOPSTART, State.STOP, Verb.STOPSTART),
        (PRIM, Goal.WAIT, State.WAIT, Verb.STOPWAIT),
        (ALONE, Goal.STOP, State.STOP, Verb.STOP),
    ],
)
def test_forced_retry_has_the_first_calls_arguments(
    s: ModuleState, goal: Goal, nxt: State, verb: Verb
) -> None:
    start = pend(s, Await.STOP_APP, goal)
    d = run_case(Case("stop_app_retry", start, ScriptFailed(Script.STOP_PRIM)))
    (call,) = [a for a in d.actions if isinstance(a, RunScript)]
    assert (call.script, call.cur, call.next, call.verb, call.force) == (
        Script.STOP_PRIM, start.state, nxt, verb, True
    )  # fmt: skip
