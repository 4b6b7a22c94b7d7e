"""LazyFS: a test-only FUSE file system that loses what was never synced on power-off.

All lab nodes share one kernel, whose page cache survives a node's "power-off"; LazyFS
puts one back in user space. Mounted from a backing directory onto a mount point (they
may be the same directory), it serves a live copy of the backing tree kept in tmpfs and
writes to the backing directory only on fsync/fdatasync/fsyncdir (the model is in
:mod:`hamod.testing.lazyfs_ops` and ``docs/lazyfs.md``). :meth:`LazyFS.power_off`
discards the live tree and makes every call on the mount fail with EIO until it is
remounted, after which only what was synced is there. Faults are armed on command:
EIO on the next N writes/fsyncs/reads of a path pattern, ENOSPC after a byte budget.

The server is a child process (``python -m hamod.testing.lazyfs serve BACKING MOUNT``)
controlled over a Unix socket; the command line also has ``poweroff``, ``inject``,
``clear``, ``sync`` and ``umount``. Mounting, unmounting and aborting reuse
:mod:`hamod.datapath.mount`. Errors are :class:`~hamod.errors.AdapterError`.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from hamod.datapath.mount import abort, holders, is_mounted, mountinfo, unmount
from hamod.errors import AdapterError, HamodError, UsageError
from hamod.testing.lazyfs_ops import LazyOps
from hamod.testing.lazyfs_state import KINDS

CONTROL_DIR = Path("/run/hamod-lazyfs")
FSNAME = "hamod-lazyfs"


def control_path(mountpoint: str | os.PathLike[str]) -> Path:
    """The control socket of the LazyFS mounted on ``mountpoint``."""
    key = hashlib.sha1(os.path.realpath(mountpoint).encode()).hexdigest()[:16]
    return CONTROL_DIR / f"{key}.sock"


def request(mountpoint: str | os.PathLike[str], cmd: str, **args: Any) -> dict[str, Any]:
    """Send one control command to the server of ``mountpoint``; its reply."""
    path = control_path(mountpoint)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(30)
            sock.connect(str(path))
            sock.sendall(json.dumps({"cmd": cmd, **args}).encode() + b"\n")
            data = sock.makefile("rb").readline()
    except OSError as exc:
        raise AdapterError(f"{mountpoint}: LazyFS control {path} unreachable: {exc}") from exc
    reply: dict[str, Any] = json.loads(data or b'{"ok": false, "error": "no reply"}')
    if not reply.get("ok"):
        raise AdapterError(f"{mountpoint}: LazyFS {cmd} failed: {reply.get('error')}")
    return reply


class LazyFS:
    """One LazyFS mount: ``with LazyFS(backing, mountpoint) as fs: ...``."""

    def __init__(
        self, backing: str | os.PathLike[str], mountpoint: str | os.PathLike[str] | None = None
    ) -> None:
        self.backing = os.path.realpath(backing)
        self.mountpoint = os.path.realpath(mountpoint or backing)
        self._proc: subprocess.Popen[bytes] | None = None
        self.powered_off = False

    def __enter__(self) -> LazyFS:
        return self.mount()

    def __exit__(
        self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.unmount(sync=False)

    @property
    def mounted(self) -> bool:
        return self._proc is not None

    def mount(self, timeout: float = 15.0) -> LazyFS:
        """Start the server and wait for the mount (the live tree = the backing tree)."""
        if self._proc is not None:
            raise UsageError(f"{self.mountpoint}: LazyFS already mounted")
        cmd = [sys.executable, "-m", "hamod.testing.lazyfs", "serve"]
        self._proc = subprocess.Popen([*cmd, self.backing, self.mountpoint], stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        try:
            while not (is_mounted(self.mountpoint) and control_path(self.mountpoint).exists()):
                if self._proc.poll() is not None:
                    err = self._proc.stderr.read().decode() if self._proc.stderr else ""
                    raise AdapterError(f"{self.mountpoint}: LazyFS did not mount: {err.strip()}")
                if time.monotonic() > deadline:
                    raise AdapterError(f"{self.mountpoint}: LazyFS not mounted after {timeout}s")
                time.sleep(0.02)
        except BaseException:
            self._stop()
            raise
        self.powered_off = False
        return self

    def power_off(self) -> None:
        """Discard everything not synced; the mount fails with EIO until remounted."""
        request(self.mountpoint, "poweroff")
        self.powered_off = True

    def inject(self, kind: str, path_glob: str = "*", count: int = 1) -> None:
        """Arm a fault: ``eio-write``/``eio-fsync``/``eio-read`` on the next ``count``
        calls on paths matching ``path_glob`` (relative to the mount, fnmatch), or
        ``enospc`` once ``count`` more bytes have been written to them."""
        if kind not in KINDS:
            raise UsageError(f"unknown LazyFS fault {kind!r} (one of {', '.join(KINDS)})")
        request(self.mountpoint, "inject", kind=kind, glob=path_glob, count=count)

    def clear_faults(self) -> None:
        request(self.mountpoint, "clear")

    def sync(self) -> None:
        """Persist the whole live tree, as ``sync(1)`` would."""
        request(self.mountpoint, "sync")

    def unmount(self, *, sync: bool = False) -> None:
        """Unmount (after persisting everything when ``sync``; else unsynced data is
        lost, as on power-off) and reap the server."""
        if self._proc is None:
            return
        if sync and not self.powered_off:
            self.sync()
        self._stop()

    def remount(self) -> None:
        """Unmount without syncing and mount again: the mount shows what was synced."""
        self.unmount(sync=False)
        self.mount()

    def _stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            if self.powered_off and mountinfo(self.mountpoint) is not None:
                with contextlib.suppress(AdapterError):
                    abort(self.mountpoint)  # files still open get ENOTCONN; server exits
            if mountinfo(self.mountpoint) is not None:
                unmount(self.mountpoint)
        finally:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()  # a lazily detached mount still held open: ENOTCONN to them
                proc.wait(timeout=10)
            if proc.stderr is not None:
                proc.stderr.close()


# -- the server ---------------------------------------------------------------------


def _copy_tree(src: str, dst: str) -> None:
    shutil.copytree(src, dst, symlinks=True, dirs_exist_ok=True)
    for root, dirs, files in os.walk(src):
        for name in [".", *dirs, *files]:
            st = os.lstat(os.path.join(root, name))
            target = os.path.join(dst, os.path.relpath(os.path.join(root, name), src))
            os.chown(target, st.st_uid, st.st_gid, follow_symlinks=False)


def _control(ops: LazyOps, sock: socket.socket) -> None:
    while True:
        conn, _ = sock.accept()
        with conn:
            try:
                msg = json.loads(conn.makefile("rb").readline())
                cmd = msg["cmd"]
                if cmd == "poweroff":
                    ops.power_off()
                elif cmd == "inject":
                    ops.faults.arm(str(msg["kind"]), str(msg["glob"]), int(msg["count"]))
                elif cmd == "clear":
                    ops.faults.clear()
                elif cmd == "sync":
                    ops.sync_all()
                else:
                    raise ValueError(f"unknown command {cmd!r}")
                reply: dict[str, Any] = {"ok": True}
            except (OSError, ValueError, KeyError) as exc:
                reply = {"ok": False, "error": str(exc)}
            conn.sendall(json.dumps(reply).encode() + b"\n")


def serve(backing: str, mountpoint: str) -> None:
    """Mount LazyFS and serve until unmounted (blocks)."""
    import mfusepy

    backing, mountpoint = os.path.realpath(backing), os.path.realpath(mountpoint)
    for path in (backing, mountpoint):
        if not os.path.isdir(path):
            raise AdapterError(f"{path}: not a directory")
    if is_mounted(mountpoint):
        raise AdapterError(f"{mountpoint}: already mounted")
    busy = holders(mountpoint)
    if busy:
        raise AdapterError(f"{mountpoint}: files in use under it: {'; '.join(map(str, busy))}")
    base = os.open(backing, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    upper = tempfile.mkdtemp(prefix="hamod-lazyfs-", dir="/dev/shm")
    CONTROL_DIR.mkdir(parents=True, exist_ok=True)
    ctl = control_path(mountpoint)
    ctl.unlink(missing_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        _copy_tree(backing, upper)
        ops = LazyOps(f"/proc/self/fd/{base}", upper)
        os.umask(0)
        sock.bind(str(ctl))
        sock.listen(8)
        threading.Thread(target=_control, args=(ops, sock), daemon=True).start()
        options: dict[str, Any] = {"fsname": f"{FSNAME}:{backing}", "subtype": FSNAME}
        mfusepy.FUSE(
            ops, mountpoint, foreground=True, allow_other=True, default_permissions=True, **options
        )
    except RuntimeError as exc:
        raise AdapterError(f"{mountpoint}: FUSE mount failed ({exc})") from exc
    finally:
        sock.close()
        ctl.unlink(missing_ok=True)
        shutil.rmtree(upper, ignore_errors=True)
        os.close(base)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hamod.testing.lazyfs")
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="mount BACKING on MOUNT and serve until unmounted")
    s.add_argument("backing")
    s.add_argument("mount")
    for name in ("poweroff", "clear", "sync", "umount"):
        sub.add_parser(name).add_argument("mount")
    i = sub.add_parser("inject", help="arm a fault")
    i.add_argument("mount")
    i.add_argument("kind", choices=KINDS)
    i.add_argument("glob")
    i.add_argument("count", type=int)
    args = parser.parse_args(argv)
    try:
        if args.command == "serve":
            serve(args.backing, args.mount)
        elif args.command == "umount":
            unmount(args.mount)
        elif args.command == "inject":
            request(args.mount, "inject", kind=args.kind, glob=args.glob, count=args.count)
        else:
            request(args.mount, args.command)
    except HamodError as exc:
        print(f"lazyfs: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
