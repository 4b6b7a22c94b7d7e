"""Labs come and go without a trace, scale to three nodes, coexist, and can be driven
from another process and from scripts/lab."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from hamod.errors import LabError
from hamod.testing import labsys
from hamod.testing.fixtures import unique_lab_name
from hamod.testing.lab import Lab, lab_available, lab_root, sweep

pytestmark = pytest.mark.lab
ROOT = Path(__file__).resolve().parents[2]


def _zombie_children() -> list[int]:
    me = str(os.getpid())
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stat = Path(f"/proc/{entry.name}/stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            if fields[0] == "Z" and fields[1] == me:
                found.append(int(entry.name))
    return found


def test_the_machine_can_host_labs() -> None:
    assert lab_available() is None


def test_teardown_leaves_no_namespace_mount_or_process() -> None:
    if lab_available():
        pytest.skip(f"lab unavailable: {lab_available()}")
    lab = Lab(unique_lab_name("gone"))
    with lab:
        state = lab.state_dir
        netns = list(lab.topo.all_netns)
        pids = [lab.status().host(h).pid for h in ("n1", "n2", "witness")]
        sleepers = [lab.popen(h, ["sleep", "600"]) for h in ("n1", "client", "witness")]
        lab.exec("n1", "mkdir -p /srv/m && mount -t tmpfs t /srv/m")
        assert all(p.poll() is None for p in sleepers)
    assert labsys.lab_netns(f"hamodlab.{lab.name}.") == []
    assert not any((labsys.NETNS_DIR / n).exists() for n in netns)
    assert not state.exists()
    assert str(state) not in Path("/proc/self/mountinfo").read_text()
    assert not any(labsys.is_alive(p, None) for p in pids if p)
    for proc in sleepers:
        assert proc.wait(timeout=5) is not None
    assert _zombie_children() == []
    lab.down()  # idempotent


def test_up_refuses_a_running_lab_and_replaces_a_crashed_one(
    make_lab: Callable[..., Lab],
) -> None:
    lab = make_lab()
    with pytest.raises(LabError, match="already up"):
        Lab(lab.name).up()
    # a crash: every host dies, nobody calls down()
    labsys.kill_pids([lab.status().host(h).pid or 0 for h in lab.running()])
    deadline = time.monotonic() + 5
    while lab.running() and time.monotonic() < deadline:
        time.sleep(0.01)
    again = Lab(lab.name).up()
    try:
        assert again.running() == ["n1", "n2", "witness"]
        assert again.reachable("n1", "n2")
    finally:
        again.down()


def test_three_node_lab_and_group_partition(make_lab: Callable[..., Lab]) -> None:
    lab = make_lab(nodes=3)
    assert lab.node_names == ("n1", "n2", "n3")
    assert lab.exec("n3", "hostname").stdout.strip() == "n3"
    lab.partition(["n1"], ["n2", "n3"])
    assert not lab.reachable("n1", "n2") and not lab.reachable("n1", "n3", net="net1")
    assert lab.reachable("n2", "n3") and lab.reachable("n3", "n2", net="net1")
    assert lab.reachable("n1", "witness")
    lab.heal()
    assert lab.reachable("n1", "n3")


def test_parallel_labs_use_separate_subnets(lab: Lab, make_lab: Callable[..., Lab]) -> None:
    other = make_lab(nodes=1, networks=1)
    assert other.topo.subnet(0) != lab.topo.subnet(0)
    assert other.address("n1") != lab.address("n1")
    assert other.reachable("n1", "witness") and lab.reachable("n1", "witness")


def test_attach_from_another_process_drives_the_lab(lab: Lab) -> None:
    code = (
        "from hamod.testing.lab import Lab; import sys; "
        f"lab = Lab.attach({lab.name!r}); "
        "print(lab.exec('n1', 'hostname').stdout.strip(), lab.alive('n2'))"
    )
    out = subprocess.run(
        [os.sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["n1", "True"]


def test_bad_names_and_shapes_are_refused() -> None:
    with pytest.raises(LabError, match=r"lab name 'a\.b' is invalid"):
        Lab("a.b")
    with pytest.raises(LabError, match="1 to 8 nodes"):
        Lab(unique_lab_name(), nodes=9).up()
    with pytest.raises(LabError, match="is not up"):
        Lab.attach("never-up")


def test_the_state_root_must_not_be_overlaid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HAMOD_LAB_ROOT", "/var/tmp/labs")
    with pytest.raises(LabError, match="inside /var"):
        lab_root()


def test_sweep_removes_labs_whose_owner_died() -> None:
    if lab_available():
        pytest.skip(f"lab unavailable: {lab_available()}")
    name = unique_lab_name("orphan")
    code = f"from hamod.testing.lab import Lab; Lab({name!r}).up()"  # exits without down()
    subprocess.run([os.sys.executable, "-c", code], check=True, timeout=60)
    assert Lab.attach(name).running() == ["n1", "n2", "witness"]
    assert name in sweep()
    assert labsys.lab_netns(f"hamodlab.{name}.") == []
    assert not (lab_root() / name).exists()


def _lab_script(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ROOT / "scripts" / "lab"), *args], capture_output=True, text=True, timeout=60
    )


def test_scripts_lab_up_status_exec_down() -> None:
    if lab_available():
        pytest.skip(f"lab unavailable: {lab_available()}")
    name = unique_lab_name("cli")
    try:
        up = _lab_script("--name", name, "up")
        assert up.returncode == 0, up.stderr
        assert "n1" in up.stdout and "witness" in up.stdout
        status = json.loads(_lab_script("--name", name, "status", "--json").stdout)
        assert [h["alive"] for h in status["hosts"]] == [True, True, True, True]
        out = _lab_script("--name", name, "exec", "n2", "cat", "/etc/hostname")
        assert out.returncode == 0 and out.stdout.strip() == "n2", out.stderr
        ssh = _lab_script("--name", name, "ssh", "n1", "hostname")
        assert ssh.stdout.strip() == "n1", ssh.stderr
        bad = _lab_script("--name", name, "exec", "n7", "true")
        assert bad.returncode == 1 and "no host 'n7'" in bad.stderr
    finally:
        down = _lab_script("--name", name, "down")
    assert down.returncode == 0, down.stderr
    assert labsys.lab_netns(f"hamodlab.{name}.") == []
    assert _lab_script("--name", name, "status").returncode == 1
