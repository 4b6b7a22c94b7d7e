"""Fencer without a namespace: a VIP that cannot be removed and a stop_prim that cannot
run are retried; a missing stop_prim is success; a failing one is reported, not rerun."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from hamod.adapters.scripts import Outcome
from hamod.watchdog.fence import Fencer
from hamod.watchdog.messages import Arm, StopEnv, StopSpec, VipRef
from hamod.watchdog.state import FenceJob


def job(tmp_path: Path, vips: tuple[VipRef, ...] = ()) -> FenceJob:
    env = StopEnv(home="/h", bin="/h/bin", var="/v", user_var="/v/web", user_conf="/c")
    stop = StopSpec(
        bin_dir=str(tmp_path / "bin"),
        log_dir=str(tmp_path / "log"),
        state="ALONE",
        nice_timeout=5,
        force_timeout=1,
        env=env,
    )
    return FenceJob("web", Arm(module="web", deadline=1.0, vips=vips, stop=stop), 0.0, 0.5)


def script(tmp_path: Path, body: str, mode: int = 0o755) -> Path:
    (tmp_path / "bin").mkdir(exist_ok=True)
    path = tmp_path / "bin" / "stop_prim"
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(mode)
    return path


@pytest.fixture
def fencer() -> Fencer:
    return Fencer(logging.getLogger("test.watchdog"), retry_delays=(0.01,))


def test_missing_stop_prim_is_success(tmp_path: Path, fencer: Fencer) -> None:
    result = asyncio.run(fencer.fence(job(tmp_path), lambda: True))
    assert result.complete and result.attempts == 1
    assert result.script is not None and result.script.outcome is Outcome.MISSING


def test_stop_prim_gets_force_and_the_state(tmp_path: Path, fencer: Fencer) -> None:
    script(tmp_path, 'echo "$*" > "$0.args"')
    result = asyncio.run(fencer.fence(job(tmp_path), lambda: True))
    assert result.complete
    assert (tmp_path / "bin" / "stop_prim.args").read_text() == "force ALONE STOP stop\n"


def test_unrunnable_stop_prim_is_retried_until_it_runs(
    tmp_path: Path, fencer: Fencer, caplog: pytest.LogCaptureFixture
) -> None:
    path = script(tmp_path, "exit 0", mode=0o644)
    asked: list[int] = []

    def keep_trying() -> bool:
        asked.append(1)
        if len(asked) == 2:
            path.chmod(0o755)  # the admin fixed it
        return True

    with caplog.at_level(logging.WARNING, "test.watchdog"):
        result = asyncio.run(fencer.fence(job(tmp_path), keep_trying))
    assert result.complete and result.attempts == 3
    assert "not executable" in caplog.text and "attempt 1 incomplete" in caplog.text


def test_failing_stop_prim_is_reported_not_rerun(
    tmp_path: Path, fencer: Fencer, caplog: pytest.LogCaptureFixture
) -> None:
    script(tmp_path, "exit 3")
    result = asyncio.run(fencer.fence(job(tmp_path), lambda: True))
    assert result.complete and result.attempts == 1
    assert result.script is not None and result.script.returncode == 3
    assert "the application may still be running" in caplog.text


def test_vip_that_cannot_be_removed_is_retried_and_the_app_still_stopped(
    tmp_path: Path, fencer: Fencer, caplog: pytest.LogCaptureFixture
) -> None:
    script(tmp_path, 'echo ran >> "$0.ran"')
    vips = (VipRef(addr="10.9.9.9", netns="hamod-no-such-netns"),)
    tries = iter([True, True, False])
    result = asyncio.run(fencer.fence(job(tmp_path, vips), lambda: next(tries)))
    assert not result.complete and result.attempts == 3
    assert result.vips_left == ("10.9.9.9",)
    assert (tmp_path / "bin" / "stop_prim.ran").read_text() == "ran\n"  # once, not per retry
    assert "does not exist" in caplog.text
    assert "fencing stopped before completion" in caplog.text
