"""The mirror data path: a FUSE file system mounted over each replicated directory.

The local layer lives here (issue #4, first increment): :mod:`.fs` does every real I/O on
the directory *underneath* the mount through a directory file descriptor opened before
mounting, so nothing moves on disk and unmounting leaves a normal directory. Every
mutating operation is described by one :class:`~hamod.datapath.mutation.Mutation` and
handed to a :class:`~hamod.datapath.mutation.Shipper` before the kernel gets its reply:
that port is where the peer link and change tracking plug in. :mod:`.mount` owns mount
safety (refusing while processes hold files under the directory), unmount and abort.
The in-memory ``Recording`` shipper for tests is in :mod:`hamod.datapath.testing`.
"""

from __future__ import annotations

from hamod.datapath.mutation import LocalOnly, Mutation, Op, Shipper

__all__ = ["LocalOnly", "Mutation", "Op", "Shipper"]
