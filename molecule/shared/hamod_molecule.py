#!/usr/bin/env python3
"""The Molecule scenarios' side of the namespace lab (molecule/README.md,
docs/ansible.md "Molecule").

Run by the scenarios' playbooks on the controller (plays on localhost) with the project's
virtualenv Python; every command works in a scenario directory ``--dir`` (the scenario's
Molecule ephemeral directory) holding ``state.json`` and the site inventory
``site/molecule/`` that every later step uses (``--inventory`` in molecule.yml).

    create   --dir D --scenario S [--lab NAME] [--old-ref COMMIT] [--adopt DIR]
             lab up (2 nodes, witness, client; persists until destroy), wheelhouse (the
             current tree's, or the one of an older commit's sources), site inventory for
             the lab with the kvstore module ``kv`` behind a VIP, secrets.yml (the vault).
             --adopt (``$HAMOD_MOLECULE_ADOPT``): take over the lab and site another
             scenario created and deployed (tests/molecule runs failover on the lab the
             default scenario left, to save a deployment); this scenario's destroy then
             takes it down
    destroy  --dir D [--lab NAME]    lab down (idempotent)
    writer start|stop --dir D [--tag T]
             the demo's client (``hamod.testing.cluster_cli writer-run``) in the lab's
             client namespace, writing keys through the VIP to the kvstore, one PUT after
             another; it outlives this process; ``stop`` analyses what it saw
             (acknowledged writes, failures, the longest time without an acknowledgement)
             into D/T.json
    failover --dir D                 power the primary off while the writer runs; wait
                                     until the survivor serves and acknowledges writes
    check-writes --dir D --tag T     every acknowledged write of run T reads back
                                     through the VIP with its value (JSON report)
    release  --dir D                 point the site at the current tree's wheelhouse
                                     (what an operator changes before playbooks/upgrade.yml)
    swap-outage --dir D              one `hamod swap` of kv under the writer: the outage
                                     a client sees in one swap (the upgrade's yardstick)

Every command prints one JSON object (the playbooks read it) and exits non-zero with a
message on failure.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SITE = "molecule"
MODULE = "kv"
HAMOD = "/opt/hamod/venv/bin/hamod"
OLD_WHEELHOUSE_CACHE = ROOT / "build" / "molecule" / "wheelhouse-old"
OLD_SOURCES = ROOT / "build" / "molecule" / "sources"


class Failure(Exception):
    """A step that cannot go on; its message is for the user."""


def _say(msg: str) -> None:
    print(f"hamod_molecule: {msg}", file=sys.stderr, flush=True)


# -- state ---------------------------------------------------------------------------------


@dataclass
class State:
    """What create leaves for the later steps (D/state.json)."""

    scenario: str
    lab: str
    dir: str
    site_dir: str = ""
    vip: str = ""
    client_netns: str = ""
    old_ref: str = ""
    wheelhouse: str = ""
    timings: dict[str, float] = field(default_factory=dict)

    @classmethod
    def load(cls, d: Path) -> State:
        path = d / "state.json"
        if not path.exists():
            raise Failure(f"{path} is missing: run the scenario's create step first")
        return cls(**json.loads(path.read_text()))

    def save(self) -> None:
        path = Path(self.dir) / "state.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2) + "\n")
        tmp.replace(path)


def default_lab_name(scenario: str) -> str:
    """``$HAMOD_MOLECULE_LAB`` (the pytest wrapper sets a unique one), else mol-<scenario>."""
    return os.environ.get("HAMOD_MOLECULE_LAB") or f"mol-{scenario}"[:24]


# -- create / destroy ----------------------------------------------------------------------


def old_sources(ref: str) -> Path:
    """The sources of commit ``ref`` (git archive, no checkout), cached by full hash."""
    full = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--verify", f"{ref}^{{commit}}"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if full.returncode != 0:
        raise Failure(f"old release {ref}: not a commit of this repository ({full.stderr.strip()})")
    sha = full.stdout.strip()
    dest = OLD_SOURCES / sha
    if (dest / "pyproject.toml").is_file():
        return dest
    tmp = OLD_SOURCES / f".{sha}.{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", sha, "pyproject.toml", "README.md",
         "requirements", "hamod"],
        capture_output=True, check=False,
    )  # fmt: skip
    if archive.returncode != 0:
        raise Failure(f"git archive {sha}: {archive.stderr.decode(errors='replace')}")
    untar = subprocess.run(["tar", "-x", "-C", str(tmp)], input=archive.stdout,
                           capture_output=True, check=False)  # fmt: skip
    if untar.returncode != 0:
        raise Failure(f"unpacking {sha}: {untar.stderr.decode(errors='replace')}")
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    return dest


def wheelhouse_of(source: Path, cache: Path) -> Path:
    """The wheelhouse of ``source`` built by the role's own script (cached)."""
    from tests.ansible.helpers import build_wheelhouse

    try:
        return build_wheelhouse(source, cache)
    except AssertionError as exc:
        raise Failure(str(exc)) from None


def create(args: argparse.Namespace) -> dict[str, Any]:
    from hamod.testing.lab import Lab, persistent_labs
    from tests.ansible.helpers import build_wheelhouse, kv_module, playbook, write_site

    t0 = time.monotonic()
    d = Path(args.dir).resolve()
    d.mkdir(parents=True, exist_ok=True)
    if args.adopt:
        return adopt(Path(args.adopt).resolve(), d, args.scenario)
    name = args.lab or default_lab_name(args.scenario)
    state = State(scenario=args.scenario, lab=name, dir=str(d), old_ref=args.old_ref or "")
    state.save()  # destroy finds the lab even if what follows fails
    if name in persistent_labs():
        _say(f"lab {name} is up from an earlier run: removing it")
        Lab(name).down()
    lab = Lab(name, nodes=2, persist=True).up()
    state.timings["lab_up"] = round(time.monotonic() - t0, 2)
    t = time.monotonic()
    if args.old_ref:
        wheelhouse = wheelhouse_of(old_sources(args.old_ref), OLD_WHEELHOUSE_CACHE)
    else:
        wheelhouse = build_wheelhouse()
    state.timings["wheelhouse"] = round(time.monotonic() - t, 2)
    base = d / "site"
    shutil.rmtree(base, ignore_errors=True)
    vip = lab.free_address(0)
    site = write_site(
        base, lab, [kv_module(MODULE, vip)], name=SITE, wheelhouse=wheelhouse,
        extra_vars={"hamod_node_firewall": "none"},
    )  # fmt: skip
    t = time.monotonic()
    run = playbook(site, "secrets.yml")
    if run.rc != 0:
        raise Failure(f"secrets.yml failed:\n{run.tail()}")
    state.timings["secrets"] = round(time.monotonic() - t, 2)
    state.site_dir = str(site.dir)
    state.vip = vip
    state.client_netns = lab.topo.netns("client")
    state.wheelhouse = str(wheelhouse)
    state.timings["create"] = round(time.monotonic() - t0, 2)
    state.save()
    return asdict(state)


def adopt(src: Path, d: Path, scenario: str) -> dict[str, Any]:
    """This scenario takes over the lab and site inventory of ``src`` (another
    scenario's directory): the site moves here, the lab keeps running."""
    from hamod.testing.lab import Lab

    other = State.load(src)
    Lab.attach(other.lab)  # it must run
    base = d / "site"
    shutil.rmtree(base, ignore_errors=True)
    shutil.copytree(Path(other.site_dir).parent, base, symlinks=True,
                    ignore=shutil.ignore_patterns(".cp", ".tmp"))  # fmt: skip
    state = State(**{**asdict(other), "scenario": scenario, "dir": str(d)})
    state.site_dir = str(base / Path(other.site_dir).name)
    state.timings = {"adopted_from": 0.0}
    state.save()
    _say(f"adopted lab {state.lab} and its site from {src}")
    return {**asdict(state), "adopted_from": str(src)}


def destroy(args: argparse.Namespace) -> dict[str, Any]:
    from hamod.testing.lab import Lab

    d = Path(args.dir).resolve()
    name = args.lab
    if name is None:
        try:
            name = State.load(d).lab
        except Failure:
            name = default_lab_name(args.scenario)
    Lab(name).down()
    return {"lab": name, "removed": True}


def release(args: argparse.Namespace) -> dict[str, Any]:
    """The site's next release: the current tree's wheelhouse."""
    import yaml

    from tests.ansible.helpers import build_wheelhouse

    state = State.load(Path(args.dir))
    wheelhouse = build_wheelhouse()
    main = Path(state.site_dir) / "group_vars" / SITE / "main.yml"
    data = yaml.safe_load(main.read_text())
    old = data.get("hamod_node_wheelhouse", "")
    data["hamod_node_wheelhouse"] = str(wheelhouse)
    main.write_text(yaml.safe_dump(data, sort_keys=False))
    state.wheelhouse = str(wheelhouse)
    state.save()
    archive = wheelhouse / "wheelhouse.tar"
    return {"from": old, "to": str(wheelhouse), "archive": str(archive)}


# -- the client ----------------------------------------------------------------------------


def _writer_paths(d: Path, tag: str) -> tuple[Path, Path, Path]:
    return d / f"{tag}.jsonl", d / f"{tag}.pid", d / f"{tag}.json"


def writer_start(state: State, tag: str, interval: float = 0.02) -> dict[str, Any]:
    """Start the demo's client (hamod.testing.cluster_cli writer-run) in the lab's client
    namespace; it outlives this process (its pid in D/<tag>.pid). Returns once a first
    write is acknowledged."""
    from hamod.testing.cluster_cli import read_records, writer_command

    d = Path(state.dir)
    log, pidfile, _ = _writer_paths(d, tag)
    if pidfile.exists():
        raise Failure(f"writer {tag} already runs (pid file {pidfile})")
    log.unlink(missing_ok=True)
    with (d / f"{tag}.err").open("w") as err:
        proc = subprocess.Popen(
            writer_command(state.client_netns, state.vip, log, interval),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
            start_new_session=True, cwd=ROOT,
        )  # fmt: skip
    pidfile.write_text(f"{proc.pid}\n")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if any(r["ok"] for r in read_records(log)):
            return {"tag": tag, "pid": proc.pid, "log": str(log)}
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    writer_stop(state, tag)
    raise Failure(f"writer {tag}: no write acknowledged through {state.vip} in 20 s")


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not; reap it when it is our child)."""
    with contextlib.suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def writer_stop(state: State, tag: str) -> dict[str, Any]:
    """Stop the writer (SIGTERM: it finishes the request in flight) and write its report
    to D/<tag>.json."""
    from hamod.testing.cluster_cli import WriterReport, read_records

    log, pidfile, report_path = _writer_paths(Path(state.dir), tag)
    if pidfile.exists():
        pid = int(pidfile.read_text())
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        pidfile.unlink()
    report = WriterReport.of(tag, read_records(log))
    report_path.write_text(json.dumps(asdict(report), indent=2) + "\n")
    return asdict(report)


def check_writes(state: State, tag: str) -> dict[str, Any]:
    """Read every acknowledged write of ``tag`` back through the VIP (from the client)."""
    from hamod.testing.cluster_cli import read_back, read_records

    records = read_records(_writer_paths(Path(state.dir), tag)[0])
    if not any(r["ok"] for r in records):
        raise Failure(f"writer {tag} has no acknowledged write")
    return {"tag": tag, **read_back(state.client_netns, state.vip, records)}


# -- faults and measures -------------------------------------------------------------------


def _states(lab: Any) -> dict[str, dict[str, Any]]:
    out = {}
    for node in lab.node_names:
        if not lab.alive(node):
            continue
        res = lab.exec(node, [HAMOD, "state", "-m", MODULE, "--json"], check=False)
        if res.returncode == 0:
            out[node] = json.loads(res.stdout)[0]
    return out


def _summary(states: dict[str, dict[str, Any]]) -> dict[str, str]:
    return {n: s["state"] for n, s in states.items()}


def _wait(what: str, cond: Any, timeout: float) -> Any:
    from hamod.testing.cluster_cli import DemoError, wait_for

    try:
        return wait_for(what, cond, timeout, every=0.2)
    except DemoError as exc:
        raise Failure(str(exc)) from None


def _acks_from(log: Path, node: str, since: float) -> int:
    from hamod.testing.cluster_cli import acks_from, read_records

    return acks_from(read_records(log), node, since)


def failover(state: State) -> dict[str, Any]:
    from hamod.testing.lab import Lab

    lab = Lab.attach(state.lab)
    states = _states(lab)
    prims = [n for n, s in states.items() if s["state"] == "PRIM"]
    if len(prims) != 1:
        raise Failure(f"no single PRIM to power off: {_summary(states)}")
    victim = prims[0]
    survivor = next(n for n in lab.node_names if n != victim)
    writer_start(state, "failover")
    log = _writer_paths(Path(state.dir), "failover")[0]
    try:
        _wait("writes acknowledged before the fault", lambda: _acks_from(log, victim, 0) >= 25, 20)
        fault = time.monotonic()
        lab.kill(victim)  # cables pulled, then PID 1 killed: a power-off
        _wait(f"{survivor} ALONE",
              lambda: _states(lab).get(survivor, {}).get("state") == "ALONE", 90)  # fmt: skip
        took = time.monotonic() - fault
        _wait(f"writes acknowledged by {survivor}",
              lambda: _acks_from(log, survivor, fault) >= 50, 60)  # fmt: skip
    except Failure as exc:
        raise Failure(f"{exc}\n{_diagnose(lab, log)}") from None
    finally:
        report = writer_stop(state, "failover")
    result = {
        "victim": victim, "survivor": survivor, "alone_after": round(took, 2), "writer": report,
    }  # fmt: skip
    (Path(state.dir) / "failover-result.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def swap_outage(state: State) -> dict[str, Any]:
    """One ``hamod swap`` under the writer: the outage a client sees in one swap."""
    from hamod.testing.lab import Lab

    return _one_swap(state, Lab.attach(state.lab), "swap")


def _one_swap(state: State, lab: Any, tag: str) -> dict[str, Any]:
    states = _states(lab)
    prims = [n for n, s in states.items() if s["state"] == "PRIM"]
    if len(prims) != 1 or len(states) != 2:
        raise Failure(f"need PRIM and SECOND to swap: {_summary(states)}")
    prim = prims[0]
    other = next(n for n in states if n != prim)
    # A secondary that handed over is Transient until the new primary mirrors it (its
    # term then adopted): swap only once it is Ready, up to date, on the primary's term
    # (docs/ansible.md, "Molecule", swaps in a row).
    try:
        _wait(f"{other} SECOND in sync on {prim}'s term", lambda: _in_sync(lab, other, prim), 60)
    except Failure as exc:
        terms = {n: s.get("term") for n, s in _states(lab).items()}
        raise Failure(f"{exc} (terms {terms}): a swap would be undone") from None
    writer_start(state, tag)
    log = _writer_paths(Path(state.dir), tag)[0]
    try:
        _wait("writes before the swap", lambda: _acks_from(log, prim, 0) >= 25, 20)
        t = time.monotonic()
        lab.exec(prim, [HAMOD, "swap", "-m", MODULE], timeout=120)
        _wait(f"writes acknowledged by {other}", lambda: _acks_from(log, other, t) >= 25, 60)
        _wait(f"{prim} SECOND in sync on {other}'s term", lambda: _in_sync(lab, prim, other), 60)
    except Failure as exc:
        raise Failure(f"{exc}\n{_diagnose(lab, log)}") from None
    finally:
        report = writer_stop(state, tag)
    return {"from": prim, "to": other, "writer": report}


def _in_sync(lab: Any, node: str, primary: str) -> bool:
    """``node`` is SECOND, Ready, up to date, no resync, and on ``primary``'s term."""
    states = _states(lab)
    st, pr = states.get(node, {}), states.get(primary, {})
    return bool(
        st.get("state") == "SECOND"
        and st.get("phase") == "READY"
        and st.get("up_to_date")
        and st.get("resync") is None
        and pr.get("state") == "PRIM"
        and st.get("term") == pr.get("term")
    )


def _diagnose(lab: Any, log: Path) -> str:
    """The nodes' module states and logs and the client's last requests, for a failure
    message (the ephemeral directory is pruned at destroy)."""
    from hamod.testing.cluster_cli import read_records

    out = []
    for node in lab.node_names:
        if not lab.alive(node):
            out.append(f"{node}: powered off")
            continue
        for cmd in (["state", "-m", MODULE], ["log", "-m", MODULE, "-n", "25"]):
            res = lab.exec(node, [HAMOD, *cmd], check=False, timeout=30)
            out.append(f"--- {node}: hamod {' '.join(cmd)}\n{res.stdout}{res.stderr}")
    last = read_records(log)[-5:]
    out.append("--- the client's last requests\n" + "\n".join(json.dumps(r) for r in last))
    return "\n".join(out)


# -- command line ------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="hamod_molecule.py", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    for name in ("create", "destroy", "failover", "check-writes", "release", "swap-outage"):
        c = sub.add_parser(name)
        c.add_argument("--dir", required=True)
        c.add_argument("--scenario", default="default")
        c.add_argument("--lab", default=None)
        c.add_argument("--old-ref", default="")
        c.add_argument("--adopt", default=os.environ.get("HAMOD_MOLECULE_ADOPT", ""))
        c.add_argument("--tag", default="writes")
    w = sub.add_parser("writer")
    w.add_argument("action", choices=("start", "stop"))
    w.add_argument("--dir", required=True)
    w.add_argument("--tag", default="writes")
    w.add_argument("--interval", type=float, default=0.02)
    args = p.parse_args(argv)
    try:
        if args.command == "create":
            result = create(args)
        elif args.command == "destroy":
            result = destroy(args)
        elif args.command == "release":
            result = release(args)
        else:
            state = State.load(Path(args.dir).resolve())
            if args.command == "writer":
                result = (
                    writer_start(state, args.tag, args.interval)
                    if args.action == "start"
                    else writer_stop(state, args.tag)
                )
            elif args.command == "failover":
                result = failover(state)
            elif args.command == "check-writes":
                result = check_writes(state, args.tag)
            else:
                result = swap_outage(state)
    except Exception as exc:  # every failure becomes one message for the playbook
        print(f"hamod_molecule {args.command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
