"""Mounting the data path over a directory, safely; unmounting; aborting a dead mount.

- :func:`holders` lists the processes with a file, a mapping, a cwd or a root under a
  directory (from ``/proc``); :func:`serve` refuses to mount while there are any,
  naming them, because their I/O would bypass the mount and never be replicated.
- :func:`serve` opens the directory (``O_PATH``) *before* mounting over it, then runs
  libfuse's multithreaded loop in the calling process until unmounted.
- :func:`unmount` runs ``fusermount3 -u`` (then ``-uz``, lazy, as a fallback).
- :func:`abort` writes to ``/sys/fs/fuse/connections/<N>/abort``: a hung or dead server
  makes every pending and future call fail with ENOTCONN instead of blocking.
Errors are :class:`~hamod.errors.AdapterError` naming the directory and the cause.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from hamod.datapath.mutation import LocalOnly, Shipper
from hamod.datapath.tracking import Tracker
from hamod.errors import AdapterError

FSNAME_PREFIX = "hamod"
FUSE_CONNECTIONS = Path("/sys/fs/fuse/connections")


@dataclass(frozen=True)
class Holder:
    """A process holding something under a directory."""

    pid: int
    name: str
    what: str  # "fd 5", "cwd", "root", "mmap"
    path: str

    def __str__(self) -> str:
        return f"pid {self.pid} ({self.name}) {self.what} {self.path}"


@dataclass(frozen=True)
class MountInfo:
    """One line of /proc/self/mountinfo for a mount point."""

    mount_id: int
    device: str  # "0:52"
    mountpoint: str
    fstype: str
    source: str

    @property
    def connection(self) -> int:
        """The FUSE connection number (the device minor)."""
        return int(self.device.split(":")[1])


def _under(path: str, root: str) -> bool:
    path = path.removesuffix(" (deleted)")
    return path == root or path.startswith(root.rstrip("/") + "/")


def _comm(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


def holders(directory: str | os.PathLike[str], *, exclude: int | None = None) -> list[Holder]:
    """Processes with an open file, mapping, cwd or root under ``directory``."""
    root = os.path.realpath(directory)
    found: list[Holder] = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        if int(pid) in (exclude, os.getpid()):
            continue
        base = f"/proc/{pid}"
        for what in ("cwd", "root"):
            try:
                target = os.readlink(f"{base}/{what}")
            except OSError:
                continue
            if what == "root" and target == "/":
                continue
            if _under(target, root):
                found.append(Holder(int(pid), _comm(pid), what, target))
        try:
            fds = os.listdir(f"{base}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"{base}/fd/{fd}")
            except OSError:
                continue
            if _under(target, root):
                found.append(Holder(int(pid), _comm(pid), f"fd {fd}", target))
        try:
            maps = Path(f"{base}/map_files")
            for entry in os.listdir(maps):
                target = os.readlink(maps / entry)
                if _under(target, root):
                    found.append(Holder(int(pid), _comm(pid), "mmap", target))
                    break
        except OSError:
            pass
    return found


def mountinfo(directory: str | os.PathLike[str]) -> MountInfo | None:
    """The topmost mount on ``directory`` (None if it is not a mount point)."""
    target = os.path.realpath(directory)
    found: MountInfo | None = None
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        fields, rfields = left.split(), right.split()
        point = fields[4].encode().decode("unicode_escape")
        if point == target:
            found = MountInfo(int(fields[0]), fields[2], point, rfields[0], rfields[1])
    return found


def is_mounted(directory: str | os.PathLike[str]) -> bool:
    """True when a hamod data path is mounted on ``directory``."""
    info = mountinfo(directory)
    return (
        info is not None
        and info.fstype.startswith("fuse")
        and info.source.startswith(FSNAME_PREFIX)
    )


def wait_mounted(directory: str | os.PathLike[str], timeout: float = 10.0) -> None:
    """Wait until the data path is mounted on ``directory``."""
    deadline = time.monotonic() + timeout
    while not is_mounted(directory):
        if time.monotonic() > deadline:
            raise AdapterError(f"{directory}: data path not mounted after {timeout:.0f}s")
        time.sleep(0.02)


def serve(
    directory: str | os.PathLike[str],
    shipper: Shipper | None = None,
    *,
    read_only: bool = False,
    debug: bool = False,
    tracker: Tracker | None = None,
) -> None:
    """Mount over ``directory`` and serve until unmounted (blocks; libfuse's thread pool).

    Refuses, naming them, while processes hold files under the directory. ``tracker``
    (default: none) gets the change-tracking hooks before each mutating operation.
    """
    from hamod.datapath.bridge import Bridge
    from hamod.datapath.fs import MirrorFS

    path = os.path.realpath(directory)
    if not os.path.isdir(path):
        raise AdapterError(f"{path}: not a directory")
    if is_mounted(path):
        raise AdapterError(f"{path}: a data path is already mounted here")
    busy = holders(path)
    if busy:
        names = "; ".join(str(h) for h in busy[:20])
        raise AdapterError(f"{path}: refusing to mount, files are in use under it: {names}")
    base = os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    os.umask(0)  # modes come from the caller (the kernel or our umask logic applies it)
    ops = MirrorFS(base, shipper or LocalOnly(), read_only=read_only, tracker=tracker)
    options: dict[str, bool | str] = {
        "foreground": True,
        "allow_other": True,
        "default_permissions": True,
        "fsname": f"{FSNAME_PREFIX}:{path}",
        "subtype": FSNAME_PREFIX,
        "debug": debug,
    }
    if read_only:
        options["ro"] = True
    try:
        Bridge(ops, path, raw_fi=True, **options)
    except RuntimeError as exc:
        raise AdapterError(f"{path}: FUSE mount failed ({exc})") from exc
    finally:
        os.close(base)


def unmount(directory: str | os.PathLike[str], *, timeout: float = 10.0) -> None:
    """Unmount the data path (``fusermount3 -u``; lazy ``-uz`` if the mount is busy)."""
    path = os.path.realpath(directory)
    if mountinfo(path) is None:
        return
    run = subprocess.run(
        ["fusermount3", "-u", path], capture_output=True, text=True, timeout=timeout, check=False
    )
    if run.returncode != 0 and mountinfo(path) is not None:
        lazy = subprocess.run(
            ["fusermount3", "-uz", path],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if lazy.returncode != 0:
            raise AdapterError(
                f"{path}: unmount failed: {run.stderr.strip()} / {lazy.stderr.strip()}"
            )


def ensure_fusectl() -> None:
    """Mount the FUSE control file system on /sys/fs/fuse/connections if it is not
    (systemd does it at boot; minimal hosts and containers may not)."""
    if mountinfo(FUSE_CONNECTIONS) is not None:
        return
    run = subprocess.run(
        ["mount", "-t", "fusectl", "fusectl", str(FUSE_CONNECTIONS)],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    if run.returncode != 0 and mountinfo(FUSE_CONNECTIONS) is None:
        raise AdapterError(f"cannot mount fusectl on {FUSE_CONNECTIONS}: {run.stderr.strip()}")


def abort(directory: str | os.PathLike[str]) -> int:
    """Abort the FUSE connection of the mount on ``directory``; returns its number.

    Reads only /proc/self/mountinfo (never the mount itself, which may hang).
    """
    info = mountinfo(directory)
    if info is None or not info.fstype.startswith("fuse"):
        raise AdapterError(f"{directory}: no FUSE mount to abort")
    ensure_fusectl()
    ctl = FUSE_CONNECTIONS / str(info.connection) / "abort"
    try:
        ctl.write_text("1")
    except OSError as exc:
        raise AdapterError(f"{directory}: cannot abort FUSE connection {ctl}: {exc}") from exc
    return info.connection
