"""Verify: prove that both copies of a module's replicated directories are equal.

A manifest (:func:`manifest`) describes a tree name by name — type, mode, owner, xattrs
and ACLs, hard-link structure, symlink target, content digests by region — in one
deterministic order; :func:`compare` merges two manifests and names every difference;
:func:`verify` does it online, re-checking after a replication barrier what differed, so
writes in flight are not reported. ``python -m hamod.verify A B`` compares two local
trees. See ``docs/verify.md``.
"""

from hamod.verify.compare import Comparison, Difference, Field, compare
from hamod.verify.entry import Entry, Kind, check_path, path_key
from hamod.verify.exclude import Excluder, excluded
from hamod.verify.manifest import manifest
from hamod.verify.online import Report, Source, exit_code, format_report, verify

__all__ = [
    "Comparison",
    "Difference",
    "Entry",
    "Excluder",
    "Field",
    "Kind",
    "Report",
    "Source",
    "check_path",
    "compare",
    "excluded",
    "exit_code",
    "format_report",
    "manifest",
    "path_key",
    "verify",
]
