"""The arbitrator's durable grants: the on-disk form of :class:`ArbiterState` and the
store that keeps it (:class:`DurableStore`, fsynced before any grant is answered).

Only what must survive a restart is stored: per (cluster, module) the term, its holder,
the lease length and whether it was released. Lease *ends* are monotonic-clock readings,
meaningless after a restart (or a reboot), so they are not stored: on load the state goes
through :func:`hamod.core.arbiter.restarted`, which treats every unreleased lease as live
for one more lease length. Hence a renewal that changes nothing but the lease end needs
no write (:func:`durable_view` is what a save must preserve).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Final, Protocol

from pydantic import BaseModel, ConfigDict, Field

from hamod.adapters.store import DurableStore
from hamod.core.arbiter import ArbiterState, Record

FORMAT_VERSION: Final = 1

DurableRecord = tuple[str, str, int, str, int, bool]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class GrantModel(_Model):
    """One (cluster, module): its latest term and holder."""

    cluster: str = Field(min_length=1)
    module: str = Field(min_length=1)
    term: int = Field(ge=0)
    holder: str
    lease_ms: int = Field(ge=0)
    released: bool = False


class WitnessStateModel(_Model):
    """Everything the arbitrator stores."""

    grants: tuple[GrantModel, ...] = ()


def lease_ms(rec: Record) -> int:
    return round(rec.lease * 1000)


def durable_view(st: ArbiterState) -> frozenset[DurableRecord]:
    """The part of ``st`` that is stored: equal views need no save."""
    return frozenset(
        (r.cluster, r.module, r.term, r.holder, lease_ms(r), r.released) for r in st.records
    )


def to_model(st: ArbiterState) -> WitnessStateModel:
    grants = sorted(durable_view(st))
    return WitnessStateModel(
        grants=tuple(
            GrantModel(cluster=c, module=m, term=t, holder=h, lease_ms=ms, released=rel)
            for c, m, t, h, ms, rel in grants
        )
    )


def from_model(model: WitnessStateModel) -> ArbiterState:
    """The stored grants, with lease ends unknown (0): apply ``restarted`` next."""
    return ArbiterState(
        tuple(
            Record(g.cluster, g.module, g.term, g.holder, 0.0, g.lease_ms / 1000, g.released)
            for g in model.grants
        )
    )


class GrantStore(Protocol):
    """Where the arbitrator keeps its grants (a fake in tests)."""

    def load(self) -> ArbiterState | None: ...

    def save(self, st: ArbiterState) -> None: ...


class FileGrantStore:
    """Grants in one JSON file written atomically and fsynced (see DurableStore)."""

    def __init__(self, path: Path | str, *, notify: Callable[[str], None] | None = None) -> None:
        self._store = DurableStore(path, WitnessStateModel, FORMAT_VERSION, notify=notify)
        self.path = self._store.path

    def load(self) -> ArbiterState | None:
        """The stored state (lease ends unknown), None if never saved; AdapterError if the
        file and its previous copy are unusable."""
        model = self._store.load()
        return None if model is None else from_model(model)

    def save(self, st: ArbiterState) -> None:
        """Replace the stored grants durably; AdapterError if that failed."""
        self._store.save(to_model(st))
