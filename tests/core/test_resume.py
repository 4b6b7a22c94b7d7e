"""resume(): a daemon restart picks the module up where it was (pure)."""

from __future__ import annotations

from dataclasses import replace

from hamod.core.actions import ArmLeaseTimer, EnsureDataPath, Role
from hamod.core.events import ScriptFailed, Tick
from hamod.core.machine import step
from hamod.core.model import (
    Await,
    DataHistory,
    Generation,
    Goal,
    Mode,
    ModuleState,
    Params,
    PeerView,
    Pending,
    Phase,
    Resync,
    Script,
    State,
    View,
    Witness,
)
from hamod.core.resume import resume, role_of

P = Params(node="a", peer="b")


def test_settled_primary_is_kept_with_its_role() -> None:
    s = ModuleState(state=State.PRIM, phase=Phase.READY, term=3, two_primaries=True)
    r = resume(P, s, 10.0)
    assert r.state == replace(s, two_primaries=False)
    assert r.actions == (EnsureDataPath(Role.PRIMARY_MIRRORING, r.actions[0].reason),)
    assert r.follow is None
    assert "resume PRIM" in r.reason


def test_roles() -> None:
    assert role_of(ModuleState(state=State.SECOND)) is Role.SECONDARY
    assert role_of(ModuleState(state=State.ALONE)) is Role.PRIMARY_ALONE
    assert role_of(ModuleState(state=State.UP)) is Role.PRIMARY_ALONE
    assert role_of(ModuleState(state=State.WAIT)) is Role.OFF


def test_awaited_script_counts_as_failed() -> None:
    s = ModuleState(state=State.ALONE, pending=Pending(Await.START_APP, Goal.ALONE))
    assert resume(P, s, 0.0).follow == ScriptFailed(Script.START_PRIM)
    s = replace(s, pending=Pending(Await.STOP_APP_FORCE, Goal.STOP))
    assert resume(P, s, 0.0).follow == ScriptFailed(Script.STOP_PRIM)
    farm = replace(P, mode=Mode.FARM)
    s = replace(s, state=State.UP, pending=Pending(Await.START_APP, Goal.ALONE))
    assert resume(farm, s, 0.0).follow == ScriptFailed(Script.START_BOTH)
    s = ModuleState(state=State.WAIT, pending=Pending(Await.PRESTART, Goal.WAIT))
    assert resume(P, s, 0.0).follow == ScriptFailed(Script.PRESTART)


def test_lease_pending_and_a_resync_in_progress_are_kept() -> None:
    s = ModuleState(state=State.WAIT, pending=Pending(Await.LEASE, Goal.ALONE, term=4))
    assert resume(P, s, 0.0).follow is None
    s = ModuleState(state=State.SECOND, resync=Resync("b", False, False))
    r = resume(P, s, 0.0)
    assert r.follow is None and r.state.resync == s.resync  # the data path goes on
    assert r.actions[0] == EnsureDataPath(Role.SECONDARY, r.actions[0].reason)
    assert "the resync goes on in the data path" in r.reason


def test_lease_timer_rearmed_for_an_arbitrated_primary() -> None:
    p = replace(P, witness=Witness.ARBITRATOR, lease=5.0, lease_margin=1.0)
    s = ModuleState(state=State.ALONE, phase=Phase.READY, term=2, lease_until=20.0)
    r = resume(p, s, 10.0)
    assert r.actions[1] == ArmLeaseTimer(19.0, r.actions[1].reason)
    assert "lease already ending" not in r.reason
    assert "lease already ending" in resume(p, s, 19.5).reason
    assert len(resume(p, replace(s, lease_until=0.0), 10.0).actions) == 1
    assert len(resume(P, s, 10.0).actions) == 1
    assert len(resume(p, replace(s, state=State.SECOND), 10.0).actions) == 1


def test_the_view_keeps_the_peer_as_last_seen() -> None:
    """A resumed PRIM does not take its peer as lost before it could hear it: the view
    starts with the saved announcement, so the first tick only renews the lease (same
    term, same data generation)."""
    arb = replace(P, witness=Witness.ARBITRATOR, config_hash="h", timeout=4.0, lease=2.0)
    gen = Generation("a", 1, 1)
    s = ModuleState(
        state=State.PRIM,
        phase=Phase.READY,
        up_to_date=True,
        data=DataHistory(gen),
        term=1,
        last_prim=True,
        lease_until=11.0,
    )
    second = PeerView(
        "b", State.SECOND, Phase.READY, up_to_date=True, data=DataHistory(gen), term=1,
        config_hash="h",
    )  # fmt: skip
    r = resume(arb, s, 10.0, second)
    assert r.peer == second and "peer b as last seen (SECOND)" in r.reason
    d = step(r.state, View(arb, r.peer), Tick(), 10.2)
    assert d.rows == ("renew_lease",), d.rows
    assert (d.state.state, d.state.term, d.state.data) == (State.PRIM, 1, s.data)
    # what the restarted daemon did before: "no peer" read as "peer lost"
    lost = step(r.state, View(arb, None), Tick(), 10.2)
    assert "prim_lost_peer_lease" in lost.rows
    # an announcement saved for another peer is not this module's peer
    assert resume(arb, s, 10.0, replace(second, node="c")).peer is None
    assert resume(arb, s, 10.0).peer is None
