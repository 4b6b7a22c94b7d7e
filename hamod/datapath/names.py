"""Namespace and attribute operations of the data path: create nodes, remove, rename,
link, chmod/chown/utimens and extended attributes (ACLs are the ``system.posix_acl_*``
xattrs), each announced to the change tracker before it is done (namespace operations
through ``namespace``, then ``failed`` if the local operation fails; attribute changes
through ``setattr``), done relative to the directory underneath, and shipped after it
succeeded.
"""

from __future__ import annotations

import errno
import os
import stat

from hamod.datapath import libc
from hamod.datapath.base import LayerBase, caller, rel_path, track_path
from hamod.datapath.mutation import Mutation, Op
from hamod.tracking.types import Link, Mkdir, Mknod, NsOp, Rename, Rmdir, Symlink, Unlink


class NameOps(LayerBase):
    """Operations on names and attributes (no file handle needed)."""

    def _adopt(self, rel: str, uid: int, gid: int) -> tuple[int, int]:
        """Give a node this root process created to the caller (see ``_owner``)."""
        uid, gid = self._owner(rel, uid, gid)
        st = os.stat(rel, dir_fd=self.base, follow_symlinks=False)
        if (st.st_uid, st.st_gid) != (uid, gid):
            os.chown(rel, uid, gid, dir_fd=self.base, follow_symlinks=False)
        return uid, gid

    def _announced(self, op: NsOp) -> int:
        """``namespace(op)`` when tracking (the op's number; 0 without a tracker)."""
        return self._announce(op) if self._tracks else 0

    def _undo(self, op: NsOp) -> None:
        """The local operation announced as ``op`` failed."""
        if self._tracks:
            self._failed(op)

    def mknod(self, path: str, mode: int, dev: int) -> None:
        self._rw()
        rel = rel_path(path)
        uid, gid, umask = caller()
        mode = self._new_mode(rel, mode, umask)
        op = Mknod(track_path(path), mode, dev)
        n = self._announced(op)
        try:
            os.mknod(rel, mode, dev, dir_fd=self.base)
            uid, gid = self._adopt(rel, uid, gid)
        except OSError:
            self._undo(op)
            raise
        self._ship(Mutation(Op.MKNOD, path, mode=mode, offset=dev, uid=uid, gid=gid, track=n))

    def mkdir(self, path: str, mode: int) -> None:
        self._rw()
        rel = rel_path(path)
        uid, gid, umask = caller()
        mode = self._new_mode(rel, mode, umask)
        op = Mkdir(track_path(path))
        n = self._announced(op)
        try:
            os.mkdir(rel, mode, dir_fd=self.base)
            uid, gid = self._adopt(rel, uid, gid)
        except OSError:
            self._undo(op)
            raise
        self._ship(Mutation(Op.MKDIR, path, mode=mode, uid=uid, gid=gid, track=n))

    def symlink(self, path: str, target: str) -> None:
        self._rw()
        rel = rel_path(path)
        uid, gid, _ = caller()
        op = Symlink(track_path(path), target)
        n = self._announced(op)
        try:
            os.symlink(target, rel, dir_fd=self.base)
            uid, gid = self._adopt(rel, uid, gid)
        except OSError:
            self._undo(op)
            raise
        self._ship(Mutation(Op.SYMLINK, path, target=target, uid=uid, gid=gid, track=n))

    def link(self, path: str, existing: str) -> None:
        """Hard link: ``path`` is the new name (mfusepy's argument order)."""
        self._rw()
        ino = os.stat(rel_path(existing), dir_fd=self.base, follow_symlinks=False).st_ino
        op = Link(track_path(existing), track_path(path), ino)
        n = self._announced(op)
        try:
            os.link(
                rel_path(existing),
                rel_path(path),
                src_dir_fd=self.base,
                dst_dir_fd=self.base,
                follow_symlinks=False,
            )
        except OSError:
            self._undo(op)
            raise
        self._seen(ino, existing)
        self._seen(ino, path)
        self._invalidate_links(ino, but=path)
        self._ship(Mutation(Op.LINK, existing, path2=path, track=n))

    def unlink(self, path: str) -> None:
        self._rw()
        hidden = self._hidden.pop(path, None)
        if hidden is not None:  # libfuse removing its hidden name at the last close: the
            os.close(hidden)  # real unlink was done (and announced) by _hide
            return
        rel = rel_path(path)
        st = os.stat(rel, dir_fd=self.base, follow_symlinks=False)
        op = Unlink(track_path(path), st.st_ino, st.st_nlink - 1)
        n = self._announced(op)
        try:
            os.unlink(rel, dir_fd=self.base)
        except OSError:
            self._undo(op)
            raise
        if st.st_nlink > 1:
            self._invalidate_links(st.st_ino, but=path)
        self._ship(Mutation(Op.UNLINK, path, track=n))

    def rmdir(self, path: str) -> None:
        self._rw()
        if self._tracks:
            self._refuse_not_empty(rel_path(path))
        op = Rmdir(track_path(path))
        n = self._announced(op)
        try:
            os.rmdir(rel_path(path), dir_fd=self.base)
        except OSError:
            self._undo(op)
            raise
        self._ship(Mutation(Op.RMDIR, path, track=n))

    def _refuse_not_empty(self, rel: str) -> None:
        """ENOTEMPTY before announcing an rmdir that would fail with it (programs try
        rmdir on directories that may hold files; each would cost two records)."""
        fd = os.open(rel, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=self.base)
        try:
            with os.scandir(fd) as entries:
                if next(entries, None) is not None:
                    raise OSError(errno.ENOTEMPTY, os.strerror(errno.ENOTEMPTY))
        finally:
            os.close(fd)

    def rename(self, old: str, new: str, flags: int = 0) -> None:
        self._rw()
        if flags & ~(libc.RENAME_NOREPLACE | libc.RENAME_EXCHANGE):
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        if flags == 0 and os.path.basename(new).startswith(".fuse_hidden"):
            self._hide(old, new)
            return
        op = self._rename_op(old, new, flags) if self._tracks else None
        n = self._announce(op) if op is not None else 0
        try:
            libc.renameat2(self.base, rel_path(old), self.base, rel_path(new), flags)
        except OSError:
            self._failed(op)
            raise
        self._ship(Mutation(Op.RENAME, old, path2=new, flags=flags, track=n))

    def _rename_op(self, old: str, new: str, flags: int) -> Rename | None:
        """What the tracker is told about a rename (None: two links of one inode, which
        ``rename`` leaves alone, or RENAME_NOREPLACE over an existing name: no change)."""
        src = os.stat(rel_path(old), dir_fd=self.base, follow_symlinks=False)
        try:
            dst: os.stat_result | None = os.stat(
                rel_path(new), dir_fd=self.base, follow_symlinks=False
            )
        except FileNotFoundError:
            dst = None
        exchange = bool(flags & libc.RENAME_EXCHANGE)
        if dst is None:
            return Rename(track_path(old), track_path(new), exchange)
        if (dst.st_ino, dst.st_dev) == (src.st_ino, src.st_dev):
            return None  # also with EXCHANGE (vfs_rename returns 0 for one inode)
        if flags & libc.RENAME_NOREPLACE:
            return None  # fails with EEXIST, nothing changes
        if exchange or stat.S_ISDIR(dst.st_mode):
            return Rename(track_path(old), track_path(new), exchange)
        return Rename(track_path(old), track_path(new), False, dst.st_ino, dst.st_nlink - 1)

    def _hide(self, path: str, hidden: str) -> None:
        """libfuse hides an open file being unlinked: unlink it, keep an O_PATH handle.
        The tracker sees the real unlink (the hidden name never exists on disk)."""
        rel = rel_path(path)
        fd = os.open(rel, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=self.base)
        announced: Unlink | None = None
        n = 0
        try:
            st = os.fstat(fd)
            if self._tracks:
                op = Unlink(track_path(path), st.st_ino, st.st_nlink - 1)
                n = self._announce(op)
                announced = op
            os.unlink(rel, dir_fd=self.base)
        except OSError:
            os.close(fd)
            self._failed(announced)
            raise
        self._hidden[hidden] = fd
        if st.st_nlink > 1:
            self._invalidate_links(st.st_ino, but=path)
        self._ship(Mutation(Op.UNLINK, path, track=n))

    def chmod(self, path: str | None, mode: int, fh: int | None = None) -> None:
        self._rw()
        n = self._track_setattr(path, fh)
        if fh is not None:
            os.fchmod(fh, mode)
        elif self._is_hidden(path):
            os.chmod(self._procpath(str(path)), mode)
        elif path is not None:
            os.chmod(rel_path(path), mode, dir_fd=self.base)
        else:
            raise OSError(errno.ESTALE, os.strerror(errno.ESTALE))
        self._ship(Mutation(Op.CHMOD, path, handle=fh, mode=mode, track=n))

    def chown(self, path: str | None, uid: int, gid: int, fh: int | None = None) -> None:
        self._rw()
        n = self._track_setattr(path, fh)
        if fh is not None:
            os.fchown(fh, uid, gid)
        elif self._is_hidden(path):
            os.chown(self._procpath(str(path)), uid, gid)
        elif path is not None:
            os.chown(rel_path(path), uid, gid, dir_fd=self.base, follow_symlinks=False)
        else:
            raise OSError(errno.ESTALE, os.strerror(errno.ESTALE))
        self._ship(Mutation(Op.CHOWN, path, handle=fh, uid=uid, gid=gid, track=n))

    def utimens(
        self, path: str | None, atime_ns: int | None, mtime_ns: int | None, fh: int | None = None
    ) -> None:
        """Set times; ``None`` = now, ``mutation.OMIT`` = unchanged."""
        self._rw()
        n = self._track_setattr(path, fh)
        if fh is not None:
            libc.utimensat(fh, None, atime_ns, mtime_ns)
        elif self._is_hidden(path):
            libc.utimensat(
                libc.AT_FDCWD, self._procpath(str(path)), atime_ns, mtime_ns, follow=True
            )
        elif path is not None:
            libc.utimensat(self.base, rel_path(path), atime_ns, mtime_ns)
        else:
            raise OSError(errno.ESTALE, os.strerror(errno.ESTALE))
        self._ship(
            Mutation(Op.UTIMENS, path, handle=fh, atime_ns=atime_ns, mtime_ns=mtime_ns, track=n)
        )

    def setxattr(self, path: str, name: str, value: bytes, options: int, *args: object) -> None:
        self._rw()
        n = self._track_setattr(path, None)
        os.setxattr(self._procpath(path), name, value, options, follow_symlinks=False)
        self._ship(Mutation(Op.SETXATTR, path, name=name, value=value, flags=options, track=n))

    def removexattr(self, path: str, name: str) -> None:
        self._rw()
        n = self._track_setattr(path, None)
        os.removexattr(self._procpath(path), name, follow_symlinks=False)
        self._ship(Mutation(Op.REMOVEXATTR, path, name=name, track=n))
