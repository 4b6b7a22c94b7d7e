"""ScriptRunner with real scripts in temporary directories: arguments, environment,
outcomes, no shell, logs and rotation, timeouts killing whole process trees, daemonized
applications left running."""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from hamod.adapters.scripts import (
    Action,
    Outcome,
    ScriptEnvironment,
    ScriptResult,
    ScriptRunner,
    Transition,
    run_processes,
)
from hamod.errors import AdapterError

START = Transition("STOP", "ALONE", Action.START)
STOP = Transition("PRIM", "STOP", Action.STOP)


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.fixture
def reap() -> Iterator[list[int]]:
    """Pids a test started indirectly; SIGKILLed at teardown whatever happened."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            proc = psutil.Process(pid)
            if "sleep" in " ".join(proc.cmdline()):
                proc.kill()


@pytest.fixture
def runner(tmp_path: Path) -> ScriptRunner:
    env = ScriptEnvironment(
        home=Path("/opt/hamod"),
        bin=Path("/opt/hamod/bin"),
        var=Path("/var/lib/hamod"),
        user_var=tmp_path / "var",
        user_conf=Path("/etc/hamod/modules/web"),
        user_vars={"DB_PORT": "5432", "PATH": "/usr/bin:/bin"},
    )
    (tmp_path / "bin").mkdir()
    return ScriptRunner("web", tmp_path / "bin", tmp_path / "log", env, keep_logs=3)


def _script(runner: ScriptRunner, name: str, body: str, mode: int = 0o755) -> Path:
    path = runner.bin_dir / name
    path.write_text("#!/bin/bash\n" + textwrap.dedent(body).lstrip())
    path.chmod(mode)
    return path


def _run(
    runner: ScriptRunner,
    name: str,
    args: Transition = START,
    *,
    nice: float = 10.0,
    force_timeout: float = 10.0,
    force: bool = False,
) -> ScriptResult:
    return asyncio.run(
        runner.run(name, args, nice_timeout=nice, force_timeout=force_timeout, force=force)
    )


def test_arguments_and_environment(runner: ScriptRunner, tmp_path: Path) -> None:
    out = tmp_path / "seen"
    _script(runner, "start_prim", f'printf "%s\\n" "$@" > {out}; env >> {out}')
    result = _run(runner, "start_prim", Transition("SECOND", "PRIM", Action.STOPSTART))
    assert result.outcome is Outcome.OK and result.returncode == 0 and result.succeeded
    lines = out.read_text().splitlines()
    assert lines[:3] == ["SECOND", "PRIM", "stopstart"]
    env = dict(line.split("=", 1) for line in lines[3:] if "=" in line)
    expected = {
        "HAMOD_MODULE": "web",
        "SAFEMODULE": "web",
        "HAMOD_STATE": "SECOND",
        "HAMOD_NEXT": "PRIM",
        "HAMOD_ACTION": "stopstart",
        "HAMOD_FORCE": "0",
        "HAMOD_HOME": "/opt/hamod",
        "SAFE": "/opt/hamod",
        "HAMOD_BIN": "/opt/hamod/bin",
        "SAFEBIN": "/opt/hamod/bin",
        "HAMOD_USERBIN": str(runner.bin_dir),
        "SAFEUSERBIN": str(runner.bin_dir),
        "HAMOD_VAR": "/var/lib/hamod",
        "SAFEVAR": "/var/lib/hamod",
        "HAMOD_USERVAR": str(tmp_path / "var"),
        "SAFEUSERVAR": str(tmp_path / "var"),
        "HAMOD_CONF": "/etc/hamod/modules/web",
        "SAFEUSERCONF": "/etc/hamod/modules/web",
        "HAMOD_RUN_ID": result.run_id,
        "DB_PORT": "5432",
        "PATH": "/usr/bin:/bin",
    }
    assert {k: env.get(k) for k in expected} == expected
    assert "PYTEST_CURRENT_TEST" not in env  # nothing leaks from the daemon


def test_second_stop_run_gets_force(runner: ScriptRunner, tmp_path: Path) -> None:
    out = tmp_path / "seen"
    _script(runner, "stop_prim", f'echo "$# $* $HAMOD_FORCE" > {out}')
    assert _run(runner, "stop_prim", STOP, force=True).outcome is Outcome.OK
    assert out.read_text() == "4 force PRIM STOP stop 1\n"  # $1 = force, as in SafeKit


def test_arguments_are_not_interpreted_by_a_shell(runner: ScriptRunner, tmp_path: Path) -> None:
    pwned, out = tmp_path / "pwned", tmp_path / "seen"
    hostile = f"$(touch {pwned})"
    _script(runner, "start_prim", f'printf "%s" "$1" > {out}')
    result = _run(runner, "start_prim", Transition(hostile, "ALONE; touch x", Action.START))
    assert result.outcome is Outcome.OK
    assert out.read_text() == hostile
    assert not pwned.exists() and not (runner.bin_dir / "x").exists()


def test_exit_codes_map_to_outcomes(runner: ScriptRunner) -> None:
    _script(runner, "start_both", "exit 3")
    failed = _run(runner, "start_both")
    assert (failed.outcome, failed.returncode, failed.detail) == (
        Outcome.FAILED,
        3,
        "exit status 3",
    )
    assert not failed.succeeded
    _script(runner, "start_second", "kill -KILL $$")
    killed = _run(runner, "start_second")
    assert (killed.outcome, killed.returncode) == (Outcome.FAILED, -signal.SIGKILL)
    assert killed.detail == "killed by SIGKILL"


def test_missing_script_is_missing_and_counts_as_success(runner: ScriptRunner) -> None:
    result = _run(runner, "prestart")
    assert result.outcome is Outcome.MISSING and result.succeeded
    assert result.log_path is None and result.returncode is None
    assert "not found" in result.detail


def test_non_executable_and_shebangless_scripts_fail_with_a_reason(runner: ScriptRunner) -> None:
    _script(runner, "start_prim", "exit 0", mode=0o644)
    result = _run(runner, "start_prim")
    assert result.outcome is Outcome.FAILED and result.returncode is None
    assert "is not executable (chmod +x it)" in result.detail
    assert result.log_path is not None
    assert "not executable" in result.log_path.read_text()

    path = runner.bin_dir / "stop_prim"
    path.write_text("echo no interpreter line\n")
    path.chmod(0o755)
    result = _run(runner, "stop_prim", STOP)
    assert result.outcome is Outcome.FAILED
    assert "no #! line" in result.detail

    (runner.bin_dir / "poststop").mkdir()
    assert "not a regular file" in _run(runner, "poststop").detail


def test_bad_names_and_reserved_variables_are_refused(runner: ScriptRunner, tmp_path: Path) -> None:
    with pytest.raises(AdapterError, match=r"invalid script name '\.\./start_prim'"):
        _run(runner, "../start_prim")
    t = tmp_path
    env = ScriptEnvironment(t, t, t, t, t, user_vars={"SAFEMODULE": "x"})
    with pytest.raises(AdapterError, match=r"user variable SAFEMODULE is reserved"):
        ScriptRunner("web", tmp_path, tmp_path, env)


def test_output_is_logged_and_logs_are_rotated(runner: ScriptRunner) -> None:
    _script(runner, "start_prim", 'echo "to stdout $1"; echo "to stderr" >&2; exit 1')
    results = [_run(runner, "start_prim") for _ in range(4)]
    last = results[-1]
    assert last.log_path is not None
    assert re.fullmatch(r"start_prim-\d{8}T\d{6}\.\d{6}Z-[0-9a-f]{8}\.log", last.log_path.name), (
        last.log_path.name
    )
    assert last.run_id in last.log_path.name
    text = last.log_path.read_text()
    assert "to stdout STOP" in text and "to stderr" in text
    assert "start_prim STOP ALONE start" in text and "failed: exit status 1" in text
    kept = runner.logs("start_prim")
    assert kept == sorted(r.log_path for r in results[1:] if r.log_path)
    assert results[0].log_path is not None and not results[0].log_path.exists()


def test_timeout_kills_the_whole_tree(
    runner: ScriptRunner, tmp_path: Path, reap: list[int]
) -> None:
    pids = tmp_path / "pids"
    _script(
        runner,
        "stop_prim",
        f"""
        trap '' TERM                                      # the script ignores SIGTERM
        sleep 300 & echo $! >> {pids}                     # a child
        bash -c 'sleep 301 & echo $! >> {pids}; wait' &   # a grandchild
        echo $! >> {pids}
        setsid sleep 302 & echo $! >> {pids}              # a child in its own session
        (setsid sleep 303 & echo $! >> {pids}) &          # a double-forked daemon
        wait
        """,
    )
    result = _run(runner, "stop_prim", STOP, nice=0.5, force_timeout=0.4)
    started = [int(p) for p in pids.read_text().split()]
    reap.extend(started)
    assert len(started) == 5
    assert result.outcome is Outcome.TIMEOUT and not result.succeeded
    assert result.returncode == -signal.SIGKILL
    assert 0.9 <= result.duration < 5.0
    assert "SIGTERM to" in result.detail and "still alive" not in result.detail
    survivors = [pid for pid in started if _alive(pid)]
    assert survivors == []
    assert run_processes(result.run_id) == []
    assert result.log_path is not None and "timeout after 0.5s" in result.log_path.read_text()


def test_timeout_lets_a_graceful_script_stop_on_sigterm(runner: ScriptRunner) -> None:
    _script(runner, "stop_both", "trap 'echo got TERM; exit 0' TERM\nsleep 300 & wait")
    result = _run(runner, "stop_both", STOP, nice=0.3, force_timeout=5.0)
    assert result.outcome is Outcome.TIMEOUT
    assert result.duration < 3.0  # no need to wait for the force timeout
    assert result.log_path is not None and "got TERM" in result.log_path.read_text()
    assert run_processes(result.run_id) == []


def test_daemonized_application_survives_a_normal_exit(
    runner: ScriptRunner, tmp_path: Path, reap: list[int]
) -> None:
    pidfile = tmp_path / "app.pid"
    _script(
        runner,
        "start_prim",
        f"setsid sleep 300 </dev/null >/dev/null 2>&1 & echo $! > {pidfile}\nexit 0",
    )
    result = _run(runner, "start_prim")
    app = int(pidfile.read_text())
    reap.append(app)
    assert result.outcome is Outcome.OK
    time.sleep(0.2)
    assert _alive(app)
    assert [p.pid for p in run_processes(result.run_id)] == [app]  # still traceable


def test_cancelling_a_run_kills_its_processes(
    runner: ScriptRunner, tmp_path: Path, reap: list[int]
) -> None:
    pidfile = tmp_path / "pid"
    _script(runner, "start_prim", f"trap '' TERM; sleep 300 & echo $! > {pidfile}; wait")

    async def scenario() -> None:
        task = asyncio.create_task(
            runner.run("start_prim", START, nice_timeout=30, force_timeout=30)
        )
        while not pidfile.exists() or not pidfile.read_text().strip():
            await asyncio.sleep(0.02)
        reap.append(int(pidfile.read_text()))
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    assert not _alive(reap[-1])
    assert "# hamod: cancelled:" in runner.logs("start_prim")[-1].read_text()
