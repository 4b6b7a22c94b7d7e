"""Unit tests of the data path's pure parts: Mutation, LocalOnly, Recording, holders."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import tempfile

import pytest

from hamod.datapath import LocalOnly, Mutation, Op, Shipper
from hamod.datapath.mount import abort, holders
from hamod.datapath.testing import Recording
from hamod.errors import AdapterError


def test_mutation_is_frozen_and_readable() -> None:
    m = Mutation(Op.WRITE, "/a", handle=5, offset=10, length=3, data=b"abc")
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.offset = 1  # type: ignore[misc]
    assert str(m) == "write '/a' fh=5 off=10 len=3"
    assert str(Mutation(Op.RENAME, "/a", path2="/b")) == "rename '/a' -> '/b'"


def test_shippers_satisfy_the_port() -> None:
    assert isinstance(LocalOnly(), Shipper) and isinstance(Recording(), Shipper)
    assert LocalOnly().wants_data is False
    rec = Recording()
    rec.ship(Mutation(Op.MKDIR, "/d"))
    rec.ship(Mutation(Op.UNLINK, "/f"))
    assert rec.ops() == [Op.MKDIR, Op.UNLINK]
    rec.clear()
    assert rec.mutations == []


def test_holders_names_a_child_holding_a_file() -> None:
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "f")
        with open(path, "w") as f:
            assert holders(d) == []  # this process is excluded
            child = subprocess.Popen(["sleep", "30"], stdin=f)
        try:
            (h,) = [h for h in holders(d) if h.pid == child.pid]
            assert (h.name, h.what, h.path) == ("sleep", "fd 0", path)
            assert str(h) == f"pid {child.pid} (sleep) fd 0 {path}"
        finally:
            child.kill()
            child.wait()


def test_abort_refuses_a_directory_without_fuse() -> None:
    with tempfile.TemporaryDirectory() as d, pytest.raises(AdapterError, match="no FUSE mount"):
        abort(d)
