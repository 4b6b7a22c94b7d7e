"""EIO from the disk underneath the mount is reported (the module fails over); an EIO
the data path answers on purpose is not. The disk is LazyFS with an injected fault."""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from hamod.datapath import faults, mount
from hamod.datapath.mutation import Mutation
from hamod.testing.lazyfs import LazyFS
from tests.datapath.conftest import fuse_available

pytestmark = pytest.mark.lab


class Failing:
    """A shipper that answers a write with the data path's own EIO."""

    wants_data = False
    fail = False

    def ship(self, mutation: Mutation) -> None:
        if self.fail:
            raise faults.own_eio("held: not an I/O error")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, LazyFS, Failing, list[str]]]:
    why = fuse_available()
    if why:
        pytest.skip(why)
    backing, disk = tmp_path / "backing", tmp_path / "disk"
    for d in (backing, disk):
        d.mkdir()
    reports: list[str] = []
    faults.hook, faults.interval = reports.append, 0.0
    shipper = Failing()
    umask = os.umask(0o022)  # serve() in this process sets umask 0: restore it after
    with LazyFS(backing, disk) as lazy:
        data = disk / "data"  # the replicated directory, on the (lazy) disk
        data.mkdir()
        t = threading.Thread(target=mount.serve, args=(data, shipper), daemon=True)
        t.start()
        mount.wait_mounted(data, 15)
        try:
            yield data, lazy, shipper, reports
        finally:
            mount.unmount(data)
            t.join(10)
            faults.hook, faults.interval = None, 5.0
            os.umask(umask)


def test_eio_underneath_is_reported_and_our_own_is_not(
    served: tuple[Path, LazyFS, Failing, list[str]],
) -> None:
    disk, lazy, shipper, reports = served
    f = disk / "f"
    f.write_bytes(b"ok")
    assert reports == []
    shipper.fail = True
    with pytest.raises(OSError) as err:
        f.write_bytes(b"held")
    assert err.value.errno == errno.EIO and reports == []  # the data path's own
    shipper.fail = False
    lazy.inject("eio-write", "data/f", 1)
    with pytest.raises(OSError) as err, open(f, "r+b") as fh:
        fh.write(b"x")
        fh.flush()
    assert err.value.errno == errno.EIO
    assert reports and "I/O error underneath the mount (write" in reports[0], reports
