"""The pure arbitrator (``hamod witness`` logic): terms and leases per (cluster, module).

One arbitrator serves many clusters. For each (cluster, module) it keeps the latest
term, its holder and when the holder's lease ends. Rules:

- a renewal of the current term by its holder extends the lease;
- a higher term goes to the current holder at once (the primary going ALONE bumps the
  term, so its old secondary can no longer take over with stale data);
- a higher term goes to another node only once the current lease has ended or was
  released (never two live leases);
- anything else is refused, with the current term and holder.

Grants are durable (``ArbiterState`` is the snapshot). After a restart the arbitrator
no longer knows when the leases it granted end (clocks do not survive restarts), so
``restarted`` treats every lease as live for one more full lease length.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Record:
    cluster: str
    module: str
    term: int
    holder: str
    expires: float
    lease: float
    released: bool = False


@dataclass(frozen=True)
class ArbiterState:
    records: tuple[Record, ...] = ()

    def get(self, cluster: str, module: str) -> Record | None:
        for r in self.records:
            if r.cluster == cluster and r.module == module:
                return r
        return None

    def put(self, rec: Record) -> ArbiterState:
        rest = tuple(r for r in self.records if (r.cluster, r.module) != (rec.cluster, rec.module))
        return ArbiterState((*rest, rec))


@dataclass(frozen=True)
class LeaseRequest:
    cluster: str
    module: str
    node: str
    term: int
    lease: float


@dataclass(frozen=True)
class Reply:
    granted: bool
    term: int  # granted term, or the current term when refused
    holder: str
    expires: float
    reason: str


def request(st: ArbiterState, req: LeaseRequest, now: float) -> tuple[ArbiterState, Reply]:
    """Grant or refuse ``req`` received at ``now``."""
    cur = st.get(req.cluster, req.module)
    expires = now + req.lease
    new = Record(req.cluster, req.module, req.term, req.node, expires, req.lease)
    if cur is None:
        if req.term >= 1:
            return st.put(new), Reply(True, req.term, req.node, expires, "first term")
        return st, Reply(False, 0, "", 0.0, "refused: term must be >= 1")
    live = now < cur.expires and not cur.released
    if req.term == cur.term and req.node == cur.holder:
        if cur.released:
            return st, Reply(False, cur.term, cur.holder, cur.expires, "refused: lease released")
        return st.put(new), Reply(True, req.term, req.node, expires, "renewed")
    if req.term > cur.term and (req.node == cur.holder or not live):
        return st.put(new), Reply(True, req.term, req.node, expires, "new term")
    why = (
        f"refused: term {req.term} <= current term {cur.term} held by {cur.holder}"
        if req.term <= cur.term
        else f"refused: lease of {cur.holder} on term {cur.term} still live"
    )
    return st, Reply(False, cur.term, cur.holder, cur.expires, why)


def release(
    st: ArbiterState, cluster: str, module: str, node: str, term: int, now: float
) -> ArbiterState:
    """The holder gives its lease up (it stopped serving): another node may take the next
    term at once."""
    cur = st.get(cluster, module)
    if cur is None or cur.holder != node or cur.term != term:
        return st
    return st.put(replace(cur, expires=min(cur.expires, now), released=True))


def restarted(st: ArbiterState, now: float) -> ArbiterState:
    """The state after an arbitrator restart: every lease live for one more lease length."""
    return ArbiterState(
        tuple(r if r.released else replace(r, expires=now + r.lease) for r in st.records)
    )
