"""Running a module's user scripts (SafeKit-compatible ``start_prim``, ``stop_prim``...).

Owns executing one script of the module's ``bin/`` directory: its arguments and
environment, its log file, and its timeouts (SIGTERM then SIGKILL to every process the
run started, wherever they went). Decides nothing: which script runs when, and what a
failure means, belong to the core. See docs/scripts.md for the user's view.

- Executed directly, never through a shell: the file must be executable and start with
  ``#!`` (or be a binary). Arguments are passed as they are.
- ``missing`` (no such file) is an outcome, not an error: callers treat it as success,
  as SafeKit does for the scripts a module does not provide.
- Each run gets its own session and the marker ``HAMOD_RUN_ID`` in its environment. On
  timeout, the run's processes are found by session, by descent from the script, and by
  that marker (which catches double-forked daemons that called ``setsid``).
- When the script exits by itself, whatever it left running (the application it
  started) is left alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import os
import re
import secrets
import shlex
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psutil

from hamod.errors import AdapterError

__all__ = [
    "SCRIPT_NAMES",
    "Action",
    "Outcome",
    "ScriptEnvironment",
    "ScriptResult",
    "ScriptRunner",
    "Transition",
    "run_processes",
]

SCRIPT_NAMES = (
    "prestart",
    "start_prim",
    "stop_prim",
    "start_second",
    "stop_second",
    "start_both",
    "stop_both",
    "poststop",
)
RUN_ID_VAR = "HAMOD_RUN_ID"
_SCRIPT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_POLL = 0.05


class Action(enum.StrEnum):
    """The third argument, SafeKit's action."""

    START = "start"
    STOP = "stop"
    STOPSTART = "stopstart"
    STOPWAIT = "stopwait"


class Outcome(enum.StrEnum):
    """How a run ended."""

    OK = "ok"  # exit status 0
    FAILED = "failed"  # non-zero status, killed by a signal, or could not be executed
    TIMEOUT = "timeout"  # still running after nice_timeout; its processes were killed
    MISSING = "missing"  # no such script: callers treat it as success


@dataclass(frozen=True)
class Transition:
    """SafeKit's arguments: ``<current state> <next state> <action>``."""

    current: str
    next: str
    action: Action


@dataclass(frozen=True)
class ScriptEnvironment:
    """Directories and user variables every script of a module sees."""

    home: Path  # hamod's installation (SAFE)
    bin: Path  # directory of the hamod command (SAFEBIN)
    var: Path  # hamod's state directory (SAFEVAR)
    user_var: Path  # the module's state directory (SAFEUSERVAR)
    user_conf: Path  # the module's configuration directory (SAFEUSERCONF)
    user_vars: Mapping[str, str] = field(default_factory=dict, hash=False)
    path: str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class ScriptResult:
    """One run of one script."""

    script: str
    outcome: Outcome
    returncode: int | None  # negative: killed by that signal; None: never ran
    duration: float  # seconds
    log_path: Path | None  # None when missing
    run_id: str
    detail: str  # a short human reason
    session: int | None = None  # the run's session id (the script's pid) once started

    @property
    def succeeded(self) -> bool:
        """``ok`` or ``missing`` (a script the module does not provide)."""
        return self.outcome in (Outcome.OK, Outcome.MISSING)


def run_processes(run_id: str, session: int | None = None) -> list[psutil.Process]:
    """Live (non-zombie) processes of a run: in its session or carrying its marker."""
    found: list[psutil.Process] = []
    me = os.getpid()
    for proc in psutil.process_iter():
        if proc.pid == me:
            continue
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            if (session is not None and os.getsid(proc.pid) == session) or proc.environ().get(
                RUN_ID_VAR
            ) == run_id:
                found.append(proc)
        except (psutil.Error, OSError):
            continue
    return found


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _signal_all(procs: list[psutil.Process], sig: signal.Signals) -> None:
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.send_signal(sig)


class ScriptRunner:
    """Runs the scripts of ``module`` found in ``bin_dir``, logging into ``log_dir``."""

    def __init__(
        self,
        module: str,
        bin_dir: Path,
        log_dir: Path,
        env_base: ScriptEnvironment,
        *,
        keep_logs: int = 20,
    ) -> None:
        reserved = self._reserved_names()
        for name in env_base.user_vars:
            if not _ENV_NAME.match(name):
                raise AdapterError(f"module {module}: user variable {name!r} is not a valid name")
            if name in reserved:
                raise AdapterError(f"module {module}: user variable {name} is reserved by hamod")
        if keep_logs < 1:
            raise AdapterError(f"module {module}: keep_logs must be >= 1, got {keep_logs}")
        self.module = module
        self.bin_dir = Path(bin_dir)
        self.log_dir = Path(log_dir)
        self.env_base = env_base
        self.keep_logs = keep_logs

    @staticmethod
    def _reserved_names() -> frozenset[str]:
        return frozenset(
            {"HAMOD_MODULE", "HAMOD_STATE", "HAMOD_NEXT", "HAMOD_ACTION", "HAMOD_FORCE"}
            | {"HAMOD_HOME", "HAMOD_BIN", "HAMOD_USERBIN", "HAMOD_VAR", "HAMOD_USERVAR"}
            | {"HAMOD_CONF", "SAFE", "SAFEMODULE", "SAFEBIN", "SAFEUSERBIN", "SAFEVAR"}
            | {"SAFEUSERVAR", "SAFEUSERCONF", RUN_ID_VAR}
        )

    def environment(self, transition: Transition, *, force: bool, run_id: str) -> dict[str, str]:
        """The complete environment of one run (nothing is inherited from the daemon)."""
        base = self.env_base
        env = {"PATH": base.path, "LANG": "C.UTF-8"}
        env.update(base.user_vars)
        env.update(
            {
                "HAMOD_MODULE": self.module,
                "HAMOD_STATE": transition.current,
                "HAMOD_NEXT": transition.next,
                "HAMOD_ACTION": str(transition.action),
                "HAMOD_FORCE": "1" if force else "0",
                "HAMOD_HOME": str(base.home),
                "HAMOD_BIN": str(base.bin),
                "HAMOD_USERBIN": str(self.bin_dir),
                "HAMOD_VAR": str(base.var),
                "HAMOD_USERVAR": str(base.user_var),
                "HAMOD_CONF": str(base.user_conf),
                RUN_ID_VAR: run_id,
                "SAFE": str(base.home),
                "SAFEMODULE": self.module,
                "SAFEBIN": str(base.bin),
                "SAFEUSERBIN": str(self.bin_dir),
                "SAFEVAR": str(base.var),
                "SAFEUSERVAR": str(base.user_var),
                "SAFEUSERCONF": str(base.user_conf),
            }
        )
        return env

    async def run(
        self,
        script: str,
        args: Transition,
        *,
        nice_timeout: float,
        force_timeout: float,
        force: bool = False,
    ) -> ScriptResult:
        """Run ``bin_dir/script [force] <cur> <next> <action>``.

        After ``nice_timeout`` seconds every process of the run gets SIGTERM; those
        still alive ``force_timeout`` seconds later get SIGKILL; the outcome is
        ``timeout``. Raises :class:`AdapterError` only when the log cannot be written.
        """
        if not _SCRIPT_NAME.match(script):
            raise AdapterError(f"module {self.module}: invalid script name {script!r}")
        run_id = secrets.token_hex(4)
        path = self.bin_dir / script
        started = time.monotonic()
        session: int | None = None

        def result(outcome: Outcome, code: int | None, log: Path | None, why: str) -> ScriptResult:
            took = time.monotonic() - started
            if log is not None:
                self._write(log, f"# hamod: {outcome}: {why} ({took:.3f}s)\n")
                self._rotate(script)
            return ScriptResult(script, outcome, code, took, log, run_id, why, session)

        if nice_timeout <= 0 or force_timeout < 0:
            raise AdapterError(
                f"module {self.module}: {script} timeouts must be nice > 0 and force >= 0, "
                f"got {nice_timeout:g} and {force_timeout:g}"
            )

        if not path.exists():
            return result(
                Outcome.MISSING, None, None, f"{path} not found (nothing to run: success)"
            )
        # SafeKit's forced second stop call has "force" as $1 (its templates test
        # `if "%1" == "force"`); the state arguments follow it.
        forced = ["force"] if force else []
        argv = [str(path), *forced, args.current, args.next, str(args.action)]
        log_path = self._open_log(script, run_id)
        self._write(log_path, f"# hamod: run {run_id}: {shlex.join(argv)}\n")
        problem = self._unrunnable(path)
        if problem:
            return result(Outcome.FAILED, None, log_path, problem)
        env = self.environment(args, force=force, run_id=run_id)
        try:
            with open(log_path, "ab") as log:
                proc = await asyncio.create_subprocess_exec(
                    *argv,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    env=env,
                    cwd=str(self.bin_dir),
                    start_new_session=True,
                )
        except OSError as exc:
            why = f"cannot execute {path}: {exc.strerror or exc}"
            if exc.errno == 8:  # ENOEXEC
                why += " (no #! line? scripts are not run through a shell)"
            return result(Outcome.FAILED, None, log_path, why)
        session = proc.pid
        try:
            code = await asyncio.wait_for(proc.wait(), nice_timeout)
        except TimeoutError:
            final, why = await self._kill_run(proc, run_id, nice_timeout, force_timeout)
            return result(Outcome.TIMEOUT, final, log_path, why)
        except asyncio.CancelledError:
            # The daemon gave up on this run (shutting down): leave nothing behind.
            _, why = await asyncio.shield(self._kill_run(proc, run_id, 0.0, 0.0))
            self._write(log_path, f"# hamod: cancelled: {why}\n")
            raise
        why = f"exit status {code}" if code >= 0 else f"killed by {_signal_name(-code)}"
        return result(Outcome.OK if code == 0 else Outcome.FAILED, code, log_path, why)

    async def _kill_run(
        self, proc: asyncio.subprocess.Process, run_id: str, nice: float, grace: float
    ) -> tuple[int | None, str]:
        """SIGTERM, then after ``grace`` SIGKILL, every process of the run."""
        session = proc.pid

        def alive() -> list[psutil.Process]:
            found = {p.pid: p for p in run_processes(run_id, session)}
            with contextlib.suppress(psutil.Error):
                script = psutil.Process(proc.pid)
                for p in [script, *script.children(recursive=True)]:
                    if p.status() != psutil.STATUS_ZOMBIE:
                        found.setdefault(p.pid, p)
            return list(found.values())

        termed = await asyncio.to_thread(alive)
        _signal_all(termed, signal.SIGTERM)
        deadline = time.monotonic() + grace
        left = termed
        while left and time.monotonic() < deadline:
            await asyncio.sleep(_POLL)
            left = await asyncio.to_thread(alive)
        killed = 0
        for _ in range(20):  # children forked meanwhile are caught by the next round
            if not left:
                break
            _signal_all(left, signal.SIGKILL)
            killed += len(left)
            await asyncio.sleep(_POLL / 5)
            left = await asyncio.to_thread(alive)
        try:  # a process stuck in the kernel (D state) may not die at once
            code: int | None = await asyncio.wait_for(proc.wait(), 10.0)
        except TimeoutError:
            code = None
        why = (
            f"timeout after {nice:g}s: SIGTERM to {len(termed)} process(es), "
            f"SIGKILL after {grace:g}s more to {killed}"
        )
        if left:
            why += f"; {len(left)} still alive: {sorted(p.pid for p in left)}"
        return code, why

    @staticmethod
    def _unrunnable(path: Path) -> str | None:
        if not path.is_file():
            return f"{path} is not a regular file"
        if not os.access(path, os.X_OK):
            return f"{path} is not executable (chmod +x it)"
        return None

    def _open_log(self, script: str, run_id: str) -> Path:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        path = self.log_dir / f"{script}-{stamp}-{run_id}.log"
        try:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            path.touch(mode=0o640)
        except OSError as exc:
            raise AdapterError(
                f"module {self.module}: cannot create script log {path}: {exc.strerror}"
            ) from exc
        return path

    def _write(self, path: Path, text: str) -> None:
        try:
            with open(path, "a", encoding="utf-8") as log:
                log.write(text)
        except OSError as exc:
            raise AdapterError(
                f"module {self.module}: cannot write script log {path}: {exc.strerror}"
            ) from exc

    def logs(self, script: str) -> list[Path]:
        """The kept logs of ``script``, oldest first."""
        pattern = re.compile(rf"^{re.escape(script)}-\d{{8}}T\d{{6}}\.\d{{6}}Z-[0-9a-f]{{8}}\.log$")
        try:
            names = sorted(p.name for p in self.log_dir.iterdir() if pattern.match(p.name))
        except FileNotFoundError:
            return []
        return [self.log_dir / name for name in names]

    def _rotate(self, script: str) -> None:
        for old in self.logs(script)[: -self.keep_logs]:
            with contextlib.suppress(FileNotFoundError):
                old.unlink()
