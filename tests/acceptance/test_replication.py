"""Acceptance of replication in the daemon (issue #4): a module with a replicated
directory on the namespace lab.

The module ``demo`` replicates ``/srv/data`` (each lab node's own overlay). The tests
write through the mount on the primary (inside the node), read the secondary's copy
underneath its read-only mount, fail over, bring nodes back, and end with both copies
compared (``python -m hamod.verify`` over the two trees, reached from the host through
each node's /proc/PID/root and the data path's private view underneath the mount).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from hamod.api.models import State
from hamod.testing.cluster import PYTHON, LabCluster, ModuleSpec
from hamod.testing.replication import wait_in_sync

pytestmark = pytest.mark.lab

WAIT = 60.0
M = "demo"
DATA = "/srv/data"
UNDER = f"/run/hamod/dp/{M}/under/0"

MakeCluster = Callable[..., LabCluster]

SPEC = ModuleSpec(
    timeout="2s",
    extra={"replication": {"directories": [{"path": DATA}], "link_timeout": "3s"}},
)

WRITER = r"""
import hashlib, json, os, sys
root, start, count, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
os.makedirs(os.path.join(root, "d"), exist_ok=True)
acked = []
for i in range(start, start + count):
    p = os.path.join(root, "d", f"f{i:05d}")
    data = hashlib.sha256(str(i).encode()).digest() * (size // 32)
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.write(fd, data)
    os.fsync(fd)
    os.close(fd)
    acked.append(i)
print(json.dumps(acked))
"""

CHECK = r"""
import hashlib, json, os, sys
root, size = sys.argv[1], int(sys.argv[2])
numbers = json.loads(sys.stdin.read())
bad = []
for i in numbers:
    p = os.path.join(root, "d", f"f{i:05d}")
    want = hashlib.sha256(str(i).encode()).digest() * (size // 32)
    try:
        with open(p, "rb") as f:
            if f.read() != want:
                bad.append(i)
    except OSError:
        bad.append(i)
print(json.dumps(bad))
"""


def write(c: LabCluster, node: str, start: int, count: int, size: int = 8192) -> list[int]:
    out = c.lab.exec(node, [PYTHON, "-c", WRITER, DATA, str(start), str(count), str(size)])
    return list(json.loads(out.stdout))


def missing(c: LabCluster, node: str, root: str, numbers: list[int], size: int = 8192) -> list[int]:
    out = c.lab.exec(node, [PYTHON, "-c", CHECK, root, str(size)], input=json.dumps(numbers))
    return list(json.loads(out.stdout))


def mounts(c: LabCluster, node: str) -> str:
    return c.lab.exec(node, f"grep ' {DATA} ' /proc/self/mountinfo || true").stdout


def under(c: LabCluster, node: str) -> Path:
    p = c._host_path(node, UNDER)
    assert p is not None
    return p


def verify_trees(c: LabCluster, a: str, b: str) -> None:
    run = subprocess.run(
        [PYTHON, "-m", "hamod.verify", str(under(c, a)), str(under(c, b))],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_replication_failover_and_resync(make_cluster: MakeCluster) -> None:
    """First start copies nothing but gets n2 in sync; fsynced writes on n1 are on n2;
    n1 powered off → n2 serves every acknowledged write; n1 back → resynced as SECOND
    (only what changed), both copies equal."""
    c = make_cluster(SPEC)
    c.establish(M, "n1")
    wait_in_sync(c, "n1", "n2")
    assert "fuse.hamod" in mounts(c, "n1") and " rw" in mounts(c, "n1"), mounts(c, "n1")
    assert "fuse.hamod" in mounts(c, "n2"), mounts(c, "n2")
    acked = write(c, "n1", 0, 200)
    assert missing(c, "n2", UNDER, acked) == []
    # the secondary's view is read-only to applications
    ro = c.lab.exec("n2", f"touch {DATA}/x 2>&1; echo rc=$?", check=False).stdout
    assert "Read-only" in ro, ro
    verify_trees(c, "n1", "n2")
    c.power_off("n1")
    c.wait_state("n2", M, State.ALONE, WAIT)
    assert missing(c, "n2", DATA, acked) == []
    more = write(c, "n2", 200, 100)
    c.boot("n1")  # the module was running: it starts, pairs as SECOND and resyncs
    wait_in_sync(c, "n2", "n1")
    assert missing(c, "n1", UNDER, acked + more) == []
    verify_trees(c, "n1", "n2")
