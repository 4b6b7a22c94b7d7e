"""The watchdog as a real process: renewals keep everything untouched; silence fences
(VIP removed, then ``stop_prim force``) within the deadline + 0.3 s; disarm, a daemon
restarted in time, and SIGTERM touch nothing. VIPs live in throwaway namespaces."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from hamod.adapters.vip import VipManager
from hamod.testing.netns import (
    LinkedPair,
    ThrowawayNetns,
    linked_pair,
    netns_unavailable,
    sweep_stale,
)
from hamod.watchdog.client import WatchdogClient
from hamod.watchdog.messages import VipRef
from tests.watchdog.rig import Rig, alive, make_rig, spawn_daemon_sim, wait_for

VIP = "10.204.7.100"
SLACK = 0.3  # fencing must be done this long after the deadline


@pytest.fixture
def rig() -> Iterator[Rig]:
    with make_rig() as made:
        yield made


@pytest.fixture
def pair() -> Iterator[LinkedPair]:
    reason = netns_unavailable()
    if reason:
        pytest.skip(reason)
    sweep_stale()
    with ThrowawayNetns() as nets:
        yield linked_pair(nets, v4="10.204.7")


@pytest.fixture
def vip(pair: LinkedPair) -> Iterator[tuple[VipRef, VipManager]]:
    """The module's VIP, present in namespace ``a`` (removed with the namespace)."""
    with VipManager(pair.a) as manager:
        manager.ensure_present(VIP, 24, "eth0")
        yield VipRef(addr=VIP, netns=pair.a), manager


def assert_untouched(rig: Rig, manager: VipManager | None = None, fencings: int = 0) -> None:
    assert rig.app_alive(), f"the application was stopped; log:\n{rig.log_text()}"
    assert not rig.calls.exists(), "stop_prim ran"
    if manager is not None:
        assert manager.is_present(VIP), "the VIP was removed"
    assert rig.log_text().count("then stop_prim force)") == fencings


@pytest.mark.lab
def test_renewals_keep_everything_and_silence_fences_in_time(
    rig: Rig, vip: tuple[VipRef, VipManager]
) -> None:
    ref, manager = vip
    rig.start()
    deadline = rig.renew(ahead=0.5, every=0.1, during=2.0, vips=(ref,))
    assert_untouched(rig, manager)

    assert wait_for(lambda: rig.calls.exists() and not manager.is_present(VIP), 5.0)
    done = time.monotonic()
    assert done <= deadline + SLACK, f"fenced {done - deadline:.3f}s after the deadline"
    assert done >= deadline - 0.01, "fenced before the deadline"
    rig.app.wait(2)
    assert rig.app.returncode == -signal.SIGKILL
    assert rig.calls.read_text() == "force PRIM STOP stop\n"
    log = rig.log_text()
    assert "stop_prim force PRIM STOP stop: ok" in log
    assert log.index(f"VIP {VIP} removed") < log.index("running stop_prim force")
    (script_log,) = rig.script_logs.iterdir()
    assert "stop_prim force PRIM STOP stop" in script_log.read_text()
    assert wait_for(lambda: "fenced; waiting for a new arm" in rig.log_text(), 2.0)
    assert rig.proc is not None and rig.proc.poll() is None


def test_fences_without_vip_and_survives_bad_datagrams(rig: Rig) -> None:
    client = rig.start()
    garbage = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    for data in (b"junk", b"{}", json.dumps({"version": 7, "type": "ping"}).encode()):
        garbage.sendto(data, str(rig.socket))
    garbage.close()
    deadline = rig.arm(0.4)
    assert wait_for(lambda: not rig.app_alive(), 0.4 + SLACK + 2.0)
    assert time.monotonic() <= deadline + SLACK
    log = rig.log_text()
    assert "ignored bad message #3" in log and "unsupported protocol version 7" in log
    assert "stop_prim force PRIM STOP stop: ok" in log
    # Fenced modules re-arm; disarm stops the second fencing.
    rig.app = subprocess.Popen(["sleep", "300"])
    (rig.root / "app.pid").write_text(f"{rig.app.pid}\n")
    rig.calls.unlink()
    rig.arm(0.3)
    assert client.disarm("web")
    time.sleep(0.3 + SLACK + 0.2)
    assert_untouched(rig, fencings=1)
    assert "re-armed after fencing" in rig.log_text()


@pytest.mark.lab
def test_disarm_means_no_action_after_the_deadline(
    rig: Rig, vip: tuple[VipRef, VipManager]
) -> None:
    ref, manager = vip
    client = rig.start()
    rig.renew(ahead=0.5, every=0.1, during=0.5, vips=(ref,))
    assert client.disarm("web")
    time.sleep(0.5 + SLACK + 0.3)
    assert_untouched(rig, manager)
    assert "module web: disarmed (was armed)" in rig.log_text()


@pytest.mark.lab
def test_daemon_restarted_in_time_finds_everything_untouched(
    rig: Rig, vip: tuple[VipRef, VipManager]
) -> None:
    ref, manager = vip
    first = spawn_daemon_sim(rig, ahead=1.0, every=0.1, vips=(ref,))
    try:
        rig.start("--pid", str(first.pid))
        time.sleep(0.8)
        first.kill()  # not reaped yet: a zombie, which `kill -0` would call alive
        paused = time.monotonic()
        assert wait_for(lambda: not alive(first.pid), 1.0)
        assert wait_for(lambda: f"daemon pid {first.pid} exited (zombie" in rig.log_text(), 1.0)
        time.sleep(max(0.0, 0.3 - (time.monotonic() - paused)))
        second = spawn_daemon_sim(rig, ahead=1.0, every=0.1, vips=(ref,))
        try:
            time.sleep(1.5)
            assert_untouched(rig, manager)
            assert f"renewals now come from pid {second.pid} (was {first.pid})" in rig.log_text()
        finally:
            second.kill()
            second.wait(5)
        assert rig.client is not None and rig.client.disarm("web")
    finally:
        first.kill()
        first.wait(5)
    time.sleep(0.2)
    assert_untouched(rig, manager)


@pytest.mark.lab
def test_sigterm_exits_cleanly_leaving_vip_and_app(
    rig: Rig, vip: tuple[VipRef, VipManager]
) -> None:
    ref, manager = vip
    rig.start()
    deadline = rig.renew(ahead=0.5, every=0.1, during=0.5, vips=(ref,))
    assert rig.terminate() == 0
    assert not rig.socket.exists()
    assert not WatchdogClient(rig.socket).ping()
    time.sleep(max(0.0, deadline - time.monotonic()) + SLACK)
    assert_untouched(rig, manager)
    log = rig.log_text()
    assert "SIGTERM: exiting without touching anything" in log
    assert "left as they are: web (armed, deadline in" in log


def test_second_watchdog_on_the_same_socket_is_refused(rig: Rig) -> None:
    rig.start()
    second = subprocess.run(
        [
            sys.executable,
            "-m",
            "hamod.watchdog",
            "--socket",
            str(rig.socket),
            "--no-harden",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert second.returncode == 1
    assert "another watchdog already listens on" in second.stderr


def test_sigterm_while_fencing_finishes_the_attempt_then_exits(rig: Rig) -> None:
    script = rig.root / "bin" / "stop_prim"
    script.write_text('#!/bin/sh\nsleep 0.8\necho "$*" >> "$CALLS"\n')
    rig.start()
    rig.arm(0.1)
    assert wait_for(lambda: "running stop_prim force" in rig.log_text(), 3.0)
    started = time.monotonic()
    assert rig.terminate() == 0
    assert time.monotonic() - started >= 0.5  # waited for the running stop_prim
    assert rig.calls.read_text() == "force PRIM STOP stop\n"
    log = rig.log_text()
    assert "SIGTERM while fencing web: finishing the current attempt" in log
    assert "fencing complete" in log
