"""Following the daemon's pid: /proc/PID/stat parsing, a zombie counts as gone (unlike
``kill -0``), exit is noticed through pidfd and through /proc polling."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import pytest

from hamod.watchdog.pidwatch import DaemonWatch, proc_stat


def test_proc_stat_parses_a_name_with_spaces_and_parentheses(tmp_path: Path) -> None:
    (tmp_path / "77").mkdir()
    fields = " ".join(["S", *[str(i) for i in range(1, 19)], "123456", "0"])
    (tmp_path / "77" / "stat").write_text(f"77 (we ird) (x) {fields}\n")
    stat = proc_stat(77, proc=tmp_path)
    assert stat is not None and stat.state == "S" and stat.starttime == 123456
    assert not stat.exited
    assert proc_stat(78, proc=tmp_path) is None


def test_zombie_is_exited_although_kill_0_succeeds() -> None:
    child = subprocess.Popen(["sleep", "30"])
    try:
        child.kill()
        os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # dead, not reaped
        os.kill(child.pid, 0)  # what a naive check would call "alive"
        stat = proc_stat(child.pid)
        assert stat is not None and stat.exited
    finally:
        child.wait()


async def _watch(
    pid: int, kill: subprocess.Popen[bytes] | None, use_pidfd: bool = True
) -> tuple[str, str]:
    reasons: list[str] = []
    gone = asyncio.Event()

    def on_gone(reason: str) -> None:
        reasons.append(reason)
        gone.set()

    watch = DaemonWatch(pid, on_gone, poll=0.02, use_pidfd=use_pidfd)
    watch.start()
    if kill is not None:
        kill.kill()
    await asyncio.wait_for(gone.wait(), 5)
    watch.close()
    return watch.mode, reasons[0]


@pytest.mark.parametrize("mode", ["pidfd", "polling"])
def test_exit_is_noticed(mode: str) -> None:
    child = subprocess.Popen(["sleep", "30"])
    try:
        how, reason = asyncio.run(_watch(child.pid, child, use_pidfd=mode == "pidfd"))
    finally:
        child.wait()
    assert how == ("pidfd" if mode == "pidfd" else "/proc polling")
    assert reason.startswith("exited")


def test_absent_pid_is_reported_at_start() -> None:
    child = subprocess.Popen(["true"])
    child.wait()
    how, reason = asyncio.run(_watch(child.pid, None))
    assert reason == "does not exist" and how == "none"
