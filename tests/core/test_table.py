"""Every row of the transition table, one unit case at least; refusals and ignored
events; the table's own consistency."""

from __future__ import annotations

from dataclasses import replace

import pytest

from hamod.core.events import (
    CheckAction,
    Evaluate,
    Health,
    LeaseDenied,
    MirrorUp,
    On,
    PeerAnnounced,
    PeerLost,
    ScriptOk,
    Tick,
)
from hamod.core.machine import step
from hamod.core.model import (
    Await,
    DataHistory,
    Goal,
    ModuleState,
    Phase,
    Script,
    State,
    View,
    announcement,
)
from hamod.core.table import TABLE
from tests.core.cases import (
    ALONE,
    ARB,
    CASES,
    G0,
    NONE,
    NOW,
    PRIM,
    SECOND,
    WAIT,
    Case,
    ck,
    cmd,
    peer,
    pend,
    run_case,
)


@pytest.mark.parametrize("case", CASES, ids=[c.row for c in CASES])
def test_row(case: Case) -> None:
    run_case(case)


def test_every_row_has_a_unit_case() -> None:
    covered = {c.row for c in CASES}
    missing = [r.name for r in TABLE.rows if r.name not in covered]
    assert not missing, f"rows without a unit case: {missing}"


def test_row_names_unique() -> None:
    names = [r.name for r in TABLE.rows]
    assert len(names) == len(set(names))


def test_no_row_is_shadowed_entirely() -> None:
    """A row whose (state, event) pairs all come after an unguarded row can never fire."""
    for key_state, rows in TABLE.index.items():
        for i, r in enumerate(rows):
            if not r.guards:
                for later in rows[i + 1 :]:
                    pairs = {(s, k) for s in later.src for k in later.on}
                    shadowed = all(not TABLE.candidates(*p)[0].guards for p in pairs)
                    assert not shadowed or later.guards, f"{later.name} shadowed at {key_state}"


V = View(NONE)


@pytest.mark.parametrize(
    ("state", "command", "peer_view"),
    [
        (WAIT, On.SWAP, None),
        (ALONE, On.SWAP, None),
        (replace(WAIT, up_to_date=False), On.PRIM, peer(State.PRIM)),
        (WAIT, On.PRIM, peer(State.ALONE)),
        (SECOND, On.PRIM, peer(State.PRIM)),
        (ALONE, On.START, None),
        (replace(ALONE, phase=Phase.TRANSIENT), On.STOP, None),
        (WAIT, On.FULLSYNC, None),
        # a SECOND asking for the term to take over: its copy must stay up to date until
        # the answer (soak seed 139457: a fullsync there let a stale copy become PRIM)
        (pend(SECOND, Await.LEASE, Goal.PRIM, term=3), On.FULLSYNC, peer(State.SECOND)),
        (WAIT, On.RESTART, None),
    ],
)
def test_refused_commands_change_nothing(state, command, peer_view) -> None:  # type: ignore[no-untyped-def]
    d = step(state, View(NONE, peer_view), cmd(command), NOW)
    assert d.refused and d.reason.startswith("refused:"), d.reason
    assert d.state == state and d.actions == () and d.rows == ()


def test_prim_refused_over_a_peer_with_newer_data() -> None:
    from hamod.core.model import DataHistory, Generation

    newer = DataHistory(Generation("b", 3, 1), (WAIT.data.current,))  # type: ignore[arg-type]
    d = step(
        replace(WAIT, up_to_date=False), View(NONE, peer(State.WAIT, data=newer)), cmd(On.PRIM), NOW
    )
    assert d.refused


def test_refusal_names_the_pending_step() -> None:
    from hamod.core.model import Await
    from tests.core.cases import pend

    d = step(pend(ALONE, Await.START_APP), V, cmd(On.SWAP), NOW)
    assert "waiting for start_app" in d.reason


@pytest.mark.parametrize(
    "event",
    [
        ck(CheckAction.RESTART, Health.UNKNOWN),
        ck(CheckAction.NOACTION),
        ck(CheckAction.RESTART, Health.UP),
        ScriptOk(Script.START_SECOND),
        Tick(),
    ],
)
def test_ignored_events_keep_the_state(event) -> None:  # type: ignore[no-untyped-def]
    d = step(ALONE, V, event, NOW)
    assert d.state == ALONE and d.actions == () and not d.refused
    assert d.reason.startswith("ignored:")


def test_checkers_off_and_transient_phase_do_nothing() -> None:
    for s in (replace(ALONE, checkers=False), replace(ALONE, phase=Phase.TRANSIENT)):
        d = step(s, V, ck(CheckAction.STOPSTART), NOW)
        assert d.state == s and d.actions == ()
    d = step(
        replace(ALONE, errd=False, checkers=True), V, replace(ck(CheckAction.STOP), errd=True), NOW
    )
    assert d.actions == ()


def test_loop_interval_zero_disables_maxloop() -> None:
    s = replace(ALONE, auto_actions=(NOW - 1, NOW - 2, NOW - 3, NOW - 4))
    d = step(s, View(replace(NONE, loop_interval=0.0)), ck(CheckAction.RESTART), NOW)
    assert d.rows[0] == "checker_restart"


def test_admin_command_resets_the_loop_counter() -> None:
    d = step(replace(ALONE, auto_actions=(NOW - 1,)), V, cmd(On.RESTART), NOW)
    assert d.state.auto_actions == ()


def test_durable_record_comes_first_and_announce_last() -> None:
    d = step(PRIM, V, cmd(On.FAILOVER_OFF), NOW)
    assert d.tags[0] == "record" and d.tags[-1] == "announce"


def test_second_records_not_up_to_date_durably() -> None:
    assert not SECOND.durable().up_to_date and PRIM.durable().up_to_date


def test_protocol_version_one_apart_pairs_two_apart_refused() -> None:
    s = replace(WAIT, up_to_date=False)
    ok = step(s, View(NONE, peer(State.ALONE, protocol_version=2)), cmd(On.FAILOVER_ON), NOW)
    assert "wait_pair" in ok.rows
    bad = step(s, View(NONE, peer(State.ALONE, protocol_version=3)), cmd(On.FAILOVER_ON), NOW)
    assert "peer_refused" in bad.rows and "protocol" in bad.state.refused


def test_term_backoff_holds_back_term_requests_not_pairing() -> None:
    """A refused term: no new request (nor candidacy) for ``timeout``; a serving peer
    heard meanwhile is paired with at once (issue: rejoin waited a whole timeout)."""
    asked = pend(WAIT, Await.LEASE, Goal.ALONE, 3)
    refused = step(asked, View(ARB), LeaseDenied(3, 3, "b"), NOW)
    assert refused.rows == ("lease_failed_wait",), refused.rows
    s = refused.state
    assert s.term_backoff_until == NOW + ARB.timeout and s.backoff_until == 0.0
    assert not announcement(ARB, s, NOW).candidate
    # alone, within the back-off: no new term request
    assert "wait_lead_lease" not in step(s, View(ARB), Tick(), NOW + 1).rows
    # once it ends, the arbitrator is asked again
    assert step(s, View(ARB), Tick(), NOW + ARB.timeout).rows[-1] == "wait_lead_lease"
    # the serving peer is heard within the back-off: SECOND at once
    pv = peer(State.ALONE, data=WAIT.data)
    paired = step(s, View(ARB, pv), Evaluate(), NOW + 0.5)
    assert paired.rows[-1] == "wait_pair" and paired.state.state is State.SECOND


def test_no_pairing_with_a_primary_in_transition() -> None:
    """A primary still starting (after a swap) or stopping may change its role, and its
    data path mirrors only a SECOND present when it starts mirroring: wait for Ready."""
    starting = peer(State.PRIM, phase=Phase.TRANSIENT)
    s = replace(WAIT, up_to_date=False)
    assert "wait_pair" not in step(s, View(ARB, starting), Evaluate(), NOW).rows
    ready = replace(starting, phase=Phase.READY)
    assert step(s, View(ARB, ready), Evaluate(), NOW).rows[-1] == "wait_pair"


def test_a_serving_node_does_not_flag_a_peer_that_is_merely_behind() -> None:
    # a returning peer with an older generation is a normal rejoin, not a split brain
    behind = DataHistory(G0)
    d = step(ALONE, View(NONE, peer(State.WAIT, data=behind)), PeerAnnounced(), NOW)
    assert "serving_split_brain" not in d.rows and not d.state.split_brain


def test_after_handing_over_the_incoming_primary_is_not_gone() -> None:
    # swap: this node stopped its app and is SECOND (handover); the peer, still SECOND,
    # asks the arbitrator for its term: this node must not race it for the term
    handed = replace(SECOND, handover=True)
    d = step(handed, View(NONE, peer(State.SECOND)), PeerAnnounced(), NOW)
    assert "second_peer_gone" not in d.rows and d.state.state is State.SECOND
    lost = step(handed, View(NONE, None), PeerLost(), NOW)
    assert "second_peer_gone" in lost.rows


def test_swap_back_accepted_once_the_demoted_node_shows_ready_and_up_to_date() -> None:
    """A swap, then a swap back from the new primary (the rolling upgrade): the operator
    (and the playbooks) swap back once ``state`` shows the SECOND Ready and up to date.
    The demoted node must not show that while its hand-over is not settled — until the
    new primary's barrier (``MirrorUp``: its term adopted, the flag cleared) — or the
    swap back is refused; once it does show it, the swap back is accepted."""
    pa, pb = ARB, replace(ARB, node="b", peer="a")
    b_second = announcement(pb, replace(SECOND, term=2, up_to_date=True), NOW)
    stopping = pend(PRIM, Await.STOP_APP, Goal.SECOND)
    a = step(stopping, View(pa, b_second), ScriptOk(Script.STOP_PRIM), NOW).state
    assert a.state is State.SECOND and a.handover
    b = replace(PRIM, term=3, lease_until=NOW + 2)
    b_prim = announcement(pb, b, NOW)

    def swap_back(a_now: ModuleState) -> bool:
        return not step(b, View(pb, announcement(pa, a_now, NOW)), cmd(On.SWAP), NOW).refused

    shown = a.phase is Phase.READY and a.up_to_date
    assert not shown or swap_back(a), "shown Ready and up to date, yet the swap back is refused"
    a = step(a, View(pa, b_prim), MirrorUp(b.data, 3), NOW).state
    assert a.phase is Phase.READY and a.up_to_date and not a.handover and a.term == 3
    assert swap_back(a)
