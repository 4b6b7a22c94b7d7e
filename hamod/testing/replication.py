"""Shared helpers of the replication acceptance tests (issue #4) on the namespace lab.

The module ``demo`` replicates ``/srv/data`` (:data:`DATA`, each lab node's own overlay).
The tests write through the mount on the primary, reach each node's copy *underneath*
its mount from the host (the data path's private bind mount :data:`UNDER`, seen through
``/proc/<pid 1 of the node>/root``), run ``hamod verify`` inside the nodes, and poke the
secondary's replication ports with forged input.

Host side: :func:`replicated_spec`, :func:`wait_in_sync`, :func:`host_path`,
:func:`under`, :func:`datapath_log`, :func:`hamod_verify` (:class:`VerifyRun`),
:func:`tree_differences`, :func:`compare_in_node`, :func:`snapshot`, :func:`acl_access`,
:func:`flip_byte`, :func:`exercise` / :func:`start_exerciser` (run :func:`run_exercise`
inside a node), :func:`probe` (run :func:`run_probe` inside a node),
:func:`rogue_credentials` (another CA) and :func:`cluster_credentials` (the node's own).

Node side (``python -m hamod.testing.replication CMD``, the lab's nodes share ``/usr``
and the checkout):

- ``exercise '<json>'``: :func:`run_exercise`, a seeded random sequence of file-system
  operations (writes, truncates, hole punches, renames and exchanges, hard links,
  symlinks, mkdir/rmdir, chmod/chown, xattrs, fsync/fdatasync, directory fsyncs) applied
  in lockstep to several roots — the replicated mount and a native directory side by
  side — comparing every outcome (value or errno); prints a JSON summary.
- ``probe '<json>'``: :func:`run_probe`, one connection to a peer port (plain TCP or
  TLS with the given credentials), sends bytes, reads until the peer closes or a timeout,
  and prints what happened as JSON (handshake, frames received, close).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import random
import re
import select
import socket
import ssl
import struct
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import ip_address
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hamod.testing.cluster import LabCluster, ModuleSpec

__all__ = [
    "DATA",
    "KINDS",
    "NATIVE",
    "UNDER",
    "WAIT",
    "ExerciseResult",
    "M",
    "ProbeResult",
    "VerifyRun",
    "acl_access",
    "cluster_credentials",
    "compare_in_node",
    "datapath_log",
    "exercise",
    "flip_byte",
    "hamod_verify",
    "host_path",
    "probe",
    "replicated_spec",
    "rogue_credentials",
    "run_exercise",
    "run_probe",
    "snapshot",
    "start_exerciser",
    "tree_differences",
    "under",
    "wait_in_sync",
]

M = "demo"
DATA = "/srv/data"
UNDER = f"/run/hamod/dp/{M}/under/0"
NATIVE = "/srv/native"
WAIT = 60.0
TLS_DIR = "/etc/hamod/tls"


# --- the cluster (host side) ----------------------------------------------------------


def replicated_spec(**replication: Any) -> ModuleSpec:
    """The lab's ``demo`` module replicating :data:`DATA` (a
    :class:`~hamod.testing.cluster.ModuleSpec`); ``replication`` adds or overrides keys
    of its ``replication`` section."""
    from hamod.testing.cluster import ModuleSpec

    rep: dict[str, Any] = {"directories": [{"path": DATA}], "link_timeout": "3s"}
    rep.update(replication)
    return ModuleSpec(timeout="2s", extra={"replication": rep})


def wait_in_sync(
    c: LabCluster, primary: str, secondary: str, timeout: float = WAIT, *, module: str = M
) -> float:
    """Wait until ``primary`` is PRIM, ``secondary`` SECOND, up to date, no resync;
    returns the seconds it took."""
    from hamod.api.models import State

    t0 = time.monotonic()
    c.wait_states(module, {primary: State.PRIM, secondary: State.SECOND}, timeout)
    while time.monotonic() < t0 + timeout:
        st = c.try_state(secondary, module)
        if st is not None and st.up_to_date and st.resync is None and st.state is State.SECOND:
            return time.monotonic() - t0
        time.sleep(0.1)
    raise AssertionError(
        f"{secondary} not in sync: {c.try_state(secondary, module)}\n{c.diagnose(module)}"
    )


def host_path(c: LabCluster, node: str, path: str) -> Path:
    """``path`` inside the running ``node``, from the host (``/proc/<pid>/root``)."""
    p = c._host_path(node, path)
    if p is None:
        raise AssertionError(f"{node} is not running: cannot reach {path}")
    return Path(p)


def under(c: LabCluster, node: str, sub: str = "") -> Path:
    """The directory underneath ``node``'s mount of :data:`DATA` (its real copy), from
    the host; ``sub`` a path inside it."""
    base = host_path(c, node, UNDER)
    return base / sub if sub else base


def datapath_log(c: LabCluster, node: str, module: str = M) -> str:
    """The data-path log of ``module`` on ``node``."""
    return c.read(node, f"/var/log/hamod/{module}/datapath.log")


@dataclass(frozen=True)
class VerifyRun:
    """One ``hamod verify -m MOD`` run inside a node."""

    node: str
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def lines(self) -> list[str]:
        return self.stdout.splitlines()

    @property
    def differences(self) -> list[str]:
        """The difference lines (``/srv/data/x: ...``), without the summaries."""
        return [ln for ln in self.lines if ": " in ln and not _summary(ln)]

    def __str__(self) -> str:
        return (
            f"hamod verify on {self.node}: exit {self.returncode} in {self.seconds:.1f} s\n"
            f"{self.stdout}{self.stderr}"
        )


_SUMMARY = re.compile(r"^\S+: (equal|\d+ difference\(s\)) \(\d+ names, \d+ bytes hashed\)$")


def _summary(line: str) -> bool:
    return _SUMMARY.match(line) is not None


def hamod_verify(c: LabCluster, node: str, module: str = M, timeout: float = 120.0) -> VerifyRun:
    """``hamod verify -m MODULE -q`` inside ``node``."""
    t0 = time.monotonic()
    res = c.hamod(node, "verify", "-m", module, "-q", timeout=timeout)
    return VerifyRun(node, res.returncode, res.stdout, res.stderr, time.monotonic() - t0)


def tree_differences(a: Path, b: Path, *, rounds: int = 0) -> list[str]:
    """Every difference between two trees (``hamod.verify``'s lines, A = here, B = peer),
    read from the host (paths under ``/proc/<pid>/root`` reach inside nodes)."""
    from hamod.verify import manifest, verify

    report = verify(lambda p: manifest(a, paths=p), lambda p: manifest(b, paths=p), rounds=rounds)
    return [str(d) for d in report.differences]


def compare_in_node(c: LabCluster, node: str, a: str, b: str) -> subprocess.CompletedProcess[str]:
    """``python -m hamod.verify A B`` inside ``node`` (e.g. its mount against a native
    directory); never raises for a non-zero exit."""
    from hamod.testing.cluster import PYTHON

    return c.lab.exec(node, [PYTHON, "-m", "hamod.verify", a, b], check=False, timeout=300)


def snapshot(root: Path) -> dict[str, str]:
    """Path → the JSON line of its ``hamod.verify`` entry (type, mode, owner, xattrs,
    content digests, links...): what must not change when nothing is written."""
    from hamod.verify import manifest

    return {e.path: e.to_line().decode() for e in manifest(root)}


# --- faults to inject (host side) -----------------------------------------------------

ACL_USER_OBJ, ACL_USER, ACL_GROUP_OBJ, ACL_GROUP, ACL_MASK, ACL_OTHER = 1, 2, 4, 8, 0x10, 0x20
_ACL_UNDEFINED_ID = 0xFFFFFFFF


def acl_access(mode: int, users: Mapping[int, int]) -> bytes:
    """The raw ``system.posix_acl_access`` value (version 2) of permission bits ``mode``
    plus named ``users`` (uid → rwx bits); the mask is the group bits, so setting it
    leaves the mode unchanged."""
    entries = [(ACL_USER_OBJ, (mode >> 6) & 7, _ACL_UNDEFINED_ID)]
    entries += [(ACL_USER, perm, uid) for uid, perm in sorted(users.items())]
    entries.append((ACL_GROUP_OBJ, (mode >> 3) & 7, _ACL_UNDEFINED_ID))
    if users:
        entries.append((ACL_MASK, (mode >> 3) & 7, _ACL_UNDEFINED_ID))
    entries.append((ACL_OTHER, mode & 7, _ACL_UNDEFINED_ID))
    return struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *e) for e in entries)


def flip_byte(path: Path, offset: int) -> None:
    """Invert one byte of ``path`` in place (and fsync)."""
    fd = os.open(path, os.O_RDWR)
    try:
        old = os.pread(fd, 1, offset)
        assert len(old) == 1, f"{path}: no byte at {offset}"
        os.pwrite(fd, bytes([old[0] ^ 0xFF]), offset)
        os.fsync(fd)
    finally:
        os.close(fd)


# --- the exerciser --------------------------------------------------------------------

_DIRS = ("", "a", "b", "g", "a/c", "b/d", "a/c/e")
_FILES = ("f0", "f1", "f2", "f3", "f4", "f5", "f6", "f7")
_HANDLES = ("h0", "h1")
_OWNERS = (0, 1000, 1001)
_MODES = (0o600, 0o644, 0o640, 0o755, 0o2755, 0o4755, 0o1777, 0o444)
_OPS: tuple[tuple[str, int], ...] = (
    ("write", 14),
    ("pwrite", 16),
    ("open", 6),
    ("close", 5),
    ("ftruncate", 3),
    ("truncate", 4),
    ("fsync", 4),
    ("fdatasync", 3),
    ("punch", 3),
    ("mkdir", 3),
    ("rmdir", 2),
    ("rmtree", 1),
    ("unlink", 5),
    ("rename", 8),
    ("link", 5),
    ("symlink", 2),
    ("chmod", 3),
    ("chown", 2),
    ("setxattr", 3),
    ("removexattr", 1),
    ("fsyncdir", 2),
)
KINDS = tuple(k for k, _ in _OPS)
"""Every operation of the exerciser."""
_RENAME_NOREPLACE, _RENAME_EXCHANGE = 1, 2
_FALLOC_KEEP_SIZE, _FALLOC_PUNCH_HOLE = 1, 2


@dataclass
class ExerciseResult:
    """What :func:`run_exercise` did: operations run, per kind, outcome mismatches
    between the roots (``op: outcomes``), errors per kind (same on every root)."""

    seed: int
    ops: int = 0
    kinds: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    mismatches: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_json(self) -> str:
        return json.dumps(self.__dict__, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ExerciseResult:
        return cls(**json.loads(text))


class _Root:
    """One root the exerciser works in; open files are named handles."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fds: dict[str, int] = {}

    def p(self, rel: str) -> str:
        return os.path.join(self.path, rel)

    def close_all(self) -> None:
        for fd in self.fds.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        self.fds.clear()

    def run(self, op: str, args: tuple[Any, ...]) -> tuple[str, Any]:
        try:
            return ("ok", getattr(self, f"_{op}")(*args))
        except OSError as exc:
            return ("err", errno.errorcode.get(exc.errno or 0, str(exc.errno)))

    def _handle(self, h: str) -> int:
        fd = self.fds.get(h)
        if fd is None:
            raise OSError(errno.EBADF, f"handle {h} not open")
        return fd

    def _ensure(self, h: str, rel: str) -> int:
        """Handle ``h``, opened on ``rel`` first if it is not open."""
        if h not in self.fds:
            self.fds[h] = os.open(self.p(rel), os.O_RDWR | os.O_CREAT, 0o644)
        return self.fds[h]

    def _write(self, rel: str, flags: int, off: int, data: bytes, sync: str) -> int:
        os.makedirs(os.path.dirname(self.p(rel)), exist_ok=True)
        fd = os.open(self.p(rel), os.O_WRONLY | os.O_CREAT | flags, 0o644)
        try:
            n = os.write(fd, data) if flags & os.O_APPEND else os.pwrite(fd, data, off)
            if sync == "fsync":
                os.fsync(fd)
            elif sync == "fdatasync":
                os.fdatasync(fd)
            return n
        finally:
            os.close(fd)

    def _open(self, h: str, rel: str, flags: int) -> None:
        if h in self.fds:
            os.close(self.fds.pop(h))
        self.fds[h] = os.open(self.p(rel), os.O_RDWR | os.O_CREAT | flags, 0o644)

    def _close(self, h: str) -> None:
        os.close(self._handle(h))
        del self.fds[h]

    def _pwrite(self, h: str, rel: str, off: int, data: bytes) -> int:
        return os.pwrite(self._ensure(h, rel), data, off)

    def _ftruncate(self, h: str, rel: str, size: int) -> None:
        os.ftruncate(self._ensure(h, rel), size)

    def _truncate(self, rel: str, size: int) -> None:
        os.truncate(self.p(rel), size)

    def _fsync(self, h: str, rel: str) -> None:
        os.fsync(self._ensure(h, rel))

    def _fdatasync(self, h: str, rel: str) -> None:
        os.fdatasync(self._ensure(h, rel))

    def _punch(self, h: str, rel: str, off: int, size: int) -> int:
        from hamod.datapath import libc

        fd = self._ensure(h, rel)
        libc.fallocate(fd, _FALLOC_PUNCH_HOLE | _FALLOC_KEEP_SIZE, off, size)
        return os.fstat(fd).st_size

    def _mkdir(self, rel: str, mode: int) -> None:
        os.makedirs(os.path.dirname(self.p(rel)), exist_ok=True)
        os.mkdir(self.p(rel), mode)

    def _rmdir(self, rel: str) -> None:
        os.rmdir(self.p(rel))

    def _rmtree(self, rel: str) -> int:
        """Remove a directory and everything below it, deepest first; the count."""
        top = self.p(rel)
        if not os.path.isdir(top) or os.path.islink(top):
            raise OSError(errno.ENOTDIR, f"{rel} is not a directory")
        n = 0
        for dirpath, dirs, files in os.walk(top, topdown=False):
            for name in sorted(files) + sorted(
                d for d in dirs if os.path.islink(os.path.join(dirpath, d))
            ):
                os.unlink(os.path.join(dirpath, name))
                n += 1
            for name in sorted(d for d in dirs if not os.path.islink(os.path.join(dirpath, d))):
                os.rmdir(os.path.join(dirpath, name))
                n += 1
        os.rmdir(top)
        return n + 1

    def _unlink(self, rel: str) -> None:
        os.unlink(self.p(rel))

    def _rename(self, a: str, b: str, flags: int) -> None:
        from hamod.datapath import libc

        if flags:
            libc.renameat2(libc.AT_FDCWD, self.p(a), libc.AT_FDCWD, self.p(b), flags)
        else:
            os.rename(self.p(a), self.p(b))

    def _link(self, a: str, b: str, replace: bool) -> None:
        if replace and a != b:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.p(b))
        os.link(self.p(a), self.p(b), follow_symlinks=False)

    def _symlink(self, target: str, rel: str) -> None:
        os.symlink(target, self.p(rel))

    def _chmod(self, rel: str, mode: int) -> None:
        os.chmod(self.p(rel), mode)

    def _chown(self, rel: str, uid: int, gid: int, follow: bool) -> None:
        os.chown(self.p(rel), uid, gid, follow_symlinks=follow)

    def _setxattr(self, rel: str, name: str, value: bytes) -> None:
        os.setxattr(self.p(rel), name, value, follow_symlinks=False)

    def _removexattr(self, rel: str, name: str) -> None:
        os.removexattr(self.p(rel), name, follow_symlinks=False)

    def _fsyncdir(self, rel: str) -> None:
        fd = os.open(self.p(rel) if rel else self.path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _next_op(rng: random.Random, table: Sequence[tuple[str, int]]) -> tuple[str, tuple[Any, ...]]:
    """One random operation of ``table`` (kind, weight) and its arguments."""
    kinds, weights = zip(*table, strict=True)
    op: str = rng.choices(kinds, weights)[0]

    def name() -> str:
        return os.path.join(rng.choice(_DIRS), rng.choice(_FILES))

    def any_name() -> str:  # files and directories, for renames
        return rng.choice(_DIRS[1:]) if rng.random() < 0.2 else name()

    def offset() -> int:
        r = rng.random()
        return rng.randrange(0, 1 << 18) if r < 0.9 else rng.randrange(1 << 20, 3 << 20)

    def data() -> bytes:
        size = rng.choice((1, 17, 512, 4096, 8191, 65536, rng.randrange(1, 200_000)))
        return rng.randbytes(size)

    h = rng.choice(_HANDLES)
    match op:
        case "write":
            flags = rng.choice((0, 0, os.O_TRUNC, os.O_APPEND))
            sync = rng.choice(("", "", "fsync", "fdatasync"))
            return op, (name(), flags, offset(), data(), sync)
        case "open":
            return op, (h, name(), rng.choice((0, 0, os.O_TRUNC, os.O_APPEND)))
        case "close":
            return op, (h,)
        case "fsync" | "fdatasync":
            return op, (h, name())
        case "pwrite":
            return op, (h, name(), offset(), data())
        case "ftruncate" | "truncate":
            size = rng.choice((0, rng.randrange(0, 1 << 18), rng.randrange(0, 3 << 20)))
            return op, ((h, name()) if op == "ftruncate" else (name(),)) + (size,)
        case "punch":
            return op, (h, name(), rng.randrange(0, 1 << 18), rng.randrange(1, 1 << 17))
        case "mkdir":
            return op, (rng.choice(_DIRS[1:]), rng.choice((0o755, 0o700, 0o2775)))
        case "rmdir" | "rmtree":
            return op, (rng.choice(_DIRS[1:]),)
        case "unlink":
            return op, (name(),)
        case "rename":
            flags = rng.choice((0, 0, 0, _RENAME_NOREPLACE, _RENAME_EXCHANGE))
            return op, (any_name(), any_name(), flags)
        case "link":
            return op, (name(), name(), rng.random() < 0.7)
        case "symlink":
            return op, (rng.choice((*_FILES, "c/f1", "nowhere")), name())
        case "chmod":
            return op, (rng.choice((name(), rng.choice(_DIRS[1:]))), rng.choice(_MODES))
        case "chown":
            uid, gid = rng.choice(_OWNERS), rng.choice(_OWNERS)
            return op, (name(), uid, gid, rng.random() < 0.5)
        case "setxattr":
            return op, (
                name(),
                rng.choice(("user.a", "user.b")),
                rng.randbytes(rng.randrange(0, 40)),
            )
        case "removexattr":
            return op, (name(), rng.choice(("user.a", "user.b")))
        case _:  # fsyncdir
            return op, (rng.choice(_DIRS),)


def run_exercise(
    roots: Sequence[str],
    seed: int,
    steps: int,
    *,
    seconds: float | None = None,
    pause: float = 0.0,
    kinds: Sequence[str] | None = None,
) -> ExerciseResult:
    """Apply ``steps`` random operations (or as many as fit in ``seconds``) from ``seed``
    to every root in lockstep (each root is created if missing and must start equal);
    every outcome must be the same on every root (else a mismatch is recorded). Handles
    are closed at the end. ``kinds``: only these operations (default all: :data:`KINDS`)."""
    table = [(k, w) for k, w in _OPS if kinds is None or k in kinds]
    if not table:
        raise ValueError(f"no operation among {kinds}")
    rng = random.Random(seed)
    for r in roots:
        os.makedirs(r, exist_ok=True)
    worlds = [_Root(r) for r in roots]
    result = ExerciseResult(seed=seed)
    t0 = time.monotonic()
    deadline = None if seconds is None else t0 + seconds
    try:
        while (result.ops < steps) if deadline is None else (time.monotonic() < deadline):
            op, args = _next_op(rng, table)
            outcomes = [w.run(op, args) for w in worlds]
            result.ops += 1
            result.kinds[op] = result.kinds.get(op, 0) + 1
            if outcomes[0][0] == "err":
                key = f"{op} {outcomes[0][1]}"
                result.errors[key] = result.errors.get(key, 0) + 1
            if any(o != outcomes[0] for o in outcomes[1:]) and len(result.mismatches) < 50:
                shown = tuple(a if not isinstance(a, bytes) else f"<{len(a)} bytes>" for a in args)
                result.mismatches.append(f"#{result.ops} {op}{shown}: {outcomes}")
            if pause:
                time.sleep(pause)
    finally:
        for w in worlds:
            w.close_all()
    result.seconds = time.monotonic() - t0
    return result


def exercise(
    c: LabCluster,
    node: str,
    roots: Sequence[str],
    seed: int,
    steps: int,
    *,
    kinds: Sequence[str] | None = None,
    timeout: float = 600.0,
) -> ExerciseResult:
    """:func:`run_exercise` inside ``node`` (roots are paths inside it)."""
    from hamod.testing.cluster import PYTHON

    arg = json.dumps({"roots": list(roots), "seed": seed, "steps": steps, "kinds": kinds})
    res = c.lab.exec(
        node,
        [PYTHON, "-m", "hamod.testing.replication", "exercise", arg],
        check=False,
        timeout=timeout,
    )
    if res.returncode != 0:
        raise AssertionError(
            f"exerciser (seed {seed}) in {node}: exit {res.returncode}: {res.stderr[-3000:]}"
        )
    return ExerciseResult.from_json(res.stdout.strip().splitlines()[-1])


def start_exerciser(
    c: LabCluster,
    node: str,
    root: str,
    seed: int,
    seconds: float,
    *,
    pause: float = 0.002,
    kinds: Sequence[str] | None = None,
) -> subprocess.Popen[str]:
    """:func:`run_exercise` on one root inside ``node`` for ``seconds``, in the
    background (``communicate()`` gives its JSON summary on stdout)."""
    from hamod.testing.cluster import PYTHON

    arg = json.dumps(
        {
            "roots": [root],
            "seed": seed,
            "steps": 0,
            "seconds": seconds,
            "pause": pause,
            "kinds": kinds,
        }
    )
    return c.lab.popen(
        node,
        [PYTHON, "-m", "hamod.testing.replication", "exercise", arg],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


# --- forged peer input ----------------------------------------------------------------


NOT_CONNECTED = "not connected"


@dataclass
class ProbeResult:
    """What one :func:`run_probe` connection saw."""

    handshake: str = ""
    """``ok``, or why the TLS handshake failed on this side."""
    sent: int = 0
    received: list[str] = field(default_factory=list)
    """Frames received (``repr``), or lines for the rsync port."""
    closed: str = ""
    """How the connection ended: ``handshake refused``, ``eof``, ``reset``, a TLS error,
    ``open`` (still open after the wait), or :data:`NOT_CONNECTED` (nobody listened)."""
    raw: str = ""
    """Undecodable bytes received (hex, truncated)."""

    def to_json(self) -> str:
        return json.dumps(self.__dict__)

    @classmethod
    def from_json(cls, text: str) -> ProbeResult:
        return cls(**json.loads(text))

    @property
    def connected(self) -> bool:
        """A TCP connection was made (else nothing can be concluded)."""
        return not self.closed.startswith(NOT_CONNECTED)

    @property
    def ended(self) -> bool:
        """The peer closed the connection (or refused the handshake)."""
        return self.connected and self.closed != "open"


def _client_ctx(spec: Mapping[str, Any]) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.check_hostname = False
    ca = spec.get("ca")
    if ca:
        ctx.load_verify_locations(cafile=ca)
    else:
        ctx.verify_mode = ssl.CERT_NONE
    if spec.get("cert"):
        ctx.load_cert_chain(spec["cert"], spec["key"])
    return ctx


def run_probe(spec: Mapping[str, Any]) -> ProbeResult:
    """One connection to ``spec["host"]:spec["port"]``: plain TCP when ``spec["tls"]`` is
    false, else TLS 1.3 with the optional ``cert``/``key`` (and ``ca`` to check the
    server; without it the server is not checked). Sends ``spec["send"]`` (hex) at once,
    then reads for up to ``spec["wait"]`` seconds (default 3) or until the peer closes;
    received bytes are decoded as replication frames unless ``spec["lines"]``."""
    from hamod.replication.frames import FrameError, StreamDecoder

    out = ProbeResult()
    try:
        raw = socket.create_connection((spec["host"], int(spec["port"])), timeout=5)
    except OSError as exc:  # nobody listens (the secondary is not SECOND right now)
        out.closed = f"{NOT_CONNECTED}: {exc}"
        return out
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock: socket.socket = raw
    if spec.get("tls", True):
        try:
            sock = _client_ctx(spec).wrap_socket(raw)
        except (OSError, ssl.SSLError) as exc:
            out.handshake = f"{type(exc).__name__}: {exc}"
            out.closed = "handshake refused"
            raw.close()
            return out
        out.handshake = "ok"
    payload = bytes.fromhex(spec.get("send", ""))
    decoder = StreamDecoder()
    got = bytearray()
    try:
        if payload:
            sock.sendall(payload)
            out.sent = len(payload)
        deadline = time.monotonic() + float(spec.get("wait", 3.0))
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                out.closed = "open"
                break
            ready, _, _ = select.select([sock], [], [], left)
            if not ready:
                continue
            try:
                data = sock.recv(65536)
            except ssl.SSLWantReadError:
                continue
            if not data:
                out.closed = "eof"
                break
            if spec.get("lines"):
                got += data
                continue
            for frame in decoder.feed(data):
                if isinstance(frame, FrameError):
                    got += data
                else:
                    out.received.append(repr(frame))
    except ssl.SSLError as exc:
        out.closed = f"TLS error: {exc.reason or exc}"
    except ConnectionResetError:
        out.closed = "reset"
    except BrokenPipeError:
        out.closed = "broken pipe"
    finally:
        with contextlib.suppress(OSError):
            sock.close()
    if spec.get("lines"):
        out.received += [ln.decode("utf-8", "replace") for ln in bytes(got).splitlines()]
    elif got:
        out.raw = bytes(got[:200]).hex()
    return out


def probe(c: LabCluster, node: str, spec: Mapping[str, Any], timeout: float = 60.0) -> ProbeResult:
    """:func:`run_probe` inside ``node``; ``spec["send"]`` may be bytes."""
    from hamod.testing.cluster import PYTHON

    body = dict(spec)
    if isinstance(body.get("send"), bytes | bytearray):
        body["send"] = bytes(body["send"]).hex()
    res = c.lab.exec(
        node,
        [PYTHON, "-m", "hamod.testing.replication", "probe", json.dumps(body)],
        check=False,
        timeout=timeout,
    )
    if res.returncode != 0:
        raise AssertionError(f"probe from {node}: exit {res.returncode}: {res.stderr[-3000:]}")
    return ProbeResult.from_json(res.stdout.strip().splitlines()[-1])


def rogue_credentials(c: LabCluster, node: str, directory: str = "/root/rogue") -> dict[str, str]:
    """A CA that is not the cluster's, and a certificate for ``node`` (its name and
    addresses, as the real one) from it, written inside ``node``; the probe's ``cert``,
    ``key`` and ``ca`` (the rogue CA) paths."""
    from hamod.testing.cluster_files import make_pki

    addrs = [str(ip_address(a)) for a in c.node_addresses(node).values()]
    rogue = make_pki("rogue", {node: addrs})
    files = {
        f"{directory}/ca.crt": ("644", rogue.ca_cert),
        f"{directory}/node.crt": ("644", rogue.node_cert[node]),
        f"{directory}/node.key": ("600", rogue.node_key[node]),
    }
    c.write_files(node, files)
    return {
        "cert": f"{directory}/node.crt",
        "key": f"{directory}/node.key",
        "ca": f"{directory}/ca.crt",
    }


def cluster_credentials() -> dict[str, str]:
    """The node's own cluster certificate (inside a node): ``cert``, ``key``, ``ca``."""
    return {"cert": f"{TLS_DIR}/node.crt", "key": f"{TLS_DIR}/node.key", "ca": f"{TLS_DIR}/ca.crt"}


# --- node-side entry point ------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2 or args[0] not in ("exercise", "probe"):
        print("usage: python -m hamod.testing.replication {exercise|probe} JSON", file=sys.stderr)
        return 2
    spec = json.loads(args[1])
    if args[0] == "exercise":
        res = run_exercise(
            spec["roots"],
            int(spec["seed"]),
            int(spec.get("steps", 0)),
            seconds=spec.get("seconds"),
            pause=float(spec.get("pause", 0.0)),
            kinds=spec.get("kinds"),
        )
        print(res.to_json())
    else:
        print(run_probe(spec).to_json())
    return 0


# --- disks, resync figures (host side; issue #4 scenario 7) ------------------------------

DPLOG = f"/var/log/hamod/{M}/datapath.log"
"""The data-path log of :data:`M` inside a node."""


def datapath_pid(c: LabCluster, node: str, module: str = M) -> int | None:
    """The PID (in ``node``) of ``module``'s data-path process, None when none runs."""
    text = c.read(node, f"/run/hamod/dp/{module}/datapath.pid").strip()
    return int(text) if text.isdigit() else None


def datapath_io(c: LabCluster, node: str, module: str = M) -> dict[str, int]:
    """``/proc/PID/io`` of ``module``'s data-path process on ``node`` (``rchar``,
    ``wchar``: bytes read and written, files and sockets alike)."""
    pid = datapath_pid(c, node, module)
    if pid is None:
        raise AssertionError(f"{node}: no data-path process of {module}")
    out = c.lab.exec(node, ["cat", f"/proc/{pid}/io"]).stdout
    return {k: int(v) for k, v in (ln.split(": ") for ln in out.splitlines())}


@dataclass(frozen=True)
class ResyncDone:
    """One ``resync of PEER done: N rounds, M bytes`` line of a primary's data-path log."""

    rounds: int
    sent: int


_RESYNC_DONE = re.compile(r"resync of \S+ done: (\d+) rounds, (\d+) bytes")


def resyncs_done(lines: Sequence[str]) -> list[ResyncDone]:
    """Every resync completed in ``lines`` (a data-path log), in order."""
    out = []
    for ln in lines:
        m = _RESYNC_DONE.search(ln)
        if m is not None:
            out.append(ResyncDone(int(m.group(1)), int(m.group(2))))
    return out


def log_lines(c: LabCluster, node: str, path: str = DPLOG) -> list[str]:
    """The lines of a log file of ``node`` (readable while it is off)."""
    return c.read(node, path).splitlines()


def wait_resync_sent(
    c: LabCluster, node: str, at_least: int, timeout: float = WAIT, *, module: str = M
) -> int:
    """Wait until ``node`` (the target) reports a resync in progress that has copied at
    least ``at_least`` bytes (``hamod state``'s ``resync.done_bytes``); returns them."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        st = c.try_state(node, module)
        last = st
        if st is not None and st.resync is not None and st.resync.done_bytes >= at_least:
            return st.resync.done_bytes
        time.sleep(0.1)
    raise AssertionError(
        f"{node}: no resync past {at_least} bytes within {timeout:g} s (last: {last})\n"
        + c.diagnose(module)
    )


def lazyfs_control(c: LabCluster, node: str, *args: str, mount: str = "/srv") -> None:
    """``python -m hamod.testing.lazyfs CMD MOUNT ARGS`` inside ``node``: ``inject``
    (kind, glob relative to the mount, count), ``clear``, ``sync``."""
    from hamod.testing.cluster import PYTHON

    cmd, *rest = args
    c.lab.exec(node, [PYTHON, "-m", "hamod.testing.lazyfs", cmd, mount, *rest])


def free_bytes(c: LabCluster, node: str, path: str) -> int:
    """Bytes available to unprivileged users on the file system of ``path`` in ``node``."""
    st = os.statvfs(host_path(c, node, path))
    return st.f_bavail * st.f_frsize


if __name__ == "__main__":
    raise SystemExit(main())
