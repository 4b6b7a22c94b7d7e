"""Full copy of a replicated directory with rsync, over the cluster's authenticated link.

:func:`rsync_push` runs the local rsync client as the *sender* of a push
(``-aHAXS --numeric-ids --delete``, lsyncd-style excludes, bandwidth cap, progress and
ETA) to a :class:`~hamod.replication.rsync_server.RsyncServer` on the peer, which runs
``rsync --server`` in a named root. No SSH and no key besides the cluster's TLS
material: rsync's remote shell is :mod:`hamod.replication.rsync_rsh`, which hands its
stdin/stdout to this process (``SCM_RIGHTS`` over an inherited socket pair); this
process opens the TLS connection with the caller's ``connect`` (mutual TLS from the
cluster CA), sends the request line and relays the bytes
(:mod:`hamod.replication.rsync_relay`). The server checks rsync's arguments again.

:func:`keep_aside` preserves a directory before a full copy overwrites divergent data.
See docs/rsync.md.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import selectors
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Final

from hamod.errors import AdapterError, PeerError, UsageError
from hamod.replication.rsync_proto import (
    MAX_REPLY,
    RequestError,
    check_root_name,
    check_server_args,
    encode_request,
    parse_reply,
)
from hamod.replication.rsync_relay import (
    Relay,
    close_tls,
    read_line,
    send_line,
    shutdown_socket,
)
from hamod.replication.rsync_server import RsyncServer

__all__ = [
    "BASE_ARGS",
    "Progress",
    "RsyncCancelled",
    "RsyncError",
    "RsyncResult",
    "RsyncServer",
    "keep_aside",
    "parse_progress",
    "push_args",
    "rsync_push",
]

BASE_ARGS: Final = (
    "-aHAXS",
    "--numeric-ids",
    "--modify-window=-1",
    "--no-inc-recursive",
    "--no-h",
)
"""Every push: archive (-rlptgoD) with hard links, ACLs, xattrs, sparse files, numeric
owners; modification times compared to the nanosecond (rsync's default compares whole
seconds: a file rewritten with the same size within the second would be skipped, and
times set within the second of the copy left unset); the whole file list first (exact
progress and ETA, hard links found in one pass); plain numbers in rsync's output."""
VANISHED: Final = 24
"""rsync's exit code when source files vanished during the copy: a success here."""
_RSH: Final = Path(__file__).with_name("rsync_rsh.py")
_STDERR_TAIL: Final = 8192
_PEER_HOST: Final = "hamod-peer"
_UNITS: Final = {"k": 1024.0, "M": 1024.0**2, "G": 1024.0**3}
_PROGRESS_RE: Final = re.compile(
    r"\s*(?P<bytes>\d+)\s+(?P<pct>\d+)%\s+(?P<rate>[\d.]+)(?P<unit>[kMG])B/s\s+"
    r"(?:\?\?:\?\?:\?\?|(?P<h>\d+):(?P<m>\d\d):(?P<s>\d\d))"
    r"(?P<last>\s+\(xfr#\d+,\s+(?:ir|to)-chk=\d+/\d+\))?\s*"
)
_STAT_RE: Final = re.compile(
    r"(?P<key>Number of regular files transferred|Total bytes sent|Total bytes received):"
    r"\s+(?P<value>[\d,]+)"
)


@dataclass(frozen=True, slots=True)
class Progress:
    """One progress report: bytes of file data done, fraction of the whole copy (0..1,
    from rsync's percentage), current rate (bytes/s) and estimated seconds left (None
    when rsync cannot tell)."""

    bytes_done: int
    fraction: float
    rate: float
    eta_seconds: float | None


@dataclass(frozen=True, slots=True)
class RsyncResult:
    """A finished copy: rsync's byte and file counts (``--stats``), wall-clock seconds,
    and its exit code (0, or 24 when source files vanished while being copied)."""

    bytes_sent: int
    bytes_received: int
    files_transferred: int
    seconds: float
    returncode: int


class RsyncError(AdapterError):
    """rsync failed: ``returncode`` (None when it never ran) and the tail of its
    standard error in ``stderr``."""

    def __init__(self, message: str, *, returncode: int | None, stderr: str) -> None:
        super().__init__(message)
        self.returncode = returncode
        self.stderr = stderr


class RsyncCancelled(RsyncError):
    """The copy was cancelled (``cancel`` was set): rsync was killed."""


# --- the push ------------------------------------------------------------------------


def rsync_push(
    source: Path,
    root: str,
    connect: Callable[[], ssl.SSLSocket],
    *,
    exclude: Sequence[str] = (),
    bwlimit: int | None = None,
    progress: Callable[[Progress], None] | None = None,
    delete: bool = True,
    files_from: Sequence[str] | None = None,
    cancel: threading.Event | None = None,
    checksum: bool = False,
    io_timeout: int = 300,
    rsync: str = "rsync",
) -> RsyncResult:
    """Copy directory ``source`` (its content) into the peer's root named ``root``.

    ``connect`` opens the mutual-TLS connection to the peer's
    :class:`~hamod.replication.rsync_server.RsyncServer` (e.g.
    :func:`~hamod.replication.conn.tls_connector`). ``exclude``: rsync/lsyncd patterns
    relative to ``source`` (excluded files on the peer are neither copied nor deleted).
    ``bwlimit``: bytes per second (rsync's ``--bwlimit`` in KiB/s, rounded up).
    ``progress`` is called from this thread with each report. ``delete``: remove on the
    peer what ``source`` does not have. ``files_from``: copy only these paths relative
    to ``source`` (directories recursively); a listed path missing from ``source`` is
    deleted on the peer when ``delete``. ``cancel``: set it (from another thread) to
    kill rsync; the call then raises :class:`RsyncCancelled`. ``checksum``: compare
    every file by content, not by size and modification time (reads everything on both
    sides). ``io_timeout``: rsync gives up after that many seconds without I/O (both
    sides).

    Raises :class:`~hamod.errors.PeerError` when the peer cannot be reached or refuses,
    :class:`RsyncError` when rsync fails (exit code other than 0 and 24).
    """
    try:
        check_root_name(root)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    for path in files_from or ():
        _check_listed(path)
    source_dir = Path(os.path.abspath(source))
    if not source_dir.is_dir():
        raise UsageError(f"rsync source {source} is not a directory")
    program = shutil.which(rsync)
    if program is None:
        raise AdapterError(f"rsync program {rsync!r} not found; install the rsync package")
    args = push_args(
        exclude=exclude,
        bwlimit=bwlimit,
        delete=delete,
        files_from=files_from is not None,
        checksum=checksum,
        io_timeout=io_timeout,
    )
    ctrl, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    rsh = " ".join(
        shlex.quote(word)
        for word in (sys.executable, "-I", "-S", str(_RSH), "--fd", str(child_end.fileno()))
    )
    command = [program, *args, f"--rsh={rsh}", f"{source_dir}/", f"{_PEER_HOST}:."]
    started = time.monotonic()
    try:
        proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL if files_from is None else subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=(child_end.fileno(),),
            env=_rsync_env(),
            start_new_session=True,
        )
    except OSError as exc:
        ctrl.close()
        raise RsyncError(f"cannot start rsync: {exc}", returncode=None, stderr="") from None
    finally:
        child_end.close()
    transport = _Transport(ctrl, root, connect, timeout=float(min(io_timeout, 30)))
    transport.start()
    feeder = None
    if files_from is not None:
        assert proc.stdin is not None
        feeder = threading.Thread(
            target=_feed, args=(proc.stdin, list(files_from)), name="hamod-rsync-list", daemon=True
        )
        feeder.start()
    run = _Run(proc, progress)
    try:
        cancelled = run.wait(cancel)
    except BaseException:  # the progress callback failed, or an interrupt
        run.kill()
        transport.stop("interrupted")
        transport.join(5)
        run.drain_stderr(deadline=time.monotonic())
        raise
    if cancelled:
        transport.stop("cancelled")
    else:
        transport.finish()
    transport.join(10)
    if transport.is_alive():
        transport.stop("rsync exited")
        transport.join(5)
    run.drain_stderr(deadline=time.monotonic() + 5)
    if feeder is not None:
        feeder.join(5)
    seconds = time.monotonic() - started
    code = proc.returncode
    stderr = _combine(run.stderr(), transport.peer_stderr.decode("utf-8", "replace"))
    what = f"rsync of {source_dir} to root {root!r}"
    if cancelled:
        raise RsyncCancelled(f"{what} cancelled", returncode=code, stderr=stderr)
    if transport.error is not None:
        raise PeerError(f"{what}: {transport.error}")
    if code not in (0, VANISHED):
        meaning = _EXIT_CODES.get(code, "see rsync(1)")
        cause = _cause(stderr)
        if transport.accepted and transport.peer_exit is None:
            cause += (
                "; " if cause else ""
            ) + "the peer's rsync did not report its end (stopped, or the link broke)"
        raise RsyncError(
            f"{what} failed with exit code {code} ({meaning})" + (f": {cause}" if cause else ""),
            returncode=code,
            stderr=stderr,
        )
    if progress is not None and run.last_fraction < 1.0:
        progress(Progress(run.stats.get("bytes_done", 0), 1.0, 0.0, 0.0))
    return RsyncResult(
        bytes_sent=run.stats.get("Total bytes sent", 0),
        bytes_received=run.stats.get("Total bytes received", 0),
        files_transferred=run.stats.get("Number of regular files transferred", 0),
        seconds=seconds,
        returncode=code,
    )


def push_args(
    *,
    exclude: Sequence[str] = (),
    bwlimit: int | None = None,
    delete: bool = True,
    files_from: bool = False,
    checksum: bool = False,
    io_timeout: int = 300,
) -> list[str]:
    """rsync's options for a push (without the remote shell and the paths)."""
    args = [*BASE_ARGS, "--info=progress2,stats2", f"--timeout={int(io_timeout)}"]
    if checksum:
        args.append("--checksum")
    if delete:
        args.append("--delete")
    if bwlimit is not None:
        if bwlimit <= 0:
            raise UsageError(f"bwlimit must be a positive number of bytes/s, got {bwlimit}")
        args.append(f"--bwlimit={max(1, math.ceil(bwlimit / 1024))}")
    for pattern in exclude:
        if not pattern or any(ord(c) < 32 for c in pattern):
            raise UsageError(f"bad exclude pattern {pattern!r}")
        args.append(f"--exclude={pattern}")
    if files_from:
        # -a does not imply -r with --files-from: listed directories are copied whole.
        args += ["--files-from=-", "--from0", "--recursive"]
        args.append("--delete-missing-args" if delete else "--ignore-missing-args")
    return args


_EXIT_CODES: Final = {
    1: "syntax or usage error",
    2: "protocol incompatibility",
    3: "errors selecting input/output files, dirs",
    5: "error starting client-server protocol",
    10: "error in socket I/O",
    11: "error in file I/O",
    12: "error in rsync protocol data stream",
    13: "errors with program diagnostics",
    14: "error in IPC code",
    20: "received SIGUSR1 or SIGINT",
    22: "error allocating core memory buffers",
    23: "partial transfer due to error",
    25: "the --max-delete limit stopped deletions",
    30: "timeout in data send/receive",
    35: "timeout waiting for daemon connection",
    255: "the transport (remote shell) failed",
}


def _rsync_env() -> dict[str, str]:
    """This process's environment without what would change rsync's behaviour."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RSYNC_")}
    env["LC_ALL"] = "C"
    return env


def _feed(stdin: IO[bytes], paths: list[str]) -> None:
    """Write ``paths`` NUL-separated to rsync's stdin (``--files-from=- --from0``)."""
    try:
        for path in paths:
            stdin.write(os.fsencode(path) + b"\0")
    except (OSError, ValueError):  # rsync died: its exit code says why
        pass
    finally:
        with contextlib.suppress(OSError, ValueError):
            stdin.close()


def _check_listed(path: str) -> str:
    """``path`` if it can be listed in ``files_from``: relative, inside the source."""
    if not path or "\0" in path or path.startswith("/") or ".." in path.split("/"):
        raise UsageError(f"files_from: {path!r} must be a relative path inside the source")
    return path


def _combine(local: str, peer: str) -> str:
    """rsync's standard error here, then the peer's (its lines marked ``peer:``)."""
    lines = local.strip().splitlines()
    lines += [f"peer: {line}" for line in peer.strip().splitlines()]
    return "\n".join(line for line in lines if line.strip())


def _cause(stderr: str) -> str:
    """The line that says what went wrong: rsync's first specific message (``rsync:``
    but not the generic ``rsync error:`` summary), else the last line."""
    lines = stderr.splitlines()
    for line in lines:
        if line.removeprefix("peer: ").startswith("rsync: "):
            return line
    return lines[-1] if lines else ""


class _Run:
    """Reads rsync's stdout (progress, stats) and stderr until it exits."""

    def __init__(self, proc: subprocess.Popen[bytes], progress: Callable[[Progress], None] | None):
        assert proc.stdout is not None and proc.stderr is not None
        self.proc = proc
        self.progress = progress
        self.stats: dict[str, int] = {}
        self.last_fraction = 0.0
        self._partial = b""
        self._tail = bytearray()
        self._out = proc.stdout.fileno()
        self._err = proc.stderr.fileno()
        self._sel = selectors.DefaultSelector()
        self._sel.register(self._out, selectors.EVENT_READ)
        self._sel.register(self._err, selectors.EVENT_READ)

    def wait(self, cancel: threading.Event | None) -> bool:
        """Until stdout ends and rsync exited; True when ``cancel`` was set (rsync killed)."""
        while self._out in self._sel.get_map() or self.proc.poll() is None:
            if cancel is not None and cancel.is_set():
                self.kill()
                return True
            for key, _ in self._sel.select(0.1):
                self._read(key.fd)
        self._line(self._partial)
        return False

    def drain_stderr(self, deadline: float) -> None:
        while self._sel.get_map() and time.monotonic() < deadline:
            for key, _ in self._sel.select(0.1):
                self._read(key.fd)
        self._sel.close()
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self.proc.stdout.close()
        self.proc.stderr.close()

    def stderr(self) -> str:
        return self._tail.decode("utf-8", "replace").strip()

    def kill(self) -> None:
        """Kill rsync and its remote shell helper (one process group), and reap rsync."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(2)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        # the remote shell helper may outlive rsync: same process group
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)

    def _read(self, fd: int) -> None:
        try:
            data = os.read(fd, 65536)
        except OSError:
            data = b""
        if not data:
            self._sel.unregister(fd)
            return
        if fd == self._err:
            self._tail += data
            del self._tail[:-_STDERR_TAIL]
            return
        *lines, self._partial = re.split(rb"[\r\n]", self._partial + data)
        for line in lines:
            self._line(line)

    def _line(self, raw: bytes) -> None:
        line = raw.decode("utf-8", "replace")
        stat = _STAT_RE.match(line)
        if stat is not None:
            self.stats[stat["key"]] = int(stat["value"].replace(",", ""))
            return
        report = parse_progress(line)
        if report is None:
            return
        self.stats["bytes_done"] = report.bytes_done
        self.last_fraction = report.fraction
        if self.progress is not None:
            self.progress(report)


def parse_progress(line: str) -> Progress | None:
    """A ``--info=progress2`` line (``--no-h``) as a :class:`Progress`, else None.

    rsync prints the time left while a file is in flight, and the elapsed time on the
    line that ends a file (``xfr#``): there the time left is estimated from the
    percentage and the rate."""
    match = _PROGRESS_RE.fullmatch(line)
    if match is None:
        return None
    done = int(match["bytes"])
    fraction = min(1.0, int(match["pct"]) / 100)
    rate = float(match["rate"]) * _UNITS[match["unit"]]
    eta: float | None
    if fraction >= 1.0:
        eta = 0.0
    elif rate <= 0:
        eta = None
    elif match["last"]:
        eta = done * (1 / fraction - 1) / rate if fraction > 0 else None
    elif match["h"] is not None:
        eta = int(match["h"]) * 3600.0 + int(match["m"]) * 60.0 + int(match["s"])
    else:
        eta = None
    return Progress(done, fraction, rate, eta)


# --- the transport: rsync's remote shell side ----------------------------------------


class _Transport(threading.Thread):
    """Receives the remote shell helper's descriptors, opens the TLS connection, sends
    the request and relays; ``error`` says why the peer link failed (None: it did not)."""

    def __init__(
        self,
        ctrl: socket.socket,
        root: str,
        connect: Callable[[], ssl.SSLSocket],
        *,
        timeout: float,
    ) -> None:
        super().__init__(name="hamod-rsync-link", daemon=True)
        self._ctrl = ctrl
        self._root = root
        self._connect = connect
        self._timeout = timeout
        self._lock = threading.Lock()
        self._stopped: str | None = None
        self._tls: ssl.SSLSocket | None = None
        self._relay: Relay | None = None
        self._rest = b""
        self.error: str | None = None
        self.peer_stderr = bytearray()
        self.peer_exit: int | None = None
        self.accepted = False  # the peer accepted the request: its rsync ran

    def _keep_stderr(self, data: bytes) -> None:
        self.peer_stderr += data
        del self.peer_stderr[:-_STDERR_TAIL]

    def _keep_exit(self, code: int) -> None:
        self.peer_exit = code

    def finish(self) -> None:
        """rsync exited: end once its last bytes are sent."""
        with self._lock:
            if self._relay is not None:
                self._relay.finish()

    def stop(self, reason: str) -> None:
        with self._lock:
            self._stopped = reason
            if self._relay is not None:
                self._relay.stop(reason)
            if self._tls is not None:
                shutdown_socket(self._tls)
        shutdown_socket(self._ctrl)

    def run(self) -> None:
        fds: list[int] = []
        status = 0
        try:
            command, fds = self._receive()
            if command is None:  # rsync ended before starting its remote shell
                return
            tls = self._open(command)
            self.accepted = True
            with self._lock:
                self._tls = tls
            writer = fds.pop()  # the relay owns it: closing it tells rsync the peer is done
            try:
                self._relay_with(tls, fds[0], writer)
            finally:
                close_tls(tls)
        except PeerError as exc:
            status = 255
            if self._stopped is None:
                self.error = str(exc)
        finally:
            for fd in fds:
                with contextlib.suppress(OSError):
                    os.close(fd)
            with contextlib.suppress(OSError):
                self._ctrl.send(bytes([status]))
            self._ctrl.close()

    def _receive(self) -> tuple[list[str] | None, list[int]]:
        try:
            payload, fds, _, _ = socket.recv_fds(self._ctrl, 65536, 2)
        except OSError as exc:
            raise PeerError(f"no word from rsync's remote shell: {exc}") from None
        if not payload:
            for fd in fds:
                os.close(fd)
            return None, []
        if len(fds) != 2:
            for fd in fds:
                os.close(fd)
            raise PeerError("rsync's remote shell did not pass its descriptors")
        try:
            command = json.loads(payload.decode("utf-8", "surrogateescape"))
        except ValueError:
            command = None
        if not isinstance(command, list) or not all(isinstance(w, str) for w in command):
            raise PeerError(f"unexpected message from rsync's remote shell: {payload[:200]!r}")
        return command, fds

    def _open(self, command: list[str]) -> ssl.SSLSocket:
        args = _server_args(command)
        request = encode_request(self._root, args)
        if self._stopped is not None:
            raise PeerError(self._stopped)
        tls = self._connect()
        try:
            send_line(tls, request, timeout=self._timeout)
            line, rest = read_line(tls, limit=MAX_REPLY, timeout=self._timeout)
            refusal = parse_reply(line)
        except (PeerError, RequestError) as exc:
            close_tls(tls)
            raise PeerError(f"rsync request to the peer failed: {exc}") from None
        if refusal is not None:
            close_tls(tls)
            raise PeerError(f"the peer refused the copy: {refusal}")
        self._rest = rest
        return tls

    def _relay_with(self, tls: ssl.SSLSocket, reader: int, writer: int) -> None:
        relay = Relay(
            tls,
            reader,
            writer,
            side="client",
            initial=self._rest,
            on_stderr=self._keep_stderr,
            on_exit=self._keep_exit,
        )
        with self._lock:
            self._relay = relay
            if self._stopped is not None:
                relay.stop(self._stopped)
        problem = relay.run()
        if problem is not None and self._stopped is None:
            raise PeerError(f"link to the peer broke during the copy: {problem}")


def _server_args(command: list[str]) -> list[str]:
    """The arguments for ``rsync --server`` in the remote command rsync asked its remote
    shell to run (``hamod-peer rsync --server ...``), checked as the server will."""
    words = list(command)
    if words[:1] == ["-l"]:
        words = words[2:]
    if words[:2] != [_PEER_HOST, "rsync"]:
        raise PeerError(f"unexpected remote command from rsync: {command[:4]}")
    try:
        return check_server_args(words[2:])
    except RequestError as exc:
        raise PeerError(f"rsync asked for a remote command the peer would refuse: {exc}") from None


# --- keeping divergent data aside ----------------------------------------------------


def keep_aside(
    directory: Path, aside_root: Path, *, hardlink: bool = True, now: datetime | None = None
) -> Path:
    """Preserve the content of ``directory`` in a new ``aside_root/<UTC timestamp>``
    (returned) before a full copy overwrites it.

    With ``hardlink`` (default) it is a hard-link snapshot (``cp -al``): instant and
    free on the same file system; rsync replaces changed files by new ones (temporary
    file + rename), so the snapshot keeps every old content. If hard links are
    impossible (another file system: EXDEV), or without ``hardlink``, a full ``cp -a``.
    AdapterError when the copy fails (the partial snapshot is removed)."""
    src = Path(os.path.realpath(directory))
    if not src.is_dir():
        raise UsageError(f"cannot keep {directory} aside: not a directory")
    aside_root = Path(os.path.abspath(aside_root))
    real_root = Path(os.path.realpath(aside_root))
    if real_root == src or src in real_root.parents:
        raise UsageError(f"aside directory {aside_root} must be outside {directory}")
    try:
        aside_root.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise AdapterError(f"cannot create {aside_root}: {exc.strerror}") from None
    target = _new_stamp_dir(aside_root, now or datetime.now(UTC))
    link = hardlink and os.stat(src).st_dev == os.stat(aside_root).st_dev
    if link:
        error = _cp(["-al"], src, target)
        if error is not None and "cross-device" in error:
            _empty(target)
            link = False
        elif error is not None:
            shutil.rmtree(target, ignore_errors=True)
            raise AdapterError(f"cannot keep {directory} aside in {target}: {error}")
    if not link:
        error = _cp(["-a"], src, target)
        if error is not None:
            shutil.rmtree(target, ignore_errors=True)
            raise AdapterError(f"cannot keep {directory} aside in {target}: {error}")
    return target


def _new_stamp_dir(parent: Path, now: datetime) -> Path:
    stamp = now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    for name in _names(stamp):
        try:
            (parent / name).mkdir(mode=0o700)
        except FileExistsError:
            continue
        except OSError as exc:
            raise AdapterError(f"cannot create {parent / name}: {exc.strerror}") from None
        return parent / name
    raise AssertionError("unreachable")


def _names(stamp: str) -> Iterator[str]:
    yield stamp
    n = 2
    while True:
        yield f"{stamp}-{n}"
        n += 1


def _cp(options: list[str], src: Path, target: Path) -> str | None:
    """Copy the content of ``src`` into ``target`` with cp; None or cp's error."""
    try:
        done = subprocess.run(
            ["cp", *options, "--", f"{src}/.", str(target)],
            capture_output=True,
            env={**os.environ, "LC_ALL": "C"},
            check=False,
        )
    except OSError as exc:
        return f"cannot run cp: {exc}"
    if done.returncode == 0:
        return None
    return done.stderr.decode("utf-8", "replace").strip() or f"cp exit code {done.returncode}"


def _empty(directory: Path) -> None:
    for entry in directory.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
