"""Change tracking of a mirror module: which regions and names changed while the peer was
away (and, while mirroring, the activity log of what it may not have), durable with
bounded cost, for a resync that copies only what may differ. See ``docs/tracking.md``."""

from hamod.tracking.storage import LazyStorage, OsStorage, SimulatedCrash, Storage
from hamod.tracking.tracker import ChangeTracker, Stats
from hamod.tracking.types import (
    DEFAULT_REGION_SIZE,
    ChangeSet,
    Create,
    FileChanges,
    FileRef,
    Link,
    Mkdir,
    Mknod,
    NsOp,
    Rename,
    Rmdir,
    Symlink,
    Unknown,
    Unlink,
    first_missing,
    merge,
)

__all__ = [
    "DEFAULT_REGION_SIZE",
    "ChangeSet",
    "ChangeTracker",
    "Create",
    "FileChanges",
    "FileRef",
    "LazyStorage",
    "Link",
    "Mkdir",
    "Mknod",
    "NsOp",
    "OsStorage",
    "Rename",
    "Rmdir",
    "SimulatedCrash",
    "Stats",
    "Storage",
    "Symlink",
    "Unknown",
    "Unlink",
    "first_missing",
    "merge",
]
