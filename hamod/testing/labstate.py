"""Where labs live on the machine: the state root, each lab's ``state.json``, slot
allocation, and removal — of one lab, of crashed runs' leftovers, of everything.

``state.json`` records what another process needs to attach: the topology (slot, nodes,
networks), each booted host's launcher and PID 1 with their start times, and the owner
process (None for a lab meant to outlive its creator, like ``scripts/lab up``).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from hamod.errors import LabError
from hamod.testing import labhost, labsys
from hamod.testing.labhost import Boot
from hamod.testing.labnet import PREFIX, SLOTS, SWITCH, netns_prefix

FORMAT = 1
_OVERLAID = ("/etc", "/var", "/opt", "/srv", "/root", "/home")


def lab_root() -> Path:
    """Where labs keep their state: ``$HAMOD_LAB_ROOT`` or ``/run/hamod-lab``. It must lie
    outside the directories the hosts overlay (an upper dir inside its lower dir loops)."""
    root = Path(os.environ.get("HAMOD_LAB_ROOT", "/run/hamod-lab")).resolve()
    for d in _OVERLAID:
        if root == Path(d) or Path(d) in root.parents:
            raise LabError(f"lab root {root} is inside {d}, which lab hosts overlay")
    return root


@contextmanager
def flock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if needed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


@dataclass(frozen=True)
class State:
    """The content of one lab's ``state.json``."""

    name: str
    slot: int
    nodes: int
    networks: int
    owner: tuple[int, int] | None  # (pid, start time) of the creating process
    complete: bool = False
    hosts: dict[str, Boot | None] = field(default_factory=dict)

    def owner_alive(self) -> bool:
        """Whether the creating process still runs (False for persistent labs)."""
        return self.owner is not None and labsys.is_alive(*self.owner)

    def running(self) -> list[str]:
        """Hosts whose recorded PID 1 still runs."""
        return [h for h, b in self.hosts.items() if b and labsys.is_alive(b.pid, b.start)]


def read(root: Path, name: str) -> State | None:
    """The state of lab ``name``, None when absent, unreadable or of another format."""
    try:
        data = json.loads((root / name / "state.json").read_text())
        if data.get("format") != FORMAT:
            return None
        owner = data.get("owner")
        return State(
            name=data["name"],
            slot=int(data["slot"]),
            nodes=int(data["nodes"]),
            networks=int(data["networks"]),
            owner=(int(owner[0]), int(owner[1])) if owner else None,
            complete=bool(data["complete"]),
            hosts={h: Boot(**b) if b else None for h, b in data["hosts"].items()},
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write(root: Path, state: State) -> None:
    """Write ``state.json`` atomically."""
    data = {
        "format": FORMAT,
        "name": state.name,
        "slot": state.slot,
        "nodes": state.nodes,
        "networks": state.networks,
        "owner": list(state.owner) if state.owner else None,
        "complete": state.complete,
        "hosts": {h: (vars(b) if b else None) for h, b in state.hosts.items()},
    }
    tmp = root / state.name / "state.json.tmp"
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(root / state.name / "state.json")


def lab_names(root: Path) -> set[str]:
    """Every lab with a state directory or a namespace on this machine."""
    names = {n.split(".")[1] for n in labsys.lab_netns(f"{PREFIX}.")}
    if root.exists():
        names |= {p.name for p in root.iterdir() if p.is_dir()}
    return names


def free_slot(root: Path) -> int:
    """The lowest slot (address block) no lab under ``root`` uses; call under the lock."""
    used = {s.slot for n in lab_names(root) if (s := read(root, n)) is not None}
    for slot in range(SLOTS):
        if slot not in used:
            return slot
    raise LabError(f"all {SLOTS} lab slots are in use under {root} (scripts/lab down --all)")


def remove(
    root: Path,
    name: str,
    boots: Sequence[Boot] = (),
    procs: Sequence[subprocess.Popen[bytes]] = (),
) -> None:
    """Remove everything of lab ``name``: hosts (``boots`` plus those its state records),
    every process in its namespaces, the namespaces, the state directory. Works from the
    name prefix too, so crashed runs' leftovers go."""
    state = read(root, name)
    boots = [*boots, *(b for b in (state.hosts.values() if state else ()) if b)]
    prefix = netns_prefix(name)
    labsys.kill_pids([b.pid for b in boots if labsys.is_alive(b.pid, b.start)])
    for boot in boots:
        labhost.power_off(boot, None)
    for proc in procs:
        labhost.power_off(None, proc)
    labsys.kill_pids(labsys.pids_in_netns(labsys.lab_netns(prefix)))
    labsys.delete_netns(labsys.lab_netns(prefix))
    shutil.rmtree(root / name, ignore_errors=True)
    left = labsys.lab_netns(prefix)
    if left or (root / name).exists():
        raise LabError(f"lab {name}: teardown left {', '.join(left) or root / name}")


def persistent_labs() -> list[str]:
    """Labs brought up to outlive their creator (``scripts/lab up``, the demo)."""
    root = lab_root()
    return sorted(
        n
        for n in lab_names(root)
        if (s := read(root, n)) is not None and s.complete and s.owner is None
    )


def sweep(min_age_s: float = 60.0) -> list[str]:
    """Remove the leftovers of crashed runs: labs whose owning process is gone, persistent
    labs whose switch namespace is gone, namespaces without state. Running labs, and labs
    being built (state younger than ``min_age_s``), are kept. Returns the names removed."""
    root = lab_root()
    removed = []
    for name in sorted(lab_names(root)):
        state = read(root, name)
        if state is not None and state.complete:
            switch = labsys.NETNS_DIR / f"{netns_prefix(name)}{SWITCH}"
            if state.owner_alive() or (state.owner is None and switch.exists()):
                continue
        elif (root / name).exists() and time.time() - (root / name).stat().st_mtime < min_age_s:
            continue
        remove(root, name)
        removed.append(name)
    return removed


def down_all() -> list[str]:
    """Remove every lab on this machine, running or crashed. Returns the names removed."""
    root = lab_root()
    names = sorted(lab_names(root))
    for name in names:
        remove(root, name)
    return names
