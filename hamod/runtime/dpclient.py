"""The daemon's side of a replicated module's data path: :class:`ProcessDataPath`.

Implements the :class:`~hamod.runtime.ports.DataPath` port by talking to the module's
data-path process (:mod:`hamod.replication.process`) on its control socket, starting it
(detached, its own session: a daemon restart leaves it and its mounts alone) when it is
not running. ``ensure_role`` is awaited by the actor: the application's start script
runs only once the read-write mount is in place. The process's events become core
events: ``link_lost`` → LinkLost, ``mirroring`` → MirrorUp (with the primary's data
and term as last announced), ``resync_*`` → ResyncProgress/Done/Failed, ``failed`` →
DataPathFailed.

``mirroring`` is said once per replication session. While the core awaits the mirror
(``tick(waiting)``) and the peer announces PRIM without this side knowing the session
mirrors — a daemon restarted after the event was sent, or a stale SECOND heartbeat that
cleared it — the process's ``status`` is asked at the pulse: it keeps the session's
record (the primary's generation, since when). MirrorUp is reported only when that
generation is the one the PRIM announces (a primary of the previous version does not
say it: then any), and an answer overtaken by a new session (or a role change, a
resync asked) is not taken. Every few pulses a ``probe`` checks the mounts answer; a probe without
answer in time means a hung data path: its FUSE connections are aborted from here
(applications get errors instead of hanging) and DataPathFailed is posted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from hamod.core.actions import Role, StartResync
from hamod.core.events import (
    DataPathFailed,
    Event,
    LinkLost,
    MirrorUp,
    ResyncDone,
    ResyncFailed,
    ResyncProgress,
)
from hamod.core.model import Generation, ModuleState, PeerView, State
from hamod.datapath import mount
from hamod.errors import AdapterError, HamodError
from hamod.replication.dpconfig import DpConfig
from hamod.runtime.codec import decode, encode
from hamod.runtime.paths import Paths

log = logging.getLogger(__name__)

PROBE_EVERY = 5.0
PROBE_TIMEOUT = 5.0
START_TIMEOUT = 15.0


class ProcessDataPath:
    """See the module docstring."""

    def __init__(
        self,
        post: Callable[[Event], None],
        cfg: DpConfig,
        paths: Paths,
        state: Callable[[], ModuleState],
    ) -> None:
        self._post = post
        self.cfg = cfg
        self.paths = paths
        self._state = state
        self.role = Role.OFF
        self._peer: PeerView | None = None
        self._second: bool | None = None
        self._mirroring = False
        #: the generation the primary said it mirrors (None: not said)
        self._mirror_gen: Generation | None = None
        #: bumped whenever the data path's session record may have ended (a ``session``
        #: event, a role change, a resync asked): a ``status`` answer asked before is stale
        self._epoch = 0
        self._asking = False
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._replies: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._next_id = 0
        self._connect_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._last_probe = 0.0
        self._probing = False
        #: the last resync progress this node (the target) was told, for ``state``
        self.progress: dict[str, Any] | None = None

    # --- the port ---------------------------------------------------------------------

    def ensure_role(self, role: Role) -> Awaitable[None]:
        if role is not self.role:
            self._not_mirroring()
        self.role = role
        return self._role(role)

    async def _role(self, role: Role) -> None:
        if role is not Role.OFF:
            await self._call("history", history=encode(self._state().data))
            await self._call("peer", second=bool(self._second))
        await self._call("role", role=role.value)

    def start_resync(self, action: StartResync) -> None:
        self._not_mirroring()
        cur = self._state().data.current
        self._spawn(self._call("resync", full=action.full, keep_aside=action.keep_aside,
                               current=None if cur is None else encode(cur)))  # fmt: skip

    def stop_resync(self) -> None:
        self._spawn(self._call("stop_resync"))

    def new_generation(self, generation: Generation) -> None:
        data = self._state().data
        if data.current != generation:
            data = data.advance(generation)
        self._spawn(self._call("history", history=encode(data)))

    def peer_changed(self, peer: PeerView | None) -> None:
        self._peer = peer
        if peer is None or peer.state not in (State.PRIM, State.ALONE):
            # (ALONE: the mirroring primary's heartbeat may lag.) A stale SECOND heard
            # after ``mirroring`` clears it too: the pulse asks the data path again.
            self._mirroring = False
        second = peer is not None and peer.state is State.SECOND
        if second != self._second:
            self._second = second
            if self.role is not Role.OFF:
                self._spawn(self._call("peer", second=second))

    def tick(self, waiting: bool) -> None:
        if self._writer is None and not self._connect_lock.locked():
            # started ahead of need: an interpreter start must not delay a takeover
            self._spawn(self._connect())
        if waiting and not self._mirror_up() and self._may_ask():
            # not known here (daemon restarted, stale heartbeat): the data path knows
            self._asking = True
            self._spawn(self._ask_mirroring())
        now = asyncio.get_running_loop().time()
        if self.role is not Role.OFF and not self._probing and now - self._last_probe > PROBE_EVERY:
            self._last_probe = now
            self._probing = True
            self._spawn(self._probe())

    # --- events -----------------------------------------------------------------------

    def _mirror_up(self) -> bool:
        """The primary mirrors (it said so on the current session, on the generation it
        announces) and announces PRIM: report it (again at every pulse while the core
        waits for it). True if reported."""
        pv = self._peer
        if not self._mirroring or pv is None or pv.state is not State.PRIM:
            return False
        if self._mirror_gen is not None and self._mirror_gen != pv.data.current:
            return False
        self._post(MirrorUp(pv.data, pv.term))
        return True

    def _not_mirroring(self) -> None:
        self._mirroring = False
        self._mirror_gen = None
        self._epoch += 1

    def _mirrors(self, rec: Any) -> bool:
        """``rec``: the data path's record (event fields or ``status``'s ``mirroring``)."""
        if not isinstance(rec, dict):
            return False
        gen = rec.get("generation")
        try:
            self._mirror_gen = None if gen is None else decode(Generation, gen, "generation")
        except (ValueError, TypeError) as exc:  # (TypeError: a field missing)
            log.warning("module %s: mirroring: bad generation: %s", self.cfg.module, exc)
            return False
        self._mirroring = True
        return True

    def _may_ask(self) -> bool:
        pv = self._peer
        return (
            not self._asking
            and self.role is Role.SECONDARY
            and pv is not None
            and pv.state is State.PRIM
        )

    async def _ask_mirroring(self) -> None:
        """The session's mirroring record, from the process (see the module docstring)."""
        try:
            epoch = self._epoch
            reply = await self._call("status", timeout=PROBE_TIMEOUT)
            if epoch != self._epoch or self.role is not Role.SECONDARY:
                return  # overtaken (a new session, a role change, a resync asked)
            if self._mirrors(reply.get("mirroring")) and self._mirror_up():
                log.info("module %s: the data path mirrors (said by its status)", self.cfg.module)
        finally:
            self._asking = False

    def _event(self, msg: dict[str, Any]) -> None:
        name = msg.get("event")
        if name == "link_lost":
            log.warning("module %s: replication link lost: %s", self.cfg.module, msg.get("reason"))
            self._post(LinkLost())
        elif name == "mirroring":
            if self._mirrors({"generation": msg.get("generation")}):  # None: not said
                self._mirror_up()
        elif name == "session":
            self._not_mirroring()
        elif name == "resync_progress":
            self.progress = msg
            self._post(ResyncProgress(float(msg.get("fraction", 0.0))))
        elif name == "resync_done":
            self.progress = None
            self._post(ResyncDone())
        elif name == "resync_failed":
            log.warning("module %s: resync failed: %s", self.cfg.module, msg.get("cause"))
            self.progress = None
            self._post(ResyncFailed(str(msg.get("cause", ""))))
        elif name == "failed":
            log.error("module %s: data path failed: %s", self.cfg.module, msg.get("cause"))
            self._post(DataPathFailed(str(msg.get("cause", ""))))
        elif name == "log":
            log.warning("module %s: %s", self.cfg.module, msg.get("message"))

    # --- the process ------------------------------------------------------------------

    def _argv(self) -> list[str]:
        p = self.paths
        return [sys.executable, "-m", "hamod", "datapath", "run", "-m", self.cfg.module,
                "--node", self.cfg.node, "--config-dir", str(p.etc), "--state-dir", str(p.var),
                "--log-dir", str(p.log), "--run-dir", str(p.run)]  # fmt: skip

    async def _connect(self) -> None:
        async with self._connect_lock:
            if self._writer is not None:
                return
            sock = str(self.cfg.control_socket)
            try:
                reader, writer = await asyncio.open_unix_connection(sock, limit=1 << 22)
            except OSError:
                self._start_process()
                deadline = asyncio.get_running_loop().time() + START_TIMEOUT
                while True:
                    await asyncio.sleep(0.1)
                    try:
                        reader, writer = await asyncio.open_unix_connection(sock, limit=1 << 22)
                        break
                    except OSError as exc:
                        if asyncio.get_running_loop().time() > deadline:
                            raise AdapterError(
                                f"data path of {self.cfg.module} did not start "
                                f"(see {self.cfg.log_file}): {exc}"
                            ) from None
            self._reader, self._writer = reader, writer
            self._spawn(self._read(reader))
            self._spawn(self._reconcile())

    async def _reconcile(self) -> None:
        """On (re)connection, while the core has a resync in progress here: the process
        may have finished or failed it while no daemon listened (a daemon restart), or
        may not know it at all (a new process): tell the core what became of it."""
        s = self._state()
        if s.state is not State.SECOND or s.resync is None:
            return
        out = (await self._call("status", timeout=PROBE_TIMEOUT)).get("resync_outcome") or {}
        state, cause = out.get("state"), str(out.get("cause") or "")
        if self._state().resync is None:
            return  # settled meanwhile
        if state == "done":
            log.info("module %s: the resync ended while no daemon listened", self.cfg.module)
            self._post(ResyncDone())
        elif state == "failed":
            self._post(ResyncFailed(f"{cause} (while no daemon listened)"))
        elif state not in ("wanted", "running"):
            self._post(ResyncFailed("the data path process has no resync in progress"))

    def _start_process(self) -> None:
        self.cfg.log.mkdir(parents=True, exist_ok=True)
        self.cfg.run.mkdir(parents=True, exist_ok=True)
        with open(self.cfg.log_file, "ab") as out:
            subprocess.Popen(
                self._argv(), stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                start_new_session=True, close_fds=True, cwd="/",
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )  # fmt: skip
        log.info("module %s: data path process started", self.cfg.module)

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while line := await reader.readline():
                try:
                    msg = json.loads(line)
                except ValueError:
                    continue
                if "event" in msg:
                    self._event(msg)
                else:
                    fut = self._replies.pop(msg.get("id", -1), None)
                    if fut is not None and not fut.done():
                        fut.set_result(msg)
        finally:
            self._reader = self._writer = None
            for fut in self._replies.values():
                if not fut.done():
                    fut.set_exception(AdapterError("data path process went away"))
            self._replies.clear()
            if self.role is not Role.OFF:
                self._post(DataPathFailed(f"data path process of {self.cfg.module} exited"))

    async def _call(self, cmd: str, timeout: float = 60.0, **fields: Any) -> dict[str, Any]:
        await self._connect()
        writer = self._writer
        if writer is None:
            raise AdapterError("data path process not connected")
        self._next_id += 1
        rid = self._next_id
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._replies[rid] = fut
        writer.write((json.dumps({"cmd": cmd, "id": rid, **fields}) + "\n").encode())
        await writer.drain()
        try:
            reply = await asyncio.wait_for(fut, timeout)
        finally:
            self._replies.pop(rid, None)
        if not reply.get("ok"):
            raise AdapterError(f"data path: {cmd}: {reply.get('error')}")
        return reply

    async def _probe(self) -> None:
        try:
            reply = await self._call("probe", timeout=PROBE_TIMEOUT)
            if reply.get("dead"):
                self._post(DataPathFailed(str(reply["dead"])))
        except TimeoutError:
            why = f"data path of {self.cfg.module} hung (no answer in {PROBE_TIMEOUT:.0f}s)"
            log.error("%s: aborting its FUSE connections", why)
            for d in self.cfg.directories:
                with contextlib.suppress(HamodError, OSError):
                    mount.abort(d)
            self._post(DataPathFailed(why))
        except HamodError as exc:
            log.warning("module %s: probe: %s", self.cfg.module, exc)
        finally:
            self._probing = False

    def _spawn(self, coro: Awaitable[Any]) -> None:
        async def run() -> None:
            try:
                await coro
            except (HamodError, OSError, TimeoutError) as exc:
                log.warning("module %s: data path: %s", self.cfg.module, exc)

        task = asyncio.ensure_future(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def barrier(self) -> bool:
        """As primary: returns True once the peer applied everything shipped so far."""
        if self.role not in (Role.PRIMARY_MIRRORING, Role.PRIMARY_ALONE):
            return False
        reply = await self._call("barrier", timeout=self.cfg.link_timeout + 5)
        return bool(reply.get("settled"))

    async def status(self) -> dict[str, Any]:
        """The process's status (for ``hamod state -v`` and the API)."""
        return await self._call("status", timeout=5.0)
