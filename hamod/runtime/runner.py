"""One module on this node as the daemon runs it: its actor, its peer liveness, its log,
its runtime toggles (``boot``, and whether it was started, for ``boot: auto``), whether
the peer is known yet, its canonical configuration (served to the peer), and the notes
``hamod state`` shows (peer refused with the differing fields, or both config hashes;
two primaries, split brain, degraded networks)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from hamod.adapters.heartbeat_liveness import Liveness
from hamod.config import ClusterConfig, ModuleConfig, config_hash
from hamod.core.model import View
from hamod.core.resume import Resumed
from hamod.errors import HamodError, StateError, UsageError
from hamod.runtime.checks import ModuleChecks
from hamod.runtime.logs import ModuleLog
from hamod.runtime.module import ModuleActor
from hamod.runtime.peerconfig import canonical_config
from hamod.runtime.real import FileToggles

#: How long a start command waits for the peer to be heard or lost (the CLI waits 10s).
PEER_WAIT = 8.0


def set_view(**changes: Any) -> Callable[[View], View]:
    """A view update setting ``changes``."""
    return lambda v: replace(v, **changes)


def net_up(network: str, up: bool) -> Callable[[View], View]:
    """A view update marking ``network`` up or down."""

    def update(v: View) -> View:
        nets = v.networks_up | {network} if up else v.networks_up - {network}
        return replace(v, networks_up=nets)

    return update


class ModuleRunner:
    """One module on this node: its actor, liveness, log and runtime toggles."""

    def __init__(self, config: ModuleConfig, actor: ModuleActor, mlog: ModuleLog,
                 liveness: Liveness, toggles: FileToggles,
                 cluster: ClusterConfig | None = None) -> None:  # fmt: skip
        self.config, self.actor, self.mlog = config, actor, mlog
        self.cluster = cluster
        self.liveness = liveness
        self.toggles = toggles
        self.doc = toggles.load()
        #: The module's checkers (set by the daemon once built).
        self.checks: ModuleChecks | None = None
        self.peer_hash = ""
        #: What differs from the peer's configuration (its hash ``config_diff[0]``), as
        #: found by fetching it: shown by ``state`` while the peer is refused.
        self.config_diff: tuple[str, str] = ("", "")
        #: Set once the peer was heard or declared lost: before that, a peer-less view
        #: means "not heard yet", so starting the module waits for it.
        self.peer_known = asyncio.Event()
        if not actor.view.params.peer:
            self.peer_known.set()
        actor.on_step = self._stepped

    @property
    def boot(self) -> str:
        if self.config.boot != "ignore":
            return self.config.boot
        return self.doc.boot or "auto"

    def set_boot(self, value: str) -> None:
        self.doc = self.doc.model_copy(update={"boot": value})
        self.toggles.save(self.doc)

    def checkers_off(self) -> frozenset[str]:
        """Checkers turned off by name (``hamod checker off -c NAME``)."""
        return frozenset(self.doc.checkers_off)

    def set_checker(self, name: str, on: bool) -> None:
        """Turn one checker on or off (persisted); the module-wide toggle is the core's."""
        if self.checks is None or name not in self.checks.names:
            known = ", ".join(self.checks.names) if self.checks is not None else ""
            raise UsageError(f"checker: no checker {name!r} in module {self.actor.name} "
                             f"(checkers: {known or 'none'})")  # fmt: skip
        off = set(self.doc.checkers_off)
        off = off - {name} if on else off | {name}
        self.doc = self.doc.model_copy(update={"checkers_off": tuple(sorted(off))})
        self.toggles.save(self.doc)

    async def peer_decided(self) -> None:
        """Wait (a few seconds at most) until the peer was heard or declared lost."""
        try:
            await asyncio.wait_for(self.peer_known.wait(), PEER_WAIT)
        except TimeoutError:
            p = self.actor.view.params
            raise StateError(
                f"{self.actor.name}: peer {p.peer} not heard yet; it is declared lost "
                f"{p.timeout:g}s after the daemon's start: retry then"
            ) from None

    def resume(self, resumed: Resumed) -> None:
        """Take the module over from a dead daemon: the actor resumes its state and its
        view of the peer as last seen, which counts as known (commands need not wait for
        a heartbeat) until the liveness, started afresh, hears it or declares it lost."""
        self.actor.resume(resumed)
        if resumed.peer is not None:
            self.peer_hash = resumed.peer.config_hash
            self.peer_known.set()

    def canonical(self) -> dict[str, Any]:
        """This node's canonical configuration of the module (the config hash's source)."""
        return canonical_config(self.config, self.cluster)

    def full_hash(self) -> str:
        return config_hash(self.config, self.cluster)

    def should_start(self) -> bool:
        b = self.boot
        return b == "on" or (b == "auto" and self.doc.started)

    def _stepped(self, d: object) -> None:
        started = self.actor.state.state.value != "STOP"
        if started != self.doc.started:
            self.doc = self.doc.model_copy(update={"started": started})
            with contextlib.suppress(HamodError, OSError):
                self.toggles.save(self.doc)

    def notes(self) -> list[str]:
        s, out = self.actor.state, []
        if s.refused:
            peer_hash, diff = self.config_diff
            if diff and peer_hash == self.peer_hash:
                out.append(f"peer refused: {s.refused}; {diff}")
            else:
                mine = self.actor.view.params.config_hash
                out.append(f"peer refused: {s.refused} (config hash ours {mine}, peer "
                           f"{self.peer_hash or '?'})")  # fmt: skip
        if s.two_primaries:
            out.append("TWO PRIMARIES: the peer serves too (cut without arbitrator)")
        if s.split_brain:
            out.append("split brain: both wrote while apart; prim on the node to keep")
        if s.degraded:
            up = ", ".join(sorted(self.actor.view.networks_up)) or "none"
            out.append(f"degraded: heartbeat networks up: {up}")
        if s.wait_reasons:
            out.append("waiting: " + ", ".join(s.wait_reasons))
        return out
