"""``step()``: apply one event to one module's state, using the transition table.

``step(state, view, event, now) -> Decision``. The first matching row wins; when the
module is settled afterwards, ``EVALUATE`` rows are tried (at most a few times) so WAIT
decides at once. Decisions are pure values: the new state, the actions (durable record
first, announcement last when they changed) and the reason. Commands matching no row
are refused (reason starts with "refused:"); other unmatched events are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from hamod.core.actions import Action, Announce, RecordDurable
from hamod.core.events import COMMANDS, Evaluate, Event
from hamod.core.guards import Ctx
from hamod.core.model import ModuleState, View, announcement
from hamod.core.table import TABLE, Row, Table

MAX_CHAIN = 3


@dataclass(frozen=True)
class Decision:
    state: ModuleState
    actions: tuple[Action, ...]
    reason: str
    rows: tuple[str, ...] = ()

    @property
    def refused(self) -> bool:
        return self.reason.startswith("refused:")

    @property
    def tags(self) -> tuple[str, ...]:
        return tuple(a.tag for a in self.actions)


def match(table: Table, s: ModuleState, v: View, e: Event, now: float) -> Row | None:
    c = Ctx(s, v, e, now)
    for row in table.candidates(s.state, e.key):
        if all(gd(c) for gd in row.guards):
            return row
    return None


def apply(
    row: Row, s: ModuleState, v: View, e: Event, now: float
) -> tuple[ModuleState, list[Action]]:
    c = Ctx(s, v, e, now)
    new = s if row.to is None else replace(s, state=row.to)
    acts: list[Action] = []
    for eff in row.effects:
        new, more = eff(c, new)
        acts.extend(more)
    return new, acts


def step(s: ModuleState, v: View, e: Event, now: float, table: Table = TABLE) -> Decision:
    """Apply ``e`` (the view already reflects it) at time ``now``."""
    row = match(table, s, v, e, now)
    rows: list[str] = []
    reasons: list[str] = []
    acts: list[Action] = []
    cur = s
    if row is None:
        if e.key in COMMANDS:
            why = f"refused: {e.key.value} not allowed in {s.state.value}/{s.phase.value}"
            if s.pending is not None:
                why += f" (waiting for {s.pending.awaiting.value})"
            return Decision(s, (), why)
        reasons.append(f"ignored: {e.key.value} in {s.state.value}")
    else:
        cur, more = apply(row, cur, v, e, now)
        rows.append(row.name)
        reasons.append(row.reason)
        acts.extend(more)
        if e.key in COMMANDS:
            cur = replace(cur, auto_actions=())  # admin commands reset the loop counter
    ev = Evaluate()
    for _ in range(MAX_CHAIN):
        if cur.pending is not None:
            break
        nxt = match(table, cur, v, ev, now)
        if nxt is None:
            break
        before = cur
        cur, more = apply(nxt, cur, v, ev, now)
        rows.append(nxt.name)
        reasons.append(nxt.reason)
        acts.extend(more)
        if cur == before and not more:
            break
    if not rows:
        return Decision(s, (), reasons[0])
    if cur.durable() != s.durable():
        acts.insert(0, RecordDurable(cur.durable(), reasons[0]))
    mine = announcement(v.params, cur, now)
    if mine != announcement(v.params, s, now):
        acts.append(Announce(mine, reasons[-1]))
    return Decision(
        cur, tuple(acts), "; ".join(r for r in reasons if not r.startswith("ignored")), tuple(rows)
    )
