"""The lab's system edge: running commands, reading /proc, finding namespaces and
processes, and checking up front that the machine can host a lab.

Every failure here becomes a :class:`hamod.errors.LabError` naming the command or the
missing feature.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path

from hamod.errors import LabError

NETNS_DIR = Path("/run/netns")
PATH_ENV = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# command -> Debian package providing it
REQUIRED_COMMANDS = {
    "ip": "iproute2",
    "nft": "nftables",
    "nsenter": "util-linux",
    "unshare": "util-linux",
    "mount": "mount",
    "sshd": "openssh-server",
    "ssh": "openssh-client",
    "ssh-keygen": "openssh-client",
    "socat": "socat",
}

_PROBE_NFT = """\
add table bridge probe
add chain bridge probe c { type filter hook forward priority 0; policy accept; }
add rule bridge probe c iifname "a" oifname "b" drop
add rule bridge probe c iifname "a" numgen random mod 100 < 50 drop
"""


def run(
    cmd: Sequence[str], *, input: str | None = None, timeout: float = 30.0, what: str = ""
) -> str:
    """Run ``cmd``; return its stdout; raise :class:`LabError` with its stderr on failure."""
    try:
        proc = subprocess.run(
            list(cmd),
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env=env(),
        )
    except FileNotFoundError as exc:
        raise LabError(f"{what or cmd[0]}: command not found: {cmd[0]}") from exc
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"{what or ' '.join(cmd)}: timed out after {timeout} s") from exc
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip()
        raise LabError(
            f"{what or ' '.join(cmd)}: exit status {proc.returncode}: {detail or '(no output)'}"
        )
    return proc.stdout


def ip_batch(netns: str | None, lines: Sequence[str], what: str) -> None:
    """Run ``ip -batch`` lines in ``netns`` (the root namespace when ``None``)."""
    if not lines:
        return
    cmd = ["ip", *(["-n", netns] if netns else []), "-batch", "-"]
    run(cmd, input="\n".join(lines) + "\n", what=what)


def nft(netns: str, script: str, what: str) -> None:
    """Run an nft script in ``netns``."""
    run(["ip", "netns", "exec", netns, "nft", "-f", "-"], input=script, what=what)


def lab_netns(prefix: str) -> list[str]:
    """Names of existing network namespaces starting with ``prefix``."""
    try:
        return sorted(n for n in os.listdir(NETNS_DIR) if n.startswith(prefix))
    except FileNotFoundError:
        return []


def delete_netns(names: Sequence[str]) -> None:
    """Delete network namespaces (one ``ip -batch``); the missing ones are ignored."""
    present = [n for n in names if (NETNS_DIR / n).exists()]
    ip_batch(None, [f"netns del {n}" for n in present], what="delete namespaces")


# -- processes --------------------------------------------------------------------------


def proc_stat(pid: int) -> tuple[str, int] | None:
    """``(state letter, start time in ticks)`` of ``pid`` from /proc/PID/stat, or None."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    return fields[0], int(fields[19])


def is_alive(pid: int | None, start: int | None) -> bool:
    """True when ``pid`` runs and is the same process (same start time): not a zombie,
    not dead, not a recycled PID. ``kill -0`` cannot tell a zombie from a live process."""
    if pid is None:
        return False
    stat = proc_stat(pid)
    if stat is None or stat[0] in ("Z", "X", "x"):
        return False
    return start is None or stat[1] == start


def children(pid: int) -> list[int]:
    """Direct children of ``pid``."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return []
    return [int(p) for p in text.split()]


def _netns_inode(name: str) -> int | None:
    try:
        return os.stat(NETNS_DIR / name).st_ino
    except FileNotFoundError:
        return None


def _ancestors() -> set[int]:
    pids, pid = set(), os.getpid()
    while pid > 1:
        pids.add(pid)
        stat = Path(f"/proc/{pid}/stat").read_text()
        pid = int(stat[stat.rindex(")") + 2 :].split()[1])
    return pids


def pids_in_netns(names: Sequence[str]) -> list[int]:
    """Live processes whose network namespace is one of ``names`` (never this process or
    its ancestors)."""
    inodes = {f"net:[{ino}]" for n in names if (ino := _netns_inode(n)) is not None}
    if not inodes:
        return []
    mine = _ancestors()
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) in mine:
            continue
        try:
            if os.readlink(f"/proc/{entry.name}/ns/net") in inodes:
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def kill_pids(pids: Sequence[int]) -> None:
    """SIGKILL each pid; already gone is fine."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


# -- features ---------------------------------------------------------------------------


@functools.cache
def lab_available() -> str | None:
    """None when this machine can host a lab, else the precise reason it cannot."""
    if os.geteuid() != 0:
        return "the lab needs root (network namespaces, mounts)"
    for cmd, package in REQUIRED_COMMANDS.items():
        if shutil.which(cmd, path=env()["PATH"]) is None:
            return f"command {cmd!r} not found (Debian package {package}; run scripts/setup)"
    if not Path("/proc/self/ns/net").exists():
        return "kernel without network namespaces (/proc/self/ns/net missing)"
    if not Path("/proc/self/ns/pid").exists():
        return "kernel without PID namespaces (/proc/self/ns/pid missing)"
    filesystems = Path("/proc/filesystems").read_text().split()
    if "overlay" not in filesystems:
        return "kernel without overlayfs (no 'overlay' in /proc/filesystems)"
    if not Path("/dev/fuse").exists():
        return "/dev/fuse missing (FUSE not available to the lab's nodes)"
    probe = subprocess.run(
        ["unshare", "--net", "sh", "-c", "ip link add probe0 type bridge && nft -c -f -"],
        input=_PROBE_NFT,
        capture_output=True,
        text=True,
        check=False,
        env=env(),
    )
    if probe.returncode != 0:
        detail = probe.stderr.strip().splitlines()
        return (
            "cannot create a bridge with bridge-family nftables rules in a network namespace"
            f" ({detail[-1] if detail else 'exit status ' + str(probe.returncode)})"
        )
    return None


def env() -> dict[str, str]:
    """This process's environment with the sbin directories on PATH (``ip``, ``nft`` and
    ``sshd`` live there and ``su`` without ``-`` drops them)."""
    parts = [p for p in os.environ.get("PATH", "").split(":") if p]
    parts += [p for p in PATH_ENV.split(":") if p not in parts]
    return {**os.environ, "PATH": ":".join(parts)}


def require_lab() -> None:
    """Raise :class:`LabError` naming the missing feature when a lab cannot run here."""
    reason = lab_available()
    if reason is not None:
        raise LabError(f"cannot build a lab on this machine: {reason}")
