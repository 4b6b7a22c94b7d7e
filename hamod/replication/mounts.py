"""The FUSE mounts of one module in the data-path process, and the view underneath.

Each replicated directory ``d`` gets, once, a private bind mount of itself at
``under`` (``/run/hamod/dp/<module>/under/<i>``) made *before* any FUSE mount covers
it: the applier of a secondary, rsync and ``verify`` work there, on the real files, never
through FUSE. Then ``d`` is covered by the data path: read-write on the primary (every
mutation to the module's shipper), read-only on the secondary (kernel caches off: the
replica changes files underneath). Each mount is served by its own thread of this
process (libfuse's multithreaded loop).
"""

from __future__ import annotations

import logging
import os
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

from hamod.datapath import mount
from hamod.datapath.mutation import Shipper
from hamod.errors import AdapterError

log = logging.getLogger(__name__)


def _run(*argv: str) -> None:
    run = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    if run.returncode != 0:
        raise AdapterError(f"{' '.join(argv)}: {run.stderr.strip() or run.returncode}")


def clear_dead(directory: Path) -> None:
    """Remove a dead data-path mount left on ``directory`` (its process was killed:
    every access fails with ENOTCONN)."""
    if mount.is_mounted(directory):
        try:
            os.stat(directory)
        except OSError:  # ENOTCONN: its server is gone
            log.warning("%s: removing the mount of a dead data path", directory)
            mount.unmount(directory)


def ensure_under(directory: Path, under: Path) -> None:
    """A private bind mount of the real ``directory`` at ``under`` (idempotent). A dead
    data-path mount left on ``directory`` (its process was killed) is removed first."""
    clear_dead(directory)
    if mount.mountinfo(under) is not None:
        return
    if mount.is_mounted(directory):
        raise AdapterError(f"{directory}: covered by a data path mount; cannot reach underneath")
    under.mkdir(parents=True, exist_ok=True)
    _run("mount", "--bind", str(directory), str(under))
    _run("mount", "--make-private", str(under))


@dataclass
class _Mounted:
    read_only: bool
    thread: threading.Thread
    error: list[BaseException]


class MountSet:
    """The module's FUSE mounts; ``mount_all`` and ``unmount_all`` are idempotent."""

    def __init__(self, directories: list[Path], unders: list[Path]) -> None:
        self.directories = directories
        self.unders = unders
        self._mounted: dict[int, _Mounted] = {}
        self._lock = threading.Lock()

    def prepare(self) -> None:
        for d, u in zip(self.directories, self.unders, strict=True):
            clear_dead(d)
            d.mkdir(parents=True, exist_ok=True)
            ensure_under(d, u)

    @property
    def mode(self) -> str:
        """``rw``, ``ro`` or ``off``."""
        with self._lock:
            if not self._mounted:
                return "off"
            return "ro" if all(m.read_only for m in self._mounted.values()) else "rw"

    def mount_all(
        self,
        *,
        read_only: bool,
        shippers: list[Shipper] | None = None,
        trackers: list[object] | None = None,
        timeout: float = 10.0,
    ) -> None:
        """Cover every directory (read-only or read-write). A mount in the other mode is
        replaced. AdapterError naming the directory (and the processes holding files)
        when it cannot."""
        with self._lock:
            for i, d in enumerate(self.directories):
                cur = self._mounted.get(i)
                if cur is not None and cur.thread.is_alive() and cur.read_only == read_only:
                    continue
                if cur is not None:
                    self._unmount(i)
                shipper = shippers[i] if shippers else None
                tracker = trackers[i] if trackers else None
                self._mount(i, d, read_only, shipper, tracker, timeout)

    def _mount(
        self,
        i: int,
        d: Path,
        read_only: bool,
        shipper: Shipper | None,
        tracker: object | None,
        timeout: float,
    ) -> None:
        error: list[BaseException] = []

        def serve() -> None:
            try:
                kwargs = {} if tracker is None else {"tracker": tracker}
                mount.serve(d, shipper, read_only=read_only, **kwargs)  # type: ignore[arg-type]
            except BaseException as exc:  # reported to the caller / the status
                error.append(exc)
                log.error("data path on %s ended: %s", d, exc)

        t = threading.Thread(target=serve, name=f"hamod-fuse{i}", daemon=True)
        t.start()
        try:
            mount.wait_mounted(d, timeout)
        except AdapterError:
            t.join(1)
            if error:
                raise AdapterError(str(error[0])) from error[0]
            raise
        if error:
            raise AdapterError(str(error[0]))
        self._mounted[i] = _Mounted(read_only, t, error)

    def _unmount(self, i: int) -> None:
        m = self._mounted.pop(i, None)
        d = self.directories[i]
        mount.unmount(d)
        if m is not None:
            m.thread.join(5)

    def unmount_all(self) -> None:
        with self._lock:
            for i in list(self._mounted):
                self._unmount(i)
            for d in self.directories:  # a mount from an earlier process
                if mount.is_mounted(d):
                    mount.unmount(d)

    def dead(self) -> str | None:
        """Why a mount's server thread ended while it should serve, or None."""
        with self._lock:
            for i, m in self._mounted.items():
                if not m.thread.is_alive():
                    cause = m.error[0] if m.error else "unmounted"
                    return f"{self.directories[i]}: data path ended ({cause})"
        return None

    def abort_all(self) -> None:
        """Abort every FUSE connection (a hung server): applications get errors at once."""
        for d in self.directories:
            if mount.mountinfo(d) is not None:
                try:
                    mount.abort(d)
                except AdapterError as exc:
                    log.warning("%s", exc)
