"""The pure arbitrator: terms, leases, releases, restarts, many clusters."""

from __future__ import annotations

from hamod.core.arbiter import ArbiterState, LeaseRequest, release, request, restarted


def req(node: str, term: int, cluster: str = "c") -> LeaseRequest:
    return LeaseRequest(cluster, "m", node, term, 2.0)


def test_first_term_granted_then_renewed_by_holder() -> None:
    st, r = request(ArbiterState(), req("a", 1), 0.0)
    assert r.granted and r.expires == 2.0
    st, r = request(st, req("a", 1), 1.0)
    assert r.granted and r.expires == 3.0


def test_term_zero_refused() -> None:
    _, r = request(ArbiterState(), req("a", 0), 0.0)
    assert not r.granted


def test_next_term_to_another_node_only_after_the_lease_ends() -> None:
    st, _ = request(ArbiterState(), req("a", 1), 0.0)
    st, r = request(st, req("b", 2), 1.9)
    assert not r.granted and "still live" in r.reason and r.holder == "a"
    st, r = request(st, req("b", 2), 2.0)
    assert r.granted and r.holder == "b"
    st, r = request(st, req("a", 1), 2.5)
    assert not r.granted and r.term == 2  # the old holder is told the current term


def test_holder_bumps_its_term_at_once_and_the_stale_peer_is_refused_forever() -> None:
    st, _ = request(ArbiterState(), req("a", 1), 0.0)
    st, r = request(st, req("a", 2), 1.0)  # a goes ALONE
    assert r.granted
    st, r = request(st, req("b", 2), 10.0)  # lease long over, but b is stale
    assert not r.granted and "<= current term 2" in r.reason
    st, r = request(st, req("b", 3), 10.0)  # only primforce asks past the current term
    assert r.granted


def test_release_lets_the_peer_take_over_at_once_and_blocks_stale_renewals() -> None:
    st, _ = request(ArbiterState(), req("a", 1), 0.0)
    st = release(st, "c", "m", "a", 1, 0.5)
    st, r = request(st, req("a", 1), 0.6)
    assert not r.granted and "released" in r.reason
    st, r = request(st, req("b", 2), 0.6)
    assert r.granted
    assert release(st, "c", "m", "a", 1, 0.7) == st  # not the holder: no effect


def test_restart_keeps_grants_and_treats_leases_as_live() -> None:
    st, _ = request(ArbiterState(), req("a", 1), 0.0)
    st = restarted(st, 100.0)
    _, r = request(st, req("b", 2), 101.0)
    assert not r.granted
    _, r = request(st, req("a", 1), 101.0)
    assert r.granted
    _, r = request(st, req("b", 2), 102.0)
    assert r.granted


def test_many_clusters_are_independent() -> None:
    st, _ = request(ArbiterState(), req("a", 1, "c1"), 0.0)
    st, r = request(st, req("x", 1, "c2"), 0.0)
    assert r.granted and st.get("c1", "m").holder == "a" and st.get("c2", "m").holder == "x"  # type: ignore[union-attr]
