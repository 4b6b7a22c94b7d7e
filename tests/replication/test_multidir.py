"""Paths of several directories on one link: prefix on the primary, dispatch on the
secondary; handles remember their directory; bad paths are refused."""

from __future__ import annotations

import errno

import pytest

from hamod.datapath.mutation import Mutation, Op
from hamod.replication.multidir import ModuleApplier, prefix, split, tag
from hamod.replication.testing import RecordingApplier


def test_prefix_and_split_are_inverse() -> None:
    for i, path in [(0, "/"), (1, "/a"), (12, "/a/b c/ü"), (3, "/.hidden")]:
        wire = prefix(i, path)
        assert wire is not None and split(wire) == (i, path)
    assert prefix(0, None) is None
    m = tag(2, Mutation(Op.RENAME, "/a", "/b"))
    assert (m.path, m.path2) == ("/2/a", "/2/b")


@pytest.mark.parametrize("bad", ["", "a/b", "/x/a", "/-1/a", "/99999/a", "//a"])
def test_split_refuses_paths_without_an_index(bad: str) -> None:
    with pytest.raises(OSError) as err:
        split(bad)
    assert err.value.errno == errno.EINVAL


def test_dispatch_by_directory_and_handle() -> None:
    a, b = RecordingApplier(), RecordingApplier()
    mod = ModuleApplier([a, b])
    mod.apply(Mutation(Op.CREATE, "/1/f", handle=5, mode=0o644), durable=False)
    mod.apply(Mutation(Op.WRITE, None, handle=5, offset=0, length=1, data=b"x"), durable=True)
    mod.apply(Mutation(Op.MKDIR, "/0", mode=0o755), durable=False)
    mod.apply(Mutation(Op.RELEASE, None, handle=5), durable=False)
    assert [m.op for m, _ in b.applied] == [Op.CREATE, Op.WRITE, Op.RELEASE]
    assert [m.path for m, _ in b.applied] == ["/f", None, None]
    assert b.applied[1][1] is True
    assert [(m.op, m.path) for m, _ in a.applied] == [(Op.MKDIR, "/")]
    # the handle was released: a file without a name here, nothing to apply
    mod.apply(Mutation(Op.FSYNC, None, handle=5), durable=True)
    mod.apply(Mutation(Op.CHMOD, None, mode=0o600), durable=False)
    assert len(b.applied) == 3
    with pytest.raises(OSError) as err:
        mod.apply(Mutation(Op.MKDIR, "/2/x", mode=0o755), durable=False)
    assert err.value.errno == errno.EINVAL
    with pytest.raises(OSError) as err:
        mod.apply(Mutation(Op.RENAME, "/0/a", "/1/a"), durable=False)
    assert err.value.errno == errno.EXDEV
    mod.flush()
    assert a.flushes == b.flushes == 1
