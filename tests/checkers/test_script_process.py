"""``process`` checkers with ``script``: the application a start script left running,
found by the run's session and its ``HAMOD_RUN_ID`` marker — real scripts run by the
real script runner, a plain background child and a double-forked ``setsid`` daemon."""

from __future__ import annotations

import asyncio
import os
import signal
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from hamod.adapters.scripts import Action, ScriptEnvironment, ScriptRunner, Transition
from hamod.checkers.probes import ProbeContext, probe
from hamod.core.events import Health
from hamod.runtime.real import ScriptRuns
from tests.checkers.helpers import checker, run

TAG = "31.2718"
SCRIPTS = {
    # a background child: stays in the script's session
    "start_prim": f"#!/bin/sh\nsleep {TAG} &\nsleep {TAG} &\n",
    # a daemon that leaves the session (setsid): found by its run marker
    "start_both": f"#!/bin/sh\nsetsid sleep {TAG} </dev/null >/dev/null 2>&1 &\n",
}


@pytest.fixture
def scripts(tmp_path: Path) -> Iterator[ScriptRunner]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in SCRIPTS.items():
        path = bin_dir / name
        path.write_text(textwrap.dedent(text))
        path.chmod(0o755)
    env = ScriptEnvironment(home=tmp_path, bin=tmp_path, var=tmp_path, user_var=tmp_path,
                            user_conf=tmp_path)  # fmt: skip
    yield ScriptRunner("web", bin_dir, tmp_path / "log", env)
    for p in psutil.process_iter(["cmdline"]):
        if p.info["cmdline"] == ["sleep", TAG]:
            p.kill()


def started(runner: ScriptRunner, runs: ScriptRuns, script: str) -> None:
    res = asyncio.run(
        runner.run(
            script, Transition("WAIT", "ALONE", Action.START), nice_timeout=10, force_timeout=1
        )
    )
    assert res.succeeded and res.session is not None, res
    runs.record(script, res.run_id, res.session)
    time.sleep(0.1)


def kill_one(pids: list[int]) -> None:
    os.kill(pids.pop(), signal.SIGKILL)
    time.sleep(0.1)


def sleepers() -> list[int]:
    return [p.pid for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] == ["sleep", TAG]]


def test_what_start_prim_left_running(scripts: ScriptRunner, tmp_path: Path) -> None:
    runs = ScriptRuns(tmp_path / "runs.json")
    ctx = ProbeContext(runs=runs.last)
    cfg = checker("process", script="start_prim", atleast=2)
    never = run(probe(cfg, ctx))
    assert never.health is Health.UNKNOWN and "start_prim has not run" in never.detail
    started(scripts, runs, "start_prim")
    up = run(probe(cfg, ctx))
    assert up.health is Health.UP and "start_prim's processes: 2 running" in up.detail
    # another daemon's sleep with the same command line is not the application
    other = psutil.Popen(["sleep", TAG])
    try:
        kill_one([p for p in sleepers() if p != other.pid])
        down = run(probe(cfg, ctx))
        assert down.health is Health.DOWN and "1 running, at least 2" in down.detail
    finally:
        other.kill()
    # kept across a daemon restart
    assert ScriptRuns(tmp_path / "runs.json").last("start_prim") == runs.last("start_prim")


def test_a_daemon_that_left_the_session(scripts: ScriptRunner, tmp_path: Path) -> None:
    runs = ScriptRuns(tmp_path / "runs.json")
    ctx = ProbeContext(runs=runs.last)
    started(scripts, runs, "start_both")
    cfg = checker("process", script="start_both", process="sleep")
    assert run(probe(cfg, ctx)).health is Health.UP
    assert run(probe(checker("process", script="start_both", process="bash"), ctx)).health is (
        Health.DOWN
    )
    kill_one(sleepers())
    assert run(probe(cfg, ctx)).health is Health.DOWN


def test_configuration_needs_something_to_match() -> None:
    with pytest.raises(ValueError, match="give 'process' \\(a name\\), 'regex' or 'script'"):
        checker("process")
    with pytest.raises(ValueError, match="not both"):
        checker("process", process="a", regex="b")
    with pytest.raises(ValueError, match="script"):
        checker("process", script="stop_prim")
