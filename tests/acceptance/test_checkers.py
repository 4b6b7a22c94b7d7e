"""Acceptance of the checkers (issue #5): each scenario on a fresh 2-node lab cluster.

The module's ``start_prim`` starts :mod:`hamod.testing.checked_service` (HTTP on port
7070 whose ``/health`` answers the status written in a file, and the outage probe's line
protocol), so a test can kill the application, make it answer 500, remove its VIP or pull
its cable, and assert what the daemon did: the module states on both nodes, where the VIP
is (:class:`~hamod.testing.cluster.VipWatch` for "never moved"), which scripts ran (the
per-node journal), the module log (the checker's line and the transition's row), and
``hamod state -v`` / ``hamod get -r`` / ``hamod set -r``.

Checkers run every 1 s with a 0.5 s timeout (the automatic ``vip`` and ``interface``
checkers of a checked VIP: 3 s / 2 s) so that each scenario takes seconds. docs/acceptance.md
("Checkers") describes each scenario.
"""

from __future__ import annotations

import re
import shlex
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pytest

from hamod.api.models import State
from hamod.runtime.logs import parse_time
from hamod.testing import checked_service
from hamod.testing.cluster import PYTHON, LabCluster, ModuleSpec

pytestmark = pytest.mark.lab

WAIT = 30.0  # generous bound for reaching a state on a loaded 2-core machine
M = "demo"
INTERVAL, TIMEOUT = 1.0, 0.5  # the checkers' own timers below
AUTO_INTERVAL, AUTO_TIMEOUT = 3.0, 2.0  # the automatic vip / interface checkers
#: Scheduling slack on top of a detection bound (2 busy cores, other labs running).
SLACK = 1.5
DEP_PORT = 7071  # a per-node dependency (the HTTP wait scenario)

MakeCluster = Callable[..., LabCluster]


def checker(type_: str, name: str, **fields: Any) -> dict[str, Any]:
    """A checker of the module file with the tests' short timers."""
    return {"type": type_, "name": name, "interval": f"{INTERVAL:g}s",
            "timeout": f"{TIMEOUT * 1000:g}ms", **fields}  # fmt: skip


def spec(*checkers: Mapping[str, Any], name: str = M, **extra: Any) -> ModuleSpec:
    """Module ``name`` (pulse 100 ms, timeout 1 s) with these checkers."""
    port = extra.pop("port", 7070)
    failover = extra.pop("failover", True)
    return ModuleSpec(name, port=port, failover=failover,
                      extra={"checkers": list(checkers), **extra})  # fmt: skip


def setup(make_cluster: MakeCluster, *modules: ModuleSpec, witness: str = "arbitrator",
          checked: Sequence[str] = (M,)) -> LabCluster:  # fmt: skip
    """A cluster whose ``checked`` modules run :mod:`hamod.testing.checked_service`."""
    c = make_cluster(*modules, witness=witness)
    for module in checked:
        checked_service.install(c, module)
    return c


def lines_of(journal: list[str], script: str) -> list[str]:
    return [line for line in journal if line.split(" ", 1)[0] == script]


def unforced(journal: list[str]) -> list[str]:
    """The journal without the daemon's forced retries of stop_prim: the lab's stop_prim
    exits 1 now and then although its process is gone (it reads /proc/PID/stat twice and
    PID 1 may reap the zombie in between); the daemon then runs it again with ``force``,
    which these tests do not assert on."""
    return [line for line in journal if not line.startswith("stop_prim force ")]


def log_lines(c: LabCluster, node: str, pattern: str, module: str = M) -> list[tuple[float, str]]:
    """Module log lines of ``node`` matching ``pattern`` (regex), with their time (epoch)."""
    out = []
    for line in c.module_log(node, module).splitlines():
        if re.search(pattern, line):
            at = parse_time(line)
            out.append((at.timestamp() if at is not None else 0.0, line))
    return out


def wait_log(c: LabCluster, node: str, pattern: str, timeout: float = WAIT, module: str = M,
             after: float = 0.0) -> tuple[float, str]:  # fmt: skip
    """The first module log line matching ``pattern`` written at or after ``after``."""
    deadline = time.monotonic() + timeout
    while True:
        found = [x for x in log_lines(c, node, pattern, module) if x[0] >= after - 0.01]
        if found:
            return found[0]
        if time.monotonic() > deadline:
            raise AssertionError(f"{node}: no {pattern!r} in the {module} log after "
                                 f"{timeout:g} s\n{c.diagnose(module)}")  # fmt: skip
        time.sleep(0.1)


def report(record: Callable[[str, object], None], name: str, value: float) -> None:
    """Keep a measured figure in the test report (junit property) and print it."""
    record(name, round(value, 3))
    print(f"{name} = {value:.3f}")


def checker_rows(c: LabCluster, node: str, module: str = M) -> dict[str, dict[str, str]]:
    """``hamod state -m MODULE -v``'s checker table on ``node``: name → columns."""
    out = c.must(node, "state", "-m", module, "-v")
    lines = out.split("\n\n", 1)[1].splitlines() if "\n\n" in out else []
    assert lines and lines[0].split()[:3] == ["NODE", "MODULE", "CHECKER"], out
    head = lines[0]
    cols = ["NODE", "MODULE", "CHECKER", "TYPE", "RESULT", "AT", "ACTION", "RUNS", "REASON"]
    starts = [head.index(h) for h in cols]
    rows = {}
    for line in lines[1:]:
        cells = [line[a:b].strip() for a, b in zip(starts, [*starts[1:], None], strict=True)]
        row = dict(zip(cols, cells, strict=True))
        rows[row["CHECKER"]] = row
    return rows


def get_resource(c: LabCluster, node: str, resource: str, module: str = M) -> tuple[int, str]:
    """``hamod get -r RESOURCE -m MODULE`` on ``node``: (exit status, output)."""
    res = c.hamod(node, "get", "-r", resource, "-m", module)
    return res.returncode, (res.stdout + res.stderr).strip()


def wait_resource(c: LabCluster, node: str, resource: str, value: str,
                  timeout: float = WAIT) -> None:  # fmt: skip
    deadline = time.monotonic() + timeout
    while True:
        code, out = get_resource(c, node, resource)
        if out == value:
            assert code == (0 if value == "up" else 1), (code, out)
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{node}: {resource} is {out!r}, not {value}\n{c.diagnose(M)}")
        time.sleep(0.2)


def kill_app(c: LabCluster, node: str, module: str = M) -> tuple[int, float]:
    """SIGKILL the application (the checked service) on ``node``: (its pid, epoch time)."""
    pid = c.service_pid(node, module)
    assert pid is not None, f"{node}: the application does not run\n{c.diagnose(module)}"
    at = time.time()
    c.lab.exec(node, ["kill", f"-{int(signal.SIGKILL)}", str(pid)])
    return pid, at


def wait_new_app(c: LabCluster, node: str, old: int, timeout: float = WAIT) -> tuple[int, float]:
    """Wait until another instance of the application runs on ``node``: (pid, epoch)."""
    deadline = time.monotonic() + timeout
    while True:
        pid = c.service_pid(node)
        if pid is not None and pid != old:
            return pid, time.time()
        if time.monotonic() > deadline:
            raise AssertionError(f"{node}: the application was not restarted\n{c.diagnose(M)}")
        time.sleep(0.02)


def rows_logged(c: LabCluster, node: str, row: str, module: str = M) -> list[str]:
    """Transition lines of ``node`` that applied the core's row ``row``."""
    return [line for _, line in log_lines(c, node, rf"\[[^\]]*\b{row}\b[^\]]*\]$", module)]


def start_dependency(c: LabCluster, node: str) -> None:
    """The per-node dependency of the HTTP scenario: a checked service on DEP_PORT."""
    health = checked_service.health_file("dep")
    cmd = (f"mkdir -p /run/hamod-lab && setsid -f {shlex.quote(PYTHON)} -m "
           f"hamod.testing.checked_service serve --port {DEP_PORT} --health-file {health} "
           "</dev/null >/run/hamod-lab/dep.out 2>&1")  # fmt: skip
    c.lab.exec(node, cmd)
    deadline = time.monotonic() + 10
    while not c.lab.exec(node, ["ss", "-Htln", f"sport = :{DEP_PORT}"]).stdout.strip():
        assert time.monotonic() < deadline, c.read(node, "/run/hamod-lab/dep.out")
        time.sleep(0.05)


# -- 1 -------------------------------------------------------------------------------------


def test_01_process_killed_is_restarted_locally(
    make_cluster: MakeCluster, record_property: Callable[..., None]
) -> None:
    """``kill -9`` of the application on the primary → the process checker (``script:
    start_prim``, action restart) sees it within interval + timeout, the app is restarted
    on n1 (stop_prim then start_prim, state PRIM kept), the VIP never moves, n2 stays SECOND and
    the client is answered only by n1; ``state -v`` lists every checker with its result."""
    app = checker("process", "app", script="start_prim", action="restart")
    c = setup(make_cluster, spec(app))
    c.establish(M, "n1")
    rows = checker_rows(c, "n1")
    assert set(rows) == {"app", "vip", "intf-eth0"}, rows
    assert rows["app"]["TYPE"] == "process" and rows["app"]["ACTION"] == "restart"
    assert rows["vip"]["ACTION"] == "stopstart" and rows["intf-eth0"]["ACTION"] == "wait"
    wait_resource(c, "n1", "process.app", "up")
    assert checker_rows(c, "n2")["app"]["RUNS"] == "no"  # not on the secondary
    watch = c.vip_watch()
    probe = c.probe()
    assert probe.wait_answer("n1", 10, count=20), probe.samples[-3:]
    journal = len(c.journal("n1"))

    old, killed = kill_app(c, "n1")
    seen, line = wait_log(c, "n1", r"checker process app: down \(action restart\)", after=killed)
    _, restarted = wait_new_app(c, "n1", old)
    assert probe.wait_answer("n1", 10, since=time.monotonic()), probe.samples[-3:]
    c.wait_state("n1", M, State.PRIM, WAIT)
    time.sleep(0.5)
    result = probe.stop()
    events = watch.stop()
    report(record_property, "detected_s", seen - killed)
    report(record_property, "restarted_s", restarted - killed)
    report(record_property, "outage_s", result.outage)
    assert seen - killed <= INTERVAL + TIMEOUT + SLACK, line
    assert restarted - killed <= INTERVAL + TIMEOUT + 2 * SLACK
    assert len(rows_logged(c, "n1", "checker_restart")) == 1, c.diagnose(M)
    after = unforced(c.journal("n1")[journal:])
    assert after == ["stop_prim PRIM PRIM stop", "start_prim PRIM PRIM start"], after
    # the VIP never moved, no failover, the client only ever saw n1
    assert [e.owners for e in events] == [("n1",)], watch.timeline()
    assert c.state("n2", M).state is State.SECOND
    assert lines_of(c.journal("n2"), "start_prim") == []
    assert result.nodes == ("n1",) and result.recovered, result.to_dict()
    wait_resource(c, "n1", "process.app", "up")


# -- 2 -------------------------------------------------------------------------------------


@pytest.mark.parametrize("failover", [True, False], ids=["failover-on", "failover-off"])
def test_02_maxloop_stops_the_module(make_cluster: MakeCluster, failover: bool) -> None:
    """``maxloop: 2``: the first two detections restart the application on n1; the
    third within ``loop_interval`` stops the module on n1 (``maxloop reached``).

    failover on: the application is killed 3 times (process checker); n2 takes over
    (ALONE, VIP, start_prim). failover off: its /health answers 500 for good (HTTP
    checker): a restart that does not cure it is followed by another, then the stop; n2
    waits (WAIT, no VIP, no start_prim)."""
    app = checker("process", "app", script="start_prim", action="restart")
    health = checker("http", "health", url="http://127.0.0.1:7070/health", fail_after=1,
                     action="restart")  # fmt: skip
    used = app if failover else health
    c = setup(make_cluster, spec(used, maxloop=2, loop_interval="1h", failover=failover))
    c.establish(M, "n1")
    wait_log(c, "n1", rf"checker {used['type']} {used['name']}: up")
    if failover:
        for round_ in (1, 2):
            old, killed = kill_app(c, "n1")
            wait_new_app(c, "n1", old)
            wait_log(c, "n1", r"checker process app: up", after=killed)
            assert len(rows_logged(c, "n1", "checker_restart")) == round_, c.diagnose(M)
        kill_app(c, "n1")
    else:
        checked_service.set_health(c, "n1", M, 500)
    wait_log(c, "n1", r"maxloop reached: module stopped \[[^\]]*checker_maxloop")
    c.wait_state("n1", M, State.STOP, WAIT)
    assert len(rows_logged(c, "n1", "checker_restart")) == 2, c.diagnose(M)
    starts = lines_of(c.journal("n1"), "start_prim")
    assert starts == ["start_prim WAIT ALONE start"] + 2 * ["start_prim PRIM PRIM start"], starts
    assert c.service_pid("n1") is None
    if failover:
        c.wait_state("n2", M, State.ALONE, WAIT)
        assert c.vip_owners() == ["n2"]
        assert len(lines_of(c.journal("n2"), "start_prim")) == 1, c.journal("n2")
    else:
        c.wait_state("n2", M, State.WAIT, WAIT)
        c.hold_state("n2", M, State.WAIT, 3.0)
        assert c.vip_owners() == []
        assert lines_of(c.journal("n2"), "start_prim") == [], c.journal("n2")


# -- 3 -------------------------------------------------------------------------------------


def test_03_http_500_waits_and_recovers(make_cluster: MakeCluster) -> None:
    """An HTTP checker on a per-node dependency (``/health`` of a service on port 7071,
    ``fail_after: 2``, action wait): 500s on n1 → n1 WAIT (the app stopped), n2 takes over
    with the VIP; the checker keeps probing in WAIT; 200 again → the wait clears and n1
    returns as SECOND."""
    dep = checker("http", "dep", url=f"http://127.0.0.1:{DEP_PORT}/health", fail_after=2,
                  action="wait")  # fmt: skip
    c = setup(make_cluster, spec(dep))
    for node in c.nodes:
        start_dependency(c, node)
    c.establish(M, "n1")
    wait_resource(c, "n1", "http.dep", "up")
    checked_service.set_health(c, "n1", "dep", 500)
    wait_log(c, "n1", r"checker http dep: down \(action wait\): .*status 500")
    c.wait_state("n1", M, State.WAIT, WAIT)
    c.wait_state("n2", M, State.ALONE, WAIT)
    assert c.vip_owners() == ["n2"] and c.service_pid("n1") is None
    assert "checker:dep" in c.state("n1", M).reason or rows_logged(c, "n1", "checker_wait")
    wait_resource(c, "n1", "http.dep", "down")
    row = checker_rows(c, "n1")["dep"]
    assert row["RESULT"].startswith("down") and row["RUNS"] == "yes", row  # probes in WAIT
    assert "status 500" in row["REASON"], row
    c.hold_state("n1", M, State.WAIT, 2.0)  # still 500: still waiting

    checked_service.set_health(c, "n1", "dep", None)
    wait_log(c, "n1", r"checker http dep: up")
    c.wait_states(M, {"n1": State.SECOND, "n2": State.PRIM}, WAIT)
    assert rows_logged(c, "n1", "checker_clear_wait"), c.diagnose(M)
    assert c.vip_owners() == ["n2"]
    assert lines_of(c.journal("n1"), "start_prim") == ["start_prim WAIT ALONE start"]


# -- 4 -------------------------------------------------------------------------------------


def test_04_interface_unplugged_fails_over(
    make_cluster: MakeCluster, record_property: Callable[..., None]
) -> None:
    """The VIP's interface loses its link on the primary (n1's net0 cable pulled; the
    peers still hear each other on net1; no witness, so nothing but the checker reacts):
    the automatic interface checker (action wait) → n1 WAIT, n2 ALONE with the VIP. Plugged
    back → the wait clears and n1 returns as SECOND."""
    c = setup(make_cluster, spec(), witness="none")
    c.establish(M, "n1")
    wait_resource(c, "n1", "interface.intf-eth0", "up")
    unplugged = time.time()
    c.lab.unplug("n1", "net0")
    seen, _ = wait_log(c, "n1", r"checker interface intf-eth0: down \(action wait\)")
    c.wait_state("n1", M, State.WAIT, WAIT)
    c.wait_state("n2", M, State.ALONE, WAIT)
    report(record_property, "detected_s", seen - unplugged)
    assert seen - unplugged <= AUTO_INTERVAL + AUTO_TIMEOUT + SLACK
    assert c.vip_owners() == ["n2"]
    assert rows_logged(c, "n1", "checker_wait"), c.diagnose(M)
    row = checker_rows(c, "n1")["intf-eth0"]
    assert row["RESULT"].startswith("down") and "carrier" in row["REASON"], row

    c.lab.plug("n1", "net0")
    wait_log(c, "n1", r"checker interface intf-eth0: up")
    c.wait_states(M, {"n1": State.SECOND, "n2": State.PRIM}, WAIT)
    assert c.vip_owners() == ["n2"]
    wait_resource(c, "n1", "interface.intf-eth0", "up")


# -- 5 -------------------------------------------------------------------------------------


def test_05_vip_removed_by_hand(make_cluster: MakeCluster) -> None:
    """``ip addr del`` of the VIP on the primary: the automatic vip checker sees it
    (action stopstart) → n1 stops and starts again, n2 takes over with the VIP and n1
    returns as SECOND."""
    c = setup(make_cluster, spec())
    c.establish(M, "n1")
    wait_resource(c, "n1", "vip.vip", "up")
    vip = c.vip()
    out = c.lab.exec("n1", ["ip", "-o", "addr", "show", "to", vip]).stdout.split()
    assert out, f"the VIP {vip} is not on n1"
    dev, cidr = out[1], out[3]
    removed = time.time()
    c.lab.exec("n1", ["ip", "addr", "del", cidr, "dev", dev])
    seen, line = wait_log(c, "n1", r"checker vip vip: down \(action stopstart\)")
    assert vip in line and seen - removed <= AUTO_INTERVAL + AUTO_TIMEOUT + SLACK, line
    assert rows_logged(c, "n1", "checker_stopstart"), c.diagnose(M)
    c.wait_states(M, {"n1": State.SECOND, "n2": State.PRIM}, WAIT)
    assert c.vip_owners() == ["n2"]
    assert len(lines_of(c.journal("n2"), "start_prim")) == 1, c.journal("n2")
    assert c.service_pid("n1") is None


# -- 6 -------------------------------------------------------------------------------------


def test_06_hanging_custom_checker_is_unknown(make_cluster: MakeCluster) -> None:
    """A custom checker whose program never ends (``sleep 1000``): killed at its timeout,
    ``unknown``, logged once in the module log however many probes hang, no action (n1
    stays PRIM, no script runs), no program left running."""
    hang = checker("custom", "hang", program="/bin/sleep", args=["1000"])
    c = setup(make_cluster, spec(hang))
    c.establish(M, "n1")
    first, line = wait_log(c, "n1", r"checker custom hang: unknown, no action")
    assert "still running after 0.5s, killed" in line, line
    journal = len(c.journal("n1"))
    c.hold_state("n1", M, State.PRIM, 4 * INTERVAL)
    assert len(log_lines(c, "n1", r"checker custom hang: unknown")) == 1, c.diagnose(M)
    assert c.journal("n1")[journal:] == []
    assert not [x for x in log_lines(c, "n1", r"\[[^\]]*checker_") if x[0] >= first]
    row = checker_rows(c, "n1")["hang"]
    assert row["RESULT"] == "unknown" and row["RUNS"] == "yes", row
    assert "killed" in row["REASON"], row
    assert get_resource(c, "n1", "custom.hang") == (1, "unknown")
    left = c.lab.exec("n1", ["pgrep", "-f", "^/bin/sleep 1000$"], check=False).stdout.split()
    assert len(left) <= 1, left  # at most the probe in flight now; never an accumulation
    assert c.state("n2", M).state is State.SECOND


# -- 7 -------------------------------------------------------------------------------------


def test_07_module_dependency(
    make_cluster: MakeCluster, record_property: Callable[..., None]
) -> None:
    """Module ``web`` has a module checker on ``base`` (this node, action wait). Started
    while base is down, web waits (WAIT, no VIP, its app stopped) as long as base is
    down; base started → web starts (ALONE, VIP); base stopped → web waits again."""
    base = ModuleSpec("base")
    web = spec(checker("module", "base", module="base"), name="web", port=7071)
    c = setup(make_cluster, base, web, checked=())
    c.command("n1", "web", "start")
    c.wait_state("n1", "web", State.WAIT, WAIT)
    c.command("n1", "web", "prim")
    wait_log(c, "n1", r"checker module base: down \(action wait\)", module="web")
    c.wait_state("n1", "web", State.WAIT, WAIT)
    c.hold_state("n1", "web", State.WAIT, 3 * INTERVAL)
    assert c.vip_owners("web") == [] and c.service_pid("n1", "web") is None
    row = checker_rows(c, "n1", "web")["base"]
    assert row["RESULT"].startswith("down") and row["RUNS"] == "yes", row
    starts = len(lines_of(c.journal("n1", "web"), "start_prim"))
    # web went ALONE (start_prim) before its first probe found base down: a checker has
    # no "init" result holding the module in WAIT (SafeKit's resources do); kept as a figure
    report(record_property, "web_started_before_waiting", starts)

    c.command("n1", "base", "start")
    c.wait_state("n1", "base", State.WAIT, WAIT)
    c.command("n1", "base", "prim")
    c.wait_state("n1", "base", State.ALONE, WAIT)
    wait_log(c, "n1", r"checker module base: up", module="web")
    c.wait_state("n1", "web", State.ALONE, WAIT)
    assert c.vip_owners("web") == ["n1"]
    assert len(lines_of(c.journal("n1", "web"), "start_prim")) == starts + 1

    c.command("n1", "base", "stop")
    c.wait_state("n1", "web", State.WAIT, WAIT)
    assert c.vip_owners("web") == [] and c.service_pid("n1", "web") is None


# -- 8 -------------------------------------------------------------------------------------


def test_08_checker_off_for_maintenance(make_cluster: MakeCluster) -> None:
    """``hamod checker off``: the application's /health answering 500 causes no action
    (n1 PRIM, no script, the checker shown ``off``); ``checker on`` → the HTTP checker's
    restart. The same with one checker (``checker off|on -c health``)."""
    health = checker("http", "health", url="http://127.0.0.1:7070/health", fail_after=1,
                     action="restart")  # fmt: skip
    c = setup(make_cluster, spec(health, maxloop=20))  # restarts until /health is fixed
    c.establish(M, "n1")
    wait_resource(c, "n1", "http.health", "up")
    for how in ((), ("-c", "health")):
        c.must("n1", "checker", "off", "-m", M, *how)
        rows = checker_rows(c, "n1")
        assert rows["health"]["RUNS"] == "off", rows
        assert (rows["vip"]["RUNS"] == "off") == (how == ()), rows
        journal = len(c.journal("n1"))
        pid = c.service_pid("n1")
        checked_service.set_health(c, "n1", M, 500)
        c.hold_state("n1", M, State.PRIM, 3 * INTERVAL + TIMEOUT)
        assert c.journal("n1")[journal:] == [] and c.service_pid("n1") == pid

        on = time.time()
        c.must("n1", "checker", "on", "-m", M, *how)
        wait_log(c, "n1", r"checker http health: down \(action restart\): .*status 500",
                 after=on)  # fmt: skip
        assert pid is not None
        wait_new_app(c, "n1", pid)
        c.wait_state("n1", M, State.PRIM, WAIT)
        after = unforced(c.journal("n1")[journal:])
        assert after[:2] == ["stop_prim PRIM PRIM stop", "start_prim PRIM PRIM start"], after
        checked_service.set_health(c, "n1", M, None)
        wait_resource(c, "n1", "http.health", "up")
    res = c.hamod("n1", "checker", "off", "-m", M, "-c", "nosuch")
    assert res.returncode == 1 and "nosuch" in res.stderr and "health" in res.stderr, res
    assert c.vip_owners() == ["n1"] and c.state("n2", M).state is State.SECOND


# -- 9 -------------------------------------------------------------------------------------


def test_09_custom_resource_set_by_hand(make_cluster: MakeCluster) -> None:
    """A custom checker without a program reads ``custom.gate``: ``hamod set -r
    custom.gate -v up|down`` sets it, ``hamod get -r`` reads it and every checker's
    resource; ``down`` on the primary → its action (stopstart: n2 takes over, n1 returns
    SECOND). Checkers' own resources cannot be set; an unknown resource is named."""
    gate = checker("custom", "gate")
    c = setup(make_cluster, spec(gate))
    for node in c.nodes:
        out = c.must(node, "set", "-r", "custom.gate", "-v", "up", "-m", M)
        assert "custom.gate = up" in out, out
    c.establish(M, "n1")
    wait_resource(c, "n1", "custom.gate", "up")
    assert get_resource(c, "n1", "vip.vip") == (0, "up")
    code, out = get_resource(c, "n1", "custom.nosuch")
    assert code == 2 and "custom.gate" in out and "vip.vip" in out, out
    res = c.hamod("n1", "set", "-r", "vip.vip", "-v", "down", "-m", M)
    assert res.returncode == 1 and "'vip.vip' is not settable" in res.stderr, res
    assert c.state("n1", M).state is State.PRIM

    c.must("n1", "set", "-r", "custom.gate", "-v", "down", "-m", M)
    wait_log(c, "n1", r"checker custom gate: down \(action stopstart\): resource custom.gate")
    assert rows_logged(c, "n1", "checker_stopstart"), c.diagnose(M)
    c.wait_states(M, {"n1": State.SECOND, "n2": State.PRIM}, WAIT)
    assert c.vip_owners() == ["n2"]
    assert get_resource(c, "n1", "custom.gate") == (1, "down")
    assert checker_rows(c, "n2")["gate"]["RESULT"] == "up"
