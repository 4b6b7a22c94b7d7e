"""``python -m hamod.testing.cluster_cli``: the demo's hamod cluster on a running lab,
deployed with the project's Ansible playbooks, for ``scripts/demo``.

- ``deploy --lab NAME``: write a site inventory for the lab (``<lab state>/site/demo/``,
  removed with the lab: hosts, group_vars, the vault), create its secrets
  (``playbooks/secrets.yml``) and run ``playbooks/init.yml``: hamod installed on n1, n2
  and the witness from this tree's wheelhouse, the arbitrator on the witness, the daemons,
  and the mirror module ``demo`` (kvstore template: an HTTP key-value store on port
  8080 behind a VIP, its data in the replicated ``/srv/demo``) started PRIM on n1, SECOND
  on n2. Idempotent: a lab where the module already runs is left as it is.
- ``status --lab NAME``: ``hamod state`` of every node, and where the VIP is.
- ``failover --lab NAME``: a client writes through the VIP; the primary is powered off
  (cables pulled, then PID 1 killed); show the survivor taking over, the outage the
  client saw and that every acknowledged write is served; then boot the node again and
  bring it back with ``playbooks/failback.yml``: it rejoins as SECOND, in sync.

The client (also used by molecule/shared/hamod_molecule.py): ``writer-run`` runs inside
the lab's client namespace and PUTs ``/kv/w<seq>`` one after another, one JSON line per
request; :class:`WriterReport` analyses the lines (acknowledged writes, the longest time
without an acknowledgement, the nodes that answered); :func:`read_back` reads every
acknowledged write back through the VIP.

The deployment needs a clone of the repository (the playbooks, and the test helpers that
write a site inventory for a lab: ``tests/ansible/helpers.py``).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import importlib
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import IO, Any

from hamod.errors import LabError
from hamod.testing.lab import Lab

ROOT = Path(__file__).resolve().parents[2]
MODULE = "demo"
PORT = 8080
HAMOD = "/opt/hamod/venv/bin/hamod"
SITE = "demo"


class DemoError(Exception):
    """A step of the demo failed; the message says what and where to look."""


def _say(msg: str) -> None:
    print(msg, flush=True)


# -- the client ----------------------------------------------------------------------------


WRITE_TIMEOUT = 0.5


def writer_loop(vip: str, port: int, out: Path, interval: float, timeout: float) -> int:
    """Inside the client namespace: ``PUT /kv/w<seq>`` one after another until SIGTERM;
    one JSON line per request (``seq``, ``key``, ``value``, ``t0``/``t1`` monotonic,
    ``ok``, and ``node`` or ``error``). Every namespace shares the monotonic clock.

    A request gets ``timeout`` seconds (default :data:`WRITE_TIMEOUT`), connection
    included: a connection attempt made while nobody holds the VIP is lost and TCP
    would retry its SYN only after 1 s, so a short timeout and a new connection measure
    when the service is back, not the kernel's retransmission timer. A write that timed
    out is not acknowledged (it may or may not have been applied)."""
    stop = False

    def on_term(_sig: int, _frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    seq = 0
    with out.open("a", buffering=1) as f:
        while not stop:
            key = f"w{seq:06d}"
            value = f"{key}-{time.time():.6f}"
            t0 = time.monotonic()
            rec: dict[str, Any] = {"seq": seq, "key": key, "value": value, "t0": t0}
            try:
                conn = http.client.HTTPConnection(vip, port, timeout=timeout)
                try:
                    conn.request("PUT", f"/kv/{key}", body=value.encode())
                    resp = conn.getresponse()
                    body = resp.read()
                finally:
                    conn.close()
                rec["ok"] = resp.status == 201
                if rec["ok"]:
                    rec["node"] = json.loads(body)["node"]
                else:
                    rec["error"] = f"HTTP {resp.status} {body[:200]!r}"
            except (OSError, http.client.HTTPException, ValueError, KeyError) as exc:
                rec["ok"] = False
                rec["error"] = f"{type(exc).__name__}: {exc}"
            rec["t1"] = time.monotonic()
            f.write(json.dumps(rec) + "\n")
            seq += 1
            pause = interval - (rec["t1"] - t0)
            if pause > 0 and not stop:
                time.sleep(pause)
    return 0


def writer_command(
    netns: str, vip: str, log: Path, interval: float = 0.02, timeout: float = WRITE_TIMEOUT
) -> list[str]:
    """The argv running :func:`writer_loop` inside the lab's client namespace."""
    return [
        "ip", "netns", "exec", netns, sys.executable, "-m", "hamod.testing.cluster_cli",
        "writer-run", "--vip", vip, "--port", str(PORT), "--out", str(log),
        "--interval", str(interval), "--timeout", str(timeout),
    ]  # fmt: skip


def read_records(log: Path) -> list[dict[str, Any]]:
    """The writer's lines so far (a line being written is skipped)."""
    if not log.exists():
        return []
    out = []
    for line in log.read_text().splitlines():
        with contextlib.suppress(ValueError):
            out.append(json.loads(line))
    return out


def acks_from(records: Sequence[dict[str, Any]], node: str, since: float = 0.0) -> int:
    """Writes acknowledged by ``node`` that ended after ``since`` (monotonic)."""
    return sum(1 for r in records if r["ok"] and r["node"] == node and r["t1"] > since)


@dataclass
class WriterReport:
    """What a writer saw. ``outage``: the longest time between two acknowledgements (the
    end of one to the end of the next), failures in between included; ``outage_from`` /
    ``outage_to``: where it lies, in seconds since the first request; ``nodes``: the
    nodes that acknowledged, in order; ``handovers``: ``a->b`` changes."""

    tag: str
    requests: int
    acked: int
    failed: int
    outage: float
    outage_from: float
    outage_to: float
    nodes: list[str]
    handovers: list[str]
    first_error: str
    seconds: float

    @classmethod
    def of(cls, tag: str, records: Sequence[dict[str, Any]]) -> WriterReport:
        acks = [r for r in records if r["ok"]]
        outage, start, end = 0.0, 0.0, 0.0
        for a, b in itertools.pairwise(acks):
            if b["t1"] - a["t1"] > outage:
                outage, start, end = b["t1"] - a["t1"], a["t1"], b["t1"]
        nodes: list[str] = []
        for r in acks:
            if not nodes or nodes[-1] != r["node"]:
                nodes.append(r["node"])
        errors = [str(r["error"]) for r in records if not r["ok"]]
        base = records[0]["t0"] if records else 0.0
        span = records[-1]["t1"] - base if records else 0.0
        return cls(
            tag=tag, requests=len(records), acked=len(acks), failed=len(errors),
            outage=round(outage, 3), outage_from=round(start - base, 3) if acks else 0.0,
            outage_to=round(end - base, 3) if acks else 0.0, nodes=nodes,
            handovers=[f"{a}->{b}" for a, b in itertools.pairwise(nodes)],
            first_error=errors[0] if errors else "", seconds=round(span, 2),
        )  # fmt: skip


READ_BACK = """\
import http.client, json, sys
vip, port = sys.argv[1], int(sys.argv[2])
want = json.load(sys.stdin)
bad = {}
conn = http.client.HTTPConnection(vip, port, timeout=10)
for key, value in want.items():
    conn.request("GET", "/kv/" + key)
    r = conn.getresponse()
    body = r.read().decode(errors="replace")
    if r.status != 200 or body != value:
        bad[key] = f"{r.status} {body[:80]}"
conn.request("GET", "/")
node = conn.getresponse().read().decode().strip()
print(json.dumps({"node": node, "bad": bad}))
"""


def read_back(netns: str, vip: str, records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Read every acknowledged write of ``records`` back through the VIP from the client
    namespace: ``{"acked", "served_by", "missing", "examples"}``."""
    acked = {r["key"]: r["value"] for r in records if r["ok"]}
    out = subprocess.run(
        ["ip", "netns", "exec", netns, sys.executable, "-c", READ_BACK, vip, str(PORT)],
        input=json.dumps(acked), capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    if out.returncode != 0:
        raise DemoError(f"reading the writes back through {vip}: {out.stderr.strip()}")
    res = json.loads(out.stdout)
    missing = sorted(res["bad"])
    return {
        "acked": len(acked), "served_by": res["node"], "missing": len(missing),
        "examples": {k: res["bad"][k] for k in missing[:5]},
    }  # fmt: skip


class Writer:
    """A writer started from this process (the demo's failover)."""

    def __init__(self, lab: Lab, vip: str, log: Path) -> None:
        self.log = log
        log.unlink(missing_ok=True)
        self._err: IO[str] = log.with_suffix(".err").open("w")
        self.proc = subprocess.Popen(
            writer_command(lab.topo.netns("client"), vip, log),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self._err,
            start_new_session=True, cwd=ROOT,
        )  # fmt: skip

    def records(self) -> list[dict[str, Any]]:
        return read_records(self.log)

    def stop(self) -> WriterReport:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
        self._err.close()
        return WriterReport.of("demo", self.records())


# -- the deployment ------------------------------------------------------------------------


def _helpers() -> ModuleType:
    """tests/ansible/helpers.py: the wheelhouse and a site inventory for a lab (a clone
    of the repository is needed for the playbooks anyway)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    try:
        return importlib.import_module("tests.ansible.helpers")
    except ImportError as exc:
        raise DemoError(f"the demo deploys from a clone of the repository: {exc}") from exc


@dataclass
class Demo:
    """The demo's cluster on ``lab``: its site inventory and how to run the playbooks."""

    lab: Lab

    @property
    def base(self) -> Path:
        return self.lab.state_dir / "site"

    @property
    def site_dir(self) -> Path:
        return self.base / SITE

    @property
    def vault_password_file(self) -> Path:
        return self.base / ".vault-password"

    @property
    def vip(self) -> str:
        return self.lab.free_address(0)

    @property
    def log_dir(self) -> Path:
        return self.lab.state_dir / "ansible"

    def playbook_env(self) -> dict[str, str]:
        venv_bin = str(Path(sys.executable).parent)
        return {
            **os.environ,
            "ANSIBLE_FORCE_COLOR": "0",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_VAULT_PASSWORD_FILE": str(self.vault_password_file),
            "ANSIBLE_SSH_CONTROL_PATH_DIR": str(self.base / ".cp"),
            "ANSIBLE_LOCAL_TEMP": str(self.base / ".tmp"),
            "PATH": f"{venv_bin}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        }

    def playbook_command(self, name: str, *args: str) -> list[str]:
        ansible = str(Path(sys.executable).parent / "ansible-playbook")
        return [ansible, "-i", str(self.site_dir), str(ROOT / "playbooks" / name), *args]

    def run_playbook(self, name: str, *args: str) -> float:
        """``ansible-playbook`` from the repository root (its ansible.cfg); the plays
        are shown as they start, the whole output goes to a log in the lab's state."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_dir / f"{Path(name).stem}.log"
        cmd = self.playbook_command(name, *args)
        _say(f"demo: ansible-playbook -i {self.site_dir} playbooks/{name} (log: {log})")
        t0 = time.monotonic()
        with log.open("w") as f:
            proc = subprocess.Popen(
                cmd, cwd=ROOT, env=self.playbook_env(), stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, text=True,
            )  # fmt: skip
            assert proc.stdout is not None
            tail: list[str] = []
            for line in proc.stdout:
                f.write(line)
                tail = [*tail[-39:], line.rstrip()]
                if line.startswith("PLAY [") or line.startswith(("fatal:", "failed:")):
                    _say("  " + line.strip().rstrip("*").strip())
            rc = proc.wait()
        took = time.monotonic() - t0
        if rc != 0:
            raise DemoError(f"playbooks/{name} failed (exit {rc}):\n" + "\n".join(tail))
        _say(f"demo: playbooks/{name} done in {took:.0f} s")
        return took

    def write_site(self) -> None:
        """The site inventory for this lab, once (its vault holds the cluster's key and
        CA: a second deploy on the same lab reuses them)."""
        if (self.site_dir / "group_vars" / SITE / "vault.yml").exists():
            return
        h = _helpers()
        t0 = time.monotonic()
        wheelhouse = h.build_wheelhouse()
        _say(f"demo: wheelhouse of this tree ready in {time.monotonic() - t0:.0f} s ({wheelhouse})")
        h.write_site(
            self.base, self.lab, [h.kv_module(MODULE, self.vip)], name=SITE,
            wheelhouse=wheelhouse, extra_vars={"hamod_node_firewall": "none"},
        )  # fmt: skip
        _say(f"demo: site inventory {self.site_dir} (module {MODULE}, VIP {self.vip})")
        self.run_playbook("secrets.yml")

    # -- reading the cluster -------------------------------------------------------------

    def state(self, node: str) -> dict[str, Any] | None:
        """``hamod state -m demo --json`` on ``node``; None when it does not answer."""
        if not self.lab.alive(node):
            return None
        res = self.lab.exec(node, [HAMOD, "state", "-m", MODULE, "--json"], check=False)
        if res.returncode != 0:
            return None
        doc = json.loads(res.stdout)[0]
        assert isinstance(doc, dict)
        return doc

    def states(self) -> dict[str, str]:
        out = {}
        for node in self.lab.node_names:
            st = self.state(node)
            out[node] = st["state"] if st else ("powered off" if not self.lab.alive(node) else "-")
        return out

    def running(self) -> bool:
        return sorted(self.states().values()) == ["PRIM", "SECOND"]


def deploy(demo: Demo) -> None:
    """Deploy with the playbooks and start the module, unless it already runs."""
    if demo.running():
        _say("demo: the module demo already runs (PRIM and SECOND)")
        return
    demo.write_site()
    demo.run_playbook("init.yml")


def status(demo: Demo) -> None:
    """Every node's state and the VIP's owner."""
    for node in demo.lab.node_names:
        if not demo.lab.alive(node):
            _say(f"{node}: powered off")
            continue
        res = demo.lab.exec(node, [HAMOD, "state", "-m", MODULE], check=False)
        _say((res.stdout or res.stderr).rstrip() or f"{node}: hamod does not answer")
    _say(f"VIP {demo.vip} on {demo.lab.vip_owner(demo.vip) or 'nobody'}")


def wait_for(what: str, cond: Callable[[], Any], timeout: float, every: float = 0.1) -> Any:
    """``cond()``'s first true value, polled every ``every`` s; DemoError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(every)
    raise DemoError(f"{what}: not within {timeout:.0f} s")


def failover(demo: Demo) -> int:
    """Power the primary off under a writing client, show the takeover and the writes,
    bring the node back with playbooks/failback.yml."""
    lab = demo.lab
    states = demo.states()
    prims = [n for n, s in states.items() if s == "PRIM"]
    if len(prims) != 1 or sorted(states.values()) != ["PRIM", "SECOND"]:
        _say(f"demo: need one PRIM and one SECOND to fail over ({states}); "
             "try again in a moment, or scripts/demo to redeploy")  # fmt: skip
        return 1
    (victim,) = prims
    (survivor,) = [n for n in lab.node_names if n != victim]
    writer = Writer(lab, demo.vip, lab.state_dir / "failover-writes.jsonl")
    try:
        wait_for(f"writes acknowledged by {victim}",
                 lambda: acks_from(writer.records(), victim) >= 25, 20)  # fmt: skip
        _say(f"demo: a client writes to the kvstore through {demo.vip}:{PORT}, one PUT after "
             f"another; {victim} acknowledges them")  # fmt: skip
        _say(f"demo: powering {victim} off (cables pulled, then PID 1 killed)")
        fault = time.monotonic()
        lab.kill(victim)
        wait_for(f"{survivor} ALONE",
              lambda: (demo.state(survivor) or {}).get("state") == "ALONE", 60)  # fmt: skip
        took = time.monotonic() - fault
        wait_for(f"writes acknowledged by {survivor}",
              lambda: acks_from(writer.records(), survivor, fault) >= 25, 30)  # fmt: skip
    finally:
        report = writer.stop()
    _say(f"demo: {survivor} is ALONE after {took:.2f} s and holds the VIP "
         f"({lab.vip_owner(demo.vip)})")  # fmt: skip
    _say(f"demo: the client saw {report.acked} writes acknowledged, {report.failed} failed, "
         f"and at most {report.outage:.2f} s without an acknowledgement")  # fmt: skip
    back = read_back(lab.topo.netns("client"), demo.vip, writer.records())
    _say(f"demo: {back['served_by']} serves {back['acked'] - back['missing']} of the "
         f"{back['acked']} acknowledged writes")  # fmt: skip
    _say(f"demo: booting {victim} again; playbooks/failback.yml brings it back as SECOND")
    lab.start(victim)
    demo.run_playbook("failback.yml")
    status(demo)
    return 0 if back["missing"] == 0 else 1


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m hamod.testing.cluster_cli")
    sub = p.add_subparsers(dest="command", required=True)
    for name in ("deploy", "status", "failover"):
        sub.add_parser(name).add_argument("--lab", default="demo", help="the running lab")
    w = sub.add_parser("writer-run", help="the client: PUT /kv/w<seq> until SIGTERM")
    w.add_argument("--vip", required=True)
    w.add_argument("--port", type=int, default=PORT)
    w.add_argument("--out", required=True, type=Path)
    w.add_argument("--interval", type=float, default=0.02)
    w.add_argument("--timeout", type=float, default=WRITE_TIMEOUT)
    args = p.parse_args(argv)
    if args.command == "writer-run":
        return writer_loop(args.vip, args.port, args.out, args.interval, args.timeout)
    try:
        demo = Demo(Lab.attach(args.lab))
        if args.command == "deploy":
            deploy(demo)
            status(demo)
        elif args.command == "status":
            status(demo)
        else:
            return failover(demo)
    except (LabError, DemoError) as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
