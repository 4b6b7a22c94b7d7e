"""The freshness rule for authentic heartbeats, with no clock and nothing persisted.

Per sender the receiver keeps the accepted epoch, a 64-wide sliding window of sequence
numbers (IPsec style: any unseen seq inside the window is accepted, so datagrams
reordered across networks still count) and its *proof*: the newest of the receiver's own
sequence numbers that an accepted datagram of that sender echoed back.

- Same epoch as accepted: fresh iff the seq is unseen and not below the window.
- Any other epoch (first contact, a rebooted sender, or a replayed old epoch): accepted
  only if the datagram echoes the receiver's *current* epoch with a seq greater than the
  proof. The receiver's epoch is random per start, so nothing recorded before it started
  can carry it; and a replayed older epoch of the sender can only echo seqs the receiver
  has already seen newer proof for.

Everything here is a pure function of frozen values, so the rule is tested exhaustively.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum
from typing import Final

from hamod.proto.heartbeat import Echo

WINDOW: Final = 64
_MASK: Final = (1 << WINDOW) - 1


class Verdict(Enum):
    """Outcome of the freshness check."""

    FRESH = "fresh"
    REPLAY = "replay"
    UNCONFIRMED = "unconfirmed"


@dataclass(frozen=True)
class Window:
    """Highest accepted seq and a bitmap of the ones accepted below it (bit 0 = top)."""

    top: int
    seen: int = 1

    def admit(self, seq: int) -> Window | None:
        """The window after accepting ``seq``, or None if ``seq`` is a replay."""
        if seq > self.top:
            shift = seq - self.top
            seen = ((self.seen << shift) | 1) & _MASK if shift < WINDOW else 1
            return Window(seq, seen)
        offset = self.top - seq
        if offset >= WINDOW or (self.seen >> offset) & 1:
            return None
        return Window(self.top, self.seen | (1 << offset))


@dataclass(frozen=True)
class SenderState:
    """What the receiver remembers about one authentic sender."""

    #: Accepted epoch and its window (None until the sender proved freshness once).
    epoch: int | None = None
    window: Window | None = None
    #: Newest of our seqs echoed by an accepted datagram of this sender (-1: none yet).
    proof: int = -1
    #: Newest authentic (epoch, seq) heard, accepted or not: what we echo before acceptance.
    heard: tuple[int, int] | None = None
    #: ``max_version`` of the last accepted datagram.
    max_version: int | None = None

    def echo(self, node: str) -> Echo | None:
        """The echo to put in our next heartbeat for this sender."""
        if self.epoch is not None and self.window is not None:
            return Echo(node, self.epoch, self.window.top)
        if self.heard is not None:
            return Echo(node, *self.heard)
        return None


def admit(
    state: SenderState,
    *,
    epoch: int,
    seq: int,
    echo: Echo | None,
    max_version: int,
    self_epoch: int,
) -> tuple[Verdict, SenderState]:
    """Judge an authentic datagram (epoch, seq, its echo for us) from this sender."""
    heard = state.heard
    if heard is None or heard[0] != epoch or seq > heard[1]:
        heard = (epoch, seq)
    noted = replace(state, heard=heard)
    proof = echo.seq if echo is not None and echo.epoch == self_epoch else None
    if state.epoch == epoch and state.window is not None:
        window = state.window.admit(seq)
        if window is None:
            return Verdict.REPLAY, noted
        best = state.proof if proof is None else max(state.proof, proof)
        return Verdict.FRESH, replace(noted, window=window, proof=best, max_version=max_version)
    if proof is None or proof <= state.proof:
        return Verdict.UNCONFIRMED, noted
    return Verdict.FRESH, replace(
        noted, epoch=epoch, window=Window(seq), proof=proof, max_version=max_version
    )
