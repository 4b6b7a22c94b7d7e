"""Running commands in lab hosts for :class:`hamod.testing.lab.Lab`: ``exec``, ``popen``,
``ping``, and SSH from the client namespace.

A booted host (node, witness) is entered with ``nsenter`` into every namespace of its
PID 1, so commands see the host's files, processes and network; the client is a bare
network namespace entered with ``ip netns exec`` (it shares the machine's files).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from hamod.errors import LabError
from hamod.testing import labssh, labsys
from hamod.testing.labhost import Boot
from hamod.testing.labnet import CLIENT, Topology

_PING = Path(__file__).with_name("labping.py")


class LabCommands:
    """The command methods of a lab (a mixin: the lab provides ``topo``, ``address``,
    ``state_dir`` and the booted hosts' PIDs)."""

    name: str
    state_dir: Path
    _boots: dict[str, Boot | None]

    @property
    def topo(self) -> Topology:
        """The lab's topology."""
        raise NotImplementedError

    def address(self, host: str, net: str = "net0") -> str:
        """The address of ``host`` on ``net``."""
        raise NotImplementedError

    def enter_command(self, host: str) -> list[str]:
        """The argv prefix running a command inside ``host``: ``nsenter`` into every
        namespace of its PID 1 (so it sees the host's files), or ``ip netns exec`` for the
        client, which shares the machine's files."""
        self.topo.check_host(host)
        if host == CLIENT:
            return ["ip", "netns", "exec", self.topo.netns(CLIENT)]
        boot = self._boots.get(host)
        if boot is None or not labsys.is_alive(boot.pid, boot.start):
            raise LabError(f"lab {self.name}: {host} is powered off")
        return ["nsenter", "-t", str(boot.pid), "-m", "-u", "-i", "-n", "-p", "-r", "-w"]

    def exec(
        self,
        host: str,
        cmd: str | Sequence[str],
        *,
        check: bool = True,
        timeout: float = 60.0,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``cmd`` (argv, or a string for ``sh -c``) in ``host`` and capture its output.
        With ``check``, a non-zero exit raises :class:`LabError` with its stderr; a timeout
        kills the whole process group and raises."""
        argv = _argv(cmd)
        proc = subprocess.Popen(
            [*self.enter_command(host), *argv],
            stdin=subprocess.DEVNULL if input is None else subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=labsys.env(),
            start_new_session=True,
        )
        try:
            out, err = proc.communicate(input, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise LabError(f"{host}: {_show(argv)}: timed out after {timeout} s") from exc
        if check and proc.returncode != 0:
            detail = (err or out).strip() or "(no output)"
            raise LabError(f"{host}: {_show(argv)}: exit status {proc.returncode}: {detail}")
        return subprocess.CompletedProcess(argv, proc.returncode, out, err)

    def popen(
        self,
        host: str,
        cmd: str | Sequence[str],
        *,
        stdin: int | IO[Any] | None = subprocess.DEVNULL,
        stdout: int | IO[Any] | None = None,
        stderr: int | IO[Any] | None = None,
    ) -> subprocess.Popen[str]:
        """Start ``cmd`` in ``host`` in the background (its own process group: stop it
        with ``os.killpg``). Powering the host off or :meth:`down` kills it too."""
        return subprocess.Popen(
            [*self.enter_command(host), *_argv(cmd)],
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            text=True,
            env=labsys.env(),
            start_new_session=True,
        )

    def ping(
        self,
        host: str,
        target: str,
        *,
        net: str = "net0",
        count: int = 1,
        interval: float = 0.01,
        timeout: float = 0.5,
    ) -> int:
        """Send ``count`` ICMP echoes from ``host`` to ``target`` (a host name, resolved on
        ``net``, or an address); return how many were answered."""
        addr = self.address(target, net) if target in self.topo.hosts else target
        argv = [sys.executable, "-I", "-S", str(_PING), addr, str(count), str(interval),
                str(timeout)]  # fmt: skip
        out = self.exec(host, argv, timeout=count * interval + timeout + 10.0)
        return int(out.stdout.strip())

    def reachable(self, host: str, target: str, net: str = "net0") -> bool:
        """Whether ``host`` gets an answer to one of three quick pings to ``target``."""
        return self.ping(host, target, net=net, count=3, interval=0.05, timeout=0.3) > 0

    def ssh_command(self, host: str, *cmd: str) -> list[str]:
        """argv running ``ssh`` from the client namespace to ``host`` as root with the lab
        key (host keys checked against the lab's known_hosts)."""
        return [
            *self.enter_command(CLIENT),
            "ssh",
            *labssh.ssh_options(self.topo, self.state_dir),
            f"root@{self.topo.address(host, 0)}",
            *cmd,
        ]

    @property
    def ssh_config(self) -> Path:
        """``ssh -F`` file reaching every host from the root namespace (via socat)."""
        return labssh.ssh_dir(self.state_dir) / "config"

    @property
    def inventory(self) -> Path:
        """An Ansible inventory of the lab (interpreter pinned, host keys checked)."""
        return labssh.ssh_dir(self.state_dir) / "inventory.yml"


def _argv(cmd: str | Sequence[str]) -> list[str]:
    return ["sh", "-c", cmd] if isinstance(cmd, str) else list(cmd)


def _show(argv: Sequence[str]) -> str:
    return argv[2] if argv[:2] == ["sh", "-c"] else " ".join(argv)
