"""The data-path process of one mirror module (``hamod datapath run -m MOD``).

Supervised by the daemon, but its own process (own session): a daemon restart leaves
the mounts, the link and the application untouched. It owns the module's FUSE mounts
(:mod:`~hamod.replication.mounts`), change trackers, the primary's
:class:`~hamod.replication.replicator.Replicator` and session, and the secondary's
:class:`~hamod.replication.secondary.TargetSide`.

The daemon talks to it on a Unix socket (``/run/hamod/dp/<m>/control.sock``, root
only), one JSON object per line. Requests (``{"cmd": ...}``) get one reply
(``{"ok": true, ...}`` or ``{"ok": false, "error": ...}``); events are pushed to every
connected client as ``{"event": NAME, ...}``:

=====================  ==================================================================
request                effect
=====================  ==================================================================
``role``               ``role``: off / secondary / primary-alone / primary-hold /
                       primary-mirroring; mounts, trackers, receiver, session; replies
                       once the mounts are as asked (the app may start then)
``history``            ``history``: the core's data history (a new generation: trackers
                       begin it when ALONE)
``peer``               ``second``: the peer announces SECOND (the session connects)
``resync``             ``full``, ``keep_aside``, ``current``: this node wants a resync
``stop_resync``        forget it (a session in a resync is closed)
``status``             role, mounts, link, resync progress, where the resync this
                       node (a target) was asked for stands (``resync_outcome``), and
                       whether the current session mirrors the primary (``mirroring``:
                       ``{generation, since}`` or null; absent before this field existed)
``barrier``            (primary) returns once the peer applied everything shipped so far
``probe``              replies when every mount answers a ``stat`` (daemon: with a
                       timeout; no reply = hung)
``abort``              abort every FUSE connection (the daemon found it hung)
``exit``               unmount everything and exit
=====================  ==================================================================

Events: ``link_lost`` (reason), ``session`` (a primary said hello), ``mirroring``
(generation: the primary's, or null; since),
``resync_progress`` (fraction, eta, phase, bytes),
``resync_done``, ``resync_failed`` (cause), ``failed`` (cause: a mount died), ``log``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import threading
from pathlib import Path
from typing import Any

from hamod.core.actions import Role
from hamod.core.model import DataHistory
from hamod.datapath import faults
from hamod.datapath.gate import Gate
from hamod.errors import HamodError
from hamod.replication.dpconfig import DpConfig
from hamod.replication.gate import GatedTracker
from hamod.replication.mounts import MountSet
from hamod.replication.primary import PrimarySession
from hamod.replication.replicator import Replicator
from hamod.replication.secondary import TargetSide
from hamod.runtime.codec import decode
from hamod.tracking.tracker import ChangeTracker

log = logging.getLogger(__name__)

MAX_LINE = 1 << 20


class DataPathProcess:
    """See the module docstring."""

    def __init__(self, cfg: DpConfig) -> None:
        self.cfg = cfg
        n = len(cfg.directories)
        self.trackers = [
            ChangeTracker(cfg.tracking_dir(i), region_size=cfg.region_size) for i in range(n)
        ]
        self.gate = Gate()
        self.replicator = Replicator(
            self.trackers, timeout=cfg.link_timeout,
            on_link_lost=lambda why: self.emit("link_lost", reason=why),
            on_sync=cfg.durability == "on-sync",
        )  # fmt: skip
        self.mounts = MountSet(list(cfg.directories), [cfg.under(i) for i in range(n)])
        self.history = DataHistory()
        self.role = Role.OFF
        self.target = TargetSide(cfg, self.trackers, self.emit)
        self.session: PrimarySession | None = None
        self._clients: list[socket.socket] = []
        self._clients_lock = threading.Lock()
        self._role_lock = threading.Lock()
        self._stop = threading.Event()
        self._begun: Any = None
        self._peer_second = False

    # --- events -----------------------------------------------------------------------

    def emit(self, event: str, **fields: Any) -> None:
        line = (json.dumps({"event": event, **fields}) + "\n").encode()
        log.info("event %s %s", event, fields or "")
        with self._clients_lock:
            for c in list(self._clients):
                try:
                    c.sendall(line)
                except OSError:
                    self._clients.remove(c)

    # --- roles ------------------------------------------------------------------------

    def set_role(self, role: Role) -> None:
        with self._role_lock:
            self._set_role(role)

    def _set_role(self, role: Role) -> None:
        self.mounts.prepare()
        if role is Role.OFF:
            self._stop_session()
            self.target.stop()
            self.replicator.set_role(Role.OFF)
            self.mounts.unmount_all()
        elif role is Role.SECONDARY:
            self._stop_session()
            self.replicator.set_role(Role.SECONDARY)
            if self.mounts.mode == "rw":
                self.mounts.unmount_all()
            self.mounts.mount_all(read_only=True)
            self.target.start()
        else:
            self.target.stop()
            if role is Role.PRIMARY_ALONE:
                self._begin()
            self.replicator.set_role(role)
            if self.mounts.mode != "rw":
                self.mounts.unmount_all()
                n = len(self.cfg.directories)
                self.mounts.mount_all(
                    read_only=False,
                    shippers=[self.replicator.shipper(i) for i in range(n)],
                    trackers=[GatedTracker(t, self.gate) for t in self.trackers],
                )
            if self.session is None:
                self.session = PrimarySession(
                    self.cfg, self.trackers, self.replicator, self.gate,
                    lambda: self.history, self.emit,
                )  # fmt: skip
                self.session.peer_second(self._peer_second)
                self.session.start()
            self.session.wake()
        self.role = role

    def _begin(self) -> None:
        gen = self.history.current
        if gen is None or self._begun == gen:
            return
        for t in self.trackers:
            t.begin(gen)
        self._begun = gen

    def _stop_session(self) -> None:
        session, self.session = self.session, None
        if session is not None:
            session.stop()

    def set_history(self, history: DataHistory) -> None:
        with self._role_lock:
            self.history = history
            if self.role is Role.PRIMARY_ALONE:
                self._begin()

    # --- control socket ---------------------------------------------------------------

    def handle(self, req: dict[str, Any]) -> dict[str, Any]:
        cmd = req.get("cmd")
        if cmd == "role":
            self.set_role(Role(str(req.get("role"))))
            return {}
        if cmd == "history":
            self.set_history(decode(DataHistory, req.get("history"), "history"))
            return {}
        if cmd == "peer":
            self._peer_second = bool(req.get("second"))
            if self.session is not None:
                self.session.peer_second(self._peer_second)
            return {}
        if cmd == "resync":
            self.target.want_resync(bool(req.get("full")), bool(req.get("keep_aside")),
                                    req.get("current"))  # fmt: skip
            return {}
        if cmd == "stop_resync":
            self.target.cancel_resync()
            return {}
        if cmd == "status":
            return self.status()
        if cmd == "probe":
            for d in self.cfg.directories:
                os.stat(d)
            dead = self.mounts.dead()
            if dead is not None:
                return {"dead": dead}
            return {}
        if cmd == "barrier":
            return {"settled": self.replicator.barrier()}
        if cmd == "abort":
            self.mounts.abort_all()
            return {}
        if cmd == "exit":
            self._stop.set()
            return {}
        raise HamodError(f"unknown command {cmd!r}")

    def status(self) -> dict[str, Any]:
        session = self.session
        return {
            "role": self.role.value,
            "mounts": self.mounts.mode,
            "link": session.status if session is not None else None,
            "resync_source": session.resync_status() if session is not None else None,
            "resync_target": self.target.progress or None,
            "resync_outcome": {"state": self.target.outcome, "cause": self.target.cause},
            "mirroring": self.target.mirroring,
            "lag": None,
            "pid": os.getpid(),
        }

    def _client(self, conn: socket.socket) -> None:
        with self._clients_lock:
            self._clients.append(conn)
        f = conn.makefile("rb")
        try:
            while True:
                line = f.readline(MAX_LINE)
                if not line:
                    return
                try:
                    req = json.loads(line)
                    if not isinstance(req, dict):
                        raise HamodError("a request is a JSON object")
                    out = {"ok": True, "id": req.get("id"), **self.handle(req)}
                except (HamodError, OSError, ValueError) as exc:
                    out = {"ok": False, "id": req.get("id") if isinstance(req, dict) else None,
                           "error": str(exc)}  # fmt: skip
                with self._clients_lock:
                    conn.sendall((json.dumps(out) + "\n").encode())
        except OSError:
            return
        finally:
            with self._clients_lock, contextlib.suppress(ValueError):
                self._clients.remove(conn)
            conn.close()

    def serve(self) -> None:
        """Run until ``exit`` (or SIGTERM/SIGINT): then unmount and stop."""
        sock_path = self.cfg.control_socket
        sock_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        sock_path.unlink(missing_ok=True)
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            srv.bind(str(sock_path))
        finally:
            os.umask(old)
        srv.listen(8)
        srv.settimeout(0.5)
        self.cfg.pid_file.write_text(f"{os.getpid()}\n")
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self._stop.set())
        threading.Thread(target=self._watch, name="hamod-dp-watch", daemon=True).start()
        faults.hook = self._io_error
        try:
            while not self._stop.is_set():
                try:
                    conn, _ = srv.accept()
                except TimeoutError:
                    continue
                threading.Thread(target=self._client, args=(conn,), daemon=True).start()
        finally:
            srv.close()
            sock_path.unlink(missing_ok=True)
            self.set_role(Role.OFF)
            for t in self.trackers:
                t.close()
            self.cfg.pid_file.unlink(missing_ok=True)

    def _io_error(self, what: str) -> None:
        """EIO from the disk underneath: the primary must fail over."""
        if self.role in (Role.PRIMARY_ALONE, Role.PRIMARY_MIRRORING, Role.PRIMARY_HOLD):
            self.emit("failed", cause=what)

    def _watch(self) -> None:
        """A mount whose server thread ended while serving: report it (once)."""
        reported: str | None = None
        while not self._stop.wait(0.5):
            dead = self.mounts.dead()
            if dead is not None and dead != reported:
                reported = dead
                self.emit("failed", cause=dead)


def main(cfg: DpConfig) -> int:
    Path(cfg.run).mkdir(parents=True, exist_ok=True)
    DataPathProcess(cfg).serve()
    return 0
