"""The resync and memory phases of the replication benchmark, on a running hamod cluster
(n1 PRIM, n2 SECOND, in sync).

Resync: a random data set is written through the mount on n1 (``dataset_mib``, files of
at most 256 MiB) and mirrored live; then three outages, each followed by the time and
the bytes it takes to get the peer up to date again, with ``changed_mib`` of changes
made meanwhile as distinct 1 MiB-aligned regions (the tracking granularity), so "the
changed regions" are exactly ``changed_mib``:

1. ``secondary powered off``: n2 powered off, changes on n1 (ALONE), n2 booted (the
   module comes back by itself);
2. ``primary crash``: n1 powered off while a writer is changing regions, n2 takes over
   (ALONE), changes on n2, n1 booted: it resyncs from n2, including whatever n1 wrote
   that n2 never acknowledged;
3. ``secondary stopped``: ``hamod stop`` of the module on the secondary (n1 by then: a
   clean stop), changes on n2 (ALONE), ``hamod start`` on n1.

Bytes: the primary's data-path log line ``resync of <peer> done: N rounds, M bytes``
(what the resync sent) and /proc/PID/io of both data-path processes (deltas on the
primary, whose process lives on; totals on the restarted peer's new process): ``rchar``
counts every byte read through read() (files and sockets, page cache or not),
``read_bytes`` what came from the block device.

Memory: ``memory_files`` empty files (directories of 1000) are created in /srv/data on
both nodes before the module's first start (through the mount they would take hours at
the metadata rates measured); the first start makes n2 a copy of n1 (a full copy); then
every file is looked up through the mount on n1 (the kernel then holds a node for each,
and so does the data path), and the RSS of both data-path processes is read before and
after.

Every step has a deadline. A resync that does not complete is recorded with what was
seen (the peer's resync state, the primary's log) and ends the phase.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable
from typing import Any

from benchmarks.replication.targets import DATA, MODULE, UNDER, HamodCluster
from benchmarks.replication.workloads import (
    CHANGE,
    DATASET,
    FILES,
    WALK,
    Sizes,
    proc_figures,
)
from hamod.api.models import State
from hamod.errors import LabError
from hamod.testing.cluster import PYTHON, ClusterError

__all__ = ["ResyncFailed", "memory", "precreate", "resync", "verify"]

_DONE = re.compile(r"resync of (\S+) done: (\d+) rounds, (\d+) bytes")


def _layout(dataset_mib: int) -> tuple[int, int]:
    """(files, MiB per file) of the data set."""
    per = min(256, dataset_mib)
    return max(1, dataset_mib // per), per


def _delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    keys = ("rchar", "wchar", "read_bytes", "write_bytes", "cpu_ticks")
    return {k: after.get(k, 0) - before.get(k, 0) for k in keys if k in after}


def _io(fig: dict[str, int]) -> dict[str, int]:
    keys = ("rchar", "wchar", "read_bytes", "write_bytes", "cpu_ticks")
    return {k: fig[k] for k in keys if k in fig}


def _done_line(h: HamodCluster, node: str, skip: int, timeout: float) -> dict[str, Any]:
    """The first ``resync ... done`` line of ``node``'s data-path log after character
    ``skip`` (waits up to ``timeout``); {} if none."""
    deadline = time.monotonic() + timeout
    while True:
        m = _DONE.search(h.dp_log(node)[skip:])
        if m:
            return {"peer": m.group(1), "rounds": int(m.group(2)), "sent_bytes": int(m.group(3))}
        if time.monotonic() > deadline:
            return {}
        time.sleep(0.2)


def _change(h: HamodCluster, node: str, sizes: Sizes, seed: int, timeout: float) -> float:
    files, per = _layout(sizes.dataset_mib)
    args = [DATA, str(files), str(per), str(sizes.changed_mib), str(seed), "0"]
    out = h.lab.exec(node, [PYTHON, "-c", CHANGE, *args], timeout=timeout).stdout
    return float(out.split()[-1])


class ResyncFailed(Exception):
    """A resync did not complete (the message says what was seen; ``log``: the last
    lines of the primary's data-path log)."""

    def __init__(self, message: str, log: list[str]) -> None:
        super().__init__(message)
        self.log = log


def _wait_resync(h: HamodCluster, primary: str, peer: str, timeout: float, since: int) -> float:
    """Wait until ``peer`` is in sync; give up early when its module log shows the resync
    failing twice after character ``since`` (it retries forever) or after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(ClusterError):
            return h.wait_in_sync(primary, peer, 2.0)
        failed = h.cluster.module_log(peer, MODULE)[since:].count("[resync_failed]")
        if failed >= 2 or time.monotonic() > deadline:
            st = h.cluster.try_state(peer, MODULE)
            seen = "no answer" if st is None else f"{st.state} resync={st.resync}"
            why = f"the resync failed {failed} times" if failed >= 2 else f"{timeout:g} s passed"
            tail = h.dp_log(primary).splitlines()[-4:]
            raise ResyncFailed(f"{peer} not in sync ({why}): {seen}", tail)


def resync(
    h: HamodCluster, sizes: Sizes, log: Callable[[str], None], seed: int = 1
) -> dict[str, Any]:
    """Build the data set, then the three outages (see the module docstring). A case
    that fails is recorded with what was seen and ends the phase (the cluster is then
    not in a state to measure the next one)."""
    c, lab = h.cluster, h.lab
    files, per = _layout(sizes.dataset_mib)
    slow = 120.0 + sizes.dataset_mib / 10  # 10 MiB/s would be very slow here
    wait = 90.0 + sizes.dataset_mib / 20
    out: dict[str, Any] = {"dataset_mib": files * per, "changed_mib": sizes.changed_mib}
    log(f"resync: writing the {files * per} MiB data set through the mount on n1")
    took = lab.exec("n1", [PYTHON, "-c", DATASET, DATA, str(files), str(per)], timeout=slow)
    out["dataset_write_s"] = round(float(took.stdout.split()[-1]), 2)
    h.wait_in_sync("n1", "n2", wait)
    cases: list[dict[str, Any]] = []
    out["cases"] = cases

    def restart(
        case: str, primary: str, peer: str, bring_back: Callable[[], object], **note: Any
    ) -> None:
        pid = h.dp_pid(primary)
        if pid is None:
            raise ClusterError(f"{primary}: no data-path process\n{h.diagnose()}")
        before = proc_figures(lab, primary, pid)
        skip, since = len(h.dp_log(primary)), len(c.module_log(peer, MODULE))
        t0 = time.monotonic()
        bring_back()
        t_up = time.monotonic()
        try:
            t1 = _wait_resync(h, primary, peer, wait, since)
        except ResyncFailed as exc:
            cases.append({"case": case, "primary": primary, "error": str(exc), "log": exc.log})
            log(f"resync ({case}): FAILED: {exc}")
            raise
        done = _done_line(h, primary, skip, 10.0)
        after = proc_figures(lab, primary, pid) if h.dp_pid(primary) == pid else {}
        peer_pid = h.dp_pid(peer)
        peer_fig = proc_figures(lab, peer, peer_pid) if peer_pid else {}
        sent = done.get("sent_bytes")
        changed = sizes.changed_mib << 20
        row = {
            "case": case,
            "primary": primary,
            "seconds": round(t1 - t0, 2),
            "resync_s": round(t1 - t_up, 2),
            **done,
            "sent_over_changed": round(sent / changed, 3) if sent is not None else None,
            "primary_io": _delta(after, before) if after else None,
            "peer_io": _io(peer_fig) if peer_fig else None,
            **note,
        }
        cases.append(row)
        log(
            f"resync ({case}): {row['seconds']} s, {done.get('rounds')} rounds, "
            f"{sent} bytes sent ({row['sent_over_changed']}× the changed regions)"
        )

    def powered_off() -> None:  # 1. the secondary powered off
        c.power_off("n2")
        c.wait_state("n1", MODULE, State.ALONE, wait)
        _change(h, "n1", sizes, seed, slow)
        restart("secondary powered off", "n1", "n2", lambda: c.boot("n2"))

    def stopped() -> None:  # 3. the secondary stopped cleanly (n2 is primary by then)
        c.command("n1", MODULE, "stop")
        c.wait_state("n1", MODULE, State.STOP, wait)
        c.wait_state("n2", MODULE, State.ALONE, wait)
        _change(h, "n2", sizes, seed + 1, slow)
        restart("secondary stopped", "n2", "n1", lambda: c.command("n1", MODULE, "start"))

    def crash() -> None:  # 2. the primary crashes while writing
        args = [DATA, str(files), str(per), "1000000", str(seed + 2), "1"]
        writer = lab.popen("n1", [PYTHON, "-c", CHANGE, *args], stdout=subprocess.PIPE)
        written = "0"
        try:
            assert writer.stdout is not None
            if not writer.stdout.readline():  # one region written: the writer runs
                raise LabError("the crash writer died before writing")
            time.sleep(0.3)
            c.power_off("n1")
        finally:
            with contextlib.suppress(OSError):
                os.killpg(writer.pid, signal.SIGKILL)
            if writer.stdout is not None:
                written = (writer.stdout.read().split() or ["1"])[-1]
            writer.wait(timeout=10)
        c.wait_state("n2", MODULE, State.ALONE, wait)
        _change(h, "n2", sizes, seed + 3, slow)
        note = {"regions_written_by_n1_before_the_crash": int(written)}
        restart("primary crash", "n2", "n1", lambda: c.boot("n1"), **note)

    names = ("secondary powered off", "primary crash", "secondary stopped")
    for name, step in zip(names, (powered_off, crash, stopped), strict=True):
        try:
            step()
        except ResyncFailed:
            out["error"] = f"{name}: the resync did not complete (see the case)"
            break
        except (LabError, ClusterError) as exc:
            cases.append({"case": name, "error": str(exc)[:1500]})
            out["error"] = f"{name}: {str(exc)[:300]}"
            log(f"resync ({name}): ERROR: {str(exc)[:1500]}")
            break
    else:  # both copies equal after all that (n2 is the primary)
        out["verify"] = verify(h, "n2", "n1", slow)
        log(f"resync: verify of both copies: {out['verify']}")
    for name in names[len(cases) :]:
        cases.append({"case": name, "not_run": "an earlier case failed"})
    return out


def verify(h: HamodCluster, a: str, b: str, timeout: float) -> str:
    """``python -m hamod.verify`` over both nodes' directories underneath the mounts:
    "equal" or what differs."""
    pa, pb = (h.cluster._host_path(n, UNDER) for n in (a, b))
    if pa is None or pb is None:
        return "not verified: a node is off"
    run = subprocess.run(
        [PYTHON, "-m", "hamod.verify", str(pa), str(pb)],
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )
    if run.returncode == 0:
        return "equal"
    return f"DIFFERENT (exit {run.returncode}): {(run.stdout + run.stderr).strip()[-600:]}"


def precreate(h: HamodCluster, sizes: Sizes, log: Callable[[str], None]) -> float:
    """Before the module's first start: the memory phase's empty files in /srv/data/many
    on both nodes (the same names), written directly (not replicated). Seconds taken."""
    n = sizes.memory_files
    log(f"memory: creating {n} empty files in {DATA}/many on n1 and n2 (before the start)")
    t0 = time.monotonic()
    procs = [
        h.lab.popen(node, [PYTHON, "-c", FILES, DATA, str(n)], stdout=subprocess.DEVNULL)
        for node in ("n1", "n2")
    ]
    try:
        for p in procs:
            if p.wait(timeout=120 + n / 1000) != 0:
                raise LabError(f"creating {n} files failed (exit {p.returncode})")
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
    return time.monotonic() - t0


def memory(
    h: HamodCluster,
    sizes: Sizes,
    log: Callable[[str], None],
    start_s: float,
    empty_kib: int | None = None,
) -> dict[str, Any]:
    """Right after the first start with :func:`precreate`'s files: RSS of both data-path
    processes, then every file looked up through the mount on n1, then RSS again.

    The projection to a million files is linear from ``empty_kib`` (the RSS of the same
    data path started on an empty directory, measured in another lab of this run) or,
    without it, from the RSS before the lookups."""
    lab, n = h.lab, sizes.memory_files
    pid, peer_pid = h.dp_pid("n1"), h.dp_pid("n2")
    if pid is None or peer_pid is None:
        raise ClusterError(f"no data-path process on n1 or n2\n{h.diagnose()}")
    before = proc_figures(lab, "n1", pid)
    peer_before = proc_figures(lab, "n2", peer_pid)
    log(f"memory: looking up the {n} files through the mount on n1")
    out = lab.exec("n1", [PYTHON, "-c", WALK, DATA], timeout=120 + n / 200).stdout.split()
    seen, seconds = int(out[0]), float(out[1])
    after = proc_figures(lab, "n1", pid)
    peer_after = proc_figures(lab, "n2", peer_pid)
    state = h.in_sync()
    rss0, rss1 = before.get("vmrss_kib", 0), after.get("vmrss_kib", 0)
    base = empty_kib if empty_kib is not None else rss0
    per_file = max(rss1 - base, 0) * 1024 / n if n else 0.0
    res = {
        "files": n,
        "looked_up": seen,
        "first_start_s": round(start_s, 1),
        "walk_s": round(seconds, 1),
        "lookups_per_s": round(seen / seconds, 1) if seconds else None,
        "rss_before_mib": round(rss0 / 1024, 1),
        "rss_after_mib": round(rss1 / 1024, 1),
        "hwm_mib": round(after.get("vmhwm_kib", 0) / 1024, 1),
        "peer_rss_before_mib": round(peer_before.get("vmrss_kib", 0) / 1024, 1),
        "peer_rss_after_mib": round(peer_after.get("vmrss_kib", 0) / 1024, 1),
        "peer_hwm_mib": round(peer_after.get("vmhwm_kib", 0) / 1024, 1),
        "empty_rss_mib": None if empty_kib is None else round(empty_kib / 1024, 1),
        "bytes_per_file": round(per_file, 1),
        "projected_1m_mib": round((base * 1024 + per_file * 1_000_000) / 2**20, 1),
        "mirror": "in sync" if state is None else f"NOT in sync: {state}",
    }
    log(
        f"memory: {seen} lookups in {seconds:.1f} s; data path RSS n1 {res['rss_before_mib']} → "
        f"{res['rss_after_mib']} MiB (peak {res['hwm_mib']}), n2 "
        f"{res['peer_rss_before_mib']} → {res['peer_rss_after_mib']} MiB"
    )
    return res
