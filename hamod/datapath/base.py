"""Shared state and helpers of the data path's FUSE operations (see :mod:`.fs`).

:class:`LayerBase` holds the directory file descriptor opened before mounting, the
shipper, the change tracker, the read-only flag and the kernel cache lifetimes, and the
helpers every operation uses: path conversion, the caller's credentials, owner and mode
of new nodes, and the calls to the tracker's hooks (made *before* the local operation;
a tracker failure becomes ``EIO`` with nothing done locally).
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
import stat
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace

from hamod.datapath.mutation import Mutation, Shipper
from hamod.datapath.tracking import NoTracker, Tracker
from hamod.errors import AdapterError
from hamod.tracking.types import FileRef, NsOp

FUSE_CAP_DONT_MASK = 1 << 6
FUSE_CAP_POSIX_ACL = 1 << 19
WRITE_ACCESS = os.O_WRONLY | os.O_RDWR
# Flags the underlying open never gets: the kernel already resolved them (O_CREAT,
# O_EXCL, O_NOCTTY) or gives every write its final offset (O_APPEND: the kernel
# serialises appends on the inode and sends the end-of-file offset, which the replica
# needs anyway; Linux pwrite would ignore the offset on an O_APPEND descriptor).
STRIP_FLAGS = os.O_CREAT | os.O_EXCL | os.O_NOCTTY | os.O_APPEND
_ALIGN = 4096


@dataclass(frozen=True)
class Timeouts:
    """Kernel cache lifetimes handed to libfuse (seconds)."""

    entry: float
    attr: float
    negative: float


# Primary: every change goes through this mount, so the kernel's caches stay coherent
# by construction, except for hard links (libfuse's high-level API gives each name its
# own kernel inode): link/unlink invalidate the other names this process has seen, and
# the attribute lifetime bounds the rest (a write through one name seen through
# another). Zero would cost a GETATTR round trip on every stat and lseek(SEEK_END).
# Read-only (secondary): the replica applies changes underneath, invisible to the
# kernel, so nothing is cached.
PRIMARY_TIMEOUTS = Timeouts(entry=1.0, attr=1.0, negative=1.0)
READ_ONLY_TIMEOUTS = Timeouts(entry=0.0, attr=0.0, negative=0.0)


def rel_path(path: str) -> str:
    rel = path.lstrip("/")
    return rel or "."


def parent_of(rel: str) -> str:
    head = os.path.dirname(rel)
    return head or "."


def track_path(path: str) -> str:
    """The tracker's name of a FUSE path: relative, no leading ``/`` (root: ``""``)."""
    return path.lstrip("/")


def _eio(exc: Exception) -> OSError:
    return OSError(errno.EIO, f"change tracking: {exc}")


class _Context(ctypes.Structure):
    _fields_ = [
        ("fuse", ctypes.c_void_p),
        ("uid", ctypes.c_uint32),
        ("gid", ctypes.c_uint32),
        ("pid", ctypes.c_int32),
        ("private_data", ctypes.c_void_p),
        ("umask", ctypes.c_uint32),
    ]


_libfuse = ctypes.CDLL("libfuse3.so.3")
_libfuse.fuse_get_context.restype = ctypes.POINTER(_Context)
_libfuse.fuse_invalidate_path.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
_libfuse.fuse_invalidate_path.restype = ctypes.c_int


def caller() -> tuple[int, int, int]:
    """(uid, gid, umask) of the process whose request is being served."""
    ctx = _libfuse.fuse_get_context().contents
    return int(ctx.uid), int(ctx.gid), int(ctx.umask)


class LayerBase:
    """State and helpers shared by the operation classes."""

    use_ns = True

    def __init__(
        self,
        base_fd: int,
        shipper: Shipper,
        *,
        read_only: bool = False,
        timeouts: Timeouts | None = None,
        tracker: Tracker | None = None,
    ) -> None:
        self.base = base_fd
        self.shipper = shipper
        self.tracker: Tracker = tracker if tracker is not None else NoTracker()
        # Tested once per operation: without a tracker no inode look-up is made at all.
        self._tracks = not isinstance(self.tracker, NoTracker)
        self._inos: dict[int, int] = {}  # open handle -> inode number (fstat at open)
        self._aliases: dict[int, str] = {}  # inode -> a name, for unlinked open files
        self.read_only = read_only
        self.timeouts = timeouts or (READ_ONLY_TIMEOUTS if read_only else PRIMARY_TIMEOUTS)
        self._proc = f"/proc/self/fd/{base_fd}"
        self._local = threading.local()
        self._links: dict[int, set[str]] = {}  # inode -> names seen, for nlink > 1
        self._links_lock = threading.Lock()
        # libfuse hides an open file that is unlinked by renaming it to .fuse_hiddenN; we
        # unlink it for real instead and keep an O_PATH descriptor under that name, so
        # fstat/fchmod/... keep working and nothing hidden ever exists on disk.
        self._hidden: dict[str, int] = {}

    # -- helpers ----------------------------------------------------------------------

    def _ship(self, mutation: Mutation, meanwhile: Callable[[], None] | None = None) -> None:
        if mutation.path is not None and mutation.path in self._hidden:
            mutation = replace(mutation, path=None)  # unlinked: known by handle only
        if meanwhile is None:
            self.shipper.ship(mutation)
        else:
            self.shipper.ship(mutation, meanwhile)

    def _seen(self, ino: int, path: str) -> None:
        """Remember a name of a multiply-linked inode."""
        with self._links_lock:
            self._links.setdefault(ino, set()).add(path)

    def _invalidate_links(self, ino: int, but: str | None = None) -> None:
        """Drop the kernel's cached attributes of every known name of ``ino``."""
        with self._links_lock:
            names = sorted(self._links.get(ino, ()))
        fuse = _libfuse.fuse_get_context().contents.fuse
        for name in names:
            if name != but:
                _libfuse.fuse_invalidate_path(fuse, os.fsencode(name))

    # -- change tracking (hooks before the local operation; see .tracking) --------------

    def _fh_ref(self, path: str | None, fh: int) -> FileRef | None:
        """The tracker's reference of the file open as ``fh`` (None: it has no name left,
        nothing to track)."""
        if path is not None and path not in self._hidden:
            ino = self._inos.get(fh)
            if ino is None:
                ino = os.fstat(fh).st_ino
            return FileRef(track_path(path), ino)
        return self._nameless(os.fstat(fh))

    def _path_ref(self, path: str | None) -> FileRef | None:
        """The tracker's reference of ``path`` (None: an unlinked file without links)."""
        if path is None:
            raise OSError(errno.ESTALE, os.strerror(errno.ESTALE))
        hidden = self._hidden.get(path)
        if hidden is not None:
            return self._nameless(os.fstat(hidden))
        st = os.stat(rel_path(path), dir_fd=self.base, follow_symlinks=False)
        return FileRef(track_path(path), st.st_ino)

    def _nameless(self, st: os.stat_result) -> FileRef | None:
        """An open file whose name was unlinked: nothing to track once no link is left
        (it can never get one back); else one of its other names."""
        if st.st_nlink == 0:
            return None
        return FileRef(track_path(self._alias(st.st_ino)), st.st_ino)

    def _alias(self, ino: int) -> str:
        """A current name of inode ``ino`` (FUSE path): the last one found or one seen
        through ``getattr``/``link`` if it still holds the inode, else one scan of the tree
        (only for a write to an unlinked open file that has other hard links)."""
        with self._links_lock:
            names = sorted(self._links.get(ino, ()))
        cached = self._aliases.get(ino)
        for name in [cached, *names] if cached else names:
            if name in self._hidden:
                continue
            try:
                st = os.stat(rel_path(name), dir_fd=self.base, follow_symlinks=False)
            except OSError:
                continue
            if st.st_ino == ino:
                self._aliases[ino] = name
                return name
        stack = [""]
        while stack:
            top = stack.pop()
            with os.scandir(f"{self._proc}/{top}" if top else self._proc) as entries:
                for e in entries:
                    rel = f"{top}/{e.name}" if top else e.name
                    if e.inode() == ino and not e.is_dir(follow_symlinks=False):
                        self._aliases[ino] = "/" + rel
                        return "/" + rel
                    if e.is_dir(follow_symlinks=False):
                        stack.append(rel)
        raise OSError(errno.EIO, f"change tracking: no name found for inode {ino}")

    def _track_write(self, ref: FileRef | None, offset: int, length: int) -> int:
        if ref is None:
            return 0
        try:
            return self.tracker.write(ref, offset, length)
        except AdapterError as exc:
            raise _eio(exc) from exc

    def _track_truncate(self, ref: FileRef | None, size: int) -> int:
        if ref is None:
            return 0
        try:
            return self.tracker.truncate(ref, size)
        except AdapterError as exc:
            raise _eio(exc) from exc

    def _track_setattr(self, path: str | None, fh: int | None) -> int:
        """``setattr`` hook of a path- or handle-based attribute change (0 untracked)."""
        if not self._tracks:
            return 0
        ref = self._fh_ref(path, fh) if fh is not None else self._path_ref(path)
        if ref is None:
            return 0
        try:
            return self.tracker.setattr(ref)
        except AdapterError as exc:
            raise _eio(exc) from exc

    def _announce(self, op: NsOp) -> int:
        """``namespace`` hook; the caller must call :meth:`_failed` if the op then fails."""
        try:
            return self.tracker.namespace(op)
        except AdapterError as exc:
            raise _eio(exc) from exc

    def _failed(self, op: NsOp | None) -> None:
        """The announced ``op`` failed (its names get reconciled by the resync)."""
        if op is None:
            return
        try:
            self.tracker.failed(op)
        except AdapterError as exc:
            raise _eio(exc) from exc

    # -- more helpers -------------------------------------------------------------------

    def _rw(self) -> None:
        if self.read_only:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    def _procpath(self, path: str) -> str:
        hidden = self._hidden.get(path)
        if hidden is not None:
            return f"/proc/self/fd/{hidden}"
        return f"{self._proc}/{rel_path(path)}"

    def _is_hidden(self, path: str | None) -> bool:
        return path is not None and path in self._hidden

    def _bounce(self, size: int) -> mmap.mmap:
        """A page-aligned per-thread buffer for O_DIRECT I/O underneath."""
        buf: mmap.mmap | None = getattr(self._local, "bounce", None)
        if buf is None or len(buf) < size:
            buf = mmap.mmap(-1, max(size, 1 << 20) + _ALIGN)
            self._local.bounce = buf
        return buf

    def _new_mode(self, rel: str, mode: int, umask: int) -> int:
        """The mode to create with: the caller's umask unless the parent has a default ACL."""
        if umask == 0:
            return mode
        try:
            os.getxattr(self._procpath(parent_of(rel)), "system.posix_acl_default")
        except OSError:
            return mode & ~umask
        return mode

    def _owner(self, rel: str, uid: int, gid: int) -> tuple[int, int]:
        """Owner of a new node: the caller, or the parent's group when it is set-gid."""
        pst = os.stat(parent_of(rel), dir_fd=self.base)
        return uid, (pst.st_gid if pst.st_mode & stat.S_ISGID else gid)
