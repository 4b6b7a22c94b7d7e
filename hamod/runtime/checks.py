"""The checkers of one module as the daemon runs them (issue #5).

:class:`ModuleChecks` owns the module's :class:`~hamod.checkers.runner.CheckerRunner`:

- **which checkers**: those of the module file, plus, for every VIP with ``check: on``,
  an automatic ``vip`` checker (action ``stopstart``, on the primary) and an automatic
  ``interface`` checker on the VIP's interface (action ``wait``, on both nodes) — unless
  the module file declares one of that type already (for that interface);
- **when they run** (the runner's filter): only in a READY phase (never during a
  transition), in the states of their ``when``, while their toggle is on (``errd`` for
  process checkers, ``checker`` for the others, and the per-checker ``checker off -c``);
  a checker that put the module in WAIT keeps running there, so that its recovery
  clears the wait;
- **where results go**: each change of health is the core's ``CheckerResult`` event on
  the actor's queue and one line in the module log (so an ``unknown`` is logged once);
- **what probes need**: the module's VIPs and a VIP adapter, the module's resource store
  (``hamod set -r``), and API clients (local socket, or mutual TLS to a peer) for
  ``module`` checkers.

Decisions stay in the core: this module only filters, forwards and reports.
"""

from __future__ import annotations

import concurrent.futures
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hamod.checkers.probes import ProbeContext
from hamod.checkers.resources import ResourceStore
from hamod.checkers.runner import CheckerRunner, LastResult
from hamod.config import ClusterConfig, ModuleConfig
from hamod.config.checkers import Checker, InterfaceChecker, ProcessChecker, VipChecker
from hamod.core.events import CheckerResult, Health
from hamod.core.model import Phase, State
from hamod.errors import HamodError, UsageError
from hamod.runtime.logs import ModuleLog

if TYPE_CHECKING:
    from hamod.cli.client import Client
    from hamod.core.machine import Decision
    from hamod.runtime.module import ModuleActor

__all__ = ["AUTO_INTERFACE_WHEN", "ModuleChecks", "auto_checkers", "resource_name"]

log = logging.getLogger(__name__)

#: Where the automatic interface checker runs: both roles of a mirror, UP in a farm.
AUTO_INTERFACE_WHEN = {"mirror": ("PRIM", "ALONE", "SECOND"), "farm": ("UP",)}
#: Probe period and timeout of the automatic checkers.
AUTO_INTERVAL = "3s"
AUTO_TIMEOUT = "2s"


def resource_name(cfg: Checker) -> str:
    """The resource a checker's health is published as: ``<type>.<name>``."""
    return f"{cfg.type}.{cfg.name}"


def _free(name: str, taken: set[str]) -> str:
    out, i = name, 2
    while out in taken:
        out, i = f"{name}-{i}", i + 1
    return out


def auto_checkers(mod: ModuleConfig, resolve: Callable[[str], str | None]) -> tuple[Checker, ...]:
    """The checkers a VIP with ``check: on`` implies. ``resolve(addr)`` names the
    interface carrying the VIP (None: unknown here, no interface checker)."""
    checked = [v for v in mod.vips if v.check]
    if not checked:
        return ()
    declared = mod.checkers
    taken = {c.name for c in declared}
    out: list[Checker] = []
    when = AUTO_INTERFACE_WHEN["farm" if mod.mode == "farm" else "mirror"]
    running = ("UP",) if mod.mode == "farm" else ("PRIM", "ALONE")
    if not any(isinstance(c, VipChecker) for c in declared):
        name = _free("vip", taken)
        taken.add(name)
        out.append(VipChecker.model_validate({
            "type": "vip", "name": name, "interval": AUTO_INTERVAL, "timeout": AUTO_TIMEOUT,
            "when": list(running), "action": "stopstart",
        }))  # fmt: skip
    watched = {c.interface for c in declared if isinstance(c, InterfaceChecker)}
    for vip in checked:
        interface = vip.interface if vip.interface != "auto" else resolve(str(vip.addr))
        if interface is None or interface in watched:
            continue
        watched.add(interface)
        name = _free(f"intf-{interface}".lower()[:32], taken)
        taken.add(name)
        out.append(InterfaceChecker.model_validate({
            "type": "interface", "name": name, "interface": interface,
            "interval": AUTO_INTERVAL, "timeout": AUTO_TIMEOUT, "when": list(when),
            "action": "wait",
        }))  # fmt: skip
    return tuple(out)


def resolve_vip_interface(addr: str) -> str | None:
    """The interface holding an address in ``addr``'s subnet here (None if none)."""
    from hamod.adapters.vip import VipManager

    def look() -> str:
        with VipManager() as mgr:
            return mgr.resolve_interface(addr)[0]

    # pyroute2's synchronous API cannot run inside the daemon's event loop: a thread
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        try:
            return pool.submit(look).result(timeout=10)
        except (HamodError, OSError, TimeoutError) as exc:
            log.warning("VIP %s: no interface found for its automatic checker: %s", addr, exc)
            return None


@dataclass(frozen=True)
class ApiAccess:
    """How ``module`` checkers reach an API: the local socket, or a peer over mTLS."""

    socket: Path
    cluster: ClusterConfig | None

    def client(self, node: str | None) -> Client:
        from hamod.cli.client import Client

        if node is None or self.cluster is None:
            return Client.local(self.socket)
        peer = self.cluster.node(node)
        if peer is None:
            raise UsageError(f"node: {node!r} is not a node of the cluster file")
        tls = self.cluster.tls
        addr = str(next(iter(peer.addresses.values())))
        return Client.remote(addr, self.cluster.api_port, Path(str(tls.ca)),
                             Path(str(tls.cert)), Path(str(tls.key)), node=node,
                             server_name=node)  # fmt: skip


class ModuleChecks:
    """The checkers of one module: start/stop with the daemon, results to its actor."""

    def __init__(
        self,
        mod: ModuleConfig,
        actor: ModuleActor,
        mlog: ModuleLog,
        resources: ResourceStore,
        api: ApiAccess,
        *,
        disabled: Callable[[], frozenset[str]] = frozenset,
        resolve: Callable[[str], str | None] = resolve_vip_interface,
        vip_adapter: Callable[[], object] | None = None,
        runs: Callable[[str], tuple[str, int] | None] | None = None,
    ) -> None:
        self.actor = actor
        self.mlog = mlog
        self.resources = resources
        self._disabled = disabled
        self.checkers: tuple[Checker, ...] = (*mod.checkers, *auto_checkers(mod, resolve))
        ctx = ProbeContext(
            vips=tuple(str(v.addr) for v in mod.vips),
            vip=vip_adapter or _vip_manager,  # type: ignore[arg-type]
            resources=resources,
            client=api.client,
            runs=runs,
        )
        self.runner = CheckerRunner(self.checkers, self._sink, should_run=self.should_run, ctx=ctx)
        self._phase = actor.state.phase
        previous = actor.on_step

        def stepped(d: Decision) -> None:
            if previous is not None:
                previous(d)
            self._stepped(d)

        actor.on_step = stepped

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.checkers)

    def should_run(self, cfg: Checker) -> bool:
        """The runner's filter (see the module docstring)."""
        s = self.actor.state
        enabled = s.errd if isinstance(cfg, ProcessChecker) else s.checkers
        if not enabled or cfg.name in self._disabled():
            return False
        if s.state is State.WAIT and f"checker:{cfg.name}" in s.wait_reasons:
            return s.phase is not Phase.TRANSIENT
        return s.phase is Phase.READY and s.state.value in cfg.when

    def _stepped(self, d: Decision) -> None:
        """At the end of a transition (phase back to READY), forget the checkers
        reported down: one still failing is reported again, so that its action is
        applied again (a restart that did not cure it: again, until ``maxloop``), and a
        down result the core ignored during the transition is not lost."""
        was, self._phase = self._phase, d.state.phase
        if d.state.phase is Phase.READY and was is not Phase.READY:
            for last in self.runner.results():
                if last.reported is Health.DOWN:
                    self.runner.reset(last.name)

    def _sink(self, result: CheckerResult) -> None:
        cfg = next(c for c in self.checkers if c.name == result.name)
        detail = self.runner.result(result.name).reason
        what = f"checker {cfg.type} {cfg.name}"
        if result.health is Health.DOWN:
            self.mlog.warning(f"{what}: down (action {result.action.value}): {detail}")
        elif result.health is Health.UNKNOWN:
            self.mlog.warning(f"{what}: unknown, no action: {detail}")
        else:
            self.mlog.info(f"{what}: up: {detail}")
        self.actor.post(result)

    def start(self) -> None:
        if self.checkers:
            # httpx logs every request at INFO: one daemon.log (and syslog) line per
            # http or module probe, every interval, otherwise
            logging.getLogger("httpx").setLevel(logging.WARNING)
            self.runner.start()

    async def stop(self) -> None:
        await self.runner.stop()

    def results(self) -> tuple[tuple[Checker, LastResult], ...]:
        """Each checker with its last probe, in order (``state -v``)."""
        return tuple((c, self.runner.result(c.name)) for c in self.checkers)

    def resource_values(self) -> dict[str, str]:
        """``<type>.<name>`` → last health of every checker, and every stored resource
        (``custom.<name>`` set by ``hamod set -r``): what ``hamod get -r`` reads."""
        out = {resource_name(c): r.health.value for c, r in self.results()}
        try:
            for name in self.resources.names():
                value = self.resources.get(name)
                if value is not None:
                    out[name] = value
        except HamodError as exc:
            log.warning("%s: resources: %s", self.actor.name, exc)
        return out


def _vip_manager() -> object:
    from hamod.adapters.vip import VipManager

    return VipManager()
