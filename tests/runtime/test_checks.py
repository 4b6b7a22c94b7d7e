"""The daemon's checkers of a module (:mod:`hamod.runtime.checks`): automatic checkers
for checked VIPs, the runner's filter (states, phases, toggles, WAIT recovery), results
posted to the actor and logged once, resources for ``get/set -r`` — on a real module
actor over fakes and real probes (a real process, a real resource store)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest

from hamod.api.models import Command as ApiCommand
from hamod.api.models import CommandRequest
from hamod.checkers.resources import ResourceStore
from hamod.config import ModuleConfig, parse_module
from hamod.core.events import CheckAction, CheckerResult, Health
from hamod.core.model import Phase, State
from hamod.errors import UsageError
from hamod.runtime.backend import DaemonBackend
from hamod.runtime.checks import ApiAccess, ModuleChecks, auto_checkers
from hamod.runtime.real import FileToggles
from hamod.runtime.runner import ModuleRunner
from tests.runtime.harness import Rig, rig

pytestmark = pytest.mark.anyio

BASE = """
module: demo
mode: mirror
nodes: [n1, n2]
vips:
  - addr: 10.0.0.100
"""


def module(extra: str = "", base: str = BASE) -> ModuleConfig:
    return parse_module(base + extra)


def runner_of(tmp: Path, mod: ModuleConfig, r: Rig) -> ModuleRunner:
    from hamod.adapters.heartbeat_liveness import Liveness

    live = Liveness({"n2": ["lan"]}, 1.0, 0.0)
    runner = ModuleRunner(mod, r.actor, r.actor.log, live, FileToggles(tmp / "toggles.json"))
    runner.checks = ModuleChecks(
        mod, r.actor, r.actor.log, ResourceStore(tmp / "resources"),
        ApiAccess(tmp / "api.sock", None), disabled=runner.checkers_off,
        resolve=lambda addr: "eth7",
    )  # fmt: skip
    return runner


def test_checked_vip_gets_a_vip_and_an_interface_checker() -> None:
    auto = auto_checkers(module(), lambda addr: "eth0")
    assert [(c.type, c.name) for c in auto] == [("vip", "vip"), ("interface", "intf-eth0")]
    vip, intf = auto
    assert vip.action == "stopstart" and vip.when == ("PRIM", "ALONE")
    assert intf.action == "wait" and intf.when == ("PRIM", "ALONE", "SECOND")
    assert intf.interface == "eth0"  # type: ignore[union-attr]


def test_declared_checkers_replace_the_automatic_ones() -> None:
    extra = """
checkers:
  - {type: vip, name: myvip}
  - {type: interface, name: vip, interface: eth0}
"""
    assert auto_checkers(module(extra), lambda addr: "eth0") == ()
    # another interface: still watched, under a free name
    auto = auto_checkers(module(extra), lambda addr: "eth1")
    assert [(c.type, c.name) for c in auto] == [("interface", "intf-eth1")]


def test_unchecked_or_unresolved_vips_get_nothing_more() -> None:
    unchecked = BASE.replace("  - addr: 10.0.0.100", "  - {addr: 10.0.0.100, check: false}")
    assert auto_checkers(module(base=unchecked), lambda addr: "eth0") == ()
    auto = auto_checkers(module(), lambda addr: None)
    assert [c.type for c in auto] == ["vip"]  # the interface is unknown here: no checker
    explicit = BASE.replace("  - addr: 10.0.0.100", "  - {addr: 10.0.0.100, interface: br9}")
    called: list[str] = []

    def resolve(addr: str) -> str:
        called.append(addr)
        return "x"

    auto = auto_checkers(module(base=explicit), resolve)
    assert [getattr(c, "interface", None) for c in auto] == [None, "br9"]
    assert called == []


def test_filter_follows_state_phase_and_toggles(tmp_path: Path) -> None:
    extra = """
checkers:
  - {type: process, name: app, process: nothing-like-this}
  - {type: tcp, name: web, addr: 127.0.0.1, port: 9, when: both}
"""
    r = rig(tmp_path)
    runner = runner_of(tmp_path, module(extra), r)
    checks = runner.checks
    assert checks is not None
    assert checks.names == ("app", "web", "vip", "intf-eth7")

    def at(state: State, phase: Phase = Phase.READY, **kw: object) -> None:
        r.actor.state = replace(r.actor.state, state=state, phase=phase, **kw)  # type: ignore[arg-type]

    def running() -> set[str]:
        return {c.name for c in checks.checkers if checks.should_run(c)}

    at(State.STOP)
    assert running() == set()
    at(State.PRIM)
    assert running() == {"app", "web", "vip", "intf-eth7"}
    at(State.PRIM, Phase.TRANSIENT)
    assert running() == set()  # never during a transition
    at(State.SECOND)
    assert running() == {"web", "intf-eth7"}
    at(State.ALONE, errd=False)
    assert running() == {"web", "vip", "intf-eth7"}
    at(State.ALONE, errd=True, checkers=False)
    assert running() == {"app"}  # `checker off` leaves the process checkers to `errd`
    at(State.ALONE, checkers=True)
    runner.set_checker("web", False)
    assert running() == {"app", "vip", "intf-eth7"}
    assert FileToggles(tmp_path / "toggles.json").load().checkers_off == ("web",)
    runner.set_checker("web", True)
    with pytest.raises(UsageError, match=r"checker: no checker 'nope' in module demo"):
        runner.set_checker("nope", False)
    # WAIT: only the checker the module waits for runs (its recovery clears the wait)
    at(State.WAIT, Phase.NOT_READY, wait_reasons=("checker:intf-eth7",))
    assert running() == {"intf-eth7"}


async def test_results_reach_the_core_and_the_log_once(tmp_path: Path) -> None:
    extra = """
checkers:
  - {type: process, name: app, process: nothing-like-this, action: noaction}
  - {type: custom, name: gate, action: stop}
"""
    r = rig(tmp_path)
    runner = runner_of(tmp_path, module(extra), r)
    checks = runner.checks
    assert checks is not None
    posted: list[object] = []
    r.actor.post = lambda event, update=None: posted.append(event)  # type: ignore[method-assign]
    await checks.runner.check("app")
    await checks.runner.check("app")
    await checks.runner.check("gate")  # never set: unknown, once
    await checks.runner.check("gate")
    assert posted == [
        CheckerResult("app", Health.DOWN, CheckAction.NOACTION, errd=True),
        CheckerResult("gate", Health.UNKNOWN, CheckAction.STOP, errd=False),
    ]
    text = (tmp_path / "demo.log").read_text()
    assert text.count("checker process app: down (action noaction)") == 1
    assert text.count("checker custom gate: unknown, no action") == 1
    # resources: every checker's health, and custom ones as set
    checks.resources.set("custom.gate", "down")
    await checks.runner.check("gate")
    assert posted[-1] == CheckerResult("gate", Health.DOWN, CheckAction.STOP, errd=False)
    values = checks.resource_values()
    assert values["process.app"] == "down" and values["custom.gate"] == "down"
    assert values["vip.vip"] == "unknown"  # never probed


async def test_api_lists_checkers_and_sets_custom_resources(tmp_path: Path) -> None:
    extra = "checkers:\n  - {type: custom, name: gate}\n"
    r = rig(tmp_path)
    runner = runner_of(tmp_path, module(extra), r)
    backend = DaemonBackend("n1", lambda: {"demo": runner})
    loop = asyncio.ensure_future(r.actor.run())
    try:
        req = CommandRequest(command=ApiCommand.SET_RESOURCE, resource="custom.gate", value="up")
        res = await backend.command("demo", req)
        assert res.accepted and res.reason == "custom.gate = up"
        bad = CommandRequest(command=ApiCommand.SET_RESOURCE, resource="vip.vip", value="up")
        with pytest.raises(UsageError, match=r"resource: 'vip.vip' is not settable"):
            await backend.command("demo", bad)
        bad = CommandRequest(command=ApiCommand.SET_RESOURCE, resource="custom.gate", value="on")
        with pytest.raises(UsageError, match=r"value: 'on' for custom.gate: expected up or down"):
            await backend.command("demo", bad)
        assert ResourceStore(tmp_path / "resources").get("custom.gate") == "up"
        off = CommandRequest(command=ApiCommand.CHECKER_OFF, checker="gate")
        assert (await backend.command("demo", off)).reason == "checker gate off"
        status = await backend.module("demo")
        assert [(c.name, c.type, c.action, c.enabled) for c in status.checkers] == [
            ("gate", "custom", "stopstart", False),
            ("vip", "vip", "stopstart", True),
            ("intf-eth7", "interface", "wait", True),
        ]
        assert status.resources["custom.gate"] == "up"
        with pytest.raises(UsageError, match="checker: no checker 'x'"):
            await backend.command(
                "demo", CommandRequest(command=ApiCommand.CHECKER_ON, checker="x")
            )
    finally:
        loop.cancel()
