"""Deterministic choice of the primary when neither node serves: both sides compute the
same answer from the two announcements (no messages, no randomness).

Order: only candidates (up to date, failover on, not held, no recent lease failure);
more recent data wins; then the last primary; then ``defaultprim``'s node; then the
lowest node name. Diverged or unrelated data elects nobody (an admin decides).
"""

from __future__ import annotations

from hamod.core.model import Compare, PeerView, compare


def elect(defaultprim: str, a: PeerView, b: PeerView) -> str:
    """The node that should become primary, or "" for nobody."""
    if not a.candidate and not b.candidate:
        return ""
    if a.candidate != b.candidate:
        # The non-candidate must not hold more recent data than the candidate.
        cand, other = (a, b) if a.candidate else (b, a)
        rel = compare(cand.data, other.data)
        ok = rel in (Compare.SAME, Compare.AHEAD) or other.data.current is None
        return cand.node if ok else ""
    rel = compare(a.data, b.data)
    if rel is Compare.AHEAD:
        return a.node
    if rel is Compare.BEHIND:
        return b.node
    if rel is not Compare.SAME:
        return ""
    if a.last_prim != b.last_prim:
        return a.node if a.last_prim else b.node
    if defaultprim in (a.node, b.node):
        return defaultprim
    return min(a.node, b.node)
