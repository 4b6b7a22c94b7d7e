"""The data path of a module without replicated directories (the only one before #4).

Nothing to copy, so every answer the core waits for comes at once: a resync is done as
soon as it starts; and a SECOND is "mirrored" as soon as its primary announces PRIM (the
barrier of a replicating data path carries nothing here), which is reported as
``MirrorUp`` with the primary's generation and term.
"""

from __future__ import annotations

from collections.abc import Callable

from hamod.core.actions import Role, StartResync
from hamod.core.events import Event, MirrorUp, ResyncDone
from hamod.core.model import Generation, PeerView, State


class NullDataPath:
    """:class:`~hamod.runtime.ports.DataPath` for modules with no replicated directory."""

    def __init__(self, post: Callable[[Event], None]) -> None:
        self._post = post
        self.role = Role.OFF
        self._peer: PeerView | None = None
        self._confirmed: tuple[Generation | None, int] | None = None

    def ensure_role(self, role: Role) -> None:
        if role is not self.role:
            self._confirmed = None
        self.role = role
        self._maybe_mirror()

    def start_resync(self, action: StartResync) -> None:
        self._post(ResyncDone())

    def stop_resync(self) -> None:
        pass

    def new_generation(self, generation: Generation) -> None:
        pass

    def peer_changed(self, peer: PeerView | None) -> None:
        self._peer = peer
        if peer is None or peer.state is not State.PRIM:
            self._confirmed = None
        self._maybe_mirror()

    def tick(self, waiting: bool) -> None:
        """Every pulse; ``waiting``: the SECOND still waits for the mirror (say it again)."""
        if waiting:
            self._confirmed = None
            self._maybe_mirror()

    def _maybe_mirror(self) -> None:
        pv = self._peer
        if self.role is not Role.SECONDARY or pv is None or pv.state is not State.PRIM:
            return
        key = (pv.data.current, pv.term)
        if key != self._confirmed:
            self._confirmed = key
            self._post(MirrorUp(pv.data, pv.term))
