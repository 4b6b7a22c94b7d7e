"""Generations, comparison, election, durable state, colours."""

from __future__ import annotations

from dataclasses import replace

from hamod.core.election import elect
from hamod.core.model import (
    Compare,
    DataHistory,
    Generation,
    ModuleState,
    Params,
    PeerView,
    Phase,
    State,
    colour,
    compare,
    initial,
    restore,
)

G0, G1, G2 = Generation("a", 1, 1), Generation("a", 2, 2), Generation("b", 2, 1)


def test_compare() -> None:
    base = DataHistory(G0)
    a = base.advance(G1)
    b = base.advance(G2)
    assert compare(a, a) is Compare.SAME
    assert compare(a, base) is Compare.AHEAD and compare(base, a) is Compare.BEHIND
    assert compare(a, b) is Compare.DIVERGED
    assert compare(DataHistory(), a) is Compare.UNKNOWN
    assert compare(DataHistory(G1), DataHistory(G2)) is Compare.UNKNOWN


def test_history_is_bounded() -> None:
    h = DataHistory()
    for i in range(40):
        h = h.advance(Generation("a", i, i))
    assert len(h.history) == 16


def pv(node: str, **kw: object) -> PeerView:
    base = PeerView(
        node=node, state=State.WAIT, up_to_date=True, candidate=True, data=DataHistory(G0)
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def test_election_is_symmetric_and_ordered() -> None:
    for dp, a, b, want in [
        ("alone", pv("a"), pv("b"), "a"),  # lowest name
        ("b", pv("a"), pv("b"), "b"),  # defaultprim
        ("b", pv("a", last_prim=True), pv("b"), "a"),  # last primary first
        ("alone", pv("a"), pv("b", data=DataHistory(G0).advance(G2)), "b"),  # newer data
        ("alone", pv("a", candidate=False), pv("b"), "b"),
        ("alone", pv("a", data=DataHistory(G1, (G0,))), pv("b", data=DataHistory(G2, (G0,))), ""),
        ("alone", pv("a", candidate=False), pv("b", candidate=False), ""),
        # a non-candidate with newer data blocks the candidate
        ("alone", pv("a", candidate=False, data=DataHistory(G1, (G0,))), pv("b"), ""),
    ]:
        assert elect(dp, a, b) == want
        assert elect(dp, b, a) == want


def test_durable_and_restore() -> None:
    p = Params(node="a", peer="b")
    s = replace(
        initial(p), state=State.PRIM, up_to_date=True, last_prim=True, term=3, data=DataHistory(G1)
    )
    r = restore(p, s.durable())
    assert r.state is State.STOP and r.up_to_date and r.term == 3 and r.data.current == G1
    second = replace(s, state=State.SECOND, last_prim=False)
    assert not restore(p, second.durable()).up_to_date
    assert restore(replace(p, replicated=False), second.durable()).up_to_date


def test_colours() -> None:
    assert colour(State.STOP, Phase.NOT_READY) == "red"
    assert colour(State.SECOND, Phase.TRANSIENT) == "orange"
    assert colour(State.PRIM, Phase.READY) == "green"
    assert colour(State.ALONE, Phase.READY, split_brain=True) == "red"
    assert ModuleState().state is State.STOP
