"""The probes: one async function per checker type, and :func:`probe` that guards them.

Each probe looks once and answers a :class:`Probe`: ``up``, ``down`` (the thing checked
is not as required: no process, connection refused, HTTP 500, no ping reply, link down,
VIP gone, program exited non-zero, resource set down, module not running) or ``unknown``
(the probe could not tell: it crashed, hung past its timeout, or a program had to be
killed). :func:`probe` never raises: any exception becomes ``unknown`` naming it, and a
probe still running at ``timeout`` + :data:`GRACE` is cancelled and ``unknown``.

Probes of things across a network (tcp, http, ping) bound their own I/O by ``timeout``:
a target that does not answer in time is ``down``. Probes decide nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Final, Protocol

import httpx

from hamod.adapters.icmp import any_reachable
from hamod.api.models import Phase
from hamod.checkers.local import interface_probe, process_probe, run_process_probe
from hamod.checkers.resources import ResourceStore
from hamod.checkers.result import Probe
from hamod.cli.client import Client
from hamod.config.checkers import (
    Checker,
    CustomChecker,
    HttpChecker,
    InterfaceChecker,
    ModuleChecker,
    PingChecker,
    ProcessChecker,
    TcpChecker,
    VipChecker,
)
from hamod.core.events import Health
from hamod.errors import HamodError, PeerError, UsageError

__all__ = ["GRACE", "Probe", "ProbeContext", "VipPresence", "probe"]

#: Extra time given to a probe beyond its ``timeout`` before it is cancelled as hung
#: (network probes time out by themselves at ``timeout`` and answer ``down``).
GRACE: Final = 0.5
#: Module states in which a module checker's target counts as up (when also ready).
RUNNING_STATES: Final = frozenset({"PRIM", "ALONE", "UP"})
_DETAIL_MAX: Final = 300


class VipPresence(Protocol):
    """What the vip probe needs of :class:`hamod.adapters.vip.VipManager`."""

    def is_present(self, addr: str) -> bool: ...


def _no_client(node: str | None) -> Client:
    raise HamodError("module checkers need a client factory (ProbeContext.client)")


@dataclass(frozen=True)
class ProbeContext:
    """What some probes need from the daemon.

    ``vips``: the module's VIPs (a vip checker without ``addr`` checks them all);
    ``vip``: makes the VIP adapter (called in a worker thread); ``resources``: the
    module's resource store; ``client``: an API client for a node (None: this node)."""

    vips: tuple[str, ...] = ()
    vip: Callable[[], VipPresence] | None = None
    resources: ResourceStore | None = None
    client: Callable[[str | None], Client] = _no_client
    env: Mapping[str, str] | None = field(default=None)
    #: The last successful run of a start script (run marker, session), for process
    #: checkers with ``script``; None: never ran here.
    runs: Callable[[str], tuple[str, int] | None] | None = None


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _DETAIL_MAX else text[: _DETAIL_MAX - 3] + "..."


def _exc(exc: BaseException) -> str:
    return _short(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)


async def probe(cfg: Checker, ctx: ProbeContext | None = None) -> Probe:
    """Probe once, never raising: crash → unknown, hang past timeout + GRACE → unknown."""
    ctx = ctx or ProbeContext()
    limit = float(cfg.timeout) + GRACE
    try:
        async with asyncio.timeout(limit):
            return await _dispatch(cfg, ctx)
    except TimeoutError:
        return Probe.unknown(f"probe hung: no answer within {limit:g}s, cancelled")
    except Exception as exc:
        return Probe.unknown(f"probe crashed: {_exc(exc)}")


async def _dispatch(cfg: Checker, ctx: ProbeContext) -> Probe:
    match cfg:
        case ProcessChecker():
            if cfg.script is not None:
                return await script_process_probe(cfg, ctx)
            return await asyncio.to_thread(process_probe, cfg)
        case TcpChecker():
            return await tcp_probe(cfg)
        case HttpChecker():
            return await http_probe(cfg)
        case PingChecker():
            return await ping_probe(cfg)
        case InterfaceChecker():
            return await asyncio.to_thread(interface_probe, cfg.interface)
        case VipChecker():
            return await vip_probe(cfg, ctx)
        case CustomChecker():
            return await custom_probe(cfg, ctx)
        case ModuleChecker():
            return await module_probe(cfg, ctx)


async def script_process_probe(cfg: ProcessChecker, ctx: ProbeContext) -> Probe:
    """Up when between ``atleast`` and ``atmax`` processes that the last successful run
    of ``cfg.script`` left running (matching ``process``/``regex`` if given) are alive."""
    script = str(cfg.script)
    run = ctx.runs(script) if ctx.runs is not None else None
    if run is None:
        return Probe.unknown(f"{script} has not run on this node yet")
    run_id, session = run
    return await asyncio.to_thread(run_process_probe, cfg, run_id, session)


async def _bounded(what: Awaitable[Probe], seconds: float, late: str) -> Probe:
    """``what`` within ``seconds``; a target that does not answer in time is down."""
    try:
        async with asyncio.timeout(seconds):
            return await what
    except TimeoutError:
        return Probe.down(f"{late}: no answer within {seconds:g}s")


async def tcp_probe(cfg: TcpChecker) -> Probe:
    """Up when a TCP connection to ``addr:port`` is accepted within ``timeout``."""
    where = f"[{cfg.addr}]:{cfg.port}" if ":" in cfg.addr else f"{cfg.addr}:{cfg.port}"

    async def connect() -> Probe:
        try:
            _, writer = await asyncio.open_connection(cfg.addr, cfg.port)
        except OSError as exc:
            why = os.strerror(exc.errno) if exc.errno else _exc(exc)
            return Probe.down(f"tcp {where}: {why}")
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return Probe.up(f"tcp {where}: connected")

    return await _bounded(connect(), float(cfg.timeout), f"tcp {where}")


async def http_probe(cfg: HttpChecker) -> Probe:
    """Up when a GET of ``url`` answers ``status`` (and ``body`` is found in the body)."""
    seconds = float(cfg.timeout)
    try:
        async with httpx.AsyncClient(
            verify=cfg.tls_verify, timeout=seconds, follow_redirects=False
        ) as client:
            answer = await _bounded_get(client, cfg.url, seconds)
    except httpx.TimeoutException:
        return Probe.down(f"GET {cfg.url}: no answer within {seconds:g}s")
    except httpx.HTTPError as exc:
        return Probe.down(f"GET {cfg.url}: {_exc(exc)}")
    if answer is None:
        return Probe.down(f"GET {cfg.url}: no answer within {seconds:g}s")
    if answer.status_code != cfg.status:
        return Probe.down(f"GET {cfg.url}: status {answer.status_code}, expected {cfg.status}")
    if cfg.body is not None and re.search(cfg.body, answer.text) is None:
        return Probe.down(f"GET {cfg.url}: status {answer.status_code}, body lacks {cfg.body!r}")
    return Probe.up(f"GET {cfg.url}: status {answer.status_code}")


async def _bounded_get(
    client: httpx.AsyncClient, url: str, seconds: float
) -> httpx.Response | None:
    try:
        async with asyncio.timeout(seconds):
            return await client.get(url)
    except TimeoutError:
        return None


async def ping_probe(cfg: PingChecker) -> Probe:
    """Up when at least one of ``addresses`` answers an ICMP echo within ``timeout``."""
    verdict = await any_reachable([str(a) for a in cfg.addresses], float(cfg.timeout))
    reason = verdict.reason.replace("witness", "address")
    return Probe.up(reason) if verdict.reachable else Probe.down(reason)


async def vip_probe(cfg: VipChecker, ctx: ProbeContext) -> Probe:
    """Up when ``addr`` (or every VIP of the module) is on this node's interfaces."""
    addrs = (str(cfg.addr),) if cfg.addr is not None else ctx.vips
    if not addrs:
        return Probe.unknown("the module has no VIP to check")
    if ctx.vip is None:
        return Probe.unknown("no VIP adapter given to the vip checker")
    make = ctx.vip

    def look() -> tuple[str, ...]:
        manager = make()
        try:
            return tuple(a for a in addrs if not manager.is_present(a))
        finally:
            close = getattr(manager, "close", None)
            if callable(close):
                close()

    missing = await asyncio.to_thread(look)
    if missing:
        return Probe.down(f"VIP {', '.join(missing)} not on this node")
    return Probe.up(f"VIP {', '.join(addrs)} present")


async def custom_probe(cfg: CustomChecker, ctx: ProbeContext) -> Probe:
    """Run ``program`` (no shell): exit 0 up, non-zero down, killed at timeout unknown.
    Without a program: the resource ``custom.<name>`` (up, down, never set = unknown)."""
    if cfg.program is None:
        resource = f"custom.{cfg.name}"
        if ctx.resources is None:
            return Probe.unknown(f"resource {resource}: no resource store")
        value = await asyncio.to_thread(ctx.resources.get, resource)
        if value is None:
            return Probe.unknown(f"resource {resource} not set yet")
        health = Health.UP if value == "up" else Health.DOWN
        return Probe(health, f"resource {resource} is {value}")
    argv = (str(cfg.program), *cfg.args)
    seconds = float(cfg.timeout)
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            env=dict(ctx.env) if ctx.env is not None else None,
            start_new_session=True,
        )
    except OSError as exc:
        return Probe.unknown(f"{argv[0]}: cannot run: {exc.strerror or _exc(exc)}")
    try:
        async with asyncio.timeout(seconds):
            _, err = await proc.communicate()
    except TimeoutError:
        return Probe.unknown(f"{argv[0]}: still running after {seconds:g}s, killed")
    finally:
        if proc.returncode is None:
            _kill_group(proc)
            await proc.wait()
    code = proc.returncode
    if code == 0:
        return Probe.up(f"{argv[0]}: exit 0")
    said = err.decode(errors="replace").strip().splitlines()
    tail = f": {_short(said[-1])}" if said else ""
    how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit {code}"
    return Probe.down(f"{argv[0]}: {how}{tail}")


def _kill_group(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


async def module_probe(cfg: ModuleChecker, ctx: ProbeContext) -> Probe:
    """Up when module ``module`` (on ``node``, or here) is PRIM, ALONE or UP and ready.
    An unreachable node or an unknown module is down; other API errors are unknown."""
    where = f"module {cfg.module} on {cfg.node or 'this node'}"
    try:
        async with ctx.client(cfg.node) as client:
            status = await client.module(cfg.module)
    except (PeerError, UsageError) as exc:
        return Probe.down(f"{where}: {_exc(exc)}")
    state, phase = status.state.value, status.phase.value
    if state in RUNNING_STATES and status.phase is Phase.READY:
        return Probe.up(f"{where}: {state} ({phase})")
    return Probe.down(f"{where}: {state} ({phase})")
