"""The README's first command, as a new user runs it: ``scripts/demo`` brings up a lab,
deploys the two-node cluster with the witness through the playbooks and starts the demo
module; a second run changes nothing; ``scripts/demo failover`` powers the primary off
under a writing client and every acknowledged write is served; ``scripts/demo down``
removes it all. The lab gets its own name (HAMOD_DEMO_LAB), so a user's demo is left
alone.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from hamod.testing.fixtures import unique_lab_name
from hamod.testing.lab import Lab, lab_available, persistent_labs

pytestmark = [pytest.mark.lab, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]


def _demo(name: str, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HAMOD_DEMO_LAB": name, "ANSIBLE_NOCOLOR": "1"}
    return subprocess.run(
        [str(ROOT / "scripts" / "demo"), *args], cwd=ROOT, env=env, capture_output=True,
        text=True, timeout=timeout, check=False,
    )  # fmt: skip


@pytest.fixture
def demo_lab() -> Iterator[str]:
    reason = lab_available()
    if reason is not None:
        pytest.skip(reason)
    name = unique_lab_name("demo")
    try:
        yield name
    finally:
        _demo(name, "down", timeout=120)
        Lab(name).down()


def _client(name: str, *cmd: str) -> str:
    res = subprocess.run(
        ["ip", "netns", "exec", f"hamodlab.{name}.client", *cmd],
        capture_output=True, text=True, timeout=20, check=True,
    )  # fmt: skip
    return res.stdout


def test_the_demo_deploys_serves_fails_over_and_goes(demo_lab: str) -> None:
    name = demo_lab
    up = _demo(name)
    out = up.stdout + up.stderr
    assert up.returncode == 0, out[-4000:]
    assert re.search(r"demo: ready in \d+ s \(plus \d+ s", out), out[-2000:]
    assert "playbooks/init.yml done" in out, out[-2000:]
    vip = Lab.attach(name).free_address(0)
    assert f"virtual IP {vip}" in out

    # the service answers through the VIP and its data is on the secondary's disk
    _client(name, "curl", "-sf", "-X", "PUT", "--data", "hello", f"http://{vip}:8080/kv/greeting")
    assert _client(name, "curl", "-sf", f"http://{vip}:8080/kv/greeting") == "hello"
    lab = Lab.attach(name)
    assert lab.vip_owner(vip) == "n1"
    on_second = lab.exec("n2", ["cat", "/srv/demo/greeting"], check=False)
    assert on_second.stdout == "hello", on_second

    again = _demo(name)
    assert again.returncode == 0, (again.stdout + again.stderr)[-3000:]
    assert "already runs" in again.stdout + again.stderr

    status = _demo(name, "status", timeout=60)
    assert status.returncode == 0 and "PRIM" in status.stdout + status.stderr

    fo = _demo(name, "failover")
    out = fo.stdout + fo.stderr
    assert fo.returncode == 0, out[-4000:]
    served = re.search(r"n2 serves (\d+) of the (\d+) acknowledged writes", out)
    assert served and served.group(1) == served.group(2) and int(served.group(2)) > 0, out
    assert "playbooks/failback.yml done" in out, out[-3000:]
    assert _client(name, "curl", "-sf", f"http://{vip}:8080/kv/greeting") == "hello"

    down = _demo(name, "down", timeout=120)
    assert down.returncode == 0, down.stderr
    assert name not in persistent_labs()
