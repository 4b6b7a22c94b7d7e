"""Replays cannot make two live leases: the term rule, and the release rule (only the
holder, quoting the token of the newest grant), checked directly on ``WitnessServer.handle``
and by an attacker replaying any recorded datagram at any time, across arbitrator and node
restarts, with datagrams lost on the way."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from hypothesis import example, given, settings
from hypothesis import strategies as st

from hamod.core.arbiter import ArbiterState
from hamod.proto.witness import Op, WitnessReply, WitnessRequest, decode_reply, encode_request
from hamod.witness.server import WitnessServer
from hamod.witness.state import from_model, to_model

from .conftest import KEYS, PROD_KEY, FakeClock

LEASE_MS = 10_000


class MemStore:
    """Keeps what a FileGrantStore would keep (the durable view), in memory."""

    def __init__(self) -> None:
        self.saved: ArbiterState | None = None

    def load(self) -> ArbiterState | None:
        return None if self.saved is None else from_model(to_model(self.saved))

    def save(self, st: ArbiterState) -> None:
        self.saved = st


def datagram(op: Op, node: str, term: int, epoch: int, seq: int, grant: int = 0) -> bytes:
    lease = LEASE_MS if op is Op.REQUEST else 0
    nonce = secrets.token_bytes(16)
    req = WitnessRequest(op, "prod", "pg", node, term, lease, epoch, seq, nonce, grant)
    return encode_request(req, PROD_KEY)


def answer(server: WitnessServer, data: bytes) -> WitnessReply:
    raw = server.handle(data)
    assert raw is not None
    rep = decode_reply(raw, KEYS)
    assert rep is not None
    return rep


def test_recorded_release_cannot_end_a_lease_renewed_after_it() -> None:
    clock, store = FakeClock(), MemStore()
    server = WitnessServer(KEYS, store, clock=clock)
    old_renewal = datagram(Op.REQUEST, "n1", 1, epoch=7, seq=1)
    token = answer(server, old_renewal).grant
    captured = datagram(Op.RELEASE, "n1", 1, epoch=7, seq=2, grant=token)  # withheld
    # n1 renews and keeps serving; then the arbitrator and n1's daemon restart: the
    # arbitrator forgot every epoch and seq, so the recorded datagrams pass its filter.
    assert answer(server, datagram(Op.REQUEST, "n1", 1, epoch=7, seq=3)).granted
    server = WitnessServer(KEYS, store, clock=clock)
    assert answer(server, datagram(Op.REQUEST, "n1", 1, epoch=8, seq=1)).granted
    assert answer(server, old_renewal).granted  # a replayed renewal: harmless, new token
    late = answer(server, captured)
    assert not late.granted and "newest grant" in late.reason
    taker = answer(server, datagram(Op.REQUEST, "n2", 2, epoch=9, seq=1))
    assert not taker.granted and taker.holder == "n1"


def test_release_must_quote_the_newest_grant_of_this_arbitrator_process() -> None:
    clock, store = FakeClock(), MemStore()
    server = WitnessServer(KEYS, store, clock=clock)
    token = answer(server, datagram(Op.REQUEST, "n1", 1, epoch=7, seq=1)).grant
    assert token != 0
    server = WitnessServer(KEYS, store, clock=clock)
    early = answer(server, datagram(Op.RELEASE, "n1", 1, epoch=7, seq=2, grant=token))
    assert not early.granted
    token = answer(server, datagram(Op.REQUEST, "n1", 1, epoch=7, seq=3)).grant
    other = answer(server, datagram(Op.RELEASE, "n2", 1, epoch=9, seq=1, grant=token))
    assert not other.granted and "not held by n2" in other.reason
    done = answer(server, datagram(Op.RELEASE, "n1", 1, epoch=7, seq=4, grant=token))
    assert done.granted and done.reason == "released"
    again = answer(server, datagram(Op.RELEASE, "n1", 1, epoch=7, seq=5, grant=token))
    assert again.granted  # idempotent
    assert answer(server, datagram(Op.REQUEST, "n2", 2, epoch=9, seq=2)).granted


def test_replayed_old_grant_request_is_refused_by_the_term_rule() -> None:
    clock, store = FakeClock(), MemStore()
    server = WitnessServer(KEYS, store, clock=clock)
    old = datagram(Op.REQUEST, "n1", 1, epoch=7, seq=1)
    assert answer(server, old).granted
    clock.advance(11)
    assert answer(server, datagram(Op.REQUEST, "n2", 2, epoch=9, seq=1)).granted
    server = WitnessServer(KEYS, store, clock=clock)  # forgets every epoch and seq
    replayed = answer(server, old)
    assert not replayed.granted and replayed.holder == "n2"


@dataclass
class Node:
    name: str
    epoch: int
    seq: int = 0
    term: int = 0  # the newest term it knows of
    holds: int | None = None  # the term it serves under
    token: int = 0  # grant token of the newest grant it received
    last_held: int | None = None  # the term of that grant
    lease_end: float = 0.0  # on the shared clock: send time + granted remaining

    def next(self) -> int:
        self.seq += 1
        return self.seq


@dataclass
class World:
    clock: FakeClock = field(default_factory=FakeClock)
    store: MemStore = field(default_factory=MemStore)
    recorded: list[bytes] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.server = WitnessServer(KEYS, self.store, clock=self.clock)


ACTIONS = st.sampled_from(
    ["ask1", "ask2", "renew1", "renew2", "release1", "release2", "lose", "replay", "tick",
     "bigtick", "restart_arbiter", "restart1", "restart2"]
)  # fmt: skip


#: The attack the grant token stops: n1's release is lost (the attacker keeps it), n1 takes
#: its term back and serves, the arbitrator restarts (its replay filter forgets), the
#: release is replayed, n2 asks for a term (learning the current one), then the next.
RELEASE_REPLAY = [
    ("ask1", 0), ("lose", 0), ("release1", 0), ("renew1", 0), ("restart_arbiter", 0),
    ("replay", 1), ("ask2", 0), ("ask2", 0),
]  # fmt: skip


@settings(max_examples=300, deadline=None)
@example(RELEASE_REPLAY)
@given(st.lists(st.tuples(ACTIONS, st.integers(0, 10**6)), max_size=60))
def test_no_replay_schedule_gives_two_live_leases(steps: list[tuple[str, int]]) -> None:
    w = World()
    nodes = [Node("n1", 1), Node("n2", 2)]
    lost, restarts = False, 0
    for action, pick in steps:
        now = w.clock()
        if action in ("ask1", "ask2", "renew1", "renew2", "release1", "release2"):
            node = nodes[int(action[-1]) - 1]
            if action.startswith("release"):
                if node.holds is None:
                    continue
                term, op, grant = node.holds, Op.RELEASE, node.token
                node.holds = None  # it stops serving before it releases
            elif action.startswith("renew"):  # also: take back a term it gave up
                if node.last_held is None:
                    continue
                term, op, grant = node.last_held, Op.REQUEST, 0
            else:
                term, op, grant = node.term + 1, Op.REQUEST, 0
            data = datagram(op, node.name, term, node.epoch, node.next(), grant)
            w.recorded.append(data)
            if lost:  # the network lost this one; the attacker kept a copy
                lost = False
                continue
            rep = answer(w.server, data)
            node.term = max(node.term, rep.term)
            if op is Op.REQUEST and rep.granted:
                node.holds, node.lease_end = rep.term, now + rep.remaining_ms / 1000
                node.token, node.last_held = rep.grant, rep.term
            elif op is Op.REQUEST and node.holds == term:
                node.holds = None  # a refused renewal: stop serving
        elif action == "lose":
            lost = True
        elif action == "replay" and w.recorded:
            w.server.handle(w.recorded[pick % len(w.recorded)])
        elif action == "tick":
            w.clock.advance(pick % 4000 / 1000)
        elif action == "bigtick":
            w.clock.advance(LEASE_MS / 1000)
        elif action == "restart_arbiter":
            w.server = WitnessServer(KEYS, w.store, clock=w.clock)
        elif action.startswith("restart"):
            i = int(action[-1]) - 1
            restarts += 1  # a new random epoch (distinct: 64 random bits)
            nodes[i] = Node(nodes[i].name, epoch=100 + restarts, term=nodes[i].term)
        now = w.clock()
        live = [n.name for n in nodes if n.holds is not None and n.lease_end > now]
        assert len(live) <= 1, (live, steps)
