"""Counting and summarizing the heartbeat datagrams the transport refuses.

Owns the per-reason drop counters (the decoder's reasons plus the transport's own:
``unknown_sender``, ``wrong_network``, ``internal_error``) and the burst rule for
reporting them: drops from one source on one network are gathered into a
:class:`DropBurst` reported **once**, when that source has been quiet for ``quiet``
seconds (or every ``longest`` seconds while it keeps going), so a flood of garbage makes
one log line, not one per datagram. Sources are attacker-chosen (spoofable), so at most
:data:`MAX_SOURCES` bursts are tracked per network; drops from further sources are
gathered under :data:`OTHER_SOURCES`. Pure: time is an argument.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from hamod.proto import DropReason

__all__ = ["MAX_SOURCES", "OTHER_SOURCES", "DropBurst", "DropTracker", "TransportDrop"]

#: Distinct sources tracked per network at once (bounded memory under a spoofed flood).
MAX_SOURCES: Final = 64
OTHER_SOURCES: Final = "other sources"


class TransportDrop(StrEnum):
    """Drop reasons of the transport itself (authentic datagrams it still refuses)."""

    #: Authentic, but the sender is not a peer of this node (not in the cluster file).
    UNKNOWN_SENDER = "unknown_sender"
    #: Authentic, but it names another network than the one it arrived on.
    WRONG_NETWORK = "wrong_network"
    #: A bug while handling the datagram (logged with its traceback); never a crash.
    INTERNAL_ERROR = "internal_error"


@dataclass(frozen=True)
class DropBurst:
    """Datagrams refused from ``source`` on ``network`` between ``first`` and ``last``."""

    network: str
    source: str
    count: int
    #: (reason, count) pairs, most frequent first.
    reasons: tuple[tuple[str, int], ...]
    first: float
    last: float
    #: The detail of the last drop (what the decoder said).
    detail: str
    #: The source is still sending: this is an interim report of a longer burst.
    ongoing: bool = False

    def __str__(self) -> str:
        reasons = ", ".join(f"{r} x{n}" for r, n in self.reasons)
        more = " (continuing)" if self.ongoing else ""
        return (
            f"dropped {self.count} heartbeat datagram(s) from {self.source} on network "
            f"{self.network} over {self.last - self.first:.1f}s: {reasons}; "
            f"last: {self.detail}{more}"
        )


@dataclass
class _Open:
    first: float
    last: float
    reasons: Counter[str]
    detail: str


class DropTracker:
    """Per-reason counters and burst summaries of refused datagrams."""

    def __init__(self, quiet: float = 1.0, longest: float = 30.0) -> None:
        if not 0 < quiet <= longest:
            raise ValueError("need 0 < quiet <= longest")
        self.quiet = quiet
        self.longest = longest
        reasons = [*(r.value for r in DropReason), *(r.value for r in TransportDrop)]
        self._counters: dict[str, int] = dict.fromkeys(reasons, 0)
        self._open: dict[tuple[str, str], _Open] = {}

    @property
    def counters(self) -> dict[str, int]:
        """Datagrams refused so far, per reason (every reason present)."""
        return dict(self._counters)

    def add(self, network: str, source: str, reason: str, detail: str, now: float) -> None:
        """Count one refused datagram."""
        self._counters[reason] = self._counters.get(reason, 0) + 1
        burst = self._open.get((network, source))
        if burst is None and sum(net == network for net, _ in self._open) >= MAX_SOURCES:
            source = OTHER_SOURCES
            burst = self._open.get((network, source))
        if burst is None:
            self._open[(network, source)] = _Open(now, now, Counter({reason: 1}), detail)
            return
        burst.last = max(burst.last, now)
        burst.reasons[reason] += 1
        burst.detail = detail

    def due(self, now: float) -> list[DropBurst]:
        """The bursts to report at ``now``: quiet ones (closed) and over-long ones."""
        out: list[DropBurst] = []
        for key, burst in list(self._open.items()):
            quiet = now - burst.last >= self.quiet
            if not quiet and now - burst.first < self.longest:
                continue
            out.append(
                DropBurst(
                    network=key[0],
                    source=key[1],
                    count=sum(burst.reasons.values()),
                    reasons=tuple(burst.reasons.most_common()),
                    first=burst.first,
                    last=burst.last,
                    detail=burst.detail,
                    ongoing=not quiet,
                )
            )
            del self._open[key]
        return out

    def next_deadline(self) -> float:
        """When the next burst may become due."""
        return min(
            (min(b.last + self.quiet, b.first + self.longest) for b in self._open.values()),
            default=float("inf"),
        )

    def flush(self) -> list[DropBurst]:
        """Every open burst, closed now (at stop)."""
        return self.due(float("inf"))
