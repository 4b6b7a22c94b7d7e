"""The multi-node lab: nodes, a switch, a witness/router and a client in Linux namespaces,
with real faults (power-off, unplug, partition, isolation, loss).

::

    with Lab("demo", nodes=2) as lab:          # up() ... down()
        lab.exec("n1", "hostname")             # runs inside n1 (its files, PIDs, network)
        lab.kill("n1"); lab.start("n1")        # power-off / boot again (files kept)
        lab.partition("n1", "n2"); lab.heal()

Topology and names: :mod:`hamod.testing.labnet`; booting hosts:
:mod:`hamod.testing.labhost`; SSH and inventory: :mod:`hamod.testing.labssh`. State
(PIDs, slot) lives in ``$HAMOD_LAB_ROOT/<name>/`` (default ``/run/hamod-lab``), so another
process can :meth:`Lab.attach`. Guide: docs/lab.md.
"""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import subprocess
import time
from types import TracebackType

from hamod.errors import LabError
from hamod.testing import labhost, labssh, labstate, labsys
from hamod.testing.labcommands import LabCommands
from hamod.testing.labfaults import LabFaults
from hamod.testing.labhost import Boot
from hamod.testing.labnet import CLIENT, SWITCH, WITNESS, Topology, check_name
from hamod.testing.labstate import down_all, lab_root, persistent_labs, sweep
from hamod.testing.labstatus import HostStatus, LabStatus, NetworkStatus

__all__ = [
    "Lab",
    "LabError",
    "down_all",
    "lab_available",
    "lab_root",
    "persistent_labs",
    "sweep",
]

lab_available = labsys.lab_available


class Lab(LabCommands, LabFaults):
    """One lab: ``nodes`` nodes (n1..nN) on ``networks`` networks, a witness that routes,
    and a client on the service network (net0). Commands: :class:`LabCommands`; faults:
    :class:`LabFaults`."""

    def __init__(
        self, name: str = "lab", nodes: int = 2, networks: int = 2, *, persist: bool = False
    ) -> None:
        """``persist``: the lab outlives this process (``scripts/lab up``); otherwise it
        belongs to this process and :func:`sweep` removes it once this process is gone."""
        self.name = check_name(name)
        self.nodes = nodes
        self.networks = networks
        self.persist = persist
        self.root = lab_root()
        self.state_dir = self.root / name
        self._topo: Topology | None = None
        self._boots: dict[str, Boot | None] = {}
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._owner: tuple[int, int] | None = None
        if not persist:
            stat = labsys.proc_stat(os.getpid())
            self._owner = (os.getpid(), stat[1] if stat else 0)

    # -- lifecycle -----------------------------------------------------------------------

    @classmethod
    def attach(cls, name: str) -> Lab:
        """The running lab ``name``, as recorded in its state directory."""
        lab = cls(check_name(name))
        state = labstate.read(lab.root, name)
        if state is None or not state.complete:
            raise LabError(f"lab {name} is not up (no complete state in {lab.state_dir})")
        lab.nodes, lab.networks = state.nodes, state.networks
        lab.persist, lab._owner = state.owner is None, state.owner
        lab._topo = Topology(name, state.slot, state.nodes, state.networks)
        lab._boots = dict(state.hosts)
        return lab

    def __enter__(self) -> Lab:
        self.up()
        return self

    def __exit__(
        self, typ: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.down()

    def up(self) -> Lab:
        """Build the lab and boot every host (about 0.3 s). Leftovers of a crashed lab of
        the same name are removed first; a running one is an error."""
        labsys.require_lab()
        Topology(self.name, 0, self.nodes, self.networks)  # validate before touching anything
        with labstate.flock(self.root / ".lock"):
            old = labstate.read(self.root, self.name)
            if old is not None and old.running():
                raise LabError(f"lab {self.name} is already up ({', '.join(old.running())} run)")
            labstate.remove(self.root, self.name)
            self._topo = Topology(
                self.name, labstate.free_slot(self.root), self.nodes, self.networks
            )
            self.state_dir.mkdir(parents=True)
            self._save(complete=False)
        try:
            topo = self._topo
            labssh.prepare(topo, self.state_dir)
            labsys.ip_batch(None, [f"netns add {topo.netns(SWITCH)}"], what="create switch")
            labsys.ip_batch(topo.netns(SWITCH), topo.switch_script(), what="create bridges")
            labsys.nft(topo.netns(SWITCH), topo.nft_setup(), what="create fault table")
            self._boot(list(topo.hosts))
            self._save()
        except BaseException:
            self.down()
            raise
        return self

    def down(self) -> None:
        """Remove the lab: kill every host (and any process in its namespaces), delete the
        namespaces, remove the state. Idempotent; leaves no namespace, mount or process."""
        boots = [b for b in self._boots.values() if b]
        labstate.remove(self.root, self.name, boots, list(self._procs.values()))
        self._procs.clear()
        self._boots = {}
        self._topo = None

    def kill(self, host: str) -> None:
        """Power ``host`` off: pull its cables first (a dead machine sends nothing, not even
        a goodbye: processes that resign gracefully on SIGTERM/SIGKILL of a parent must not
        hide the detection time), then SIGKILL its PID 1 (the whole PID namespace dies);
        its network namespace goes too, so a restart boots a fresh network stack (no
        leftover virtual IP), while its files stay in the overlays. Idempotent."""
        topo = self.topo
        self._booted_host(host)
        with labstate.flock(self.state_dir / "lock"):
            ns = topo.netns(host)
            plugged = (labsys.NETNS_DIR / ns).exists()
            if plugged:
                labsys.ip_batch(topo.netns(SWITCH), topo.unplug_all_script(host), "unplug")
            labhost.power_off(self._boots.get(host), self._procs.pop(host, None))
            labsys.kill_pids(labsys.pids_in_netns([ns]))
            if plugged:
                labsys.delete_netns([ns])
            self._boots[host] = None
            self._save()

    def shutdown(self, host: str, timeout: float = 10.0) -> None:
        """Clean power-off: SIGTERM every process of ``host`` (its PID 1 does it, then
        SIGKILLs what is left after 3 s), wait, then :meth:`kill` to pull the cables."""
        self._booted_host(host)
        boot = self._boots.get(host)
        if boot is not None and labsys.is_alive(boot.pid, boot.start):
            os.kill(boot.pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while labsys.is_alive(boot.pid, boot.start) and time.monotonic() < deadline:
                time.sleep(0.01)
        self.kill(host)

    def start(self, host: str) -> None:
        """Boot ``host`` again (no-op when it runs): fresh network stack, cables plugged,
        files as it left them."""
        self._booted_host(host)
        if self.alive(host):
            return
        self.kill(host)  # clears what a crashed host left
        with labstate.flock(self.state_dir / "lock"):
            self._boot([host])
            self._save()

    def restore(self) -> None:
        """:meth:`heal` and boot every powered-off host: the lab as :meth:`up` left it."""
        self.heal()
        for host in self.topo.booted:
            self.start(host)

    # -- topology ------------------------------------------------------------------------

    @property
    def topo(self) -> Topology:
        """The lab's topology (names, addresses); LabError when the lab is not up."""
        if self._topo is None:
            raise LabError(f"lab {self.name} is not up")
        return self._topo

    @property
    def node_names(self) -> tuple[str, ...]:
        """``("n1", "n2", ...)``."""
        return self.topo.node_names

    def address(self, host: str, net: str = "net0") -> str:
        """The address of ``host`` on ``net``."""
        return self.topo.address(host, self.topo.net_index(net))

    def free_address(self, index: int = 0, net: str = "net0") -> str:
        """An address on ``net`` the lab never assigns (.200 + index), for virtual IPs."""
        return self.topo.free_address(self.topo.net_index(net), index)

    def alive(self, host: str) -> bool:
        """Whether ``host``'s PID 1 runs (read from /proc/PID/stat; zombies are dead)."""
        boot = self._boots.get(self.topo.check_host(host))
        return boot is not None and labsys.is_alive(boot.pid, boot.start)

    def running(self) -> list[str]:
        """The hosts whose PID 1 runs."""
        return [h for h in self.topo.booted if self.alive(h)]

    def vip_owners(self, addr: str) -> list[str]:
        """The running nodes holding ``addr`` on an interface."""
        want = ipaddress.ip_address(addr.split("/")[0])
        owners = []
        for node in self.topo.node_names:
            if not self.alive(node):
                continue
            out = labsys.run(["ip", "-n", self.topo.netns(node), "-j", "addr", "show"])
            for link in json.loads(out):
                if any(ipaddress.ip_address(a["local"]) == want for a in link["addr_info"]):
                    owners.append(node)
                    break
        return owners

    def vip_owner(self, addr: str) -> str | None:
        """The node holding ``addr``, None if none does; LabError if several do."""
        owners = self.vip_owners(addr)
        if len(owners) > 1:
            raise LabError(f"{addr} is held by several nodes: {', '.join(owners)}")
        return owners[0] if owners else None

    def status(self) -> LabStatus:
        """The topology with PIDs, liveness, addresses, cable states and faults."""
        topo = self.topo
        sw = topo.netns(SWITCH)
        links = json.loads(labsys.run(["ip", "-n", sw, "-j", "link", "show"]))
        up = {link["ifname"] for link in links if "UP" in link.get("flags", [])}
        hosts = []
        for h in topo.hosts:
            boot = self._boots.get(h)
            hosts.append(
                HostStatus(
                    name=h,
                    role="client" if h == CLIENT else "witness" if h == WITNESS else "node",
                    netns=topo.netns(h),
                    pid=boot.pid if boot else None,
                    alive=self.alive(h) if h != CLIENT else True,
                    addresses=topo.addresses(h),
                    plugged={f"net{i}": topo.port(h, i) in up for i in topo.nets_of(h)},
                )
            )
        nets = tuple(
            NetworkStatus(f"net{i}", "service" if i == 0 else "heartbeat", topo.subnet(i),
                          topo.bridge(i))
            for i in range(topo.networks)
        )  # fmt: skip
        return LabStatus(
            name=self.name,
            slot=topo.slot,
            state_dir=str(self.state_dir),
            switch_netns=sw,
            networks=nets,
            hosts=tuple(hosts),
            faults=tuple(self.faults()),
            ssh_config=str(self.ssh_config),
            inventory=str(self.inventory),
        )

    # -- internals -----------------------------------------------------------------------

    def _booted_host(self, host: str) -> None:
        if self.topo.check_host(host) == CLIENT:
            raise LabError("the client is a bare namespace: it cannot be powered off or booted")

    def _boot(self, hosts: list[str]) -> None:
        topo = self.topo
        labsys.ip_batch(None, [f"netns add {topo.netns(h)}" for h in hosts], "create namespaces")
        labsys.ip_batch(
            topo.netns(SWITCH), [ln for h in hosts for ln in topo.plug_script(h)], "cable hosts"
        )
        for h in hosts:
            labsys.ip_batch(topo.netns(h), topo.host_script(h), what=f"configure {h}")
        procs = {h: labhost.spawn(topo, self.state_dir, h) for h in hosts if h != CLIENT}
        self._procs.update(procs)
        self._boots.update(labhost.wait_booted(self.state_dir, procs))

    def _save(self, complete: bool = True) -> None:
        topo = self.topo
        labstate.write(
            self.root,
            labstate.State(
                name=self.name,
                slot=topo.slot,
                nodes=topo.nodes,
                networks=topo.networks,
                owner=self._owner,
                complete=complete,
                hosts=dict(self._boots),
            ),
        )


if __name__ == "__main__":
    from hamod.testing.labcli import main

    raise SystemExit(main())
