"""``hamod daemon``: load the configuration, run every module of this node, serve the API.

One heartbeat transport carries every module's announcement; each module watches its
peer with its own :class:`~hamod.adapters.heartbeat_liveness.Liveness` (its networks,
its timeout) fed by the transport's authentic heartbeats, and gets a ``Tick`` every
pulse. The ping witness (``witness: ping``) is pinged every pulse and reported on change;
the arbitrator client is shared by the modules. The watchdog is armed every pulse while
a module is primary. The API is served on the Unix socket and, over mutual TLS, on every
address of this node.

Start: a module whose resume marker (``/run/hamod/resume``) is fresh resumes its
state (daemon restart: app and VIP untouched); otherwise it is restored STOP from its
durable record (reboot) and started if ``boot`` says so. SIGTERM/SIGINT: the daemon
exits leaving the applications and VIPs as they are (``hamod service stop`` stops the
modules first).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from hamod.adapters.heartbeat import HeartbeatTransport
from hamod.adapters.heartbeat_config import Endpoint, HeartbeatConfig, HeartbeatNetwork
from hamod.adapters.heartbeat_liveness import (
    HeartbeatReceived,
    Liveness,
    NetworkAlive,
    NetworkSilent,
    Observation,
    PeerFound,
    PeerLost,
    PeerRestarted,
)
from hamod.adapters.icmp import any_reachable
from hamod.adapters.pki import read_cluster_key
from hamod.api.app import create_app
from hamod.api.serve import ApiServer, TlsFiles, start_tls, start_unix
from hamod.checkers.resources import ResourceStore
from hamod.config import ModuleConfig
from hamod.core import events as ev
from hamod.core.model import ModuleState, View, announcement, initial, restore
from hamod.core.resume import resume
from hamod.errors import HamodError
from hamod.proto import ModuleAnnouncement
from hamod.replication.dpconfig import dp_config
from hamod.runtime import peerconfig
from hamod.runtime.announce import from_wire, to_wire
from hamod.runtime.backend import DaemonBackend
from hamod.runtime.checks import ApiAccess, ModuleChecks, resolve_vip_interface
from hamod.runtime.datapath import NullDataPath
from hamod.runtime.dpclient import ProcessDataPath
from hamod.runtime.logs import ModuleLog
from hamod.runtime.module import ModuleActor, Ports
from hamod.runtime.params import Loaded, heartbeat_networks, load_all, params_for
from hamod.runtime.paths import Paths
from hamod.runtime.ports import DataPath, Vips
from hamod.runtime.real import (
    FileMarkers,
    FileStore,
    FileToggles,
    RealScripts,
    RealVips,
    RealWatchdog,
    RealWitness,
    ScriptRuns,
    SystemClock,
)
from hamod.runtime.runner import ModuleRunner, net_up, set_view
from hamod.watchdog.client import WatchdogClient
from hamod.witness.client import WitnessClient

log = logging.getLogger(__name__)
VipFactory = Callable[[ModuleConfig], Vips]
#: Fetching a mismatching peer's configuration: tries, and seconds between them.
FETCH_TRIES = 3
FETCH_RETRY = 1.0


class Daemon:
    """Everything ``hamod daemon`` runs. ``vips``: a VIP factory (tests pass fakes)."""

    def __init__(self, paths: Paths, node: str | None = None, *, watchdog: bool = True,
                 vips: VipFactory | None = None, api_tls: bool = True) -> None:  # fmt: skip
        self.paths = paths
        self.loaded: Loaded = load_all(paths, node)
        self.node = self.loaded.node
        self.clock = SystemClock()
        self.use_watchdog = watchdog
        self.vip_factory: VipFactory = vips or (lambda m: RealVips(m))
        #: The interface of a VIP with ``interface: auto`` (for its automatic checker).
        self.resolve_interface: Callable[[str], str | None] = resolve_vip_interface
        self.api_tls = api_tls
        self.runners: dict[str, ModuleRunner] = {}
        self.transport: HeartbeatTransport | None = None
        self.witness: WitnessClient | None = None
        self.servers: list[ApiServer] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._stop = asyncio.Event()
        self._actor_slots: dict[str, list[ModuleActor]] = {}

    # --- building ---------------------------------------------------------------------

    def _key(self) -> bytes:
        return read_cluster_key(Path(str(self.loaded.cluster.key)))

    def _build(self) -> None:
        cluster, me = self.loaded.cluster, self.node
        wd = WatchdogClient(self.paths.watchdog_socket) if self.use_watchdog else None
        if cluster.witness is not None and cluster.witness.arbitrator is not None:
            a = cluster.witness.arbitrator
            self.witness = WitnessClient(str(a.address), a.port, {cluster.cluster: self._key()})
        for mod in self.loaded.modules:
            params = params_for(mod, cluster, me)
            nets = frozenset(heartbeat_networks(mod, cluster))
            view = View(params, None, True, frozenset(), nets)
            runs = ScriptRuns(self.paths.script_runs_file(mod.module))
            scripts = RealScripts(self.paths, mod, runs)
            witness = None
            if self.witness is not None:
                timeout = min(params.lease / 2, max(2 * params.pulse, 1.0))
                witness = RealWitness(self.witness, cluster.cluster, mod.module, me,
                                      params.lease, timeout)  # fmt: skip
            ports = Ports(
                clock=self.clock,
                scripts=scripts,
                vips=self.vip_factory(mod),
                store=FileStore(self.paths.status_file(mod.module)),
                markers=FileMarkers(self.paths.resume_marker(mod.module)),
                witness=witness,
                watchdog=RealWatchdog(wd, self.paths, mod, scripts) if wd else None,
            )
            mlog = ModuleLog(mod.module, self.paths.module_log(mod.module))
            durable = ports.store.load()
            state = restore(params, durable) if durable else initial(params)
            actor = ModuleActor(mod.module, view, state, ports, mlog, self._datapath(mod))
            peers = {params.peer: sorted(nets)} if params.peer else {}
            live = Liveness(peers or {"-": ["-"]}, params.timeout, self.clock.now())
            toggles = FileToggles(self.paths.toggles_file(mod.module))
            self._actor_slots.get(mod.module, []).append(actor)
            runner = ModuleRunner(mod, actor, mlog, live, toggles, cluster)
            runner.checks = ModuleChecks(
                mod, actor, mlog, ResourceStore(self.paths.resources_dir(mod.module)),
                ApiAccess(self.paths.api_socket, cluster), disabled=runner.checkers_off,
                resolve=self.resolve_interface, runs=runs.last,
            )  # fmt: skip
            self.runners[mod.module] = runner

    def _datapath(self, mod: ModuleConfig) -> Callable[[Callable[[ev.Event], None]], DataPath]:
        """The module's data path: the data-path process when it replicates directories."""
        if mod.replication is None or not mod.replication.directories:
            return NullDataPath
        cfg = dp_config(mod, self.loaded.cluster, self.node, self.paths)
        holder: list[ModuleActor] = []

        def make(post: Callable[[ev.Event], None]) -> DataPath:
            return ProcessDataPath(post, cfg, self.paths, lambda: holder[0].state)

        self._actor_slots[mod.module] = holder
        return make

    def _heartbeat_config(self) -> HeartbeatConfig | None:
        cluster, me = self.loaded.cluster, self.node
        used = sorted({n for r in self.runners.values() for n in r.actor.view.networks})
        mine = cluster.node(me)
        assert mine is not None
        port = cluster.heartbeat_port
        nets = []
        for name in used:
            if name not in mine.addresses:
                continue
            peers = {n.name: Endpoint(str(n.addresses[name]), port) for n in cluster.nodes
                     if n.name != me and name in n.addresses}  # fmt: skip
            if peers:
                nets.append(
                    HeartbeatNetwork(name, Endpoint(str(mine.addresses[name]), port), peers)
                )
        if not nets:
            return None
        pulses = [r.actor.view.params.pulse for r in self.runners.values()]
        timeouts = [r.actor.view.params.timeout for r in self.runners.values()]
        return HeartbeatConfig(cluster.cluster, me, self._key(), tuple(nets), min(pulses),
                               max(max(timeouts), 2 * min(pulses)))  # fmt: skip

    # --- heartbeats -------------------------------------------------------------------

    def _announcements(self) -> list[ModuleAnnouncement]:
        now = self.clock.now()
        out = []
        for name, r in self.runners.items():
            a = r.actor
            mine = announcement(a.view.params, a.state, now)
            peer_cur = a.view.peer.data.current if a.view.peer else None
            out.append(to_wire(name, mine, a.state, now, peer_cur))
        return out

    def _sink(self, o: Observation) -> None:
        if isinstance(o, PeerRestarted):
            for r in self.runners.values():
                if r.actor.view.params.peer == o.peer:
                    r.mlog.info(f"peer {o.peer} restarted (new daemon incarnation)")
            return
        if not isinstance(o, HeartbeatReceived):
            return
        hb = o.heartbeat
        for name, r in self.runners.items():
            p = r.actor.view.params
            if p.peer != o.peer or o.network not in r.actor.view.networks:
                continue
            for obs in r.liveness.heard(o.peer, o.network, self.clock.now()):
                self._liveness_event(r, obs)
            r.peer_known.set()
            ann = next((m for m in hb.modules if m.name == name), None)
            if ann is None:
                continue
            pv = from_wire(o.peer, ann, r.actor.state, hb.version)
            if pv.config_hash != p.config_hash and pv.config_hash != r.peer_hash:
                # once per mismatching hash: name the differing fields (or say why not)
                self._spawn(self._explain_mismatch(r, o.peer, pv.config_hash))
            r.peer_hash = pv.config_hash
            if pv != r.actor.view.peer:
                r.actor.datapath.peer_changed(pv)
                r.actor.post(ev.PeerAnnounced(), set_view(peer=pv))

    def _liveness_event(self, r: ModuleRunner, o: Observation) -> None:
        a = r.actor
        if isinstance(o, PeerLost):
            r.peer_known.set()
            r.mlog.warning(f"peer {o.peer} lost: every heartbeat network silent")
            a.datapath.peer_changed(None)
            a.post(ev.PeerLost(), lambda v: replace(v, peer=None, networks_up=frozenset()))
        elif isinstance(o, PeerFound):
            r.mlog.info(f"peer {o.peer} heard")
        elif isinstance(o, NetworkSilent):
            others = r.liveness.snapshot(o.peer, self.clock.now()).alive - {o.network}
            r.mlog.warning(f"heartbeat network {o.network} silent")
            if others:  # one network down while another works: degraded, no failover
                a.post(ev.NetworkSilent(o.network), net_up(o.network, False))
            # the last one: PeerLost follows (and clears networks_up)
        elif isinstance(o, NetworkAlive):
            a.post(ev.NetworkBack(o.network), net_up(o.network, True))

    async def _explain_mismatch(self, r: ModuleRunner, peer: str, peer_hash: str) -> None:
        """The peer announces another config hash: fetch its configuration over the
        mutual-TLS API (a few tries: its API starts just after its heartbeats) and log,
        once, the fields that differ; ``state`` shows them while the peer is refused. If
        it cannot be fetched, the log names both hashes and why."""
        p = r.actor.view.params
        timeout = min(5.0, max(1.0, p.timeout))
        error: HamodError | None = None
        for attempt in range(FETCH_TRIES):
            if attempt:
                await asyncio.sleep(FETCH_RETRY)
            if r.peer_hash != peer_hash:
                return  # the peer's configuration changed meanwhile: that one is explained
            try:
                dump = await peerconfig.fetch(self.loaded.cluster, peer, r.config.module,
                                              sorted(r.actor.view.networks), timeout)  # fmt: skip
            except HamodError as exc:
                error = exc
                continue
            diff = peerconfig.explain(r.canonical(), dump.config, peer)
            r.config_diff = (peer_hash, diff)
            r.mlog.error(f"configuration differs from {peer}'s: {diff}; fix the module or "
                         f"cluster files (hamod config check)")  # fmt: skip
            return
        why = f"{peer}'s configuration could not be fetched to name the differing fields: {error}"
        r.config_diff = (peer_hash, why)
        r.mlog.error(f"config hash differs from {peer}'s: ours {p.config_hash}, {peer}'s "
                     f"{peer_hash}; {why}; compare the module and cluster files "
                     f"(hamod config check)")  # fmt: skip

    # --- loops ------------------------------------------------------------------------

    async def _pulse(self, r: ModuleRunner) -> None:
        pulse = r.actor.view.params.pulse
        while True:
            await asyncio.sleep(pulse)
            if r.actor.view.params.peer:
                for obs in r.liveness.tick(self.clock.now()):
                    self._liveness_event(r, obs)
            r.actor.post(ev.Tick())

    async def _ping_witness(self, addrs: tuple[str, ...], interval: float) -> None:
        last: bool | None = None
        while True:
            try:
                verdict = await any_reachable(addrs, timeout=max(interval, 0.3))
                ok = verdict.reachable
            except HamodError as exc:
                log.warning("ping witness: %s", exc)
                ok = False
            if ok != last:
                last = ok
                for r in self.runners.values():
                    r.mlog.info(f"ping witness {'reachable' if ok else 'UNREACHABLE'}")
                    r.actor.post(ev.WitnessVerdict(ok), set_view(witness_ok=ok))
            await asyncio.sleep(interval)

    # --- start / stop -----------------------------------------------------------------

    def _start_module(self, r: ModuleRunner) -> None:
        a, p = r.actor, r.actor.view.params
        now = self.clock.now()
        marker = a.ports.markers.load()
        fresh = (
            marker is not None
            and marker.config_hash == p.config_hash
            and 0 <= now - marker.at < p.timeout
        )
        if marker is not None and fresh:
            r.resume(resume(p, marker.state, now, marker.peer))
            return
        if marker is not None:
            a.log.info("resume marker too old or for another configuration: restart from STOP")
        a.ports.markers.clear()
        a.log.info(f"daemon started: {a.state.state.value} (boot {r.boot})")
        self._spawn(self._cleanup_and_boot(r))

    async def _cleanup_and_boot(self, r: ModuleRunner) -> None:
        a = r.actor
        try:
            if await a.ports.vips.ensure(False):
                a.log.warning("VIP removed at start: this node is not primary")
        except HamodError as exc:
            a.log.error(f"VIP cleanup at start failed: {exc}")
        if r.should_start():
            await asyncio.sleep(float(r.config.boot_delay))
            await r.peer_known.wait()
            d = await a.command(ev.On.START)
            a.log.info(f"boot: start: {d.reason}")

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        self._tasks.append(asyncio.ensure_future(coro))

    async def start(self) -> None:
        """Build everything and start the loops and servers."""
        self._build()
        for r in self.runners.values():
            self._spawn(r.actor.run())
        hb = self._heartbeat_config() if self.runners else None
        if hb is not None:
            self.transport = HeartbeatTransport(hb, self._announcements, self._sink)
            await self.transport.start()
        for r in self.runners.values():
            self._start_module(r)
            self._spawn(self._pulse(r))
            if r.checks is not None:
                r.checks.start()
        cluster = self.loaded.cluster
        if cluster.witness is not None and cluster.witness.ping and self.runners:
            pulses = min(r.actor.view.params.pulse for r in self.runners.values())
            addrs = tuple(str(a) for a in cluster.witness.ping)
            self._spawn(self._ping_witness(addrs, max(pulses, 0.2)))
        await self._start_api()
        log.info("hamod daemon: node %s, modules: %s", self.node, ", ".join(self.runners) or "none")

    async def _start_api(self) -> None:
        backend = DaemonBackend(self.node, lambda: self.runners)
        app = create_app(backend)
        self.servers.append(await start_unix(app, self.paths.api_socket))
        if not self.api_tls:
            return
        cluster = self.loaded.cluster
        tls = TlsFiles(Path(str(cluster.tls.ca)), Path(str(cluster.tls.cert)),
                       Path(str(cluster.tls.key)))  # fmt: skip
        if not all(p.exists() for p in (tls.ca, tls.cert, tls.key)):
            log.warning("API over TLS not served: missing %s, %s or %s", tls.ca, tls.cert, tls.key)
            return
        mine = cluster.node(self.node)
        assert mine is not None
        for addr in sorted({str(a) for a in mine.addresses.values()}):
            try:
                self.servers.append(await start_tls(app, addr, cluster.api_port, tls))
            except HamodError as exc:
                log.error("API over TLS on %s: %s", addr, exc)

    async def stop(self) -> None:
        """Stop everything (applications and VIPs are left as they are)."""
        for s in self.servers:
            with contextlib.suppress(Exception):
                await s.stop(grace=1.0)
        self.servers.clear()
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._tasks.clear()
        for r in self.runners.values():
            if r.checks is not None:
                await r.checks.stop()
            await r.actor.stop()
        if self.transport is not None:
            await self.transport.stop()
        if self.witness is not None:
            self.witness.close()

    def request_stop(self) -> None:
        self._stop.set()

    async def serve(self) -> None:
        """Run until SIGTERM/SIGINT."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        await self.start()
        try:
            await self._stop.wait()
        finally:
            log.info("hamod daemon: stopping (applications and VIPs left as they are)")
            await self.stop()


def run(paths: Paths, node: str | None = None, watchdog: bool = True) -> int:
    """The ``hamod daemon`` process."""
    started = time.monotonic()
    daemon = Daemon(paths, node, watchdog=watchdog)
    asyncio.run(daemon.serve())
    log.info("hamod daemon: stopped after %.0fs", time.monotonic() - started)
    return 0


def runners_of(d: Daemon) -> Mapping[str, ModuleState]:
    """Each module's state (tests)."""
    return {n: r.actor.state for n, r in d.runners.items()}
