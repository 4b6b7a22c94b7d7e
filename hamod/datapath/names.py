"""Namespace and attribute operations of the data path: create nodes, remove, rename,
link, chmod/chown/utimens and extended attributes (ACLs are the ``system.posix_acl_*``
xattrs), each done relative to the directory underneath and shipped after it succeeded.
"""

from __future__ import annotations

import errno
import os

from hamod.datapath import libc
from hamod.datapath.base import LayerBase, caller, rel_path
from hamod.datapath.mutation import Mutation, Op


class NameOps(LayerBase):
    """Operations on names and attributes (no file handle needed)."""

    def _adopt(self, rel: str, uid: int, gid: int) -> tuple[int, int]:
        """Give a node this root process created to the caller (see ``_owner``)."""
        uid, gid = self._owner(rel, uid, gid)
        st = os.stat(rel, dir_fd=self.base, follow_symlinks=False)
        if (st.st_uid, st.st_gid) != (uid, gid):
            os.chown(rel, uid, gid, dir_fd=self.base, follow_symlinks=False)
        return uid, gid

    def mknod(self, path: str, mode: int, dev: int) -> None:
        self._rw()
        rel = rel_path(path)
        uid, gid, umask = caller()
        mode = self._new_mode(rel, mode, umask)
        os.mknod(rel, mode, dev, dir_fd=self.base)
        uid, gid = self._adopt(rel, uid, gid)
        self._ship(Mutation(Op.MKNOD, path, mode=mode, offset=dev, uid=uid, gid=gid))

    def mkdir(self, path: str, mode: int) -> None:
        self._rw()
        rel = rel_path(path)
        uid, gid, umask = caller()
        mode = self._new_mode(rel, mode, umask)
        os.mkdir(rel, mode, dir_fd=self.base)
        uid, gid = self._adopt(rel, uid, gid)
        self._ship(Mutation(Op.MKDIR, path, mode=mode, uid=uid, gid=gid))

    def symlink(self, path: str, target: str) -> None:
        self._rw()
        rel = rel_path(path)
        uid, gid, _ = caller()
        os.symlink(target, rel, dir_fd=self.base)
        uid, gid = self._adopt(rel, uid, gid)
        self._ship(Mutation(Op.SYMLINK, path, target=target, uid=uid, gid=gid))

    def link(self, path: str, existing: str) -> None:
        """Hard link: ``path`` is the new name (mfusepy's argument order)."""
        self._rw()
        os.link(
            rel_path(existing),
            rel_path(path),
            src_dir_fd=self.base,
            dst_dir_fd=self.base,
            follow_symlinks=False,
        )
        ino = os.stat(rel_path(path), dir_fd=self.base, follow_symlinks=False).st_ino
        self._seen(ino, existing)
        self._seen(ino, path)
        self._invalidate_links(ino, but=path)
        self._ship(Mutation(Op.LINK, existing, path2=path))

    def unlink(self, path: str) -> None:
        self._rw()
        hidden = self._hidden.pop(path, None)
        if hidden is not None:  # libfuse removing its hidden name at the last close
            os.close(hidden)
            return
        rel = rel_path(path)
        st = os.stat(rel, dir_fd=self.base, follow_symlinks=False)
        os.unlink(rel, dir_fd=self.base)
        if st.st_nlink > 1:
            self._invalidate_links(st.st_ino, but=path)
        self._ship(Mutation(Op.UNLINK, path))

    def rmdir(self, path: str) -> None:
        self._rw()
        os.rmdir(rel_path(path), dir_fd=self.base)
        self._ship(Mutation(Op.RMDIR, path))

    def rename(self, old: str, new: str, flags: int = 0) -> None:
        self._rw()
        if flags & ~(libc.RENAME_NOREPLACE | libc.RENAME_EXCHANGE):
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        if flags == 0 and os.path.basename(new).startswith(".fuse_hidden"):
            self._hide(old, new)
            return
        libc.renameat2(self.base, rel_path(old), self.base, rel_path(new), flags)
        self._ship(Mutation(Op.RENAME, old, path2=new, flags=flags))

    def _hide(self, path: str, hidden: str) -> None:
        """libfuse hides an open file being unlinked: unlink it, keep an O_PATH handle."""
        rel = rel_path(path)
        fd = os.open(rel, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=self.base)
        try:
            st = os.fstat(fd)
            os.unlink(rel, dir_fd=self.base)
        except OSError:
            os.close(fd)
            raise
        self._hidden[hidden] = fd
        if st.st_nlink > 1:
            self._invalidate_links(st.st_ino, but=path)
        self._ship(Mutation(Op.UNLINK, path))

    def chmod(self, path: str | None, mode: int, fh: int | None = None) -> None:
        self._rw()
        if fh is not None:
            os.fchmod(fh, mode)
        elif self._is_hidden(path):
            os.chmod(self._procpath(str(path)), mode)
        elif path is not None:
            os.chmod(rel_path(path), mode, dir_fd=self.base)
        else:
            raise OSError(errno.ESTALE, os.strerror(errno.ESTALE))
        self._ship(Mutation(Op.CHMOD, path, handle=fh, mode=mode))

    def chown(self, path: str | None, uid: int, gid: int, fh: int | None = None) -> None:
        self._rw()
        if fh is not None:
            os.fchown(fh, uid, gid)
        elif self._is_hidden(path):
            os.chown(self._procpath(str(path)), uid, gid)
        elif path is not None:
            os.chown(rel_path(path), uid, gid, dir_fd=self.base, follow_symlinks=False)
        else:
            raise OSError(errno.ESTALE, os.strerror(errno.ESTALE))
        self._ship(Mutation(Op.CHOWN, path, handle=fh, uid=uid, gid=gid))

    def utimens(
        self, path: str | None, atime_ns: int | None, mtime_ns: int | None, fh: int | None = None
    ) -> None:
        """Set times; ``None`` = now, ``mutation.OMIT`` = unchanged."""
        self._rw()
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
        self._ship(Mutation(Op.UTIMENS, path, handle=fh, atime_ns=atime_ns, mtime_ns=mtime_ns))

    def setxattr(self, path: str, name: str, value: bytes, options: int, *args: object) -> None:
        self._rw()
        os.setxattr(self._procpath(path), name, value, options, follow_symlinks=False)
        self._ship(Mutation(Op.SETXATTR, path, name=name, value=value, flags=options))

    def removexattr(self, path: str, name: str) -> None:
        self._rw()
        os.removexattr(self._procpath(path), name, follow_symlinks=False)
        self._ship(Mutation(Op.REMOVEXATTR, path, name=name))
