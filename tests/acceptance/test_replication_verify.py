"""Issue #4, scenario 3: ``hamod verify`` catches what it claims, and only that.

Faults are injected in the secondary's copy, in the directory underneath its mount
(``/run/hamod/dp/demo/under/0`` inside n2, reached from the host; writing there bypasses
replication on purpose): a flipped byte, a changed mode, owner, user xattr, access ACL
(raw ``system.posix_acl_access``), an extra file, a missing file, a split hard link.
``hamod verify -m demo`` on n1 and on n2 must report exactly these, each with its path
(and the region's offset for content), and exit 1; once repaired, exit 0.

Then no false positive: while a writer runs on the primary (the seeded exerciser of
:mod:`hamod.testing.replication`, in the background inside n1), ``hamod verify`` run
concurrently must exit 0, and still 0 once the writer stopped.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from hamod.testing.cluster import PYTHON, LabCluster
from hamod.testing.replication import (
    DATA,
    ExerciseResult,
    acl_access,
    flip_byte,
    hamod_verify,
    replicated_spec,
    start_exerciser,
    tree_differences,
    under,
    wait_in_sync,
)

pytestmark = pytest.mark.lab

MakeCluster = Callable[..., LabCluster]
REGION = 64 << 10  # the module's region size here: a 3-region file stays small (writes
# of 256 KiB and more stall on the link today: see test_replication_exerciser)
FLIP = 2 * REGION + 12345  # a byte in region 2 of the 3-region file
SPEC = replicated_spec(region_size="64KiB")

SETUP = r"""
import hashlib, os, sys
d = os.path.join(sys.argv[1], "v")
os.makedirs(d, exist_ok=True)
def put(name, data, mode=0o644):
    p = os.path.join(d, name)
    with open(p, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(p, mode)
block = b"".join(hashlib.sha256(str(i).encode()).digest() for i in range(1024))
put("big", block * (3 * 64 * 1024 // len(block)))
for name in ("mode", "owner", "xattr", "acl", "gone", "h1"):
    put(name, name.encode() * 100)
os.setxattr(os.path.join(d, "xattr"), "user.k", b"v1")
os.link(os.path.join(d, "h1"), os.path.join(d, "h2"))
"""


def _expected(here: str) -> set[str]:
    """The lines of ``hamod verify`` run on ``here`` after the injection on n2."""
    v = f"{DATA}/v"
    n1 = here == "n1"
    return {
        f"{v}/big: content differs at offset {2 * REGION} (region 2)",
        f"{v}/mode: mode {'0644 != 0600' if n1 else '0600 != 0644'}",
        f"{v}/owner: owner {'0 != 4321' if n1 else '4321 != 0'}",
        f"{v}/xattr: xattr user.k differs",
        f"{v}/acl: access ACL {'extra' if n1 else 'missing'} on peer",
        f"{v}/extra: {'extra' if n1 else 'missing'} on peer",
        f"{v}/gone: {'missing' if n1 else 'extra'} on peer",
        f"{v}/h2: hard links differ: "
        + (
            "same inode as /v/h1 here, its own inode on peer"
            if n1
            else "its own inode here, same inode as /v/h1 on peer"
        ),
    }


def _inject(v: Path) -> None:
    """The faults, written straight into n2's copy (``v`` = its ``/v``)."""
    flip_byte(v / "big", FLIP)
    os.chmod(v / "mode", 0o600)
    os.chown(v / "owner", 4321, -1)
    os.setxattr(v / "xattr", "user.k", b"v2")
    os.setxattr(v / "acl", "system.posix_acl_access", acl_access(0o644, {1000: 0o4}))
    (v / "extra").write_bytes(b"not on the primary")
    (v / "gone").unlink()
    shutil.copyfile(v / "h1", v / "h2.tmp")
    os.chmod(v / "h2.tmp", 0o644)
    os.replace(v / "h2.tmp", v / "h2")


def _repair(v: Path, ref: Path) -> None:
    """Undo every fault of :func:`_inject` (``ref`` = n1's copy, to read the truth)."""
    flip_byte(v / "big", FLIP)
    os.chmod(v / "mode", 0o644)
    os.chown(v / "owner", 0, -1)
    os.setxattr(v / "xattr", "user.k", b"v1")
    os.removexattr(v / "acl", "system.posix_acl_access")
    (v / "extra").unlink()
    (v / "gone").write_bytes((ref / "gone").read_bytes())
    os.chmod(v / "gone", 0o644)
    os.unlink(v / "h2")
    os.link(v / "h1", v / "h2")


def test_verify_reports_each_injected_fault_then_clean_after_repair(
    make_cluster: MakeCluster,
) -> None:
    c = make_cluster(SPEC)
    c.establish("demo", "n1")
    wait_in_sync(c, "n1", "n2")
    c.lab.exec("n1", [PYTHON, "-c", SETUP, DATA])
    wait_in_sync(c, "n1", "n2")
    for node in ("n1", "n2"):
        run = hamod_verify(c, node)
        assert run.returncode == 0, f"before any fault: {run}\n{c.diagnose('demo')}"
    v = under(c, "n2", "v")
    _inject(v)
    for node in ("n1", "n2"):
        run = hamod_verify(c, node)
        assert run.returncode == 1, str(run)
        assert set(run.differences) == _expected(node), (
            f"{run}\nmissing: {sorted(_expected(node) - set(run.differences))}\n"
            f"unexpected: {sorted(set(run.differences) - _expected(node))}"
        )
        assert f"{DATA}: 8 difference(s)" in run.stdout, str(run)
    # the module is not disturbed by the faults (verify reads, never repairs)
    assert c.state("n2").up_to_date, c.diagnose("demo")
    _repair(v, under(c, "n1", "v"))
    assert tree_differences(under(c, "n1"), under(c, "n2")) == []
    for node in ("n1", "n2"):
        run = hamod_verify(c, node)
        assert run.returncode == 0, f"after the repair: {run}"
        assert run.differences == [], str(run)


WRITER_KINDS = [
    # an application's usual operations; links of symlinks are left out (they diverge
    # today: test_replication_exerciser covers them), this test is about verify
    "write",
    "pwrite",
    "open",
    "close",
    "ftruncate",
    "truncate",
    "fsync",
    "fdatasync",
    "punch",
    "mkdir",
    "rmdir",
    "unlink",
    "rename",
    "link",
    "chmod",
    "setxattr",
    "removexattr",
    "fsyncdir",
]


def test_verify_no_false_positive_while_the_primary_writes(
    make_cluster: MakeCluster, scale: object
) -> None:
    soak = bool(getattr(scale, "soak", False))
    seconds = 120.0 if soak else 20.0
    c = make_cluster(replicated_spec())
    c.establish("demo", "n1")
    wait_in_sync(c, "n1", "n2")
    seed = int(os.environ.get("HAMOD_EXERCISER_SEED", "777"))
    writer = start_exerciser(c, "n1", f"{DATA}/busy", seed, seconds, kinds=WRITER_KINDS)
    runs = []
    try:
        time.sleep(1.0)  # the writer has started and made some names
        started = time.monotonic()
        while time.monotonic() - started < seconds - 4 and writer.poll() is None:
            node = "n1" if len(runs) % 3 != 2 else "n2"
            run = hamod_verify(c, node)
            runs.append(run)
            assert run.returncode == 0, (
                f"false positive? verify #{len(runs)} while the primary writes (seed {seed})"
                f": {run}\n{c.diagnose('demo')}"
            )
        out, err = writer.communicate(timeout=seconds + 60)
    finally:
        if writer.poll() is None:
            os.killpg(writer.pid, signal.SIGKILL)
            writer.communicate()
    assert writer.returncode == 0, err
    res = ExerciseResult.from_json(out.strip().splitlines()[-1])
    assert res.ops > 1000, f"the writer did too little: {json.dumps(res.kinds)}"
    assert len(runs) >= 3, [str(r) for r in runs]
    wait_in_sync(c, "n1", "n2")
    assert tree_differences(under(c, "n1"), under(c, "n2")) == []
    for node in ("n1", "n2"):
        run = hamod_verify(c, node)
        assert run.returncode == 0, f"after the writer stopped: {run}"
    hashed = [r.stdout.strip().splitlines()[-1] for r in runs]
    print(f"{len(runs)} verify runs during {res.ops} writer ops (seed {seed}): {hashed}")
