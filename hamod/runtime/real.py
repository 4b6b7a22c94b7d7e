"""The real implementations of the runtime's ports (:mod:`hamod.runtime.ports`), thin
wrappers over the adapters: monotonic clock and loop timers, the script runner, the VIP
manager with gratuitous ARP / unsolicited NA, the arbitrator client, the watchdog client,
the durable status store, and the resume marker on ``/run`` (tmpfs).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, JsonValue

from hamod.adapters.announce import announce
from hamod.adapters.scripts import Action, ScriptEnvironment, ScriptRunner, Transition
from hamod.adapters.store import DurableStore
from hamod.adapters.vip import VipManager
from hamod.config import ModuleConfig
from hamod.core.model import Durable, ModuleState, PeerView
from hamod.runtime import codec
from hamod.runtime.paths import Paths
from hamod.runtime.ports import LeaseAnswer, Marker, ScriptOutcome, TimerHandle
from hamod.watchdog.client import WatchdogClient
from hamod.watchdog.messages import StopEnv, StopSpec, VipRef
from hamod.witness.client import WitnessClient

log = logging.getLogger(__name__)
STATUS_FORMAT = 1
MARKER_FORMAT = 1


class SystemClock:
    """CLOCK_MONOTONIC and the running loop's timers."""

    def now(self) -> float:
        return time.monotonic()

    def call_at(self, at: float, fn: Callable[[], None]) -> TimerHandle:
        loop = asyncio.get_running_loop()
        return loop.call_later(max(0.0, at - time.monotonic()), fn)


def script_environment(paths: Paths, module: str) -> ScriptEnvironment:
    """Directories every script of ``module`` sees (SafeKit's SAFE* names too)."""
    exe = Path(sys.executable)
    return ScriptEnvironment(
        home=exe.parent.parent,
        bin=exe.parent,
        var=paths.var,
        user_var=paths.module_var(module),
        user_conf=paths.modules_dir / module,
        user_vars={"HAMOD_LOG": str(paths.module_log(module))},
    )


class ScriptRun(BaseModel):
    """A successful run of a start script: its marker and session (what it left running
    is the application a ``process`` checker with ``script`` watches)."""

    model_config = ConfigDict(frozen=True)
    run_id: str
    session: int


class ScriptRunsDoc(BaseModel):
    model_config = ConfigDict(frozen=True)
    runs: dict[str, ScriptRun] = {}


class ScriptRuns:
    """The last successful run of each start script, kept across daemon restarts (the
    application it started outlives the daemon)."""

    WATCHED = frozenset({"start_prim", "start_second", "start_both"})

    def __init__(self, path: Path) -> None:
        self.store = DurableStore(path, ScriptRunsDoc, 1, notify=log.warning)
        self._doc: ScriptRunsDoc | None = None

    def _load(self) -> ScriptRunsDoc:
        if self._doc is None:
            try:
                self._doc = self.store.load() or ScriptRunsDoc()
            except Exception as exc:  # unreadable: as if never run (the checker says so)
                log.warning("script runs %s: %s", self.store.path, exc)
                self._doc = ScriptRunsDoc()
        return self._doc

    def last(self, script: str) -> tuple[str, int] | None:
        run = self._load().runs.get(script)
        return (run.run_id, run.session) if run is not None else None

    def record(self, script: str, run_id: str, session: int) -> None:
        runs = {**self._load().runs, script: ScriptRun(run_id=run_id, session=session)}
        self._doc = ScriptRunsDoc(runs=runs)
        try:
            self.store.save(self._doc)
        except Exception as exc:
            log.warning("script runs %s: not saved: %s", self.store.path, exc)


class RealScripts:
    """Runs the module's scripts with the configured stop timeouts; remembers the last
    successful run of each start script in ``runs``."""

    def __init__(self, paths: Paths, module: ModuleConfig, runs: ScriptRuns | None = None) -> None:
        self.runs = runs
        name = module.module
        bin_dir = Path(str(module.scripts.resolved_directory(name)))
        if module.scripts.directory is None:
            bin_dir = paths.modules_dir / name / "scripts"
        self.bin_dir = bin_dir
        self.runner = ScriptRunner(
            name, bin_dir, paths.script_log_dir(name), script_environment(paths, name)
        )
        self.nice = float(module.scripts.stop_timeout.nice)
        self.force = float(module.scripts.stop_timeout.force)

    async def run(self, script: str, cur: str, nxt: str, verb: str, force: bool) -> ScriptOutcome:
        res = await self.runner.run(
            script,
            Transition(cur, nxt, Action(verb)),
            nice_timeout=self.nice,
            force_timeout=self.force,
            force=force,
        )
        if (
            self.runs is not None
            and res.outcome == "ok"
            and res.session is not None
            and script in ScriptRuns.WATCHED
        ):
            self.runs.record(script, res.run_id, res.session)
        return ScriptOutcome(
            res.succeeded, res.outcome == "timeout", f"{res.outcome}: {res.detail}"
        )


class RealVips:
    """The module's VIPs through pyroute2 (in a thread), announced when added."""

    def __init__(self, module: ModuleConfig, netns: str | None = None) -> None:
        self.module = module
        self.netns = netns
        self._mgr: VipManager | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def _manager(self) -> VipManager:
        if self._mgr is None:
            self._mgr = VipManager(self.netns)
        return self._mgr

    def _apply(self, present: bool) -> list[tuple[str, str]]:
        mgr, changed = self._manager(), []
        for vip in self.module.vips:
            if present:
                if mgr.ensure_present(str(vip.addr), None, vip.interface):
                    found = mgr.find(str(vip.addr))
                    changed.append((str(vip.addr), found.interface if found else vip.interface))
            elif mgr.ensure_absent(str(vip.addr)):
                changed.append((str(vip.addr), ""))
        return changed

    async def ensure(self, present: bool) -> bool:
        changed = await asyncio.to_thread(self._apply, present)
        if present:
            for addr, interface in changed:
                vip = next(v for v in self.module.vips if str(v.addr) == addr)
                if vip.announce.count > 0:
                    count, gap = vip.announce.count, float(vip.announce.interval)
                    task = asyncio.ensure_future(self._announce(addr, interface, count, gap))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
        return bool(changed)

    async def _announce(self, addr: str, interface: str, count: int, interval: float) -> None:
        try:
            await announce(addr, interface, netns=self.netns, count=count, interval=interval)
        except Exception as exc:
            log.warning("VIP %s: announce failed: %s", addr, exc)


class RealWitness:
    """The arbitrator for one module of this node (one client per daemon, shared)."""

    def __init__(
        self, client: WitnessClient, cluster: str, module: str, node: str, lease: float,
        timeout: float,
    ) -> None:  # fmt: skip
        self.client, self.cluster, self.module, self.node = client, cluster, module, node
        self.lease, self.timeout = lease, timeout

    async def request(self, term: int) -> LeaseAnswer | None:
        r = await self.client.request_lease(
            self.cluster, self.module, self.node, term, self.lease, self.timeout
        )
        if r is None:
            return None
        return LeaseAnswer(r.granted, r.term, r.holder, r.lease_end)

    async def release(self, term: int) -> None:
        await self.client.release(self.cluster, self.module, self.node, term, self.timeout)


class RealWatchdog:
    """Arms the watchdog with what it needs to fence this module (VIPs, stop_prim)."""

    def __init__(
        self, client: WatchdogClient, paths: Paths, module: ModuleConfig, scripts: RealScripts
    ) -> None:
        env = script_environment(paths, module.module)
        self.client, self.module = client, module.module
        self.vips = tuple(VipRef(addr=str(v.addr)) for v in module.vips)
        self.spec = {
            "bin_dir": str(scripts.bin_dir),
            "log_dir": str(paths.script_log_dir(module.module)),
            "nice_timeout": max(scripts.nice, 0.001),
            "force_timeout": scripts.force,
            "env": StopEnv(
                home=str(env.home), bin=str(env.bin), var=str(env.var),
                user_var=str(env.user_var), user_conf=str(env.user_conf),
                user_vars=dict(env.user_vars),
            ),
        }  # fmt: skip

    def arm(self, deadline: float, state: str) -> bool:
        st: Literal["PRIM", "ALONE"] = "ALONE" if state == "ALONE" else "PRIM"
        spec = StopSpec(state=st, **self.spec)  # type: ignore[arg-type]
        return self.client.arm(self.module, deadline, self.vips, spec)

    def disarm(self) -> bool:
        return self.client.disarm(self.module)


class StatusDoc(BaseModel):
    """The status store's document: the core's ``Durable``, as JSON."""

    model_config = ConfigDict(frozen=True)
    durable: JsonValue


class FileStore:
    """The module's durable status in ``/var/lib/hamod/<module>/status.json``."""

    def __init__(self, path: Path) -> None:
        self.store = DurableStore(path, StatusDoc, STATUS_FORMAT, notify=log.warning)

    def load(self) -> Durable | None:
        doc = self.store.load()
        return None if doc is None else codec.decode(Durable, doc.durable, "durable")

    def save(self, durable: Durable) -> None:
        self.store.save(StatusDoc(durable=codec.encode(durable)))


class TogglesDoc(BaseModel):
    """Runtime toggles kept across restarts: ``boot`` as set by ``hamod boot``, whether
    the module was started (for ``boot: auto``), and the checkers turned off by name."""

    model_config = ConfigDict(frozen=True)
    boot: Literal["on", "off", "auto"] | None = None
    started: bool = False
    #: Checkers turned off one by one (``hamod checker off -c NAME``).
    checkers_off: tuple[str, ...] = ()


class FileToggles:
    def __init__(self, path: Path) -> None:
        self.store = DurableStore(path, TogglesDoc, 1, notify=log.warning)

    def load(self) -> TogglesDoc:
        return self.store.load() or TogglesDoc()

    def save(self, doc: TogglesDoc) -> None:
        self.store.save(doc)


class FileMarkers:
    """The resume marker (a tmpfs file: no fsync, gone at reboot)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> Marker | None:
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
            if doc.get("format") != MARKER_FORMAT:
                return None
            state = codec.decode(ModuleState, doc["state"], "state")
            raw = doc.get("peer")  # absent in markers of older daemons: no peer
            peer = None if raw is None else codec.decode(PeerView, raw, "peer")
            return Marker(state, float(doc["at"]), str(doc["config_hash"]), peer)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("resume marker %s unusable: %s", self.path, exc)
            return None

    def save(self, marker: Marker) -> None:
        doc = {
            "format": MARKER_FORMAT,
            "at": marker.at,
            "config_hash": marker.config_hash,
            "state": codec.encode(marker.state),
            "peer": None if marker.peer is None else codec.encode(marker.peer),
        }
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text(json.dumps(doc), encoding="utf-8")
        os.replace(tmp, self.path)

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)
